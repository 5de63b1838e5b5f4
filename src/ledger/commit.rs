//! Commit: validates each transaction of a block against the current state (duplicate tx id,
//! MVCC read conflicts, phantom reads) and applies the valid ones, all in one store transaction.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use ccvm_proto::common::{
    Block, BlockData, BlockHeader, BlockMetadata, BlockMetadataIndex, BlockchainInfo,
    ChannelHeader, Envelope, HeaderType, LastConfig, Metadata, OrdererBlockMetadata, Payload,
};
use ccvm_proto::kvrwset::{self, range_query_info::ReadsInfo};
use ccvm_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction, TxValidationCode,
};
use ccvm_proto::rwset::TxReadWriteSet;
use prost::Message;
use redb::{Durability, ReadableTable, Table, WriteTransaction};

use crate::sync::lock;

use super::block_hash::{data_hash, header_hash};
use super::checkpoint::checkpoint;
use super::error::{LedgerError, Result};
use super::journal::{JournalError, JournaledBlock, Placement};
use super::records::{HistoryRecord, Version, VersionedValue};
use super::store::{
    BLOCK_HASHES, BLOCKS, CHAINS, HISTORY, LAST_CONFIG, Ledger, PRIVATE, STATE, TXIDS,
};

/// A private read recorded during simulation, checked again at commit.
#[derive(Debug, Clone)]
pub struct PrivateRead {
    /// The chaincode namespace.
    pub namespace: String,
    /// The collection.
    pub collection: String,
    /// The key read.
    pub key: String,
    /// The version seen; `None` when the key was absent.
    pub version: Option<Version>,
}

/// A private write recorded during simulation.
#[derive(Debug, Clone)]
pub struct PrivateWrite {
    /// The chaincode namespace.
    pub namespace: String,
    /// The collection.
    pub collection: String,
    /// The key written.
    pub key: String,
    /// The new value; `None` deletes.
    pub value: Option<Vec<u8>>,
    /// Whether the delete also purges the key's history from the private store.
    pub purge: bool,
}

/// A transaction's private data: kept by the endorsing node, never written into blocks.
#[derive(Debug, Clone, Default)]
pub struct PrivateWrites {
    /// Private reads, for MVCC validation.
    pub reads: Vec<PrivateRead>,
    /// Private writes, applied when the transaction is valid.
    pub writes: Vec<PrivateWrite>,
}

/// A transaction waiting to be committed.
#[derive(Debug, Clone)]
pub struct PendingTx {
    /// The signed transaction envelope, as it goes into the block.
    pub envelope: Envelope,
    /// Its private data, if the endorsement produced any.
    pub private: PrivateWrites,
    /// What validation of its signatures and policies decided before commit. Anything but
    /// `Valid` is recorded as is and none of its writes are applied.
    pub validation: TxValidationCode,
}

/// What commit decided about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// The transaction id from the channel header (empty if it could not be read).
    pub tx_id: String,
    /// Valid, or why not.
    pub code: TxValidationCode,
    /// The block the transaction was written into.
    pub block: u64,
    /// The invoked chaincode as `name:version`, as Fabric labels its ledger metrics; `unknown`
    /// if the transaction could not be read that far.
    pub chaincode: String,
}

/// The chaincode of a transaction that could not be read, as Fabric's metrics name it.
const UNKNOWN_CHAINCODE: &str = "unknown";

/// A transaction's content once unpacked from its envelope.
struct UnpackedTx {
    tx_id: String,
    /// The invoked chaincode as `name:version`.
    chaincode: String,
    timestamp: Option<prost_types::Timestamp>,
    rwset: TxReadWriteSet,
}

impl Ledger {
    /// Appends one block holding `txs` to the channel, applying the writes of the valid ones.
    /// The block is durable when this returns: in the journal, or in the store at a checkpoint.
    ///
    /// # Errors
    /// Fails when the channel does not exist or the store or the journal cannot be written; then
    /// nothing of the block is stored.
    pub fn commit_block(&self, channel: &str, txs: Vec<PendingTx>) -> Result<Vec<TxOutcome>> {
        let mut txn = self.db.begin_write()?;
        let (number, outcomes) = write_block(&txn, channel, &txs)?;
        let mut journal = lock(&self.journal);
        match journal.append(channel, number, &txs)? {
            Placement::Journaled => {
                let committed = txn
                    .set_durability(Durability::None)
                    .map_err(LedgerError::from)
                    .and_then(|()| txn.commit().map_err(LedgerError::from));
                if let Err(e) = committed {
                    journal.retract_last()?;
                    return Err(e);
                }
            }
            Placement::CheckpointDue => {
                txn.commit()?;
                journal.checkpointed();
            }
        }
        let wants_checkpoint = journal.wants_checkpoint();
        drop(journal);
        self.committed();
        if wants_checkpoint {
            self.checkpointer.request();
        }
        Ok(outcomes)
    }

    /// Commits again, after a restart, the journaled blocks the store lacks, then checkpoints
    /// the store so that the journal may be overwritten.
    pub(super) fn recommit(&self, journaled: Vec<JournaledBlock>) -> Result<()> {
        let mut recommitted = 0usize;
        for block in journaled {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let height = chain_info(&txn, &block.channel)?
                .ok_or_else(|| JournalError::UnknownChannel {
                    seq: block.seq,
                    channel: block.channel.clone(),
                })?
                .height;
            if block.number < height {
                continue;
            }
            if block.number > height {
                return Err(JournalError::Gap {
                    seq: block.seq,
                    channel: block.channel,
                    number: block.number,
                    height,
                }
                .into());
            }
            write_block(&txn, &block.channel, &block.txs)?;
            txn.commit()?;
            recommitted += 1;
        }
        if recommitted > 0 {
            tracing::info!(blocks = recommitted, "committed the journal's blocks again");
        }
        checkpoint(&self.db, &self.journal)
    }
}

/// The channel's chain as the store has it in `txn`; `None` for a channel it does not have.
fn chain_info(txn: &WriteTransaction, channel: &str) -> Result<Option<BlockchainInfo>> {
    txn.open_table(CHAINS)?
        .get(channel)?
        .map(|raw| BlockchainInfo::decode(raw.value()).map_err(LedgerError::decode("chain info")))
        .transpose()
}

/// Validates `txs` and writes them as the channel's next block in `txn`; returns the block's
/// number and what became of each transaction.
fn write_block(
    txn: &WriteTransaction,
    channel: &str,
    txs: &[PendingTx],
) -> Result<(u64, Vec<TxOutcome>)> {
    let info =
        chain_info(txn, channel)?.ok_or_else(|| LedgerError::UnknownChannel(channel.to_owned()))?;
    let number = info.height;
    let last_config = txn
        .open_table(LAST_CONFIG)?
        .get(channel)?
        .map(|number| number.value());
    let mut tables = Tables {
        state: txn.open_table(STATE)?,
        private: txn.open_table(PRIVATE)?,
        history: txn.open_table(HISTORY)?,
        txids: txn.open_table(TXIDS)?,
    };
    let mut seen = HashSet::new();
    let mut codes = Vec::with_capacity(txs.len());
    let mut data = Vec::with_capacity(txs.len());
    let mut outcomes = Vec::with_capacity(txs.len());
    for (position, tx) in txs.iter().enumerate() {
        let outcome = tables.validate_and_apply(channel, tx, number, position, &mut seen)?;
        codes.push(outcome.code as u8);
        data.push(tx.envelope.encode_to_vec());
        outcomes.push(outcome);
    }
    let block = build_block(number, info.current_block_hash, data, codes, last_config);
    let next = store_block(txn, channel, &block)?;
    txn.open_table(CHAINS)?
        .insert(channel, next.encode_to_vec().as_slice())?;
    Ok((number, outcomes))
}

/// The write tables one commit uses.
struct Tables<'t> {
    state: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    private: Table<'t, (&'static str, &'static str, &'static str, &'static str), &'static [u8]>,
    history: Table<'t, (&'static str, &'static str, &'static str, u64, u64), &'static [u8]>,
    txids: Table<'t, (&'static str, &'static str), (u64, u64, i32)>,
}

impl Tables<'_> {
    /// Validates one transaction of block `block` at `position` and applies it if valid.
    fn validate_and_apply(
        &mut self,
        channel: &str,
        tx: &PendingTx,
        block: u64,
        position: usize,
        seen: &mut HashSet<String>,
    ) -> Result<TxOutcome> {
        let outcome = |tx_id: String, chaincode: String, code| TxOutcome {
            tx_id,
            code,
            block,
            chaincode,
        };
        let unpacked = match unpack(channel, &tx.envelope) {
            Ok(unpacked) => unpacked,
            Err(code) => return Ok(outcome(String::new(), UNKNOWN_CHAINCODE.to_owned(), code)),
        };
        let tx_id = unpacked.tx_id.clone();
        let chaincode = unpacked.chaincode.clone();
        if !claims_tx_id(tx.validation) {
            return Ok(outcome(tx_id, chaincode, tx.validation));
        }
        if self.txids.get((channel, tx_id.as_str()))?.is_some() || !seen.insert(tx_id.clone()) {
            return Ok(outcome(tx_id, chaincode, TxValidationCode::DuplicateTxid));
        }
        let code = if tx.validation == TxValidationCode::Valid {
            self.check_reads(channel, &unpacked.rwset, &tx.private)?
        } else {
            tx.validation
        };
        let version = Version {
            block,
            tx: position as u64,
        };
        if code == TxValidationCode::Valid {
            self.apply(channel, &unpacked, &tx.private, version)?;
        }
        self.txids.insert(
            (channel, tx_id.as_str()),
            (version.block, version.tx, code as i32),
        )?;
        Ok(outcome(tx_id, chaincode, code))
    }

    fn current(&self, channel: &str, ns: &str, key: &str) -> Result<Option<VersionedValue>> {
        self.state
            .get((channel, ns, key))?
            .map(|raw| VersionedValue::decode(raw.value()))
            .transpose()
            .map_err(LedgerError::decode("state value"))
    }

    fn check_reads(
        &self,
        channel: &str,
        rwset: &TxReadWriteSet,
        private: &PrivateWrites,
    ) -> Result<TxValidationCode> {
        for ns in &rwset.ns_rwset {
            let Ok(kv) = kvrwset::KvrwSet::decode(ns.rwset.as_slice()) else {
                return Ok(TxValidationCode::BadRwset);
            };
            for read in &kv.reads {
                let now = self
                    .current(channel, &ns.namespace, &read.key)?
                    .map(|v| v.version());
                if now != read.version.map(Version::from) {
                    return Ok(TxValidationCode::MvccReadConflict);
                }
            }
            for range in &kv.range_queries_info {
                if !self.range_unchanged(channel, &ns.namespace, range)? {
                    return Ok(TxValidationCode::PhantomReadConflict);
                }
            }
        }
        for read in &private.reads {
            let now = self
                .private
                .get((
                    channel,
                    read.namespace.as_str(),
                    read.collection.as_str(),
                    read.key.as_str(),
                ))?
                .map(|raw| VersionedValue::decode(raw.value()))
                .transpose()
                .map_err(LedgerError::decode("private value"))?
                .map(|v| v.version());
            if now != read.version {
                return Ok(TxValidationCode::MvccReadConflict);
            }
        }
        Ok(TxValidationCode::Valid)
    }

    /// Whether a range read during simulation still yields the same keys and versions, up to
    /// the last key read (or to the range's end when the iterator was exhausted).
    fn range_unchanged(
        &self,
        channel: &str,
        ns: &str,
        range: &kvrwset::RangeQueryInfo,
    ) -> Result<bool> {
        let Some(ReadsInfo::RawReads(reads)) = &range.reads_info else {
            return Ok(false);
        };
        let next_ns = format!("{ns}\0");
        let end = match (range.itr_exhausted, reads.kv_reads.last()) {
            (false, Some(last)) => Bound::Included((channel, ns, last.key.as_str())),
            _ if range.end_key.is_empty() => Bound::Excluded((channel, next_ns.as_str(), "")),
            _ => Bound::Excluded((channel, ns, range.end_key.as_str())),
        };
        if !range.end_key.is_empty() && range.start_key >= range.end_key {
            return Ok(reads.kv_reads.is_empty());
        }
        let start = Bound::Included((channel, ns, range.start_key.as_str()));
        let mut expected = reads.kv_reads.iter();
        for entry in self.state.range((start, end))? {
            let (k, v) = entry?;
            let value =
                VersionedValue::decode(v.value()).map_err(LedgerError::decode("state value"))?;
            match expected.next() {
                Some(read)
                    if read.key == k.value().2
                        && read.version.map(Version::from) == Some(value.version()) => {}
                _ => return Ok(false),
            }
        }
        Ok(expected.next().is_none())
    }

    fn apply(
        &mut self,
        channel: &str,
        tx: &UnpackedTx,
        private: &PrivateWrites,
        version: Version,
    ) -> Result<()> {
        for ns in &tx.rwset.ns_rwset {
            let kv = kvrwset::KvrwSet::decode(ns.rwset.as_slice())
                .map_err(LedgerError::decode("read-write set"))?;
            let mut metadata: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = kv
                .metadata_writes
                .iter()
                .map(|m| {
                    let entries = m.entries.iter().map(|e| (e.name.clone(), e.value.clone()));
                    (m.key.as_str(), entries.collect())
                })
                .collect();
            for write in &kv.writes {
                let key = write.key.as_str();
                let previous = self.current(channel, &ns.namespace, key)?;
                if write.is_delete {
                    self.state.remove((channel, ns.namespace.as_str(), key))?;
                    metadata.remove(key);
                } else {
                    let kept = previous.map(|p| p.metadata).unwrap_or_default();
                    let stored = VersionedValue {
                        value: write.value.clone(),
                        block: version.block,
                        tx: version.tx,
                        metadata: metadata.remove(key).unwrap_or(kept),
                    };
                    self.state.insert(
                        (channel, ns.namespace.as_str(), key),
                        stored.encode_to_vec().as_slice(),
                    )?;
                }
                let record = HistoryRecord {
                    tx_id: tx.tx_id.clone(),
                    value: write.value.clone(),
                    timestamp: tx.timestamp,
                    is_delete: write.is_delete,
                };
                self.history.insert(
                    (
                        channel,
                        ns.namespace.as_str(),
                        key,
                        version.block,
                        version.tx,
                    ),
                    record.encode_to_vec().as_slice(),
                )?;
            }
            for (key, entries) in metadata {
                if let Some(mut existing) = self.current(channel, &ns.namespace, key)? {
                    existing.metadata = entries;
                    existing.block = version.block;
                    existing.tx = version.tx;
                    self.state.insert(
                        (channel, ns.namespace.as_str(), key),
                        existing.encode_to_vec().as_slice(),
                    )?;
                }
            }
        }
        for write in &private.writes {
            let key = (
                channel,
                write.namespace.as_str(),
                write.collection.as_str(),
                write.key.as_str(),
            );
            match &write.value {
                Some(value) => {
                    let stored = VersionedValue {
                        value: value.clone(),
                        block: version.block,
                        tx: version.tx,
                        metadata: BTreeMap::new(),
                    };
                    self.private
                        .insert(key, stored.encode_to_vec().as_slice())?;
                }
                None => {
                    self.private.remove(key)?;
                }
            }
        }
        Ok(())
    }
}

/// Unpacks an endorser transaction down to its read-write set, or says why it is invalid.
fn unpack(channel: &str, envelope: &Envelope) -> Result<UnpackedTx, TxValidationCode> {
    let payload =
        Payload::decode(envelope.payload.as_slice()).map_err(|_| TxValidationCode::BadPayload)?;
    let header = payload.header.ok_or(TxValidationCode::BadCommonHeader)?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| TxValidationCode::BadChannelHeader)?;
    if channel_header.channel_id != channel {
        return Err(TxValidationCode::TargetChainNotFound);
    }
    if channel_header.r#type != HeaderType::EndorserTransaction as i32 {
        return Err(TxValidationCode::UnknownTxType);
    }
    if channel_header.tx_id.is_empty() {
        return Err(TxValidationCode::BadProposalTxid);
    }
    let transaction =
        Transaction::decode(payload.data.as_slice()).map_err(|_| TxValidationCode::BadPayload)?;
    let action = transaction
        .actions
        .first()
        .ok_or(TxValidationCode::NilTxaction)?;
    let action_payload = ChaincodeActionPayload::decode(action.payload.as_slice())
        .map_err(|_| TxValidationCode::BadPayload)?;
    let endorsed = action_payload.action.ok_or(TxValidationCode::NilTxaction)?;
    let response_payload =
        ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice())
            .map_err(|_| TxValidationCode::BadResponsePayload)?;
    let chaincode_action = ChaincodeAction::decode(response_payload.extension.as_slice())
        .map_err(|_| TxValidationCode::BadResponsePayload)?;
    let rwset = TxReadWriteSet::decode(chaincode_action.results.as_slice())
        .map_err(|_| TxValidationCode::BadRwset)?;
    let chaincode = chaincode_action.chaincode_id.map_or_else(
        || UNKNOWN_CHAINCODE.to_owned(),
        |id| format!("{}:{}", id.name, id.version),
    );
    Ok(UnpackedTx {
        tx_id: channel_header.tx_id,
        chaincode,
        timestamp: channel_header.timestamp,
        rwset,
    })
}

/// Whether a transaction with this validation code takes its transaction id: only one whose
/// creator proved it signed, so that nobody can spend someone else's id with a forgery.
fn claims_tx_id(validation: TxValidationCode) -> bool {
    matches!(
        validation,
        TxValidationCode::Valid
            | TxValidationCode::EndorsementPolicyFailure
            | TxValidationCode::InvalidEndorserTransaction
            | TxValidationCode::BadResponsePayload
            | TxValidationCode::BadRwset
    )
}

/// Writes block 0 of a new channel, holding `genesis` as a valid transaction, and answers the
/// channel's chain info after it.
pub(super) fn append_genesis(
    txn: &WriteTransaction,
    channel: &str,
    genesis: &Envelope,
) -> Result<BlockchainInfo> {
    let block = build_block(
        0,
        Vec::new(),
        vec![genesis.encode_to_vec()],
        vec![TxValidationCode::Valid as u8],
        Some(0),
    );
    if let Some(tx_id) = channel_header(genesis).map(|header| header.tx_id) {
        txn.open_table(TXIDS)?.insert(
            (channel, tx_id.as_str()),
            (0, 0, TxValidationCode::Valid as i32),
        )?;
    }
    store_block(txn, channel, &block)
}

/// The channel header of an envelope, if it has one.
fn channel_header(envelope: &Envelope) -> Option<ChannelHeader> {
    let payload = Payload::decode(envelope.payload.as_slice()).ok()?;
    ChannelHeader::decode(payload.header?.channel_header.as_slice()).ok()
}

/// Stores `block` with its hash index, and answers the channel's chain info after it.
fn store_block(txn: &WriteTransaction, channel: &str, block: &Block) -> Result<BlockchainInfo> {
    let header = block.header.as_ref().expect("built with a header");
    let hash = header_hash(header);
    txn.open_table(BLOCKS)?
        .insert((channel, header.number), block.encode_to_vec().as_slice())?;
    txn.open_table(BLOCK_HASHES)?
        .insert((channel, hash.as_slice()), header.number)?;
    Ok(BlockchainInfo {
        height: header.number + 1,
        current_block_hash: hash,
        previous_block_hash: header.previous_hash.clone(),
    })
}

/// A block of `data`, with each transaction's validation code and, when the channel has a
/// configuration block, its number in the orderer's metadata as Fabric's blocks carry it.
fn build_block(
    number: u64,
    previous_hash: Vec<u8>,
    data: Vec<Vec<u8>>,
    codes: Vec<u8>,
    last_config: Option<u64>,
) -> Block {
    let mut metadata = vec![Vec::new(); 5];
    metadata[BlockMetadataIndex::TransactionsFilter as usize] = codes;
    if let Some(index) = last_config {
        let orderer = OrdererBlockMetadata {
            last_config: Some(LastConfig { index }),
            consenter_metadata: Vec::new(),
        };
        metadata[BlockMetadataIndex::Signatures as usize] = Metadata {
            value: orderer.encode_to_vec(),
            signatures: Vec::new(),
        }
        .encode_to_vec();
    }
    Block {
        header: Some(BlockHeader {
            number,
            previous_hash,
            data_hash: data_hash(&data),
        }),
        data: Some(BlockData { data }),
        metadata: Some(BlockMetadata { metadata }),
    }
}

#[cfg(test)]
mod tests {
    use ccvm_proto::common::Header;
    use ccvm_proto::protos::{ChaincodeEndorsedAction, TransactionAction};

    use super::*;
    use crate::ledger::journal::{Journal, JournalLimits};
    use crate::ledger::store::TEST_CACHE_BYTES;
    use crate::ledger::{CommittedTx, DEFAULT_CHANNEL, RangeScan};

    /// An endorser transaction envelope carrying `results`, as a client would submit it.
    fn envelope(tx_id: &str, results: &TxReadWriteSet) -> Envelope {
        let action = ChaincodeAction {
            results: results.encode_to_vec(),
            ..Default::default()
        };
        let response_payload = ProposalResponsePayload {
            extension: action.encode_to_vec(),
            ..Default::default()
        };
        let action_payload = ChaincodeActionPayload {
            action: Some(ChaincodeEndorsedAction {
                proposal_response_payload: response_payload.encode_to_vec(),
                endorsements: Vec::new(),
            }),
            ..Default::default()
        };
        let transaction = Transaction {
            actions: vec![TransactionAction {
                header: Vec::new(),
                payload: action_payload.encode_to_vec(),
            }],
        };
        let channel_header = ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            channel_id: DEFAULT_CHANNEL.to_owned(),
            tx_id: tx_id.to_owned(),
            ..Default::default()
        };
        let payload = Payload {
            header: Some(Header {
                channel_header: channel_header.encode_to_vec(),
                signature_header: Vec::new(),
            }),
            data: transaction.encode_to_vec(),
        };
        Envelope {
            payload: payload.encode_to_vec(),
            signature: Vec::new(),
        }
    }

    fn commit_one(
        ledger: &Ledger,
        tx_id: &str,
        simulate: impl FnOnce(&mut crate::ledger::TxSimulator),
    ) -> anyhow::Result<TxOutcome> {
        let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, tx_id)?;
        simulate(&mut simulator);
        let results = simulator.take_results();
        let tx = PendingTx {
            envelope: envelope(tx_id, &results.public),
            private: results.private,
            validation: TxValidationCode::Valid,
        };
        Ok(ledger.commit_block(DEFAULT_CHANNEL, vec![tx])?.remove(0))
    }

    /// The ledger a restart opens from what `kill -9` leaves of the running ledger in `from`:
    /// those of its `files` as they are now (commits the store has not synced are in the page
    /// cache, not behind its file's header), copied to a directory of their own.
    fn restarted_from(
        from: &std::path::Path,
        files: &[&str],
    ) -> anyhow::Result<(tempfile::TempDir, Ledger)> {
        let dir = tempfile::tempdir()?;
        for file in files {
            std::fs::copy(from.join(file), dir.path().join(file))?;
        }
        let ledger = Ledger::open(dir.path(), TEST_CACHE_BYTES)?;
        Ok((dir, ledger))
    }

    /// The channel's height after a restart from what `kill -9` leaves of the ledger in
    /// `from`: from its store alone, and from its store and journal.
    fn heights_after_a_crash(from: &std::path::Path) -> anyhow::Result<(u64, u64)> {
        let (_store_dir, store_alone) = restarted_from(from, &[STORE_FILE])?;
        let (_both_dir, both) = restarted_from(from, &[STORE_FILE, JOURNAL_FILE])?;
        Ok((
            store_alone.chain_info(DEFAULT_CHANNEL)?.height,
            both.chain_info(DEFAULT_CHANNEL)?.height,
        ))
    }

    const STORE_FILE: &str = "ledger.redb";
    const JOURNAL_FILE: &str = "commits.journal";

    #[test]
    fn blocks_only_in_the_journal_are_committed_again_when_the_ledger_opens() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        for n in 0..5 {
            let tx_id = format!("t{n}");
            commit_one(&ledger, &tx_id, |s| s.put_state("cc", "k", vec![n]))?;
        }
        commit_one(&ledger, "p", |s| {
            s.put_private_data("cc", "secrets", "pk", b"private".to_vec())
        })?;

        let (_store_alone, restarted) = restarted_from(dir.path(), &[STORE_FILE])?;
        assert_eq!(
            restarted.chain_info(DEFAULT_CHANNEL)?.height,
            1,
            "the store alone has synced none of the blocks"
        );

        let (both, restarted) = restarted_from(dir.path(), &[STORE_FILE, JOURNAL_FILE])?;
        assert_eq!(
            restarted.chain_info(DEFAULT_CHANNEL)?,
            ledger.chain_info(DEFAULT_CHANNEL)?
        );
        for number in 0..7 {
            assert_eq!(
                restarted.block(DEFAULT_CHANNEL, number)?,
                ledger.block(DEFAULT_CHANNEL, number)?
            );
        }
        let mut simulator = restarted.new_simulator(DEFAULT_CHANNEL, "r")?;
        assert_eq!(simulator.get_state("cc", "k")?, Some(vec![4]));
        assert_eq!(
            simulator.get_private_data("cc", "secrets", "pk")?,
            Some(b"private".to_vec())
        );
        assert_eq!(
            restarted.committed_tx(DEFAULT_CHANNEL, "t2")?,
            Some(CommittedTx {
                code: TxValidationCode::Valid as i32,
                block: 3
            })
        );
        drop(restarted);
        let reopened = Ledger::open(both.path(), TEST_CACHE_BYTES)?;
        assert_eq!(
            reopened.chain_info(DEFAULT_CHANNEL)?.height,
            7,
            "opening checkpointed the store, and the journal's blocks are not committed twice"
        );
        Ok(())
    }

    #[test]
    fn a_checkpoint_the_journal_asks_for_syncs_the_store() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = JournalLimits {
            bytes: 1 << 20,
            blocks: 2,
            checkpoint_txs: 100,
            txs: 4,
        };
        let ledger = Ledger::open_with_journal(dir.path(), TEST_CACHE_BYTES, limits)?;
        ledger.create_channel(DEFAULT_CHANNEL, &Envelope::default())?;
        commit_one(&ledger, "t1", |s| s.put_state("cc", "k", vec![1]))?;
        commit_one(&ledger, "t2", |s| s.put_state("cc", "k", vec![2]))?;
        let asked = std::time::Instant::now();
        while lock(&ledger.journal).wants_checkpoint() {
            anyhow::ensure!(asked.elapsed().as_secs() < 10, "no checkpoint was made");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        commit_one(&ledger, "t3", |s| s.put_state("cc", "k", vec![3]))?;

        assert_eq!(
            heights_after_a_crash(dir.path())?,
            (3, 4),
            "the checkpoint synced blocks 1 and 2; block 3 is only in the journal"
        );
        Ok(())
    }

    #[test]
    fn a_journal_beside_a_store_that_cannot_take_its_blocks_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        commit_one(&ledger, "t1", |s| s.put_state("cc", "k", vec![1]))?;
        commit_one(&ledger, "t2", |s| s.put_state("cc", "k", vec![2]))?;
        let journal = std::fs::read(dir.path().join(JOURNAL_FILE))?;

        let no_channel = tempfile::tempdir()?;
        std::fs::write(no_channel.path().join(JOURNAL_FILE), &journal)?;
        let refused = Ledger::open(no_channel.path(), TEST_CACHE_BYTES).err();
        assert!(
            matches!(
                refused,
                Some(LedgerError::Journal(JournalError::UnknownChannel { ref channel, .. }))
                    if channel == DEFAULT_CHANNEL
            ),
            "{refused:?}"
        );

        let behind = tempfile::tempdir()?;
        drop(Ledger::open_with_default_channel(behind.path())?);
        let second_record = {
            let (_, blocks) = Journal::open(dir.path(), JournalLimits::default())?;
            blocks.into_iter().nth(1).expect("two journaled blocks")
        };
        assert_eq!(second_record.number, 2);
        let mut only_second = Journal::open(behind.path(), JournalLimits::default())?.0;
        only_second.append(DEFAULT_CHANNEL, 2, &second_record.txs)?;
        drop(only_second);
        let refused = Ledger::open(behind.path(), TEST_CACHE_BYTES).err();
        assert!(
            matches!(
                refused,
                Some(LedgerError::Journal(JournalError::Gap {
                    number: 2,
                    height: 1,
                    ..
                }))
            ),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn a_block_too_large_for_the_journal_is_committed_to_the_store_durably() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let limits = JournalLimits {
            bytes: 4096,
            blocks: 100,
            checkpoint_txs: 100,
            txs: 4,
        };
        let ledger = Ledger::open_with_journal(dir.path(), TEST_CACHE_BYTES, limits)?;
        ledger.create_channel(DEFAULT_CHANNEL, &Envelope::default())?;
        commit_one(&ledger, "small", |s| s.put_state("cc", "k", vec![1]))?;
        commit_one(&ledger, "large", |s| s.put_state("cc", "k", vec![2; 8192]))?;
        commit_one(&ledger, "after", |s| s.put_state("cc", "k", vec![3]))?;

        assert_eq!(
            heights_after_a_crash(dir.path())?,
            (3, 4),
            "the large block was committed durably, with the block before it"
        );
        Ok(())
    }

    #[test]
    fn reads_see_committed_state_not_pending_writes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, "t1")?;
        simulator.put_state("cc", "k", b"v".to_vec());
        assert_eq!(simulator.get_state("cc", "k")?, None);
        Ok(())
    }

    #[test]
    fn simulators_share_a_snapshot_until_a_commit_and_later_ones_read_the_commit()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let mut before = ledger.new_simulator(DEFAULT_CHANNEL, "r1")?;
        let also_before = ledger.new_simulator(DEFAULT_CHANNEL, "r2")?;
        assert!(before.shares_snapshot_with(&also_before));

        commit_one(&ledger, "t1", |s| s.put_state("cc", "k", b"v".to_vec()))?;
        let mut after = ledger.new_simulator(DEFAULT_CHANNEL, "r3")?;
        assert!(!after.shares_snapshot_with(&before));
        assert_eq!(after.get_state("cc", "k")?, Some(b"v".to_vec()));
        assert_eq!(
            before.get_state("cc", "k")?,
            None,
            "a simulator keeps the snapshot it was made with"
        );
        Ok(())
    }

    #[test]
    fn commit_versions_values_and_keeps_history() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        assert_eq!(
            commit_one(&ledger, "t1", |s| s.put_state("cc", "k", b"one".to_vec()))?.code,
            TxValidationCode::Valid
        );
        assert_eq!(
            commit_one(&ledger, "t2", |s| s.put_state("cc", "k", b"two".to_vec()))?.code,
            TxValidationCode::Valid
        );
        assert_eq!(
            commit_one(&ledger, "t3", |s| s.delete_state("cc", "k"))?.code,
            TxValidationCode::Valid
        );

        let simulator = ledger.new_simulator(DEFAULT_CHANNEL, "t4")?;
        let history = simulator.history("cc", "k", None, 10)?;
        let seen: Vec<(&str, bool, u64)> = history
            .iter()
            .map(|h| (h.tx_id.as_str(), h.is_delete, h.version.block))
            .collect();
        assert_eq!(
            seen,
            [("t3", true, 3), ("t2", false, 2), ("t1", false, 1)],
            "block 0 is the channel's genesis"
        );
        let older = simulator.history("cc", "k", Some(history[0].version), 1)?;
        assert_eq!(
            older[0].tx_id, "t2",
            "history resumes after a given version"
        );
        assert_eq!(ledger.chain_info(DEFAULT_CHANNEL)?.height, 4);
        Ok(())
    }

    #[test]
    fn a_stale_read_is_an_mvcc_conflict_and_writes_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        commit_one(&ledger, "t1", |s| s.put_state("cc", "k", b"one".to_vec()))?;
        let mut stale = ledger.new_simulator(DEFAULT_CHANNEL, "t2")?;
        stale.get_state("cc", "k")?;
        stale.put_state("cc", "other", b"x".to_vec());
        commit_one(&ledger, "t3", |s| s.put_state("cc", "k", b"two".to_vec()))?;

        let results = stale.take_results();
        let tx = PendingTx {
            envelope: envelope("t2", &results.public),
            private: results.private,
            validation: TxValidationCode::Valid,
        };
        let outcome = ledger.commit_block(DEFAULT_CHANNEL, vec![tx])?.remove(0);
        assert_eq!(outcome.code, TxValidationCode::MvccReadConflict);
        assert_eq!(
            ledger
                .new_simulator(DEFAULT_CHANNEL, "t4")?
                .get_state("cc", "other")?,
            None
        );
        assert_eq!(
            ledger
                .committed_tx(DEFAULT_CHANNEL, "t2")?
                .map(|committed| committed.code),
            Some(TxValidationCode::MvccReadConflict as i32)
        );
        Ok(())
    }

    #[test]
    fn metadata_survives_value_writes_and_dies_with_the_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        commit_one(&ledger, "t1", |s| s.put_state("cc", "k", b"v".to_vec()))?;
        commit_one(&ledger, "t2", |s| {
            s.put_state_metadata("cc", "", "k", "policy", b"p".to_vec())
                .expect("public metadata")
        })?;
        commit_one(&ledger, "t3", |s| s.put_state("cc", "k", b"v2".to_vec()))?;
        let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, "t4")?;
        assert_eq!(
            simulator.get_state_metadata("cc", "", "k")?.get("policy"),
            Some(&b"p".to_vec())
        );
        commit_one(&ledger, "t5", |s| s.delete_state("cc", "k"))?;
        commit_one(&ledger, "t6", |s| s.put_state("cc", "k", b"v3".to_vec()))?;
        let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, "t7")?;
        assert!(simulator.get_state_metadata("cc", "", "k")?.is_empty());
        Ok(())
    }

    #[test]
    fn range_scans_page_and_stop_at_the_end_key() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        commit_one(&ledger, "t1", |s| {
            for key in ["a", "b", "c", "d"] {
                s.put_state("cc", key, key.as_bytes().to_vec());
            }
            s.put_state("other", "b", b"elsewhere".to_vec());
        })?;
        let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, "t2")?;
        let mut scan = RangeScan::new("cc", "", "b", "", Some(2));
        let page: Vec<String> = simulator
            .scan_range(&mut scan, 100)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(page, ["b", "c"]);
        assert_eq!(scan.bookmark(), "d");
        assert!(!scan.has_more());
        let mut scan = RangeScan::new("cc", "", "a", "c", None);
        let keys: Vec<String> = simulator
            .scan_range(&mut scan, 1)?
            .into_iter()
            .chain(simulator.scan_range(&mut scan, 1)?)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert!(!scan.has_more());
        Ok(())
    }

    #[test]
    fn an_unknown_channel_commits_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let err = ledger.commit_block("nochannel", Vec::new()).unwrap_err();
        assert!(matches!(err, LedgerError::UnknownChannel(name) if name == "nochannel"));
        assert!(!ledger.has_channel("nochannel")?);
        Ok(())
    }

    #[test]
    fn a_transaction_refused_before_commit_writes_nothing_and_only_a_proven_creator_takes_its_id()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let refused = |tx_id: &str, validation| -> anyhow::Result<TxOutcome> {
            let mut simulator = ledger.new_simulator(DEFAULT_CHANNEL, tx_id)?;
            simulator.put_state("cc", "k", tx_id.as_bytes().to_vec());
            let results = simulator.take_results();
            let tx = PendingTx {
                envelope: envelope(tx_id, &results.public),
                private: results.private,
                validation,
            };
            Ok(ledger.commit_block(DEFAULT_CHANNEL, vec![tx])?.remove(0))
        };
        let forged = refused("t1", TxValidationCode::BadCreatorSignature)?;
        assert_eq!(forged.code, TxValidationCode::BadCreatorSignature);
        let unendorsed = refused("t2", TxValidationCode::EndorsementPolicyFailure)?;
        assert_eq!(unendorsed.code, TxValidationCode::EndorsementPolicyFailure);
        let mut reader = ledger.new_simulator(DEFAULT_CHANNEL, "r")?;
        assert_eq!(
            reader.get_state("cc", "k")?,
            None,
            "no refused write applied"
        );
        assert_eq!(
            commit_one(&ledger, "t1", |s| s.put_state("cc", "k", b"v".to_vec()))?.code,
            TxValidationCode::Valid,
            "a forgery does not spend the id of its victim"
        );
        assert_eq!(
            commit_one(&ledger, "t2", |s| s.put_state("cc", "k", b"v".to_vec()))?.code,
            TxValidationCode::DuplicateTxid,
            "a signed but unendorsed transaction took its id"
        );
        Ok(())
    }
}
