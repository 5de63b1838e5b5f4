//! Replacing a system chaincode on a running node: transactions in flight finish on the old
//! instance, new ones reach the new one, and nothing else restarts. `kv` plays the old version
//! (`get` answers the stored value) and `hostile` the new one (it answers "well behaved").

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ccvm::node::{NodeError, Origin, QSCC};

use crate::harness::{CHANNEL, TestNode, wasm_example};

const OLD: &str = "blue";
const NEW: &str = "well behaved";

/// Replaces `path` in one step, so a watcher never reads half a file.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes)?;
    std::fs::rename(staged, path)?;
    Ok(())
}

/// A node whose system chaincode directory holds `swap.wasm`, built from `kv`, already holding
/// `color = blue`; each chaincode runs at most `instances` instances side by side.
async fn swap_node(
    watch_interval_ms: u64,
    instances: usize,
) -> Result<(TestNode, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    replace_file(&dir.path().join("swap.wasm"), &wasm_example("kv")?)?;
    let scc_dir = dir.path().to_owned();
    let node = TestNode::start_with(move |config| {
        config.inproc.chaincode_dir = Some(scc_dir);
        config.inproc.watch_interval_ms = watch_interval_ms;
        config.inproc.instances_per_chaincode = instances;
    })
    .await?;
    node.wait_registered("swap").await?;
    node.invoke("swap", &["put", "color", OLD]).await?;
    Ok((node, dir))
}

/// Clients querying at once while a reload swaps the chaincode.
const CLIENTS: usize = 8;

/// Polls `done` until it holds, failing with `what` after a generous deadline.
async fn wait_until(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        ensure!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Reloads `swap` while [`CLIENTS`] clients query it, once the old version serves them with
/// `instances` instances, and checks that each client saw the old version, then only the new
/// one, and that both served. Returns how many instances the VM had started before the clients
/// began.
async fn reload_under_load(node: &Arc<TestNode>, dir: &Path, instances: usize) -> Result<usize> {
    let started_before = node.inner().inproc().instances_started();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (node, stop, served) = (Arc::clone(node), Arc::clone(&stop), Arc::clone(&served));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = node.query_text("swap", &["get", "color"]).await?;
                    served[usize::from(answer == NEW)].fetch_add(1, Ordering::Relaxed);
                    answers.push(answer);
                }
                anyhow::Ok(answers)
            })
        })
        .collect();
    let (old_served, new_served) = (&served[0], &served[1]);
    wait_until("the old version served every client", || {
        old_served.load(Ordering::Relaxed) >= 2 * CLIENTS
    })
    .await?;
    let registry = node.inner().support().registry();
    wait_until("the old version runs its instances", || {
        registry.instances("swap") >= instances
    })
    .await?;
    replace_file(&dir.join("swap.wasm"), &wasm_example("hostile")?)?;
    node.inner().reload_system_chaincode("swap").await?;
    wait_until("the new version served every client", || {
        new_served.load(Ordering::Relaxed) >= 2 * CLIENTS
    })
    .await?;
    stop.store(true, Ordering::Relaxed);

    let (mut old, mut new) = (0, 0);
    for client in clients {
        let answers = client.await??;
        let first_new = answers
            .iter()
            .position(|a| a == NEW)
            .unwrap_or(answers.len());
        ensure!(
            answers[..first_new].iter().all(|a| a == OLD)
                && answers[first_new..].iter().all(|a| a == NEW),
            "each client sees the old version, then only the new one: {answers:?}"
        );
        old += first_new;
        new += answers.len() - first_new;
    }
    assert!(
        old > 0 && new > 0,
        "both versions served: {old} old, {new} new"
    );
    assert_eq!(node.query_text("swap", &["get", "color"]).await?, NEW);
    Ok(started_before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_loses_no_transaction() -> Result<()> {
    let (node, dir) = swap_node(0, 1).await?;
    let node = Arc::new(node);
    let started_before = reload_under_load(&node, dir.path(), 1).await?;
    assert_eq!(
        node.inner().inproc().instances_started(),
        started_before + 1,
        "one new instance, nothing else restarted"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.inner().inproc().instances_live() != 1 {
        ensure!(Instant::now() < deadline, "the old instance never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let listed = node.inner().system_chaincodes();
    let swap = listed
        .iter()
        .find(|s| s.name == "swap")
        .expect("swap is listed");
    assert!(swap.running);
    assert_eq!(swap.origin, Origin::File(dir.path().join("swap.wasm")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_chaincode_grown_under_load_ends_every_old_instance() -> Result<()> {
    let (node, dir) = swap_node(0, 4).await?;
    let node = Arc::new(node);
    reload_under_load(&node, dir.path(), 2).await?;
    let (inproc, registry) = (node.inner().inproc(), node.inner().support().registry());
    let serving = registry.instances("swap");
    assert!(
        (1..=4).contains(&serving),
        "{serving} instances of the new version"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while inproc.instances_live() != registry.instances("swap") {
        ensure!(
            Instant::now() < deadline,
            "old instances kept running: {} live, {} serving",
            inproc.instances_live(),
            registry.instances("swap")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_file_in_the_directory_is_swapped_in() -> Result<()> {
    let (node, dir) = swap_node(50, 1).await?;
    replace_file(&dir.path().join("swap.wasm"), &wasm_example("hostile")?)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if node.query_text("swap", &["get", "color"]).await? == NEW {
            break;
        }
        if Instant::now() > deadline {
            bail!("the new file was never swapped in");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_does_not_compile_keeps_the_old_instance() -> Result<()> {
    let (node, dir) = swap_node(0, 1).await?;
    replace_file(&dir.path().join("swap.wasm"), b"\0asm not a component")?;
    let refused = node
        .inner()
        .reload_system_chaincode("swap")
        .await
        .unwrap_err();
    assert!(matches!(refused, NodeError::Inproc(_)), "{refused}");
    assert_eq!(node.query_text("swap", &["get", "color"]).await?, OLD);

    let unknown = node
        .inner()
        .reload_system_chaincode("nothing")
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, NodeError::UnknownSystemChaincode(_)),
        "{unknown}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_in_system_chaincode_reloads_from_the_binary() -> Result<()> {
    let node = TestNode::start().await?;
    node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    node.inner().reload_system_chaincode(QSCC).await?;
    node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    assert_eq!(node.inner().inproc().instances_started(), 2);
    let qscc = node
        .inner()
        .system_chaincodes()
        .into_iter()
        .find(|s| s.name == QSCC)
        .expect("qscc is listed");
    assert_eq!(qscc.origin, Origin::BuiltIn);
    Ok(())
}
