//! The `ccvm` command line, in the style of Fabric's `peer` command. Parses arguments, calls the
//! library, prints; holds no logic of its own.

mod builder;
mod channel;
mod lifecycle;
mod lifecycle_queries;
mod progress;

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::client::{Admin, Client, ClientTls, parse_ctor_args};
use crate::config::{Config, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_OPERATIONS_LISTEN};
use crate::msp::{DEFAULT_MSP_ID, Identity};
use crate::node::{Node, dev_organization};

#[derive(Parser)]
#[command(
    name = "ccvm",
    version,
    about = "A Fabric-compatible chaincode runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a peer node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Call chaincode on a running node.
    #[command(subcommand)]
    Chaincode(ChaincodeCommand),
    /// The system chaincodes of a running node.
    #[command(subcommand)]
    Scc(SccCommand),
    /// A channel's chain on a running node.
    #[command(subcommand)]
    Channel(channel::ChannelCommand),
    /// The external builder that lets Fabric's peers run ccvm packages.
    #[command(subcommand)]
    Builder(builder::BuilderCommand),
    /// Print ccvm's version.
    Version,
}

#[derive(Subcommand)]
enum SccCommand {
    /// List the system chaincodes, where each comes from, and whether it runs.
    List(PeerArgs),
    /// Compile a system chaincode again from its file (or the built-in wasm) and swap it in;
    /// transactions in flight finish on the old instance.
    Reload {
        /// The system chaincode.
        name: String,
        #[command(flatten)]
        peer: PeerArgs,
    },
}

#[derive(Args)]
struct PeerArgs {
    /// The node's client address.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    peer: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// Who the command signs as (the identity of an MSP directory, as Fabric's CLI takes it, or the
/// development organization's admin of a node's data directory) and how it reaches the node.
#[derive(Args)]
pub(super) struct ClientArgs {
    /// The node's data directory, whose development admin signs when no MSP directory is given.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// MSP directory of the identity to sign as.
    #[arg(long = "mspconfigpath", env = "CORE_PEER_MSPCONFIGPATH")]
    msp_dir: Option<PathBuf>,
    /// MSP id of that identity.
    #[arg(long = "localmspid", env = "CORE_PEER_LOCALMSPID", default_value = DEFAULT_MSP_ID)]
    msp_id: String,
    /// Address of the node's admin service when it has a listener of its own (`admin_listen`);
    /// the peer address otherwise.
    #[arg(long)]
    admin_address: Option<String>,
    /// Reach the node over TLS.
    #[arg(long, env = "CORE_PEER_TLS_ENABLED")]
    tls: bool,
    /// CA certificate (PEM) of the node's TLS certificate; the development organization's TLS CA
    /// when unset.
    #[arg(long = "cafile", env = "CORE_PEER_TLS_ROOTCERT_FILE")]
    ca_file: Option<PathBuf>,
    /// Client TLS certificate (PEM), for a node that requires client authentication.
    #[arg(
        long = "certfile",
        env = "CORE_PEER_TLS_CLIENTCERT_FILE",
        requires = "key_file"
    )]
    cert_file: Option<PathBuf>,
    /// Client TLS key (PEM).
    #[arg(
        long = "keyfile",
        env = "CORE_PEER_TLS_CLIENTKEY_FILE",
        requires = "cert_file"
    )]
    key_file: Option<PathBuf>,
}

impl ClientArgs {
    /// How to reach the node: TLS files read, or `None` without `--tls`.
    fn tls(&self) -> anyhow::Result<Option<ClientTls>> {
        if !self.tls {
            return Ok(None);
        }
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let ca_file = self
            .ca_file
            .clone()
            .unwrap_or_else(|| dev_organization(&self.data_dir).tls_ca_cert());
        let client = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            _ => None,
        };
        Ok(Some(ClientTls {
            ca_pem: read(&ca_file)?,
            client,
        }))
    }

    /// A client of the node at `peer`.
    pub(super) async fn client(&self, peer: &str) -> anyhow::Result<Client> {
        Ok(Client::connect_with(peer, self.identity()?, self.tls()?.as_ref()).await?)
    }

    /// A connection to the admin service of the node at `peer` (or at `--admin-address`).
    pub(super) async fn admin(&self, peer: &str) -> anyhow::Result<Admin> {
        let addr = self.admin_address.as_deref().unwrap_or(peer);
        Ok(Admin::connect_with(addr, self.identity()?, self.tls()?.as_ref()).await?)
    }

    /// The signing identity.
    pub(super) fn identity(&self) -> anyhow::Result<Identity> {
        match &self.msp_dir {
            Some(dir) => Identity::load(dir, &self.msp_id)
                .with_context(|| format!("loading the identity of {}", dir.display())),
            None => {
                let dir = dev_organization(&self.data_dir).admin_msp_dir();
                Identity::load(&dir, &self.msp_id).with_context(|| {
                    format!(
                        "loading the development admin in {} (start the node once to create it, \
                         or give --mspconfigpath)",
                        dir.display()
                    )
                })
            }
        }
    }
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start the node and serve until interrupted.
    Start(StartArgs),
    /// The health of a running node, from its operations endpoint; fails unless healthy.
    Status {
        /// The node's operations address.
        #[arg(long, default_value = DEFAULT_OPERATIONS_LISTEN)]
        operations: String,
        /// The CA certificate (PEM) of an endpoint served over TLS.
        #[arg(long = "tls-ca")]
        tls_ca: Option<PathBuf>,
        /// A client certificate (PEM) to present over TLS, with --tls-key.
        #[arg(long = "tls-cert", requires = "tls_key", requires = "tls_ca")]
        tls_cert: Option<PathBuf>,
        /// The client certificate's key (PEM).
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

#[derive(Args)]
struct StartArgs {
    /// Accept chaincodes started by hand (they register under their own name).
    #[arg(long)]
    dev: bool,
    /// Directory of the ledger and identities [default: ./ccvm-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Client address (endorser and committer) [default: 127.0.0.1:7051].
    #[arg(long)]
    listen: Option<String>,
    /// Address chaincodes dial [default: 127.0.0.1:7052].
    #[arg(long)]
    chaincode_listen: Option<String>,
    /// Directory of `*.wasm` system chaincodes to run inside the node.
    #[arg(long)]
    scc_dir: Option<PathBuf>,
    /// YAML configuration file; `CCVM_*` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ChaincodeCommand {
    /// Endorse and commit a transaction; prints status and payload.
    Invoke(CallArgs),
    /// Endorse without committing; prints the payload as-is.
    Query(CallArgs),
    /// Write a chaincode package (Fabric 2.x format); prints its package id.
    Package(lifecycle::PackageArgs),
    /// Install a package on a node and record it in `_lifecycle`; prints its package id.
    Install(lifecycle::InstallArgs),
    /// Package, install, approve and commit a chaincode in one step, then start it.
    Deploy(lifecycle::DeployArgs),
    /// Approve a chaincode definition for this node's organization.
    #[command(visible_alias = "approveformyorg")]
    Approve(lifecycle::DefinitionArgs),
    /// Which organizations approved a definition's parameters, as Fabric's CLI prints it.
    #[command(name = "checkcommitreadiness")]
    CheckCommitReadiness(lifecycle_queries::CheckCommitReadinessArgs),
    /// Commit an approved chaincode definition; the chaincode runs on its next call.
    Commit(lifecycle::DefinitionArgs),
    /// List installed packages and committed definitions.
    List(lifecycle::TargetArgs),
    /// The node's installed packages, as Fabric's CLI prints them.
    #[command(name = "queryinstalled")]
    QueryInstalled(lifecycle_queries::QueryInstalledArgs),
    /// The committed definitions, or one with its approvals, as Fabric's CLI prints them.
    #[command(name = "querycommitted")]
    QueryCommitted(lifecycle_queries::QueryCommittedArgs),
    /// Serve a wasm chaincode as a service (chaincode-as-a-service), with Fabric's
    /// CHAINCODE_SERVER_ADDRESS, CHAINCODE_ID and CHAINCODE_TLS_* settings.
    Serve(builder::ServeArgs),
    /// Create a chaincode project on the guest SDK: builds natively and for wasm32-wasip2,
    /// with unit tests on the SDK's mock ledger.
    New(NewArgs),
}

#[derive(Args)]
struct NewArgs {
    /// The chaincode's name, also its cargo package's.
    name: String,
    /// Write it with the contract API (typed transaction methods) instead of the `Chaincode`
    /// trait.
    #[arg(long)]
    contract: bool,
    /// The project's directory; ./NAME by default.
    #[arg(long)]
    path: Option<PathBuf>,
    /// The guest SDK's directory (guest-sdk in ccvm's source); this build's own by default.
    #[arg(long)]
    sdk: Option<PathBuf>,
}

#[derive(Args)]
struct CallArgs {
    /// The node's client address (Fabric's `CORE_PEER_ADDRESS`).
    #[arg(long, env = "CORE_PEER_ADDRESS", default_value = DEFAULT_LISTEN)]
    peer: String,
    /// The endorsing nodes, as Fabric's CLI takes them (repeat it for several): an invoke
    /// collects an endorsement from each, the first of which answers a query; --peer when
    /// none is given.
    #[arg(long = "peerAddresses")]
    peer_addresses: Vec<String>,
    /// The ordering service an invoke submits to; the peer's own when unset.
    #[arg(short = 'o', long = "orderer")]
    orderer: Option<String>,
    /// Wait for the transaction's commit: an invoke always does, and reports it.
    #[arg(long = "waitForEvent")]
    wait_for_event: bool,
    /// Print a query's payload as hexadecimal.
    #[arg(short = 'x', long, conflicts_with = "raw")]
    hex: bool,
    /// Print a query's payload as a list of byte values, as Fabric's CLI does with `-r`.
    #[arg(short = 'r', long)]
    raw: bool,
    /// The channel.
    #[arg(short = 'C', long = "channelID")]
    channel: String,
    /// The chaincode name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// Arguments: '{"Args":["fn","a1"]}' or '{"function":"fn","Args":["a1"]}'.
    #[arg(short = 'c', long = "ctor")]
    ctor: String,
    /// Transient data: a JSON object whose values are base64, as Fabric's CLI takes it.
    #[arg(long)]
    transient: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// The runtime the command runs on: `worker_threads` threads, or tokio's default (one per
/// core, or `TOKIO_WORKER_THREADS`).
fn runtime_with(worker_threads: Option<NonZeroUsize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads.get());
    }
    builder.enable_all().build()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.command {
        Command::Node(NodeCommand::Start(args)) => match Config::load(args.config.as_deref()) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("Error: loading configuration: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    if let Err(e) = init_logging(config.as_ref()) {
        eprintln!("Error: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match cli.command {
        Command::Builder(command) => return builder::run(command),
        Command::Chaincode(ChaincodeCommand::Serve(args)) => return builder::serve(&args),
        command => Cli { command },
    };
    let worker_threads = config.as_ref().and_then(|config| config.worker_threads);
    let runtime = match runtime_with(worker_threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Creates a chaincode project and says what to do next.
fn new_project(args: &NewArgs) -> anyhow::Result<()> {
    use crate::scaffold::{Style, create, default_sdk_path};
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let style = if args.contract {
        Style::Contract
    } else {
        Style::Plain
    };
    let sdk = args.sdk.clone().unwrap_or_else(default_sdk_path);
    let files = create(&dir, &args.name, style, &sdk)?;
    println!("created chaincode {} in {}:", args.name, dir.display());
    for file in files {
        println!("  {file}");
    }
    println!(
        "next: cd {} && cargo test; its README.md shows how to run and deploy it",
        dir.display()
    );
    Ok(())
}

/// Installs logging from Fabric's `FABRIC_LOGGING_SPEC` (or `CCVM_LOG`) and
/// `FABRIC_LOGGING_FORMAT`, else the node's configuration, else `info` in text.
fn init_logging(config: Option<&Config>) -> Result<(), crate::logging::LogSpecError> {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let settings = config.map(|config| &config.logging);
    let spec = env("FABRIC_LOGGING_SPEC")
        .or_else(|| env("CCVM_LOG"))
        .or_else(|| settings.and_then(|logging| logging.spec.clone()))
        .unwrap_or_else(|| crate::logging::DEFAULT_SPEC.to_owned());
    let format = env("FABRIC_LOGGING_FORMAT")
        .or_else(|| settings.and_then(|logging| logging.format.clone()))
        .map_or(crate::logging::LogFormat::Text, |name| {
            crate::logging::LogFormat::from_name(&name)
        });
    crate::logging::install(&spec, format)
}

async fn run(cli: Cli, config: Option<Config>) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(NodeCommand::Start(args)) => {
            start(args, config.context("the configuration is loaded first")?).await
        }
        Command::Node(NodeCommand::Status {
            operations,
            tls_ca,
            tls_cert,
            tls_key,
        }) => {
            let tls = match &tls_ca {
                None => None,
                Some(ca) => {
                    let client = tls_cert.as_deref().zip(tls_key.as_deref());
                    Some(crate::operations_client::OperationsTls::new(ca, client)?)
                }
            };
            node_status(&operations, tls.as_ref()).await
        }
        Command::Version => {
            println!("ccvm {}", crate::node::VERSION);
            Ok(())
        }
        Command::Chaincode(ChaincodeCommand::Invoke(args)) => call(args, true).await,
        Command::Chaincode(ChaincodeCommand::Query(args)) => call(args, false).await,
        Command::Chaincode(ChaincodeCommand::Package(args)) => lifecycle::package(&args),
        Command::Chaincode(ChaincodeCommand::Install(args)) => lifecycle::install(&args).await,
        Command::Chaincode(ChaincodeCommand::Deploy(args)) => lifecycle::deploy(&args).await,
        Command::Chaincode(ChaincodeCommand::Approve(args)) => {
            lifecycle::define(&args, false).await
        }
        Command::Chaincode(ChaincodeCommand::Commit(args)) => lifecycle::define(&args, true).await,
        Command::Chaincode(ChaincodeCommand::List(args)) => lifecycle::list(&args).await,
        Command::Chaincode(ChaincodeCommand::CheckCommitReadiness(args)) => {
            lifecycle_queries::check_commit_readiness(&args).await
        }
        Command::Chaincode(ChaincodeCommand::QueryInstalled(args)) => {
            lifecycle_queries::query_installed(&args).await
        }
        Command::Chaincode(ChaincodeCommand::QueryCommitted(args)) => {
            lifecycle_queries::query_committed(&args).await
        }
        Command::Chaincode(ChaincodeCommand::New(args)) => new_project(&args),
        Command::Scc(SccCommand::List(args)) => list_system_chaincodes(&args).await,
        Command::Channel(command) => channel::run(command).await,
        Command::Builder(_) | Command::Chaincode(ChaincodeCommand::Serve(_)) => {
            unreachable!("run before the runtime starts")
        }
        Command::Scc(SccCommand::Reload { name, peer }) => {
            peer.client
                .admin(&peer.peer)
                .await?
                .reload_system_chaincode(&name)
                .await?;
            println!("reloaded {name}");
            Ok(())
        }
    }
}

async fn list_system_chaincodes(args: &PeerArgs) -> anyhow::Result<()> {
    let chaincodes = args
        .client
        .admin(&args.peer)
        .await?
        .system_chaincodes()
        .await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{:<20} {:<8} origin", "name", "state")?;
    for chaincode in chaincodes {
        let state = if chaincode.running { "running" } else { "idle" };
        writeln!(
            stdout,
            "{:<20} {state:<8} {}",
            chaincode.name, chaincode.origin
        )?;
    }
    Ok(())
}

async fn start(args: StartArgs, mut config: Config) -> anyhow::Result<()> {
    config.dev_mode |= args.dev;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(listen) = args.chaincode_listen {
        config.chaincode_listen = listen;
    }
    if let Some(dir) = args.scc_dir {
        config.inproc.chaincode_dir = Some(dir);
    }
    let node = Node::start(&config).await?;
    let operations = node
        .operations_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    println!(
        "ccvm node listening: peer {} chaincode {} operations {operations}",
        node.peer_addr(),
        node.chaincode_addr()
    );
    node.run_until(shutdown_signal()).await?;
    Ok(())
}

/// Asks the operations endpoint at `address` for the node's health and prints it.
async fn node_status(
    address: &str,
    tls: Option<&crate::operations_client::OperationsTls>,
) -> anyhow::Result<()> {
    let (_, body) =
        crate::operations_client::request_over(address, tls, "GET", "/healthz", "").await?;
    let health: serde_json::Value =
        serde_json::from_str(&body).context("the operations endpoint sent no health report")?;
    let status = health["status"].as_str().unwrap_or("unknown");
    println!("{status}");
    let failed = health["failed_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for check in &failed {
        println!(
            "  {}: {}",
            check["component"].as_str().unwrap_or("?"),
            check["reason"].as_str().unwrap_or("?")
        );
    }
    anyhow::ensure!(status == "OK", "the node is not healthy");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, the signals that stop a node.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn call(args: CallArgs, commit: bool) -> anyhow::Result<()> {
    let ctor = parse_ctor_args(&args.ctor)?;
    let transient = match &args.transient {
        Some(json) => parse_transient(json)?,
        None => Default::default(),
    };
    let (peer, others) = match args.peer_addresses.split_first() {
        Some((first, others)) => (first.as_str(), others),
        None => (args.peer.as_str(), &[][..]),
    };
    let client = args.client.client(peer).await?;
    let mut endorsers = Vec::with_capacity(others.len());
    for other in others {
        endorsers.push(args.client.client(other).await?);
    }
    let orderer = match &args.orderer {
        Some(addr) if addr != peer => Some(args.client.client(addr).await?),
        _ => None,
    };
    progress::launch(args.client.admin(peer).await, &args.name)
        .await
        .map_err(anyhow::Error::msg)?;
    let verb = if commit { "invoking" } else { "querying" };
    let waiting = progress::spinner(format!("{verb} {} on {}", args.name, args.channel));
    let mut stdout = std::io::stdout().lock();
    if commit {
        let committed = client
            .invoke_endorsed_by(
                &endorsers,
                orderer.as_ref().unwrap_or(&client),
                &args.channel,
                &args.name,
                ctor,
                transient,
            )
            .await;
        waiting.finish_and_clear();
        let committed = committed?;
        writeln!(stdout, "status: {}", committed.response.status)?;
        writeln!(
            stdout,
            "payload: {}",
            String::from_utf8_lossy(&committed.response.payload)
        )?;
        eprintln!(
            "committed transaction {} in block {}",
            committed.tx_id, committed.block
        );
    } else {
        let response = client
            .query(&args.channel, &args.name, ctor, transient)
            .await;
        waiting.finish_and_clear();
        let payload = response?.payload;
        if args.hex {
            writeln!(stdout, "{}", hex::encode(&payload))?;
        } else if args.raw {
            let values: Vec<String> = payload.iter().map(u8::to_string).collect();
            writeln!(stdout, "[{}]", values.join(" "))?;
        } else {
            stdout.write_all(&payload)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// Fabric's `--transient`: a JSON object whose values are base64.
fn parse_transient(json: &str) -> anyhow::Result<std::collections::HashMap<String, Vec<u8>>> {
    use base64::Engine as _;
    serde_json::from_str::<std::collections::HashMap<String, String>>(json)
        .context("--transient must be a JSON object of base64 strings")?
        .into_iter()
        .map(|(key, value)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_bytes())
                .with_context(|| format!("--transient value of {key} is not base64"))?;
            Ok((key, bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_configured_worker_threads() -> std::io::Result<()> {
        let one = runtime_with(NonZeroUsize::new(1))?;
        assert_eq!(one.metrics().num_workers(), 1);
        let three = runtime_with(NonZeroUsize::new(3))?;
        assert_eq!(three.metrics().num_workers(), 3);
        Ok(())
    }
}
