//! Transaction latency and throughput of the same chaincode work several ways: the `kv` example
//! compiled to wasm and run by the inproc VM, the same source as a native process over gRPC
//! loopback, the same source as a static binary in a Docker container and as wasm under the wasm
//! runner in a container (when `CCVM_TEST_DOCKER_HOST` names an engine), and Fabric's Node shim (`tests/node/shim-kv.js`,
//! when its packages are installed).
//! Each transaction reads one key and writes it back (`bump`), then completes; its arguments are
//! built before its clock starts.
//!
//! Modes: `execute` runs the transaction through chaincode support alone (the chaincode runtime:
//! no client, no signatures); `endorse` adds the client's gRPC call to the endorser, which
//! verifies the proposal and signs the endorsement; `endorse+commit` also orders and commits;
//! `gateway submit` does what Fabric's Gateway SDKs do: `Endorse`, sign, `Submit`, and a signed
//! `CommitStatus`; `gateway event` submits the same way a transaction that emits a chaincode
//! event, and measures until a listener on the gateway's `ChaincodeEvents` stream has it.
//!
//! Run: `cargo bench --bench tx`. Prints one table; the figures are this machine's. Each row is
//! measured several times (`CCVM_BENCH_RUNS`, 3 by default) and shows the median run's figures
//! and the range of its throughput, so that one run disturbed by the machine does not stand for
//! the path. `CPU µs/tx` is the CPU time of the whole process (node and clients) during a run,
//! per transaction: steadier than throughput on a busy machine. `tx/block` and
//! `commit µs/block` are the blocks the channel's committer cut during a run and its time to
//! validate and commit one (the node's `ledger_block_processing_time`), for the rows that commit.
//! `CCVM_BENCH_FILTER=text` runs only the rows whose label (`path mode in-flight`) contains the
//! text (`text$`: ends with it, so `"endorse+commit 1$"` is not also the row of 16), and `CCVM_BENCH_TRANSACTIONS=n` changes how many transactions a run measures (for
//! profiling one row). `CCVM_BENCH_INPROC_INSTANCES=n` sets how many inproc instances the
//! chaincode may grow to (`inproc.instances_per_chaincode`). `CCVM_BENCH_CALL="function arg…"`
//! runs that call of `kv` instead of `bump` in the execute, endorse and commit rows (for
//! example `"putbatch w 100"` against `"putmany w 100"`: 100 writes batched or one by one).

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/all/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use ccvm::chaincode::ExecuteRequest;
use ccvm::client::{TxProposal, check_valid, successful};
use ccvm::container::inproc::DEFAULT_INSTANCES_PER_CHAINCODE;
use ccvm::proto::protos::ChaincodeInput;
use harness::{
    CHANNEL, TestNode, deploy, deploy_wasm, docker_endpoint, docker_node_with, node_chaincode,
    rust_chaincode, to_args, wasm_example,
};
use tokio::sync::oneshot;

/// Transactions measured per run by default, after a warm-up of a tenth as many.
const DEFAULT_TRANSACTIONS: usize = 4000;
/// Runs measured per row by default.
const DEFAULT_RUNS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Execute,
    Endorse,
    EndorseAndCommit,
    Gateway,
    GatewayEvent,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Endorse => "endorse",
            Self::EndorseAndCommit => "endorse+commit",
            Self::Gateway => "gateway submit",
            Self::GatewayEvent => "gateway event",
        }
    }
}

/// One measured run of a row: each transaction's latency, and how long all took.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU time the process spent during the run, all threads.
    cpu: Duration,
    /// The blocks the channel's committer cut during the run, and how long it took to
    /// validate and commit them.
    blocks: Committed,
}

/// Blocks committed on the bench's channel, and the time spent on them, from the node's
/// `ledger_block_processing_time` histogram.
#[derive(Clone, Copy, Default)]
struct Committed {
    count: u64,
    seconds: f64,
}

impl Committed {
    fn now() -> Self {
        let histogram = ccvm::metrics::metrics()
            .block_processing_time
            .with_label_values(&[CHANNEL]);
        Self {
            count: histogram.get_sample_count(),
            seconds: histogram.get_sample_sum(),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            count: self.count.saturating_sub(before.count),
            seconds: self.seconds - before.seconds,
        }
    }
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index]
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_transaction(&self) -> Duration {
        self.cpu / u32::try_from(self.latencies.len().max(1)).unwrap_or(u32::MAX)
    }

    /// Transactions a block held, on average; `None` for a run that committed nothing.
    fn transactions_per_block(&self) -> Option<f64> {
        (self.blocks.count > 0).then(|| self.latencies.len() as f64 / self.blocks.count as f64)
    }

    /// The committer's time for a block, on average, in µs.
    fn commit_per_block(&self) -> Option<f64> {
        (self.blocks.count > 0).then(|| self.blocks.seconds * 1e6 / self.blocks.count as f64)
    }
}

/// CPU time the process's threads have run, summed from each thread's scheduler statistics
/// (nanoseconds; a thread that ends between two readings drops out of the later one, which the
/// bench's worker threads do not).
fn process_cpu() -> Duration {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos = threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

struct Row {
    label: String,
    runs: Vec<Run>,
}

impl Row {
    /// The median over the runs of a figure of each run.
    fn median(&self, figure: impl Fn(&Run) -> f64) -> f64 {
        let mut figures: Vec<f64> = self.runs.iter().map(figure).collect();
        figures.sort_by(f64::total_cmp);
        figures[figures.len() / 2]
    }

    /// The median of a figure the runs that committed have, printed; `-` for a row that does
    /// not commit.
    fn median_committed(&self, figure: impl Fn(&Run) -> Option<f64>, decimals: usize) -> String {
        let mut figures: Vec<f64> = self.runs.iter().filter_map(figure).collect();
        figures.sort_by(f64::total_cmp);
        figures
            .get(figures.len() / 2)
            .map_or_else(|| "-".to_owned(), |median| format!("{median:.decimals$}"))
    }

    /// The lowest and highest throughput of the runs.
    fn throughput_range(&self) -> (f64, f64) {
        self.runs
            .iter()
            .map(Run::throughput)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), tx_s| {
                (low.min(tx_s), high.max(tx_s))
            })
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The call `CCVM_BENCH_CALL` names, if any, read once.
static CALL: LazyLock<Option<Vec<Vec<u8>>>> = LazyLock::new(|| {
    let call = std::env::var("CCVM_BENCH_CALL").ok()?;
    let words: Vec<&str> = call.split_whitespace().collect();
    (!words.is_empty()).then(|| to_args(&words))
});

/// The arguments of the transaction on `key`: `bump key`, or the call `CCVM_BENCH_CALL` names.
fn call_args(key: &str) -> Vec<Vec<u8>> {
    CALL.clone().unwrap_or_else(|| to_args(&["bump", key]))
}

/// One transaction, prepared (and, for the endorser, signed) before the clock starts.
enum Prepared {
    Execute { key: String },
    Proposal(TxProposal),
}

fn prepare(node: &TestNode, chaincode: &str, key: String, mode: Mode) -> Prepared {
    let args = match mode {
        Mode::Execute => return Prepared::Execute { key },
        Mode::GatewayEvent => to_args(&["event", "bench", &key]),
        Mode::Endorse | Mode::EndorseAndCommit | Mode::Gateway => call_args(&key),
    };
    Prepared::Proposal(
        node.client
            .proposal(CHANNEL, chaincode, args, HashMap::new()),
    )
}

/// When each transaction's chaincode event reached the listener, by transaction id.
type EventWaiters = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// Listens to `chaincode`'s events on the node's gateway and tells each waiter when its
/// transaction's event arrived; ends with the stream.
async fn listen_for_events(node: &TestNode, chaincode: &str) -> Result<EventWaiters> {
    let waiters: EventWaiters = Arc::default();
    let mut events = node.client.chaincode_events(CHANNEL, chaincode).await?;
    let told = Arc::clone(&waiters);
    tokio::spawn(async move {
        while let Ok(Some(response)) = events.message().await {
            let arrived = Instant::now();
            for event in response.events {
                if let Some(waiter) = told.lock().expect("waiters lock").remove(&event.tx_id) {
                    let _ = waiter.send(arrived);
                }
            }
        }
    });
    Ok(waiters)
}

/// Runs one transaction in `mode` and returns how long it took.
async fn one(
    node: &TestNode,
    chaincode: &str,
    prepared: Prepared,
    mode: Mode,
    events: Option<&EventWaiters>,
) -> Result<Duration> {
    let proposal = match prepared {
        Prepared::Proposal(proposal) => proposal,
        Prepared::Execute { key } => {
            let support = node.inner().support();
            let tx_id = format!("bench-{key}");
            let simulator = support.ledger().new_simulator(CHANNEL, &tx_id)?;
            let args = call_args(&key);
            let begun = Instant::now();
            support
                .execute(ExecuteRequest {
                    channel: CHANNEL.to_owned(),
                    chaincode: chaincode.to_owned(),
                    tx_id,
                    input: ChaincodeInput {
                        args,
                        ..Default::default()
                    },
                    signed_proposal: None,
                    simulator: Arc::new(Mutex::new(simulator)),
                    read_only: false,
                })
                .await?;
            return Ok(begun.elapsed());
        }
    };
    if let Some(events) = events {
        let (told, arrival) = oneshot::channel();
        events
            .lock()
            .expect("waiters lock")
            .insert(proposal.tx_id.clone(), told);
        let begun = Instant::now();
        node.client.submit_through_gateway(&proposal).await?;
        return Ok(arrival.await? - begun);
    }
    let begun = Instant::now();
    if mode == Mode::Gateway {
        node.client.submit_through_gateway(&proposal).await?;
        return Ok(begun.elapsed());
    }
    let endorsed = node.client.endorse(&proposal).await?;
    successful(&endorsed)?;
    if mode == Mode::EndorseAndCommit {
        check_valid(&node.client.submit(&proposal, &endorsed).await?)?;
    }
    Ok(begun.elapsed())
}

/// Runs `count` transactions with `in_flight` clients, each a task of the runtime that sends its
/// next transaction as soon as its last one is done.
async fn measure(
    node: &Arc<TestNode>,
    chaincode: &str,
    count: usize,
    in_flight: usize,
    mode: Mode,
) -> Result<Run> {
    let prepared: Vec<Prepared> = (0..count)
        .map(|i| {
            prepare(
                node,
                chaincode,
                format!("{chaincode}-{}-{in_flight}-{i}", mode.label()),
                mode,
            )
        })
        .collect();
    let queue = Arc::new(Mutex::new(prepared));
    let events = match mode {
        Mode::GatewayEvent => Some(listen_for_events(node, chaincode).await?),
        _ => None,
    };
    let cpu_before = process_cpu();
    let blocks_before = Committed::now();
    let started = Instant::now();
    let clients: Vec<_> = (0..in_flight)
        .map(|_| {
            let node = Arc::clone(node);
            let queue = Arc::clone(&queue);
            let events = events.clone();
            let chaincode = chaincode.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let next = queue.lock().expect("queue lock").pop();
                    let Some(transaction) = next else {
                        return anyhow::Ok(latencies);
                    };
                    let took = one(&node, &chaincode, transaction, mode, events.as_ref()).await?;
                    latencies.push(took);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for client in clients {
        latencies.extend(client.await??);
    }
    Ok(Run {
        latencies,
        elapsed: started.elapsed(),
        cpu: process_cpu().saturating_sub(cpu_before),
        blocks: Committed::now().since(blocks_before),
    })
}

/// Whether a row's label matches `CCVM_BENCH_FILTER`: the label, its runs of spaces read as
/// one, contains the filter; a filter ending in `$` must end the label.
fn label_matches(label: &str, filter: &str) -> bool {
    let label = label.split_whitespace().collect::<Vec<_>>().join(" ");
    match filter.strip_suffix('$') {
        Some(end) => label.ends_with(end),
        None => label.contains(filter),
    }
}

async fn bench_path(
    node: &Arc<TestNode>,
    path: &str,
    chaincode: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let filter = std::env::var("CCVM_BENCH_FILTER").unwrap_or_default();
    let count = env_count("CCVM_BENCH_TRANSACTIONS", DEFAULT_TRANSACTIONS);
    let runs = env_count("CCVM_BENCH_RUNS", DEFAULT_RUNS);
    for mode in [
        Mode::Execute,
        Mode::Endorse,
        Mode::EndorseAndCommit,
        Mode::Gateway,
        Mode::GatewayEvent,
    ] {
        for in_flight in [1, 16] {
            let label = format!("{path:<24} {:<15} {in_flight:>9}", mode.label());
            if !label_matches(&label, &filter) {
                continue;
            }
            measure(node, chaincode, count / 10, in_flight, mode).await?;
            let mut measured = Vec::with_capacity(runs);
            for _ in 0..runs {
                measured.push(measure(node, chaincode, count, in_flight, mode).await?);
            }
            rows.push(Row {
                label,
                runs: measured,
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
        let instances = env_count(
            "CCVM_BENCH_INPROC_INSTANCES",
            DEFAULT_INSTANCES_PER_CHAINCODE,
        );
        let node = Arc::new(
            TestNode::start_with(|config| config.inproc.instances_per_chaincode = instances)
                .await?,
        );
        let mut rows = Vec::new();

        let vm = node.inner().inproc();
        vm.install("wasmkv", vm.compile("wasmkv", &wasm_example("kv")?)?);
        node.query("wasmkv", &["get", "warm-up"]).await?;
        bench_path(&node, "wasm inproc", "wasmkv", &mut rows).await?;
        let grown = node.inner().support().registry().instances("wasmkv");

        let _rust = rust_chaincode(&node, "kv", "rustkv:1.0")?;
        node.wait_registered("rustkv").await?;
        bench_path(&node, "rust sdk / grpc", "rustkv", &mut rows).await?;

        if let Some(endpoint) = docker_endpoint()? {
            let docker_node = Arc::new(docker_node_with(endpoint, |_| {}).await?);
            deploy(&docker_node, "kv", "dockerkv").await?;
            docker_node.query("dockerkv", &["get", "warm-up"]).await?;
            bench_path(&docker_node, "rust sdk / docker", "dockerkv", &mut rows).await?;
            deploy_wasm(&docker_node, "kv", "runnerkv").await?;
            docker_node.query("runnerkv", &["get", "warm-up"]).await?;
            bench_path(&docker_node, "wasm runner / docker", "runnerkv", &mut rows).await?;
        }

        match node_chaincode(&node, "shim-kv.js", "nodekv:1.0") {
            Ok(_node_cc) => {
                node.wait_registered("nodekv").await?;
                bench_path(&node, "node fabric-shim / grpc", "nodekv", &mut rows).await?;
            }
            Err(e) => eprintln!("skipping the Node shim: {e}"),
        }
        println!(
            "\n{:<24} {:<15} {:>9} {:>10} {:>10} {:>10} {:>17} {:>10} {:>9} {:>16}",
            "path",
            "mode",
            "in flight",
            "p50 µs",
            "p99 µs",
            "tx/s",
            "tx/s range",
            "CPU µs/tx",
            "tx/block",
            "commit µs/block"
        );
        for row in &rows {
            let (low, high) = row.throughput_range();
            println!(
                "{} {:>10.1} {:>10.1} {:>10.0} {:>17} {:>10.1} {:>9} {:>16}",
                row.label,
                row.median(|run| run.percentile(0.50).as_secs_f64() * 1e6),
                row.median(|run| run.percentile(0.99).as_secs_f64() * 1e6),
                row.median(Run::throughput),
                format!("{low:.0}–{high:.0}"),
                row.median(|run| run.cpu_per_transaction().as_secs_f64() * 1e6),
                row.median_committed(Run::transactions_per_block, 2),
                row.median_committed(Run::commit_per_block, 0),
            );
        }
        println!("\nwasm inproc instances of the chaincode after its rows: {grown}");
        Ok(())
    })
}
