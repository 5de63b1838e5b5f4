//! Chaincode as a service (Fabric 2.4+): a `ccaas` package holds only `connection.json`, and
//! the peer dials the chaincode's `protos.Chaincode/Connect` instead of starting anything. The
//! chaincode may run anywhere the peer can reach: another machine, Kubernetes, a test process.

use std::sync::Arc;
use std::time::Duration;

use ccvm_proto::protos::chaincode_client::ChaincodeClient;
use ccvm_proto::protos::{ChaincodeId, ChaincodeMessage};
use ccvm_proto::{Message, MessageType};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing::{info, warn};

use super::{
    ChaincodeResolver, ChaincodeStreams, Exit, ExitReport, LaunchConfig, PeerGone, StartFuture,
    Started, StreamBroken, StreamConnector, Target, Vm, VmError,
};
use crate::package::{Package, Platform};

/// Messages buffered in each direction between the chaincode's stream and its handler.
const BUFFER: usize = 256;
/// How long a dial may take when `connection.json` does not say.
const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before dialling a service again that could not be reached.
const DIAL_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `connection.json`, as Fabric defines it.
#[derive(Debug, Deserialize)]
struct Connection {
    address: String,
    #[serde(default)]
    dial_timeout: Option<String>,
    #[serde(default)]
    tls_required: bool,
    #[serde(default)]
    client_auth_required: bool,
    #[serde(default)]
    client_key: String,
    #[serde(default)]
    client_cert: String,
    #[serde(default)]
    root_cert: String,
}

/// A duration such as `10s`, `500ms` or `1m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

impl Connection {
    fn from_package(package: &Package) -> Result<Self, String> {
        let file = package
            .code_file("connection.json")
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&file).map_err(|e| format!("connection.json: {e}"))
    }

    /// How long a dial may take: `dial_timeout`, or [`DEFAULT_DIAL_TIMEOUT`].
    fn dial_timeout(&self) -> Result<Duration, String> {
        match &self.dial_timeout {
            Some(text) => parse_duration(text)
                .ok_or_else(|| format!("dial_timeout {text:?} is not a duration like 10s")),
            None => Ok(DEFAULT_DIAL_TIMEOUT),
        }
    }

    fn endpoint(&self, timeout: Duration) -> Result<Endpoint, String> {
        let scheme = if self.tls_required { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", self.address))
            .map_err(|e| format!("address {}: {e}", self.address))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        if self.tls_required {
            let mut tls =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.root_cert));
            if self.client_auth_required {
                tls = tls.identity(Identity::from_pem(&self.client_cert, &self.client_key));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
        }
        Ok(endpoint)
    }
}

/// Connects to `endpoint`, dialling again after each failure until `timeout` has passed since the
/// first attempt, as Fabric's blocking dial does: a service whose process is still starting is
/// reached once it listens. Fails with the last attempt's reason.
async fn connect_within(endpoint: &Endpoint, timeout: Duration) -> Result<Channel, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let reason = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
            Ok(Ok(channel)) => return Ok(channel),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {timeout:?}"),
        };
        if tokio::time::Instant::now() + DIAL_RETRY_PAUSE >= deadline {
            return Err(reason);
        }
        tokio::time::sleep(DIAL_RETRY_PAUSE).await;
    }
}

/// How the connection to a chaincode served as a service ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceEnd {
    /// The peer stopped it.
    #[error("disconnected by the peer")]
    StoppedByPeer,
    /// The chaincode closed its stream.
    #[error("closed its stream")]
    Closed,
    /// The stream failed; the text is gRPC's status message.
    #[error("stream failed: {0}")]
    Failed(String),
    /// The peer's handler of the connection ended first.
    #[error("its handler ended")]
    HandlerEnded,
}

/// Why a chaincode served elsewhere could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CcaasError {
    /// The peer has stopped, so the connection has nothing to serve it.
    #[error(transparent)]
    PeerGone(#[from] PeerGone),
    /// The chaincode's package is not a `ccaas` package.
    #[error("{chaincode} is not a ccaas chaincode")]
    NotCcaas {
        /// The chaincode.
        chaincode: String,
    },
    /// Its `connection.json` is missing or says something that cannot be dialled.
    #[error("chaincode {chaincode}: {reason}")]
    BadConnection {
        /// The chaincode.
        chaincode: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at its address.
    #[error("cannot reach chaincode {chaincode} at {address}: {reason}")]
    Unreachable {
        /// The chaincode.
        chaincode: String,
        /// The address dialled.
        address: String,
        /// Why the dial failed.
        reason: String,
    },
    /// It answered, but refused the chaincode stream.
    #[error("chaincode {chaincode} refused the connection: {reason}")]
    Refused {
        /// The chaincode.
        chaincode: String,
        /// Its status message.
        reason: String,
    },
}

/// Dials chaincode served elsewhere and hands its stream to the peer.
pub struct CcaasVm {
    resolver: Arc<dyn ChaincodeResolver>,
    connector: StreamConnector,
}

impl CcaasVm {
    /// A VM that reaches the `ccaas` packages `resolver` finds and connects their streams to
    /// the peer through `connector`.
    pub fn new(resolver: Arc<dyn ChaincodeResolver>, connector: StreamConnector) -> Self {
        Self {
            resolver,
            connector,
        }
    }

    /// Dials the chaincode `name`, served as `package` says, and connects its stream as
    /// `registers_as`.
    async fn dial(
        &self,
        name: &str,
        package: Option<&Package>,
        registers_as: &str,
    ) -> Result<Started, CcaasError> {
        let package = package.ok_or_else(|| CcaasError::NotCcaas {
            chaincode: name.to_owned(),
        })?;
        let bad_connection = |reason| CcaasError::BadConnection {
            chaincode: name.to_owned(),
            reason,
        };
        let connection = Connection::from_package(package).map_err(bad_connection)?;
        let timeout = connection.dial_timeout().map_err(bad_connection)?;
        let endpoint = connection.endpoint(timeout).map_err(bad_connection)?;
        let channel =
            connect_within(&endpoint, timeout)
                .await
                .map_err(|reason| CcaasError::Unreachable {
                    chaincode: name.to_owned(),
                    address: connection.address.clone(),
                    reason,
                })?;
        let (to_chaincode, outbound) = mpsc::channel(BUFFER);
        let mut inbound = ChaincodeClient::new(channel)
            .connect(ReceiverStream::new(outbound).map(|message: Box<ChaincodeMessage>| *message))
            .await
            .map_err(|status| CcaasError::Refused {
                chaincode: name.to_owned(),
                reason: status.message().to_owned(),
            })?
            .into_inner();
        info!(chaincode = name, address = %connection.address, "connected to chaincode as a service");
        let (to_handler, from_chaincode) = mpsc::channel(BUFFER);
        let peer = (self.connector)(ChaincodeStreams {
            launched_as: registers_as.to_owned(),
            inbound: from_chaincode,
            outbound: to_chaincode,
            end_on_timeout: None,
            replaced: None,
        })?;
        tokio::spawn(peer.serve);
        let stopped = CancellationToken::new();
        let stop = stopped.clone();
        let registers_as = registers_as.to_owned();
        let pump = tokio::spawn(async move {
            let end = loop {
                let next = tokio::select! {
                    () = stopped.cancelled() => break ServiceEnd::StoppedByPeer,
                    next = inbound.message() => next,
                };
                let message = match next {
                    Ok(Some(message)) => as_registered(message, &registers_as),
                    Ok(None) => break ServiceEnd::Closed,
                    Err(status) => break ServiceEnd::Failed(status.message().to_owned()),
                };
                if to_handler.send(Ok(Box::new(message))).await.is_err() {
                    break ServiceEnd::HandlerEnded;
                }
            };
            let broken = StreamBroken::ServiceEnded {
                chaincode: registers_as,
                end: end.clone(),
            };
            let _ = to_handler.send(Err(broken)).await;
            end
        });
        Ok(Started {
            stop: Box::new(move || stop.cancel()),
            exited: ExitReport::watching(async move {
                pump.await.map_or(Exit::Lost, Exit::Disconnected)
            }),
        })
    }
}

/// A REGISTER names the chaincode as the peer knows it: the peer dialed this address for that
/// chaincode, whatever id (Fabric shims send the package id) the service claims.
fn as_registered(mut message: ChaincodeMessage, registers_as: &str) -> ChaincodeMessage {
    if message.r#type == MessageType::Register as i32 {
        let claimed = ChaincodeId::decode(message.payload.as_slice())
            .map(|id| id.name)
            .unwrap_or_default();
        if claimed != registers_as {
            warn!(%claimed, registers_as, "chaincode as a service registers under its definition's name");
        }
        message.payload = ChaincodeId {
            name: registers_as.to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
    }
    message
}

impl Vm for CcaasVm {
    fn target(&self, name: &str) -> Option<Target> {
        self.resolver
            .resolve(name)
            .filter(|resolved| resolved.package.platform == Platform::Ccaas)
            .map(|resolved| resolved.into_target(super::Connection::Served))
    }

    fn start<'a>(
        &'a self,
        name: &'a str,
        target: &'a Target,
        config: &'a LaunchConfig,
    ) -> StartFuture<'a> {
        Box::pin(async move {
            self.dial(name, target.package.as_ref(), &config.registers_as)
                .await
                .map_err(VmError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_timeouts_read_like_fabrics() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
    }
}
