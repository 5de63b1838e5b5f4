//! Starts real components for the tests: a node on `127.0.0.1:0` with a temporary data directory,
//! and chaincode processes (the Rust examples, Node chaincodes on fabric-shim) that dial it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ccvm::client::{Client, ClientTls, Committed};
use ccvm::config::Config;
use ccvm::container::docker::static_cc;
use ccvm::msp::Identity;
use ccvm::msp::dev_org::DevOrganization;
use ccvm::node::{LIFECYCLE, Node, dev_organization};
use ccvm::package::{CodeFile, Package, Platform};
use ccvm::policy::SignaturePolicy;
use ccvm::proto::Message;
use ccvm::proto::common::SignaturePolicyEnvelope;
use ccvm::proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, ChaincodeSource, CheckCommitReadinessArgs,
    CommitChaincodeDefinitionArgs, chaincode_source,
};
use ccvm::proto::protos::{ApplicationPolicy, Response, application_policy};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// The channel every node has.
pub const CHANNEL: &str = "mychannel";
/// How long a Node client script may run before a test fails.
const NODE_CLIENT_DEADLINE: Duration = Duration::from_secs(180);
/// How long a chaincode may take to register before a test fails.
const REGISTER_DEADLINE: Duration = Duration::from_secs(60);

/// A node running in this process, with a client signing as its development identity.
pub struct TestNode {
    node: Option<Node>,
    config: Config,
    client_msp_dir: PathBuf,
    _data: TempDir,
    pub client: Client,
}

impl TestNode {
    /// A dev-mode node with default settings.
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// A dev-mode node with settings adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut config = dev_config(&data);
        adjust(&mut config);
        let client_msp_dir = dev_organization(&config.data_dir).admin_msp_dir();
        Self::launched(config, data, client_msp_dir).await
    }

    /// A dev-mode node acting as the peer of `org` (an organization in the development layout)
    /// under `msp_id`, with a client signing as its admin.
    pub async fn start_for(
        org: &DevOrganization,
        msp_id: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut config = Config {
            msp_id: msp_id.to_owned(),
            msp_dir: Some(org.peer_msp_dir()),
            ..dev_config(&data)
        };
        adjust(&mut config);
        Self::launched(config, data, org.admin_msp_dir()).await
    }

    async fn launched(config: Config, data: TempDir, client_msp_dir: PathBuf) -> Result<Self> {
        let (node, client) = launch(&config, &client_msp_dir).await?;
        Ok(Self {
            node: Some(node),
            config,
            client_msp_dir,
            _data: data,
            client,
        })
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("node is running")
    }

    /// Where chaincodes dial.
    pub fn chaincode_addr(&self) -> String {
        self.node().chaincode_addr().to_string()
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A connection to the node's admin service as its client's identity (an admin).
    pub async fn admin(&self) -> Result<ccvm::client::Admin> {
        let identity = Identity::load(&self.client_msp_dir, &self.config.msp_id)?;
        let tls = client_tls(&self.config, &self.client_msp_dir)?;
        Ok(ccvm::client::Admin::connect_with(
            &self.node().admin_addr().to_string(),
            identity,
            tls.as_ref(),
        )
        .await?)
    }

    /// The node itself.
    pub fn inner(&self) -> &Node {
        self.node()
    }

    /// Stops the node and starts it again on the same data directory and ports.
    pub async fn restart(&mut self) -> Result<()> {
        self.restart_with(|_| {}).await
    }

    /// Stops the node and starts it again on the same data directory and ports, with its
    /// settings adjusted by `adjust`.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) -> Result<()> {
        adjust(&mut self.config);
        let node = self.node.take().expect("node is running");
        self.config.listen = node.peer_addr().to_string();
        self.config.chaincode_listen = node.chaincode_addr().to_string();
        node.shutdown().await?;
        let (node, client) = launch(&self.config, &self.client_msp_dir).await?;
        self.node = Some(node);
        self.client = client;
        Ok(())
    }

    /// Waits until a chaincode of that name has registered.
    pub async fn wait_registered(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + REGISTER_DEADLINE;
        while self.node().support().registry().get(name).is_none() {
            if Instant::now() > deadline {
                bail!("chaincode {name} did not register within {REGISTER_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Waits until the chaincode is running at least one transaction.
    pub async fn wait_until_running_tx(&self, name: &str) -> Result<()> {
        self.wait_until_running(name, 1).await
    }

    /// Waits until the chaincode's instances are running at least `count` transactions.
    pub async fn wait_until_running(&self, name: &str, count: usize) -> Result<()> {
        let deadline = Instant::now() + REGISTER_DEADLINE;
        let registry = self.node().support().registry();
        while registry.running_transactions(name) < count {
            if Instant::now() > deadline {
                bail!("chaincode {name} never ran {count} transactions at once");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Waits until no chaincode of that name is registered.
    pub async fn wait_deregistered(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + REGISTER_DEADLINE;
        while self.node().support().registry().get(name).is_some() {
            if Instant::now() > deadline {
                bail!("chaincode {name} stayed registered");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Endorses and commits; fails on an error status or an invalid transaction.
    pub async fn invoke(&self, chaincode: &str, args: &[&str]) -> Result<Committed> {
        Ok(self
            .client
            .invoke(CHANNEL, chaincode, to_args(args), HashMap::new())
            .await?)
    }

    /// Endorses and commits a call whose arguments are raw bytes.
    pub async fn invoke_bytes(&self, chaincode: &str, args: Vec<Vec<u8>>) -> Result<Committed> {
        Ok(self
            .client
            .invoke(CHANNEL, chaincode, args, HashMap::new())
            .await?)
    }

    /// Endorses without committing; fails on an error status.
    pub async fn query(&self, chaincode: &str, args: &[&str]) -> Result<Response> {
        self.query_bytes(chaincode, to_args(args)).await
    }

    /// A query whose arguments are raw bytes.
    pub async fn query_bytes(&self, chaincode: &str, args: Vec<Vec<u8>>) -> Result<Response> {
        Ok(self
            .client
            .query(CHANNEL, chaincode, args, HashMap::new())
            .await?)
    }

    /// The query's payload as text.
    pub async fn query_text(&self, chaincode: &str, args: &[&str]) -> Result<String> {
        let response = self.query(chaincode, args).await?;
        Ok(String::from_utf8(response.payload)?)
    }

    /// The query's payload as JSON.
    pub async fn query_json(&self, chaincode: &str, args: &[&str]) -> Result<serde_json::Value> {
        let response = self.query(chaincode, args).await?;
        Ok(serde_json::from_slice(&response.payload)?)
    }
}

/// A dev-mode node's settings in `data`, on free loopback ports, sharing the tests' wasm cache.
fn dev_config(data: &TempDir) -> Config {
    let mut config = Config {
        data_dir: data.path().to_owned(),
        listen: "127.0.0.1:0".to_owned(),
        chaincode_listen: "127.0.0.1:0".to_owned(),
        dev_mode: true,
        ..Config::default()
    };
    config.inproc.cache_dir = Some(target_dir().join("wasm-cache"));
    config.operations.listen_address = Some("127.0.0.1:0".to_owned());
    config
}

async fn launch(config: &Config, client_msp_dir: &Path) -> Result<(Node, Client)> {
    let node = Node::start(config).await?;
    let identity = Identity::load(client_msp_dir, &config.msp_id)?;
    let tls = client_tls(config, client_msp_dir)?;
    let client =
        Client::connect_with(&node.peer_addr().to_string(), identity, tls.as_ref()).await?;
    Ok((node, client))
}

/// How a member whose MSP directory is `msp_dir` reaches the node configured by `config`: over
/// TLS when the node serves it, trusting the organization's TLS CA from the member's `tls`
/// directory, with the member's client certificate when the node requires one.
pub fn client_tls(config: &Config, msp_dir: &Path) -> Result<Option<ClientTls>> {
    if !config.peer_tls() {
        return Ok(None);
    }
    let tls_dir = msp_dir.with_file_name("tls");
    let client = if config.tls.client_auth_required {
        Some((
            std::fs::read(tls_dir.join("client.crt"))?,
            std::fs::read(tls_dir.join("client.key"))?,
        ))
    } else {
        None
    };
    Ok(Some(ClientTls {
        ca_pem: std::fs::read(tls_dir.join("ca.crt"))?,
        client,
    }))
}

/// The development organization's admin of the node configured by `config`.
pub fn admin_identity(config: &Config) -> Result<Identity> {
    let dir = dev_organization(&config.data_dir).admin_msp_dir();
    Ok(Identity::load(&dir, &config.msp_id)?)
}

/// The development organization's user (a client, not an admin) of the node configured by
/// `config`.
pub fn user_identity(config: &Config) -> Result<Identity> {
    let dir = dev_organization(&config.data_dir).user_msp_dir();
    Ok(Identity::load(&dir, &config.msp_id)?)
}

/// This process's resident set, in bytes (`VmRSS` of `/proc/self/status`).
#[allow(dead_code, reason = "the benches measure memory; the tests do not")]
pub fn resident_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Arguments as the bytes a proposal carries.
pub fn to_args(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// A chaincode process, killed when dropped.
pub struct ChaincodeProcess {
    /// The process, killed when this is dropped.
    pub child: Child,
}

impl ChaincodeProcess {
    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

impl Drop for ChaincodeProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_owned()
}

/// The examples every build below compiles.
const EXAMPLES: [&str; 6] = ["-p", "kv", "-p", "asset-transfer", "-p", "hostile"];

/// Runs `cargo build` with `args` at most once per `cell`, remembering the outcome.
fn build_once(cell: &OnceLock<Result<(), String>>, args: &[&str]) -> Result<()> {
    cell.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        if let Some(compiler) = static_cc::static_c_compiler() {
            cargo.env(static_cc::STATIC_TARGET_CC, compiler);
        }
        let status = cargo
            .args(["build", "--quiet"])
            .args(args)
            .args(EXAMPLES)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("building the examples {args:?} failed: {status}"))
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Builds the Rust example chaincodes once per run, in the profile of the running test or bench,
/// and returns the path of one.
pub fn example_binary(name: &str) -> Result<PathBuf> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile: &[&str] = if target_dir().ends_with("release") {
        &["--release"]
    } else {
        &[]
    };
    build_once(&BUILT, profile)?;
    Ok(target_dir().join(name))
}

/// Runs cargo with `args` in the project at `dir`, building into this workspace's target
/// directory so that the dependencies it shares with the workspace are built once; its output,
/// or an error with its stderr.
pub async fn cargo_in(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    let mut cargo = Command::new(env!("CARGO"));
    let output = cargo
        .args(args)
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            target_dir().parent().expect("target root"),
        )
        .stdin(Stdio::null())
        .output()
        .await?;
    ensure!(
        output.status.success(),
        "cargo {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// The path of a file cargo built into this workspace's target directory, below `target/`.
pub fn built_file(relative: &str) -> PathBuf {
    target_dir().parent().expect("target root").join(relative)
}

/// Starts a Rust example chaincode registering as `name` with the node.
pub fn rust_chaincode(node: &TestNode, binary: &str, name: &str) -> Result<ChaincodeProcess> {
    let path = example_binary(binary)?;
    let child = Command::new(&path)
        .args(["--peer.address", &node.chaincode_addr()])
        .env("CORE_CHAINCODE_ID_NAME", name)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    Ok(ChaincodeProcess { child })
}

/// The directory of the Node chaincodes and their `node_modules`.
fn node_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/fabric-shim").exists() {
        bail!(
            "fabric-shim is not installed: run `npm ci` in {}",
            dir.display()
        );
    }
    Ok(dir)
}

/// Starts a Node chaincode on Fabric's fabric-shim: `shim-kv.js` (low-level API) or the
/// fabric-contract-api contract in `contract.js`.
pub fn node_chaincode(node: &TestNode, script: &str, name: &str) -> Result<ChaincodeProcess> {
    let dir = node_dir()?;
    let mut command = Command::new("node");
    if script == "contract.js" {
        command.args([
            "node_modules/fabric-shim/cli.js",
            "start",
            "--module-path",
            ".",
        ]);
    } else {
        command.arg(script);
    }
    let child = command
        .args(["--peer.address", &node.chaincode_addr()])
        .env("CORE_CHAINCODE_ID_NAME", name)
        .env("CORE_CHAINCODE_LOGGING_LEVEL", "warning")
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    Ok(ChaincodeProcess { child })
}

/// Builds a Rust example for `wasm32-wasip2` once per run and returns the component's bytes.
pub fn wasm_example(name: &str) -> Result<Vec<u8>> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    build_once(&BUILT, &["--release", "--target", "wasm32-wasip2"])?;
    let path = target_dir()
        .parent()
        .expect("target root")
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Builds a Rust example as a static `x86_64-unknown-linux-musl` executable once per run, for
/// `FROM scratch` images, and returns its bytes.
pub fn static_example(name: &str) -> Result<Vec<u8>> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    build_once(
        &BUILT,
        &["--release", "--target", "x86_64-unknown-linux-musl"],
    )?;
    let path = target_dir()
        .parent()
        .expect("target root")
        .join("x86_64-unknown-linux-musl/release")
        .join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// The Docker engine the tests use: `CCVM_TEST_DOCKER_HOST`, which `scripts/test.sh` sets after
/// starting one. Without it the Docker tests are skipped, except in CI, where they must run.
pub fn docker_endpoint() -> Result<Option<String>> {
    match std::env::var("CCVM_TEST_DOCKER_HOST") {
        Ok(endpoint) => Ok(Some(endpoint)),
        Err(_) if std::env::var_os("CI").is_some() => {
            bail!("CCVM_TEST_DOCKER_HOST is not set: CI must run the Docker tests")
        }
        Err(_) => {
            report_skipped("no Docker engine (set CCVM_TEST_DOCKER_HOST, or run scripts/test.sh)");
            Ok(None)
        }
    }
}

/// The Fabric release the tests run Fabric's tools from.
pub const FABRIC_VERSION: &str = "2.5.9";

/// The `bin/` directory of Fabric's release [`FABRIC_VERSION`] (see [`fabric_release`]).
pub fn fabric_bin() -> Result<Option<PathBuf>> {
    Ok(fabric_release(FABRIC_VERSION)?.map(|release| release.join("bin")))
}

/// The directory (`bin/`, `config/`) of Fabric's release `version`: `CCVM_FABRIC_DIR` when set
/// (for [`FABRIC_VERSION`]; `CCVM_FABRIC_DIR_<major>_<minor>` for others), else the release
/// archive (`CCVM_FABRIC_ARCHIVES`, by default `../shared/fabric` beside the project) unpacked
/// once under the target directory. Skipped without one, except in CI.
pub fn fabric_release(version: &str) -> Result<Option<PathBuf>> {
    static UNPACKED: Mutex<Vec<(String, Result<PathBuf, String>)>> = Mutex::new(Vec::new());
    let mut unpacked = UNPACKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let found = match unpacked.iter().find(|(known, _)| known == version) {
        Some((_, found)) => found.clone(),
        None => {
            let found = unpack_fabric(version);
            unpacked.push((version.to_owned(), found.clone()));
            found
        }
    };
    drop(unpacked);
    match found {
        Ok(release) => Ok(Some(release)),
        Err(why) if std::env::var_os("CI").is_some() => {
            bail!("{why}: CI must run the tests against Fabric's tools")
        }
        Err(why) => {
            report_skipped(&why);
            Ok(None)
        }
    }
}

fn unpack_fabric(version: &str) -> Result<PathBuf, String> {
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join("_");
    let variable = if version == FABRIC_VERSION {
        "CCVM_FABRIC_DIR".to_owned()
    } else {
        format!("CCVM_FABRIC_DIR_{minor}")
    };
    if let Some(dir) = std::env::var_os(variable) {
        return Ok(PathBuf::from(dir));
    }
    let archives = std::env::var_os("CCVM_FABRIC_ARCHIVES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric"),
        PathBuf::from,
    );
    let archive = archives.join(format!("hyperledger-fabric-linux-amd64-{version}.tar.gz"));
    if !archive.exists() {
        return Err(format!(
            "no Fabric release archive at {}",
            archive.display()
        ));
    }
    let dir = target_dir().join(format!("fabric-{version}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .args(["bin", "config"])
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar could not unpack {}", archive.display()));
    }
    Ok(dir)
}

/// The test engine's TCP listener that requires mutual TLS, and the directory of the client's
/// `ca.pem`, `cert.pem` and `key.pem` (`CCVM_TEST_DOCKER_TLS_HOST`, `CCVM_TEST_DOCKER_CERT_PATH`,
/// set by `scripts/test.sh`). Skipped without them, except in CI.
pub fn docker_tls_endpoint() -> Result<Option<(String, PathBuf)>> {
    match (
        std::env::var("CCVM_TEST_DOCKER_TLS_HOST"),
        std::env::var_os("CCVM_TEST_DOCKER_CERT_PATH"),
    ) {
        (Ok(endpoint), Some(certs)) => Ok(Some((endpoint, PathBuf::from(certs)))),
        _ if std::env::var_os("CI").is_some() => {
            bail!("CCVM_TEST_DOCKER_TLS_HOST is not set: CI must run the remote engine tests")
        }
        _ => {
            report_skipped("no TLS Docker engine (run scripts/test.sh)");
            Ok(None)
        }
    }
}

/// Says, past the test harness's output capture, that the running test did not run its
/// checks: libtest has no "skipped" outcome, so a skipped test is listed as passed, and this
/// line is what tells it apart.
fn report_skipped(why: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A chaincode definition, as `_lifecycle`'s arguments (Fabric's messages) carry it.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleDefinition<'a> {
    /// The chaincode.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its sequence.
    pub sequence: i64,
    /// Fabric's signature-policy text, a channel policy path, or empty for the channel's
    /// `Endorsement` policy.
    pub policy: &'a str,
    /// The package an approval names; empty for none.
    pub package_id: &'a str,
}

impl<'a> LifecycleDefinition<'a> {
    /// Version 1.0, sequence 1 of `name`, under the channel's policy, running `package_id`.
    pub fn first(name: &'a str, package_id: &'a str) -> Self {
        Self {
            name,
            version: "1.0",
            sequence: 1,
            policy: "",
            package_id,
        }
    }

    /// The policy as an encoded `ApplicationPolicy`, or nothing for the channel's default.
    pub fn validation_parameter(&self) -> Vec<u8> {
        let policy = match self.policy {
            "" => return Vec::new(),
            path if path.starts_with('/') => {
                application_policy::Type::ChannelConfigPolicyReference(path.to_owned())
            }
            text => application_policy::Type::SignaturePolicy(
                SignaturePolicyEnvelope::decode(
                    SignaturePolicy::parse(text)
                        .expect("a policy that parses")
                        .to_envelope()
                        .as_slice(),
                )
                .expect("an envelope"),
            ),
        };
        ApplicationPolicy {
            r#type: Some(policy),
        }
        .encode_to_vec()
    }

    /// `_lifecycle`'s arguments approving the definition.
    pub fn approve(&self) -> Vec<Vec<u8>> {
        let args = ApproveChaincodeDefinitionForMyOrgArgs {
            sequence: self.sequence,
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            validation_parameter: self.validation_parameter(),
            source: Some(ChaincodeSource {
                r#type: Some(chaincode_source::Type::LocalPackage(
                    chaincode_source::Local {
                        package_id: self.package_id.to_owned(),
                    },
                )),
            }),
            ..Default::default()
        };
        vec![
            b"ApproveChaincodeDefinitionForMyOrg".to_vec(),
            args.encode_to_vec(),
        ]
    }

    /// `_lifecycle`'s arguments committing the definition.
    pub fn commit(&self) -> Vec<Vec<u8>> {
        let args = CommitChaincodeDefinitionArgs {
            sequence: self.sequence,
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            validation_parameter: self.validation_parameter(),
            ..Default::default()
        };
        vec![b"CommitChaincodeDefinition".to_vec(), args.encode_to_vec()]
    }

    /// `_lifecycle`'s arguments asking who approved the definition.
    pub fn readiness(&self) -> Vec<Vec<u8>> {
        let args = CheckCommitReadinessArgs {
            sequence: self.sequence,
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            validation_parameter: self.validation_parameter(),
            ..Default::default()
        };
        vec![b"CheckCommitReadiness".to_vec(), args.encode_to_vec()]
    }
}

/// Approves and commits version 1.0, sequence 1 of chaincode `name`, running the installed
/// package `package_id`.
pub async fn commit_definition(node: &TestNode, name: &str, package_id: &str) -> Result<()> {
    let definition = LifecycleDefinition::first(name, package_id);
    node.invoke_bytes(LIFECYCLE, definition.approve()).await?;
    node.invoke_bytes(LIFECYCLE, definition.commit()).await?;
    Ok(())
}

/// Installs the example `example` as a binary package and commits its definition as `name`;
/// returns the package id.
pub async fn deploy(node: &TestNode, example: &str, name: &str) -> Result<String> {
    let binary = static_example(example)?;
    let package = Package::build(
        &format!("{example}_1.0"),
        Platform::Binary,
        &[CodeFile::new("chaincode", binary, 0o755)],
    )?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(node, name, &installed.id).await?;
    Ok(installed.id)
}

/// Installs the example `example`, built for `wasm32-wasip2`, as a `wasm` package and commits
/// its definition as `name`; returns the package id.
pub async fn deploy_wasm(node: &TestNode, example: &str, name: &str) -> Result<String> {
    let package = Package::build(
        &format!("{example}_wasm_1.0"),
        Platform::Wasm,
        &[CodeFile::new(
            "chaincode.wasm",
            wasm_example(example)?,
            0o644,
        )],
    )?;
    let installed = node.inner().packages().install(&package)?;
    commit_definition(node, name, &installed.id).await?;
    Ok(installed.id)
}

/// A node (not in dev mode) on the test engine, with names of its own so tests do not share
/// containers, and settings adjusted by `adjust`.
pub async fn docker_node_with(
    endpoint: String,
    adjust: impl FnOnce(&mut Config),
) -> Result<TestNode> {
    TestNode::start_with(|config| {
        config.dev_mode = false;
        config.docker.endpoint = endpoint;
        config.docker.network_id = "ccvmtest".to_owned();
        let unique = config
            .data_dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .trim_start_matches(".tmp")
            .to_owned();
        config.docker.peer_id = format!("peer{unique}");
        adjust(config);
    })
    .await
}

/// A `ccaas` package file, labelled `label`, whose `connection.json` is `connection`.
pub fn ccaas_package(label: &str, connection: &serde_json::Value) -> Result<Vec<u8>> {
    Ok(Package::build(
        label,
        Platform::Ccaas,
        &[CodeFile::new(
            "connection.json",
            connection.to_string().into_bytes(),
            0o644,
        )],
    )?)
}

/// Starts Fabric's Node shim as a chaincode server (chaincode as a service) on `address`, with
/// package id `ccid`; the node dials it.
pub fn node_chaincode_server(address: &str, ccid: &str) -> Result<ChaincodeProcess> {
    let child = Command::new("node")
        .arg("shim-kv.js")
        .env("CHAINCODE_SERVER_ADDRESS", address)
        .env("CORE_CHAINCODE_ID_NAME", ccid)
        .env("CORE_CHAINCODE_LOGGING_LEVEL", "warning")
        .current_dir(node_dir()?)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    Ok(ChaincodeProcess { child })
}

/// Evaluates `args` (function first) on `chaincode` through Fabric's Node SDK
/// (`fabric-network` 2.2, discovery off) as the identity of `msp_dir` in `msp_id`; the SDK's
/// answer, `{"ok": true, "payload": ...}` or `{"ok": false, "error": ...}`.
pub async fn node_sdk_evaluate(
    node: &TestNode,
    msp_dir: &Path,
    msp_id: &str,
    chaincode: &str,
    args: &[&str],
) -> Result<serde_json::Value> {
    let args = serde_json::to_string(args)?;
    node_client(
        "sdk-evaluate.js",
        node,
        msp_dir,
        msp_id,
        chaincode,
        &[("ARGS", &args)],
    )
    .await
}

/// Runs `script`, a client on one of Fabric's Node SDKs in `tests/node`, against `node` as the
/// identity in `msp_dir`, with `chaincode` and further settings `env`; returns the JSON it
/// prints last.
pub async fn node_client(
    script: &str,
    node: &TestNode,
    msp_dir: &Path,
    msp_id: &str,
    chaincode: &str,
    env: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let running = Command::new("node")
        .arg(script)
        .env("PEER", node.inner().peer_addr().to_string())
        .env("MSP_DIR", msp_dir)
        .env("MSP_ID", msp_id)
        .env("CHANNEL", CHANNEL)
        .env("CHAINCODE", chaincode)
        .envs(env.iter().copied())
        .current_dir(node_dir()?)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(NODE_CLIENT_DEADLINE, running)
        .await
        .with_context(|| format!("{script} did not finish within {NODE_CLIENT_DEADLINE:?}"))?
        .context("running node (is Node.js installed?)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(answer).with_context(|| {
        format!(
            "{script} printed no answer: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs the `ccvm` binary with `args`, logging only warnings.
pub async fn run_ccvm(args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(args)
        .env("CCVM_LOG", "warn")
        .output()
        .await?)
}

/// A client of the test engine, for doing to containers what an operator would.
pub async fn docker_engine(endpoint: &str) -> Result<bollard::Docker> {
    let path = endpoint.trim_start_matches("unix://");
    let docker = bollard::Docker::connect_with_unix(path, 60, bollard::API_DEFAULT_VERSION)?;
    Ok(docker.negotiate_version().await?)
}

/// A socket that forwards every connection to the test engine's socket until stopped: the
/// engine goes away for a node (connections cut, socket gone) and comes back, while the engine
/// itself and the other tests' nodes are untouched.
pub struct EngineProxy {
    socket: PathBuf,
    engine: PathBuf,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl EngineProxy {
    /// Serves `socket`, forwarding to the engine at `endpoint` (`unix://…`).
    pub fn start(socket: PathBuf, endpoint: &str) -> Result<Self> {
        let engine = PathBuf::from(
            endpoint
                .strip_prefix("unix://")
                .with_context(|| format!("the test engine {endpoint} is not a unix socket"))?,
        );
        let mut proxy = Self {
            socket,
            engine,
            serving: None,
        };
        proxy.resume()?;
        Ok(proxy)
    }

    /// The endpoint a node is configured with.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Cuts every forwarded connection and removes the socket.
    pub fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serves the socket again.
    pub fn resume(&mut self) -> Result<()> {
        self.stop();
        let listener = tokio::net::UnixListener::bind(&self.socket)
            .with_context(|| format!("binding {}", self.socket.display()))?;
        let engine = self.engine.clone();
        self.serving = Some(tokio::spawn(async move {
            // Dropped with the task when stopped, which aborts every connection it holds.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                connections.spawn(async move {
                    if let Ok(mut upstream) = tokio::net::UnixStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        }));
        Ok(())
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
