//! Why a VM could not start a chaincode (one variant per VM, each wrapping that VM's own error),
//! and why a started chaincode's stream of messages broke off.

use ccvm_sandbox::{GuestExit, Oversize};

use super::ccaas::{CcaasError, ServiceEnd};
use super::docker::DockerError;
use super::inproc::InprocError;

/// Why a VM could not start a chaincode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// The inproc VM's.
    #[error(transparent)]
    Inproc(#[from] InprocError),
    /// The Docker VM's.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The chaincode-as-a-service VM's.
    #[error(transparent)]
    Ccaas(#[from] CcaasError),
}

/// Why a chaincode's stream of messages to the peer broke off. The peer ends the connection
/// with it and fails the chaincode's transactions in flight.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StreamBroken {
    /// A wasm guest sent a message over the size limit.
    #[error("chaincode {chaincode}: {oversize}")]
    Oversize {
        /// The chaincode.
        chaincode: String,
        /// The message's size and the limit.
        #[source]
        oversize: Oversize,
    },
    /// A wasm guest sent bytes that are not a `ChaincodeMessage`.
    #[error("undecodable message from chaincode {chaincode}: {source}")]
    Undecodable {
        /// The chaincode.
        chaincode: String,
        /// What the decoder found.
        #[source]
        source: prost::DecodeError,
    },
    /// A wasm guest ended other than by finishing.
    #[error("wasm chaincode {chaincode} {exit}")]
    GuestEnded {
        /// The chaincode.
        chaincode: String,
        /// How it ended.
        exit: GuestExit,
    },
    /// The connection to a chaincode the peer dialled ended.
    #[error("chaincode {chaincode} {end}")]
    ServiceEnded {
        /// The chaincode.
        chaincode: String,
        /// How the connection ended.
        end: ServiceEnd,
    },
    /// The peer ended the connection after its last replies (a refused registration).
    #[error("{reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The gRPC stream of a chaincode that dialled the peer failed.
    #[error("{}", .0.message())]
    Transport(tonic::Status),
}
