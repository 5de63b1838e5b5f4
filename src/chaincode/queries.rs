//! Iterators over ranges and key history, returned to the chaincode in batches.

use ccvm_proto::Message;
use ccvm_proto::protos::{QueryResponse, QueryResponseMetadata, QueryResultBytes};
use ccvm_proto::queryresult::{KeyModification, Kv};

use crate::ledger::{RangeScan, Result, TxSimulator, Version};

/// Results per QUERY_STATE_NEXT batch, Fabric's `maxResultLimit`.
pub(crate) const MAX_RESULTS_PER_BATCH: usize = 100;

/// An open iterator of a transaction.
pub(crate) enum QueryIterator {
    /// A range of keys; `paginated` ranges report a bookmark.
    Range { scan: RangeScan, paginated: bool },
    /// The changes of one key, newest first.
    History {
        namespace: String,
        key: String,
        before: Option<Version>,
        done: bool,
    },
}

impl QueryIterator {
    /// Fetches the next batch. A paginated range returns its whole page at once, with metadata,
    /// because shims read the bookmark from the first response only.
    pub fn next_batch(&mut self, simulator: &mut TxSimulator, id: &str) -> Result<QueryResponse> {
        match self {
            Self::Range { scan, paginated } => {
                let batch = if *paginated {
                    usize::MAX
                } else {
                    MAX_RESULTS_PER_BATCH
                };
                let namespace = scan.namespace().to_owned();
                let results = simulator
                    .scan_range(scan, batch)?
                    .into_iter()
                    .map(|(key, value)| {
                        result_bytes(Kv {
                            namespace: namespace.clone(),
                            key,
                            value,
                        })
                    })
                    .collect();
                let metadata = if *paginated {
                    QueryResponseMetadata {
                        fetched_records_count: i32::try_from(scan.fetched()).unwrap_or(i32::MAX),
                        bookmark: scan.bookmark().to_owned(),
                    }
                    .encode_to_vec()
                } else {
                    Vec::new()
                };
                let has_more = !*paginated && scan.has_more();
                Ok(QueryResponse {
                    results,
                    has_more,
                    id: id.to_owned(),
                    metadata,
                })
            }
            Self::History {
                namespace,
                key,
                before,
                done,
            } => {
                let mut items =
                    simulator.history(namespace, key, *before, MAX_RESULTS_PER_BATCH + 1)?;
                *done = items.len() <= MAX_RESULTS_PER_BATCH;
                items.truncate(MAX_RESULTS_PER_BATCH);
                *before = items.last().map(|item| item.version).or(*before);
                let results = items
                    .into_iter()
                    .map(|item| {
                        result_bytes(KeyModification {
                            tx_id: item.tx_id,
                            value: item.value,
                            timestamp: item.timestamp,
                            is_delete: item.is_delete,
                        })
                    })
                    .collect();
                Ok(QueryResponse {
                    results,
                    has_more: !*done,
                    id: id.to_owned(),
                    metadata: Vec::new(),
                })
            }
        }
    }

    /// Whether every result has been returned.
    pub fn exhausted(&self) -> bool {
        match self {
            Self::Range { scan, paginated } => *paginated || !scan.has_more(),
            Self::History { done, .. } => *done,
        }
    }
}

fn result_bytes(item: impl Message) -> QueryResultBytes {
    QueryResultBytes {
        result_bytes: item.encode_to_vec(),
    }
}
