//! Errors a chaincode sees from the shim.

use ccvm_proto::Refusal;

/// What can go wrong between a chaincode and its peer. A refusal by the peer tells its kind
/// ([`ShimError::refusal`]), the same from every ccvm peer and from [`crate::mock::MockLedger`].
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # use ccvm_guest_sdk::ShimError;
/// use ccvm_guest_sdk::proto::Refusal;
/// # let mut ledger = MockLedger::new("assets");
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// match stub.put_state("", "blue") {
///     Err(refused) => assert_eq!(refused.refusal(), Some(Refusal::EmptyKey), "{refused}"),
///     other => panic!("the peer refuses an empty key: {other:?}"),
/// }
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
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

impl ShimError {
    /// The kind of the peer's refusal, when the peer refused a request with one of the kinds a
    /// ccvm peer tells; `None` for other errors and for a peer's text of no known kind.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Peer(text) => Refusal::of(text),
            _ => None,
        }
    }
}
