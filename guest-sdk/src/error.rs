//! Errors a chaincode sees from the shim.

/// What can go wrong between a chaincode and its peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShimError {
    /// The peer answered a request with ERROR; the text is the peer's.
    #[error("{0}")]
    Peer(String),
    /// The peer answered with an unexpected message or an undecodable payload.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The connection to the peer is gone.
    #[error("connection to peer lost: {0}")]
    Disconnected(String),
    /// A setting (address, name, TLS file) is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// An argument given to a stub call is invalid.
    #[error("{0}")]
    InvalidArgument(String),
}
