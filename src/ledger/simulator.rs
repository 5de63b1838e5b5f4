//! A transaction simulator: reads one consistent snapshot of committed state and records what a
//! transaction read and wants to write, as Fabric's read-write set.
//!
//! Like Fabric, reads see committed state only, never the transaction's own pending writes.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use ccvm_proto::kvrwset::{self, RangeQueryInfo, range_query_info::ReadsInfo};
use ccvm_proto::rwset::{self, TxReadWriteSet};
use prost::Message;
use redb::{Key, ReadOnlyTable, ReadTransaction, TableDefinition, Value};
use sha2::{Digest, Sha256};

use super::commit::{PrivateRead, PrivateWrite, PrivateWrites};
use super::error::{LedgerError, Result};
use super::records::{HistoryItem, HistoryRecord, Version, VersionedValue};
use super::snapshot::Snapshot;
use super::store::{HISTORY, PRIVATE};

type PrivateTable =
    ReadOnlyTable<(&'static str, &'static str, &'static str, &'static str), &'static [u8]>;
type HistoryTable =
    ReadOnlyTable<(&'static str, &'static str, &'static str, u64, u64), &'static [u8]>;

/// The table `definition` of `txn`, opened into `cell` on first use.
fn open_once<'a, K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    cell: &'a OnceCell<ReadOnlyTable<K, V>>,
    definition: TableDefinition<K, V>,
) -> Result<&'a ReadOnlyTable<K, V>> {
    if let Some(table) = cell.get() {
        return Ok(table);
    }
    let table = txn.open_table(definition)?;
    Ok(cell.get_or_init(|| table))
}

/// The public reads and writes of one namespace.
#[derive(Default)]
struct NamespaceRecord {
    reads: BTreeMap<String, Option<Version>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    metadata_writes: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ranges: Vec<RangeQueryInfo>,
    collections: BTreeMap<String, CollectionRecord>,
}

/// The private reads and writes of one collection.
#[derive(Default)]
struct CollectionRecord {
    reads: BTreeMap<String, Option<Version>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    purges: BTreeSet<String>,
}

/// One row of a range scan: key, value and the version read.
type ScannedRow = (String, Vec<u8>, Version);

/// Where a range iteration stands; the caller keeps it between batches.
#[derive(Debug, Clone)]
pub struct RangeScan {
    namespace: String,
    collection: String,
    start: String,
    end: String,
    last_returned: Option<String>,
    next_key: Option<String>,
    remaining: Option<usize>,
    fetched: usize,
    range_info: Option<usize>,
    done: bool,
}

impl RangeScan {
    /// A scan of `[start, end)` in the namespace (or a private collection when non-empty);
    /// an empty `end` means to the end of the namespace. With `page_size`, at most that many
    /// results are returned.
    pub fn new(
        namespace: &str,
        collection: &str,
        start: &str,
        end: &str,
        page_size: Option<usize>,
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            collection: collection.to_owned(),
            start: start.to_owned(),
            end: end.to_owned(),
            last_returned: None,
            next_key: None,
            remaining: page_size,
            fetched: 0,
            range_info: None,
            done: false,
        }
    }

    /// The namespace scanned.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether results remain to be fetched.
    pub fn has_more(&self) -> bool {
        !self.done
    }

    /// How many results the scan has returned so far.
    pub fn fetched(&self) -> usize {
        self.fetched
    }

    /// The key a follow-up page should start at: the first key not returned, or empty.
    pub fn bookmark(&self) -> &str {
        self.next_key.as_deref().unwrap_or("")
    }

    fn lower_bound(&self) -> Bound<&str> {
        match &self.last_returned {
            Some(last) => Bound::Excluded(last.as_str()),
            None => Bound::Included(self.start.as_str()),
        }
    }
}

/// What a finished simulation produced.
pub struct SimulationResults {
    /// The read-write set that goes into the transaction (private values only as hashes).
    pub public: TxReadWriteSet,
    /// The private values, kept off the chain until commit.
    pub private: PrivateWrites,
}

/// Records one transaction's reads and writes against a snapshot of committed state.
///
/// The private data and history tables are opened on first use: most transactions read
/// neither.
pub struct TxSimulator {
    channel: String,
    tx_id: String,
    snapshot: Arc<Snapshot>,
    private: OnceCell<PrivateTable>,
    history: OnceCell<HistoryTable>,
    namespaces: BTreeMap<String, NamespaceRecord>,
}

impl TxSimulator {
    pub(crate) fn new(snapshot: Arc<Snapshot>, channel: &str, tx_id: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            tx_id: tx_id.to_owned(),
            snapshot,
            private: OnceCell::new(),
            history: OnceCell::new(),
            namespaces: BTreeMap::new(),
        }
    }

    fn private_table(&self) -> Result<&PrivateTable> {
        open_once(&self.snapshot.txn, &self.private, PRIVATE)
    }

    fn history_table(&self) -> Result<&HistoryTable> {
        open_once(&self.snapshot.txn, &self.history, HISTORY)
    }

    /// Whether this simulator and `other` read one shared snapshot.
    #[cfg(test)]
    pub(crate) fn shares_snapshot_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.snapshot, &other.snapshot)
    }

    /// The channel this transaction runs on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The transaction id.
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// Whether a transaction with this simulator's id is committed on its channel, as of the
    /// snapshot the simulator reads.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn tx_id_committed(&self) -> Result<bool> {
        self.snapshot.has_tx_id(&self.channel, &self.tx_id)
    }

    fn ns(&mut self, namespace: &str) -> &mut NamespaceRecord {
        self.namespaces.entry(namespace.to_owned()).or_default()
    }

    fn coll(&mut self, namespace: &str, collection: &str) -> &mut CollectionRecord {
        self.ns(namespace)
            .collections
            .entry(collection.to_owned())
            .or_default()
    }

    fn committed(&self, namespace: &str, key: &str) -> Result<Option<VersionedValue>> {
        let raw = self
            .snapshot
            .state
            .get((self.channel.as_str(), namespace, key))?;
        raw.map(|raw| VersionedValue::decode(raw.value()))
            .transpose()
            .map_err(LedgerError::decode("state value"))
    }

    fn committed_private(
        &self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<VersionedValue>> {
        let raw = self
            .private_table()?
            .get((self.channel.as_str(), namespace, collection, key))?;
        raw.map(|raw| VersionedValue::decode(raw.value()))
            .transpose()
            .map_err(LedgerError::decode("private value"))
    }

    /// Reads a key's committed value and records the version read.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn get_state(&mut self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let found = self.committed(namespace, key)?;
        self.ns(namespace)
            .reads
            .entry(key.to_owned())
            .or_insert(found.as_ref().map(VersionedValue::version));
        Ok(found.map(|v| v.value))
    }

    /// A key's committed metadata entries (empty for an absent key).
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn get_state_metadata(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let found = if collection.is_empty() {
            self.committed(namespace, key)?
        } else {
            self.committed_private(namespace, collection, key)?
        };
        Ok(found.map(|v| v.metadata).unwrap_or_default())
    }

    /// Records a write of `value` to `key`.
    pub fn put_state(&mut self, namespace: &str, key: &str, value: Vec<u8>) {
        self.ns(namespace)
            .writes
            .insert(key.to_owned(), Some(value));
    }

    /// Records a delete of `key`.
    pub fn delete_state(&mut self, namespace: &str, key: &str) {
        self.ns(namespace).writes.insert(key.to_owned(), None);
        self.ns(namespace).metadata_writes.remove(key);
    }

    /// Records setting one metadata entry of a public key, keeping its other entries.
    ///
    /// # Errors
    /// Fails when the store cannot be read; private metadata is refused.
    pub fn put_state_metadata(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        if !collection.is_empty() {
            return Err(LedgerError::PrivateMetadata);
        }
        let pending = self.ns(namespace).metadata_writes.get(key).cloned();
        let mut entries = match pending {
            Some(entries) => entries,
            None => self.get_state_metadata(namespace, "", key)?,
        };
        entries.insert(name.to_owned(), value);
        self.ns(namespace)
            .metadata_writes
            .insert(key.to_owned(), entries);
        Ok(())
    }

    /// Reads a private key's committed value and records the version read.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn get_private_data(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let found = self.committed_private(namespace, collection, key)?;
        self.coll(namespace, collection)
            .reads
            .entry(key.to_owned())
            .or_insert(found.as_ref().map(VersionedValue::version));
        Ok(found.map(|v| v.value))
    }

    /// The SHA-256 of a private key's committed value.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn get_private_data_hash(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_private_data(namespace, collection, key)?
            .map(|value| Sha256::digest(value).to_vec()))
    }

    /// Records a private write.
    pub fn put_private_data(
        &mut self,
        namespace: &str,
        collection: &str,
        key: &str,
        value: Vec<u8>,
    ) {
        self.coll(namespace, collection)
            .writes
            .insert(key.to_owned(), Some(value));
    }

    /// Records a private delete.
    pub fn delete_private_data(&mut self, namespace: &str, collection: &str, key: &str) {
        self.coll(namespace, collection)
            .writes
            .insert(key.to_owned(), None);
    }

    /// Records a purge: the key is deleted and its past values leave the private store.
    pub fn purge_private_data(&mut self, namespace: &str, collection: &str, key: &str) {
        let coll = self.coll(namespace, collection);
        coll.writes.insert(key.to_owned(), None);
        coll.purges.insert(key.to_owned());
    }

    /// Returns up to `batch` more results of a range scan, recording them for phantom-read
    /// validation (public ranges only, as in Fabric).
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn scan_range(
        &mut self,
        scan: &mut RangeScan,
        batch: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        if scan.done {
            return Ok(Vec::new());
        }
        let want = scan.remaining.map_or(batch, |r| r.min(batch));
        let (rows, peeked) = self.read_range(scan, want)?;
        scan.fetched += rows.len();
        if let Some(remaining) = scan.remaining.as_mut() {
            *remaining -= rows.len();
        }
        if let Some((key, _, _)) = rows.last() {
            scan.last_returned = Some(key.clone());
        }
        scan.next_key = peeked;
        scan.done = scan.next_key.is_none() || scan.remaining == Some(0);
        if scan.collection.is_empty() {
            self.record_range_reads(scan, &rows);
        }
        Ok(rows
            .into_iter()
            .map(|(key, value, _)| (key, value))
            .collect())
    }

    /// Reads up to `want` rows after the scan's position, plus the key of the row after them.
    fn read_range(
        &self,
        scan: &RangeScan,
        want: usize,
    ) -> Result<(Vec<ScannedRow>, Option<String>)> {
        let channel = self.channel.as_str();
        let ns = scan.namespace.as_str();
        let mut rows = Vec::with_capacity(want.min(1024));
        let mut peeked = None;
        let mut push = |key: &str, raw: &[u8]| -> Result<bool> {
            if rows.len() == want {
                peeked = Some(key.to_owned());
                return Ok(false);
            }
            let value = VersionedValue::decode(raw).map_err(LedgerError::decode("state value"))?;
            let version = value.version();
            rows.push((key.to_owned(), value.value, version));
            Ok(true)
        };
        if !scan.end.is_empty() && scan.start.as_str() >= scan.end.as_str() {
            return Ok((rows, peeked));
        }
        if scan.collection.is_empty() {
            let lower = scan.lower_bound().map(|k| (channel, ns, k));
            let next_ns = format!("{ns}\0");
            let upper = if scan.end.is_empty() {
                Bound::Excluded((channel, next_ns.as_str(), ""))
            } else {
                Bound::Excluded((channel, ns, scan.end.as_str()))
            };
            for entry in self.snapshot.state.range((lower, upper))? {
                let (k, v) = entry?;
                if !push(k.value().2, v.value())? {
                    break;
                }
            }
        } else {
            let coll = scan.collection.as_str();
            let lower = scan.lower_bound().map(|k| (channel, ns, coll, k));
            let next_coll = format!("{coll}\0");
            let upper = if scan.end.is_empty() {
                Bound::Excluded((channel, ns, next_coll.as_str(), ""))
            } else {
                Bound::Excluded((channel, ns, coll, scan.end.as_str()))
            };
            for entry in self.private_table()?.range((lower, upper))? {
                let (k, v) = entry?;
                if !push(k.value().3, v.value())? {
                    break;
                }
            }
        }
        Ok((rows, peeked))
    }

    fn record_range_reads(&mut self, scan: &mut RangeScan, rows: &[ScannedRow]) {
        let exhausted = scan.next_key.is_none();
        let ns = self.ns(&scan.namespace);
        let index = *scan.range_info.get_or_insert_with(|| {
            ns.ranges.push(RangeQueryInfo {
                start_key: scan.start.clone(),
                end_key: scan.end.clone(),
                itr_exhausted: false,
                reads_info: Some(ReadsInfo::RawReads(kvrwset::QueryReads::default())),
            });
            ns.ranges.len() - 1
        });
        let info = &mut ns.ranges[index];
        info.itr_exhausted = exhausted;
        if let Some(ReadsInfo::RawReads(reads)) = info.reads_info.as_mut() {
            reads
                .kv_reads
                .extend(rows.iter().map(|(key, _, version)| kvrwset::KvRead {
                    key: key.clone(),
                    version: Some((*version).into()),
                }));
        }
    }

    /// Returns up to `limit` changes to a key, newest first, older than `before` when given.
    ///
    /// # Errors
    /// Fails when the store cannot be read.
    pub fn history(
        &self,
        namespace: &str,
        key: &str,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<HistoryItem>> {
        let channel = self.channel.as_str();
        let lower = Bound::Included((channel, namespace, key, 0, 0));
        let upper = match before {
            Some(v) => Bound::Excluded((channel, namespace, key, v.block, v.tx)),
            None => Bound::Included((channel, namespace, key, u64::MAX, u64::MAX)),
        };
        let mut items = Vec::new();
        for entry in self
            .history_table()?
            .range((lower, upper))?
            .rev()
            .take(limit)
        {
            let (k, v) = entry?;
            let (_, _, _, block, tx) = k.value();
            let record =
                HistoryRecord::decode(v.value()).map_err(LedgerError::decode("history record"))?;
            items.push(HistoryItem {
                tx_id: record.tx_id,
                value: record.value,
                timestamp: record.timestamp,
                is_delete: record.is_delete,
                version: Version { block, tx },
            });
        }
        Ok(items)
    }

    /// Takes what the simulation recorded, leaving the simulator empty.
    pub fn take_results(&mut self) -> SimulationResults {
        let mut public = TxReadWriteSet {
            data_model: rwset::tx_read_write_set::DataModel::Kv as i32,
            ns_rwset: Vec::new(),
        };
        let mut private = PrivateWrites::default();
        for (namespace, record) in std::mem::take(&mut self.namespaces) {
            let kv = kvrwset::KvrwSet {
                reads: record
                    .reads
                    .into_iter()
                    .map(|(key, version)| kvrwset::KvRead {
                        key,
                        version: version.map(Into::into),
                    })
                    .collect(),
                range_queries_info: record.ranges,
                writes: record
                    .writes
                    .into_iter()
                    .map(|(key, value)| kvrwset::KvWrite {
                        key,
                        is_delete: value.is_none(),
                        value: value.unwrap_or_default(),
                    })
                    .collect(),
                metadata_writes: record
                    .metadata_writes
                    .into_iter()
                    .map(|(key, entries)| kvrwset::KvMetadataWrite {
                        key,
                        entries: entries
                            .into_iter()
                            .map(|(name, value)| kvrwset::KvMetadataEntry { name, value })
                            .collect(),
                    })
                    .collect(),
            };
            let mut hashed_collections = Vec::new();
            for (collection, coll) in record.collections {
                let hashed = hashed_rwset(&coll);
                for (key, version) in coll.reads {
                    private.reads.push(PrivateRead {
                        namespace: namespace.clone(),
                        collection: collection.clone(),
                        key,
                        version,
                    });
                }
                for (key, value) in coll.writes {
                    private.writes.push(PrivateWrite {
                        namespace: namespace.clone(),
                        collection: collection.clone(),
                        purge: coll.purges.contains(&key),
                        key,
                        value,
                    });
                }
                hashed_collections.push(rwset::CollectionHashedReadWriteSet {
                    collection_name: collection,
                    pvt_rwset_hash: Sha256::digest(&hashed).to_vec(),
                    hashed_rwset: hashed,
                });
            }
            public.ns_rwset.push(rwset::NsReadWriteSet {
                namespace,
                rwset: kv.encode_to_vec(),
                collection_hashed_rwset: hashed_collections,
            });
        }
        SimulationResults { public, private }
    }
}

/// The on-chain form of a collection's reads and writes: hashes only.
fn hashed_rwset(coll: &CollectionRecord) -> Vec<u8> {
    let hash = |bytes: &[u8]| Sha256::digest(bytes).to_vec();
    kvrwset::HashedRwSet {
        hashed_reads: coll
            .reads
            .iter()
            .map(|(key, version)| kvrwset::KvReadHash {
                key_hash: hash(key.as_bytes()),
                version: version.map(Into::into),
            })
            .collect(),
        hashed_writes: coll
            .writes
            .iter()
            .map(|(key, value)| kvrwset::KvWriteHash {
                key_hash: hash(key.as_bytes()),
                is_delete: value.is_none(),
                value_hash: value.as_deref().map(hash).unwrap_or_default(),
                is_purge: coll.purges.contains(key),
            })
            .collect(),
        metadata_writes: Vec::new(),
    }
    .encode_to_vec()
}
