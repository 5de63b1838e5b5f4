//! What starting wasm system chaincode costs: compiling the `kv` example, loading it compiled
//! from the node's disk cache after a restart, the first launch of the built-in lifecycle
//! chaincode after a node start (which readies it in the background), launching an instance of
//! the cached component to READY through chaincode support (from a task of the node's runtime,
//! as a transaction would launch it) into a fresh pool slot while the others stay resident,
//! relaunching one after its instance ended (the slot it left is reused, as after a trap or a
//! reload), a transaction and a relaunch after the process idled, and the memory of many
//! resident instances.
//!
//! With `CCVM_TEST_DOCKER_HOST` naming an engine it also measures user chaincode in Docker: the
//! first launch of a binary package (building its image) and launches from the cached image.
//!
//! Run: `cargo bench --bench launch`. Prints one table; the figures are this machine's.
//! `CCVM_BENCH_INSTANCES=n` changes how many instances are launched (1000 by default).

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/all/harness.rs"]
mod harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ccvm::chaincode::ExecuteRequest;
use ccvm::container::inproc::CacheOutcome;
use ccvm::node::LIFECYCLE;
use ccvm::proto::protos::ChaincodeInput;
use harness::{
    CHANNEL, TestNode, deploy, deploy_wasm, docker_endpoint, docker_engine, docker_node_with,
    resident_bytes, to_args, wasm_example,
};

/// Instances launched and kept resident by default.
const DEFAULT_INSTANCES: u32 = 1000;
/// Node starts after which the first launch of a built-in system chaincode is measured.
const FIRST_LAUNCHES: usize = 20;
/// Times one chaincode is retired and launched again.
const RELAUNCHES: usize = 300;
/// How long the process idles before each call measured after idling.
const IDLE: Duration = Duration::from_millis(50);
/// Calls measured after idling, of each kind.
const IDLE_ROUNDS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<()> {
    let instances = std::env::var("CCVM_BENCH_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_INSTANCES);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut node = TestNode::start_with(|config| {
            config.inproc.max_instances = instances + 8;
            config.inproc.cache_dir = None;
        })
        .await?;
        let wasm = wasm_example("kv")?;

        let begun = Instant::now();
        let compiled = node.inner().inproc().compile("kv", &wasm)?;
        let compile = begun.elapsed();
        ensure!(compiled.cache_outcome() == CacheOutcome::Compiled);

        let mut first_launches = Vec::with_capacity(FIRST_LAUNCHES);
        for _ in 0..FIRST_LAUNCHES {
            node.restart().await?;
            node.inner().system_chaincodes_prepared().await;
            let support = node.inner().support().clone();
            let first = tokio::spawn(async move {
                let begun = Instant::now();
                support.launch(LIFECYCLE).await?;
                anyhow::Ok(begun.elapsed())
            });
            first_launches.push(first.await??);
        }
        first_launches.sort();

        node.restart().await?;
        let begun = Instant::now();
        let compiled = node.inner().inproc().compile("kv", &wasm)?;
        let load = begun.elapsed();
        ensure!(compiled.cache_outcome() == CacheOutcome::Disk);

        let resident_before = resident_bytes()?;
        let node = Arc::new(node);
        let relaunched = compiled.clone();
        let launching = Arc::clone(&node);
        let launches = tokio::spawn(async move {
            let vm = launching.inner().inproc();
            let support = launching.inner().support();
            let mut launches = Vec::with_capacity(instances as usize);
            for i in 0..instances {
                let name = format!("kv{i}");
                vm.install(&name, compiled.clone());
                let begun = Instant::now();
                support.launch(&name).await?;
                launches.push(begun.elapsed());
                tokio::task::yield_now().await;
            }
            anyhow::Ok(launches)
        });
        let mut launches = launches.await??;
        let resident_after = resident_bytes()?;
        let relaunching = Arc::clone(&node);
        let mut relaunches = tokio::spawn(async move {
            let vm = relaunching.inner().inproc();
            let support = relaunching.inner().support();
            vm.install("relaunched", relaunched);
            support.launch("relaunched").await?;
            let live = vm.instances_live();
            let mut relaunches = Vec::with_capacity(RELAUNCHES);
            for _ in 0..RELAUNCHES {
                support.retire("relaunched");
                relaunching.wait_deregistered("relaunched").await?;
                while vm.instances_live() >= live {
                    tokio::task::yield_now().await;
                }
                let begun = Instant::now();
                support.launch("relaunched").await?;
                relaunches.push(begun.elapsed());
            }
            anyhow::Ok(relaunches)
        })
        .await??;
        relaunches.sort();
        ensure!(node.inner().support().registry().names().len() == instances as usize + 1);
        let (mut idle_txs, mut idle_launches) = after_idle(&node, "relaunched").await?;
        idle_txs.sort();
        idle_launches.sort();
        launches.sort();

        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        println!("\n{:<52} {:>12}", "measure", "value");
        println!(
            "{:<52} {:>9.1} ms",
            "compile kv.wasm (cold)",
            compile.as_secs_f64() * 1e3
        );
        println!(
            "{:<52} {:>9.1} ms",
            "load kv from the disk cache",
            load.as_secs_f64() * 1e3
        );
        println!(
            "{:<52} {:>9.1} µs",
            "first launch of _lifecycle after node start, p50",
            percentile(&first_launches, 0.5).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            "first launch of _lifecycle after node start, max",
            first_launches.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
        );
        println!(
            "{:<52} {:>9.1} µs",
            "launch cached kv to READY in a fresh slot, p50",
            percentile(&launches, 0.5).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            "launch cached kv to READY in a fresh slot, p99",
            percentile(&launches, 0.99).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            "relaunch kv to READY after its instance ended, p50",
            percentile(&relaunches, 0.5).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            "relaunch kv to READY after its instance ended, p99",
            percentile(&relaunches, 0.99).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            format!("kv tx after {} ms idle, p50", IDLE.as_millis()),
            percentile(&idle_txs, 0.5).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} µs",
            format!("relaunch kv after {} ms idle, p50", IDLE.as_millis()),
            percentile(&idle_launches, 0.5).as_secs_f64() * 1e6
        );
        println!(
            "{:<52} {:>9.1} MiB",
            format!("RSS added by {instances} resident instances"),
            mib(resident_after.saturating_sub(resident_before))
        );
        println!(
            "{:<52} {:>9.1} KiB",
            "RSS per instance",
            resident_after.saturating_sub(resident_before) as f64 / 1024.0 / f64::from(instances)
        );
        println!("{:<52} {:>9.1} MiB", "process RSS", mib(resident_after));
        if let Some(endpoint) = docker_endpoint()? {
            docker_launches(endpoint).await?;
        }
        Ok(())
    })
}

/// Runs one `bump` transaction on the running chaincode `name` and returns how long it took.
async fn bump(node: &TestNode, name: &str, round: usize) -> Result<Duration> {
    let support = node.inner().support();
    let tx_id = format!("idle-{round}");
    let simulator = support.ledger().new_simulator(CHANNEL, &tx_id)?;
    let begun = Instant::now();
    support
        .execute(ExecuteRequest {
            channel: CHANNEL.to_owned(),
            chaincode: name.to_owned(),
            tx_id,
            input: ChaincodeInput {
                args: to_args(&["bump", "idle"]),
                ..Default::default()
            },
            signed_proposal: None,
            simulator: Arc::new(Mutex::new(simulator)),
            read_only: false,
        })
        .await?;
    Ok(begun.elapsed())
}

/// A transaction, and a relaunch, each after the process has idled for [`IDLE`]: what a call
/// costs when the caches it needs have gone cold, for comparison with the rows measured in a
/// loop.
async fn after_idle(node: &Arc<TestNode>, name: &str) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let node = Arc::clone(node);
    let name = name.to_owned();
    tokio::spawn(async move {
        let vm = node.inner().inproc();
        let support = node.inner().support();
        let mut txs = Vec::with_capacity(IDLE_ROUNDS);
        let mut launches = Vec::with_capacity(IDLE_ROUNDS);
        for round in 0..IDLE_ROUNDS {
            tokio::time::sleep(IDLE).await;
            txs.push(bump(&node, &name, round).await?);
            let live = vm.instances_live();
            support.retire(&name);
            node.wait_deregistered(&name).await?;
            while vm.instances_live() >= live {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(IDLE).await;
            let begun = Instant::now();
            support.launch(&name).await?;
            launches.push(begun.elapsed());
        }
        anyhow::Ok((txs, launches))
    })
    .await?
}

/// Relaunches of user chaincode from its cached image, measured.
const DOCKER_RELAUNCHES: usize = 5;

/// Times the first launch of a package in Docker (image build included), then launches from the
/// cached image after killing the container; `label` names the rows.
async fn docker_launches_of(
    node: &TestNode,
    endpoint: &str,
    name: &str,
    package_id: &str,
    label: &str,
) -> Result<()> {
    let support = node.inner().support();
    let built_before = node.inner().docker().images_built();
    let begun = Instant::now();
    support.launch(name).await?;
    let first = begun.elapsed();
    ensure!(node.inner().docker().images_built() == built_before + 1);

    let (container, _) = node.inner().docker().names_of(package_id);
    let engine = docker_engine(endpoint).await?;
    let mut relaunches = Vec::with_capacity(DOCKER_RELAUNCHES);
    for _ in 0..DOCKER_RELAUNCHES {
        engine.kill_container(&container, None).await?;
        node.wait_deregistered(name).await?;
        let begun = Instant::now();
        support.launch(name).await?;
        relaunches.push(begun.elapsed());
    }
    ensure!(
        node.inner().docker().images_built() == built_before + 1,
        "relaunches reuse the image"
    );
    relaunches.sort();
    println!(
        "{:<52} {:>9.1} ms",
        format!("{label}: first launch to READY (image build included)"),
        first.as_secs_f64() * 1e3
    );
    println!(
        "{:<52} {:>9.1} ms",
        format!("{label}: launch from the cached image, p50"),
        percentile(&relaunches, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "{:<52} {:>9.1} ms",
        format!("{label}: launch from the cached image, max"),
        relaunches.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}

/// User chaincode in Docker: a static binary package, and the same chaincode as a wasm package
/// under the wasm runner.
async fn docker_launches(endpoint: String) -> Result<()> {
    let node = docker_node_with(endpoint.clone(), |_| {}).await?;
    let binary = deploy(&node, "kv", "launchkv").await?;
    docker_launches_of(&node, &endpoint, "launchkv", &binary, "docker binary").await?;
    let wasm = deploy_wasm(&node, "kv", "launchwasmkv").await?;
    docker_launches_of(&node, &endpoint, "launchwasmkv", &wasm, "docker wasm").await
}
