//! Errors of the ledger layer.

/// What can go wrong reading or writing the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The embedded store failed (I/O, a full disk, corruption).
    #[error("ledger store: {0}")]
    Store(#[from] redb::Error),
    /// A stored record or a transaction could not be decoded.
    #[error("undecodable {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// No channel of that name exists on this node.
    #[error("channel {0} does not exist")]
    UnknownChannel(String),
    /// No transaction with that id was committed on the channel.
    #[error("channel {channel} has no transaction {tx_id}")]
    NoSuchTransaction {
        /// The channel asked.
        channel: String,
        /// The transaction id asked.
        tx_id: String,
    },
    /// No block with that number exists on the channel.
    #[error("channel {channel} has no block {number}")]
    NoSuchBlock {
        /// The channel asked.
        channel: String,
        /// The block number asked.
        number: u64,
    },
    /// No block with that header hash exists on the channel.
    #[error("channel {channel} has no block with hash {hash}")]
    NoSuchBlockHash {
        /// The channel asked.
        channel: String,
        /// The hash asked, in hex.
        hash: String,
    },
    /// A simulator was used after its results were taken or for a write it cannot record.
    #[error("{0}")]
    Simulation(String),
}

impl LedgerError {
    pub(crate) fn decode(what: &'static str) -> impl FnOnce(prost::DecodeError) -> Self {
        move |source| Self::Decode { what, source }
    }
}

macro_rules! store_error_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for LedgerError {
            fn from(err: $ty) -> Self {
                Self::Store(err.into())
            }
        }
    )*};
}
store_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The ledger layer's result.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
