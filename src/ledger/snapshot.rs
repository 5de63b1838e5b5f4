//! The snapshot of committed state that simulators read: one read transaction, the tables every
//! simulation reads (state, channels, transaction ids) already open, shared by every simulator
//! made until the next write. Making a simulator then opens nothing, where opening a read
//! transaction and its tables cost about as much as running a small chaincode.
//!
//! Every write transaction forgets the shared snapshot once it is committed and before anyone
//! learns of the commit, so a simulator never reads state older than a commit it could know of.

use std::sync::{Arc, Mutex};

use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase};

use super::error::Result;
use super::store::{CHAINS, STATE, TXIDS};
use crate::sync::lock;

/// The world state table as a simulator reads it.
pub(super) type StateTable =
    ReadOnlyTable<(&'static str, &'static str, &'static str), &'static [u8]>;

/// One read transaction of the store, with the tables every simulator reads.
pub(crate) struct Snapshot {
    pub txn: ReadTransaction,
    pub state: StateTable,
    chains: ReadOnlyTable<&'static str, &'static [u8]>,
    txids: ReadOnlyTable<(&'static str, &'static str), (u64, u64, i32)>,
}

impl Snapshot {
    fn open(db: &Database) -> Result<Self> {
        let txn = db.begin_read()?;
        Ok(Self {
            state: txn.open_table(STATE)?,
            chains: txn.open_table(CHAINS)?,
            txids: txn.open_table(TXIDS)?,
            txn,
        })
    }

    /// Whether `channel` exists in this snapshot.
    pub fn has_channel(&self, channel: &str) -> Result<bool> {
        Ok(self.chains.get(channel)?.is_some())
    }

    /// Whether a transaction with `tx_id` is committed on `channel` in this snapshot.
    pub fn has_tx_id(&self, channel: &str, tx_id: &str) -> Result<bool> {
        Ok(self.txids.get((channel, tx_id))?.is_some())
    }
}

/// The snapshot simulators share until the next write.
#[derive(Default)]
pub(crate) struct SharedSnapshot {
    latest: Mutex<Latest>,
}

#[derive(Default)]
struct Latest {
    /// Write transactions committed so far, so that a snapshot opened while one committed is not
    /// kept as the latest.
    writes: u64,
    snapshot: Option<Arc<Snapshot>>,
}

impl SharedSnapshot {
    /// A snapshot of the latest committed state of `db`: the shared one, or a new one that is
    /// shared from then on.
    pub fn latest(&self, db: &Database) -> Result<Arc<Snapshot>> {
        let writes = {
            let latest = lock(&self.latest);
            if let Some(snapshot) = &latest.snapshot {
                return Ok(Arc::clone(snapshot));
            }
            latest.writes
        };
        let snapshot = Arc::new(Snapshot::open(db)?);
        let mut latest = lock(&self.latest);
        if latest.writes == writes && latest.snapshot.is_none() {
            latest.snapshot = Some(Arc::clone(&snapshot));
        }
        Ok(snapshot)
    }

    /// Forgets the shared snapshot; called once a write transaction has committed, before the
    /// commit is made known.
    pub fn written(&self) {
        let mut latest = lock(&self.latest);
        latest.writes += 1;
        latest.snapshot = None;
    }
}
