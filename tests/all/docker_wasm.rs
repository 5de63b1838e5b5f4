//! `wasm` packages in Docker: the component runs in its container under ccvm's wasm runner, in
//! the same sandbox as the peer's own wasm guests, and dials the node back over mutual TLS.

use anyhow::Result;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use ccvm::package::{CodeFile, Package, Platform};
use ccvm_sandbox::WasmLimits;
use ccvm_wasm_runner::Sandbox;

use crate::harness::{
    commit_definition, deploy_wasm, docker_endpoint, docker_engine, docker_node_with, run_ccvm,
    wasm_example,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_package_runs_in_a_container_under_the_runner() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint.clone(), |_| {}).await?;
    let package_id = deploy_wasm(&node, "kv", "wasmkv").await?;

    node.invoke("wasmkv", &["put", "color", "teal"]).await?;
    assert_eq!(node.query_text("wasmkv", &["get", "color"]).await?, "teal");
    let registered = node.inner().support().registry().names();
    assert!(
        registered.contains(&"wasmkv:1.0".to_owned()),
        "{registered:?}"
    );
    assert_eq!(node.inner().docker().images_built(), 1);
    assert_eq!(node.inner().docker().containers_started(), 1);

    let (container, _) = node.inner().docker().names_of(&package_id);
    let log = container_log(&endpoint, &container).await?;
    assert!(
        log.contains("loaded the precompiled chaincode")
            && !log.contains("compiling the chaincode"),
        "the runner compiled the component instead of loading the code the image holds: {log}"
    );
    Ok(())
}

/// What `container` wrote to its standard output and error so far.
async fn container_log(endpoint: &str, container: &str) -> Result<String> {
    let engine = docker_engine(endpoint).await?;
    let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
    let mut log = String::new();
    let mut output = engine.logs(container, Some(options));
    while let Some(chunk) = output.next().await {
        log.push_str(&chunk?.to_string());
    }
    Ok(log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_memory_bomb_in_a_container_fails_its_transaction_and_the_next_call_relaunches()
-> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| {
        config.inproc.max_memory_bytes = 16 * 1024 * 1024;
    })
    .await?;
    deploy_wasm(&node, "hostile", "wasmbomb").await?;

    let stopped = node
        .query("wasmbomb", &["hoard"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        stopped.contains("wasm chaincode wasmbomb:1.0 stopped: memory limit exceeded"),
        "the runner names the sandbox limit: {stopped}"
    );
    node.wait_deregistered("wasmbomb").await?;
    assert_eq!(
        node.query_text("wasmbomb", &["hello"]).await?,
        "well behaved"
    );
    assert_eq!(node.inner().docker().containers_started(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_endless_loop_in_a_container_is_stopped_at_its_deadline() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| {
        config.chaincode.execute_timeout_ms = 1_000;
    })
    .await?;
    deploy_wasm(&node, "hostile", "wasmspin").await?;

    let stopped = node
        .query("wasmspin", &["spin"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        stopped.contains("timed out") || stopped.contains("transaction deadline exceeded"),
        "the peer's timeout or the runner's deadline, whichever fires first: {stopped}"
    );
    node.wait_deregistered("wasmspin").await?;
    assert_eq!(
        node.query_text("wasmspin", &["hello"]).await?,
        "well behaved"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_wasm_instance_in_a_container_does_not_hold_up_the_next_transaction() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| {
        config.chaincode.execute_timeout_ms = 5_000;
    })
    .await?;
    deploy_wasm(&node, "hostile", "wasmbusy").await?;
    node.query_text("wasmbusy", &["hello"]).await?;

    let spin = node.query("wasmbusy", &["spin"]);
    tokio::pin!(spin);
    tokio::select! {
        spun = &mut spin => anyhow::bail!("the spin ended before its deadline: {spun:?}"),
        () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
    }
    let answered = tokio::select! {
        spun = &mut spin => anyhow::bail!(
            "the second transaction waited for the spinning one to end: {spun:?}"
        ),
        answered = node.query_text("wasmbusy", &["hello"]) => answered?,
    };
    assert_eq!(answered, "well behaved");
    let stopped = spin.await.unwrap_err().to_string();
    assert!(
        stopped.contains("timed out") || stopped.contains("transaction deadline exceeded"),
        "{stopped}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_package_that_is_not_a_component_fails_its_launch_naming_why() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |_| {}).await?;
    let package = Package::build(
        "notwasm_1.0",
        Platform::Wasm,
        &[CodeFile::new(
            "chaincode.wasm",
            b"#!/bin/sh\n".to_vec(),
            0o644,
        )],
    )?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(&node, "notwasm", &installed.id).await?;

    let failed = node
        .query("notwasm", &["get", "k"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("chaincode.wasm is not a wasm component"),
        "{failed}"
    );
    assert_eq!(node.inner().docker().images_built(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deploy_command_packages_installs_defines_and_starts_a_wasm_chaincode() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |_| {}).await?;
    let work = tempfile::tempdir()?;
    let component = work.path().join("kv.wasm");
    std::fs::write(&component, wasm_example("kv")?)?;
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();
    let deploy = [
        "chaincode",
        "deploy",
        "-n",
        "onestep",
        "--lang",
        "wasm",
        "--path",
        &component.display().to_string(),
        "--peer",
        &peer,
        "--data-dir",
        &data_dir,
        "--tls",
    ];

    let first = run_ccvm(&deploy).await?;
    let stdout = String::from_utf8(first.stdout)?;
    assert!(first.status.success(), "{stdout}");
    assert!(
        stdout.contains("deployed onestep 1.0 sequence 1") && stdout.contains("onestep_1.0:"),
        "{stdout}"
    );
    let registered = node.inner().support().registry().names();
    assert!(
        registered.contains(&"onestep:1.0".to_owned()),
        "started by the deploy, before any call: {registered:?}"
    );
    node.invoke("onestep", &["put", "k", "v"]).await?;
    assert_eq!(node.query_text("onestep", &["get", "k"]).await?, "v");

    let again = run_ccvm(&deploy).await?;
    let stdout = String::from_utf8(again.stdout)?;
    assert!(
        stdout.contains("deployed onestep 1.0 sequence 2"),
        "a redeploy defines the next sequence: {stdout}"
    );
    Ok(())
}

#[test]
fn the_runner_compiles_a_component_whose_precompiled_code_is_not_its_engines() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let component = dir.path().join("chaincode.wasm");
    let kv = wasm_example("kv")?;
    std::fs::write(&component, &kv)?;
    let precompiled = ccvm_wasm_runner::precompiled_path(&component);
    assert_eq!(precompiled, dir.path().join("chaincode.cwasm"));

    std::fs::write(&precompiled, b"not code of this engine")?;
    let loaded = Sandbox::load(&component, WasmLimits::default());
    assert!(loaded.is_ok(), "{:?}", loaded.err());

    std::fs::write(
        &precompiled,
        ccvm_wasm_runner::precompile(&kv, &WasmLimits::default()).map_err(anyhow::Error::msg)?,
    )?;
    std::fs::remove_file(&component)?;
    let loaded = Sandbox::load(&component, WasmLimits::default());
    assert!(
        loaded.is_ok(),
        "code precompiled for the runner's engine is loaded without the component: {:?}",
        loaded.err()
    );
    Ok(())
}
