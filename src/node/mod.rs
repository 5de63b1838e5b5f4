//! A running peer: configuration → ledger → chaincode support → gRPC servers.
//!
//! [`Node::start`] binds both listeners before it returns, so callers (and tests using port 0)
//! can read the bound addresses at once.

mod access;
mod admin;
mod background;
mod block_content;
mod block_feed;
mod blocks;
mod broadcast;
mod channels;
mod committer;
mod deliver;
mod discovery;
mod endorser;
mod gateway;
mod launch_stream;
mod lifecycle_checks;
mod local_lifecycle;
mod operations;
mod operations_tls;
mod ordering;
mod proposal;
mod status;
mod system_chaincodes;
mod tls;
mod transient;
mod user_chaincodes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::chaincode::ChaincodeSupport;
use crate::chaincode::grpc::ChaincodeSupportService;
use crate::channel::ChannelConfig;
use crate::config::Config;
use crate::container::ChaincodeResolver;
use crate::container::ccaas::CcaasVm;
use crate::container::docker::DockerVm;
use crate::container::inproc::{InprocError, InprocVm};
use crate::container::{CertIssuer, ContainerRuntime, Vm};
use crate::ledger::{DEFAULT_CHANNEL, Ledger, LedgerError};
use crate::metrics::metrics;
use crate::msp::dev_org::DevOrganization;
use crate::msp::{Identity, IdentityError, MspError, OwnSignatures};
use crate::package::PackageStore;
use access::Access;
use admin::AdminService;
use background::Background;
use blocks::LedgerBlocks;
use broadcast::BroadcastService;
use channels::{ChannelContext, Channels};
use deliver::{DeliverService, Deliverer};
use discovery::DiscoveryService;
use endorser::{Endorser, EndorserService};
use gateway::GatewayService;
use local_lifecycle::LocalLifecycle;
use operations::Operations;
use operations_tls::{ClientCertificate, OperationsTlsError, TlsListener};
use ordering::{CommitterService, Orderer};
use system_chaincodes::SystemChaincodes;
use tls::{ChaincodeCa, TlsError};
use transient::TransientStore;
use user_chaincodes::DefinedChaincodes;

pub use broadcast::MAX_BROADCAST_IN_FLIGHT;
pub use channels::{ChannelError, MAX_CHANNEL_NAME_CHARS};
pub use deliver::MAX_DELIVER_STREAMS;
pub use discovery::MAX_DISCOVERY_QUERIES;
pub use gateway::{MAX_CHAINCODE_EVENT_STREAMS, MAX_COMMIT_STATUS_WAITERS};
pub use operations::VERSION;
pub use system_chaincodes::{CSCC, LIFECYCLE, Origin, QSCC, SystemChaincodeStatus, built_in};
pub use transient::{MAX_TRANSIENT_BYTES, TRANSIENT_RETENTION};

/// Where the node creates its development organization, under the data directory, when no
/// MSP directory is configured.
pub const DEV_ORG_DIR: &str = "organizations/dev";
/// Where the node keeps the CA of its chaincode listener, under the data directory.
pub const CHAINCODE_CA_DIR: &str = "tls/chaincode";
/// Where the node keeps installed chaincode packages, under the data directory.
pub const PACKAGES_DIR: &str = "packages";
pub use crate::config::WASM_CACHE_DIR;

/// The development organization of the node whose data directory is `data_dir`.
pub fn dev_organization(data_dir: &std::path::Path) -> DevOrganization {
    DevOrganization::at(&data_dir.join(DEV_ORG_DIR))
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The wasm engine could not be set up.
    #[error(transparent)]
    Inproc(#[from] InprocError),
    /// An MSP directory or the node's identity could not be created or loaded.
    #[error(transparent)]
    Msp(#[from] MspError),
    /// A channel could not be read or created.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The node's own identity is not a valid member of its organization.
    #[error("the node's own identity is not valid in its organization: {0}")]
    OwnIdentity(IdentityError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A gRPC server failed.
    #[error("{server} server: {source}")]
    Serve {
        /// Which server.
        server: &'static str,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// The system chaincode directory could not be read.
    #[error("system chaincode directory {dir}: {source}")]
    ChaincodeDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No system chaincode of that name is built in or in the directory.
    #[error("no system chaincode {0} is built in or in the system chaincode directory")]
    UnknownSystemChaincode(String),
    /// A reloaded system chaincode did not start.
    #[error("system chaincode {name} was reloaded but did not start: {reason}")]
    Reload {
        /// The chaincode.
        name: String,
        /// Why it did not start.
        reason: String,
    },
    /// The chaincode listener's TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The operations endpoint's TLS could not be set up.
    #[error(transparent)]
    OperationsTls(#[from] OperationsTlsError),
    /// The operations endpoint failed.
    #[error("operations endpoint: {0}")]
    Operations(std::io::Error),
    /// A server task panicked.
    #[error("server task crashed: {0}")]
    Crashed(String),
}

/// A started node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    peer_addr: SocketAddr,
    chaincode_addr: SocketAddr,
    admin_addr: SocketAddr,
    operations_addr: Option<SocketAddr>,
    support: ChaincodeSupport,
    inproc: Arc<InprocVm>,
    system_chaincodes: SystemChaincodes,
    packages: PackageStore,
    docker: Arc<DockerVm>,
    background: Background,
    prepared: watch::Receiver<bool>,
    stop: Vec<oneshot::Sender<()>>,
    servers: Vec<JoinHandle<Result<(), NodeError>>>,
    /// The channels' block cutters, each ending once its channel is no longer served.
    cutters: TaskTracker,
}

impl Node {
    /// Opens the ledger, creates the development identities on first start, and serves the
    /// endorser, committer and chaincode support services.
    ///
    /// # Errors
    /// Fails when the data directory, the ledger or an address cannot be used.
    pub async fn start(config: &Config) -> Result<Self, NodeError> {
        let ledger = Ledger::open(&config.data_dir.join("ledger"), config.ledger.cache_bytes)?;
        let msp_dir = match &config.msp_dir {
            Some(dir) => dir.clone(),
            None => {
                let dev = dev_organization(&config.data_dir);
                dev.create_if_absent(&config.msp_id)?;
                dev.peer_msp_dir()
            }
        };
        let identity = Identity::load(&msp_dir, &config.msp_id)?;
        let organizations =
            Access::read_organizations(&msp_dir, &config.msp_id, &config.organizations)?;
        let tls_binding = config.peer_tls() && config.tls.client_auth_required;
        let identity = Arc::new(identity);
        let mut chaincodes = ChaincodeSupport::builder(ledger.clone(), config.support());
        let inproc = Arc::new(InprocVm::new(
            chaincodes.connector(),
            config.inproc_limits(),
            Some(config.wasm_cache_dir()),
            Arc::new(LedgerBlocks(ledger.clone())),
        )?);
        chaincodes.vm(Arc::clone(&inproc) as Arc<dyn Vm>);
        for (chaincode, dir) in &config.inproc.data_dirs {
            std::fs::create_dir_all(dir).map_err(|source| NodeError::ChaincodeDir {
                dir: dir.clone(),
                source,
            })?;
            inproc.grant_dir(chaincode, dir.clone());
        }
        let transient = Arc::new(TransientStore::default());

        let peer_listener = bind(&config.listen).await?;
        let chaincode_listener = bind(&config.chaincode_listen).await?;
        let peer_addr = local_addr(&peer_listener, &config.listen)?;
        let advertised = config
            .address
            .clone()
            .unwrap_or_else(|| advertised_address(peer_addr));
        // A new channel's configuration; the node's own organizations and policies, which
        // guard the node itself, are the same.
        let template = ChannelConfig::new_channel(
            organizations,
            &config.acls,
            advertised.clone(),
            config.batching(),
        );
        let local = Arc::new(Access::of_channel(
            &template,
            identity.msp_id(),
            tls_binding,
        )?);
        let validated_identity = local
            .trust
            .validate(&identity.serialized())
            .map_err(NodeError::OwnIdentity)?;
        let chaincode_addr = local_addr(&chaincode_listener, &config.chaincode_listen)?;
        let packages = PackageStore::new(config.data_dir.join(PACKAGES_DIR));
        let chaincode_ca = if config.chaincode_tls() {
            let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
            let listen_ip = chaincode_addr.ip().to_string();
            if !names.contains(&listen_ip) {
                names.push(listen_ip);
            }
            Some(Arc::new(ChaincodeCa::load_or_create(
                &config.data_dir.join(CHAINCODE_CA_DIR),
                names,
            )?))
        } else {
            None
        };
        let definitions = Arc::new(DefinedChaincodes {
            ledger: ledger.clone(),
            packages: packages.clone(),
            local_msp_id: identity.msp_id().to_owned(),
        });
        let defined = Arc::clone(&definitions) as Arc<dyn ChaincodeResolver>;
        chaincodes.vm(Arc::new(CcaasVm::new(
            Arc::clone(&defined),
            chaincodes.connector(),
        )));
        chaincodes.container_runtime(ContainerRuntime::new(
            chaincode_addr.to_string(),
            chaincode_ca.clone().map(|ca| ca as Arc<dyn CertIssuer>),
        ));
        let docker = Arc::new(DockerVm::new(
            config.docker_settings(),
            defined,
            chaincodes.registrations(),
            chaincodes.launch_progress().clone(),
        ));
        chaincodes.vm(Arc::clone(&docker) as Arc<dyn Vm>);
        let support = chaincodes.build();
        let system_chaincodes = SystemChaincodes::new(
            Arc::clone(&inproc),
            support.clone(),
            config.inproc.chaincode_dir.clone(),
            &config.inproc.block_readers,
        );
        let from_dir = system_chaincodes.install_all()?;

        let own_signatures = Arc::new(OwnSignatures::new(identity.serialized()));
        let redefined_in = support.clone();
        let cutters = TaskTracker::new();
        let channels = Arc::new(Channels::open(
            ledger.clone(),
            ChannelContext {
                local_msp_id: identity.msp_id().to_owned(),
                tls_binding,
                own_signatures: Arc::clone(&own_signatures),
                state: Arc::clone(&definitions) as _,
                on_redefined: Arc::new(move |name: &str| {
                    user_chaincodes::retire_redefined(&redefined_in, name);
                }),
                tasks: cutters.clone(),
            },
            template,
        )?);
        if channels.get(DEFAULT_CHANNEL).is_none() {
            channels.create(DEFAULT_CHANNEL)?;
        }

        let client_port = || -> Result<tonic::transport::Server, NodeError> {
            let server = tonic::transport::Server::builder();
            if !config.peer_tls() {
                return Ok(server);
            }
            server
                .tls_config(tls::client_port_tls(&config.tls, &msp_dir)?)
                .map_err(|source| NodeError::Serve {
                    server: "peer",
                    source,
                })
        };
        let background = Background::new();
        let msp_id = identity.msp_id().to_owned();
        let endorser = Arc::new(Endorser::new(
            support.clone(),
            Arc::clone(&identity),
            Arc::clone(&transient),
            Arc::clone(&channels),
            Arc::clone(&local),
            Arc::new(LocalLifecycle::new(Arc::clone(&definitions))),
            own_signatures,
        ));
        let orderer = Arc::new(Orderer::new(transient, Arc::clone(&channels)));
        let deliverer = Arc::new(Deliverer::new(
            ledger.clone(),
            Arc::clone(&channels),
            background.stop_token(),
        ));
        let (recv, send) = (config.max_recv_message_bytes, config.max_send_message_bytes);
        let admin = AdminService::server(
            system_chaincodes.clone(),
            packages.clone(),
            support.clone(),
            Arc::clone(&channels),
            Arc::clone(&local),
        )
        .max_decoding_message_size(recv)
        .max_encoding_message_size(send);
        // `grpc.health.v1.Health`: the port answers SERVING for as long as it serves.
        let (_, health) = tonic_health::server::health_reporter();
        let mut peer_router = client_port()?
            .add_service(health)
            .add_service(
                EndorserService::server(Arc::clone(&endorser))
                    .max_decoding_message_size(recv)
                    .max_encoding_message_size(send),
            )
            .add_service(
                GatewayService::server(
                    endorser,
                    Arc::clone(&orderer),
                    ledger.clone(),
                    Arc::clone(&channels),
                    msp_id,
                    peer_addr.to_string(),
                    background.stop_token(),
                )
                .max_decoding_message_size(recv)
                .max_encoding_message_size(send),
            )
            .add_service(
                BroadcastService::server(Arc::clone(&orderer), Arc::clone(&deliverer))
                    .max_decoding_message_size(recv)
                    .max_encoding_message_size(send),
            )
            .add_service(
                DeliverService::server(deliverer)
                    .max_decoding_message_size(recv)
                    .max_encoding_message_size(send),
            )
            .add_service(
                DiscoveryService::server(
                    ledger.clone(),
                    channels,
                    local,
                    definitions,
                    support.clone(),
                    Arc::clone(&identity),
                    validated_identity,
                    &advertised,
                )
                .max_decoding_message_size(recv)
                .max_encoding_message_size(send),
            )
            .add_service(
                CommitterService::server(orderer)
                    .max_decoding_message_size(recv)
                    .max_encoding_message_size(send),
            );
        let mut servers = Servers::default();
        let admin_addr = match &config.admin_listen {
            None => {
                peer_router = peer_router.add_service(admin);
                peer_addr
            }
            Some(addr) => {
                let listener = bind(addr).await?;
                let admin_addr = local_addr(&listener, addr)?;
                servers.serve("admin", client_port()?.add_service(admin), listener);
                admin_addr
            }
        };
        let mut chaincode_server = tonic::transport::Server::builder();
        if let Some(ca) = &chaincode_ca {
            chaincode_server = chaincode_server
                .tls_config(ca.server_tls())
                .map_err(|source| NodeError::Serve {
                    server: "chaincode",
                    source,
                })?;
        }
        let chaincode_router =
            chaincode_server.add_service(ChaincodeSupportService::server(support.clone()));
        let (background, prepared) =
            start_background(background, config, &system_chaincodes, &support, from_dir);
        servers.serve("peer", peer_router, peer_listener);
        servers.serve("chaincode", chaincode_router, chaincode_listener);
        let operations_addr = match &config.operations.listen_address {
            None => None,
            Some(addr) => {
                let listener = bind(addr).await?;
                let bound = local_addr(&listener, addr)?;
                let tls = &config.operations.tls;
                let operations = Operations::new(ledger.clone(), Arc::clone(&docker), tls.enabled);
                let service = operations
                    .router()
                    .into_make_service_with_connect_info::<ClientCertificate>();
                if tls.enabled {
                    let server_config = operations_tls::server_config(tls, &msp_dir)?;
                    let listener = TlsListener::new(listener, server_config).map_err(|source| {
                        NodeError::Bind {
                            addr: addr.clone(),
                            source,
                        }
                    })?;
                    servers.serve_http(|stopped| {
                        axum::serve(listener, service)
                            .with_graceful_shutdown(stopped)
                            .into_future()
                    });
                } else {
                    servers.serve_http(|stopped| {
                        axum::serve(listener, service)
                            .with_graceful_shutdown(stopped)
                            .into_future()
                    });
                }
                Some(bound)
            }
        };
        record_heights(&ledger);
        info!(%peer_addr, %chaincode_addr, %admin_addr, dev_mode = config.dev_mode, tls = config.peer_tls(), "node started");
        Ok(Self {
            peer_addr,
            chaincode_addr,
            admin_addr,
            operations_addr,
            support,
            inproc,
            system_chaincodes,
            packages,
            docker,
            background,
            prepared,
            stop: servers.stop,
            servers: servers.tasks,
            cutters,
        })
    }

    /// Resolves once the built-in system chaincodes have been readied for a fast first launch,
    /// which the node does in the background from its start ([`InprocVm::prepare`]).
    pub async fn system_chaincodes_prepared(&self) {
        let mut prepared = self.prepared.clone();
        let _ = prepared.wait_for(|done| *done).await;
    }

    /// The address clients reach the endorser and committer on.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The address of the `ccvm.Admin` service: its own listener (`admin_listen`), else the
    /// client address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The address of the operations endpoint, when it is served.
    pub fn operations_addr(&self) -> Option<SocketAddr> {
        self.operations_addr
    }

    /// The address chaincodes dial.
    pub fn chaincode_addr(&self) -> SocketAddr {
        self.chaincode_addr
    }

    /// Chaincode support, for inspecting registered chaincodes.
    pub fn support(&self) -> &ChaincodeSupport {
        &self.support
    }

    /// The VM that runs wasm system chaincode inside this node.
    pub fn inproc(&self) -> &InprocVm {
        &self.inproc
    }

    /// The chaincode packages installed on this node.
    pub fn packages(&self) -> &PackageStore {
        &self.packages
    }

    /// The VM that runs user chaincode in Docker containers.
    pub fn docker(&self) -> &DockerVm {
        &self.docker
    }

    /// The system chaincodes and whether each runs.
    pub fn system_chaincodes(&self) -> Vec<SystemChaincodeStatus> {
        self.system_chaincodes.list()
    }

    /// Compiles the system chaincode `name` again from its file (or its built-in wasm) and swaps
    /// it in: transactions in flight finish on the old instance, new ones use the new one.
    ///
    /// # Errors
    /// An unknown name, a wasm that does not compile (the old instance keeps serving), or a new
    /// instance that does not start.
    pub async fn reload_system_chaincode(&self, name: &str) -> Result<(), NodeError> {
        self.system_chaincodes.reload(name).await
    }

    /// Serves until `signal` resolves, then shuts down; returns early if a server fails.
    ///
    /// # Errors
    /// The error of a server that stopped on its own.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let failed = {
            let any_server = futures_util::future::select_all(self.servers.iter_mut());
            tokio::select! {
                () = signal => None,
                (result, _, _) = any_server => Some(result),
            }
        };
        match failed {
            None => self.shutdown().await,
            Some(result) => {
                self.background.cancel();
                for stop in self.stop {
                    let _ = stop.send(());
                }
                self.support.stop().await;
                self.background.ended().await;
                joined(result)
            }
        }
    }

    /// Stops accepting connections, disconnects every chaincode, and waits until the servers,
    /// the connections, the committer and the background work have finished (a system
    /// chaincode being compiled finishes compiling), so that the ledger is closed on return.
    ///
    /// # Errors
    /// The first server error.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.background.cancel();
        for stop in self.stop {
            let _ = stop.send(());
        }
        self.support.stop().await;
        let mut first_error = Ok(());
        for server in self.servers {
            let result = joined(server.await);
            if first_error.is_ok() {
                first_error = result;
            }
        }
        self.cutters.close();
        self.cutters.wait().await;
        self.background.ended().await;
        info!("node stopped");
        first_error
    }
}

/// Starts the node's background work: readying the built-in system chaincodes, starting those
/// installed from the directory (`from_dir`) and watching it. The receiver turns true once the
/// built-ins are ready.
fn start_background(
    mut background: Background,
    config: &Config,
    system_chaincodes: &SystemChaincodes,
    support: &ChaincodeSupport,
    from_dir: Vec<String>,
) -> (Background, watch::Receiver<bool>) {
    let (preparation, prepared) =
        system_chaincodes.prepare_built_ins(&from_dir, background.stop_token());
    background.add(preparation);
    for name in from_dir {
        let (support, stop) = (support.clone(), background.stop_token());
        background.add(tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                launched = support.launch(&name) => if let Err(e) = launched {
                    warn!(chaincode = %name, error = %e, "system chaincode did not start");
                }
            }
        }));
    }
    if config.inproc.watch_interval_ms > 0 {
        let interval = Duration::from_millis(config.inproc.watch_interval_ms);
        if let Some(watcher) = system_chaincodes.watch(interval, background.stop_token()) {
            background.add(watcher);
        }
    }
    (background, prepared)
}

/// The node's gRPC servers, each on its own task, and the means to stop them.
#[derive(Default)]
struct Servers {
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<Result<(), NodeError>>>,
}

impl Servers {
    /// Serves `router` on `listener` until stopped.
    fn serve(
        &mut self,
        server: &'static str,
        router: tonic::transport::server::Router,
        listener: TcpListener,
    ) {
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop.push(stop);
        self.tasks.push(tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming(listener), async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|source| NodeError::Serve { server, source })
        }));
    }

    /// Serves the HTTP `router` on `listener` until stopped.
    /// Runs the HTTP server that `serve` makes from a signal to shut down gracefully.
    fn serve_http<F>(&mut self, serve: impl FnOnce(Stopped) -> F)
    where
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop.push(stop);
        let server = serve(Box::pin(async {
            let _ = stopped.await;
        }));
        self.tasks.push(tokio::spawn(async move {
            server.await.map_err(NodeError::Operations)
        }));
    }
}

/// Resolves when the node stops.
type Stopped = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sets `ledger_blockchain_height` of each channel as the node finds it at start.
fn record_heights(ledger: &Ledger) {
    for channel in ledger.channels().unwrap_or_default() {
        if let Ok(info) = ledger.chain_info(&channel) {
            let height = i64::try_from(info.height).unwrap_or(i64::MAX);
            metrics()
                .blockchain_height
                .with_label_values(&[channel.as_str()])
                .set(height);
        }
    }
}

fn joined(result: Result<Result<(), NodeError>, tokio::task::JoinError>) -> Result<(), NodeError> {
    result.map_err(|e| NodeError::Crashed(e.to_string()))?
}

/// Accepted connections with Nagle's algorithm off: request and reply messages are small, and
/// waiting to coalesce them costs a delayed-ACK round (about 40 ms) per message.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

async fn bind(addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// The address clients are told to reach the node at when none is configured: the client
/// port's, with a wildcard IP as loopback.
fn advertised_address(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        format!("127.0.0.1:{}", bound.port())
    } else {
        bound.to_string()
    }
}

fn local_addr(listener: &TcpListener, addr: &str) -> Result<SocketAddr, NodeError> {
    listener.local_addr().map_err(|source| NodeError::Bind {
        addr: addr.to_owned(),
        source,
    })
}
