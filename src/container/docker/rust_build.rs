//! Building a `rust` package on the node's host: its cargo project is unpacked and built for
//! `x86_64-unknown-linux-musl`, a static executable that runs in a `FROM scratch` image.

use std::path::Path;

use tokio::process::Command;
use tracing::info;

use super::error::DockerError;
use super::static_cc::{STATIC_TARGET_CC, static_c_compiler};
use crate::package::{CodeFile, Package};

/// The target whose executables need nothing from the image they run in.
const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds `package`'s project with cargo, sharing `target_dir` between builds, and returns the
/// one executable it produces.
pub(super) async fn build(
    name: &str,
    package: &Package,
    target_dir: &Path,
) -> Result<Vec<u8>, DockerError> {
    let failed = |log: String| DockerError::BuildFailed {
        image: package.id.clone(),
        log,
    };
    let project = tempfile::tempdir().map_err(|e| failed(format!("cannot unpack: {e}")))?;
    for file in package.code_files().map_err(|e| failed(e.to_string()))? {
        write_file(project.path(), &file)
            .map_err(|e| failed(format!("cannot unpack {}: {e}", file.path)))?;
    }
    info!(chaincode = name, package = %package.id, "building the rust package with cargo");
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if let Some(compiler) = static_c_compiler() {
        cargo.env(STATIC_TARGET_CC, compiler);
    }
    let output = cargo
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
            "--target",
            STATIC_TARGET,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(project.path())
        .output()
        .await
        .map_err(|e| failed(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let executables: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| message["executable"].as_str().map(str::to_owned))
        .collect();
    match executables.as_slice() {
        [executable] => tokio::fs::read(executable)
            .await
            .map_err(|e| failed(format!("cannot read {executable}: {e}"))),
        other => Err(failed(format!(
            "the project must build exactly one executable, not {}",
            other.len()
        ))),
    }
}

/// Writes one file of the project beneath `root`.
fn write_file(root: &Path, file: &CodeFile) -> std::io::Result<()> {
    let path = root.join(&file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, &file.bytes)
}
