//! Mutual TLS on the chaincode listener (on outside dev mode): a chaincode must present a client
//! certificate from the node's chaincode CA and register under the name it was issued to.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use ccvm::node::CHAINCODE_CA_DIR;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::harness::{TestNode, example_binary};

/// A client certificate for `name` signed with the CA key found in the node's data directory,
/// as someone who copied it off a chaincode's container or the node's disk would have.
fn certificate_for(data_dir: &Path, name: &str) -> Result<(String, String)> {
    let ca_dir = data_dir.join(CHAINCODE_CA_DIR);
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key"))?)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "ccvm chaincode CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &Issuer::new(ca, &ca_key))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Runs the native `kv` example with TLS as `name`, optionally with a client certificate, and
/// returns what it printed on stderr once it exits.
async fn run_kv(node: &TestNode, name: &str, identity: Option<(String, String)>) -> Result<String> {
    let files = tempfile::tempdir()?;
    let root = node.config().data_dir.join(CHAINCODE_CA_DIR).join("ca.crt");
    let mut command = tokio::process::Command::new(example_binary("kv")?);
    command
        .args(["--peer.address", &node.chaincode_addr()])
        .env("CORE_CHAINCODE_ID_NAME", name)
        .env("CORE_PEER_TLS_ENABLED", "true")
        .env("CORE_PEER_TLS_ROOTCERT_FILE", root)
        .kill_on_drop(true);
    if let Some((cert, key)) = identity {
        let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        std::fs::write(files.path().join("client.crt"), encode(&cert))?;
        std::fs::write(files.path().join("client.key"), encode(&key))?;
        command
            .env("CORE_TLS_CLIENT_CERT_PATH", files.path().join("client.crt"))
            .env("CORE_TLS_CLIENT_KEY_PATH", files.path().join("client.key"));
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await??;
    assert!(
        !output.status.success(),
        "the chaincode is refused and exits"
    );
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_without_a_client_certificate_is_refused() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let stderr = run_kv(&node, "kv:1.0", None).await?;
    assert!(
        stderr.contains("chaincode registering as kv:1.0 presented no client certificate"),
        "{stderr}"
    );
    assert!(node.inner().support().registry().get("kv").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_issued_to_another_chaincode_is_refused() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let stolen = certificate_for(&node.config().data_dir, "other:1.0")?;
    let stderr = run_kv(&node, "kv:1.0", Some(stolen)).await?;
    assert!(
        stderr.contains(
            "chaincode registering as kv:1.0 presented a certificate issued to other:1.0"
        ),
        "{stderr}"
    );
    let own = certificate_for(&node.config().data_dir, "kv:1.0")?;
    let stderr = run_kv(&node, "kv:1.0", Some(own)).await?;
    assert!(
        stderr.contains("was not launched by this peer"),
        "a right certificate still needs a launch by the peer: {stderr}"
    );
    assert!(node.inner().support().registry().get("kv").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs8_key_under_the_label_fabric_gives_it_still_connects() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let (cert, key) = certificate_for(&node.config().data_dir, "kv:1.0")?;
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let as_fabric_writes_it = key.replace("PRIVATE KEY", "EC PRIVATE KEY");
    let stderr = run_kv(&node, "kv:1.0", Some((cert, as_fabric_writes_it))).await?;
    assert!(
        stderr.contains("chaincode kv:1.0 was not launched by this peer"),
        "the handshake succeeded and the REGISTER was judged: {stderr}"
    );
    Ok(())
}
