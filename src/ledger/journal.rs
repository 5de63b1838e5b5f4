//! The commit journal: what each block's commit was given, written and synced to one file
//! before the block is acknowledged, so that the store syncs only at checkpoints.
//!
//! The store's own durable commit writes every page a block touched, scattered over its file,
//! and syncs them; the journal writes one record at the end of what it holds and syncs that.
//! Records go one after another from the file's start. At a checkpoint the store commits
//! durably and the journal starts again from its start, overwriting what it held. The file is
//! extended by writing zeros, so that a record usually overwrites blocks the file has, which
//! syncs faster than growing it. A block of many transactions, or one whose record does not fit
//! before the next checkpoint, is committed to the store durably instead, a checkpoint made on
//! the spot.
//!
//! A record is its payload's length, a CRC-32 of its sequence number and payload, the sequence
//! number, and the payload. Reading stops at the first record that is torn, fails its check or
//! does not follow the one before it. A block is committed again only where the store lacks it,
//! so a record left from before a checkpoint, whose block the store has, changes nothing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ccvm_proto::common::Envelope;
use ccvm_proto::kvrwset;
use ccvm_proto::protos::TxValidationCode;
use prost::Message;

use super::commit::{PendingTx, PrivateRead, PrivateWrite, PrivateWrites};

/// The journal's file in the ledger's directory.
const JOURNAL_FILE: &str = "commits.journal";

/// The length, checksum and sequence number before each record's payload.
const RECORD_HEADER: usize = 4 + 4 + 8;

/// How much the file grows at a time, in zeros.
const GROWTH: u64 = 1 << 20;

/// Which blocks the journal takes, and when it asks for a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalLimits {
    /// Most bytes of records between checkpoints: a block whose record does not fit is
    /// committed to the store durably instead, a checkpoint made on the spot.
    pub bytes: u64,
    /// Blocks after which the journal asks for a checkpoint. Fewer make each checkpoint
    /// shorter: the store writes every page these blocks touched.
    pub blocks: u32,
    /// Transactions after which the journal asks for a checkpoint, if that comes before
    /// [`JournalLimits::blocks`]: blocks of several transactions touch more pages each, and a
    /// longer checkpoint keeps the next block's commit waiting longer.
    pub checkpoint_txs: usize,
    /// Most transactions of a journaled block. A larger block is committed to the store
    /// durably, its sync shared by its transactions: a committer that busy does better
    /// without checkpoints to wait for.
    pub txs: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        Self {
            bytes: 16 << 20,
            blocks: 32,
            checkpoint_txs: 64,
            txs: 16,
        }
    }
}

/// What went wrong with the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file could not be made, read, written or synced.
    #[error("{path}: {source}")]
    Io {
        /// The journal's file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A record passed its checksum but its payload does not decode.
    #[error("record {seq} does not decode: {source}")]
    Decode {
        /// The record's sequence number.
        seq: u64,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// A record's block is beyond the next block of its channel in the store: blocks between
    /// are missing from both.
    #[error("record {seq} holds block {number} of {channel}, whose store ends at {height}")]
    Gap {
        /// The record's sequence number.
        seq: u64,
        /// The record's channel.
        channel: String,
        /// The record's block number.
        number: u64,
        /// The channel's height in the store.
        height: u64,
    },
    /// A journaled block's channel is not in the store.
    #[error("record {seq} holds a block of {channel}, which the store does not have")]
    UnknownChannel {
        /// The record's sequence number.
        seq: u64,
        /// The record's channel.
        channel: String,
    },
}

/// One journaled block: what its commit was given.
#[derive(Debug, Clone)]
pub(crate) struct JournaledBlock {
    /// The record's sequence number.
    pub seq: u64,
    /// The channel.
    pub channel: String,
    /// The block's number.
    pub number: u64,
    /// The transactions, as given to the commit.
    pub txs: Vec<PendingTx>,
}

/// Whether a block's record was written, or the block must be committed durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The record was written and synced.
    Journaled,
    /// The block is not journaled: commit it to the store durably, then call
    /// [`Journal::checkpointed`].
    CheckpointDue,
}

/// The open journal, positioned after its last record.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    limits: JournalLimits,
    /// The file's length: zeros or old records beyond `end`.
    len: u64,
    /// Where the next record goes.
    end: u64,
    /// The sequence number of the next record.
    next_seq: u64,
    /// Records written since the last checkpoint.
    blocks: u32,
    /// Transactions of the records written since the last checkpoint.
    txs: usize,
    /// The last record, while it may still be retracted.
    last: Option<LastRecord>,
}

/// Where the last record began, and the transactions of its block.
#[derive(Debug, Clone, Copy)]
struct LastRecord {
    start: u64,
    txs: usize,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and reads the records it holds. They must be
    /// committed again where the store lacks them, and the store checkpointed, before the
    /// first [`Journal::append`], which overwrites them.
    pub fn open(
        dir: &Path,
        limits: JournalLimits,
    ) -> Result<(Self, Vec<JournaledBlock>), JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            File::open(dir).and_then(|dir| dir.sync_all()).map_err(io)?;
        }
        let mut journal = Self {
            path: path.clone(),
            file,
            limits,
            len,
            end: 0,
            next_seq: 1,
            blocks: 0,
            txs: 0,
            last: None,
        };
        let blocks = journal.read_records()?;
        if let Some(last) = blocks.last() {
            journal.next_seq = last.seq + 1;
        }
        Ok((journal, blocks))
    }

    /// Reads the chain of records from the file's start.
    fn read_records(&self) -> Result<Vec<JournaledBlock>, JournalError> {
        let mut blocks = Vec::new();
        let mut offset = 0;
        let mut header = [0u8; RECORD_HEADER];
        let mut expected_seq = None;
        while offset + RECORD_HEADER as u64 <= self.len {
            self.file
                .read_exact_at(&mut header, offset)
                .map_err(|source| self.io(source))?;
            let length = u64::from(u32::from_le_bytes(
                header[0..4].try_into().expect("4 bytes"),
            ));
            let checksum = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            let payload_at = offset + RECORD_HEADER as u64;
            if length == 0 || payload_at + length > self.len {
                break;
            }
            if expected_seq.is_some_and(|expected| expected != seq) {
                break;
            }
            let mut payload = vec![0u8; usize::try_from(length).expect("a u32 fits")];
            self.file
                .read_exact_at(&mut payload, payload_at)
                .map_err(|source| self.io(source))?;
            if record_checksum(seq, &payload) != checksum {
                break;
            }
            let record = BlockRecord::decode(payload.as_slice())
                .map_err(|source| JournalError::Decode { seq, source })?;
            blocks.push(record.into_block(seq));
            expected_seq = Some(seq + 1);
            offset = payload_at + length;
        }
        Ok(blocks)
    }

    /// Writes and syncs the record of block `number` of `channel`, holding `txs`; or, when the
    /// block holds too many transactions or its record does not fit before the next
    /// checkpoint, writes nothing and says so.
    pub fn append(
        &mut self,
        channel: &str,
        number: u64,
        txs: &[PendingTx],
    ) -> Result<Placement, JournalError> {
        if txs.len() > self.limits.txs {
            return Ok(Placement::CheckpointDue);
        }
        let payload = BlockRecord::of(channel, number, txs).encode_to_vec();
        let record_len = (RECORD_HEADER + payload.len()) as u64;
        let Ok(length) = u32::try_from(payload.len()) else {
            return Ok(Placement::CheckpointDue);
        };
        if self.end + record_len > self.limits.bytes {
            return Ok(Placement::CheckpointDue);
        }
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&record_checksum(self.next_seq, &payload).to_le_bytes());
        record.extend_from_slice(&self.next_seq.to_le_bytes());
        record.extend_from_slice(&payload);
        self.grow_to(self.end + record_len)?;
        self.file
            .write_all_at(&record, self.end)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| self.io(source))?;
        self.last = Some(LastRecord {
            start: self.end,
            txs: txs.len(),
        });
        self.end += record_len;
        self.next_seq += 1;
        self.blocks += 1;
        self.txs += txs.len();
        Ok(Placement::Journaled)
    }

    /// Whether the journal holds enough blocks or transactions to ask for a checkpoint.
    pub fn wants_checkpoint(&self) -> bool {
        self.blocks >= self.limits.blocks || self.txs >= self.limits.checkpoint_txs
    }

    /// Undoes the last [`Journal::append`], whose block the store then failed to commit, so
    /// that no restart commits it.
    pub fn retract_last(&mut self) -> Result<(), JournalError> {
        let Some(last) = self.last.take() else {
            return Ok(());
        };
        self.file
            .write_all_at(&[0u8; RECORD_HEADER], last.start)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| self.io(source))?;
        self.end = last.start;
        self.next_seq -= 1;
        self.blocks -= 1;
        self.txs -= last.txs;
        Ok(())
    }

    /// The store has committed durably everything the journal holds: the next record goes to
    /// the file's start.
    pub fn checkpointed(&mut self) {
        self.end = 0;
        self.blocks = 0;
        self.txs = 0;
        self.last = None;
    }

    /// Extends the file with zeros until it holds `len` bytes, a [`GROWTH`] at a time.
    fn grow_to(&mut self, len: u64) -> Result<(), JournalError> {
        if len <= self.len {
            return Ok(());
        }
        let target = len.div_ceil(GROWTH) * GROWTH;
        let zeros = vec![0u8; usize::try_from(target - self.len).expect("growth fits memory")];
        self.file
            .write_all_at(&zeros, self.len)
            .map_err(|source| self.io(source))?;
        self.len = target;
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The checksum of a record: CRC-32 of its sequence number and payload.
fn record_checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A journaled block as stored.
#[derive(Clone, PartialEq, Message)]
struct BlockRecord {
    #[prost(string, tag = "1")]
    channel: String,
    #[prost(uint64, tag = "2")]
    number: u64,
    #[prost(message, repeated, tag = "3")]
    txs: Vec<TxRecord>,
}

/// A transaction of a journaled block as stored.
#[derive(Clone, PartialEq, Message)]
struct TxRecord {
    #[prost(message, optional, tag = "1")]
    envelope: Option<Envelope>,
    /// Its `TxValidationCode` before commit.
    #[prost(int32, tag = "2")]
    validation: i32,
    #[prost(message, repeated, tag = "3")]
    private_reads: Vec<PrivateReadRecord>,
    #[prost(message, repeated, tag = "4")]
    private_writes: Vec<PrivateWriteRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct PrivateReadRecord {
    #[prost(string, tag = "1")]
    namespace: String,
    #[prost(string, tag = "2")]
    collection: String,
    #[prost(string, tag = "3")]
    key: String,
    /// The version read; absent when the key was.
    #[prost(message, optional, tag = "4")]
    version: Option<kvrwset::Version>,
}

#[derive(Clone, PartialEq, Message)]
struct PrivateWriteRecord {
    #[prost(string, tag = "1")]
    namespace: String,
    #[prost(string, tag = "2")]
    collection: String,
    #[prost(string, tag = "3")]
    key: String,
    /// The new value; absent for a delete.
    #[prost(bytes = "vec", optional, tag = "4")]
    value: Option<Vec<u8>>,
    #[prost(bool, tag = "5")]
    purge: bool,
}

impl BlockRecord {
    fn of(channel: &str, number: u64, txs: &[PendingTx]) -> Self {
        Self {
            channel: channel.to_owned(),
            number,
            txs: txs.iter().map(TxRecord::of).collect(),
        }
    }

    fn into_block(self, seq: u64) -> JournaledBlock {
        JournaledBlock {
            seq,
            channel: self.channel,
            number: self.number,
            txs: self.txs.into_iter().map(TxRecord::into_pending).collect(),
        }
    }
}

impl TxRecord {
    fn of(tx: &PendingTx) -> Self {
        Self {
            envelope: Some(tx.envelope.clone()),
            validation: tx.validation as i32,
            private_reads: tx
                .private
                .reads
                .iter()
                .map(|read| PrivateReadRecord {
                    namespace: read.namespace.clone(),
                    collection: read.collection.clone(),
                    key: read.key.clone(),
                    version: read.version.map(Into::into),
                })
                .collect(),
            private_writes: tx
                .private
                .writes
                .iter()
                .map(|write| PrivateWriteRecord {
                    namespace: write.namespace.clone(),
                    collection: write.collection.clone(),
                    key: write.key.clone(),
                    value: write.value.clone(),
                    purge: write.purge,
                })
                .collect(),
        }
    }

    fn into_pending(self) -> PendingTx {
        PendingTx {
            envelope: self.envelope.unwrap_or_default(),
            validation: TxValidationCode::try_from(self.validation)
                .unwrap_or(TxValidationCode::InvalidOtherReason),
            private: PrivateWrites {
                reads: self
                    .private_reads
                    .into_iter()
                    .map(|read| PrivateRead {
                        namespace: read.namespace,
                        collection: read.collection,
                        key: read.key,
                        version: read.version.map(Into::into),
                    })
                    .collect(),
                writes: self
                    .private_writes
                    .into_iter()
                    .map(|write| PrivateWrite {
                        namespace: write.namespace,
                        collection: write.collection,
                        key: write.key,
                        value: write.value,
                        purge: write.purge,
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Version;

    fn tx(tag: u8, private_value: Option<Vec<u8>>) -> PendingTx {
        PendingTx {
            envelope: Envelope {
                payload: vec![tag; 100],
                signature: vec![tag],
            },
            private: PrivateWrites {
                reads: vec![PrivateRead {
                    namespace: "cc".to_owned(),
                    collection: "c".to_owned(),
                    key: "r".to_owned(),
                    version: Some(Version { block: 3, tx: 1 }),
                }],
                writes: vec![PrivateWrite {
                    namespace: "cc".to_owned(),
                    collection: "c".to_owned(),
                    key: "w".to_owned(),
                    value: private_value,
                    purge: true,
                }],
            },
            validation: TxValidationCode::EndorsementPolicyFailure,
        }
    }

    const LIMITS: JournalLimits = JournalLimits {
        bytes: 4096,
        blocks: 100,
        checkpoint_txs: 100,
        txs: 4,
    };

    fn numbers(blocks: &[JournaledBlock]) -> Vec<(u64, u64)> {
        blocks
            .iter()
            .map(|block| (block.seq, block.number))
            .collect()
    }

    #[test]
    fn records_are_read_back_as_written() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut journal, found) = Journal::open(dir.path(), LIMITS)?;
        assert!(found.is_empty());
        let txs = vec![tx(1, Some(b"v".to_vec())), tx(2, None)];
        assert_eq!(journal.append("ch", 7, &txs)?, Placement::Journaled);
        assert_eq!(journal.append("ch", 8, &txs[..1])?, Placement::Journaled);
        drop(journal);
        let (_, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(numbers(&found), [(1, 7), (2, 8)]);
        assert_eq!(found[0].channel, "ch");
        let round_trip: Vec<_> = found[0].txs.iter().map(TxRecord::of).collect();
        let written: Vec<_> = txs.iter().map(TxRecord::of).collect();
        assert_eq!(round_trip, written);
        assert_eq!(
            found[0].txs[1].validation,
            TxValidationCode::EndorsementPolicyFailure
        );
        Ok(())
    }

    #[test]
    fn reading_stops_at_a_torn_record() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut journal, _) = Journal::open(dir.path(), LIMITS)?;
        for number in 1..=3 {
            journal.append("ch", number, &[tx(1, None)])?;
        }
        let third = journal.last.expect("a record was written").start;
        drop(journal);
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(JOURNAL_FILE))?;
        file.write_all_at(&[0xff], third + RECORD_HEADER as u64 + 10)?;
        let (_, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(numbers(&found), [(1, 1), (2, 2)]);
        Ok(())
    }

    #[test]
    fn a_retracted_record_is_not_read_and_its_place_is_taken() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut journal, _) = Journal::open(dir.path(), LIMITS)?;
        journal.append("ch", 1, &[tx(1, None)])?;
        journal.append("ch", 2, &[tx(2, None)])?;
        journal.retract_last()?;
        let (_, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(numbers(&found), [(1, 1)]);
        journal.append("ch", 2, &[tx(3, None)])?;
        drop(journal);
        let (_, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(numbers(&found), [(1, 1), (2, 2)]);
        assert_eq!(found[1].txs[0].envelope.signature, [3]);
        Ok(())
    }

    #[test]
    fn after_a_checkpoint_the_records_before_it_are_not_read() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut journal, _) = Journal::open(dir.path(), LIMITS)?;
        for number in 1..=3 {
            journal.append("ch", number, &[tx(1, None), tx(2, None)])?;
        }
        journal.checkpointed();
        journal.append("ch", 4, &[tx(4, None)])?;
        drop(journal);
        let (mut journal, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(
            numbers(&found),
            [(4, 4)],
            "block 4 is shorter than block 1 was"
        );
        journal.checkpointed();
        journal.append("ch", 5, &[tx(5, None), tx(5, None), tx(5, None)])?;
        drop(journal);
        let (_, found) = Journal::open(dir.path(), LIMITS)?;
        assert_eq!(numbers(&found), [(5, 5)]);
        Ok(())
    }

    #[test]
    fn a_checkpoint_is_asked_for_after_its_transactions_and_a_retraction_uncounts_them()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = JournalLimits {
            bytes: 1 << 20,
            blocks: 100,
            checkpoint_txs: 5,
            txs: 4,
        };
        let (mut journal, _) = Journal::open(dir.path(), limits)?;
        journal.append("ch", 1, &[tx(1, None), tx(2, None), tx(3, None)])?;
        assert!(!journal.wants_checkpoint());
        journal.append("ch", 2, &[tx(4, None), tx(5, None)])?;
        assert!(
            journal.wants_checkpoint(),
            "five transactions in two blocks"
        );
        journal.retract_last()?;
        assert!(
            !journal.wants_checkpoint(),
            "the retracted block's two are not counted"
        );
        journal.append("ch", 2, &[tx(4, None), tx(5, None)])?;
        journal.checkpointed();
        assert!(!journal.wants_checkpoint());
        Ok(())
    }

    #[test]
    fn a_checkpoint_is_asked_for_after_its_blocks_and_due_for_a_block_too_large_to_journal()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = JournalLimits {
            bytes: 4096,
            blocks: 2,
            checkpoint_txs: 100,
            txs: 1,
        };
        let (mut journal, _) = Journal::open(dir.path(), limits)?;
        assert_eq!(
            journal.append("ch", 1, &[tx(1, None)])?,
            Placement::Journaled
        );
        assert!(!journal.wants_checkpoint());
        assert_eq!(
            journal.append("ch", 2, &[tx(1, None)])?,
            Placement::Journaled
        );
        assert!(journal.wants_checkpoint());
        journal.checkpointed();
        assert!(!journal.wants_checkpoint());
        assert_eq!(
            journal.append("ch", 3, &[tx(1, None)])?,
            Placement::Journaled
        );
        let large = tx(1, Some(vec![0; 5000]));
        assert_eq!(journal.append("ch", 4, &[large])?, Placement::CheckpointDue);
        let many = vec![tx(1, None); limits.txs + 1];
        assert_eq!(journal.append("ch", 4, &many)?, Placement::CheckpointDue);
        assert_eq!(journal.append("ch", 4, &many[1..])?, Placement::Journaled);
        drop(journal);
        let (_, found) = Journal::open(dir.path(), limits)?;
        assert_eq!(numbers(&found), [(3, 3), (4, 4)]);
        Ok(())
    }
}
