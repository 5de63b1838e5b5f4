//! `ccvm builder …`: the external builder Fabric's peers call (see
//! [`crate::external_builder`]), and `ccvm chaincode serve`, which runs a wasm chaincode as a
//! service. Each step runs before any async runtime starts: run replaces this process with the
//! chaincode, or becomes its sandbox.

use std::num::NonZeroUsize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ccvm_guest_sdk::{PeerSettings, ServerSettings};
use ccvm_sandbox::WasmLimits;
use ccvm_wasm_runner::Sandbox;
use clap::{Args, Subcommand};

use crate::external_builder::{self, BUILDER_NAME, BuilderError};
use crate::package::Platform;

#[derive(Subcommand)]
pub(super) enum BuilderCommand {
    /// Write the builder's programs into DIR/bin, for `chaincode.externalBuilders` in a Fabric
    /// peer's core.yaml.
    Install {
        /// The builder's directory.
        dir: PathBuf,
    },
    /// Fabric's detect step: succeeds for a ccvm wasm, binary or ccaas package.
    Detect {
        /// The package's code, unpacked.
        source: PathBuf,
        /// The directory of its metadata.json.
        metadata: PathBuf,
    },
    /// Fabric's build step: copies the package's code to OUTPUT, refusing code that cannot run.
    Build {
        /// The package's code, unpacked.
        source: PathBuf,
        /// The directory of its metadata.json.
        metadata: PathBuf,
        /// The build output.
        output: PathBuf,
    },
    /// Fabric's release step: a ccaas package's connection.json for the peer to dial.
    Release {
        /// The build output.
        output: PathBuf,
        /// The release directory.
        release: PathBuf,
    },
    /// Fabric's run step: starts the chaincode as the peer's chaincode.json says.
    Run {
        /// The build output.
        output: PathBuf,
        /// The directory of chaincode.json.
        run_metadata: PathBuf,
    },
}

#[derive(Args)]
pub(super) struct ServeArgs {
    /// The wasm component to serve.
    #[arg(long)]
    path: PathBuf,
}

/// Runs one builder step and returns the exit code Fabric reads.
pub(super) fn run(command: BuilderCommand) -> ExitCode {
    let done = match command {
        BuilderCommand::Install { dir } => install(&dir),
        BuilderCommand::Detect { source, metadata } => external_builder::detect(&source, &metadata)
            .map(|platform| eprintln!("a ccvm {} package", platform.as_str()))
            .map_err(Into::into),
        BuilderCommand::Build {
            source,
            metadata,
            output,
        } => external_builder::build(&source, &metadata, &output, |wasm| {
            Sandbox::new(wasm, wasm_limits()?).map(drop)
        })
        .map(drop)
        .map_err(Into::into),
        BuilderCommand::Release { output, release } => {
            external_builder::release(&output, &release).map_err(Into::into)
        }
        BuilderCommand::Run {
            output,
            run_metadata,
        } => start(&output, &run_metadata),
    };
    finish(done)
}

/// Serves a wasm component as a service with Fabric's `CHAINCODE_*` settings.
pub(super) fn serve(args: &ServeArgs) -> ExitCode {
    let served = (|| -> anyhow::Result<()> {
        let settings = ServerSettings::from_env()?.context(
            "CHAINCODE_SERVER_ADDRESS must say where to listen (and CHAINCODE_ID what to serve)",
        )?;
        let sandbox = Sandbox::load(&args.path, wasm_limits().map_err(anyhow::Error::msg)?)
            .map_err(anyhow::Error::msg)?;
        ccvm_wasm_runner::serve(sandbox, &settings, runner_instances()?).map_err(anyhow::Error::msg)
    })();
    finish(served)
}

fn finish(done: anyhow::Result<()>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The sandbox's limits: the node's inproc defaults, or `CCVM_WASM_*` when the peer passes them
/// on (`propagateEnvironment`).
fn wasm_limits() -> Result<WasmLimits, String> {
    WasmLimits::from_env(set_variable)
}

/// The most instances that share each conversation with the peer: `CCVM_WASM_INSTANCES`, or the
/// runner's default.
fn runner_instances() -> anyhow::Result<NonZeroUsize> {
    ccvm_wasm_runner::instances_from_env(set_variable).map_err(anyhow::Error::msg)
}

/// An environment variable's value, unless it is unset or empty.
fn set_variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let ccvm = std::env::current_exe().context("cannot tell where the ccvm executable is")?;
    external_builder::install(dir, &ccvm)?;
    println!(
        "installed; list it in the peer's core.yaml:\n  chaincode:\n    externalBuilders:\n      \
         - name: {BUILDER_NAME}\n        path: {}",
        dir.display()
    );
    Ok(())
}

/// Replaces this process with a binary chaincode, or runs a wasm one in the sandbox here.
fn start(output: &Path, run_metadata: &Path) -> anyhow::Result<()> {
    let plan = external_builder::plan_run(output, run_metadata)?;
    match plan.platform {
        Platform::Wasm => {
            let settings = PeerSettings::from_settings(&[], &|name| {
                plan.env
                    .iter()
                    .find(|(variable, _)| variable == name)
                    .map(|(_, value)| value.clone())
                    .filter(|value| !value.is_empty())
            })?;
            let sandbox = Sandbox::load(&plan.code, wasm_limits().map_err(anyhow::Error::msg)?)
                .map_err(anyhow::Error::msg)?;
            ccvm_wasm_runner::dial(sandbox, settings, runner_instances()?)
                .map_err(anyhow::Error::msg)
        }
        _ => {
            let error = std::process::Command::new(&plan.code).envs(plan.env).exec();
            Err(BuilderError::Io {
                path: plan.code,
                source: error,
            }
            .into())
        }
    }
}
