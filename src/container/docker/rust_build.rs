//! Building a `rust` package: its cargo project is unpacked and built for
//! `x86_64-unknown-linux-musl`, a static executable that runs in a `FROM scratch` image. Cargo
//! runs in a build container by default (`build_container`), or on the node's host when the
//! operator chose that.

use std::path::{Path, PathBuf};

use tokio::process::Command;
use tracing::info;

use super::build_container::{self, RustBuilder};
use super::error::DockerError;
use super::static_cc::{STATIC_TARGET_CC, static_c_compiler};
use crate::package::{CodeFile, Package};

/// The target whose executables need nothing from the image they run in.
pub(super) const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Where `rust` packages are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustBuilds {
    /// In a build container (the default).
    Container(RustBuilder),
    /// With cargo on the node's host, sharing `target_dir` between builds: the operator's
    /// explicit choice, which runs each package's build scripts on the host.
    Host {
        /// Where cargo builds.
        target_dir: PathBuf,
    },
}

/// Builds `package`'s project as `builds` says (in a build container, `container`) and returns
/// the one executable it produces.
pub(super) async fn build(
    docker: &bollard::Docker,
    name: &str,
    package: &Package,
    builds: &RustBuilds,
    container: &str,
) -> Result<Vec<u8>, DockerError> {
    let failed = |log: String| build_failed(package, log);
    let project = tempfile::tempdir().map_err(|e| failed(format!("cannot unpack: {e}")))?;
    for file in package.code_files().map_err(|e| failed(e.to_string()))? {
        write_file(project.path(), &file)
            .map_err(|e| failed(format!("cannot unpack {}: {e}", file.path)))?;
    }
    let output = match builds {
        RustBuilds::Host { target_dir } => {
            info!(chaincode = name, package = %package.id, "building the rust package with cargo on the host");
            build_on_host(project.path(), target_dir)
                .await
                .map_err(|e| failed(format!("cannot run cargo: {e}")))?
        }
        RustBuilds::Container(builder) => {
            info!(chaincode = name, package = %package.id, "building the rust package in a build container");
            build_container::run(docker, builder, project.path(), container)
                .await
                .map_err(|e| failed(e.to_string()))?
        }
    };
    if !output.success {
        return Err(failed(output.stderr));
    }
    let executables: Vec<String> = output
        .stdout
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

fn build_failed(package: &Package, log: String) -> DockerError {
    DockerError::BuildFailed {
        image: package.id.clone(),
        log,
    }
}

/// What a cargo run printed, and whether it succeeded.
pub(super) struct CargoOutput {
    pub success: bool,
    /// Cargo's JSON messages, one per line.
    pub stdout: String,
    /// Its diagnostics.
    pub stderr: String,
}

/// The arguments of the release build of the project, in `target_dir`, with JSON messages.
pub(super) fn cargo_build_args(target_dir: &Path) -> Vec<String> {
    vec![
        "build".to_owned(),
        "--release".to_owned(),
        "--message-format=json-render-diagnostics".to_owned(),
        "--target".to_owned(),
        STATIC_TARGET.to_owned(),
        "--target-dir".to_owned(),
        target_dir.display().to_string(),
    ]
}

/// Runs cargo on the host in `project`.
async fn build_on_host(project: &Path, target_dir: &Path) -> std::io::Result<CargoOutput> {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if let Some(compiler) = static_c_compiler() {
        cargo.env(STATIC_TARGET_CC, compiler);
    }
    let output = cargo
        .args(cargo_build_args(target_dir))
        .current_dir(project)
        .output()
        .await?;
    Ok(CargoOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Writes one file of the project beneath `root`.
fn write_file(root: &Path, file: &CodeFile) -> std::io::Result<()> {
    let path = root.join(&file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, &file.bytes)
}
