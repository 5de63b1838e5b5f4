//! Iterators over range and history query results, fetched from the peer in batches.

use std::marker::PhantomData;

use ccvm_proto::protos::{QueryResponse, QueryResponseMetadata, QueryStateClose, QueryStateNext};
use ccvm_proto::queryresult::Kv;
use ccvm_proto::{Message, MessageType};

use crate::error::ShimError;
use crate::shim::{PeerCall, request};

pub use ccvm_proto::queryresult::KeyModification;

/// Where a paginated query stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    /// How many records the page holds.
    pub fetched_records_count: i32,
    /// Pass this to the next call to continue after this page; empty at the end.
    pub bookmark: String,
}

/// Results of a query, fetched batch by batch; the peer's iterator is closed on drop.
pub struct ResultIterator<'a, T> {
    peer: &'a dyn PeerCall,
    channel_id: String,
    tx_id: String,
    batch: QueryResponse,
    next: usize,
    item: PhantomData<T>,
}

/// Keys and values of a range query.
pub type StateIterator<'a> = ResultIterator<'a, Kv>;
/// Changes to a key, newest first.
pub type HistoryIterator<'a> = ResultIterator<'a, KeyModification>;

impl<'a, T> ResultIterator<'a, T> {
    pub(crate) fn new(
        peer: &'a dyn PeerCall,
        channel_id: &str,
        tx_id: &str,
        batch: QueryResponse,
    ) -> Self {
        Self {
            peer,
            channel_id: channel_id.to_owned(),
            tx_id: tx_id.to_owned(),
            batch,
            next: 0,
            item: PhantomData,
        }
    }

    /// The pagination metadata of the first batch, when the query was paginated.
    pub(crate) fn page_info(&self) -> Result<PageInfo, ShimError> {
        let metadata = QueryResponseMetadata::decode(self.batch.metadata.as_slice())
            .map_err(|e| ShimError::Protocol(format!("malformed query metadata: {e}")))?;
        Ok(PageInfo {
            fetched_records_count: metadata.fetched_records_count,
            bookmark: metadata.bookmark,
        })
    }

    fn request(&self, kind: MessageType, payload: Vec<u8>) -> Result<QueryResponse, ShimError> {
        let answer = request(self.peer, &self.channel_id, &self.tx_id, kind, payload)?;
        QueryResponse::decode(answer.as_slice())
            .map_err(|e| ShimError::Protocol(format!("malformed query response: {e}")))
    }

    /// Closes the peer's iterator now instead of on drop, reporting any error.
    ///
    /// # Errors
    /// The peer's error.
    pub fn close(mut self) -> Result<(), ShimError> {
        self.close_on_peer()
    }

    fn close_on_peer(&mut self) -> Result<(), ShimError> {
        if !self.batch.has_more {
            return Ok(());
        }
        self.batch.has_more = false;
        let id = self.batch.id.clone();
        self.request(
            MessageType::QueryStateClose,
            QueryStateClose { id }.encode_to_vec(),
        )
        .map(drop)
    }
}

impl<T: Message + Default> Iterator for ResultIterator<'_, T> {
    type Item = Result<T, ShimError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next >= self.batch.results.len() {
            if !self.batch.has_more {
                return None;
            }
            let id = self.batch.id.clone();
            match self.request(
                MessageType::QueryStateNext,
                QueryStateNext { id }.encode_to_vec(),
            ) {
                Ok(batch) => {
                    self.batch = batch;
                    self.next = 0;
                }
                Err(e) => {
                    self.batch.has_more = false;
                    self.batch.results.clear();
                    return Some(Err(e));
                }
            }
        }
        let raw = &self.batch.results[self.next].result_bytes;
        self.next += 1;
        Some(
            T::decode(raw.as_slice())
                .map_err(|e| ShimError::Protocol(format!("malformed query result: {e}"))),
        )
    }
}

impl<T> Drop for ResultIterator<'_, T> {
    fn drop(&mut self) {
        let _ = self.close_on_peer();
    }
}
