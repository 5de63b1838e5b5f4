//! Chaincode as a service: Fabric's own Node shim serves `protos.Chaincode/Connect` as a server,
//! a `ccaas` package holds only its `connection.json`, and the node dials it once the definition
//! is committed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::harness::{
    LifecycleDefinition, TestNode, ccaas_package, commit_definition, node_chaincode_server,
};

/// A `ccaas` package whose `connection.json` is `connection`, installed on `node`; its id.
fn install_connection(
    node: &TestNode,
    label: &str,
    connection: &serde_json::Value,
) -> Result<String> {
    let package = ccaas_package(label, connection)?;
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
    commit_definition(&node, "ccaaskv", &package_id).await?;

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
    commit_definition(&node, "gone", &package_id).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_still_starting_is_dialed_again_until_it_listens() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let connection = json!({"address": address, "dial_timeout": "10s", "tls_required": false});
    let package_id = install_connection(&node, "kv_1.0", &connection)?;
    commit_definition(&node, "latekv", &package_id).await?;
    crate::harness::example_binary("kv")?;
    // The launch starts while nothing listens; the service comes up half a second later.
    let (invoked, server) = tokio::join!(node.invoke("latekv", &["put", "late", "yes"]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        served_kv(&[("CHAINCODE_SERVER_ADDRESS", &address)]).await
    });
    let _server = server?;
    invoked?;
    assert_eq!(node.query_text("latekv", &["get", "late"]).await?, "yes");
    Ok(())
}

/// Starts the native `kv` example as a service on a free port, with the extra environment
/// `env`; returns it and the address it printed.
async fn served_kv(env: &[(&str, &str)]) -> Result<(tokio::process::Child, String)> {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut server = tokio::process::Command::new(crate::harness::example_binary("kv")?)
        .env("CHAINCODE_SERVER_ADDRESS", "127.0.0.1:0")
        .env("CHAINCODE_ID", "kv_1.0")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = server.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(address) = line.strip_prefix("serving chaincode kv_1.0 on ") {
                return Ok(address.to_owned());
            }
        }
        bail!("the server ended without saying where it listens")
    })
    .await??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((server, announced))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_chaincode_served_as_a_service_takes_several_peers_at_once() -> Result<()> {
    let (_server, address) = served_kv(&[]).await?;
    let connection = json!({"address": address, "dial_timeout": "10s", "tls_required": false});
    let first = TestNode::start_with(|config| config.dev_mode = false).await?;
    let second = TestNode::start_with(|config| config.dev_mode = false).await?;
    for (node, value) in [(&first, "one"), (&second, "two")] {
        let package_id = install_connection(node, "kv_1.0", &connection)?;
        commit_definition(node, "servedkv", &package_id).await?;
        node.invoke("servedkv", &["put", "who", value]).await?;
    }
    assert_eq!(first.query_text("servedkv", &["get", "who"]).await?, "one");
    assert_eq!(second.query_text("servedkv", &["get", "who"]).await?, "two");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_chaincode_served_over_mutual_tls_is_dialled_with_its_root_and_a_client_certificate()
-> Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.clone().self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let issue = |names: Vec<String>| -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = issue(vec!["127.0.0.1".to_owned()])?;
    let (client_cert, client_key) = issue(vec!["peer".to_owned()])?;
    let files = tempfile::tempdir()?;
    let write = |name: &str, pem: &str| -> Result<String> {
        let path = files.path().join(name);
        std::fs::write(&path, pem)?;
        Ok(path.display().to_string())
    };
    let (key_path, cert_path, ca_path) = (
        write("server.key", &server_key)?,
        write("server.crt", &server_cert)?,
        write("ca.crt", &ca.pem())?,
    );
    let (_server, address) = served_kv(&[
        ("CHAINCODE_TLS_DISABLED", "false"),
        ("CHAINCODE_TLS_KEY", &key_path),
        ("CHAINCODE_TLS_CERT", &cert_path),
        ("CHAINCODE_CLIENT_CA_CERT", &ca_path),
    ])
    .await?;
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;

    let without_client_cert = json!({
        "address": address, "dial_timeout": "10s", "tls_required": true, "root_cert": ca.pem(),
    });
    let package_id = install_connection(&node, "kv_0.9", &without_client_cert)?;
    commit_definition(&node, "refused", &package_id).await?;
    let refused = node.query("refused", &["get", "k"]).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("could not be launched: chaincode refused refused the connection"),
        "a peer without a client certificate is refused: {refused}"
    );

    let with_client_cert = json!({
        "address": address, "dial_timeout": "10s", "tls_required": true, "root_cert": ca.pem(),
        "client_auth_required": true, "client_cert": client_cert, "client_key": client_key,
    });
    let package_id = install_connection(&node, "kv_1.0", &with_client_cert)?;
    commit_definition(&node, "tlskv", &package_id).await?;
    node.invoke("tlskv", &["put", "over", "tls"]).await?;
    assert_eq!(node.query_text("tlskv", &["get", "over"]).await?, "tls");
    Ok(())
}

/// Committing a new definition that names another service retires the connection to the old
/// one: the next call dials the service the new definition names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_definition_moves_calls_to_the_new_service() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let mut servers = Vec::new();
    let mut packages = Vec::new();
    for version in ["1.0", "2.0"] {
        let address = format!("127.0.0.1:{}", free_port()?);
        let connection = json!({"address": address, "dial_timeout": "10s"});
        let package_id = install_connection(&node, &format!("upkv_{version}"), &connection)?;
        servers.push(node_chaincode_server(&address, &package_id)?);
        wait_listening(&address).await?;
        packages.push(package_id);
    }
    commit_definition(&node, "upkv", &packages[0]).await?;
    node.invoke("upkv", &["put", "k", "one"]).await?;
    assert!(
        node.inner()
            .support()
            .registry()
            .names()
            .contains(&"upkv:1.0".to_owned())
    );

    let upgrade = LifecycleDefinition {
        version: "2.0",
        sequence: 2,
        ..LifecycleDefinition::first("upkv", &packages[1])
    };
    node.invoke_bytes(ccvm::node::LIFECYCLE, upgrade.approve())
        .await?;
    let again = node
        .invoke_bytes(ccvm::node::LIFECYCLE, upgrade.approve())
        .await
        .unwrap_err();
    assert!(
        again
            .to_string()
            .contains("attempted to redefine uncommitted sequence (2) for namespace upkv with unchanged content"),
        "{again}"
    );
    node.invoke_bytes(ccvm::node::LIFECYCLE, upgrade.commit())
        .await?;
    node.wait_deregistered("upkv:1.0").await?;
    assert_eq!(node.query_text("upkv", &["get", "k"]).await?, "one");
    let names = node.inner().support().registry().names();
    assert!(
        names.contains(&"upkv:2.0".to_owned()) && !names.contains(&"upkv:1.0".to_owned()),
        "{names:?}"
    );
    Ok(())
}
