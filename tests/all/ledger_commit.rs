//! Commit on a real node: MVCC validation, duplicate transactions, durability across restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ccvm::client::{Client, successful};
use ccvm::msp::Identity;
use ccvm::node::{LIFECYCLE, QSCC, dev_organization};
use ccvm::proto::Message;
use ccvm::proto::common::BlockchainInfo;
use ccvm::proto::protos::{ProcessedTransaction, TxValidationCode};

use crate::harness::{CHANNEL, TestNode, rust_chaincode, to_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_read_changed_is_committed_invalid() -> Result<()> {
    let node = TestNode::start().await?;
    let _basic = rust_chaincode(&node, "asset-transfer", "basic:1.0")?;
    node.wait_registered("basic").await?;
    node.invoke("basic", &["CreateAsset", "car", "red", "1", "Ann", "10"])
        .await?;

    let to_bob = node.client.proposal(
        CHANNEL,
        "basic",
        to_args(&["TransferAsset", "car", "Bob"]),
        HashMap::new(),
    );
    let to_cid = node.client.proposal(
        CHANNEL,
        "basic",
        to_args(&["TransferAsset", "car", "Cid"]),
        HashMap::new(),
    );
    let bob_endorsed = node.client.endorse(&to_bob).await?;
    let cid_endorsed = node.client.endorse(&to_cid).await?;
    successful(&bob_endorsed)?;
    successful(&cid_endorsed)?;

    let first = node.client.submit(&to_bob, &bob_endorsed).await?;
    let second = node.client.submit(&to_cid, &cid_endorsed).await?;
    assert_eq!(first.validation_code, TxValidationCode::Valid as i32);
    assert_eq!(
        second.validation_code,
        TxValidationCode::MvccReadConflict as i32
    );
    let asset = node.query_json("basic", &["ReadAsset", "car"]).await?;
    assert_eq!(
        asset["Owner"], "Bob",
        "the invalid transaction wrote nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_gained_a_key_is_a_phantom_read() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["putmany", "p", "3"]).await?;

    let ranged = node
        .client
        .proposal(CHANNEL, "kv", to_args(&["range", "p", "q"]), HashMap::new());
    let endorsed = node.client.endorse(&ranged).await?;
    node.invoke("kv", &["put", "p00001x", "new"]).await?;
    let outcome = node.client.submit(&ranged, &endorsed).await?;
    assert_eq!(
        outcome.validation_code,
        TxValidationCode::PhantomReadConflict as i32
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_submitted_twice_commits_once() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let proposal = node.client.proposal(
        CHANNEL,
        "kv",
        to_args(&["put", "once", "1"]),
        HashMap::new(),
    );
    let endorsed = node.client.endorse(&proposal).await?;
    let first = node.client.submit(&proposal, &endorsed).await?;
    let second = node.client.submit(&proposal, &endorsed).await?;
    assert_eq!(first.validation_code, TxValidationCode::Valid as i32);
    assert_eq!(
        second.validation_code,
        TxValidationCode::DuplicateTxid as i32
    );
    assert_ne!(first.block_number, second.block_number);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_proposal_cannot_run_twice_at_once() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.execute_timeout_ms = 2000).await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let proposal = node
        .client
        .proposal(CHANNEL, "kv", to_args(&["hang"]), HashMap::new());
    let first = node.client.endorse(&proposal);
    let second = async {
        node.wait_until_running_tx("kv").await?;
        Ok::<_, anyhow::Error>(node.client.endorse(&proposal).await?)
    };
    let (first, second) = tokio::join!(first, second);
    let second = successful(&second?).unwrap_err();
    assert!(
        second
            .to_string()
            .contains("transaction is already running"),
        "{second}"
    );
    let first = successful(&first?).unwrap_err();
    assert!(first.to_string().contains("timed out"), "{first}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_state_and_blocks_survive_a_restart() -> Result<()> {
    let mut node = TestNode::start().await?;
    let kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "durable", "yes"]).await?;
    let last = node.invoke("kv", &["put", "durable", "still"]).await?;
    drop(kv);

    node.restart().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    assert_eq!(node.query_text("kv", &["get", "durable"]).await?, "still");
    let info = node.inner().support().ledger().chain_info(CHANNEL)?;
    assert_eq!(info.height, last.block + 1);
    let history = node.query_json("kv", &["history", "durable"]).await?;
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_are_refused_by_endorser_and_committer() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let mut forged = node.client.proposal(
        CHANNEL,
        "kv",
        to_args(&["put", "k", "forged"]),
        HashMap::new(),
    );
    forged.signed.signature[10] ^= 0xff;
    let refused = successful(&node.client.endorse(&forged).await?).unwrap_err();
    assert!(refused.to_string().contains("access denied"), "{refused}");

    let proposal = node
        .client
        .proposal(CHANNEL, "kv", to_args(&["put", "k", "v"]), HashMap::new());
    let endorsed = node.client.endorse(&proposal).await?;
    let mut envelope = node.client.transaction_envelope(&proposal, &endorsed);
    envelope.signature.reverse();
    let refused = node.client.submit_envelope(envelope).await.unwrap_err();
    assert!(refused.to_string().contains("access denied"), "{refused}");
    assert_eq!(
        node.query_text("kv", &["get", "k"]).await?,
        "",
        "nothing was committed"
    );
    Ok(())
}

/// Endorses a put of `key` and returns the proposal with its endorsement, ready to submit.
async fn endorsed_put(
    node: &TestNode,
    key: &str,
    value: &str,
) -> Result<(
    ccvm::client::TxProposal,
    ccvm::proto::protos::ProposalResponse,
)> {
    let proposal =
        node.client
            .proposal(CHANNEL, "kv", to_args(&["put", key, value]), HashMap::new());
    let endorsed = node.client.endorse(&proposal).await?;
    successful(&endorsed)?;
    Ok((proposal, endorsed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_timeout_gathers_transactions_into_one_block_up_to_its_count() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.commit.batch_timeout_ms = 2000;
        config.commit.max_block_txs = 3;
    })
    .await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let mut endorsed = Vec::new();
    for n in 0..3 {
        endorsed.push(endorsed_put(&node, &format!("k{n}"), "v").await?);
    }
    let (first, rest) = endorsed.split_first().context("three endorsements")?;
    let submit_first = node.client.submit(&first.0, &first.1);
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        futures_util::future::join_all(
            rest.iter()
                .map(|(proposal, response)| node.client.submit(proposal, response)),
        )
        .await
    };
    let (first, rest) = tokio::join!(submit_first, later);
    let mut blocks = vec![first?.block_number];
    for submitted in rest {
        blocks.push(submitted?.block_number);
    }
    assert_eq!(
        blocks,
        [1, 1, 1],
        "the first transaction waited for the two sent 300 ms later"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_no_more_bytes_than_its_limit() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.commit.batch_timeout_ms = 2000;
        config.commit.max_block_bytes = 1;
    })
    .await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let first = endorsed_put(&node, "a", "v").await?;
    let second = endorsed_put(&node, "b", "v").await?;
    let (one, two) = tokio::join!(
        node.client.submit(&first.0, &first.1),
        node.client.submit(&second.0, &second.1)
    );
    let mut blocks = [one?.block_number, two?.block_number];
    blocks.sort_unstable();
    assert_eq!(
        blocks,
        [1, 2],
        "each transaction passes the byte limit alone"
    );
    Ok(())
}

/// A node started by the `ccvm` command on `data`, and its peer address.
async fn spawned_node(data: &std::path::Path) -> Result<(tokio::process::Child, String)> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["node", "start", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--chaincode-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("CCVM_OPERATIONS__LISTEN_ADDRESS", "127.0.0.1:0")
        .env_remove("CCVM_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let started = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .context("the node did not start")??
        .context("the node ended")?;
    let peer = started
        .split_whitespace()
        .skip_while(|word| *word != "peer")
        .nth(1)
        .context("no peer address")?
        .to_owned();
    Ok((child, peer))
}

/// Every transaction the node acknowledged as committed is in its ledger after the node is
/// killed (`SIGKILL`) while transactions are being committed, and the node starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_transaction_survives_a_kill_during_commits() -> Result<()> {
    let data = tempfile::tempdir()?;
    let (mut node, peer) = spawned_node(data.path()).await?;
    let admin = dev_organization(data.path()).admin_msp_dir();
    let client = Arc::new(Client::connect(&peer, Identity::load(&admin, "DevMSP")?).await?);
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (client, acknowledged) = (Arc::clone(&client), Arc::clone(&acknowledged));
        loops.push(tokio::spawn(async move {
            let query = vec![b"QueryChaincodeDefinitions".to_vec()];
            while let Ok(committed) = client
                .invoke(CHANNEL, LIFECYCLE, query.clone(), HashMap::new())
                .await
            {
                lock(&acknowledged).push((committed.tx_id, committed.block));
            }
        }));
    }
    while lock(&acknowledged).len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.start_kill()?;
    node.wait().await?;
    for running in loops {
        running.await?;
    }
    let acknowledged = std::mem::take(&mut *lock(&acknowledged));

    let (_restarted, peer) = spawned_node(data.path()).await?;
    let client = Client::connect(&peer, Identity::load(&admin, "DevMSP")?).await?;
    let highest = acknowledged
        .iter()
        .map(|(_, block)| *block)
        .max()
        .unwrap_or(0);
    let info = BlockchainInfo::decode(
        client
            .query(
                CHANNEL,
                QSCC,
                to_args(&["GetChainInfo", CHANNEL]),
                HashMap::new(),
            )
            .await?
            .payload
            .as_slice(),
    )?;
    assert!(
        info.height > highest,
        "height {} after block {highest}",
        info.height
    );
    for (tx_id, block) in &acknowledged {
        let found = client
            .query(
                CHANNEL,
                QSCC,
                to_args(&["GetTransactionByID", CHANNEL, tx_id]),
                HashMap::new(),
            )
            .await
            .with_context(|| format!("transaction {tx_id} of block {block} is lost"))?;
        let processed = ProcessedTransaction::decode(found.payload.as_slice())?;
        assert_eq!(
            processed.validation_code,
            TxValidationCode::Valid as i32,
            "{tx_id}"
        );
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
