//! The Rust guest SDK over gRPC: a real node, real chaincode processes built from `examples/`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use ccvm::client::ClientError;
use ccvm::proto::Message;
use ccvm::proto::msp::SerializedIdentity;
use serde_json::json;

use crate::harness::{CHANNEL, TestNode, example_binary, rust_chaincode, to_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_put_get_del_round_trip() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    node.invoke("kv", &["put", "color", "blue"]).await?;
    assert_eq!(node.query_text("kv", &["get", "color"]).await?, "blue");
    node.invoke("kv", &["del", "color"]).await?;
    assert_eq!(node.query_text("kv", &["get", "color"]).await?, "");
    node.invoke("kv", &["put", "a", "1"]).await?;
    node.invoke("kv", &["put", "b", "2"]).await?;
    assert_eq!(
        node.query_json("kv", &["getmulti", "a", "missing", "b"])
            .await?,
        json!(["1", "", "2"])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_span_several_batches_and_paginate_with_bookmarks() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["putmany", "key", "250"]).await?;

    let keys = node.query_json("kv", &["range", "key", ""]).await?;
    let keys = keys.as_array().expect("a list");
    assert_eq!(
        keys.len(),
        250,
        "a range over 250 keys needs three batches of at most 100"
    );
    assert_eq!(keys[0], "key00000");
    assert_eq!(keys[249], "key00249");
    assert_eq!(
        node.query_json("kv", &["range", "key00010", "key00013"])
            .await?,
        json!(["key00010", "key00011", "key00012"])
    );

    let first = node.query_json("kv", &["page", "key", "", "100"]).await?;
    assert_eq!(first["count"], 100);
    assert_eq!(first["keys"][99], "key00099");
    assert_eq!(first["bookmark"], "key00100");
    let last = node
        .query_json("kv", &["page", "key", "", "100", "key00200"])
        .await?;
    assert_eq!(last["count"], 50);
    assert_eq!(last["bookmark"], "");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_every_change_newest_first() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    let first = node.invoke("kv", &["put", "h", "one"]).await?;
    let second = node.invoke("kv", &["put", "h", "two"]).await?;
    let third = node.invoke("kv", &["del", "h"]).await?;

    let history = node.query_json("kv", &["history", "h"]).await?;
    assert_eq!(
        history,
        json!([
            {"tx_id": third.tx_id, "value": "", "is_delete": true, "has_timestamp": true},
            {"tx_id": second.tx_id, "value": "two", "is_delete": false, "has_timestamp": true},
            {"tx_id": first.tx_id, "value": "one", "is_delete": false, "has_timestamp": true},
        ])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoked_chaincode_writes_commit_with_the_caller() -> Result<()> {
    let node = TestNode::start().await?;
    let _caller = rust_chaincode(&node, "kv", "caller:1.0")?;
    let _callee = rust_chaincode(&node, "kv", "callee:1.0")?;
    node.wait_registered("caller").await?;
    node.wait_registered("callee").await?;

    node.invoke("caller", &["call", "callee", "put", "k", "from-caller"])
        .await?;
    assert_eq!(
        node.query_text("callee", &["get", "k"]).await?,
        "from-caller"
    );
    assert_eq!(
        node.query_text("caller", &["get", "k"]).await?,
        "",
        "writes land in the callee's namespace"
    );
    assert_eq!(
        node.query_text("caller", &["call", "callee", "get", "k"])
            .await?,
        "from-caller"
    );

    let failed = node
        .query("caller", &["call", "callee", "fail", "inner"])
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("inner"), "{failed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincode_events_are_committed_with_their_transaction() -> Result<()> {
    use ccvm::proto::common::{Envelope, Payload};
    use ccvm::proto::protos::{
        ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, ProposalResponsePayload,
        Transaction,
    };

    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    let committed = node.invoke("kv", &["event", "Sold", "asset7"]).await?;

    let block = node
        .inner()
        .support()
        .ledger()
        .block(CHANNEL, committed.block)?;
    let envelope = Envelope::decode(block.data.expect("block data").data[0].as_slice())?;
    let payload = Payload::decode(envelope.payload.as_slice())?;
    let transaction = Transaction::decode(payload.data.as_slice())?;
    let action = ChaincodeActionPayload::decode(transaction.actions[0].payload.as_slice())?;
    let response_payload = ProposalResponsePayload::decode(
        action
            .action
            .expect("endorsed action")
            .proposal_response_payload
            .as_slice(),
    )?;
    let chaincode_action = ChaincodeAction::decode(response_payload.extension.as_slice())?;
    let event = ChaincodeEvent::decode(chaincode_action.events.as_slice())?;
    assert_eq!(event.event_name, "Sold");
    assert_eq!(event.payload, b"asset7");
    assert_eq!(event.tx_id, committed.tx_id);
    assert_eq!(event.chaincode_id, "kv");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_and_panics_fail_only_their_transaction() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    match node
        .client
        .invoke(
            CHANNEL,
            "kv",
            to_args(&["fail", "no such asset"]),
            HashMap::new(),
        )
        .await
    {
        Err(ClientError::Chaincode { status, message }) => {
            assert_eq!(status, 500);
            assert_eq!(message, "no such asset");
        }
        other => panic!("expected a chaincode error, got {other:?}"),
    }
    let panicked = node.query("kv", &["panic"]).await.unwrap_err();
    assert!(
        panicked
            .to_string()
            .contains("chaincode panicked: asked to panic"),
        "{panicked}"
    );
    let unknown = node.query("nosuch", &["get", "k"]).await.unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("chaincode nosuch is not running"),
        "{unknown}"
    );

    node.invoke("kv", &["put", "still", "serving"]).await?;
    assert_eq!(node.query_text("kv", &["get", "still"]).await?, "serving");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_transaction_costs_only_its_timeout() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.execute_timeout_ms = 500).await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let hung = node.query("kv", &["hang"]).await.unwrap_err();
    assert!(hung.to_string().contains("timed out after 500ms"), "{hung}");
    node.invoke("kv", &["put", "after", "timeout"]).await?;
    assert_eq!(node.query_text("kv", &["get", "after"]).await?, "timeout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_that_dies_fails_its_transaction_at_once() -> Result<()> {
    let node = TestNode::start().await?;
    let mut kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let hung = node.query("kv", &["hang"]);
    let kill = async {
        node.wait_until_running_tx("kv").await?;
        kv.kill().await
    };
    let (hung, killed) = tokio::join!(hung, kill);
    killed?;
    let error = hung.unwrap_err();
    assert!(error.to_string().contains("disconnected"), "{error}");
    node.wait_deregistered("kv").await?;

    let _again = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "back", "again"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_data_metadata_and_composite_keys() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    node.invoke("kv", &["pput", "secrets", "pin", "1234"])
        .await?;
    assert_eq!(
        node.query_text("kv", &["pget", "secrets", "pin"]).await?,
        "1234"
    );
    let hash = node
        .query("kv", &["phash", "secrets", "pin"])
        .await?
        .payload;
    assert_eq!(hash.len(), 32, "a SHA-256");
    assert_eq!(
        node.query_text("kv", &["get", "pin"]).await?,
        "",
        "private data stays out of public state"
    );
    node.invoke("kv", &["ppurge", "secrets", "pin"]).await?;
    assert_eq!(
        node.query_text("kv", &["pget", "secrets", "pin"]).await?,
        ""
    );

    node.invoke("kv", &["put", "doc", "v"]).await?;
    node.invoke("kv", &["setmeta", "doc", "owner", "alice"])
        .await?;
    assert_eq!(
        node.query_text("kv", &["getmeta", "doc", "owner"]).await?,
        "alice"
    );
    let policy = ccvm::policy::SignaturePolicy::parse("OR('DevMSP.peer')")?.to_envelope();
    node.invoke("kv", &["setpolicy", "doc", &hex::encode(&policy)])
        .await?;
    node.invoke("kv", &["put", "doc", "v2"]).await?;
    assert_eq!(
        node.query("kv", &["getmeta", "doc", "VALIDATION_PARAMETER"])
            .await?
            .payload,
        policy,
        "a value write keeps metadata"
    );
    assert_eq!(
        node.query_text("kv", &["getmeta", "doc", "owner"]).await?,
        "alice"
    );

    node.invoke("kv", &["cput", "color", "blue", "1", "first"])
        .await?;
    node.invoke("kv", &["cput", "color", "blue", "2", "second"])
        .await?;
    node.invoke("kv", &["cput", "color", "red", "1", "third"])
        .await?;
    assert_eq!(
        node.query_json("kv", &["cquery", "color", "blue"]).await?,
        json!(["first", "second"])
    );
    assert_eq!(
        node.query_json("kv", &["cquery", "color"]).await?,
        json!(["first", "second", "third"])
    );

    let rich = node.query("kv", &["richquery", "{}"]).await.unwrap_err();
    assert!(
        rich.to_string()
            .contains("not supported by this state store"),
        "{rich}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stub_sees_creator_transient_data_and_timestamp() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let creator =
        SerializedIdentity::decode(node.query("kv", &["creator"]).await?.payload.as_slice())?;
    assert_eq!(creator.mspid, "DevMSP");
    assert!(String::from_utf8(creator.id_bytes)?.starts_with("-----BEGIN CERTIFICATE-----"));

    let transient = HashMap::from([("secret".to_owned(), b"s3cret".to_vec())]);
    let response = node
        .client
        .query(CHANNEL, "kv", to_args(&["transient", "secret"]), transient)
        .await?;
    assert_eq!(response.payload, b"s3cret");

    let info = node.query_json("kv", &["txinfo"]).await?;
    assert_eq!(info["channel"], CHANNEL);
    assert_eq!(info["signed"], true);
    assert_eq!(info["tx_id"].as_str().map(str::len), Some(64));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let stamp = info["timestamp"].as_u64().expect("a timestamp");
    assert!(
        now.abs_diff(stamp) < 600,
        "timestamp {stamp} is the proposal's, now {now}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_transfer_example_runs_its_workflow() -> Result<()> {
    let node = TestNode::start().await?;
    let _basic = rust_chaincode(&node, "asset-transfer", "basic:1.0")?;
    node.wait_registered("basic").await?;

    node.invoke("basic", &["InitLedger"]).await?;
    node.invoke(
        "basic",
        &["CreateAsset", "asset7", "purple", "3", "Ana", "900"],
    )
    .await?;
    let previous = node
        .invoke("basic", &["TransferAsset", "asset7", "Bo"])
        .await?;
    assert_eq!(previous.response.payload, b"Ana");
    let asset = node.query_json("basic", &["ReadAsset", "asset7"]).await?;
    assert_eq!(
        asset,
        json!({"ID": "asset7", "Color": "purple", "Size": 3, "Owner": "Bo", "AppraisedValue": 900})
    );
    let all = node.query_json("basic", &["GetAllAssets"]).await?;
    assert_eq!(all.as_array().map(Vec::len), Some(7));
    let duplicate = node
        .invoke("basic", &["CreateAsset", "asset7", "x", "1", "y", "1"])
        .await
        .unwrap_err();
    assert!(
        duplicate
            .to_string()
            .contains("the asset asset7 already exists"),
        "{duplicate}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaincodes_not_launched_by_the_peer_are_refused_outside_dev_mode() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.dev_mode = false;
        config.chaincode.tls = Some(false);
    })
    .await?;
    let output = tokio::process::Command::new(example_binary("kv")?)
        .args(["--peer.address", &node.chaincode_addr()])
        .env("CORE_CHAINCODE_ID_NAME", "kv:1.0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the chaincode exits when its registration is refused"
    );
    assert!(
        stderr.contains("chaincode kv:1.0 was not launched by this peer"),
        "refused for not being launched, not for anything else: {stderr}"
    );
    assert!(node.inner().support().registry().get("kv").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_from_the_empty_key_holds_simple_keys_only_natively_and_in_wasm() -> Result<()> {
    let node = TestNode::start().await?;
    let _native = rust_chaincode(&node, "kv", "kv:1.0")?;
    let vm = node.inner().inproc();
    let _wasm = vm
        .start(
            "wasmkv:1.0",
            &vm.compile("wasmkv", &crate::harness::wasm_example("kv")?)?,
        )
        .await?;
    for chaincode in ["kv", "wasmkv"] {
        node.wait_registered(chaincode).await?;
        node.invoke(chaincode, &["put", "apple", "1"]).await?;
        node.invoke(chaincode, &["cput", "owner", "ann", "car", "red"])
            .await?;
        assert_eq!(
            node.query_json(chaincode, &["range", "", ""]).await?,
            json!(["apple"]),
            "{chaincode}: the composite key is not a simple key"
        );
        let refused = node
            .query(chaincode, &["range", "\u{0}owner", ""])
            .await
            .expect_err("a start in the composite key namespace");
        assert!(
            refused
                .to_string()
                .contains("contains a null character which is not allowed"),
            "{chaincode}: {refused}"
        );
    }
    Ok(())
}
