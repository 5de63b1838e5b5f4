//! The system chaincodes built into ccvm: `_lifecycle` keeps chaincode definitions in world
//! state, `qscc` reads the block store through the `ledger` interface granted to it alone. Both
//! are wasm, compiled on first use and reached by name like any chaincode.

use anyhow::Result;
use ccvm::node::{LIFECYCLE, QSCC, built_in};
use ccvm::proto::common::{Block, BlockchainInfo};
use ccvm::proto::protos::ProcessedTransaction;
use prost::Message;
use serde_json::json;

use crate::harness::{CHANNEL, TestNode, wasm_example};

const PACKAGE_ID: &str =
    "basic_1.0:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn definition(sequence: u64, version: &str) -> String {
    json!({
        "name": "basic",
        "version": version,
        "sequence": sequence,
        "package_id": PACKAGE_ID,
        "platform": "rust",
        "endorsement_policy": "OR('Org1MSP.member')",
    })
    .to_string()
}

/// The installation of the `basic_1.0` package, as `_lifecycle` records it.
fn basic_installed() -> serde_json::Value {
    json!({"package_id": PACKAGE_ID, "label": "basic_1.0", "platform": "rust"})
}

/// The test channel's chain info, read through `qscc`.
async fn chain_info(node: &TestNode) -> Result<BlockchainInfo> {
    let reply = node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    Ok(BlockchainInfo::decode(reply.payload.as_slice())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_installs_approves_and_commits_a_definition() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    node.inner().system_chaincodes_prepared().await;
    assert_eq!(
        node.inner().inproc().instances_started(),
        0,
        "preparing starts no instance"
    );

    let installed = basic_installed();
    node.invoke(LIFECYCLE, &["InstallChaincode", &installed.to_string()])
        .await?;
    let all = node
        .query_json(LIFECYCLE, &["QueryInstalledChaincodes"])
        .await?;
    assert_eq!(all, json!([installed]));

    let early = node
        .invoke(
            LIFECYCLE,
            &["CommitChaincodeDefinition", &definition(1, "1.0")],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{early:#}").contains("has not approved"),
        "{early:#}"
    );

    node.invoke(
        LIFECYCLE,
        &["ApproveChaincodeDefinitionForMyOrg", &definition(1, "1.0")],
    )
    .await?;
    let ready = node
        .query_json(LIFECYCLE, &["CheckCommitReadiness", &definition(1, "1.0")])
        .await?;
    assert_eq!(
        ready["approvals"],
        json!({ node.config().msp_id.clone(): true })
    );
    let other = node
        .query_json(LIFECYCLE, &["CheckCommitReadiness", &definition(1, "2.0")])
        .await?;
    assert_eq!(
        other["approvals"],
        json!({ node.config().msp_id.clone(): false })
    );

    node.invoke(
        LIFECYCLE,
        &["CommitChaincodeDefinition", &definition(1, "1.0")],
    )
    .await?;
    let committed = node
        .query_json(LIFECYCLE, &["QueryChaincodeDefinition", "basic"])
        .await?;
    assert_eq!(committed["version"], "1.0");
    assert_eq!(committed["package_id"], PACKAGE_ID);
    assert_eq!(committed["sequence"], 1);
    assert_eq!(
        committed["approvals"],
        json!({ node.config().msp_id.clone(): true })
    );

    let again = node
        .invoke(
            LIFECYCLE,
            &["CommitChaincodeDefinition", &definition(1, "1.0")],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{again:#}").contains("already committed"),
        "{again:#}"
    );
    let skipped = node
        .invoke(
            LIFECYCLE,
            &["ApproveChaincodeDefinitionForMyOrg", &definition(3, "3.0")],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{skipped:#}").contains("expects sequence 2"),
        "{skipped:#}"
    );
    let unknown = node
        .query(LIFECYCLE, &["QueryChaincodeDefinition", "nothing"])
        .await
        .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("not defined"),
        "{unknown:#}"
    );
    assert_eq!(node.inner().inproc().instances_started(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_refuses_malformed_definitions() -> Result<()> {
    let node = TestNode::start().await?;
    let cases = [
        (
            json!({"name": "bad name", "version": "1", "sequence": 1, "platform": "rust"}),
            "chaincode name",
        ),
        (
            json!({"name": "ok", "version": "1", "sequence": 0, "platform": "rust"}),
            "sequence starts at 1",
        ),
        (
            json!({"name": "ok", "version": "1", "sequence": 1, "platform": "cobol"}),
            "platform",
        ),
        (json!({"name": "ok"}), "bad JSON"),
        (
            json!({"name": "ok", "version": "1", "sequence": 1, "platform": "rust",
                   "endorsement_policy": "AND('Org1MSP.peer'"}),
            "cannot be defined with this endorsement policy: policy \"AND('Org1MSP.peer'\" \
             does not parse",
        ),
        (
            json!({"name": "ok", "version": "1", "sequence": 1, "platform": "rust",
                   "endorsement_policy": "/Channel/Application/Nowhere"}),
            "cannot be defined with this endorsement policy: no policy \
             /Channel/Application/Nowhere on this channel",
        ),
    ];
    for (definition, expected) in cases {
        let error = node
            .invoke(
                LIFECYCLE,
                &[
                    "ApproveChaincodeDefinitionForMyOrg",
                    &definition.to_string(),
                ],
            )
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains(expected),
            "{definition}: {error:#}"
        );
    }
    let bad_id = json!({"package_id": "basic:nothex", "label": "basic", "platform": "rust"});
    let error = node
        .invoke(LIFECYCLE, &["InstallChaincode", &bad_id.to_string()])
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("SHA-256"), "{error:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qscc_reads_chain_info_blocks_and_transactions() -> Result<()> {
    let node = TestNode::start().await?;
    let installed = basic_installed();
    let committed = node
        .invoke(LIFECYCLE, &["InstallChaincode", &installed.to_string()])
        .await?;

    let info = chain_info(&node).await?;
    assert_eq!(info.height, committed.block + 1);
    assert!(!info.current_block_hash.is_empty());

    let number = committed.block.to_string();
    let block = Block::decode(
        node.query(QSCC, &["GetBlockByNumber", CHANNEL, &number])
            .await?
            .payload
            .as_slice(),
    )?;
    assert_eq!(
        block.header.as_ref().map(|h| h.number),
        Some(committed.block)
    );
    let by_tx = Block::decode(
        node.query(QSCC, &["GetBlockByTxID", CHANNEL, &committed.tx_id])
            .await?
            .payload
            .as_slice(),
    )?;
    assert_eq!(by_tx, block);

    let processed = ProcessedTransaction::decode(
        node.query(QSCC, &["GetTransactionByID", CHANNEL, &committed.tx_id])
            .await?
            .payload
            .as_slice(),
    )?;
    assert_eq!(processed.validation_code, 0);
    let envelope = processed.transaction_envelope.expect("an envelope");
    assert!(
        block
            .data
            .expect("block data")
            .data
            .contains(&envelope.encode_to_vec())
    );

    let missing = node
        .query(QSCC, &["GetTransactionByID", CHANNEL, "no-such-tx"])
        .await
        .unwrap_err();
    assert!(
        format!("{missing:#}").contains("has no transaction no-such-tx"),
        "{missing:#}"
    );
    let beyond = node
        .query(QSCC, &["GetBlockByNumber", CHANNEL, "999"])
        .await
        .unwrap_err();
    assert!(
        format!("{beyond:#}").contains("has no block 999"),
        "{beyond:#}"
    );
    let channel = node
        .query(QSCC, &["GetChainInfo", "nochannel"])
        .await
        .unwrap_err();
    assert!(format!("{channel:#}").contains("nochannel"), "{channel:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qscc_follows_the_chain_by_block_hash() -> Result<()> {
    let node = TestNode::start().await?;
    for label in ["first", "second"] {
        let installed = json!({"package_id": format!("{label}:{}", "ab".repeat(32)), "label": label, "platform": "rust"});
        node.invoke(LIFECYCLE, &["InstallChaincode", &installed.to_string()])
            .await?;
    }
    let info = chain_info(&node).await?;
    let newest = node
        .query_bytes(
            QSCC,
            vec![
                b"GetBlockByHash".to_vec(),
                CHANNEL.as_bytes().to_vec(),
                info.current_block_hash.clone(),
            ],
        )
        .await?;
    let newest = Block::decode(newest.payload.as_slice())?;
    let header = newest.header.expect("a header");
    assert_eq!(header.number, info.height - 1);

    let previous_hex = hex::encode(&header.previous_hash);
    assert_eq!(header.previous_hash, info.previous_block_hash);
    let previous = Block::decode(
        node.query(QSCC, &["GetBlockByHash", CHANNEL, &previous_hex])
            .await?
            .payload
            .as_slice(),
    )?;
    assert_eq!(
        previous.header.map(|h| h.number),
        Some(header.number - 1),
        "each block names the one before it by hash"
    );

    let unknown = node
        .query(QSCC, &["GetBlockByHash", CHANNEL, &"00".repeat(32)])
        .await
        .unwrap_err();
    assert!(
        format!("{unknown:#}").contains("has no block with hash 0000"),
        "{unknown:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_granted_chaincode_may_import_the_block_store() -> Result<()> {
    let node = TestNode::start().await?;
    let vm = node.inner().inproc();
    let qscc = built_in(QSCC).expect("qscc is built in");
    let refused = vm.compile("rogue", qscc).unwrap_err();
    assert!(
        refused.to_string().contains("ccvm:chaincode/ledger"),
        "{refused}"
    );
    vm.compile_block_reader("granted", qscc)?;
    let ordinary = wasm_example("kv")?;
    vm.compile_block_reader("kv-granted", &ordinary)?;
    Ok(())
}

/// Shutting a node down stops its background work and waits for it, so a restart finds the
/// ledger free and no engine of an earlier start still holds its instance pool (each pool
/// reserves terabytes of address space; left behind, they run the process out of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_while_readying_its_system_chaincodes_starts_every_time() -> Result<()> {
    let mut node = TestNode::start_with(|config| config.inproc.cache_dir = None).await?;
    let installed = basic_installed();
    let committed = node
        .invoke(LIFECYCLE, &["InstallChaincode", &installed.to_string()])
        .await?;
    for _ in 0..20 {
        node.restart().await?;
    }
    let info = chain_info(&node).await?;
    assert_eq!(info.height, committed.block + 1, "{info:?}");
    Ok(())
}
