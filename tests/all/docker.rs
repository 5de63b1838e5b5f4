//! User chaincode in Docker, against a real engine: a package of the `kv` example as a static
//! binary is installed, its definition committed through `_lifecycle`, and the first invoke
//! builds the image `FROM scratch` and launches the container, which dials the node back.

use std::sync::Arc;

use anyhow::{Context, Result};
use ccvm::operations_client::request;
use ccvm::package::{CodeFile, Package, Platform};
use ccvm_proto::ccvm::launch_event::Stage;
use serde_json::json;

use crate::harness::{
    CHANNEL, EngineProxy, TestNode, commit_definition, deploy, docker_endpoint, docker_engine,
    docker_node_with, docker_tls_endpoint, run_ccvm, static_example,
};

async fn docker_node(endpoint: String) -> Result<TestNode> {
    docker_node_with(endpoint, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_binary_package_runs_in_a_container() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node(endpoint).await?;
    deploy(&node, "kv", "dockerkv").await?;

    node.invoke("dockerkv", &["put", "color", "red"]).await?;
    assert_eq!(node.query_text("dockerkv", &["get", "color"]).await?, "red");
    let registered = node.inner().support().registry().names();
    assert!(
        registered.contains(&"dockerkv:1.0".to_owned()),
        "{registered:?}"
    );
    assert_eq!(node.inner().docker().images_built(), 1);

    let mut node = node;
    node.restart().await?;
    assert_eq!(node.query_text("dockerkv", &["get", "color"]).await?, "red");
    assert_eq!(
        node.inner().docker().images_built(),
        0,
        "the restarted node reuses the image"
    );
    assert_eq!(node.inner().docker().containers_started(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_engine_is_reached_over_mutual_tls() -> Result<()> {
    let Some((endpoint, certs)) = docker_tls_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint.clone(), |config| {
        config.docker.cert_path = Some(certs);
    })
    .await?;
    deploy(&node, "kv", "remotekv").await?;
    node.invoke("remotekv", &["put", "where", "remote"]).await?;
    assert_eq!(
        node.query_text("remotekv", &["get", "where"]).await?,
        "remote"
    );
    assert_eq!(node.inner().docker().containers_started(), 1);

    let without_certs = docker_node_with(endpoint.clone(), |config| {
        config.docker.cert_path = None;
    })
    .await?;
    deploy(&without_certs, "kv", "plainkv").await?;
    let refused = without_certs
        .query("plainkv", &["get", "where"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("cannot reach the Docker engine at {endpoint}")),
        "{refused}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_streams_its_steps_and_the_image_build() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node(endpoint).await?;
    deploy(&node, "kv", "watchedkv").await?;
    let mut admin = node.admin().await?;

    let mut events = admin.launch("watchedkv").await?;
    let mut stages = Vec::new();
    let mut output = Vec::new();
    while let Some(event) = events.message().await? {
        let stage = Stage::try_from(event.stage)?;
        if stage == Stage::BuildOutput {
            output.push(event.detail);
        } else if stages.last() != Some(&stage) {
            stages.push(stage);
        }
    }
    assert_eq!(
        stages,
        [
            Stage::Starting,
            Stage::Creating,
            Stage::Building,
            Stage::Started,
            Stage::Registered
        ]
    );
    assert!(
        output
            .iter()
            .any(|line| line.contains("COPY chaincode /chaincode")),
        "the build's own output reaches the watcher: {output:?}"
    );
    assert_eq!(node.query_text("watchedkv", &["get", "k"]).await?, "");

    let mut again = admin.launch("watchedkv").await?;
    let only = again.message().await?.expect("one event");
    assert_eq!(Stage::try_from(only.stage)?, Stage::Running);
    assert!(again.message().await?.is_none());

    let mut unknown = admin.launch("nosuchcc").await?;
    let failed = unknown.message().await?.expect("one event");
    assert_eq!(Stage::try_from(failed.stage)?, Stage::Failed);
    assert!(failed.detail.contains("nosuchcc"), "{}", failed.detail);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_invokes_start_one_container() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node(endpoint).await?;
    deploy(&node, "kv", "manykv").await?;
    let (a, b, c, d) = tokio::join!(
        node.query_text("manykv", &["get", "a"]),
        node.query_text("manykv", &["get", "b"]),
        node.query_text("manykv", &["get", "c"]),
        node.query_text("manykv", &["get", "d"]),
    );
    for answer in [a, b, c, d] {
        assert_eq!(answer?, "");
    }
    assert_eq!(node.inner().docker().containers_started(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_fails_its_transaction_and_the_next_call_relaunches() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = Arc::new(
        docker_node_with(endpoint.clone(), |config| {
            config.chaincode.execute_timeout_ms = 600_000;
        })
        .await?,
    );
    let package_id = deploy(&node, "kv", "killkv").await?;
    node.invoke("killkv", &["put", "k", "kept"]).await?;

    let hanging = tokio::spawn({
        let node = Arc::clone(&node);
        async move { node.query("killkv", &["hang"]).await }
    });
    node.wait_until_running_tx("killkv").await?;
    let (container, _) = node.inner().docker().names_of(&package_id);
    docker_engine(&endpoint)
        .await?
        .kill_container(&container, None)
        .await?;
    let failed = hanging.await?.unwrap_err().to_string();
    assert!(
        failed.contains("chaincode killkv:1.0 container exited with 137"),
        "the kill (SIGKILL: 128 + 9), not the 10-minute timeout, ends it: {failed}"
    );

    node.wait_deregistered("killkv").await?;
    assert_eq!(node.query_text("killkv", &["get", "k"]).await?, "kept");
    assert_eq!(node.inner().docker().containers_started(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_at_start_fails_its_launch_with_the_exit_code() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node(endpoint).await?;
    deploy(&node, "hostile", "quitter").await?;
    let failed = node
        .query("quitter", &["hello"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("could not be launched: ended before registering: container exited with 0"),
        "{failed}"
    );
    Ok(())
}

/// `/healthz` once the node has used the engine: healthy, then failing with the engine's
/// reason while it is away, then healthy again when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_an_engine_that_went_away_until_it_is_back() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let sockets = tempfile::tempdir()?;
    let mut engine = EngineProxy::start(sockets.path().join("engine.sock"), &endpoint)?;
    let node = docker_node(engine.endpoint()).await?;
    let address = node
        .inner()
        .operations_addr()
        .context("the endpoint is served")?
        .to_string();
    let health = || async {
        let (status, body) = request(&address, "GET", "/healthz", "").await?;
        anyhow::Ok((status, serde_json::from_str::<serde_json::Value>(&body)?))
    };

    deploy(&node, "hostile", "quitter").await?;
    node.query("quitter", &["hello"])
        .await
        .expect_err("the container exits at start");
    let (status, body) = health().await?;
    assert_eq!((status, &body["status"]), (200, &json!("OK")), "{body}");

    engine.stop();
    let (status, body) = health().await?;
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("Service Unavailable")),
        "{body}"
    );
    let failed = body["failed_checks"].as_array().context("failed checks")?;
    assert_eq!(failed.len(), 1, "only the engine fails: {body}");
    assert_eq!(failed[0]["component"], "docker", "{body}");
    let reason = failed[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "the Docker engine at {} does not answer: ",
            engine.endpoint()
        )),
        "{reason}"
    );

    engine.resume()?;
    let (status, body) = health().await?;
    assert_eq!((status, &body["status"]), (200, &json!("OK")), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_packages_installs_approves_commits_and_invokes() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node(endpoint).await?;
    let work = tempfile::tempdir()?;
    let binary = work.path().join("kv");
    std::fs::write(&binary, static_example("kv")?)?;
    let package = work.path().join("kv.tar.gz");
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();
    let target = [
        "--peer",
        peer.as_str(),
        "--data-dir",
        data_dir.as_str(),
        "--tls",
    ];

    let packaged = ccvm(&[
        "chaincode",
        "package",
        "--label",
        "kv_1.0",
        "--lang",
        "binary",
        "--path",
        &binary.display().to_string(),
        "-o",
        &package.display().to_string(),
    ])
    .await?;
    let package_id = packaged.trim().to_owned();
    assert!(package_id.starts_with("kv_1.0:"), "{package_id}");
    let installed = ccvm(
        &[
            &["chaincode", "install", &package.display().to_string()][..],
            &target,
        ]
        .concat(),
    )
    .await?;
    assert_eq!(installed.trim(), package_id);
    let definition = [
        "-n",
        "clikv",
        "-v",
        "1.0",
        "--sequence",
        "1",
        "--package-id",
        package_id.as_str(),
    ];
    for step in ["approve", "commit"] {
        let done = ccvm(&[&["chaincode", step][..], &definition, &target].concat()).await?;
        assert!(done.contains("clikv 1.0 sequence 1"), "{done}");
    }
    let listed = ccvm(&[&["chaincode", "list"][..], &target].concat()).await?;
    assert!(
        listed.contains(&format!("{package_id} (binary)")),
        "{listed}"
    );
    assert!(listed.contains("clikv 1.0 sequence 1"), "{listed}");
    assert!(
        !listed.contains("clikv:1.0"),
        "not running before its first call: {listed}"
    );

    let invoked = ccvm(
        &[
            &[
                "chaincode",
                "invoke",
                "-C",
                CHANNEL,
                "-n",
                "clikv",
                "-c",
                r#"{"Args":["put","k","cli"]}"#,
            ][..],
            &target,
        ]
        .concat(),
    )
    .await?;
    assert!(invoked.contains("status: 200"), "{invoked}");
    let listed = ccvm(&[&["chaincode", "list"][..], &target].concat()).await?;
    assert!(listed.contains("  clikv:1.0"), "running after it: {listed}");
    assert_eq!(node.query_text("clikv", &["get", "k"]).await?, "cli");
    Ok(())
}

/// Runs the `ccvm` binary; its stdout, or an error with its stderr.
async fn ccvm(args: &[&str]) -> Result<String> {
    let output = run_ccvm(args).await?;
    anyhow::ensure!(
        output.status.success(),
        "ccvm {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// A `rust` package builds by default in a build container, whose empty image borrows the
/// host's toolchain; its path dependency (the guest SDK) is lent through `mounts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_package_is_built_in_a_container_and_runs_in_another() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let build_dir = workspace.join("target");
    let sources = workspace.to_owned();
    let node = docker_node_with(endpoint, move |config| {
        config.docker.rust_target_dir = Some(build_dir);
        config.docker.rust_builder.mounts = vec![sources];
    })
    .await?;
    let manifest = format!(
        r#"[package]
name = "rustkv"
version = "0.1.0"
edition = "2024"

[dependencies]
ccvm-guest-sdk = {{ path = "{}", features = ["grpc"] }}
serde = "1"
serde_json = "1"

[workspace]
"#,
        workspace.join("guest-sdk").display()
    );
    let project = [
        CodeFile::new("Cargo.toml", manifest.into_bytes(), 0o644),
        CodeFile::new(
            "Cargo.lock",
            std::fs::read(workspace.join("Cargo.lock"))?,
            0o644,
        ),
        CodeFile::new(
            "src/main.rs",
            std::fs::read(workspace.join("examples/kv/src/main.rs"))?,
            0o644,
        ),
    ];
    let package = Package::build("rustkv_1.0", Platform::Rust, &project)?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(&node, "rustkv", &installed.id).await?;

    node.invoke("rustkv", &["put", "built", "in a container"])
        .await?;
    assert_eq!(
        node.query_text("rustkv", &["get", "built"]).await?,
        "in a container"
    );
    assert_eq!(node.inner().docker().images_built(), 1);
    assert!(
        !build_container_left(&node, &installed.id).await?,
        "removed"
    );
    Ok(())
}

/// Whether the engine still has the build container of package `package_id` on `node`.
async fn build_container_left(node: &TestNode, package_id: &str) -> Result<bool> {
    let endpoint = node.config().docker.endpoint.clone();
    let name = node.inner().docker().build_container_of(package_id);
    match docker_engine(&endpoint)
        .await?
        .inspect_container(&name, None)
        .await
    {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A `rust` package's build script runs in the build container, not on the host: it cannot
/// read the node's files, write beside them, reach the node over the network, or write to the
/// system it borrows. What it saw fails the build, whose log the launch reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_packages_build_script_runs_sandboxed() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |_| {}).await?;
    let data_dir = node.config().data_dir.clone();
    std::fs::write(data_dir.join("secret"), "the node's secret")?;
    let build_script = format!(
        r#"fn main() {{
    let secret = std::fs::read_to_string("{secret}").unwrap_or_else(|e| format!("unreadable ({{e}})"));
    let escaped = std::fs::write("{escaped}", b"x").is_ok();
    let network = std::net::TcpStream::connect("{peer}").is_ok();
    let system = std::fs::write("/usr/escaped", b"x").is_ok();
    panic!("probe: secret={{secret}} escaped={{escaped}} network={{network}} system={{system}}");
}}
"#,
        secret = data_dir.join("secret").display(),
        escaped = data_dir.join("escaped").display(),
        peer = node.inner().peer_addr(),
    );
    let project = [
        CodeFile::new(
            "Cargo.toml",
            b"[package]\nname = \"hostile\"\nversion = \"0.1.0\"\nedition = \"2024\"\nbuild = \"build.rs\"\n\n[workspace]\n"
                .to_vec(),
            0o644,
        ),
        CodeFile::new("build.rs", build_script.into_bytes(), 0o644),
        CodeFile::new("src/main.rs", b"fn main() {}\n".to_vec(), 0o644),
    ];
    let package = Package::build("hostile_1.0", Platform::Rust, &project)?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(&node, "hostile", &installed.id).await?;
    let failed = node
        .query("hostile", &["get", "k"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("probe: secret=unreadable (No such file or directory")
            && failed.contains("escaped=false network=false system=false"),
        "{failed}"
    );
    assert!(!data_dir.join("escaped").exists());
    assert_eq!(node.inner().docker().images_built(), 0);
    assert!(
        !build_container_left(&node, &installed.id).await?,
        "removed"
    );
    Ok(())
}

/// A build that runs past `docker.rust_builder.timeout_secs` is stopped and its container
/// removed; the launch says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_build_that_runs_too_long_is_stopped() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| {
        config.docker.rust_builder.timeout_secs = 5;
    })
    .await?;
    let project = [
        CodeFile::new(
            "Cargo.toml",
            b"[package]\nname = \"stalling\"\nversion = \"0.1.0\"\nedition = \"2024\"\nbuild = \"build.rs\"\n\n[workspace]\n"
                .to_vec(),
            0o644,
        ),
        CodeFile::new(
            "build.rs",
            b"fn main() { loop { std::thread::park(); } }\n".to_vec(),
            0o644,
        ),
        CodeFile::new("src/main.rs", b"fn main() {}\n".to_vec(), 0o644),
    ];
    let package = Package::build("stalling_1.0", Platform::Rust, &project)?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(&node, "stalling", &installed.id).await?;
    let failed = node
        .query("stalling", &["get", "k"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("the build took longer than 5s and was stopped"),
        "{failed}"
    );
    assert!(
        !build_container_left(&node, &installed.id).await?,
        "removed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_that_does_not_build_fails_its_launch_with_the_build_log() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let build_dir = tempfile::tempdir()?;
    let build_path = build_dir.path().to_owned();
    let node = docker_node_with(endpoint, move |config| {
        config.docker.rust_target_dir = Some(build_path);
        config.docker.build_rust_on_host = true;
    })
    .await?;
    let project = [
        CodeFile::new(
            "Cargo.toml",
            b"[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n"
                .to_vec(),
            0o644,
        ),
        CodeFile::new("src/main.rs", b"fn main() { not_defined_anywhere() }\n".to_vec(), 0o644),
    ];
    let package = Package::build("broken_1.0", Platform::Rust, &project)?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(&node, "broken", &installed.id).await?;

    let failed = node
        .query("broken", &["get", "k"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("could not be launched")
            && failed.contains("failed")
            && failed.contains("not_defined_anywhere"),
        "the launch error carries cargo's output: {failed}"
    );
    assert_eq!(node.inner().docker().containers_started(), 0);
    Ok(())
}
