//! Hyperledger Fabric's own Node shim (`fabric-shim` and `fabric-contract-api` from npm),
//! unchanged, against a ccvm node.

use anyhow::Result;
use serde_json::json;

use crate::harness::{TestNode, node_chaincode, rust_chaincode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_shim_chaincode_makes_every_stub_call() -> Result<()> {
    let node = TestNode::start().await?;
    let _nodekv = node_chaincode(&node, "shim-kv.js", "nodekv:1.0")?;
    let _rustkv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("nodekv").await?;
    node.wait_registered("kv").await?;

    node.invoke("nodekv", &["put", "a", "1"]).await?;
    assert_eq!(node.query_text("nodekv", &["get", "a"]).await?, "1");
    node.invoke("nodekv", &["del", "a"]).await?;
    assert_eq!(node.query_text("nodekv", &["get", "a"]).await?, "");

    node.invoke("nodekv", &["putmany", "key", "230"]).await?;
    let keys = node.query_json("nodekv", &["range", "key", ""]).await?;
    assert_eq!(keys.as_array().map(Vec::len), Some(230));
    let page = node
        .query_json("nodekv", &["page", "key", "", "100", "key00100"])
        .await?;
    assert_eq!(page["count"], 100);
    assert_eq!(page["keys"][0], "key00100");
    assert_eq!(page["bookmark"], "key00200");

    let first = node.invoke("nodekv", &["put", "h", "one"]).await?;
    let second = node.invoke("nodekv", &["put", "h", "two"]).await?;
    assert_eq!(
        node.query_json("nodekv", &["history", "h"]).await?,
        json!([
            {"tx_id": second.tx_id, "value": "two", "is_delete": false},
            {"tx_id": first.tx_id, "value": "one", "is_delete": false},
        ])
    );

    node.invoke("nodekv", &["cput", "owner", "ann", "car", "red"])
        .await?;
    node.invoke("nodekv", &["cput", "owner", "bob", "car", "blue"])
        .await?;
    assert_eq!(
        node.query_json("nodekv", &["cquery", "owner", "ann"])
            .await?,
        json!(["red"])
    );

    node.invoke("nodekv", &["event", "Ping", "x"]).await?;
    node.invoke("nodekv", &["put", "m", "v"]).await?;
    node.invoke("nodekv", &["setmeta", "m", "VALIDATION_PARAMETER", "ep"])
        .await?;
    assert_eq!(node.query_text("nodekv", &["getmeta", "m"]).await?, "ep");

    node.invoke("nodekv", &["pput", "coll", "p", "private"])
        .await?;
    assert_eq!(
        node.query_text("nodekv", &["pget", "coll", "p"]).await?,
        "private"
    );
    assert_eq!(
        node.query("nodekv", &["phash", "coll", "p"])
            .await?
            .payload
            .len(),
        32
    );

    let creator = node.query_json("nodekv", &["creator"]).await?;
    assert_eq!(creator["mspid"], "DevMSP");
    let info = node.query_json("nodekv", &["txinfo"]).await?;
    assert_eq!(info["channel"], "mychannel");

    node.invoke("kv", &["put", "shared", "from-rust"]).await?;
    assert_eq!(
        node.query_text("nodekv", &["call", "kv", "get", "shared"])
            .await?,
        "from-rust"
    );
    node.invoke("nodekv", &["call", "kv", "put", "written", "by-node"])
        .await?;
    assert_eq!(node.query_text("kv", &["get", "written"]).await?, "by-node");

    let failed = node
        .query("nodekv", &["fail", "node says no"])
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("node says no"), "{failed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_shim_that_throws_costs_only_its_timeout() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.execute_timeout_ms = 1000).await?;
    let _nodekv = node_chaincode(&node, "shim-kv.js", "nodekv:1.0")?;
    node.wait_registered("nodekv").await?;

    let thrown = node.query("nodekv", &["throw"]).await.unwrap_err();
    assert!(thrown.to_string().contains("timed out"), "{thrown}");
    node.invoke("nodekv", &["put", "after", "throw"]).await?;
    assert_eq!(node.query_text("nodekv", &["get", "after"]).await?, "throw");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_contract_api_contract_runs_unchanged() -> Result<()> {
    let node = TestNode::start().await?;
    let _contract = node_chaincode(&node, "contract.js", "nodebasic:1.0")?;
    node.wait_registered("nodebasic").await?;

    node.invoke(
        "nodebasic",
        &["CreateAsset", "asset1", "blue", "5", "Tomoko", "300"],
    )
    .await?;
    let previous = node
        .invoke("nodebasic", &["TransferAsset", "asset1", "Max"])
        .await?;
    assert_eq!(previous.response.payload, b"Tomoko");
    let asset = node
        .query_json("nodebasic", &["ReadAsset", "asset1"])
        .await?;
    assert_eq!(asset["Owner"], "Max");
    let whoami = node.query_json("nodebasic", &["WhoAmI"]).await?;
    assert_eq!(whoami["mspid"], "DevMSP");
    assert!(
        whoami["id"]
            .as_str()
            .is_some_and(|id| id.contains("OU=admin/CN=Admin") && id.contains("CN=ca.DevMSP")),
        "{whoami}"
    );
    assert_eq!(
        node.query_json("nodebasic", &["GetAllAssets"])
            .await?
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let missing = node
        .query("nodebasic", &["ReadAsset", "nope"])
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("the asset nope does not exist"),
        "{missing}"
    );
    Ok(())
}
