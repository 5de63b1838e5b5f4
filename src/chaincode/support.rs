//! The entry point for running a transaction on a chaincode.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use ccvm_proto::protos::{ChaincodeInput, ChaincodeMessage, SignedProposal};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::connection::{Connection, Effect, ToChaincode};
use super::error::{ChaincodeError, Result};
use super::handler::Handler;
use super::launch::Launcher;
use super::registry::{HandlerHandle, HandlerRegistry};
use super::tx_context::SharedSimulator;
use crate::container::{
    ChaincodeStreams, ContainerRuntime, Exit, InlinePeer, LaunchProgress, Offered, PeerEnd,
    PeerGone, Registrations, StreamConnector, Vm,
};
use crate::ledger::Ledger;
use crate::metrics::metrics;
use crate::sync::lock;

/// Fabric's default `chaincode.executetimeout`: how long a transaction may run (the same as a
/// wasm guest's deadline).
pub const DEFAULT_EXECUTE_TIMEOUT: Duration = ccvm_sandbox::DEFAULT_TX_DEADLINE;

/// Fabric's default `chaincode.startuptimeout`: how long a launched chaincode may take to register.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a dropped connection waits for its VM to say how the chaincode ended, so that its
/// transactions fail with that ("container exited with 137") rather than "stream ended".
pub const EXIT_REPORT_PATIENCE: Duration = Duration::from_secs(2);

/// Instances a transaction is offered to when the one chosen was retired (a reload) or ended
/// before the transaction began on it: enough for a reload during the choice, bounded so that
/// instances ending one after another cannot keep a transaction going round.
const MAX_INSTANCES_TRIED: usize = 3;

/// Largest `ChaincodeMessage` accepted from a chaincode: Fabric's default gRPC limit of 100 MiB,
/// the same for a guest inside the peer. Larger messages close the stream with a logged reason.
pub use ccvm_sandbox::DEFAULT_MAX_MESSAGE_BYTES;

/// How the peer treats chaincodes.
#[derive(Debug, Clone)]
pub struct SupportConfig {
    /// How long a transaction may run before it fails with a timeout.
    pub execute_timeout: Duration,
    /// How long a launched chaincode may take to register.
    pub startup_timeout: Duration,
    /// Accept chaincodes that connect on their own and register under any name.
    pub dev_mode: bool,
    /// Send KEEPALIVE at this interval; `None` (the default) never sends it, because Fabric's
    /// Node shim mishandles it.
    pub keepalive: Option<Duration>,
    /// Largest message accepted from a chaincode.
    pub max_message_bytes: usize,
    /// A chaincode dialing in must register under the name of its client certificate (the
    /// listener then serves mutual TLS).
    pub require_client_certs: bool,
}

impl Default for SupportConfig {
    fn default() -> Self {
        Self {
            execute_timeout: DEFAULT_EXECUTE_TIMEOUT,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            dev_mode: false,
            keepalive: None,
            require_client_certs: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// One transaction to run on a chaincode.
pub struct ExecuteRequest {
    /// The channel the transaction runs on.
    pub channel: String,
    /// The chaincode's name.
    pub chaincode: String,
    /// The transaction id.
    pub tx_id: String,
    /// The arguments, `is_init` set for INIT.
    pub input: ChaincodeInput,
    /// The client's proposal, given to the chaincode for creator, transient data and timestamp.
    pub signed_proposal: Option<SignedProposal>,
    /// Where the transaction's reads and writes are recorded.
    pub simulator: SharedSimulator,
    /// Refuse writes (a call into another channel).
    pub read_only: bool,
}

/// What a chaincode answered: its COMPLETED message.
pub type ExecuteResult = ChaincodeMessage;

/// Drives a launched chaincode's connection on the chaincode's own thread, within the call that
/// hands the peer each message.
///
/// It holds support weakly, as the connector does: the guest's thread may outlive the peer's
/// stop by a moment, and must not keep the peer's ledger open.
struct InlineDriver {
    support: Weak<Inner>,
    connection: Arc<Mutex<Connection>>,
}

impl InlinePeer for InlineDriver {
    fn offer(
        &self,
        message: ChaincodeMessage,
        answers: &mut VecDeque<ChaincodeMessage>,
    ) -> Offered {
        let mut connection = lock(&self.connection);
        let mut closed = None;
        for effect in connection.on_message(message) {
            match effect {
                Effect::ToChaincode(ToChaincode::Send(answer)) => answers.push_back(answer),
                Effect::ToChaincode(ToChaincode::Close(reason)) => closed = Some(reason),
                Effect::InPeer(effect) => match self.support.upgrade() {
                    Some(inner) => effect.apply(&ChaincodeSupport { inner }),
                    None => closed = Some("the peer has stopped".to_owned()),
                },
            }
        }
        match closed {
            Some(reason) => Offered::Closed(reason),
            None => Offered::Answered,
        }
    }
}

/// Runs transactions on registered chaincodes. Cheap to clone.
#[derive(Clone)]
pub struct ChaincodeSupport {
    inner: Arc<Inner>,
}

struct Inner {
    registry: HandlerRegistry,
    ledger: Ledger,
    config: SupportConfig,
    stopping: CancellationToken,
    tasks: TaskTracker,
    launcher: Launcher,
    expected: Arc<ExpectedRegistrations>,
}

/// Names that chaincodes launched outside the peer will register with, counted per name.
#[derive(Default)]
struct ExpectedRegistrations {
    names: Mutex<HashMap<String, usize>>,
}

impl ExpectedRegistrations {
    fn contains(&self, name: &str) -> bool {
        lock(&self.names).contains_key(name)
    }
}

impl Registrations for ExpectedRegistrations {
    fn expect(&self, name: &str) {
        *lock(&self.names).entry(name.to_owned()).or_default() += 1;
    }

    fn forget(&self, name: &str) {
        let mut names = lock(&self.names);
        if let Some(count) = names.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                names.remove(name);
            }
        }
    }
}

/// Chaincode support under construction: the VMs that launch chaincodes are made with its
/// [`connector`](Self::connector) and handed to it once, before it is built.
pub struct SupportBuilder {
    ledger: Ledger,
    config: SupportConfig,
    vms: Vec<Arc<dyn Vm>>,
    runtime: ContainerRuntime,
    progress: LaunchProgress,
    expected: Arc<ExpectedRegistrations>,
    built: SupportCell,
}

/// Where a connector finds chaincode support once it is built; weak, since the VM the connector
/// is given to is held by support.
type SupportCell = Arc<OnceLock<Weak<Inner>>>;

impl SupportBuilder {
    /// Connects the chaincodes a VM starts to the support this builds (see
    /// [`ChaincodeSupport::connector`]).
    pub fn connector(&self) -> StreamConnector {
        connector_to(Arc::clone(&self.built))
    }

    /// Lets support launch the chaincodes `vm` has, on first use and after they end. VMs are
    /// asked in the order they are added.
    pub fn vm(&mut self, vm: Arc<dyn Vm>) -> &mut Self {
        self.vms.push(vm);
        self
    }

    /// Sets the container runtime step of launches: where chaincodes that dial the peer find
    /// it, and who issues their client certificates.
    pub fn container_runtime(&mut self, runtime: ContainerRuntime) -> &mut Self {
        self.runtime = runtime;
        self
    }

    /// Where a VM that starts chaincode outside the peer announces the names it will register
    /// with.
    pub fn registrations(&self) -> Arc<dyn Registrations> {
        Arc::clone(&self.expected) as Arc<dyn Registrations>
    }

    /// Where launches report their steps; VMs report theirs here too.
    pub fn launch_progress(&self) -> &LaunchProgress {
        &self.progress
    }

    /// The support, with its VMs.
    pub fn build(self) -> ChaincodeSupport {
        let inner = Arc::new(Inner {
            registry: HandlerRegistry::default(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            launcher: Launcher::new(self.vms, self.runtime, self.progress),
            expected: self.expected,
            ledger: self.ledger,
            config: self.config,
        });
        let _ = self.built.set(Arc::downgrade(&inner));
        ChaincodeSupport { inner }
    }
}

impl ChaincodeSupport {
    /// Support over `ledger` with the given settings, to be given its VMs before it is built.
    pub fn builder(ledger: Ledger, config: SupportConfig) -> SupportBuilder {
        SupportBuilder {
            ledger,
            config,
            vms: Vec::new(),
            runtime: ContainerRuntime::default(),
            progress: LaunchProgress::default(),
            expected: Arc::default(),
            built: SupportCell::default(),
        }
    }

    /// Support over `ledger` with the given settings and no VMs: it runs transactions only on
    /// chaincodes that connect on their own.
    pub fn new(ledger: Ledger, config: SupportConfig) -> Self {
        Self::builder(ledger, config).build()
    }

    /// The registry of connected chaincodes.
    pub fn registry(&self) -> &HandlerRegistry {
        &self.inner.registry
    }

    /// The ledger transactions run against.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The settings.
    pub fn config(&self) -> &SupportConfig {
        &self.inner.config
    }

    /// Runs a task that belongs to chaincode support (a connection's handler, a chaincode call),
    /// so that [`Self::stop`] waits for it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(task);
    }

    /// Resolves when the peer is shutting down.
    pub(crate) fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.inner.stopping.cancelled()
    }

    /// Disconnects every chaincode, fails their open transactions, and waits until all
    /// connection tasks have ended.
    pub async fn stop(&self) {
        self.inner.stopping.cancel();
        self.inner.launcher.stop().await;
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Connects chaincodes a VM launched: each connection accepts the registration under the
    /// name the chaincode was launched as, and is driven by a [`Handler`] over its streams and by
    /// the VM inline, on the chaincode's own thread. The VM runs the handler; [`Self::stop`]
    /// waits for it all the same.
    ///
    /// The connector holds support weakly, since the VM it is given to is held by support: once
    /// support is gone, it refuses a new chaincode with [`PeerGone`].
    pub fn connector(&self) -> StreamConnector {
        connector_to(Arc::new(OnceLock::from(Arc::downgrade(&self.inner))))
    }

    /// Whether the node runs chaincode `name` itself (a system chaincode, or a user chaincode
    /// whose committed definition names an installed package or a service): then nobody else
    /// may register under its name, even in dev mode.
    pub fn launchable(&self, name: &str) -> bool {
        self.inner.launcher.can_launch(name)
    }

    /// Where launches report their steps; VMs report theirs here too.
    pub fn launch_progress(&self) -> &LaunchProgress {
        self.inner.launcher.progress()
    }

    /// Why the chaincode launched as `name` ended (its container's exit code, say), if its VM
    /// reports it within [`EXIT_REPORT_PATIENCE`].
    pub(crate) async fn exit_reason(&self, name: &str) -> Option<Exit> {
        self.inner
            .launcher
            .exit_reason(name, EXIT_REPORT_PATIENCE)
            .await
    }

    /// Whether a chaincode launched outside the peer is expected to register as `name`.
    pub(crate) fn expects(&self, name: &str) -> bool {
        self.inner.expected.contains(name)
    }

    /// The handler of a chaincode, launching it first if it is not running but the VM has it.
    /// Concurrent launches of one chaincode start it once.
    ///
    /// # Errors
    /// [`ChaincodeError::NotRunning`] for a chaincode nobody can start,
    /// [`ChaincodeError::LaunchFailed`] or [`ChaincodeError::StartupTimeout`].
    pub async fn launch(&self, name: &str) -> Result<HandlerHandle> {
        if let Some(handle) = self.inner.registry.get(name) {
            return Ok(handle);
        }
        let started = Instant::now();
        let launched = self
            .inner
            .launcher
            .launch(
                name,
                &self.inner.registry,
                self.inner.config.startup_timeout,
            )
            .await;
        let metrics = metrics();
        let success = if launched.is_ok() { "true" } else { "false" };
        metrics
            .launch_duration
            .with_label_values(&[name, success])
            .observe(started.elapsed().as_secs_f64());
        if launched.is_err() {
            metrics.launch_failures.with_label_values(&[name]).inc();
        }
        if let Err(ChaincodeError::StartupTimeout { .. }) = &launched {
            metrics.launch_timeouts.with_label_values(&[name]).inc();
        }
        launched
    }

    /// The instance of the request's chaincode to run it on (see [`HandlerRegistry::pick`]),
    /// launching the chaincode if none runs. When every instance is busy and the chaincode's VM
    /// runs more, one more is started and the transaction waits for it rather than behind
    /// another; while that start is under way, further transactions go to the least busy.
    async fn instance_for(&self, request: &ExecuteRequest) -> Result<HandlerHandle> {
        let registry = &self.inner.registry;
        let tx = Some((request.channel.as_str(), request.tx_id.as_str()));
        let Some(pick) = registry.pick(&request.chaincode, tx) else {
            return self.launch(&request.chaincode).await;
        };
        if !pick.all_busy {
            return Ok(pick.handle);
        }
        let growth = self.inner.launcher.grow(
            &request.chaincode,
            pick.instances,
            registry,
            self.inner.config.startup_timeout,
        );
        let Some(grown) = growth else {
            return Ok(pick.handle);
        };
        let _ = grown.await;
        Ok(registry
            .pick(&request.chaincode, tx)
            .map_or(pick.handle, |again| again.handle))
    }

    /// Retires the running chaincode `name` so that a newer instance can take its place: every
    /// instance of it takes no new transactions (they launch the newer one) and ends once its
    /// own are done.
    /// Returns whether it was running.
    pub fn retire(&self, name: &str) -> bool {
        self.inner.registry.retire(name)
    }

    /// Runs one transaction and returns the chaincode's COMPLETED message. A chaincode running
    /// inside the peer whose transaction times out is ended (it may be stuck where no deadline
    /// reaches it) and taken out of the registry at once, so that the next call launches a new
    /// instance. A transaction whose chosen instance was retired or ended before it began goes
    /// to another, so that after a reload no transaction runs on the older version.
    ///
    /// # Errors
    /// As [`Self::launch`], then as [`super::HandlerHandle::execute`], or
    /// [`ChaincodeError::Retired`] when every instance offered the transaction refused it.
    pub async fn execute(&self, mut request: ExecuteRequest) -> Result<ExecuteResult> {
        let mut attempts = 1;
        let (handle, result) = loop {
            let handle = self.instance_for(&request).await?;
            match handle
                .execute(request, self.inner.config.execute_timeout)
                .await
            {
                Ok(result) => break (handle, result),
                Err(not_begun) if attempts < MAX_INSTANCES_TRIED => {
                    attempts += 1;
                    request = not_begun.request;
                }
                Err(not_begun) => {
                    break (
                        handle,
                        Err(ChaincodeError::Retired {
                            chaincode: not_begun.request.chaincode,
                            reason: not_begun.reason,
                        }),
                    );
                }
            }
        };
        if let Err(ChaincodeError::Timeout { .. }) = &result {
            metrics()
                .execute_timeouts
                .with_label_values(&[handle.name()])
                .inc();
        }
        if let Err(ChaincodeError::Timeout { .. }) = &result
            && let Some(end) = handle.end_on_timeout()
        {
            warn!(
                chaincode = handle.name(),
                "ending the chaincode after its transaction timed out"
            );
            self.inner.registry.deregister(&handle);
            end.cancel();
        }
        result
    }
}

/// A connector to the support `built` holds (see [`ChaincodeSupport::connector`]).
fn connector_to(built: SupportCell) -> StreamConnector {
    Arc::new(move |streams: ChaincodeStreams| {
        let inner = built
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| PeerGone {
                chaincode: streams.launched_as.clone(),
            })?;
        let support = ChaincodeSupport { inner };
        let ChaincodeStreams {
            launched_as,
            inbound,
            outbound,
            end_on_timeout,
            replaced,
        } = streams;
        let connection = Connection::new(support.clone(), outbound.clone())
            .launched_as(launched_as)
            .ended_on_timeout_by(end_on_timeout)
            .retired_when_replaced(replaced.as_ref());
        let connection = Arc::new(Mutex::new(connection));
        let handler = Handler::driving(support.clone(), outbound, Arc::clone(&connection));
        let serve = support.inner.tasks.track_future(
            handler.serve(ReceiverStream::new(inbound).map(|next| next.map(|message| *message))),
        );
        Ok(PeerEnd {
            inline: Box::new(InlineDriver {
                support: Arc::downgrade(&support.inner),
                connection,
            }),
            serve: Box::pin(serve),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_name_is_forgotten_only_when_each_expectation_is() {
        let expected = ExpectedRegistrations::default();
        expected.expect("cc:1.0");
        expected.expect("cc:1.0");
        expected.forget("cc:1.0");
        assert!(
            expected.contains("cc:1.0"),
            "a second container is still to register"
        );
        expected.forget("cc:1.0");
        assert!(!expected.contains("cc:1.0"));
        expected.forget("cc:1.0");
        assert!(
            !expected.contains("cc:1.0"),
            "forgetting more than was expected leaves nothing behind"
        );
        assert!(lock(&expected.names).is_empty());
    }
}
