//! Why a peer refused a chaincode's request, as a chaincode can tell from the ERROR payload.
//!
//! Each kind has a fixed text that leads the payload, alone or followed by `": "` and details
//! about the request. The text of a kind does not change between releases, so a chaincode (or
//! the SDK on its behalf) can match on [`Refusal::of`] instead of on wording.

use std::fmt::Display;

/// A kind of refusal of a chaincode's request by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The payload is not the message its type names.
    Malformed,
    /// A key was empty.
    EmptyKey,
    /// A private data request named no collection.
    EmptyCollection,
    /// A write in a chaincode called from another channel, which may only read.
    ReadOnly,
    /// A write batch record of no type.
    UntypedRecord,
    /// A `PUT_STATE_METADATA` without its metadata.
    NoMetadata,
    /// Metadata (such as a key-level endorsement policy) on private data.
    PrivateMetadata,
    /// A paginated range over private data.
    PrivatePagination,
    /// `QUERY_STATE_NEXT` or `QUERY_STATE_CLOSE` for an iterator the transaction has not open.
    UnknownIterator,
    /// `GET_QUERY_RESULT`: the state store has no query language.
    RichQueryUnsupported,
    /// A message type that is not a request a chaincode may make.
    NotAStateRequest,
    /// A channel this peer does not have.
    UnknownChannel,
    /// A block or transaction the channel does not have.
    NotFound,
    /// The peer's store failed underneath the request; the peer's log has the details.
    StoreFailure,
    /// A chaincode called by `INVOKE_CHAINCODE` failed or could not be reached.
    ChaincodeCallFailed,
}

impl Refusal {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 15] = [
        Self::Malformed,
        Self::EmptyKey,
        Self::EmptyCollection,
        Self::ReadOnly,
        Self::UntypedRecord,
        Self::NoMetadata,
        Self::PrivateMetadata,
        Self::PrivatePagination,
        Self::UnknownIterator,
        Self::RichQueryUnsupported,
        Self::NotAStateRequest,
        Self::UnknownChannel,
        Self::NotFound,
        Self::StoreFailure,
        Self::ChaincodeCallFailed,
    ];

    /// The fixed text that leads an ERROR payload of this kind.
    pub const fn text(self) -> &'static str {
        match self {
            Self::Malformed => "malformed payload",
            Self::EmptyKey => "key must not be an empty string",
            Self::EmptyCollection => "collection must not be an empty string",
            Self::ReadOnly => "writes are not allowed in a chaincode called from another channel",
            Self::UntypedRecord => "write batch record has no type",
            Self::NoMetadata => "PUT_STATE_METADATA carries no metadata",
            Self::PrivateMetadata => "metadata of private data is not supported",
            Self::PrivatePagination => "pagination is not supported for private data",
            Self::UnknownIterator => "query iterator not found",
            Self::RichQueryUnsupported => {
                "rich queries (GET_QUERY_RESULT) are not supported by this state store"
            }
            Self::NotAStateRequest => "not a state request",
            Self::UnknownChannel => "channel does not exist",
            Self::NotFound => "not found",
            Self::StoreFailure => {
                "the ledger could not be read or written; the node's log has the details"
            }
            Self::ChaincodeCallFailed => "chaincode call failed",
        }
    }

    /// The payload of this kind with `detail` after its text.
    pub fn with(self, detail: impl Display) -> String {
        format!("{}: {detail}", self.text())
    }

    /// The kind of refusal an ERROR payload tells, if it leads with a kind's text.
    pub fn of(payload: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| {
            payload
                .strip_prefix(kind.text())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(": "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Refusal;

    #[test]
    fn every_kind_reads_back_from_its_text_alone_or_with_details() {
        for kind in Refusal::ALL {
            assert_eq!(Refusal::of(kind.text()), Some(kind), "{kind:?}");
            assert_eq!(Refusal::of(&kind.with("k1")), Some(kind), "{kind:?}");
        }
    }

    #[test]
    fn no_kind_text_leads_another() {
        for kind in Refusal::ALL {
            for other in Refusal::ALL {
                if kind != other {
                    assert!(!other.text().starts_with(kind.text()), "{kind:?} {other:?}");
                }
            }
        }
    }

    #[test]
    fn a_chaincodes_own_text_is_no_kind() {
        assert_eq!(Refusal::of("the asset asset9 does not exist"), None);
        assert_eq!(Refusal::of("not foundation"), None);
        assert_eq!(Refusal::of(""), None);
    }
}
