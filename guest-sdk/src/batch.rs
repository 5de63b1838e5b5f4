//! The writes a transaction holds back while its write batch is open, sent to the peer together
//! as WRITE_BATCH_STATE (Fabric 3.1) instead of one request each.

use std::collections::HashMap;

use ccvm_proto::protos::{StateMetadata, WriteBatchState, WriteRecord, write_record};

/// What one record writes: a key's value (a put, a delete or a purge replace each other), or
/// one named entry of its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    collection: String,
    key: String,
    metakey: Option<String>,
}

/// Held-back writes: one record per target, the last written, in the order of the last writes.
/// Sent in that order, they leave the transaction's write set as the same writes sent one by
/// one would.
#[derive(Debug)]
pub(crate) struct WriteBatch {
    records: Vec<Option<WriteRecord>>,
    latest: HashMap<Target, usize>,
    /// Most records one WRITE_BATCH_STATE request carries: what the peer takes.
    records_per_request: usize,
}

impl WriteBatch {
    /// An empty batch for a peer that takes up to `records_per_request` records a request.
    pub fn new(records_per_request: usize) -> Self {
        Self {
            records: Vec::new(),
            latest: HashMap::new(),
            records_per_request: records_per_request.max(1),
        }
    }

    /// Holds back a put of `value` at `key` of `collection` (empty: public state).
    pub fn put(&mut self, collection: &str, key: &str, value: Vec<u8>) {
        self.hold(WriteRecord {
            value,
            ..record(collection, key, write_record::Type::PutState)
        });
    }

    /// Holds back a delete of `key` of `collection`.
    pub fn delete(&mut self, collection: &str, key: &str) {
        self.hold(record(collection, key, write_record::Type::DelState));
    }

    /// Holds back a purge of the private `key` of `collection`.
    pub fn purge(&mut self, collection: &str, key: &str) {
        self.hold(record(
            collection,
            key,
            write_record::Type::PurgePrivateData,
        ));
    }

    /// Holds back setting the metadata entry `metadata` of `key` of `collection`.
    pub fn put_metadata(&mut self, collection: &str, key: &str, metadata: StateMetadata) {
        self.hold(WriteRecord {
            metadata: Some(metadata),
            ..record(collection, key, write_record::Type::PutStateMetadata)
        });
    }

    fn hold(&mut self, record: WriteRecord) {
        let target = Target {
            collection: record.collection.clone(),
            key: record.key.clone(),
            metakey: record.metadata.as_ref().map(|m| m.metakey.clone()),
        };
        if let Some(earlier) = self.latest.insert(target, self.records.len()) {
            self.records[earlier] = None;
        }
        self.records.push(Some(record));
    }

    /// The held-back records, in the order they are to be sent.
    fn into_records(self) -> impl Iterator<Item = WriteRecord> {
        self.records.into_iter().flatten()
    }

    /// The WRITE_BATCH_STATE requests that send the held-back records, in order.
    pub fn into_requests(self) -> Vec<WriteBatchState> {
        let per_request = self.records_per_request;
        let mut records = self.into_records().peekable();
        let mut requests = Vec::new();
        while records.peek().is_some() {
            requests.push(WriteBatchState {
                rec: records.by_ref().take(per_request).collect(),
            });
        }
        requests
    }
}

fn record(collection: &str, key: &str, kind: write_record::Type) -> WriteRecord {
    WriteRecord {
        key: key.to_owned(),
        collection: collection.to_owned(),
        r#type: kind.into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(batch: WriteBatch) -> Vec<(String, String, write_record::Type, Vec<u8>)> {
        batch
            .into_records()
            .map(|r| {
                let kind = r.r#type();
                let written = r
                    .metadata
                    .map_or(r.value, |m| [m.metakey.as_bytes(), b"=", &m.value].concat());
                (r.collection, r.key, kind, written)
            })
            .collect()
    }

    #[test]
    fn the_last_write_of_a_key_is_sent_in_the_place_of_that_write() {
        let mut batch = WriteBatch::new(100);
        batch.put("", "a", b"1".to_vec());
        batch.put("", "b", b"2".to_vec());
        batch.delete("", "a");
        batch.put("secrets", "a", b"3".to_vec());
        batch.put("", "b", b"4".to_vec());
        assert_eq!(
            summary(batch),
            [
                ("".into(), "a".into(), write_record::Type::DelState, vec![]),
                (
                    "secrets".into(),
                    "a".into(),
                    write_record::Type::PutState,
                    b"3".to_vec()
                ),
                (
                    "".into(),
                    "b".into(),
                    write_record::Type::PutState,
                    b"4".to_vec()
                ),
            ]
        );
    }

    #[test]
    fn each_metadata_entry_of_a_key_is_kept_apart_from_its_value_and_the_other_entries() {
        let entry = |name: &str, value: &[u8]| StateMetadata {
            metakey: name.to_owned(),
            value: value.to_vec(),
        };
        let mut batch = WriteBatch::new(100);
        batch.put("", "k", b"v".to_vec());
        batch.put_metadata("", "k", entry("owner", b"alice"));
        batch.put_metadata("", "k", entry("VALIDATION_PARAMETER", b"p"));
        batch.put_metadata("", "k", entry("owner", b"bob"));
        batch.purge("secrets", "k");
        assert_eq!(
            summary(batch),
            [
                (
                    "".into(),
                    "k".into(),
                    write_record::Type::PutState,
                    b"v".to_vec()
                ),
                (
                    "".into(),
                    "k".into(),
                    write_record::Type::PutStateMetadata,
                    b"VALIDATION_PARAMETER=p".to_vec()
                ),
                (
                    "".into(),
                    "k".into(),
                    write_record::Type::PutStateMetadata,
                    b"owner=bob".to_vec()
                ),
                (
                    "secrets".into(),
                    "k".into(),
                    write_record::Type::PurgePrivateData,
                    vec![]
                ),
            ]
        );
    }
}
