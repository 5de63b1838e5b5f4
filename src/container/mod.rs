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

/// Hands a started chaincode's streams to the peer: `(name it was launched as, messages from the
/// chaincode, sink for messages to it)`.
pub type StreamConnector =
    std::sync::Arc<dyn Fn(String, InboundMessages, mpsc::Sender<ChaincodeMessage>) + Send + Sync>;
