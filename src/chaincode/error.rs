//! Errors of the chaincode layer.

use std::sync::Arc;
use std::time::Duration;

use crate::container::{Exit, IssueError, VmError};

/// Why a launch failed; every caller that waited on the launch gets the same.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchFailure {
    /// The launch could not be configured: the chaincode's certificate was not issued.
    #[error(transparent)]
    Config(IssueError),
    /// The VM could not start the chaincode.
    #[error(transparent)]
    Start(Arc<VmError>),
    /// The chaincode ended before it registered.
    #[error("ended before registering: {0}")]
    EndedBeforeRegistering(Exit),
    /// The peer stopped the launch: it is shutting down.
    #[error("the peer stopped the launch: it is shutting down")]
    Abandoned,
    /// The chaincode registered, but its handler was gone when the caller looked.
    #[error("claimed to start the chaincode but could not find its handler")]
    NoHandler,
    /// Its code was replaced by a newer version while each of its starts (how many) was
    /// under way: the instance it registered serves nothing.
    #[error("its code was replaced while it started, {0} times")]
    Replaced(usize),
}

/// What can go wrong talking to a chaincode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChaincodeError {
    /// No chaincode of that name is registered with this peer.
    #[error("chaincode {name} is not running on this peer")]
    NotRunning {
        /// The chaincode asked for.
        name: String,
    },
    /// The VM could not start the chaincode, or it ended before registering.
    #[error("chaincode {name} could not be launched: {cause}")]
    LaunchFailed {
        /// The chaincode.
        name: String,
        /// Why.
        #[source]
        cause: LaunchFailure,
    },
    /// The chaincode did not register within the startup timeout.
    #[error("chaincode {name} did not register within {timeout:?}")]
    StartupTimeout {
        /// The chaincode.
        name: String,
        /// The startup timeout.
        timeout: Duration,
    },
    /// A chaincode tried to register a name that is already registered.
    #[error("chaincode {name} is already registered")]
    AlreadyRegistered {
        /// The name in the REGISTER message.
        name: String,
    },
    /// A chaincode registered without having been launched by this peer (outside dev mode).
    #[error(
        "chaincode {name} was not launched by this peer; start the node with --dev to accept it"
    )]
    NotLaunched {
        /// The name in the REGISTER message.
        name: String,
    },
    /// A chaincode started by hand tried to take the name of one the node runs itself.
    #[error(
        "chaincode {name} is run by this peer itself; a chaincode started by hand cannot take its name"
    )]
    Reserved {
        /// The name in the REGISTER message.
        name: String,
    },
    /// A chaincode registered under a name its client certificate was not issued for.
    #[error(
        "chaincode registering as {name} presented {}",
        certificate.as_deref().map_or_else(|| "no client certificate".to_owned(), |cn| format!("a certificate issued to {cn}"))
    )]
    WrongCertificate {
        /// The name in the REGISTER message.
        name: String,
        /// The common name of its certificate, if it presented one.
        certificate: Option<String>,
    },
    /// A transaction id already has a running transaction on this chaincode and channel.
    #[error("[{channel}-{short_tx}] transaction is already running on chaincode {chaincode}")]
    DuplicateTx {
        /// The channel.
        channel: String,
        /// The chaincode.
        chaincode: String,
        /// The first 8 characters of the transaction id.
        short_tx: String,
    },
    /// The chaincode did not answer within the execute timeout.
    #[error("[{channel}-{short_tx}] chaincode {chaincode} timed out after {timeout:?}")]
    Timeout {
        /// The channel.
        channel: String,
        /// The chaincode.
        chaincode: String,
        /// The first 8 characters of the transaction id.
        short_tx: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The instance chosen for a transaction was retired (a newer instance took its place) or
    /// ended before the transaction began on it; the transaction may run on another.
    #[error("chaincode {chaincode} no longer takes transactions: {reason}")]
    Retired {
        /// The chaincode.
        chaincode: String,
        /// Why its connection ended.
        reason: String,
    },
    /// The chaincode's stream ended while a transaction was waiting on it.
    #[error("chaincode {chaincode} disconnected: {reason}")]
    Disconnected {
        /// The chaincode.
        chaincode: String,
        /// Why the stream ended.
        reason: String,
    },
    /// The chaincode answered a transaction with an ERROR message.
    #[error("chaincode {chaincode} failed: {message}")]
    Failed {
        /// The chaincode.
        chaincode: String,
        /// The ERROR payload.
        message: String,
    },
}

impl ChaincodeError {
    /// Whether the chaincode did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// The chaincode layer's result.
pub type Result<T, E = ChaincodeError> = std::result::Result<T, E>;

/// The first 8 characters of a transaction id, as used in log lines and errors.
pub(crate) fn short_tx(tx_id: &str) -> String {
    tx_id.chars().take(8).collect()
}
