//! Where chaincode runs. The inproc VM runs system chaincode as WebAssembly inside the peer;
//! (the Docker VM for user chaincode plugs in beside it).
//!
//! A VM only starts chaincode and moves its messages: it hands each chaincode's stream of
//! `ChaincodeMessage`s to a [`StreamConnector`] and knows nothing of what the messages mean.

pub mod inproc;

use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::mpsc;

/// Messages from a chaincode; an `Err` ends the stream with its reason.
pub type InboundMessages = mpsc::Receiver<Result<ChaincodeMessage, String>>;

/// What the peer did with a message offered inline.
pub enum Offered {
    /// Handled at once, with the reply to hand back to the chaincode, if any.
    Answered(Option<ChaincodeMessage>),
    /// Not answerable inline; send it down the stream.
    Declined(ChaincodeMessage),
}

/// The peer's inline side of one chaincode connection: a VM whose chaincode runs on a thread of
/// the peer offers each message here first and saves the hop to the handler's task.
pub trait InlinePeer: Send + Sync {
    /// Answers `message` at once if the peer can.
    fn offer(&self, message: ChaincodeMessage) -> Offered;
}

/// Hands a started chaincode's streams to the peer: `(name it was launched as, messages from the
/// chaincode, sink for messages to it)`; returns the connection's inline side.
pub type StreamConnector = std::sync::Arc<
    dyn Fn(String, InboundMessages, mpsc::Sender<ChaincodeMessage>) -> Box<dyn InlinePeer>
        + Send
        + Sync,
>;
