//! The node's resident memory while it commits many transactions: the `kv` example compiled to
//! wasm and run by the inproc VM, 16 clients each endorsing and committing `bump` of a key of
//! its own (so that the world state grows by one key a transaction), as `cargo bench --bench tx`
//! does.
//!
//! Run: `cargo bench --bench memory`. Prints the process's resident set size (`VmRSS`) after a
//! warm-up and then at every tenth of the run, with the growth since the warm-up. The node and
//! its clients share the process; the clients hold at most one transaction each, so what grows
//! is the node's.
//!
//! `CCVM_BENCH_TRANSACTIONS=n` sets how many transactions the run commits (200,000 by default)
//! and `CCVM_LEDGER__CACHE_BYTES=n` the ledger's cache, as it sets a node's.

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/all/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use ccvm::client::{check_valid, successful};
use harness::{CHANNEL, TestNode, resident_bytes, to_args, wasm_example};

/// Transactions committed by default.
const DEFAULT_TRANSACTIONS: usize = 200_000;
/// Transactions committed before the first measurement.
const WARM_UP: usize = 2_000;
/// Clients each with one transaction in flight.
const IN_FLIGHT: usize = 16;
/// Measurements after the warm-up.
const SAMPLES: usize = 10;

/// Commits transactions `from..to`, `IN_FLIGHT` at a time, each `bump` of a key of its own.
async fn commit_range(node: &Arc<TestNode>, from: usize, to: usize) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(from));
    let clients: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let node = Arc::clone(node);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        return anyhow::Ok(());
                    }
                    let key = format!("memory-{i}");
                    let proposal = node.client.proposal(
                        CHANNEL,
                        "wasmkv",
                        to_args(&["bump", &key]),
                        Default::default(),
                    );
                    let endorsed = node.client.endorse(&proposal).await?;
                    successful(&endorsed)?;
                    check_valid(&node.client.submit(&proposal, &endorsed).await?)?;
                }
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<()> {
    let total = std::env::var("CCVM_BENCH_TRANSACTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_TRANSACTIONS);
    let cache_bytes = std::env::var("CCVM_LEDGER__CACHE_BYTES")
        .ok()
        .map(|n| n.parse::<usize>())
        .transpose()
        .context("CCVM_LEDGER__CACHE_BYTES")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let node = Arc::new(
            TestNode::start_with(|config| {
                if let Some(bytes) = cache_bytes {
                    config.ledger.cache_bytes = bytes;
                }
            })
            .await?,
        );
        let cache = node.config().ledger.cache_bytes;
        let vm = node.inner().inproc();
        let component = vm.compile("wasmkv", &wasm_example("kv")?)?;
        let _wasm = vm.start("wasmkv:1.0", &component).await?;
        node.wait_registered("wasmkv").await?;
        commit_range(&node, 0, WARM_UP).await?;
        let start = resident_bytes()?;
        let began = Instant::now();
        println!(
            "\nledger cache {:.0} MiB, {total} transactions, {IN_FLIGHT} in flight",
            mib(cache as u64)
        );
        println!(
            "{:>14} {:>10} {:>12} {:>12} {:>8}",
            "committed tx", "RSS MiB", "growth MiB", "bytes/tx", "tx/s"
        );
        println!(
            "{:>14} {:>10.1} {:>12.1} {:>12} {:>8}",
            0,
            mib(start),
            0.0,
            "-",
            "-"
        );
        let step = total.div_ceil(SAMPLES);
        let mut done = 0;
        while done < total {
            let to = (done + step).min(total);
            commit_range(&node, WARM_UP + done, WARM_UP + to).await?;
            done = to;
            let now = resident_bytes()?;
            let growth = now as f64 - start as f64;
            println!(
                "{:>14} {:>10.1} {:>12.1} {:>12.0} {:>8.0}",
                done,
                mib(now),
                growth / (1024.0 * 1024.0),
                growth / done as f64,
                done as f64 / began.elapsed().as_secs_f64(),
            );
        }
        Ok(())
    })
}
