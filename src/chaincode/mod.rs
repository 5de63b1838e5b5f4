//! The peer side of the `ChaincodeMessage` protocol.
//!
//! A [`Handler`] drives one connected chaincode: it answers the registration handshake, serves
//! the state requests a chaincode makes during a transaction, and routes COMPLETED and ERROR back
//! to whoever is waiting. It consumes and produces [`ChaincodeMessage`]s only; it knows nothing of
//! gRPC, wasm or Docker, which are transports adapted onto it ([`grpc`] is one).
//! A VM that runs its chaincode inside the peer also gets the registration and the state
//! requests answered inline, on the chaincode's own task (`registration`, `immediate`).
//! [`ChaincodeSupport`] is the entry point the endorser uses: it finds the registered handler and
//! executes a transaction on it with a deadline.
//!
//! [`ChaincodeMessage`]: ccvm_proto::protos::ChaincodeMessage

mod error;
pub mod grpc;
mod handler;
mod immediate;
mod launch;
mod message;
mod queries;
mod registration;
mod registry;
mod requests;
mod support;
mod tx_context;

pub use error::{ChaincodeError, LaunchFailure, Result};
pub use handler::Handler;
pub use registry::{HandlerHandle, HandlerRegistry};
pub use support::{
    ChaincodeSupport, DEFAULT_EXECUTE_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_STARTUP_TIMEOUT,
    ExecuteRequest, ExecuteResult, SupportConfig,
};
