//! `ccvm chaincode new`: a new project passes its own unit tests, and runs on a node natively and
//! as wasm inside it, with the commands its README gives.

use std::path::Path;

use anyhow::{Result, ensure};

use crate::harness::{TestNode, built_file, cargo_in, run_ccvm};

/// Creates the project `name` in `dir` with `ccvm chaincode new` and the `extra` flags.
async fn new_project(dir: &Path, name: &str, extra: &[&str]) -> Result<()> {
    let path = dir.display().to_string();
    let mut args = vec!["chaincode", "new", name, "--path", &path];
    args.extend_from_slice(extra);
    let output = run_ccvm(&args).await?;
    ensure!(
        output.status.success(),
        "ccvm chaincode new failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "README.md",
        ".gitignore",
    ] {
        ensure!(dir.join(file).is_file(), "{file} was not written");
    }
    Ok(())
}

/// The summary line of `cargo test`'s output.
fn test_summary(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.starts_with("test result:"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_contract_project_passes_its_tests_and_runs_as_wasm_in_the_node() -> Result<()> {
    let projects = tempfile::tempdir()?;
    let dir = projects.path().join("hello-cc");
    new_project(&dir, "hello-cc", &["--contract"]).await?;

    let tested = cargo_in(&dir, &["test", "--quiet"]).await?;
    let summary = test_summary(&tested);
    ensure!(
        summary.starts_with("test result: ok. 2 passed"),
        "{summary}"
    );

    cargo_in(
        &dir,
        &["build", "--quiet", "--release", "--target", "wasm32-wasip2"],
    )
    .await?;
    let scc_dir = tempfile::tempdir()?;
    std::fs::copy(
        built_file("wasm32-wasip2/release/hello-cc.wasm"),
        scc_dir.path().join("hello-cc.wasm"),
    )?;
    let chaincode_dir = scc_dir.path().to_owned();
    let node = TestNode::start_with(move |config| {
        config.inproc.chaincode_dir = Some(chaincode_dir);
    })
    .await?;
    node.wait_registered("hello-cc").await?;
    node.invoke("hello-cc", &["Put", "color", "blue"]).await?;
    assert_eq!(
        node.query_text("hello-cc", &["Store:Get", "color"]).await?,
        "blue"
    );
    let missing = node.query("hello-cc", &["Get", "size"]).await.unwrap_err();
    assert!(
        missing.to_string().contains("size does not exist"),
        "{missing:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plain_project_passes_its_tests_and_runs_natively_against_the_node() -> Result<()> {
    let projects = tempfile::tempdir()?;
    let dir = projects.path().join("plain_cc");
    new_project(&dir, "plain_cc", &[]).await?;

    let tested = cargo_in(&dir, &["test", "--quiet"]).await?;
    let summary = test_summary(&tested);
    ensure!(
        summary.starts_with("test result: ok. 2 passed"),
        "{summary}"
    );

    cargo_in(&dir, &["build", "--quiet"]).await?;
    let node = TestNode::start().await?;
    let _chaincode = tokio::process::Command::new(built_file("debug/plain_cc"))
        .args(["--peer.address", &node.chaincode_addr()])
        .env("CORE_CHAINCODE_ID_NAME", "plain_cc:0.1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    node.wait_registered("plain_cc").await?;
    node.invoke("plain_cc", &["put", "color", "green"]).await?;
    assert_eq!(
        node.query_text("plain_cc", &["get", "color"]).await?,
        "green"
    );
    Ok(())
}

#[tokio::test]
async fn a_project_is_not_created_over_files_or_under_a_bad_name() -> Result<()> {
    let projects = tempfile::tempdir()?;
    let dir = projects.path().join("taken");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("notes.txt"), "mine")?;
    let path = dir.display().to_string();

    let taken = run_ccvm(&["chaincode", "new", "taken", "--path", &path]).await?;
    assert!(!taken.status.success());
    let said = String::from_utf8_lossy(&taken.stderr);
    assert!(said.contains("already exists and is not empty"), "{said}");
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt"))?, "mine");
    assert!(!dir.join("Cargo.toml").exists());

    let other = projects.path().join("other");
    let other_path = other.display().to_string();
    let bad = run_ccvm(&["chaincode", "new", "my cc", "--path", &other_path]).await?;
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("is not a valid chaincode name"), "{said}");
    assert!(!other.exists());

    let no_sdk = run_ccvm(&[
        "chaincode",
        "new",
        "x",
        "--path",
        &other_path,
        "--sdk",
        "/nowhere",
    ])
    .await?;
    let said = String::from_utf8_lossy(&no_sdk.stderr);
    assert!(said.contains("the guest SDK is not at /nowhere"), "{said}");
    assert!(!other.exists());
    Ok(())
}
