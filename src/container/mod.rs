//! Where chaincode runs. The inproc VM runs system chaincode as WebAssembly inside the peer; the
//! Docker VM runs user chaincode in containers that dial back over gRPC; the ccaas VM dials
//! chaincode that runs as a service elsewhere.
//!
//! A VM only starts chaincode and moves its messages: it hands each chaincode's stream of
//! `ChaincodeMessage`s to a [`StreamConnector`] and knows nothing of what the messages mean.

pub mod ccaas;
pub mod docker;
mod error;
mod exit;
pub mod inproc;
pub mod launch_config;
pub mod progress;
pub mod wasm_runner;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use error::{StreamBroken, VmError};
pub use exit::{Exit, ExitNotice, ExitReport};
pub use launch_config::{
    CertIssuer, ChaincodeResolver, ClientCredentials, Connection, ContainerRuntime, IssueError,
    LaunchConfig, Resolved, Target,
};
pub use progress::{LaunchEvent, LaunchProgress, LaunchStage};

/// A chaincode a VM started.
pub struct Started {
    /// Asks the chaincode to stop; it ends soon after.
    pub stop: Box<dyn Fn() + Send + Sync>,
    /// How the chaincode ended, once it has.
    pub exited: ExitReport,
}

/// A start under way: resolves once the chaincode is running (not yet registered), or with why
/// it could not be started.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<Started, VmError>> + Send + 'a>>;

/// A kind of VM: starts the chaincodes it has.
pub trait Vm: Send + Sync {
    /// What this VM would run for the name, if it has such a chaincode.
    fn target(&self, name: &str) -> Option<Target>;

    /// Starts the chaincode `name` as `target` (what [`Vm::target`] found) with `config` (built
    /// for it); it connects through the VM's [`StreamConnector`] or dials the peer. Starting
    /// may take a while (compiling, building an image), so it is asynchronous.
    fn start<'a>(
        &'a self,
        name: &'a str,
        target: &'a Target,
        config: &'a LaunchConfig,
    ) -> StartFuture<'a>;

    /// How many instances of one chaincode this VM runs at most: a VM that runs more than one
    /// is asked for another when every instance of a chaincode is busy.
    fn most_instances(&self) -> usize {
        1
    }
}

/// Messages from a chaincode; an `Err` ends the stream and says why.
///
/// Messages travel boxed between the peer and a chaincode: a channel allocates room for 32
/// messages at a time, which for unboxed messages would be 8 KiB per direction and connection
/// before the first message.
pub type InboundMessages = mpsc::Receiver<Result<Box<ChaincodeMessage>, StreamBroken>>;

/// The sink for messages to a chaincode (boxed, as [`InboundMessages`] says why).
pub type OutboundMessages = mpsc::Sender<Box<ChaincodeMessage>>;

/// What the peer did with a message offered inline.
#[expect(
    clippy::large_enum_variant,
    reason = "matched as soon as it is returned; boxing would allocate for each declined message"
)]
pub enum Offered {
    /// Handled at once; its replies, if any, are queued for the chaincode.
    Answered,
    /// Not answerable inline; send it down the stream.
    Declined(ChaincodeMessage),
    /// Handled, and the peer ends the connection for this reason once the chaincode has its
    /// replies (a refused registration's ERROR): send the reason down the stream as
    /// [`StreamBroken::Closed`].
    Closed(String),
}

/// The peer's inline side of one chaincode connection: a VM whose chaincode runs on a thread of
/// the peer offers each message here first and saves the hop to the handler's task.
pub trait InlinePeer: Send + Sync {
    /// Answers `message` at once if the peer can, queueing the replies in `answers`.
    fn offer(&self, message: ChaincodeMessage, answers: &mut VecDeque<ChaincodeMessage>)
    -> Offered;
}

/// The peer's side of a chaincode connection a VM made.
pub struct PeerEnd {
    /// Answers the chaincode's messages inline where it can.
    pub inline: Box<dyn InlinePeer>,
    /// Serves the connection until it ends. The VM runs it: on the chaincode's own task where
    /// the chaincode runs inside the peer, so that a launch spawns one task and not two.
    pub serve: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The streams of a chaincode a VM started, handed to the peer.
pub struct ChaincodeStreams {
    /// The name the chaincode was launched as.
    pub launched_as: String,
    /// Messages from the chaincode.
    pub inbound: InboundMessages,
    /// The sink for messages to it.
    pub outbound: OutboundMessages,
    /// Ends the chaincode, for a VM whose chaincode the peer ends when one of its transactions
    /// runs past the execute timeout: a guest inside the peer, which may be stuck in a host call
    /// where no deadline reaches it. `None` where the chaincode runs elsewhere and is left
    /// running, as Fabric leaves it.
    pub end_on_timeout: Option<CancellationToken>,
    /// Cancelled when the code the chaincode runs is replaced by a newer version for future
    /// starts, for a VM that replaces code under a name: the peer then gives it no more
    /// transactions, even one that started before the replacement and registers after it.
    pub replaced: Option<CancellationToken>,
}

/// Hands a started chaincode's streams to the peer; returns the peer's side of the connection.
pub type StreamConnector =
    std::sync::Arc<dyn Fn(ChaincodeStreams) -> Result<PeerEnd, PeerGone> + Send + Sync>;

/// The peer a VM would connect a chaincode to has stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the peer has stopped: chaincode {chaincode} cannot connect to it")]
pub struct PeerGone {
    /// The chaincode.
    pub chaincode: String,
}

/// Which names the peer expects chaincodes it launched elsewhere (in a container) to register
/// with; outside dev mode a REGISTER under any other name is refused.
pub trait Registrations: Send + Sync {
    /// A chaincode about to start will register as `name`.
    fn expect(&self, name: &str);

    /// The chaincode that was to register as `name` has ended.
    fn forget(&self, name: &str);
}
