//! The ledger: world state with MVCC versions, private data, key history, and the block store,
//! all in one embedded `redb` database so that every commit is one atomic store transaction.
//!
//! Chaincode never touches the store directly: a [`TxSimulator`] reads a consistent snapshot and
//! records a read-write set; [`Ledger::commit_block`] validates those sets (MVCC and phantom
//! reads) and applies the valid ones. Each block's commit is made durable by one synced record of
//! the commit journal, and the store syncs only at checkpoints; a restart commits again the
//! journaled blocks the store lacks. This module knows nothing about chaincode or transports.

mod block_hash;
mod checkpoint;
mod commit;
mod error;
mod journal;
mod records;
mod simulator;
mod snapshot;
mod store;

pub use commit::{PendingTx, PrivateRead, PrivateWrite, PrivateWrites, TxOutcome};
pub use error::{JournalError, LedgerError, Result, STORE_FAILURE};
pub use records::{HistoryItem, Version};
pub use simulator::{RangeScan, SimulationResults, TxSimulator};
pub use store::{CommittedTx, DEFAULT_CHANNEL, Ledger};
