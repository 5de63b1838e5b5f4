//! Fabric's transient store: the private data of endorsed transactions, held until they commit.
//! Bounded in bytes and in age, so that endorsements never submitted cannot fill the node.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ledger::PrivateWrites;
use crate::sync::lock;

/// Most bytes of private data held for transactions not yet committed; an endorsement that
/// would exceed it fails and may be retried.
pub const MAX_TRANSIENT_BYTES: usize = 256 * 1024 * 1024;
/// How long private data waits for its transaction; a transaction submitted later commits
/// without it, as on a Fabric peer whose transient store purged it.
pub const TRANSIENT_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Why private data was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "busy: the node holds {held} bytes of private data for uncommitted transactions, and {more} more would pass its limit of {limit}"
)]
pub(crate) struct TransientFull {
    held: usize,
    more: usize,
    limit: usize,
}

struct Held {
    private: PrivateWrites,
    bytes: usize,
}

#[derive(Default)]
struct Entries {
    by_tx: HashMap<String, Held>,
    /// Transaction ids by age, oldest first (some may have been taken already).
    arrivals: VecDeque<(Instant, String)>,
    bytes: usize,
}

/// Private data of endorsed transactions by transaction id. Lost on restart, like an
/// uncommitted proposal.
pub(crate) struct TransientStore {
    entries: Mutex<Entries>,
    max_bytes: usize,
    retention: Duration,
}

impl Default for TransientStore {
    fn default() -> Self {
        Self::with_limits(MAX_TRANSIENT_BYTES, TRANSIENT_RETENTION)
    }
}

impl TransientStore {
    pub fn with_limits(max_bytes: usize, retention: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_bytes,
            retention,
        }
    }

    /// Keeps `private` for the transaction `tx_id`, after dropping what has waited longer than
    /// the retention.
    ///
    /// # Errors
    /// [`TransientFull`] when the store would pass its byte limit; nothing held is dropped.
    pub fn put(&self, tx_id: &str, private: PrivateWrites) -> Result<(), TransientFull> {
        if private.reads.is_empty() && private.writes.is_empty() {
            return Ok(());
        }
        let bytes = size_of(&private);
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        while let Some((arrived, _)) = entries.arrivals.front() {
            if now.duration_since(*arrived) < self.retention {
                break;
            }
            let (_, expired) = entries.arrivals.pop_front().expect("front exists");
            if let Some(held) = entries.by_tx.remove(&expired) {
                entries.bytes -= held.bytes;
            }
        }
        if entries.bytes + bytes > self.max_bytes {
            return Err(TransientFull {
                held: entries.bytes,
                more: bytes,
                limit: self.max_bytes,
            });
        }
        entries.bytes += bytes;
        entries.arrivals.push_back((now, tx_id.to_owned()));
        if let Some(replaced) = entries
            .by_tx
            .insert(tx_id.to_owned(), Held { private, bytes })
        {
            entries.bytes -= replaced.bytes;
        }
        Ok(())
    }

    /// The private data of `tx_id`, no longer held; empty when there is none.
    pub fn take(&self, tx_id: &str) -> PrivateWrites {
        let mut entries = lock(&self.entries);
        match entries.by_tx.remove(tx_id) {
            Some(held) => {
                entries.bytes -= held.bytes;
                held.private
            }
            None => PrivateWrites::default(),
        }
    }
}

/// The bytes `private` holds, counting names, keys and values.
fn size_of(private: &PrivateWrites) -> usize {
    let reads: usize = private
        .reads
        .iter()
        .map(|read| read.namespace.len() + read.collection.len() + read.key.len() + 16)
        .sum();
    let writes: usize = private
        .writes
        .iter()
        .map(|write| {
            write.namespace.len()
                + write.collection.len()
                + write.key.len()
                + write.value.as_ref().map_or(0, Vec::len)
        })
        .sum();
    reads + writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::PrivateWrite;

    fn write(key: &str, value_bytes: usize) -> PrivateWrites {
        PrivateWrites {
            reads: Vec::new(),
            writes: vec![PrivateWrite {
                namespace: "cc".to_owned(),
                collection: "c".to_owned(),
                key: key.to_owned(),
                value: Some(vec![7; value_bytes]),
                purge: false,
            }],
        }
    }

    #[test]
    fn private_data_past_the_byte_limit_is_refused_and_what_is_held_stays() {
        let store = TransientStore::with_limits(1000, TRANSIENT_RETENTION);
        assert_eq!(store.put("t1", write("k", 600)), Ok(()));
        let refused = store
            .put("t2", write("k", 600))
            .expect_err("over the limit");
        assert_eq!(
            refused.to_string(),
            "busy: the node holds 604 bytes of private data for uncommitted transactions, and 604 more would pass its limit of 1000"
        );
        assert_eq!(store.take("t1").writes.len(), 1, "t1 is still held");
        assert_eq!(
            store.put("t2", write("k", 600)),
            Ok(()),
            "taking t1 made room"
        );
    }

    #[test]
    fn private_data_older_than_the_retention_is_dropped() {
        let store = TransientStore::with_limits(1000, Duration::ZERO);
        assert_eq!(store.put("old", write("k", 600)), Ok(()));
        assert_eq!(store.put("new", write("k", 600)), Ok(()), "old was purged");
        assert!(store.take("old").writes.is_empty());
    }

    #[test]
    fn a_transaction_without_private_data_holds_nothing() {
        let store = TransientStore::with_limits(0, TRANSIENT_RETENTION);
        assert_eq!(store.put("t", PrivateWrites::default()), Ok(()));
    }
}
