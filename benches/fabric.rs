//! Peer-side endorsement time on a real Fabric peer of the same chaincode work, kv's `bump` (read
//! a key, write it back), done three ways: kv compiled to wasm and run in ccvm's sandbox by ccvm's
//! external builder, the same source native under the builder, and Fabric's Node shim
//! (`tests/node/shim-kv.js`, served as a service). The figure is Fabric's own
//! `endorser_proposal_duration`, read from the peer's operations endpoint before and after, so
//! the client's cost is left out.
//!
//! Run: `cargo bench --bench fabric`. `CCVM_BENCH_FABRIC_VERSION` picks the release (2.5.9 by
//! default) and `CCVM_BENCH_PROPOSALS` the proposals measured per chaincode (200), each sent by
//! Fabric's `peer chaincode query`, one at a time.

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/all/harness.rs"]
mod harness;

#[allow(dead_code, reason = "the bench uses part of the network's driver")]
#[path = "../tests/all/fabric_net.rs"]
mod fabric_net;

use anyhow::Result;
use ccvm::operations_client;
use ccvm::package::Platform;
use fabric_net::{FabricNetwork, free_port, package, served_package};
use harness::{example_binary, fabric_release, node_chaincode_server, wasm_example};
use serde_json::json;

/// Proposals sent to each chaincode before measuring.
const WARM_UP: usize = 10;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The sum (seconds) and count of Fabric's `endorser_proposal_duration` for successful
/// proposals to `chaincode`.
async fn endorsement_time(network: &FabricNetwork, chaincode: &str) -> Result<(f64, u64)> {
    let (_, metrics) =
        operations_client::request(network.setting("OPERATIONS_ADDRESS"), "GET", "/metrics", "")
            .await?;
    let value = |series: &str| {
        metrics
            .lines()
            .filter(|line| line.starts_with(series))
            .filter(|line| line.contains(&format!("chaincode=\"{chaincode}\"")))
            .filter(|line| line.contains("success=\"true\""))
            .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        value("endorser_proposal_duration_sum{"),
        value("endorser_proposal_duration_count{") as u64,
    ))
}

/// Sends one proposal of `args` to `name` with `peer chaincode query`, which must succeed.
async fn propose(network: &FabricNetwork, name: &str, args: &[&str]) -> Result<()> {
    network.queried_bytes(name, args, &[]).await.map(drop)
}

/// The mean peer-side time of `proposals` successful proposals of `args` to `name`, in ms.
async fn mean_endorsement_ms(
    network: &FabricNetwork,
    name: &str,
    args: &[&str],
    proposals: usize,
) -> Result<f64> {
    for _ in 0..WARM_UP {
        propose(network, name, args).await?;
    }
    let (sum_before, count_before) = endorsement_time(network, name).await?;
    for _ in 0..proposals {
        propose(network, name, args).await?;
    }
    let (sum_after, count_after) = endorsement_time(network, name).await?;
    let counted = count_after - count_before;
    anyhow::ensure!(
        counted == proposals as u64,
        "the peer counted {counted} proposals to {name}, not {proposals}"
    );
    Ok((sum_after - sum_before) * 1000.0 / counted as f64)
}

async fn bench() -> Result<()> {
    let version = setting("CCVM_BENCH_FABRIC_VERSION", "2.5.9");
    let proposals: usize = setting("CCVM_BENCH_PROPOSALS", "200").parse()?;
    let Some(release) = fabric_release(&version)? else {
        return Ok(());
    };
    let network = FabricNetwork::up(&release).await?;
    let dir = network.dir.path();
    let (wasm, _) = package(
        dir,
        "kvwasm_1",
        Platform::Wasm,
        "chaincode.wasm",
        wasm_example("kv")?,
    )?;
    let native = std::fs::read(example_binary("kv")?)?;
    let (native, _) = package(dir, "kvnative_1", Platform::Binary, "chaincode", native)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let connection = json!({ "address": address, "dial_timeout": "10s", "tls_required": false });
    let (node, node_id) = served_package(dir, "kvnode_1", &connection)?;
    let _node_shim = node_chaincode_server(&address, &node_id)?;
    network.deploy(&wasm, "kvwasm").await?;
    network.deploy(&native, "kvnative").await?;
    network.deploy(&node, "kvnode").await?;

    let bump: &[&str] = &["bump", "counter"];
    let mut rows = Vec::new();
    for (label, name, args) in [
        ("kv wasm (ccvm builder)", "kvwasm", bump),
        ("kv native (ccvm builder)", "kvnative", bump),
        ("kv on Fabric's Node shim", "kvnode", bump),
    ] {
        let ms = mean_endorsement_ms(&network, name, args, proposals).await?;
        rows.push((label, ms));
    }
    let node_ms = rows.last().map_or(f64::NAN, |(_, ms)| *ms);
    println!(
        "Fabric {version} peer, endorser_proposal_duration, {proposals} proposals each (kv: `bump`)"
    );
    println!("| chaincode | mean (ms) | Node shim / this |");
    println!("| --- | --- | --- |");
    for (label, ms) in rows {
        println!("| {label} | {ms:.3} | {:.2}x |", node_ms / ms);
    }
    Ok(())
}

fn main() -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(bench())
}
