//! The system chaincodes built into ccvm: `_lifecycle` keeps chaincode definitions in world
//! state and takes Fabric's lifecycle arguments, `qscc` reads the block store through the
//! `ledger` interface granted to block readers alone. Both are wasm, compiled on first use and
//! reached by name like any chaincode.

use std::collections::BTreeMap;

use anyhow::Result;
use ccvm::client::Committed;
use ccvm::node::{LIFECYCLE, QSCC, built_in};
use ccvm::proto::common::{Block, BlockchainInfo};
use ccvm::proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, CheckCommitReadinessResult,
    QueryApprovedChaincodeDefinitionArgs, QueryApprovedChaincodeDefinitionResult,
    QueryChaincodeDefinitionArgs, QueryChaincodeDefinitionResult, chaincode_source,
};
use ccvm::proto::protos::{CollectionConfigPackage, ProcessedTransaction};
use prost::Message;

use crate::harness::{CHANNEL, LifecycleDefinition, TestNode, wasm_example};

const PACKAGE_ID: &str =
    "basic_1.0:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn definition(sequence: i64, version: &str) -> LifecycleDefinition<'_> {
    LifecycleDefinition {
        version,
        sequence,
        policy: "OR('Org1MSP.member')",
        ..LifecycleDefinition::first("basic", PACKAGE_ID)
    }
}

/// The test channel's chain info, read through `qscc`.
async fn chain_info(node: &TestNode) -> Result<BlockchainInfo> {
    let reply = node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    Ok(BlockchainInfo::decode(reply.payload.as_slice())?)
}

/// Commits a transaction that writes nothing.
async fn commit_a_block(node: &TestNode) -> Result<Committed> {
    node.invoke(LIFECYCLE, &["QueryChaincodeDefinitions"]).await
}

/// Who approved `definition`, as `_lifecycle` answers readiness.
async fn readiness(
    node: &TestNode,
    definition: &LifecycleDefinition<'_>,
) -> Result<BTreeMap<String, bool>> {
    let answer = node.query_bytes(LIFECYCLE, definition.readiness()).await?;
    Ok(
        CheckCommitReadinessResult::decode(answer.payload.as_slice())?
            .approvals
            .into_iter()
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_approves_and_commits_a_definition_with_fabrics_arguments() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    node.inner().system_chaincodes_prepared().await;
    assert_eq!(
        node.inner().inproc().instances_started(),
        0,
        "preparing starts no instance"
    );
    let msp = node.config().msp_id.clone();

    let early = node
        .invoke_bytes(LIFECYCLE, definition(1, "1.0").commit())
        .await
        .unwrap_err();
    assert!(
        format!("{early:#}").contains("chaincode definition not agreed to by this org (DevMSP)"),
        "{early:#}"
    );

    let approved = node
        .invoke_bytes(LIFECYCLE, definition(1, "1.0").approve())
        .await?;
    assert!(
        approved.response.payload.is_empty(),
        "an empty approval result"
    );
    assert_eq!(
        readiness(&node, &definition(1, "1.0")).await?,
        BTreeMap::from([(msp.clone(), true)])
    );
    assert_eq!(
        readiness(&node, &definition(1, "2.0")).await?,
        BTreeMap::from([(msp.clone(), false)])
    );

    node.invoke_bytes(LIFECYCLE, definition(1, "1.0").commit())
        .await?;
    let query = QueryChaincodeDefinitionArgs {
        name: "basic".to_owned(),
    };
    let committed = QueryChaincodeDefinitionResult::decode(
        node.query_bytes(
            LIFECYCLE,
            vec![b"QueryChaincodeDefinition".to_vec(), query.encode_to_vec()],
        )
        .await?
        .payload
        .as_slice(),
    )?;
    assert_eq!((committed.version.as_str(), committed.sequence), ("1.0", 1));
    assert_eq!(
        (
            committed.endorsement_plugin.as_str(),
            committed.validation_plugin.as_str()
        ),
        ("escc", "vscc")
    );
    assert_eq!(
        committed.validation_parameter,
        definition(1, "1.0").validation_parameter()
    );
    assert_eq!(
        committed.approvals,
        [(msp.clone(), true)].into_iter().collect()
    );
    let approved = QueryApprovedChaincodeDefinitionResult::decode(
        node.query_bytes(
            LIFECYCLE,
            vec![
                b"QueryApprovedChaincodeDefinition".to_vec(),
                QueryApprovedChaincodeDefinitionArgs {
                    name: "basic".to_owned(),
                    sequence: 0,
                }
                .encode_to_vec(),
            ],
        )
        .await?
        .payload
        .as_slice(),
    )?;
    assert_eq!(
        approved.source.and_then(|source| source.r#type),
        Some(chaincode_source::Type::LocalPackage(
            chaincode_source::Local {
                package_id: PACKAGE_ID.to_owned()
            }
        )),
        "the latest approval names its package"
    );

    let again = node
        .invoke_bytes(LIFECYCLE, definition(1, "1.0").commit())
        .await
        .unwrap_err();
    assert!(
        format!("{again:#}").contains("already committed"),
        "{again:#}"
    );
    let skipped = node
        .invoke_bytes(LIFECYCLE, definition(3, "3.0").approve())
        .await
        .unwrap_err();
    assert!(
        format!("{skipped:#}").contains("expects sequence 2"),
        "{skipped:#}"
    );
    let nothing = QueryChaincodeDefinitionArgs {
        name: "nothing".to_owned(),
    };
    let unknown = node
        .query_bytes(
            LIFECYCLE,
            vec![
                b"QueryChaincodeDefinition".to_vec(),
                nothing.encode_to_vec(),
            ],
        )
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
async fn lifecycle_refuses_malformed_definitions_naming_why() -> Result<()> {
    let node = TestNode::start().await?;
    let valid = LifecycleDefinition::first("ok", "");
    let mut collections = definition(1, "1.0").approve();
    let mut with_collections =
        ApproveChaincodeDefinitionForMyOrgArgs::decode(collections[1].as_slice())?;
    with_collections.collections = Some(CollectionConfigPackage {
        config: vec![Default::default()],
    });
    collections[1] = with_collections.encode_to_vec();
    let mut garbled_policy = valid.approve();
    let mut garbled = ApproveChaincodeDefinitionForMyOrgArgs::decode(garbled_policy[1].as_slice())?;
    garbled.validation_parameter = vec![0xff, 0xff];
    garbled_policy[1] = garbled.encode_to_vec();
    let cases = [
        (
            LifecycleDefinition {
                name: "bad name",
                ..valid
            }
            .approve(),
            "chaincode name",
        ),
        (
            LifecycleDefinition {
                sequence: 0,
                ..valid
            }
            .approve(),
            "sequence starts at 1",
        ),
        (
            vec![
                b"ApproveChaincodeDefinitionForMyOrg".to_vec(),
                br#"{"name": "ok"}"#.to_vec(),
            ],
            "takes Fabric's lifecycle arguments",
        ),
        (
            collections,
            "private data collections are not defined through ccvm's lifecycle yet",
        ),
        (
            garbled_policy,
            "the endorsement policy (validation parameter) is not an ApplicationPolicy",
        ),
        (
            LifecycleDefinition {
                policy: "/Channel/Application/Nowhere",
                ..valid
            }
            .approve(),
            "cannot be defined with this endorsement policy: no policy \
             /Channel/Application/Nowhere on this channel",
        ),
    ];
    for (args, expected) in cases {
        let error = node.invoke_bytes(LIFECYCLE, args).await.unwrap_err();
        assert!(
            format!("{error:#}").contains(expected),
            "{expected}: {error:#}"
        );
    }
    let on_channel = node
        .query(LIFECYCLE, &["QueryInstalledChaincodes"])
        .await
        .unwrap_err();
    assert!(
        format!("{on_channel:#}")
            .contains("is about the peer's own packages: call it without a channel"),
        "{on_channel:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qscc_reads_chain_info_blocks_and_transactions() -> Result<()> {
    let node = TestNode::start().await?;
    let committed = commit_a_block(&node).await?;

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
    for _ in 0..2 {
        commit_a_block(&node).await?;
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
    let committed = commit_a_block(&node).await?;
    for _ in 0..20 {
        node.restart().await?;
    }
    let info = chain_info(&node).await?;
    assert_eq!(info.height, committed.block + 1, "{info:?}");
    Ok(())
}
