//! Errors of the ledger layer.

use ccvm_proto::Refusal;

pub use super::journal::JournalError;

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
    /// A channel of that name exists already.
    #[error("channel {0} exists already")]
    ChannelExists(String),
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
    /// The commit journal failed, or holds what the store cannot take.
    #[error("ledger journal: {0}")]
    Journal(#[from] JournalError),
    /// Metadata written to a key of private data, which the simulator cannot record.
    #[error("{}", Refusal::PrivateMetadata.text())]
    PrivateMetadata,
}

/// What a chaincode or a client is told when the store fails underneath its request.
pub const STORE_FAILURE: &str = Refusal::StoreFailure.text();

impl LedgerError {
    /// The text a chaincode or a client may see: the kind of refusal, with what the request
    /// asked for. A failing store is logged in full and told as [`STORE_FAILURE`] alone: text
    /// that reaches a transaction must read the same on every peer and must not show the node's
    /// files.
    pub fn for_chaincode(&self) -> String {
        match self {
            Self::Store(_) | Self::Decode { .. } | Self::Journal(_) => {
                tracing::error!(error = %self, "the ledger failed underneath a request");
                STORE_FAILURE.to_owned()
            }
            Self::UnknownChannel(channel) => Refusal::UnknownChannel.with(channel),
            Self::ChannelExists(_) => self.to_string(),
            Self::PrivateMetadata => Refusal::PrivateMetadata.text().to_owned(),
            not_found @ (Self::NoSuchTransaction { .. }
            | Self::NoSuchBlock { .. }
            | Self::NoSuchBlockHash { .. }) => Refusal::NotFound.with(not_found),
        }
    }

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
    redb::CommitError,
    redb::SetDurabilityError
);

/// The ledger layer's result.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_store_is_told_in_a_fixed_text_and_a_refusal_in_its_own() {
        let store = LedgerError::Store(redb::Error::Io(std::io::Error::other(
            "/srv/ccvm/ledger: disk full",
        )));
        assert_eq!(store.for_chaincode(), STORE_FAILURE);
        assert_eq!(
            Refusal::of(&store.for_chaincode()),
            Some(Refusal::StoreFailure)
        );
        let refusal = LedgerError::UnknownChannel("other".to_owned());
        assert_eq!(refusal.for_chaincode(), "channel does not exist: other");
        assert_eq!(
            Refusal::of(&refusal.for_chaincode()),
            Some(Refusal::UnknownChannel)
        );
        let missing = LedgerError::NoSuchBlock {
            channel: "mychannel".to_owned(),
            number: 9,
        };
        assert_eq!(
            missing.for_chaincode(),
            "not found: channel mychannel has no block 9"
        );
        assert_eq!(
            Refusal::of(&missing.for_chaincode()),
            Some(Refusal::NotFound)
        );
    }
}
