//! The node's configuration: one typed struct with defaults that work on a laptop, overridden
//! by a YAML file and then by `CCVM_*` environment variables (nested keys joined with `__`, as in
//! `CCVM_CHAINCODE__EXECUTE_TIMEOUT_MS=5000`).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use serde::{Deserialize, Serialize};

use crate::chaincode::{
    DEFAULT_EXECUTE_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STARTUP_TIMEOUT, SupportConfig,
};
use crate::channel::Batching;
use crate::container::docker::{DockerSettings, RustBuilder, RustBuilds};
use crate::container::inproc::{
    DEFAULT_INSTANCES_PER_CHAINCODE, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MAX_STACK_BYTES, DEFAULT_REGISTER_TIMEOUT, InprocLimits,
};
use crate::fabric::DEFAULT_MAX_GRPC_MESSAGE_BYTES;
use crate::msp::DEFAULT_MSP_ID;
use ccvm_sandbox::{DEFAULT_RUNNER_INSTANCES, WasmLimits};

/// Where a node listens for clients by default (Fabric's peer port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7051";
/// Where a node listens for chaincodes by default (Fabric's chaincode port).
pub const DEFAULT_CHAINCODE_LISTEN: &str = "127.0.0.1:7052";
/// Where a node keeps its ledger and identities by default.
pub const DEFAULT_DATA_DIR: &str = "ccvm-data";
/// Most transactions cut into one block: bounds the work of one store transaction while
/// letting a loaded node commit thousands of transactions per fsync.
pub const DEFAULT_MAX_BLOCK_TXS: usize = 500;
/// Memory the ledger's store keeps of its pages by default: enough for the hot part of a
/// development ledger, small beside a peer's other memory.
pub const DEFAULT_LEDGER_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Most bytes of transactions cut into one block by default.
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Ledger and identities live here.
    pub data_dir: PathBuf,
    /// Address of the endorser and committer services.
    pub listen: String,
    /// `host:port` clients are told to reach the node at, as the discovery service advertises
    /// it (Fabric's `peer.address`); unset, the address the client port is bound to.
    pub address: Option<String>,
    /// Address of the `ChaincodeSupport` service chaincodes dial.
    pub chaincode_listen: String,
    /// Address of the `ccvm.Admin` service on a listener of its own (with the client port's
    /// TLS); unset serves it on the client address.
    pub admin_listen: Option<String>,
    /// Accept chaincodes started by hand under any name.
    pub dev_mode: bool,
    /// Largest gRPC message the client and admin ports accept, in bytes (Fabric's
    /// `peer.maxRecvMsgSize`).
    pub max_recv_message_bytes: usize,
    /// Largest gRPC message they send, in bytes (Fabric's `peer.maxSendMsgSize`).
    pub max_send_message_bytes: usize,
    /// MSP id of the node's organization (Fabric's `peer.localMspId`).
    pub msp_id: String,
    /// The node's MSP directory: its signing identity and its organization's CAs, as Fabric's
    /// `peer.mspConfigPath` (`cryptogen` and Fabric CA layouts load unchanged). Unset, the node
    /// creates a development organization in its data directory and acts as its peer.
    pub msp_dir: Option<PathBuf>,
    /// The channel's other organizations: MSP id → MSP directory (`cacerts/`,
    /// `intermediatecerts/`, `crls/`, `admincerts/`, `config.yaml`).
    pub organizations: BTreeMap<String, PathBuf>,
    /// TLS of the client port (endorser, committer, admin), as Fabric's `peer.tls`.
    pub tls: PeerTlsSettings,
    /// ACL overrides on Fabric's defaults: resource (`qscc/GetChainInfo`, `peer/Propose`,
    /// `ccvm/Admin`, ...) → policy path (`/Channel/Application/Readers`,
    /// `/Channel/Application/Org1MSP/Admins`, ...).
    pub acls: BTreeMap<String, String>,
    /// How chaincodes are run.
    pub chaincode: ChaincodeSettings,
    /// How blocks are cut.
    pub commit: CommitSettings,
    /// The ledger's store.
    pub ledger: LedgerSettings,
    /// The operations endpoint (health, metrics, log spec, version).
    pub operations: OperationsSettings,
    /// Logging, unless `FABRIC_LOGGING_SPEC` / `FABRIC_LOGGING_FORMAT` say otherwise.
    pub logging: LoggingSettings,
    /// Sandbox of wasm system chaincode.
    pub inproc: InprocSettings,
    /// The Docker engine that runs user chaincode.
    pub docker: DockerConfig,
    /// Threads serving the node's clients and chaincodes; unset, one per core (or
    /// `TOKIO_WORKER_THREADS`). One answers a lone client sooner, as no request crosses
    /// threads; more serve many clients at once (see the README's Performance).
    pub worker_threads: Option<NonZeroUsize>,
}

/// The Docker engine used by default: `DOCKER_HOST` when set, else the local socket.
fn default_docker_endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// The engine's TLS files by default: `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set, as the
/// Docker command line reads them.
fn default_docker_cert_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_TLS_VERIFY").filter(|v| !v.is_empty())?;
    std::env::var_os("DOCKER_CERT_PATH").map(PathBuf::from)
}

/// Where and how user chaincode containers run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// The engine: `unix:///PATH` or `tcp://HOST:PORT`.
    pub endpoint: String,
    /// For a `tcp://` engine that requires TLS: the directory of `ca.pem`, `cert.pem` and
    /// `key.pem`, as Docker's `DOCKER_CERT_PATH`.
    pub cert_path: Option<PathBuf>,
    /// First part of container and image names (Fabric's `peer.networkId`).
    pub network_id: String,
    /// Second part of container and image names (Fabric's `peer.id`).
    pub peer_id: String,
    /// Memory limit of one container in bytes; 0 for none.
    pub memory_bytes: i64,
    /// The containers' log driver.
    pub log_driver: String,
    /// Options of the log driver.
    pub log_options: BTreeMap<String, String>,
    /// Where cargo builds `rust` packages; `rust-build` in the data directory when unset.
    pub rust_target_dir: Option<PathBuf>,
    /// Build `rust` packages with cargo on the node's host, which runs each package's build
    /// scripts there. Off by default, when they build in a container: only an operator who
    /// trusts every installer turns it on.
    pub build_rust_on_host: bool,
    /// The container `rust` packages build in.
    pub rust_builder: RustBuilderConfig,
    /// The most instances of a `wasm` package's guest its container runs side by side; it
    /// starts with one and adds one whenever a transaction arrives while all are busy.
    pub wasm_instances: NonZeroUsize,
}

/// The container `rust` packages build in: offline, without capabilities, with a read-only
/// root and only the project and the target directory writable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RustBuilderConfig {
    /// An image with `cargo` and the `x86_64-unknown-linux-musl` target; unset, an empty image
    /// to which the engine's host lends its system directories, the Rust toolchain and cargo's
    /// downloaded crates, read-only (the engine must run on the node's host).
    pub image: Option<String>,
    /// The toolchain lent to the empty image (a directory with `bin/cargo`); unset, the one
    /// `rustc --print sysroot` names.
    pub toolchain: Option<PathBuf>,
    /// Host directories mounted read-only at their own path, for path dependencies or vendored
    /// sources.
    pub mounts: Vec<PathBuf>,
    /// Most memory of a build, in bytes.
    pub memory_bytes: i64,
    /// Most processes and threads of a build.
    pub pids_limit: i64,
    /// Longest a build may take, in seconds, before it is stopped.
    pub timeout_secs: u64,
}

impl Default for RustBuilderConfig {
    fn default() -> Self {
        Self {
            image: None,
            toolchain: None,
            mounts: Vec::new(),
            memory_bytes: 4 * 1024 * 1024 * 1024,
            pids_limit: 4096,
            timeout_secs: 15 * 60,
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            endpoint: default_docker_endpoint(),
            cert_path: default_docker_cert_path(),
            network_id: "dev".to_owned(),
            peer_id: "peer0".to_owned(),
            memory_bytes: 2 * 1024 * 1024 * 1024,
            log_driver: "json-file".to_owned(),
            log_options: BTreeMap::from([
                ("max-size".to_owned(), "50m".to_owned()),
                ("max-file".to_owned(), "5".to_owned()),
            ]),
            rust_target_dir: None,
            build_rust_on_host: false,
            rust_builder: RustBuilderConfig::default(),
            wasm_instances: DEFAULT_RUNNER_INSTANCES,
        }
    }
}

/// Where the node keeps compiled wasm components by default, under the data directory.
pub const WASM_CACHE_DIR: &str = "wasm-cache";

/// How often the system chaincode directory is checked for changes by default.
pub const DEFAULT_WATCH_INTERVAL_MS: u64 = 1000;

/// Sandbox settings of the inproc wasm VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InprocSettings {
    /// A directory of `*.wasm` system chaincodes started with the node, each named after its
    /// file (`lscc.wasm` registers as `lscc`).
    pub chaincode_dir: Option<PathBuf>,
    /// Most linear memory of one instance, in bytes.
    pub max_memory_bytes: usize,
    /// Deepest wasm stack of one instance, in bytes.
    pub max_stack_bytes: usize,
    /// Most wasm instances alive at once.
    pub max_instances: u32,
    /// Most instances of one chaincode alive at once: a chaincode whose instances are all busy
    /// gets one more, up to this many, and those idle for 30 s are retired again (0 counts as
    /// 1).
    pub instances_per_chaincode: usize,
    /// How long a started instance may take to register, in milliseconds; within the
    /// chaincode startup timeout, which also covers compiling.
    pub register_timeout_ms: u64,
    /// System chaincodes granted read access to the block store, beyond `qscc` and `cscc`,
    /// which always have it.
    pub block_readers: Vec<String>,
    /// Where compiled components are kept; `wasm-cache` in the data directory when unset.
    pub cache_dir: Option<PathBuf>,
    /// Host directories granted to chaincodes by name, each seen by the chaincode as `/data`.
    /// Nothing is granted by default; a granted directory must hold the same files on every
    /// peer for endorsements to agree.
    pub data_dirs: BTreeMap<String, PathBuf>,
    /// How often the system chaincode directory is checked for new or changed files, which are
    /// then reloaded; 0 turns the check off.
    pub watch_interval_ms: u64,
}

impl Default for InprocSettings {
    fn default() -> Self {
        Self {
            chaincode_dir: None,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_stack_bytes: DEFAULT_MAX_STACK_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
            instances_per_chaincode: DEFAULT_INSTANCES_PER_CHAINCODE,
            register_timeout_ms: u64::try_from(DEFAULT_REGISTER_TIMEOUT.as_millis())
                .unwrap_or(u64::MAX),
            block_readers: Vec::new(),
            cache_dir: None,
            data_dirs: BTreeMap::new(),
            watch_interval_ms: DEFAULT_WATCH_INTERVAL_MS,
        }
    }
}

/// Chaincode settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaincodeSettings {
    /// How long one transaction may run, in milliseconds.
    pub execute_timeout_ms: u64,
    /// How long a launched chaincode may take to register, in milliseconds.
    pub startup_timeout_ms: u64,
    /// Interval of KEEPALIVE messages to chaincodes in milliseconds; unset sends none.
    pub keepalive_ms: Option<u64>,
    /// Largest message accepted from a chaincode, in bytes.
    pub max_message_bytes: usize,
    /// Mutual TLS on the chaincode listener, with a certificate per launched chaincode; unset
    /// means on outside dev mode (where chaincodes are started by hand) and off in it.
    pub tls: Option<bool>,
}

/// TLS of the client port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerTlsSettings {
    /// Serve TLS; unset means on outside dev mode and off in it.
    pub enabled: Option<bool>,
    /// Require a client certificate from a CA in `client_root_cas`; then a proposal or
    /// transaction must also carry the hash of that certificate in its channel header.
    pub client_auth_required: bool,
    /// The server certificate (PEM); the development peer's when unset.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA certificates client certificates must chain to; the development TLS CA when empty.
    pub client_root_cas: Vec<PathBuf>,
}

/// The operations endpoint, as Fabric's `operations` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationsSettings {
    /// `host:port` of the endpoint (Fabric's `operations.listenAddress`); unset, none is served.
    pub listen_address: Option<String>,
    /// TLS of the endpoint, as Fabric's `operations.tls`.
    pub tls: OperationsTlsSettings,
}

/// TLS of the operations endpoint. As on a Fabric peer, with TLS on, `/metrics` and `/logspec`
/// answer only clients with a certificate from a CA in `client_root_cas` (others get a 401),
/// while `/healthz` and `/version` answer anyone unless `client_auth_required`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationsTlsSettings {
    /// Serve HTTPS instead of plain HTTP.
    pub enabled: bool,
    /// Refuse, at the handshake, clients without a certificate from a CA in `client_root_cas`.
    pub client_auth_required: bool,
    /// The server certificate (PEM); the node's TLS certificate (as on the client port) when
    /// unset.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA certificates client certificates must chain to; the node's TLS CA when empty.
    pub client_root_cas: Vec<PathBuf>,
}

/// Where the operations endpoint listens unless configured: Fabric's default.
pub const DEFAULT_OPERATIONS_LISTEN: &str = "127.0.0.1:9443";

impl Default for OperationsSettings {
    fn default() -> Self {
        Self {
            listen_address: Some(DEFAULT_OPERATIONS_LISTEN.to_owned()),
            tls: OperationsTlsSettings::default(),
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// The spec in Fabric's syntax (`ccvm.chaincode=debug:info`).
    pub spec: Option<String>,
    /// `json` for JSON lines; text otherwise.
    pub format: Option<String>,
}

/// The ledger's store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    /// Memory the store may keep of its pages, in bytes: the bound of the ledger's share of
    /// the node's resident memory however large the ledger grows.
    pub cache_bytes: usize,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_LEDGER_CACHE_BYTES,
        }
    }
}

/// Block cutting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitSettings {
    /// Most transactions in one block (Fabric's `BatchSize.MaxMessageCount`).
    pub max_block_txs: usize,
    /// Most bytes of transactions in one block; a larger transaction is a block of its own
    /// (Fabric's `BatchSize.PreferredMaxBytes`).
    pub max_block_bytes: usize,
    /// How long a block's first transaction waits for more, in milliseconds; 0 cuts whatever
    /// is queued at once (Fabric's `BatchTimeout`, there 2 s).
    pub batch_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN.to_owned(),
            address: None,
            chaincode_listen: DEFAULT_CHAINCODE_LISTEN.to_owned(),
            admin_listen: None,
            dev_mode: false,
            max_recv_message_bytes: DEFAULT_MAX_GRPC_MESSAGE_BYTES,
            max_send_message_bytes: DEFAULT_MAX_GRPC_MESSAGE_BYTES,
            msp_id: DEFAULT_MSP_ID.to_owned(),
            msp_dir: None,
            organizations: BTreeMap::new(),
            acls: BTreeMap::new(),
            tls: PeerTlsSettings::default(),
            chaincode: ChaincodeSettings::default(),
            commit: CommitSettings::default(),
            ledger: LedgerSettings::default(),
            operations: OperationsSettings::default(),
            logging: LoggingSettings::default(),
            inproc: InprocSettings::default(),
            docker: DockerConfig::default(),
            worker_threads: None,
        }
    }
}

impl Default for ChaincodeSettings {
    fn default() -> Self {
        Self {
            execute_timeout_ms: u64::try_from(DEFAULT_EXECUTE_TIMEOUT.as_millis())
                .unwrap_or(u64::MAX),
            startup_timeout_ms: u64::try_from(DEFAULT_STARTUP_TIMEOUT.as_millis())
                .unwrap_or(u64::MAX),
            keepalive_ms: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            tls: None,
        }
    }
}

impl Default for CommitSettings {
    fn default() -> Self {
        Self {
            max_block_txs: DEFAULT_MAX_BLOCK_TXS,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            batch_timeout_ms: 0,
        }
    }
}

impl Config {
    /// Defaults, then the YAML file if given, then `CCVM_*` environment variables.
    ///
    /// # Errors
    /// Fails when the file cannot be read or a value has the wrong type.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} not found",
                    file.display()
                ))));
            }
            figment = figment.merge(Yaml::file(file));
        }
        // `CCVM_*` variables that name no setting (such as `CCVM_LOG`, or a chaincode's
        // `CCVM_WASM_*`) belong to other tools and are left alone; a file's unknown keys fail.
        let settings: Vec<String> = match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        };
        figment
            .merge(Env::prefixed("CCVM_").split("__").filter(move |key| {
                let top = key.as_str().split('.').next().unwrap_or_default();
                let top = top.split("__").next().unwrap_or_default();
                settings
                    .iter()
                    .any(|setting| top.eq_ignore_ascii_case(setting))
            }))
            .extract()
            .map_err(Box::new)
    }

    /// Where compiled wasm components are kept.
    pub fn wasm_cache_dir(&self) -> PathBuf {
        self.inproc
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(WASM_CACHE_DIR))
    }

    /// The Docker VM's settings.
    pub fn docker_settings(&self) -> DockerSettings {
        DockerSettings {
            endpoint: self.docker.endpoint.clone(),
            cert_path: self.docker.cert_path.clone(),
            network_id: self.docker.network_id.clone(),
            peer_id: self.docker.peer_id.clone(),
            memory_bytes: self.docker.memory_bytes,
            log_driver: self.docker.log_driver.clone(),
            log_options: self
                .docker
                .log_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rust_builds: self.rust_builds(),
            wasm_limits: self.inproc_limits().wasm,
            wasm_instances: self.docker.wasm_instances,
        }
    }

    /// Where `rust` packages are built: on the host when the operator chose it, else in a
    /// build container; either way in the target directory shared between builds.
    fn rust_builds(&self) -> RustBuilds {
        let target_dir = self
            .docker
            .rust_target_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("rust-build"));
        if self.docker.build_rust_on_host {
            return RustBuilds::Host { target_dir };
        }
        let builder = &self.docker.rust_builder;
        RustBuilds::Container(RustBuilder {
            image: builder.image.clone(),
            toolchain: builder.toolchain.clone(),
            mounts: builder.mounts.clone(),
            target_dir,
            memory_bytes: builder.memory_bytes,
            pids_limit: builder.pids_limit,
            timeout: Duration::from_secs(builder.timeout_secs),
        })
    }

    /// How blocks are cut, as a new channel's configuration records it: at most
    /// `commit.max_block_txs` transactions, cut after `commit.max_block_bytes` bytes, with no
    /// transaction larger than the largest message the client port accepts.
    pub fn batching(&self) -> Batching {
        let bytes = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        Batching {
            max_message_count: bytes(self.commit.max_block_txs),
            absolute_max_bytes: bytes(self.max_recv_message_bytes),
            preferred_max_bytes: bytes(self.commit.max_block_bytes),
            timeout: Duration::from_millis(self.commit.batch_timeout_ms),
        }
    }

    /// The inproc VM's limits; a guest's transaction deadline is the execute timeout.
    pub fn inproc_limits(&self) -> InprocLimits {
        InprocLimits {
            wasm: WasmLimits {
                tx_deadline: Duration::from_millis(self.chaincode.execute_timeout_ms),
                max_memory_bytes: self.inproc.max_memory_bytes,
                max_stack_bytes: self.inproc.max_stack_bytes,
                max_message_bytes: self.chaincode.max_message_bytes,
            },
            max_instances: self.inproc.max_instances,
            instances_per_chaincode: self.inproc.instances_per_chaincode,
            register_timeout: Duration::from_millis(self.inproc.register_timeout_ms),
        }
    }

    /// The chaincode layer's part of the configuration.
    pub fn support(&self) -> SupportConfig {
        SupportConfig {
            execute_timeout: Duration::from_millis(self.chaincode.execute_timeout_ms),
            startup_timeout: Duration::from_millis(self.chaincode.startup_timeout_ms),
            dev_mode: self.dev_mode,
            keepalive: self.chaincode.keepalive_ms.map(Duration::from_millis),
            max_message_bytes: self.chaincode.max_message_bytes,
            require_client_certs: self.chaincode_tls(),
        }
    }

    /// Whether the client port serves TLS.
    pub fn peer_tls(&self) -> bool {
        self.tls.enabled.unwrap_or(!self.dev_mode)
    }

    /// Whether the chaincode listener serves mutual TLS.
    pub fn chaincode_tls(&self) -> bool {
        self.chaincode.tls.unwrap_or(!self.dev_mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn environment_overrides_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ccvm.yaml",
                "dev_mode: true\nchaincode:\n  execute_timeout_ms: 1000\n",
            )?;
            jail.set_env("CCVM_CHAINCODE__EXECUTE_TIMEOUT_MS", "2500");
            let config = Config::load(Some(Path::new("ccvm.yaml"))).map_err(|e| e.to_string())?;
            assert!(config.dev_mode);
            assert_eq!(config.chaincode.execute_timeout_ms, 2500);
            assert_eq!(config.listen, DEFAULT_LISTEN);
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn granted_directories_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CCVM_INPROC__DATA_DIRS", "{mycc=/srv/mycc}");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.inproc.data_dirs.get("mycc"),
                Some(&PathBuf::from("/srv/mycc"))
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn an_unknown_key_in_a_file_is_refused_with_the_key_and_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ccvm.yaml", "chaincod:\n  execute_timeout_ms: 1000\n")?;
            jail.set_env("CCVM_LOG", "debug");
            jail.set_env("CCVM_WASM_TX_DEADLINE_MS", "100");
            let refused = Config::load(Some(Path::new("ccvm.yaml")))
                .expect_err("a typo must not be ignored")
                .to_string();
            assert!(refused.contains("chaincod"), "{refused}");
            assert!(refused.contains("ccvm.yaml"), "{refused}");
            jail.create_file("ccvm.yaml", "operations:\n  listen_adress: x\n")?;
            let refused = Config::load(Some(Path::new("ccvm.yaml")))
                .expect_err("a nested typo must not be ignored")
                .to_string();
            assert!(refused.contains("listen_adress"), "{refused}");
            assert!(
                Config::load(None).is_ok(),
                "other tools' CCVM_ variables are left alone"
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn worker_threads_are_set_by_file_or_environment_and_never_zero() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                Config::load(None)
                    .map_err(|e| e.to_string())?
                    .worker_threads,
                None
            );
            jail.create_file("ccvm.yaml", "worker_threads: 1\n")?;
            let config = Config::load(Some(Path::new("ccvm.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.worker_threads.map(NonZeroUsize::get), Some(1));
            jail.set_env("CCVM_WORKER_THREADS", "3");
            let config = Config::load(Some(Path::new("ccvm.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.worker_threads.map(NonZeroUsize::get), Some(3));
            jail.set_env("CCVM_WORKER_THREADS", "0");
            let refused = Config::load(Some(Path::new("ccvm.yaml")))
                .expect_err("a node with no thread serves nothing")
                .to_string();
            assert!(
                refused.to_lowercase().contains("worker_threads") && refused.contains("nonzero"),
                "{refused}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_a_clear_error() {
        let err = Config::load(Some(Path::new("/nonexistent/ccvm.yaml"))).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
