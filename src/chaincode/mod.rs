//! The peer side of the `ChaincodeMessage` protocol.
//!
//! One state machine without I/O (`connection`) is the peer side of a chaincode connection: it
//! answers the registration handshake, serves the state requests a chaincode makes during a
//! transaction, and routes COMPLETED and ERROR back to whoever is waiting. It consumes
//! [`ChaincodeMessage`]s and produces effects; it knows nothing of gRPC, wasm or Docker. A
//! [`Handler`] drives it over a stream ([`grpc`] is one); a VM that runs its chaincode inside the
//! peer drives it on the chaincode's own thread, so that its requests are answered inline.
//! [`ChaincodeSupport`] is the entry point the endorser uses: it finds the registered handler (of
//! a chaincode's instances, the least busy; `growth` starts one more when all are busy) and
//! executes a transaction on it with a deadline.
//!
//! [`ChaincodeMessage`]: ccvm_proto::protos::ChaincodeMessage

mod connection;
mod error;
mod growth;
pub mod grpc;
mod handler;
mod invocation;
mod launch;
mod message;
mod queries;
mod registration;
mod registry;
mod requests;
mod support;
mod tx_context;

pub use error::{ChaincodeError, LaunchFailure, Result};
pub use growth::{PAUSE_AFTER_FAILED_GROWTH, RETIRE_AFTER_IDLE};
pub use handler::Handler;
pub use registry::{HandlerHandle, HandlerRegistry, Pick};
pub use support::{
    ChaincodeSupport, DEFAULT_EXECUTE_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STARTUP_TIMEOUT,
    ExecuteRequest, ExecuteResult, SupportConfig,
};
