//! `ccvm chaincode package | install | approve | commit | list | deploy`: Fabric's lifecycle
//! steps for a user chaincode, each a call to the node (installing) or a transaction on
//! `_lifecycle` with Fabric's arguments, as `peer lifecycle chaincode` sends them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use prost::Message;

use super::ClientArgs;
use super::progress::spinner;
use crate::config::DEFAULT_LISTEN;
use crate::ledger::DEFAULT_CHANNEL;
use crate::node::LIFECYCLE;
use crate::package::{CodeFile, Package, Platform};
use crate::policy::SignaturePolicy;
use crate::proto::common::SignaturePolicyEnvelope;
use crate::proto::lifecycle::chaincode_source::{Local, Type as Source};
use crate::proto::lifecycle::query_chaincode_definitions_result::ChaincodeDefinition;
use crate::proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, ChaincodeSource, CheckCommitReadinessArgs,
    CommitChaincodeDefinitionArgs, QueryChaincodeDefinitionsArgs, QueryChaincodeDefinitionsResult,
};
use crate::proto::protos::{ApplicationPolicy, application_policy};

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
    /// The endorsement policy as Fabric's arguments carry it: an encoded `ApplicationPolicy`,
    /// or nothing for the channel's `Endorsement` policy. A policy that cannot be read is
    /// refused here, before anything is submitted.
    fn validation_parameter(&self) -> anyhow::Result<Vec<u8>> {
        let policy = if let Some(text) = &self.signature_policy {
            let envelope = SignaturePolicy::parse(text)
                .with_context(|| format!("--signature-policy {text:?}"))?
                .to_envelope();
            application_policy::Type::SignaturePolicy(SignaturePolicyEnvelope::decode(
                envelope.as_slice(),
            )?)
        } else {
            match &self.channel_config_policy {
                Some(path) if !path.starts_with('/') => bail!(
                    "--channel-config-policy {path:?} is not a policy path such as \
                     /Channel/Application/Endorsement"
                ),
                Some(path) => application_policy::Type::ChannelConfigPolicyReference(path.clone()),
                None => return Ok(Vec::new()),
            }
        };
        Ok(ApplicationPolicy {
            r#type: Some(policy),
        }
        .encode_to_vec())
    }

    fn sequence(&self) -> anyhow::Result<i64> {
        i64::try_from(self.sequence).context("--sequence is too large")
    }

    /// `_lifecycle`'s arguments approving this definition to run `package_id`, if given.
    pub fn approve_args(
        &self,
        package_id: Option<&str>,
    ) -> anyhow::Result<ApproveChaincodeDefinitionForMyOrgArgs> {
        Ok(ApproveChaincodeDefinitionForMyOrgArgs {
            sequence: self.sequence()?,
            name: self.name.clone(),
            version: self.version.clone(),
            validation_parameter: self.validation_parameter()?,
            init_required: self.init_required,
            source: Some(ChaincodeSource {
                r#type: Some(match package_id {
                    Some(package_id) => Source::LocalPackage(Local {
                        package_id: package_id.to_owned(),
                    }),
                    None => Source::Unavailable(Default::default()),
                }),
            }),
            ..Default::default()
        })
    }

    /// `_lifecycle`'s arguments committing this definition.
    pub fn commit_args(&self) -> anyhow::Result<CommitChaincodeDefinitionArgs> {
        Ok(CommitChaincodeDefinitionArgs {
            sequence: self.sequence()?,
            name: self.name.clone(),
            version: self.version.clone(),
            validation_parameter: self.validation_parameter()?,
            init_required: self.init_required,
            ..Default::default()
        })
    }

    /// `_lifecycle`'s arguments asking which organizations approved this definition.
    pub fn readiness_args(&self) -> anyhow::Result<CheckCommitReadinessArgs> {
        Ok(CheckCommitReadinessArgs {
            sequence: self.sequence()?,
            name: self.name.clone(),
            version: self.version.clone(),
            validation_parameter: self.validation_parameter()?,
            init_required: self.init_required,
            ..Default::default()
        })
    }
}

#[derive(Args)]
pub(super) struct DefinitionArgs {
    #[command(flatten)]
    definition: DefinitionParams,
    /// The installed package to run (approving only; a commit runs the package each
    /// organization approved).
    #[arg(long)]
    package_id: Option<String>,
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
    let installed = install_package(&args.target, bytes).await;
    waiting.finish_and_clear();
    println!("{}", installed?);
    Ok(())
}

/// Stores the package on the node; returns its id.
async fn install_package(target: &TargetArgs, bytes: Vec<u8>) -> anyhow::Result<String> {
    let installed = target
        .client
        .admin(&target.peer)
        .await?
        .install_package(bytes)
        .await?;
    Ok(installed.package_id)
}

/// Approves or commits a definition through `_lifecycle`: calls `function` with the encoded
/// `args` and waits for the transaction's commit; returns the block that holds it.
async fn submit_definition(
    target: &TargetArgs,
    function: &str,
    name: &str,
    args: Vec<u8>,
) -> anyhow::Result<u64> {
    let doing = if function == COMMIT {
        "committing"
    } else {
        "approving"
    };
    let waiting = spinner(format!("{doing} {name}"));
    let committed = target
        .client
        .client(&target.peer)
        .await?
        .invoke(
            &target.channel,
            LIFECYCLE,
            vec![function.as_bytes().to_vec(), args],
            Default::default(),
        )
        .await;
    waiting.finish_and_clear();
    Ok(committed?.block)
}

/// `_lifecycle`'s function approving a definition.
const APPROVE: &str = "ApproveChaincodeDefinitionForMyOrg";
/// `_lifecycle`'s function committing a definition.
const COMMIT: &str = "CommitChaincodeDefinition";

/// Approves (`commit` false) or commits the definition.
pub(super) async fn define(args: &DefinitionArgs, commit: bool) -> anyhow::Result<()> {
    let target = &args.target;
    let definition = &args.definition;
    let (function, encoded) = if commit {
        (COMMIT, definition.commit_args()?.encode_to_vec())
    } else {
        if let Some(package_id) = &args.package_id {
            let packages = target.client.admin(&target.peer).await?.packages().await?;
            if !packages.iter().any(|p| p.package_id == *package_id) {
                bail!("package {package_id} is not installed on {}", target.peer);
            }
        }
        let approve = definition.approve_args(args.package_id.as_deref())?;
        (APPROVE, approve.encode_to_vec())
    };
    let block = submit_definition(target, function, &definition.name, encoded).await?;
    let done = if commit { "committed" } else { "approved" };
    println!(
        "{done} {} {} sequence {} in block {block}",
        definition.name, definition.version, definition.sequence
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
            "  {} {} sequence {}",
            definition.name, definition.version, definition.sequence,
        )?;
    }
    writeln!(out, "Running chaincodes:")?;
    for name in &running {
        writeln!(out, "  {name}")?;
    }
    Ok(())
}

/// The chaincode definitions committed on the target's channel, as `_lifecycle` lists them.
pub(super) async fn committed_definitions(
    target: &TargetArgs,
) -> anyhow::Result<Vec<ChaincodeDefinition>> {
    let answer = target
        .evaluate(
            LIFECYCLE,
            vec![
                b"QueryChaincodeDefinitions".to_vec(),
                QueryChaincodeDefinitionsArgs {}.encode_to_vec(),
            ],
        )
        .await?;
    Ok(QueryChaincodeDefinitionsResult::decode(answer.as_slice())
        .context("_lifecycle answered with something other than its definitions")?
        .chaincode_definitions)
}

/// The sequence the next definition of `name` takes: one more than the committed one, or 1.
async fn next_sequence(target: &TargetArgs, name: &str) -> anyhow::Result<u64> {
    let committed = committed_definitions(target)
        .await?
        .iter()
        .filter(|definition| definition.name == name)
        .map(|definition| definition.sequence)
        .max()
        .unwrap_or(0);
    Ok(u64::try_from(committed).unwrap_or(0) + 1)
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
    let installed = install_package(&args.target, bytes).await;
    waiting.finish_and_clear();
    let package_id = installed?;
    let sequence = next_sequence(&args.target, &args.name).await?;
    let definition = DefinitionParams {
        name: args.name.clone(),
        version: args.version.clone(),
        sequence,
        signature_policy: None,
        channel_config_policy: None,
        init_required: false,
    };
    let approve = definition.approve_args(Some(&package_id))?.encode_to_vec();
    submit_definition(&args.target, APPROVE, &args.name, approve).await?;
    let commit = definition.commit_args()?.encode_to_vec();
    let block = submit_definition(&args.target, COMMIT, &args.name, commit).await?;
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
