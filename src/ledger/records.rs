//! How values, versions and history entries are encoded in the store.

use std::collections::BTreeMap;

use ccvm_proto::kvrwset;
use prost::Message;

/// Where a value was last written: block number and the transaction's position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// The block that wrote the value.
    pub block: u64,
    /// The writing transaction's index within the block.
    pub tx: u64,
}

impl From<Version> for kvrwset::Version {
    fn from(v: Version) -> Self {
        Self {
            block_num: v.block,
            tx_num: v.tx,
        }
    }
}

impl From<kvrwset::Version> for Version {
    fn from(v: kvrwset::Version) -> Self {
        Self {
            block: v.block_num,
            tx: v.tx_num,
        }
    }
}

/// A stored state value with its version and metadata (for example a key-level endorsement policy).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct VersionedValue {
    #[prost(bytes = "vec", tag = "1")]
    pub value: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub block: u64,
    #[prost(uint64, tag = "3")]
    pub tx: u64,
    #[prost(btree_map = "string, bytes", tag = "4")]
    pub metadata: BTreeMap<String, Vec<u8>>,
}

impl VersionedValue {
    pub fn version(&self) -> Version {
        Version {
            block: self.block,
            tx: self.tx,
        }
    }
}

/// One change to a key, as kept by the history index.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct HistoryRecord {
    #[prost(string, tag = "1")]
    pub tx_id: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<prost_types::Timestamp>,
    #[prost(bool, tag = "4")]
    pub is_delete: bool,
}

/// One change to a key, newest first, as returned by a history query.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The transaction that made the change.
    pub tx_id: String,
    /// The value written (empty for a delete).
    pub value: Vec<u8>,
    /// The transaction's timestamp.
    pub timestamp: Option<prost_types::Timestamp>,
    /// Whether the change deleted the key.
    pub is_delete: bool,
    /// Where in the chain the change sits; iterators resume after it.
    pub version: Version,
}
