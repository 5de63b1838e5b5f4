//! The embedded store: table layout, channels, and the block store.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ccvm_proto::common::{Block, BlockchainInfo, Envelope};
use ccvm_proto::protos::ProcessedTransaction;
use prost::Message;
use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::checkpoint::Checkpointer;
use super::commit::append_genesis;
use super::error::{LedgerError, Result};
use super::journal::{Journal, JournalLimits};
use super::simulator::TxSimulator;
use super::snapshot::SharedSnapshot;

/// The channel every node has from its first start.
pub const DEFAULT_CHANNEL: &str = "mychannel";

/// World state: (channel, namespace, key) → encoded `VersionedValue`.
pub(crate) const STATE: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("state");
/// Private data: (channel, namespace, collection, key) → encoded `VersionedValue`.
pub(crate) const PRIVATE: TableDefinition<(&str, &str, &str, &str), &[u8]> =
    TableDefinition::new("private_state");
/// History index: (channel, namespace, key, block, tx) → encoded `HistoryRecord`.
pub(crate) const HISTORY: TableDefinition<(&str, &str, &str, u64, u64), &[u8]> =
    TableDefinition::new("history");
/// Block store: (channel, number) → encoded `common.Block`.
pub(crate) const BLOCKS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("blocks");
/// Block hash index: (channel, header hash) → block number.
pub(crate) const BLOCK_HASHES: TableDefinition<(&str, &[u8]), u64> =
    TableDefinition::new("block_hashes");
/// Transaction index: (channel, tx id) → (block, position, validation code).
pub(crate) const TXIDS: TableDefinition<(&str, &str), (u64, u64, i32)> =
    TableDefinition::new("txids");
/// Channels: name → encoded `common.BlockchainInfo`.
pub(crate) const CHAINS: TableDefinition<&str, &[u8]> = TableDefinition::new("chains");
/// The channel's latest configuration block: name → block number. A channel created before
/// channels had configuration blocks has no entry.
pub(crate) const LAST_CONFIG: TableDefinition<&str, u64> = TableDefinition::new("last_config");

/// The page cache of a ledger opened by a unit test.
#[cfg(test)]
pub(crate) const TEST_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// A node's ledger: every channel's state, history and blocks in one store.
///
/// Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Ledger {
    pub(crate) db: Arc<Database>,
    /// The number of blocks committed since the ledger was opened, on any channel.
    pub(crate) commits: Arc<watch::Sender<u64>>,
    /// The committed state simulators read, until the next write.
    pub(crate) snapshot: Arc<SharedSnapshot>,
    /// Where block commits are made durable between the store's checkpoints.
    pub(crate) journal: Arc<Mutex<Journal>>,
    /// Makes the checkpoints the journal asks for.
    pub(crate) checkpointer: Arc<Checkpointer>,
}

/// Where and how a transaction was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedTx {
    /// Its `protos.TxValidationCode`.
    pub code: i32,
    /// The block that holds it.
    pub block: u64,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`, keeping at most `cache_bytes` of its pages in
    /// memory.
    ///
    /// Blocks the commit journal holds beyond the store's durable state are committed again.
    ///
    /// # Errors
    /// Fails when the directory, the store or the journal cannot be created or opened, or the
    /// journal holds a block the store cannot take.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Self> {
        Self::open_with_journal(dir, cache_bytes, JournalLimits::default())
    }

    /// [`Ledger::open`], checkpointing as `limits` say.
    pub(crate) fn open_with_journal(
        dir: &Path,
        cache_bytes: usize,
        limits: JournalLimits,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| LedgerError::Store(e.into()))?;
        let db = Builder::new()
            .set_cache_size(cache_bytes)
            .create(dir.join("ledger.redb"))?;
        let (journal, journaled) = Journal::open(dir, limits)?;
        let db = Arc::new(db);
        let journal = Arc::new(Mutex::new(journal));
        let checkpointer = Checkpointer::start(Arc::downgrade(&db), Arc::downgrade(&journal))?;
        let ledger = Self {
            db,
            commits: Arc::new(watch::Sender::new(0)),
            snapshot: Arc::default(),
            journal,
            checkpointer: Arc::new(checkpointer),
        };
        ledger.create_tables()?;
        ledger.recommit(journaled)?;
        Ok(ledger)
    }

    /// A ledger in `dir` with the default channel, created from an empty genesis transaction,
    /// for tests of the layers above.
    #[cfg(test)]
    pub(crate) fn open_with_default_channel(dir: &Path) -> Result<Self> {
        let ledger = Self::open(dir, TEST_CACHE_BYTES)?;
        ledger.create_channel(DEFAULT_CHANNEL, &Envelope::default())?;
        Ok(ledger)
    }

    fn create_tables(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(STATE)?;
        txn.open_table(PRIVATE)?;
        txn.open_table(HISTORY)?;
        txn.open_table(BLOCKS)?;
        txn.open_table(BLOCK_HASHES)?;
        txn.open_table(TXIDS)?;
        txn.open_table(CHAINS)?;
        txn.open_table(LAST_CONFIG)?;
        txn.commit()?;
        Ok(())
    }

    /// Creates a channel whose block 0 holds `genesis`, its configuration transaction.
    ///
    /// # Errors
    /// [`LedgerError::ChannelExists`] for a channel the ledger has, or a store failure.
    pub fn create_channel(&self, channel: &str, genesis: &Envelope) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut chains = txn.open_table(CHAINS)?;
            if chains.get(channel)?.is_some() {
                return Err(LedgerError::ChannelExists(channel.to_owned()));
            }
            let info = append_genesis(&txn, channel, genesis)?;
            chains.insert(channel, info.encode_to_vec().as_slice())?;
            txn.open_table(LAST_CONFIG)?.insert(channel, 0)?;
        }
        txn.commit()?;
        self.committed();
        Ok(())
    }

    /// Makes a committed write known: first forgets the snapshot simulators share, so that no
    /// simulator made after anyone learns of the write reads the state before it, then counts
    /// the commit for those watching `commits`.
    pub(super) fn committed(&self) {
        self.snapshot.written();
        self.commits.send_modify(|count| *count += 1);
    }

    /// The number of the channel's latest configuration block; `None` for a channel created
    /// without one.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn last_config(&self, channel: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(LAST_CONFIG)?
            .get(channel)?
            .map(|number| number.value()))
    }

    /// Whether the channel exists.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn has_channel(&self, channel: &str) -> Result<bool> {
        self.snapshot.latest(&self.db)?.has_channel(channel)
    }

    /// Whether the store takes a write: an empty write transaction, committed durably.
    ///
    /// # Errors
    /// The store's failure (a full disk, a file it cannot write).
    pub fn check_writable(&self) -> Result<()> {
        self.db.begin_write()?.commit()?;
        Ok(())
    }

    /// The names of all channels, sorted (the store keeps them in key order).
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn channels(&self) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let chains = txn.open_table(CHAINS)?;
        let mut names = Vec::new();
        for entry in chains.iter()? {
            names.push(entry?.0.value().to_owned());
        }
        Ok(names)
    }

    /// Height and hashes of the channel's chain.
    ///
    /// # Errors
    /// [`LedgerError::UnknownChannel`] for a channel that does not exist.
    pub fn chain_info(&self, channel: &str) -> Result<BlockchainInfo> {
        let txn = self.db.begin_read()?;
        let chains = txn.open_table(CHAINS)?;
        let raw = chains
            .get(channel)?
            .ok_or_else(|| LedgerError::UnknownChannel(channel.to_owned()))?;
        BlockchainInfo::decode(raw.value()).map_err(LedgerError::decode("chain info"))
    }

    /// The block with that number.
    ///
    /// # Errors
    /// [`LedgerError::NoSuchBlock`] when the chain is not that high.
    pub fn block(&self, channel: &str, number: u64) -> Result<Block> {
        let txn = self.db.begin_read()?;
        let blocks = txn.open_table(BLOCKS)?;
        let raw = blocks
            .get((channel, number))?
            .ok_or_else(|| LedgerError::NoSuchBlock {
                channel: channel.to_owned(),
                number,
            })?;
        Block::decode(raw.value()).map_err(LedgerError::decode("block"))
    }

    /// The block whose header hash is `hash`.
    ///
    /// # Errors
    /// [`LedgerError::NoSuchBlockHash`] when the channel has no such block.
    pub fn block_by_hash(&self, channel: &str, hash: &[u8]) -> Result<Block> {
        let number = {
            let txn = self.db.begin_read()?;
            let hashes = txn.open_table(BLOCK_HASHES)?;
            let found = hashes.get((channel, hash))?;
            found
                .ok_or_else(|| LedgerError::NoSuchBlockHash {
                    channel: channel.to_owned(),
                    hash: hex::encode(hash),
                })?
                .value()
        };
        self.block(channel, number)
    }

    /// A committed transaction: its envelope and validation code.
    ///
    /// # Errors
    /// [`LedgerError::NoSuchTransaction`] when the channel has no such transaction.
    pub fn transaction(&self, channel: &str, tx_id: &str) -> Result<ProcessedTransaction> {
        let (block, position, code) = self.locate(channel, tx_id)?;
        let envelope = self
            .block(channel, block)?
            .data
            .and_then(|data| data.data.into_iter().nth(position))
            .ok_or_else(|| LedgerError::NoSuchTransaction {
                channel: channel.to_owned(),
                tx_id: tx_id.to_owned(),
            })?;
        let envelope = Envelope::decode(envelope.as_slice())
            .map_err(LedgerError::decode("transaction envelope"))?;
        Ok(ProcessedTransaction {
            transaction_envelope: Some(envelope),
            validation_code: code,
        })
    }

    /// The block holding a committed transaction.
    ///
    /// # Errors
    /// [`LedgerError::NoSuchTransaction`] when the channel has no such transaction.
    pub fn block_by_tx_id(&self, channel: &str, tx_id: &str) -> Result<Block> {
        let (block, _, _) = self.locate(channel, tx_id)?;
        self.block(channel, block)
    }

    /// Block number, position in the block and validation code of a committed transaction.
    fn locate(&self, channel: &str, tx_id: &str) -> Result<(u64, usize, i32)> {
        let txn = self.db.begin_read()?;
        let txids = txn.open_table(TXIDS)?;
        let (block, position, code) = txids
            .get((channel, tx_id))?
            .ok_or_else(|| LedgerError::NoSuchTransaction {
                channel: channel.to_owned(),
                tx_id: tx_id.to_owned(),
            })?
            .value();
        let position = usize::try_from(position).map_err(|_| LedgerError::NoSuchTransaction {
            channel: channel.to_owned(),
            tx_id: tx_id.to_owned(),
        })?;
        Ok((block, position, code))
    }

    /// The validation code and block of a committed transaction, if the channel has it.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn committed_tx(&self, channel: &str, tx_id: &str) -> Result<Option<CommittedTx>> {
        let txn = self.db.begin_read()?;
        let txids = txn.open_table(TXIDS)?;
        Ok(txids.get((channel, tx_id))?.map(|v| {
            let (block, _, code) = v.value();
            CommittedTx { code, block }
        }))
    }

    /// Changes each time a block is committed, on any channel. Mark the current value seen
    /// before reading the ledger, then wait for a change, and no commit goes unnoticed.
    pub fn commit_notifications(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// A simulator for a proposal that names no channel, as Fabric's channel-less calls of
    /// system chaincodes (cscc's `GetChannels`) do: it reads no state, and what it records is
    /// never committed.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn channel_less_simulator(&self, tx_id: &str) -> Result<TxSimulator> {
        Ok(TxSimulator::new(self.snapshot.latest(&self.db)?, "", tx_id))
    }

    /// A simulator for one transaction on the channel, reading the current committed state.
    ///
    /// # Errors
    /// [`LedgerError::UnknownChannel`] for a channel that does not exist.
    pub fn new_simulator(&self, channel: &str, tx_id: &str) -> Result<TxSimulator> {
        let snapshot = self.snapshot.latest(&self.db)?;
        if !snapshot.has_channel(channel)? {
            return Err(LedgerError::UnknownChannel(channel.to_owned()));
        }
        Ok(TxSimulator::new(snapshot, channel, tx_id))
    }
}
