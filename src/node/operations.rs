//! The operations endpoint, as a Fabric peer's (`operations.listenAddress`): `/healthz` with
//! real checks, `/metrics` in Prometheus' text format, `/logspec` to read and change the log
//! spec at once, and `/version`. Status codes and bodies are Fabric's, quirks included (a
//! wrong method on `/logspec` or `/version` is a 400).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::container::docker::DockerVm;
use crate::ledger::Ledger;
use crate::logging;
use crate::metrics::metrics;

use super::operations_tls::ClientCertificate;

/// The version `/version` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the endpoint checks and reports on.
#[derive(Clone)]
pub(super) struct Operations {
    ledger: Ledger,
    docker: Arc<DockerVm>,
    /// Served over TLS, where `/metrics` and `/logspec` need a verified client certificate.
    tls: bool,
}

impl Operations {
    pub(super) fn new(ledger: Ledger, docker: Arc<DockerVm>, tls: bool) -> Self {
        Self {
            ledger,
            docker,
            tls,
        }
    }

    /// Whether a client may use an endpoint that Fabric secures: always over plain HTTP (served
    /// on loopback by default), and over TLS only with a verified certificate.
    fn admits(&self, client: ClientCertificate) -> bool {
        !self.tls || client.verified
    }

    /// The endpoint's routes; any other path is a 404.
    pub(super) fn router(self) -> Router {
        Router::new()
            .route("/healthz", any(healthz))
            .route("/logspec", any(logspec))
            .route("/metrics", any(metrics_text))
            .route("/version", any(version))
            .with_state(self)
    }

    /// Each failing check: the component and why. The checks run at once, each bounded by
    /// [`HEALTH_CHECK_TIMEOUT`], so a hung engine fails its check instead of hanging the probe.
    async fn failed_checks(&self) -> Vec<(&'static str, String)> {
        let ledger = self.ledger.clone();
        let ledger_check = bounded("ledger", async move {
            match tokio::task::spawn_blocking(move || ledger.check_writable()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("the ledger cannot be written: {e}")),
                Err(e) => Some(format!("the ledger check failed: {e}")),
            }
        });
        let docker_check = bounded("docker", async {
            self.docker.check_engine().await.and_then(Result::err)
        });
        let (ledger, docker) = tokio::join!(ledger_check, docker_check);
        [ledger, docker].into_iter().flatten().collect()
    }
}

/// The longest a health check may take before it counts as failed (Fabric's default).
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// `check`'s failure reason, if any, for `component`; a check that does not finish within
/// [`HEALTH_CHECK_TIMEOUT`] fails with that reason.
async fn bounded(
    component: &'static str,
    check: impl Future<Output = Option<String>>,
) -> Option<(&'static str, String)> {
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, check).await {
        Ok(failure) => failure.map(|reason| (component, reason)),
        Err(_) => Some((
            component,
            format!("the check did not finish within {HEALTH_CHECK_TIMEOUT:?}"),
        )),
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz(State(operations): State<Operations>, method: Method) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let failed = operations.failed_checks().await;
    if failed.is_empty() {
        return json_response(StatusCode::OK, &json!({ "status": "OK", "time": now() }));
    }
    let checks: Vec<Value> = failed
        .into_iter()
        .map(|(component, reason)| json!({ "component": component, "reason": reason }))
        .collect();
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "status": "Service Unavailable", "time": now(), "failed_checks": checks }),
    )
}

#[derive(Deserialize)]
struct SpecRequest {
    #[serde(default)]
    spec: String,
}

async fn logspec(
    State(operations): State<Operations>,
    ConnectInfo(client): ConnectInfo<ClientCertificate>,
    method: Method,
    body: Bytes,
) -> Response {
    if !operations.admits(client) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let error = |status, message: String| json_response(status, &json!({ "error": message }));
    let Some(control) = logging::control() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process's logging is not installed by ccvm".to_owned(),
        );
    };
    match method {
        Method::GET => json_response(StatusCode::OK, &json!({ "spec": control.spec() })),
        Method::PUT => {
            let request: SpecRequest = match serde_json::from_slice(&body) {
                Ok(request) => request,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            match control.set(&request.spec) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        other => error(
            StatusCode::BAD_REQUEST,
            format!("invalid request method: {other}"),
        ),
    }
}

async fn metrics_text(
    State(operations): State<Operations>,
    ConnectInfo(client): ConnectInfo<ClientCertificate>,
) -> Response {
    if !operations.admits(client) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics().render(),
    )
        .into_response()
}

async fn version(method: Method) -> Response {
    if method != Method::GET {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "Error": format!("invalid request method: {method}") }),
        );
    }
    json_response(StatusCode::OK, &json!({ "Version": VERSION }))
}
