//! `ccvm chaincode package | install | approve | commit | list | deploy`: Fabric's lifecycle
//! steps for a user chaincode, each a call to the node (installing) or a transaction on
//! `_lifecycle`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ccvm_lifecycle_schema::{Definition, Installed, Parameters};
use clap::Args;

use super::ClientArgs;
use super::progress::spinner;
use crate::config::DEFAULT_LISTEN;
use crate::ledger::DEFAULT_CHANNEL;
use crate::node::LIFECYCLE;
use crate::package::{CodeFile, Package, Platform};
use crate::policy::SignaturePolicy;

#[derive(Args)]
pub(super) struct PackageArgs {
    /// The package's label (letters, digits, `_ . + -`).
    #[arg(long)]
    label: String,
    /// rust (a cargo project directory), binary (a static executable), wasm (a component) or
    /// ccaas (a connection.json).
    #[arg(long = "lang", alias = "type")]
    platform: Platform,
    /// The code: a directory for rust, a file otherwise.
    #[arg(long)]
    path: PathBuf,
    /// Where to write the package.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Args)]
pub(super) struct InstallArgs {
    /// The package file.
    package: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
}

/// The node and the client identity a lifecycle step uses.
#[derive(Args)]
pub(super) struct TargetArgs {
    /// The node's client address (Fabric's `CORE_PEER_ADDRESS`).
    #[arg(
        long,
        visible_alias = "peerAddresses",
        env = "CORE_PEER_ADDRESS",
        default_value = DEFAULT_LISTEN
    )]
    pub peer: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// The channel (`-c` too, as `peer channel` takes it).
    #[arg(
        short = 'C',
        short_alias = 'c',
        long = "channelID",
        default_value = DEFAULT_CHANNEL
    )]
    pub channel: String,
}

impl TargetArgs {
    /// Evaluates a function of `chaincode` on the target's channel, as this client; the
    /// payload of its successful answer.
    pub async fn evaluate(&self, chaincode: &str, args: Vec<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
        let response = self
            .client
            .client(&self.peer)
            .await?
            .query(&self.channel, chaincode, args, Default::default())
            .await?;
        Ok(response.payload)
    }
}

#[derive(Args)]
pub(super) struct DeployArgs {
    /// The chaincode name.
    #[arg(short = 'n', long)]
    name: String,
    /// The chaincode version.
    #[arg(short = 'v', long, default_value = "1.0")]
    version: String,
    /// rust (a cargo project directory), binary (a static executable), wasm (a component) or
    /// ccaas (a connection.json).
    #[arg(long = "lang", alias = "type")]
    platform: Platform,
    /// The code: a directory for rust, a file otherwise.
    #[arg(long)]
    path: PathBuf,
    /// The package's label; NAME_VERSION by default.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
}

/// A chaincode definition's parameters, taken as Fabric's lifecycle commands take them.
#[derive(Args)]
pub(super) struct DefinitionParams {
    /// The chaincode name.
    #[arg(short = 'n', long)]
    pub name: String,
    /// The chaincode version.
    #[arg(short = 'v', long)]
    pub version: String,
    /// The definition's sequence: 1, then one more per change.
    #[arg(long)]
    pub sequence: u64,
    /// The endorsement policy in Fabric's signature-policy language, e.g.
    /// "OR('Org1MSP.peer','Org2MSP.peer')"; the channel's Endorsement policy when neither this
    /// nor --channel-config-policy is given.
    #[arg(long, conflicts_with = "channel_config_policy")]
    signature_policy: Option<String>,
    /// A channel policy to endorse under instead, by path, e.g. /Channel/Application/Admins.
    #[arg(long)]
    channel_config_policy: Option<String>,
    /// Whether Init must be invoked first.
    #[arg(long)]
    init_required: bool,
}

impl DefinitionParams {
    /// The endorsement policy as `_lifecycle` keeps it: signature-policy text, a channel policy
    /// path, or empty for the channel's `Endorsement` policy. A policy that cannot be read is
    /// refused here, before anything is submitted.
    fn endorsement_policy(&self) -> anyhow::Result<String> {
        if let Some(policy) = &self.signature_policy {
            SignaturePolicy::parse(policy)
                .with_context(|| format!("--signature-policy {policy:?}"))?;
            return Ok(policy.clone());
        }
        match &self.channel_config_policy {
            Some(path) if !path.starts_with('/') => bail!(
                "--channel-config-policy {path:?} is not a policy path such as \
                 /Channel/Application/Endorsement"
            ),
            Some(path) => Ok(path.clone()),
            None => Ok(String::new()),
        }
    }

    /// The parameters as `_lifecycle` keeps them.
    pub fn parameters(&self) -> anyhow::Result<Parameters> {
        Ok(Parameters {
            name: self.name.clone(),
            version: self.version.clone(),
            sequence: self.sequence,
            endorsement_policy: self.endorsement_policy()?,
            init_required: self.init_required,
        })
    }
}

#[derive(Args)]
pub(super) struct DefinitionArgs {
    #[command(flatten)]
    definition: DefinitionParams,
    /// The installed package to run.
    #[arg(long)]
    package_id: String,
    #[command(flatten)]
    target: TargetArgs,
}

/// The code files of a package of `platform` from `path`.
fn code_files(platform: Platform, path: &Path) -> anyhow::Result<Vec<CodeFile>> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    Ok(match platform {
        Platform::Binary => vec![CodeFile::new("chaincode", read(path)?, 0o755)],
        Platform::Wasm => vec![CodeFile::new("chaincode.wasm", read(path)?, 0o644)],
        Platform::Ccaas => vec![CodeFile::new("connection.json", read(path)?, 0o644)],
        Platform::Rust => {
            let mut files = Vec::new();
            project_files(path, path, &mut files)?;
            files
        }
    })
}

/// Every file of a cargo project beneath `dir`, but its build output and version control.
fn project_files(root: &Path, dir: &Path, files: &mut Vec<CodeFile>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            project_files(root, &path, files)?;
        } else {
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            files.push(CodeFile::new(relative, std::fs::read(&path)?, 0o644));
        }
    }
    Ok(())
}

pub(super) fn package(args: &PackageArgs) -> anyhow::Result<()> {
    let files = code_files(args.platform, &args.path)?;
    let bytes = Package::build(&args.label, args.platform, &files)?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let package = Package::parse(&bytes)?;
    println!("{}", package.id);
    Ok(())
}

pub(super) async fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.package)
        .with_context(|| format!("reading {}", args.package.display()))?;
    let waiting = spinner(format!("installing {}", args.package.display()));
    let installed = install_and_record(&args.target, bytes).await;
    waiting.finish_and_clear();
    println!("{}", installed?);
    Ok(())
}

/// Stores the package on the node and records it in `_lifecycle`; returns its id.
async fn install_and_record(target: &TargetArgs, bytes: Vec<u8>) -> anyhow::Result<String> {
    let installed = target
        .client
        .admin(&target.peer)
        .await?
        .install_package(bytes)
        .await?;
    let record = Installed {
        package_id: installed.package_id.clone(),
        label: installed.label,
        platform: installed.platform,
    };
    target
        .client
        .client(&target.peer)
        .await?
        .invoke(
            &target.channel,
            LIFECYCLE,
            vec![b"InstallChaincode".to_vec(), serde_json::to_vec(&record)?],
            Default::default(),
        )
        .await?;
    Ok(installed.package_id)
}

/// Approves (`commit` false) or commits `definition` through `_lifecycle`; returns the block
/// that holds the transaction.
async fn submit_definition(
    target: &TargetArgs,
    definition: &Definition,
    commit: bool,
) -> anyhow::Result<u64> {
    let function = if commit {
        "CommitChaincodeDefinition"
    } else {
        "ApproveChaincodeDefinitionForMyOrg"
    };
    let doing = if commit { "committing" } else { "approving" };
    let waiting = spinner(format!("{doing} {}", definition.parameters.name));
    let committed = target
        .client
        .client(&target.peer)
        .await?
        .invoke(
            &target.channel,
            LIFECYCLE,
            vec![
                function.as_bytes().to_vec(),
                serde_json::to_vec(definition)?,
            ],
            Default::default(),
        )
        .await;
    waiting.finish_and_clear();
    Ok(committed?.block)
}

/// Approves (`commit` false) or commits the definition.
pub(super) async fn define(args: &DefinitionArgs, commit: bool) -> anyhow::Result<()> {
    let target = &args.target;
    let packages = target.client.admin(&target.peer).await?.packages().await?;
    let Some(package) = packages.iter().find(|p| p.package_id == args.package_id) else {
        bail!(
            "package {} is not installed on {}",
            args.package_id,
            target.peer
        );
    };
    let definition = Definition {
        parameters: args.definition.parameters()?,
        package_id: args.package_id.clone(),
        platform: package.platform.clone(),
    };
    let block = submit_definition(target, &definition, commit).await?;
    let done = if commit { "committed" } else { "approved" };
    println!(
        "{done} {} {} sequence {} in block {block}",
        args.definition.name, args.definition.version, args.definition.sequence
    );
    Ok(())
}

pub(super) async fn list(target: &TargetArgs) -> anyhow::Result<()> {
    let mut admin = target.client.admin(&target.peer).await?;
    let packages = admin.packages().await?;
    let running = admin.running().await?;
    let definitions = committed_definitions(target).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Installed packages:")?;
    for package in &packages {
        writeln!(out, "  {} ({})", package.package_id, package.platform)?;
    }
    writeln!(out, "Committed definitions on {}:", target.channel)?;
    for definition in &definitions {
        writeln!(
            out,
            "  {} {} sequence {} package {}",
            definition.parameters.name,
            definition.parameters.version,
            definition.parameters.sequence,
            definition.package_id,
        )?;
    }
    writeln!(out, "Running chaincodes:")?;
    for name in &running {
        writeln!(out, "  {name}")?;
    }
    Ok(())
}

/// The chaincode definitions committed on the target's channel, as `_lifecycle` lists them.
pub(super) async fn committed_definitions(target: &TargetArgs) -> anyhow::Result<Vec<Definition>> {
    let answer = target
        .evaluate(LIFECYCLE, vec![b"QueryChaincodeDefinitions".to_vec()])
        .await?;
    serde_json::from_slice(&answer).context("_lifecycle answered with something other than a list")
}

/// The sequence the next definition of `name` takes: one more than the committed one, or 1.
async fn next_sequence(target: &TargetArgs, name: &str) -> anyhow::Result<u64> {
    let committed = committed_definitions(target)
        .await?
        .iter()
        .filter(|definition| definition.parameters.name == name)
        .map(|definition| definition.parameters.sequence)
        .max()
        .unwrap_or(0);
    Ok(committed + 1)
}

/// Packages, installs, approves and commits a chaincode in one step (a single-node network has
/// one organization to approve), then launches it, showing its image build.
pub(super) async fn deploy(args: &DeployArgs) -> anyhow::Result<()> {
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| format!("{}_{}", args.name, args.version));
    let files = code_files(args.platform, &args.path)?;
    let bytes = Package::build(&label, args.platform, &files)?;
    let waiting = spinner(format!("installing {label}"));
    let installed = install_and_record(&args.target, bytes).await;
    waiting.finish_and_clear();
    let package_id = installed?;
    let sequence = next_sequence(&args.target, &args.name).await?;
    let definition = Definition {
        parameters: Parameters {
            name: args.name.clone(),
            version: args.version.clone(),
            sequence,
            endorsement_policy: String::new(),
            init_required: false,
        },
        package_id: package_id.clone(),
        platform: args.platform.as_str().to_owned(),
    };
    submit_definition(&args.target, &definition, false).await?;
    let block = submit_definition(&args.target, &definition, true).await?;
    println!(
        "deployed {} {} sequence {sequence} in block {block}: package {package_id}",
        args.name, args.version
    );
    let admin = args.target.client.admin(&args.target.peer).await;
    if let Err(reason) = super::progress::launch(admin, &args.name).await {
        bail!("{} is deployed but did not start: {reason}", args.name);
    }
    Ok(())
}
