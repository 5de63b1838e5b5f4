//! The operations endpoint an operator watches a node through, over real HTTP on loopback:
//! health, Fabric's metrics, the version, and the log spec changed while the node runs, on a
//! node started in process and on one started by the `ccvm` command.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use ccvm::node::{QSCC, dev_organization};
use ccvm::operations_client::{OperationsTls, request, request_over};

use crate::harness::{CHANNEL, TestNode, run_ccvm, rust_chaincode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_endpoint_reports_health_metrics_and_version() -> Result<()> {
    let node = TestNode::start().await?;
    let address = node
        .inner()
        .operations_addr()
        .context("the endpoint is served")?
        .to_string();
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "k", "v"]).await?;
    let chain_info = node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    assert_eq!(chain_info.status, 200, "{chain_info:?}");

    let (status, body) = request(&address, "GET", "/healthz", "").await?;
    let health: Value = serde_json::from_str(&body)?;
    assert_eq!((status, &health["status"]), (200, &json!("OK")), "{body}");
    assert!(
        health["time"].as_str().is_some_and(|t| t.contains('T')),
        "{body}"
    );
    assert_eq!(request(&address, "POST", "/healthz", "").await?.0, 405);

    let (status, metrics) = request(&address, "GET", "/metrics", "").await?;
    assert_eq!(status, 200);
    let series = |prefix: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    };
    assert!(
        series("endorser_proposals_received ").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        series("endorser_successful_proposals ").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        series(
            r#"endorser_proposal_duration_count{chaincode="kv",channel="mychannel",success="true"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        series(r#"ledger_blockchain_height{channel="mychannel"}"#).is_some(),
        "the gauge is the process's, set by every node of the test run (one just started may \
         report 0): {metrics}"
    );
    assert!(
        series(r#"ledger_transaction_count{chaincode="kv:"#).is_some_and(|n| n >= 1.0),
        "the committed transaction is counted under its chaincode: {metrics}"
    );
    assert!(
        series(r#"chaincode_shim_requests_received{chaincode="kv",channel="mychannel",type="PUT_STATE"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        series(r#"chaincode_shim_request_duration_count{chaincode="kv",channel="mychannel",success="true",type="PUT_STATE"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("ledger_block_processing_time_bucket"),
        "{metrics}"
    );
    assert!(
        series(r#"chaincode_launch_duration_count{chaincode="qscc",success="true"}"#)
            .is_some_and(|n| n >= 1.0),
        "the first call of qscc launched it: {metrics}"
    );

    assert!(
        series("ccvm_wasm_instances ").is_some_and(|n| n >= 1.0),
        "qscc is resident: {metrics}"
    );
    assert!(
        series("ccvm_wasm_pool_slots_in_use ").is_some_and(|n| n >= 1.0),
        "qscc holds a slot of the pool: {metrics}"
    );
    assert!(
        series("ccvm_wasm_pool_capacity ").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        ["compiled", "disk"].iter().any(|source| {
            series(&format!(
                r#"ccvm_wasm_component_load_duration_count{{source="{source}"}}"#
            ))
            .is_some_and(|n| n >= 1.0)
        }),
        "the system chaincodes were compiled or loaded: {metrics}"
    );

    let (status, body) = request(&address, "GET", "/version", "").await?;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["Version"],
        json!(ccvm::node::VERSION)
    );
    let (status, body) = request(&address, "DELETE", "/version", "").await?;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body)?),
        (400, json!({ "Error": "invalid request method: DELETE" }))
    );
    assert_eq!(request(&address, "GET", "/nothing", "").await?.0, 404);

    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.inner().peer_addr()))?
            .connect()
            .await?;
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(
        health.status(),
        ServingStatus::Serving,
        "grpc.health.v1.Health"
    );
    Ok(())
}

/// A node whose operations endpoint serves TLS (requiring client certificates at the handshake
/// when `required`), its address, and its development admin's TLS directory.
async fn tls_operations_node(required: bool) -> Result<(TestNode, String, std::path::PathBuf)> {
    let node = TestNode::start_with(|config| {
        config.operations.tls.enabled = true;
        config.operations.tls.client_auth_required = required;
    })
    .await?;
    let address = node
        .inner()
        .operations_addr()
        .context("the endpoint is served")?
        .to_string();
    let tls_dir = dev_organization(&node.config().data_dir)
        .admin_msp_dir()
        .with_file_name("tls");
    Ok((node, address, tls_dir))
}

/// A client certificate and key from a CA the node does not know, as PEM files in `dir`.
fn stranger_certificate(dir: &std::path::Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let key = rcgen::KeyPair::generate()?;
    let certificate =
        rcgen::CertificateParams::new(vec!["stranger".to_owned()])?.self_signed(&key)?;
    let (cert_file, key_file) = (dir.join("stranger.crt"), dir.join("stranger.key"));
    std::fs::write(&cert_file, certificate.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    Ok((cert_file, key_file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_only_a_client_with_a_certificate_reads_metrics_or_changes_the_log_spec()
-> Result<()> {
    let (_node, address, tls_dir) = tls_operations_node(false).await?;
    let ca = tls_dir.join("ca.crt");
    let anonymous = OperationsTls::new(&ca, None)?;
    let admin = OperationsTls::new(
        &ca,
        Some((&tls_dir.join("client.crt"), &tls_dir.join("client.key"))),
    )?;

    let plain = request(&address, "GET", "/healthz", "").await;
    assert!(
        plain
            .as_ref()
            .is_err_and(|e| format!("{e:?}").contains("Parse(Version)")),
        "plain HTTP is answered with TLS, not HTTP: {plain:?}"
    );
    let (status, body) = request_over(&address, Some(&anonymous), "GET", "/healthz", "").await?;
    assert_eq!(
        status, 200,
        "health is open to anyone, as on Fabric: {body}"
    );
    assert_eq!(
        request_over(&address, Some(&anonymous), "GET", "/version", "")
            .await?
            .0,
        200
    );

    assert_eq!(
        request_over(&address, Some(&anonymous), "GET", "/metrics", "").await?,
        (401, String::new()),
        "metrics need a client certificate"
    );
    assert_eq!(
        request_over(
            &address,
            Some(&anonymous),
            "PUT",
            "/logspec",
            r#"{"spec":"debug"}"#
        )
        .await?,
        (401, String::new()),
        "so does changing the log spec"
    );
    let (status, metrics) = request_over(&address, Some(&admin), "GET", "/metrics", "").await?;
    assert_eq!(status, 200);
    assert!(metrics.contains("ledger_blockchain_height"), "{metrics}");

    let strangers = tempfile::tempdir()?;
    let (cert, key) = stranger_certificate(strangers.path())?;
    let stranger = OperationsTls::new(&ca, Some((&cert, &key)))?;
    let refused = request_over(&address, Some(&stranger), "GET", "/metrics", "").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:?}").contains("UnknownCA")),
        "a certificate from an unknown CA fails the handshake: {refused:?}"
    );

    let status = run_ccvm(&[
        "node",
        "status",
        "--operations",
        &address,
        "--tls-ca",
        &ca.display().to_string(),
    ])
    .await?;
    assert!(status.status.success(), "{status:?}");
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "OK");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_client_authentication_is_required_nothing_answers_without_a_certificate() -> Result<()>
{
    let (_node, address, tls_dir) = tls_operations_node(true).await?;
    let ca = tls_dir.join("ca.crt");
    let anonymous = OperationsTls::new(&ca, None)?;
    let admin = OperationsTls::new(
        &ca,
        Some((&tls_dir.join("client.crt"), &tls_dir.join("client.key"))),
    )?;
    let refused = request_over(&address, Some(&anonymous), "GET", "/healthz", "").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:?}").contains("CertificateRequired")),
        "refused at the handshake: {refused:?}"
    );
    assert_eq!(
        request_over(&address, Some(&admin), "GET", "/healthz", "")
            .await?
            .0,
        200
    );
    Ok(())
}

/// A node started by the `ccvm` command, and where its operations endpoint listens.
struct CommandNode {
    _child: tokio::process::Child,
    _data: tempfile::TempDir,
    operations: String,
}

async fn command_node(spec: &str) -> Result<CommandNode> {
    let data = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["node", "start", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--chaincode-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("CCVM_OPERATIONS__LISTEN_ADDRESS", "127.0.0.1:0")
        .env("FABRIC_LOGGING_SPEC", spec)
        .env_remove("CCVM_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let started = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .context("the node did not start")??
        .context("the node ended")?;
    let operations = started
        .rsplit("operations ")
        .next()
        .context("no operations address")?
        .to_owned();
    Ok(CommandNode {
        _child: child,
        _data: data,
        operations,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_spec_is_read_and_changed_while_the_node_runs() -> Result<()> {
    let node = command_node("grpc=debug:info").await?;
    let address = node.operations.as_str();
    let spec = || async {
        let (status, body) = request(address, "GET", "/logspec", "").await?;
        ensure!(status == 200, "{status} {body}");
        Ok::<_, anyhow::Error>(serde_json::from_str::<Value>(&body)?["spec"].clone())
    };
    assert_eq!(
        spec().await?,
        json!("grpc=debug:info"),
        "Fabric's syntax is taken"
    );

    let (status, _) = request(
        address,
        "PUT",
        "/logspec",
        r#"{"spec":"ccvm.node,ccvm.chaincode=debug:WARNING"}"#,
    )
    .await?;
    assert_eq!(status, 204);
    assert_eq!(
        spec().await?,
        json!("ccvm.chaincode=debug:ccvm.node=debug:warn")
    );

    let (status, body) = request(address, "PUT", "/logspec", r#"{"spec":"grpc=loud"}"#).await?;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body)?),
        (
            400,
            json!({ "error": "invalid logging specification 'grpc=loud': bad segment 'grpc=loud'" })
        )
    );
    assert_eq!(
        spec().await?,
        json!("ccvm.chaincode=debug:ccvm.node=debug:warn"),
        "a refused spec leaves the one in force"
    );
    let (status, body) = request(address, "POST", "/logspec", "").await?;
    assert_eq!(
        (status, body.contains("invalid request method: POST")),
        (400, true)
    );

    let healthy = Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["node", "status", "--operations", address])
        .output()
        .await?;
    assert!(healthy.status.success(), "{healthy:?}");
    assert_eq!(String::from_utf8(healthy.stdout)?.trim(), "OK");
    Ok(())
}

#[tokio::test]
async fn a_bad_log_spec_or_an_unknown_setting_stops_the_node_with_the_reason() -> Result<()> {
    let data = tempfile::tempdir()?;
    let bad_spec = Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["node", "start", "--dev", "--data-dir"])
        .arg(data.path())
        .env("FABRIC_LOGGING_SPEC", "info:=debug")
        .output()
        .await?;
    assert!(!bad_spec.status.success());
    assert!(
        String::from_utf8_lossy(&bad_spec.stderr)
            .contains("no logger specified in segment '=debug'"),
        "{bad_spec:?}"
    );

    let config = data.path().join("ccvm.yaml");
    std::fs::write(&config, "chaincod:\n  execute_timeout_ms: 1000\n")?;
    let typo = Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["node", "start", "--dev", "--config"])
        .arg(&config)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(!typo.status.success());
    assert!(
        stderr.contains("chaincod") && stderr.contains("ccvm.yaml"),
        "the key and the file are named: {stderr}"
    );
    Ok(())
}
