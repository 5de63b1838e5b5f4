//! Chaincode as a service: Fabric's own Node shim serves `protos.Chaincode/Connect` as a server,
//! a `ccaas` package holds only its `connection.json`, and the node dials it once the definition
//! is committed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ccvm::package::{CodeFile, Package, Platform};
use serde_json::json;

use crate::harness::{TestNode, commit_definition, node_chaincode_server};

/// A `ccaas` package whose `connection.json` is `connection`, installed on `node`; its id.
fn install_connection(
    node: &TestNode,
    label: &str,
    connection: &serde_json::Value,
) -> Result<String> {
    let package = Package::build(
        label,
        Platform::Ccaas,
        &[CodeFile::new(
            "connection.json",
            connection.to_string().into_bytes(),
            0o644,
        )],
    )?;
    Ok(node.inner().packages().install(&package)?.id)
}

/// A port nothing listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on `address`.
async fn wait_listening(address: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {address}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_served_elsewhere_is_dialed_by_the_node() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let connection = json!({"address": address, "dial_timeout": "10s", "tls_required": false});
    let package_id = install_connection(&node, "nodekv_1.0", &connection)?;
    let _server = node_chaincode_server(&address, &package_id)?;
    wait_listening(&address).await?;
    commit_definition(&node, "ccaaskv", &package_id, Platform::Ccaas).await?;

    node.invoke("ccaaskv", &["put", "served", "elsewhere"])
        .await?;
    assert_eq!(
        node.query_text("ccaaskv", &["get", "served"]).await?,
        "elsewhere"
    );
    assert_eq!(node.inner().docker().containers_started(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_fails_the_launch_naming_its_address() -> Result<()> {
    let node = TestNode::start().await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let connection = json!({"address": address, "dial_timeout": "2s"});
    let package_id = install_connection(&node, "gone_1.0", &connection)?;
    commit_definition(&node, "gone", &package_id, Platform::Ccaas).await?;
    let failed = node
        .query("gone", &["get", "k"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains(&format!("cannot reach chaincode gone at {address}")),
        "{failed}"
    );
    Ok(())
}
