//! ccvm chaincode on a real Fabric network: one etcdraft orderer and one peer of Fabric's own
//! releases (2.5.9 and 3.1.5), on loopback with TLS everywhere, brought up by
//! `tests/fabric/network.sh`. The peer runs ccvm's packages through the external builder that
//! `ccvm builder install` writes; wasm runs in ccvm's sandbox, binaries natively, and chaincode
//! served as a service (`ccaas`) is dialled by the peer. Every call goes through Fabric's `peer`
//! command; committed read/write sets are read back from the peer's own ledger.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ccvm::package::{CodeFile, Package, Platform, package_id};
use ccvm::proto::Message;
use ccvm::proto::common::{Envelope, Payload};
use ccvm::proto::kvrwset::KvrwSet;
use ccvm::proto::kvrwset::range_query_info::ReadsInfo;
use ccvm::proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, ProcessedTransaction,
    ProposalResponsePayload, Transaction,
};
use ccvm::proto::rwset::TxReadWriteSet;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

use crate::harness::{
    ChaincodeProcess, example_binary, fabric_release, node_chaincode_server, run_ccvm, wasm_example,
};

/// The channel `network.sh` creates.
const CHANNEL: &str = "mychannel";
/// The collection of private data the kv chaincodes are defined with.
const COLLECTION: &str = "secrets";
/// Each wasm transaction's deadline under the builder, passed on by the peer
/// (`propagateEnvironment`), short so that a spinning guest is stopped quickly.
const TX_DEADLINE_MS: &str = "3000";
/// How long one call of Fabric's `peer` command may take.
const PEER_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A running network in a directory of its own; stopped when dropped.
struct FabricNetwork {
    dir: TempDir,
    script: PathBuf,
    /// The `peer` command's settings for the organization's admin, with TLS.
    env: Vec<(String, String)>,
    bin: PathBuf,
}

impl FabricNetwork {
    /// Brings up the network of the release in `release`, with ccvm's builder installed.
    async fn up(release: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("ccvm-fabric-").tempdir()?;
        let builder = dir.path().join("builder");
        let installed = run_ccvm(&["builder", "install", &builder.to_string_lossy()]).await?;
        ensure!(
            installed.status.success(),
            "ccvm builder install: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fabric/network.sh");
        let work = dir.path().join("network");
        let up = Command::new("bash")
            .arg(&script)
            .arg("up")
            .arg(&work)
            .arg(release)
            .arg(&builder)
            .env("CCVM_WASM_TX_DEADLINE_MS", TX_DEADLINE_MS)
            .env("CCVM_LOG", "info")
            .stdin(Stdio::null())
            .output();
        let up = tokio::time::timeout(Duration::from_secs(180), up)
            .await
            .context("the network did not come up within 180 s")??;
        let network = Self {
            env: Vec::new(),
            bin: release.join("bin"),
            script,
            dir,
        };
        ensure!(
            up.status.success(),
            "network.sh up failed:\n{}\n{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let mut network = network;
        network.env = std::fs::read_to_string(work.join("env"))?
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok(network)
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("network")
    }

    fn setting(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(variable, _)| variable == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Runs Fabric's `peer` command with `args`.
    async fn peer(&self, args: &[&str]) -> Result<std::process::Output> {
        let running = Command::new(self.bin.join("peer"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("FABRIC_LOGGING_SPEC", "info")
            .kill_on_drop(true)
            .output();
        Ok(tokio::time::timeout(PEER_COMMAND_TIMEOUT, running)
            .await
            .with_context(|| format!("peer {args:?} did not finish"))??)
    }

    /// Installs, approves and commits `package` as chaincode `name`, with the kv chaincodes'
    /// private data collection; returns the package id Fabric gave it.
    async fn deploy(&self, package: &Path, name: &str) -> Result<String> {
        let collections = self.work().join("collections.json");
        std::fs::write(
            &collections,
            json!([{
                "name": COLLECTION,
                "policy": "OR('Org1MSP.member')",
                "requiredPeerCount": 0,
                "maxPeerCount": 0,
                "blockToLive": 0,
                "memberOnlyRead": true,
                "memberOnlyWrite": true
            }])
            .to_string(),
        )?;
        let deployed = Command::new("bash")
            .arg(&self.script)
            .arg("deploy")
            .arg(self.work())
            .arg(package)
            .arg(name)
            .arg("1")
            .arg(&collections)
            .stdin(Stdio::null())
            .output();
        let deployed = tokio::time::timeout(Duration::from_secs(180), deployed)
            .await
            .context("deploying did not finish within 180 s")??;
        ensure!(
            deployed.status.success(),
            "deploying {name} failed:\n{}",
            String::from_utf8_lossy(&deployed.stderr)
        );
        Ok(String::from_utf8(deployed.stdout)?.trim().to_owned())
    }

    /// Invokes `args` on `name`, waits for the commit and returns the transaction id, or the
    /// `peer` command's error output.
    async fn invoke(&self, name: &str, args: &[&str]) -> Result<Result<String, String>> {
        let ctor = json!({ "Args": args }).to_string();
        let output = self
            .peer(&[
                "chaincode",
                "invoke",
                "-o",
                self.setting("ORDERER_ADDRESS"),
                "--tls",
                "--cafile",
                self.setting("ORDERER_CA"),
                "-C",
                CHANNEL,
                "-n",
                name,
                "-c",
                &ctor,
                "--peerAddresses",
                self.setting("CORE_PEER_ADDRESS"),
                "--tlsRootCertFiles",
                self.setting("CORE_PEER_TLS_ROOTCERT_FILE"),
                "--waitForEvent",
            ])
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Ok(Err(stderr));
        }
        let tx_id = stderr
            .split("txid [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .with_context(|| format!("no committed txid in: {stderr}"))?;
        ensure!(
            stderr.contains("committed with status (VALID)"),
            "not committed VALID: {stderr}"
        );
        Ok(Ok(tx_id.to_owned()))
    }

    /// Invokes `args` on `name`, which must succeed.
    async fn invoked(&self, name: &str, args: &[&str]) -> Result<String> {
        self.invoke(name, args)
            .await?
            .map_err(|e| anyhow::anyhow!("invoking {args:?} on {name}: {e}"))
    }

    /// Queries `args` on `name`: the payload, or the `peer` command's error output.
    async fn query(&self, name: &str, args: &[&str]) -> Result<Result<String, String>> {
        let ctor = json!({ "Args": args }).to_string();
        let output = self
            .peer(&["chaincode", "query", "-C", CHANNEL, "-n", name, "-c", &ctor])
            .await?;
        if output.status.success() {
            let mut payload = String::from_utf8(output.stdout)?;
            payload.pop();
            Ok(Ok(payload))
        } else {
            Ok(Err(String::from_utf8_lossy(&output.stderr).into_owned()))
        }
    }

    /// Queries `args` on `name`, which must succeed.
    async fn queried(&self, name: &str, args: &[&str]) -> Result<String> {
        self.query(name, args)
            .await?
            .map_err(|e| anyhow::anyhow!("querying {args:?} on {name}: {e}"))
    }

    /// The committed transaction `tx_id`, from the peer's qscc.
    async fn transaction(&self, tx_id: &str) -> Result<CommittedTx> {
        let ctor = json!({ "Args": ["GetTransactionByID", CHANNEL, tx_id] }).to_string();
        let output = self
            .peer(&[
                "chaincode",
                "query",
                "-x",
                "-C",
                CHANNEL,
                "-n",
                "qscc",
                "-c",
                &ctor,
            ])
            .await?;
        ensure!(
            output.status.success(),
            "GetTransactionByID: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bytes = hex::decode(String::from_utf8(output.stdout)?.trim())?;
        CommittedTx::decode(&ProcessedTransaction::decode(bytes.as_slice())?)
    }
}

impl Drop for FabricNetwork {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .arg(self.work())
            .status();
    }
}

/// What a committed transaction wrote and emitted, per namespace.
#[derive(Debug)]
struct CommittedTx {
    validation_code: i32,
    namespaces: Vec<(String, KvrwSet)>,
    event: Option<ChaincodeEvent>,
}

impl CommittedTx {
    fn decode(processed: &ProcessedTransaction) -> Result<Self> {
        let envelope: &Envelope = processed
            .transaction_envelope
            .as_ref()
            .context("envelope")?;
        let payload = Payload::decode(envelope.payload.as_slice())?;
        let transaction = Transaction::decode(payload.data.as_slice())?;
        let action = transaction.actions.first().context("no action")?;
        let action_payload = ChaincodeActionPayload::decode(action.payload.as_slice())?;
        let endorsed = action_payload.action.context("no endorsed action")?;
        let response =
            ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice())?;
        let chaincode_action = ChaincodeAction::decode(response.extension.as_slice())?;
        let rwset = TxReadWriteSet::decode(chaincode_action.results.as_slice())?;
        let namespaces = rwset
            .ns_rwset
            .iter()
            .map(|ns| Ok((ns.namespace.clone(), KvrwSet::decode(ns.rwset.as_slice())?)))
            .collect::<Result<_>>()?;
        let event = (!chaincode_action.events.is_empty())
            .then(|| ChaincodeEvent::decode(chaincode_action.events.as_slice()))
            .transpose()?;
        Ok(Self {
            validation_code: processed.validation_code,
            namespaces,
            event,
        })
    }

    /// The read/write set of `namespace`, with read versions reduced to whether the key existed:
    /// the same calls on two chaincodes read their own keys at different heights.
    fn shape(&self, namespace: &str) -> Result<Value> {
        let (_, kv) = self
            .namespaces
            .iter()
            .find(|(name, _)| name == namespace)
            .with_context(|| format!("no read/write set for {namespace}: {self:?}"))?;
        let reads: Vec<Value> = kv
            .reads
            .iter()
            .map(|read| json!([read.key, read.version.is_some()]))
            .collect();
        let writes: Vec<Value> = kv
            .writes
            .iter()
            .map(|write| {
                json!([
                    write.key,
                    write.is_delete,
                    String::from_utf8_lossy(&write.value)
                ])
            })
            .collect();
        let ranges: Vec<Value> = kv
            .range_queries_info
            .iter()
            .map(|range| {
                let keys: Vec<&str> = match &range.reads_info {
                    Some(ReadsInfo::RawReads(raw)) => {
                        raw.kv_reads.iter().map(|read| read.key.as_str()).collect()
                    }
                    _ => Vec::new(),
                };
                json!([range.start_key, range.end_key, range.itr_exhausted, keys])
            })
            .collect();
        Ok(json!({ "reads": reads, "writes": writes, "ranges": ranges }))
    }
}

/// Writes a package of `platform` holding `code` as `file` into `dir`; returns its path and id.
fn package(
    dir: &Path,
    label: &str,
    platform: Platform,
    file: &str,
    code: Vec<u8>,
) -> Result<(PathBuf, String)> {
    let bytes = Package::build(label, platform, &[CodeFile::new(file, code, 0o755)])?;
    let path = dir.join(format!("{label}.tar.gz"));
    std::fs::write(&path, &bytes)?;
    Ok((path, package_id(label, &bytes)))
}

/// A free loopback port for a chaincode served as a service: the servers here (fabric-shim's
/// and ccvm's) take an address, not a listener.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// TLS of a chaincode served as a service, from the network's cryptogen material: the peer's
/// own server pair (issued for 127.0.0.1) serves, and the peer dials with a user's client pair
/// of the same TLS CA, which the chaincode requires.
struct ServedTls {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl ServedTls {
    fn of(network: &FabricNetwork) -> Self {
        let org = network
            .work()
            .join("crypto/peerOrganizations/org1.example.com");
        let server = org.join("peers/peer0.org1.example.com/tls");
        let client = org.join("users/User1@org1.example.com/tls");
        Self {
            ca: org.join("tlsca/tlsca.org1.example.com-cert.pem"),
            server_cert: server.join("server.crt"),
            server_key: server.join("server.key"),
            client_cert: client.join("client.crt"),
            client_key: client.join("client.key"),
        }
    }

    /// The `connection.json` fields that make the peer dial with TLS and its client pair.
    fn connection(&self, address: &str) -> Result<Value> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(json!({
            "address": address,
            "dial_timeout": "10s",
            "tls_required": true,
            "client_auth_required": true,
            "root_cert": read(&self.ca)?,
            "client_cert": read(&self.client_cert)?,
            "client_key": read(&self.client_key)?,
        }))
    }
}

/// A `ccaas` package whose `connection.json` is `connection`.
fn served_package(dir: &Path, label: &str, connection: &Value) -> Result<(PathBuf, String)> {
    package(
        dir,
        label,
        Platform::Ccaas,
        "connection.json",
        connection.to_string().into_bytes(),
    )
}

/// Serves `wasm` with `ccvm chaincode serve` at `address` as `package_id`, requiring the
/// client certificates of `tls`.
fn serve_wasm(
    wasm: &Path,
    address: &str,
    package_id: &str,
    tls: &ServedTls,
) -> Result<ChaincodeProcess> {
    let child = Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["chaincode", "serve", "--path"])
        .arg(wasm)
        .env("CHAINCODE_SERVER_ADDRESS", address)
        .env("CHAINCODE_ID", package_id)
        .env("CHAINCODE_TLS_DISABLED", "false")
        .env("CHAINCODE_TLS_CERT", &tls.server_cert)
        .env("CHAINCODE_TLS_KEY", &tls.server_key)
        .env("CHAINCODE_CLIENT_CA_CERT", &tls.ca)
        .env("CCVM_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    Ok(ChaincodeProcess { child })
}

/// The calls whose committed read/write sets must match across the chaincodes, on keys of the
/// calls' own.
const COMPARED_CALLS: [&[&str]; 4] = [
    &["put", "b1", "one"],
    &["bump", "counter"],
    &["range", "", "c"],
    &["cput", "color", "blue", "car", "v"],
];

/// Runs kv's functions on `name` through the peer and checks each answer.
async fn exercise_kv(network: &FabricNetwork, name: &str, other: &str) -> Result<()> {
    network.invoked(name, &["put", "k1", "v1"]).await?;
    network.invoked(name, &["put", "k2", "v2"]).await?;
    network
        .invoked(name, &["cput", "color", "red", "car1", "v3"])
        .await?;
    assert_eq!(network.queried(name, &["get", "k1"]).await?, "v1");
    assert_eq!(
        network
            .queried(name, &["getmulti", "k1", "missing", "k2"])
            .await?,
        r#"["v1","","v2"]"#,
        "multiple reads answer each key, on a peer that offers them or not"
    );
    let plain: Vec<String> =
        serde_json::from_str(&network.queried(name, &["range", "", ""]).await?)?;
    assert!(
        plain.iter().all(|key| !key.starts_with('\0')),
        "a range from the empty key holds simple keys only: {plain:?}"
    );
    assert!(
        plain.contains(&"k1".to_owned()) && plain.contains(&"k2".to_owned()),
        "{plain:?}"
    );
    assert_eq!(
        network.queried(name, &["cquery", "color"]).await?,
        r#"["v3"]"#
    );

    network.invoked(name, &["put", "k1", "v1b"]).await?;
    let history: Vec<Value> =
        serde_json::from_str(&network.queried(name, &["history", "k1"]).await?)?;
    let values: Vec<&str> = history
        .iter()
        .filter_map(|entry| entry["value"].as_str())
        .collect();
    assert_eq!(values.len(), 2, "{history:?}");
    assert!(
        values.contains(&"v1") && values.contains(&"v1b"),
        "{history:?}"
    );

    let evented = network.invoked(name, &["event", "sold", "car1"]).await?;
    let committed = network.transaction(&evented).await?;
    let event = committed.event.context("the event was not committed")?;
    assert_eq!(
        (event.event_name.as_str(), event.payload.as_slice()),
        ("sold", &b"car1"[..])
    );
    assert_eq!(event.chaincode_id, name);

    network
        .invoked(name, &["pput", COLLECTION, "pk", "secret"])
        .await?;
    assert_eq!(
        network.queried(name, &["pget", COLLECTION, "pk"]).await?,
        "secret"
    );

    assert_eq!(
        network.queried(name, &["call", other, "get", "k2"]).await?,
        "v2",
        "{name} calls {other} on the same channel"
    );
    let failed = network.query(name, &["fail", "on purpose"]).await?;
    assert!(
        failed.as_ref().is_err_and(|e| e.contains("on purpose")),
        "a failing call is answered with its message: {failed:?}"
    );
    Ok(())
}

/// The committed shape of each of [`COMPARED_CALLS`] on `name`.
async fn shapes(network: &FabricNetwork, name: &str) -> Result<Vec<Value>> {
    let mut shapes = Vec::new();
    for call in COMPARED_CALLS {
        let tx_id = network.invoked(name, call).await?;
        let committed = network.transaction(&tx_id).await?;
        assert_eq!(committed.validation_code, 0, "{call:?} on {name}");
        shapes.push(committed.shape(name)?);
    }
    Ok(shapes)
}

async fn run_on_fabric(version: &str) -> Result<()> {
    let Some(release) = fabric_release(version)? else {
        return Ok(());
    };
    let network = FabricNetwork::up(&release).await?;
    let dir = network.dir.path();

    let kv_wasm = wasm_example("kv")?;
    let wasm_file = dir.join("kv.wasm");
    std::fs::write(&wasm_file, &kv_wasm)?;
    let (wasm_package, _) = package(dir, "kvwasm_1", Platform::Wasm, "chaincode.wasm", kv_wasm)?;
    let native = std::fs::read(example_binary("kv")?)?;
    let (native_package, _) = package(dir, "kvnative_1", Platform::Binary, "chaincode", native)?;
    network.deploy(&wasm_package, "kvwasm").await?;
    network.deploy(&native_package, "kvnative").await?;

    network.invoked("kvnative", &["put", "k2", "v2"]).await?;
    exercise_kv(&network, "kvwasm", "kvnative").await?;
    exercise_kv(&network, "kvnative", "kvwasm").await?;

    // The same kv in wasm served by ccvm with mutual TLS, and Fabric's Node shim, as services.
    let tls = ServedTls::of(&network);
    let served_address = format!("127.0.0.1:{}", free_port()?);
    let (wasm_service, served_id) =
        served_package(dir, "kvserved_1", &tls.connection(&served_address)?)?;
    let _served = serve_wasm(&wasm_file, &served_address, &served_id, &tls)?;
    let node_address = format!("127.0.0.1:{}", free_port()?);
    let plain = json!({ "address": node_address, "dial_timeout": "10s", "tls_required": false });
    let (node_package, node_id) = served_package(dir, "kvnode_1", &plain)?;
    let _node = node_chaincode_server(&node_address, &node_id)?;
    assert_eq!(network.deploy(&wasm_service, "kvserved").await?, served_id);
    assert_eq!(network.deploy(&node_package, "kvnode").await?, node_id);
    exercise_kv(&network, "kvserved", "kvwasm").await?;

    let node_shim = shapes(&network, "kvnode").await?;
    for name in ["kvwasm", "kvnative", "kvserved"] {
        assert_eq!(
            shapes(&network, name).await?,
            node_shim,
            "{name} commits what Fabric's Node shim commits"
        );
    }

    // A guest that spins or hoards memory fails its own transaction with the sandbox's reason,
    // and the peer goes on serving it and the others.
    let (hostile, _) = package(
        dir,
        "hostile_1",
        Platform::Wasm,
        "chaincode.wasm",
        wasm_example("hostile")?,
    )?;
    network.deploy(&hostile, "hostile").await?;
    for (function, reason) in [
        ("spin", "stopped: transaction deadline exceeded"),
        ("hoard", "stopped: memory limit exceeded"),
        ("recurse", "trapped: stack overflow"),
    ] {
        let refused = network.query("hostile", &[function]).await?;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains(reason)),
            "{function}: expected {reason:?}, got {refused:?}"
        );
    }
    assert_eq!(network.queried("kvwasm", &["get", "k2"]).await?, "v2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccvm_chaincode_runs_on_fabric_2_5_through_the_builder_with_tls() -> Result<()> {
    run_on_fabric("2.5.9").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccvm_chaincode_runs_on_fabric_3_1_through_the_builder_with_tls() -> Result<()> {
    run_on_fabric("3.1.5").await
}
