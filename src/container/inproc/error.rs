//! Errors of the inproc VM.

/// What can go wrong loading or running a wasm chaincode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InprocError {
    /// The bytes are not a valid component for this engine.
    #[error("chaincode {chaincode}: invalid wasm component: {reason}")]
    Compile {
        /// The chaincode.
        chaincode: String,
        /// Why compilation failed.
        reason: String,
    },
    /// A directory granted to a chaincode could not be opened.
    #[error("chaincode {chaincode}: granted directory: {reason}")]
    Grant {
        /// The chaincode.
        chaincode: String,
        /// Why.
        reason: String,
    },
    /// No system chaincode of that name is installed.
    #[error("no system chaincode {chaincode} is installed")]
    NotInstalled {
        /// The chaincode asked for.
        chaincode: String,
    },
    /// A rehearsed launch did not get to READY.
    #[error("rehearsing the launch of {chaincode} failed: {reason}")]
    NotReady {
        /// The chaincode.
        chaincode: String,
        /// Why.
        reason: String,
    },
    /// The peer has stopped, so a new instance has nothing to connect to.
    #[error(transparent)]
    PeerGone(#[from] crate::container::PeerGone),
    /// The engine could not be configured.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// The inproc VM's result.
pub type Result<T, E = InprocError> = std::result::Result<T, E>;
