//! Transaction latency and throughput over gRPC loopback: the Rust `kv` example against the same
//! work in Fabric's Node shim (`tests/node/shim-kv.js`, when its packages are installed). Each
//! transaction reads one key and writes it back (`bump`), then completes.
//!
//! Run: `cargo bench --bench tx`. Prints one table; the figures are this machine's.
//! `CCVM_BENCH_FILTER=text` runs only the rows whose label (`path mode in-flight`) contains the
//! text, and `CCVM_BENCH_TRANSACTIONS=n` changes how many transactions a row measures (for
//! profiling one row).

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/all/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ccvm::client::{check_valid, successful};
use harness::{CHANNEL, TestNode, node_chaincode, rust_chaincode, to_args};
use tokio::sync::Semaphore;

/// Transactions measured per row by default, after a warm-up of a tenth as many.
const DEFAULT_TRANSACTIONS: usize = 4000;

struct Row {
    path: &'static str,
    mode: &'static str,
    in_flight: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Row {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index]
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `count` transactions, `in_flight` at a time; `commit` also submits each for commit.
async fn measure(
    node: &Arc<TestNode>,
    chaincode: &str,
    count: usize,
    in_flight: usize,
    commit: bool,
) -> Result<(Vec<Duration>, Duration)> {
    let proposals: Vec<_> = (0..count)
        .map(|i| {
            let key = format!("bench-{chaincode}-{commit}-{in_flight}-{i}");
            node.client
                .proposal(CHANNEL, chaincode, to_args(&["bump", &key]), HashMap::new())
        })
        .collect();
    let limit = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for proposal in proposals {
        let permit = Arc::clone(&limit).acquire_owned().await?;
        let node = Arc::clone(node);
        tasks.push(tokio::spawn(async move {
            let begun = Instant::now();
            let endorsed = node.client.endorse(&proposal).await?;
            successful(&endorsed)?;
            if commit {
                check_valid(&node.client.submit(&proposal, &endorsed).await?)?;
            }
            drop(permit);
            Ok::<_, anyhow::Error>(begun.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await??);
    }
    Ok((latencies, started.elapsed()))
}

async fn bench_path(
    node: &Arc<TestNode>,
    path: &'static str,
    chaincode: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let filter = std::env::var("CCVM_BENCH_FILTER").unwrap_or_default();
    let count = std::env::var("CCVM_BENCH_TRANSACTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_TRANSACTIONS);
    for (mode, commit) in [("endorse", false), ("endorse+commit", true)] {
        for in_flight in [1, 16] {
            if !format!("{path} {mode} {in_flight}").contains(&filter) {
                continue;
            }
            measure(node, chaincode, count / 10, in_flight, commit).await?;
            let (latencies, elapsed) = measure(node, chaincode, count, in_flight, commit).await?;
            rows.push(Row {
                path,
                mode,
                in_flight,
                latencies,
                elapsed,
            });
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let node = Arc::new(TestNode::start().await?);
        let _rust = rust_chaincode(&node, "kv", "rustkv:1.0")?;
        node.wait_registered("rustkv").await?;
        let mut rows = Vec::new();
        bench_path(&node, "rust sdk / grpc", "rustkv", &mut rows).await?;
        match node_chaincode(&node, "shim-kv.js", "nodekv:1.0") {
            Ok(_node_cc) => {
                node.wait_registered("nodekv").await?;
                bench_path(&node, "node fabric-shim / grpc", "nodekv", &mut rows).await?;
            }
            Err(e) => eprintln!("skipping the Node shim: {e}"),
        }
        println!(
            "\n{:<26} {:<16} {:>9} {:>10} {:>10} {:>10}",
            "path", "mode", "in flight", "p50 µs", "p99 µs", "tx/s"
        );
        for row in &rows {
            println!(
                "{:<26} {:<16} {:>9} {:>10.0} {:>10.0} {:>10.0}",
                row.path,
                row.mode,
                row.in_flight,
                row.percentile(0.50).as_secs_f64() * 1e6,
                row.percentile(0.99).as_secs_f64() * 1e6,
                row.throughput()
            );
        }
        Ok(())
    })
}
