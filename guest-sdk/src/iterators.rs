//! Iterators over range and history query results, fetched from the peer in batches.

use std::marker::PhantomData;

use ccvm_proto::protos::{QueryResponse, QueryResponseMetadata, QueryStateClose, QueryStateNext};
use ccvm_proto::queryresult::Kv;
use ccvm_proto::{Message, MessageType};

use crate::error::ShimError;
use crate::shim::{PeerCall, request};

pub use ccvm_proto::queryresult::KeyModification;

/// Where a paginated query stopped.
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # let mut ledger = MockLedger::new("assets");
/// # for key in ["a", "b", "c"] {
/// #     ledger.set_state(key, "1");
/// # }
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// let mut bookmark = String::new();
/// let mut pages = Vec::new();
/// loop {
///     let (page, info) = stub.get_state_by_range_with_pagination("", "", 2, &bookmark)?;
///     pages.push(page.count());
///     if info.bookmark.is_empty() || info.fetched_records_count < 2 {
///         break;
///     }
///     bookmark = info.bookmark;
/// }
/// assert_eq!(pages, [2, 1]);
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    /// How many records the page holds.
    pub fetched_records_count: i32,
    /// Pass this to the next call to continue after this page; empty at the end.
    pub bookmark: String,
}

impl PageInfo {
    /// No records, and no bookmark to continue at.
    pub(crate) fn empty() -> Self {
        Self {
            fetched_records_count: 0,
            bookmark: String::new(),
        }
    }
}

/// Results of a query, fetched batch by batch; the peer's iterator is closed on drop.
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # let mut ledger = MockLedger::new("assets");
/// # for key in ["a", "b", "c"] {
/// #     ledger.set_state(key, "1");
/// # }
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// for kv in stub.get_state_by_range("", "")? {
///     let kv = kv?;
///     println!("{} = {}", kv.key, String::from_utf8_lossy(&kv.value));
/// }
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
pub struct ResultIterator<'a, T> {
    peer: &'a dyn PeerCall,
    channel_id: String,
    tx_id: String,
    batch: QueryResponse,
    next: usize,
    item: PhantomData<T>,
}

/// Keys and values of a range query.
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # let mut ledger = MockLedger::new("assets");
/// # for key in ["a", "b", "c"] {
/// #     ledger.set_state(key, "1");
/// # }
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// let keys: Vec<String> = stub
///     .get_state_by_range("a", "")?
///     .map(|kv| kv.map(|kv| kv.key))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(keys, ["a", "b", "c"]);
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
pub type StateIterator<'a> = ResultIterator<'a, Kv>;
/// Changes to a key, newest first.
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # let mut ledger = MockLedger::new("assets");
/// # ledger.run(|stub| stub.put_state("color", "red"));
/// # ledger.run(|stub| stub.del_state("color"));
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// let deleted: Vec<bool> = stub
///     .get_history_for_key("color")?
///     .map(|change| change.map(|change| change.is_delete))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(deleted, [true, false], "newest first");
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
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
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # for key in ["a", "b", "c"] {
    /// #     ledger.set_state(key, "1");
    /// # }
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let mut keys = stub.get_state_by_range("", "")?;
    /// let first = keys.next().transpose()?;
    /// assert_eq!(first.map(|kv| kv.key), Some("a".to_owned()));
    /// keys.close()?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
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
