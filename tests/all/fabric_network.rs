//! ccvm chaincode on a real Fabric network: one etcdraft orderer and one peer of Fabric's own
//! releases (2.5.9 and 3.1.5), on loopback with TLS everywhere, brought up by
//! `tests/fabric/network.sh`. The peer runs ccvm's packages through the external builder that
//! `ccvm builder install` writes; wasm runs in ccvm's sandbox, binaries natively, and chaincode
//! served as a service (`ccaas`) is dialled by the peer. Every call goes through Fabric's `peer`
//! command; committed read/write sets are read back from the peer's own ledger.

use anyhow::{Context, Result, ensure};
use ccvm::operations_client::request;
use ccvm::package::Platform;
use ccvm::proto::Message;
use ccvm::proto::msp::SerializedIdentity;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fabric_net::{
    CHANNEL, COLLECTION, FabricNetwork, ServedTls, free_port, package, serve_wasm, served_package,
};
use crate::harness::{example_binary, fabric_release, node_chaincode_server, wasm_example};

/// The calls whose committed read/write sets must match across the chaincodes, on keys of the
/// calls' own.
const COMPARED_CALLS: [&[&str]; 4] = [
    &["put", "b1", "one"],
    &["bump", "counter"],
    &["range", "", "c"],
    &["cput", "color", "blue", "car", "v"],
];

/// Runs kv's functions on `name` through the peer and checks each answer.
async fn exercise_kv(network: &FabricNetwork, name: &str, other: &str) -> Result<()> {
    network.invoked(name, &["put", "k1", "v1"]).await?;
    network.invoked(name, &["put", "k2", "v2"]).await?;
    network
        .invoked(name, &["cput", "color", "red", "car1", "v3"])
        .await?;
    assert_eq!(network.queried(name, &["get", "k1"]).await?, "v1");
    assert_eq!(
        network
            .queried(name, &["getmulti", "k1", "missing", "k2"])
            .await?,
        r#"["v1","","v2"]"#,
        "multiple reads answer each key, on a peer that offers them or not"
    );
    let plain: Vec<String> =
        serde_json::from_str(&network.queried(name, &["range", "", ""]).await?)?;
    assert!(
        plain.iter().all(|key| !key.starts_with('\0')),
        "a range from the empty key holds simple keys only: {plain:?}"
    );
    assert!(
        plain.contains(&"k1".to_owned()) && plain.contains(&"k2".to_owned()),
        "{plain:?}"
    );
    assert_eq!(
        network.queried(name, &["cquery", "color"]).await?,
        r#"["v3"]"#
    );

    network.invoked(name, &["put", "k1", "v1b"]).await?;
    let history: Vec<Value> =
        serde_json::from_str(&network.queried(name, &["history", "k1"]).await?)?;
    let values: Vec<&str> = history
        .iter()
        .filter_map(|entry| entry["value"].as_str())
        .collect();
    assert_eq!(values.len(), 2, "{history:?}");
    assert!(
        values.contains(&"v1") && values.contains(&"v1b"),
        "{history:?}"
    );

    let evented = network.invoked(name, &["event", "sold", "car1"]).await?;
    let committed = network.transaction(&evented).await?;
    let event = committed.event.context("the event was not committed")?;
    assert_eq!(
        (event.event_name.as_str(), event.payload.as_slice()),
        ("sold", &b"car1"[..])
    );
    assert_eq!(event.chaincode_id, name);

    network
        .invoked(name, &["pput", COLLECTION, "pk", "secret"])
        .await?;
    assert_eq!(
        network.queried(name, &["pget", COLLECTION, "pk"]).await?,
        "secret"
    );

    network.invoked(name, &["put", "gone", "soon"]).await?;
    network.invoked(name, &["del", "gone"]).await?;
    assert_eq!(network.queried(name, &["get", "gone"]).await?, "");
    network.invoked(name, &["putmany", "p", "3"]).await?;
    let page: Value =
        serde_json::from_str(&network.queried(name, &["page", "p", "q", "2", ""]).await?)?;
    assert_eq!(page["keys"], json!(["p00000", "p00001"]), "{page}");
    assert_eq!(page["count"], 2, "{page}");
    network
        .invoked(name, &["putbatch", "wbatch", "250"])
        .await?;
    let batched: Vec<String> = serde_json::from_str(
        &network
            .queried(name, &["range", "wbatch0", "wbatch1"])
            .await?,
    )?;
    assert_eq!(
        (batched.len(), batched.last().map(String::as_str)),
        (250, Some("wbatch00249")),
        "writes held back in a batch all commit, on a peer that takes batches or not"
    );
    network
        .invoked(name, &["setmeta", "k1", "owner", "alice"])
        .await?;
    assert_eq!(
        network.queried(name, &["getmeta", "k1", "owner"]).await?,
        "alice"
    );

    let hash = network
        .queried_bytes(name, &["phash", COLLECTION, "pk"], &[])
        .await?;
    assert_eq!(
        hash,
        Sha256::digest(b"secret").to_vec(),
        "the hash of the private value"
    );
    network.invoked(name, &["pdel", COLLECTION, "pk"]).await?;
    assert_eq!(
        network.queried(name, &["pget", COLLECTION, "pk"]).await?,
        ""
    );

    let transient = network
        .queried_bytes(
            name,
            &["transient", "t"],
            &["--transient", r#"{"t":"dmFsdWU="}"#],
        )
        .await?;
    assert_eq!(transient, b"value", "transient data reaches the chaincode");
    let creator = SerializedIdentity::decode(
        network
            .queried_bytes(name, &["creator"], &[])
            .await?
            .as_slice(),
    )?;
    assert_eq!(creator.mspid, "Org1MSP");
    assert!(String::from_utf8(creator.id_bytes)?.starts_with("-----BEGIN CERTIFICATE-----"));
    let info: Value = serde_json::from_str(&network.queried(name, &["txinfo"]).await?)?;
    assert_eq!(
        (&info["channel"], &info["signed"]),
        (&json!(CHANNEL), &json!(true)),
        "{info}"
    );
    assert!(
        info["tx_id"].as_str().is_some_and(|id| id.len() == 64),
        "{info}"
    );

    assert_eq!(
        network.queried(name, &["call", other, "get", "k2"]).await?,
        "v2",
        "{name} calls {other} on the same channel"
    );
    let failed = network.query(name, &["fail", "on purpose"]).await?;
    assert!(
        failed.as_ref().is_err_and(|e| e.contains("on purpose")),
        "a failing call is answered with its message: {failed:?}"
    );
    Ok(())
}

/// The committed shape of each of [`COMPARED_CALLS`] on `name`.
async fn shapes(network: &FabricNetwork, name: &str) -> Result<Vec<Value>> {
    let mut shapes = Vec::new();
    for call in COMPARED_CALLS {
        let tx_id = network.invoked(name, call).await?;
        let committed = network.transaction(&tx_id).await?;
        assert_eq!(committed.validation_code, 0, "{call:?} on {name}");
        shapes.push(committed.shape(name)?);
    }
    Ok(shapes)
}

/// The Fabric peer's count of chaincode requests of `kind`, over its chaincodes
/// (`chaincode_shim_requests_received` on its operations endpoint).
async fn peer_shim_requests(network: &FabricNetwork, kind: &str) -> Result<f64> {
    let (status, metrics) =
        request(network.setting("OPERATIONS_ADDRESS"), "GET", "/metrics", "").await?;
    ensure!(
        status == 200,
        "the peer's metrics answered {status}: {metrics}"
    );
    let kind = format!(r#"type="{kind}""#);
    Ok(metrics
        .lines()
        .filter(|line| {
            line.starts_with("chaincode_shim_requests_received{") && line.contains(&kind)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn run_on_fabric(version: &str) -> Result<()> {
    let Some(release) = fabric_release(version)? else {
        return Ok(());
    };
    let network = FabricNetwork::up(&release).await?;
    let dir = network.dir.path();

    let kv_wasm = wasm_example("kv")?;
    let wasm_file = dir.join("kv.wasm");
    std::fs::write(&wasm_file, &kv_wasm)?;
    let (wasm_package, _) = package(dir, "kvwasm_1", Platform::Wasm, "chaincode.wasm", kv_wasm)?;
    let native = std::fs::read(example_binary("kv")?)?;
    let (native_package, _) = package(dir, "kvnative_1", Platform::Binary, "chaincode", native)?;
    network.deploy(&wasm_package, "kvwasm").await?;
    network.deploy(&native_package, "kvnative").await?;

    network.invoked("kvnative", &["put", "k2", "v2"]).await?;
    exercise_kv(&network, "kvwasm", "kvnative").await?;
    exercise_kv(&network, "kvnative", "kvwasm").await?;

    // The same kv in wasm served by ccvm with mutual TLS, and Fabric's Node shim, as services.
    let tls = ServedTls::of(&network);
    let served_address = format!("127.0.0.1:{}", free_port()?);
    let (wasm_service, served_id) =
        served_package(dir, "kvserved_1", &tls.connection(&served_address)?)?;
    let _served = serve_wasm(&wasm_file, &served_address, &served_id, &tls).await?;
    let node_address = format!("127.0.0.1:{}", free_port()?);
    let plain = json!({ "address": node_address, "dial_timeout": "10s", "tls_required": false });
    let (node_package, node_id) = served_package(dir, "kvnode_1", &plain)?;
    let _node = node_chaincode_server(&node_address, &node_id)?;
    assert_eq!(network.deploy(&wasm_service, "kvserved").await?, served_id);
    assert_eq!(network.deploy(&node_package, "kvnode").await?, node_id);
    exercise_kv(&network, "kvserved", "kvwasm").await?;
    let batches = peer_shim_requests(&network, "WRITE_BATCH_STATE").await?;
    let offers_batches = !version.starts_with("2.");
    assert_eq!(
        batches,
        if offers_batches { 3.0 } else { 0.0 },
        "each kv's batch of 250 writes is one request to a peer that takes batches (Fabric 3.1), \
         and none to one that does not"
    );

    let node_shim = shapes(&network, "kvnode").await?;
    for name in ["kvwasm", "kvnative", "kvserved"] {
        assert_eq!(
            shapes(&network, name).await?,
            node_shim,
            "{name} commits what Fabric's Node shim commits"
        );
    }

    // A guest that spins or hoards memory fails its own transaction with the sandbox's reason,
    // and the peer goes on serving it and the others.
    let (hostile, _) = package(
        dir,
        "hostile_1",
        Platform::Wasm,
        "chaincode.wasm",
        wasm_example("hostile")?,
    )?;
    network.deploy(&hostile, "hostile").await?;
    for (function, reason) in [
        ("spin", "stopped: transaction deadline exceeded"),
        ("hoard", "stopped: memory limit exceeded"),
        ("recurse", "trapped: stack overflow"),
    ] {
        let refused = network.query("hostile", &[function]).await?;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains(reason)),
            "{function}: expected {reason:?}, got {refused:?}"
        );
    }
    assert_eq!(network.queried("kvwasm", &["get", "k2"]).await?, "v2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccvm_chaincode_runs_on_fabric_2_5_through_the_builder_with_tls() -> Result<()> {
    run_on_fabric("2.5.9").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccvm_chaincode_runs_on_fabric_3_1_through_the_builder_with_tls() -> Result<()> {
    run_on_fabric("3.1.5").await
}
