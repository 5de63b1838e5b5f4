//! A Fabric network of Fabric's own releases for tests and benches: one etcdraft orderer and
//! one peer on loopback with TLS everywhere, brought up by `tests/fabric/network.sh` with ccvm's
//! external builder installed, and driven through Fabric's `peer` command.

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

use crate::harness::{ChaincodeProcess, run_ccvm};

/// The channel `network.sh` creates.
pub const CHANNEL: &str = "mychannel";
/// The collection of private data the kv chaincodes are defined with.
pub const COLLECTION: &str = "secrets";
/// Each wasm transaction's deadline under the builder, passed on by the peer
/// (`propagateEnvironment`), short so that a spinning guest is stopped quickly.
pub const TX_DEADLINE_MS: &str = "3000";
/// How long a chaincode served as a service may take to compile and listen.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one call of Fabric's `peer` command may take.
pub const PEER_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A running network in a directory of its own; stopped when dropped.
pub struct FabricNetwork {
    /// The network's directory, removed when dropped.
    pub dir: TempDir,
    script: PathBuf,
    /// The `peer` command's settings for the organization's admin, with TLS.
    env: Vec<(String, String)>,
    bin: PathBuf,
}

impl FabricNetwork {
    /// Brings up the network of the release in `release`, with ccvm's builder installed.
    pub async fn up(release: &Path) -> Result<Self> {
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

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("network")
    }

    pub fn setting(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(variable, _)| variable == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Runs Fabric's `peer` command with `args`.
    pub async fn peer(&self, args: &[&str]) -> Result<std::process::Output> {
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
    pub async fn deploy(&self, package: &Path, name: &str) -> Result<String> {
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
    pub async fn invoke(&self, name: &str, args: &[&str]) -> Result<Result<String, String>> {
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
    pub async fn invoked(&self, name: &str, args: &[&str]) -> Result<String> {
        self.invoke(name, args)
            .await?
            .map_err(|e| anyhow::anyhow!("invoking {args:?} on {name}: {e}"))
    }

    /// Queries `args` on `name` with the `peer` command's `extra` flags: the payload, read in hex
    /// (`-x`) so that any bytes come back whole, or the command's error output.
    pub async fn query_bytes(
        &self,
        name: &str,
        args: &[&str],
        extra: &[&str],
    ) -> Result<Result<Vec<u8>, String>> {
        let ctor = json!({ "Args": args }).to_string();
        let mut command = vec![
            "chaincode",
            "query",
            "-x",
            "-C",
            CHANNEL,
            "-n",
            name,
            "-c",
            &ctor,
        ];
        command.extend_from_slice(extra);
        let output = self.peer(&command).await?;
        if output.status.success() {
            Ok(Ok(hex::decode(String::from_utf8(output.stdout)?.trim())?))
        } else {
            Ok(Err(String::from_utf8_lossy(&output.stderr).into_owned()))
        }
    }

    /// Queries `args` on `name` with `extra` flags, which must succeed: the payload.
    pub async fn queried_bytes(
        &self,
        name: &str,
        args: &[&str],
        extra: &[&str],
    ) -> Result<Vec<u8>> {
        self.query_bytes(name, args, extra)
            .await?
            .map_err(|e| anyhow::anyhow!("querying {args:?} on {name}: {e}"))
    }

    /// Queries `args` on `name`: the payload as text, or the `peer` command's error output.
    pub async fn query(&self, name: &str, args: &[&str]) -> Result<Result<String, String>> {
        match self.query_bytes(name, args, &[]).await? {
            Ok(payload) => Ok(Ok(String::from_utf8(payload)?)),
            Err(refused) => Ok(Err(refused)),
        }
    }

    /// Queries `args` on `name`, which must succeed.
    pub async fn queried(&self, name: &str, args: &[&str]) -> Result<String> {
        self.query(name, args)
            .await?
            .map_err(|e| anyhow::anyhow!("querying {args:?} on {name}: {e}"))
    }

    /// The committed transaction `tx_id`, from the peer's qscc.
    pub async fn transaction(&self, tx_id: &str) -> Result<CommittedTx> {
        let bytes = self
            .queried_bytes("qscc", &["GetTransactionByID", CHANNEL, tx_id], &[])
            .await?;
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
pub struct CommittedTx {
    /// Its validation code.
    pub validation_code: i32,
    /// Its read/write set per namespace.
    pub namespaces: Vec<(String, KvrwSet)>,
    /// The chaincode event it emitted.
    pub event: Option<ChaincodeEvent>,
}

impl CommittedTx {
    pub fn decode(processed: &ProcessedTransaction) -> Result<Self> {
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
    pub fn shape(&self, namespace: &str) -> Result<Value> {
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
pub fn package(
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
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// TLS of a chaincode served as a service, from the network's cryptogen material: the peer's
/// own server pair (issued for 127.0.0.1) serves, and the peer dials with a user's client pair
/// of the same TLS CA, which the chaincode requires.
pub struct ServedTls {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl ServedTls {
    pub fn of(network: &FabricNetwork) -> Self {
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
    pub fn connection(&self, address: &str) -> Result<Value> {
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
pub fn served_package(dir: &Path, label: &str, connection: &Value) -> Result<(PathBuf, String)> {
    package(
        dir,
        label,
        Platform::Ccaas,
        "connection.json",
        connection.to_string().into_bytes(),
    )
}

/// Serves `wasm` with `ccvm chaincode serve` at `address` as `package_id`, requiring the
/// client certificates of `tls`; returns once it listens (it says so after compiling `wasm`).
pub async fn serve_wasm(
    wasm: &Path,
    address: &str,
    package_id: &str,
    tls: &ServedTls,
) -> Result<ChaincodeProcess> {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = Command::new(env!("CARGO_BIN_EXE_ccvm"))
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
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let listening = async {
        while let Some(line) = lines.next_line().await? {
            eprintln!("{line}");
            if line.starts_with("serving chaincode") {
                return Ok(());
            }
        }
        anyhow::bail!("ccvm chaincode serve ended before it listened")
    };
    tokio::time::timeout(SERVER_START_TIMEOUT, listening)
        .await
        .context("ccvm chaincode serve did not listen in time")??;
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
    });
    Ok(ChaincodeProcess { child })
}
