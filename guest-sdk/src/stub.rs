//! The stub: a chaincode's view of its transaction and the ledger, with Fabric's calls.

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

use ccvm_proto::common::{ChannelHeader, Header, SignatureHeader};
use ccvm_proto::protos::{
    ChaincodeEvent, ChaincodeId, ChaincodeInput, ChaincodeMessage, ChaincodeProposalPayload,
    ChaincodeSpec, DelState, GetHistoryForKey, GetQueryResult, GetState, GetStateByRange,
    GetStateMetadata, GetStateMultiple, GetStateMultipleResult, Proposal, PurgePrivateState,
    PutState, PutStateMetadata, QueryMetadata, QueryResponse, SignedProposal, StateMetadata,
    StateMetadataResult,
};
use ccvm_proto::{Message, MessageType, Refusal, Timestamp};

use crate::batch::WriteBatch;
use crate::chaincode::Response;
use crate::composite::{MAX_UNICODE_RUNE, create_composite_key};
use crate::error::ShimError;
use crate::iterators::{HistoryIterator, PageInfo, ResultIterator, StateIterator};
use crate::shim::{PeerCall, PeerFeatures, Transaction, request};

/// The metadata key of a key-level endorsement policy, as Fabric names it.
const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// One transaction's access to its arguments, its proposal and the ledger.
///
/// Reads see the state committed before the transaction, not its own writes; writes become
/// the transaction's write set, applied when it commits. Every call blocks until the peer
/// answers, but for writes held back in a write batch ([`Stub::start_write_batch`]).
///
/// ```no_run
/// use ccvm_guest_sdk::{ShimError, Stub, create_composite_key};
///
/// /// Moves `amount` from one account to another, recording the transfer under a composite key.
/// fn transfer(stub: &mut Stub<'_>, from: &str, to: &str, amount: u64) -> Result<(), ShimError> {
///     let balance = |key: &str| -> Result<u64, ShimError> {
///         let stored = stub.get_state(key)?.unwrap_or_default();
///         Ok(String::from_utf8_lossy(&stored).parse().unwrap_or(0))
///     };
///     let (left, right) = (balance(from)?, balance(to)?);
///     if left < amount {
///         return Err(ShimError::InvalidArgument(format!("{from} holds only {left}")));
///     }
///     stub.put_state(from, (left - amount).to_string())?;
///     stub.put_state(to, (right + amount).to_string())?;
///     let record = create_composite_key("transfer", &[from, to, stub.tx_id()])?;
///     stub.put_state(&record, amount.to_string())?;
///     stub.set_event("Transferred", record.into_bytes())
/// }
/// ```
pub struct Stub<'a> {
    peer: &'a dyn PeerCall,
    channel_id: String,
    tx_id: String,
    args: Vec<Vec<u8>>,
    decorations: HashMap<String, Vec<u8>>,
    signed_proposal: Option<SignedProposal>,
    creator: Vec<u8>,
    transient: HashMap<String, Vec<u8>>,
    timestamp: Option<Timestamp>,
    event: Option<ChaincodeEvent>,
    peer_features: PeerFeatures,
    write_batch: RefCell<Option<WriteBatch>>,
}

fn malformed(what: &str) -> impl FnOnce(prost::DecodeError) -> ShimError + '_ {
    move |e| ShimError::Protocol(format!("malformed {what}: {e}"))
}

impl<'a> Stub<'a> {
    pub(crate) fn new(
        peer: &'a dyn PeerCall,
        transaction: &Transaction,
    ) -> Result<Self, ShimError> {
        let ChaincodeInput {
            args, decorations, ..
        } = transaction.input.clone();
        let mut stub = Self {
            peer,
            channel_id: transaction.channel_id.clone(),
            tx_id: transaction.tx_id.clone(),
            args,
            decorations,
            signed_proposal: transaction.proposal.clone(),
            creator: Vec::new(),
            transient: HashMap::new(),
            timestamp: None,
            event: None,
            peer_features: transaction.peer_features,
            write_batch: RefCell::default(),
        };
        if let Some(signed) = &transaction.proposal {
            let proposal = Proposal::decode(signed.proposal_bytes.as_slice())
                .map_err(malformed("proposal"))?;
            let header =
                Header::decode(proposal.header.as_slice()).map_err(malformed("proposal header"))?;
            let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
                .map_err(malformed("channel header"))?;
            let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
                .map_err(malformed("signature header"))?;
            let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice())
                .map_err(malformed("proposal payload"))?;
            stub.timestamp = channel_header.timestamp;
            stub.creator = signature_header.creator;
            stub.transient = payload.transient_map;
        }
        Ok(stub)
    }

    pub(crate) fn take_event(&mut self) -> Option<ChaincodeEvent> {
        self.event.take()
    }

    fn call(&self, kind: MessageType, payload: Vec<u8>) -> Result<Vec<u8>, ShimError> {
        request(self.peer, &self.channel_id, &self.tx_id, kind, payload)
    }

    fn query(&self, kind: MessageType, payload: Vec<u8>) -> Result<QueryResponse, ShimError> {
        QueryResponse::decode(self.call(kind, payload)?.as_slice())
            .map_err(malformed("query response"))
    }

    // --- the transaction ---

    /// All arguments as bytes; the first is by convention the function name.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::new(&["create", "asset1"]), |stub| {
    /// assert_eq!(stub.args(), [b"create".to_vec(), b"asset1".to_vec()]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn args(&self) -> &[Vec<u8>] {
        &self.args
    }

    /// All arguments as (lossy) UTF-8 strings.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::new(&["create", "asset1"]), |stub| {
    /// assert_eq!(stub.string_args(), ["create", "asset1"]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn string_args(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    /// The first argument as the function name and the rest as its parameters.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::new(&["create", "asset1"]), |stub| {
    /// let (function, params) = stub.function_and_parameters();
    /// assert_eq!((function.as_str(), params.as_slice()), ("create", &["asset1".to_owned()][..]));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn function_and_parameters(&self) -> (String, Vec<String>) {
        let mut args = self.string_args().into_iter();
        (args.next().unwrap_or_default(), args.collect())
    }

    /// Decorations the peer attached to the input.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// // Set by the peer's decoration plugins, if it has any; the mock ledger has none.
    /// let tenant = stub.decorations().get("tenant");
    /// assert_eq!(tenant, None);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn decorations(&self) -> &HashMap<String, Vec<u8>> {
        &self.decorations
    }

    /// The transaction id.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let receipt = format!("receipt~{}", stub.tx_id());
    /// stub.put_state(&receipt, "paid")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// The channel the transaction runs on.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// assert_eq!(stub.channel_id(), "mychannel");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    /// The submitter: an encoded `msp.SerializedIdentity` (MSP id and PEM certificate).
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::ShimError;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().creator("Org2MSP", b""), |stub| {
    /// let creator = SerializedIdentity::decode(stub.creator())
    ///     .map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
    /// assert_eq!(creator.mspid, "Org2MSP");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn creator(&self) -> &[u8] {
        &self.creator
    }

    /// Transient data of the proposal: passed to the chaincode, never written to the ledger.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().transient("price", "42"), |stub| {
    /// let price = stub.transient().get("price").cloned().unwrap_or_default();
    /// assert_eq!(price, b"42");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn transient(&self) -> &HashMap<String, Vec<u8>> {
        &self.transient
    }

    /// When the client created the transaction.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::proto::Timestamp;
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().at(Timestamp { seconds: 1_700_000_000, nanos: 0 }), |stub| {
    /// let seconds = stub.tx_timestamp().map(|t| t.seconds);
    /// assert_eq!(seconds, Some(1_700_000_000));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn tx_timestamp(&self) -> Option<Timestamp> {
        self.timestamp
    }

    /// The client's signed proposal.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let proposal = stub.signed_proposal().map(|p| p.proposal_bytes.len());
    /// assert!(proposal.is_some_and(|bytes| bytes > 0));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn signed_proposal(&self) -> Option<&SignedProposal> {
        self.signed_proposal.as_ref()
    }

    /// Emits an event with the transaction; a later call replaces an earlier one.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.set_event("AssetCreated", b"asset1".to_vec())?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// let event = outcome.event.expect("the transaction set an event");
    /// assert_eq!(event.event_name, "AssetCreated");
    /// ```
    ///
    /// # Errors
    /// [`ShimError::InvalidArgument`] for an empty name.
    pub fn set_event(&mut self, name: &str, payload: Vec<u8>) -> Result<(), ShimError> {
        if name.is_empty() {
            return Err(ShimError::InvalidArgument(
                "event name must not be empty".to_owned(),
            ));
        }
        self.event = Some(ChaincodeEvent {
            event_name: name.to_owned(),
            payload,
            ..Default::default()
        });
        Ok(())
    }

    // --- write batches ---

    /// Holds back the transaction's writes from here on (puts, deletes, purges and metadata,
    /// public and private) and sends them together when [`Self::finish_write_batch`] is called
    /// or the transaction ends: one WRITE_BATCH_STATE request for up to as many records as the
    /// peer takes (1,000 on a ccvm peer and on Fabric 3.1's default), instead of a request per
    /// write. Of several writes to a key's value, or to one entry of its metadata, the last is
    /// sent.
    ///
    /// A held-back write returns at once, so the peer's refusal of it (a write from a call on
    /// another channel, a collection the creator may not write) fails the batch instead: the
    /// transaction then ends in error. An empty key is refused at once. On a peer that takes no
    /// batched writes (Fabric before 3.1) this does nothing, and each write is sent as it is
    /// made.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.start_write_batch();
    /// for n in 0..500 {
    ///     stub.put_state(&format!("asset{n:03}"), "new")?;
    /// }
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// // Sent as the transaction ended.
    /// assert_eq!(ledger.state("asset499"), Some(b"new".to_vec()));
    /// ```
    pub fn start_write_batch(&self) {
        if let Some(records_per_request) = self.peer_features.write_batch_records {
            self.write_batch
                .borrow_mut()
                .get_or_insert_with(|| WriteBatch::new(records_per_request));
        }
    }

    /// Sends the writes held back since [`Self::start_write_batch`] and ends the batch: later
    /// writes are sent as they are made, until a batch is started again. Does nothing when no
    /// batch is open.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.start_write_batch();
    /// stub.put_state("color", "blue")?;
    /// stub.put_state("size", "5")?;
    /// stub.finish_write_batch()?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// # assert_eq!(ledger.state("size"), Some(b"5".to_vec()));
    /// ```
    ///
    /// # Errors
    /// The peer's refusal of a record, or a lost connection; the records of the batch's later
    /// requests are then not sent.
    pub fn finish_write_batch(&self) -> Result<(), ShimError> {
        let Some(batch) = self.write_batch.borrow_mut().take() else {
            return Ok(());
        };
        for request in batch.into_requests() {
            self.call(MessageType::WriteBatchState, request.encode_to_vec())?;
        }
        Ok(())
    }

    /// The open write batch, if any, that a write of `key` goes to; an empty key is refused
    /// here, as the peer would refuse it.
    fn open_batch(&self, key: &str) -> Result<RefMut<'_, Option<WriteBatch>>, ShimError> {
        let batch = self.write_batch.borrow_mut();
        if batch.is_some() && key.is_empty() {
            return Err(ShimError::InvalidArgument(
                Refusal::EmptyKey.text().to_owned(),
            ));
        }
        Ok(batch)
    }

    // --- public state ---

    /// The committed value of `key`, `None` if absent.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// assert_eq!(stub.get_state("color")?, Some(b"blue".to_vec()));
    /// assert_eq!(stub.get_state("size")?, None);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_state(&self, key: &str) -> Result<Option<Vec<u8>>, ShimError> {
        self.get(key, "")
    }

    fn get(&self, key: &str, collection: &str) -> Result<Option<Vec<u8>>, ShimError> {
        let value = self.call(
            MessageType::GetState,
            GetState {
                key: key.to_owned(),
                collection: collection.to_owned(),
            }
            .encode_to_vec(),
        )?;
        Ok((!value.is_empty()).then_some(value))
    }

    /// The committed values of several keys, in order. A peer that said in READY it reads
    /// several keys at once (Fabric 3.1, ccvm) is asked in as few requests as its batch size
    /// allows; any other is asked one key at a time, as Fabric's shims ask it.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # ledger.set_state("size", "5");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let values = stub.get_multiple_states(&["color", "size", "shape"])?;
    /// assert_eq!(values, [Some(b"blue".to_vec()), Some(b"5".to_vec()), None]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_multiple_states(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, ShimError> {
        let Some(batch) = self.peer_features.get_multiple_keys else {
            return keys.iter().map(|key| self.get_state(key)).collect();
        };
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(batch) {
            let request = GetStateMultiple {
                keys: chunk.iter().map(|k| (*k).to_owned()).collect(),
                collection: String::new(),
            };
            let result = GetStateMultipleResult::decode(
                self.call(MessageType::GetStateMultiple, request.encode_to_vec())?
                    .as_slice(),
            )
            .map_err(malformed("multiple state result"))?;
            values.extend(
                result
                    .values
                    .into_iter()
                    .map(|v| (!v.is_empty()).then_some(v)),
            );
        }
        Ok(values)
    }

    /// Writes `value` to `key` when the transaction commits.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.put_state("color", "blue")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.state("color"), Some(b"blue".to_vec()));
    /// ```
    ///
    /// # Errors
    /// The peer's error (an empty key, a read-only call), or a lost connection.
    pub fn put_state(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), ShimError> {
        self.put(key, "", value.into())
    }

    fn put(&self, key: &str, collection: &str, value: Vec<u8>) -> Result<(), ShimError> {
        if let Some(batch) = self.open_batch(key)?.as_mut() {
            batch.put(collection, key, value);
            return Ok(());
        }
        let request = PutState {
            key: key.to_owned(),
            value,
            collection: collection.to_owned(),
        };
        self.call(MessageType::PutState, request.encode_to_vec())
            .map(drop)
    }

    /// Deletes `key` when the transaction commits.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.del_state("color")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.state("color"), None);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn del_state(&self, key: &str) -> Result<(), ShimError> {
        self.del(key, "")
    }

    fn del(&self, key: &str, collection: &str) -> Result<(), ShimError> {
        if let Some(batch) = self.open_batch(key)?.as_mut() {
            batch.delete(collection, key);
            return Ok(());
        }
        let request = DelState {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        self.call(MessageType::DelState, request.encode_to_vec())
            .map(drop)
    }

    /// Simple keys in `[start, end)` with their values; an empty `start` runs from the first
    /// simple key and an empty `end` to the last key. As in Fabric's shims, composite keys are
    /// not in a plain range: an empty start is sent as `"\x01"`, past them.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("a", "1");
    /// # ledger.set_state("b", "2");
    /// # ledger.set_state("c", "3");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let keys: Vec<String> = stub
    ///     .get_state_by_range("a", "c")?
    ///     .map(|kv| kv.map(|kv| kv.key))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["a", "b"]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// [`ShimError::InvalidArgument`] for a key that starts with U+0000 (the composite key
    /// namespace), the peer's error, or a lost connection.
    pub fn get_state_by_range(
        &self,
        start: &str,
        end: &str,
    ) -> Result<StateIterator<'a>, ShimError> {
        let start = simple_range(start, end)?;
        self.range(start, end, "", None).map(|(it, _)| it)
    }

    /// One page of at most `page_size` simple keys in `[start, end)`, starting at `bookmark` if
    /// given; an empty `start` as in [`Self::get_state_by_range`].
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("a", "1");
    /// # ledger.set_state("b", "2");
    /// # ledger.set_state("c", "3");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let (first, page) = stub.get_state_by_range_with_pagination("", "", 2, "")?;
    /// assert_eq!((first.count(), page.fetched_records_count), (2, 2));
    /// let (rest, _) = stub.get_state_by_range_with_pagination("", "", 2, &page.bookmark)?;
    /// assert_eq!(rest.count(), 1);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// As [`Self::get_state_by_range`].
    pub fn get_state_by_range_with_pagination(
        &self,
        start: &str,
        end: &str,
        page_size: i32,
        bookmark: &str,
    ) -> Result<(StateIterator<'a>, PageInfo), ShimError> {
        let start = simple_range(start, end)?;
        let page = QueryMetadata {
            page_size,
            bookmark: bookmark.to_owned(),
        };
        let (iterator, info) = self.range(start, end, "", Some(page))?;
        Ok((iterator, info.unwrap_or_else(PageInfo::empty)))
    }

    fn range(
        &self,
        start: &str,
        end: &str,
        collection: &str,
        page: Option<QueryMetadata>,
    ) -> Result<(StateIterator<'a>, Option<PageInfo>), ShimError> {
        let paginated = page.is_some();
        let request = GetStateByRange {
            start_key: start.to_owned(),
            end_key: end.to_owned(),
            collection: collection.to_owned(),
            metadata: page.map(|p| p.encode_to_vec()).unwrap_or_default(),
        };
        let batch = self.query(MessageType::GetStateByRange, request.encode_to_vec())?;
        let iterator = ResultIterator::new(self.peer, &self.channel_id, &self.tx_id, batch);
        let info = if paginated {
            Some(iterator.page_info()?)
        } else {
            None
        };
        Ok((iterator, info))
    }

    /// Composite keys that start with `object_type` and the given leading `attributes`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::create_composite_key;
    /// # let mut ledger = MockLedger::new("assets");
    /// # for (owner, asset) in [("alice", "a1"), ("alice", "a2"), ("bob", "b1")] {
    /// #     ledger.set_state(&create_composite_key("owner", &[owner, asset]).unwrap(), "");
    /// # }
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let owned = stub.get_state_by_partial_composite_key("owner", &["alice"])?;
    /// assert_eq!(owned.count(), 2);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// An invalid key part, the peer's error, or a lost connection.
    pub fn get_state_by_partial_composite_key(
        &self,
        object_type: &str,
        attributes: &[&str],
    ) -> Result<StateIterator<'a>, ShimError> {
        let start = create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        self.range(&start, &end, "", None).map(|(it, _)| it)
    }

    /// One page of a partial composite key query.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::create_composite_key;
    /// # let mut ledger = MockLedger::new("assets");
    /// # for (owner, asset) in [("alice", "a1"), ("alice", "a2"), ("bob", "b1")] {
    /// #     ledger.set_state(&create_composite_key("owner", &[owner, asset]).unwrap(), "");
    /// # }
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let (page, info) =
    ///     stub.get_state_by_partial_composite_key_with_pagination("owner", &[], 2, "")?;
    /// assert_eq!(page.count(), 2);
    /// let (rest, _) =
    ///     stub.get_state_by_partial_composite_key_with_pagination("owner", &[], 2, &info.bookmark)?;
    /// assert_eq!(rest.count(), 1);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// An invalid key part, the peer's error, or a lost connection.
    pub fn get_state_by_partial_composite_key_with_pagination(
        &self,
        object_type: &str,
        attributes: &[&str],
        page_size: i32,
        bookmark: &str,
    ) -> Result<(StateIterator<'a>, PageInfo), ShimError> {
        let start = create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        let page = QueryMetadata {
            page_size,
            bookmark: bookmark.to_owned(),
        };
        let (iterator, info) = self.range(&start, &end, "", Some(page))?;
        Ok((iterator, info.unwrap_or_else(PageInfo::empty)))
    }

    /// A rich query on the state database (JSON selector). ccvm's store answers with an error.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let selector = r#"{"selector":{"color":"blue"}}"#;
    /// assert!(stub.get_query_result(selector).is_err(), "no rich queries on this store");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_query_result(&self, query: &str) -> Result<StateIterator<'a>, ShimError> {
        let request = GetQueryResult {
            query: query.to_owned(),
            ..Default::default()
        };
        let batch = self.query(MessageType::GetQueryResult, request.encode_to_vec())?;
        Ok(ResultIterator::new(
            self.peer,
            &self.channel_id,
            &self.tx_id,
            batch,
        ))
    }

    /// Every committed change to `key`, newest first.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_state("color", "red"));
    /// # ledger.run(|stub| stub.put_state("color", "blue"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let values: Vec<Vec<u8>> = stub
    ///     .get_history_for_key("color")?
    ///     .map(|change| change.map(|change| change.value))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(values, [b"blue".to_vec(), b"red".to_vec()]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_history_for_key(&self, key: &str) -> Result<HistoryIterator<'a>, ShimError> {
        let batch = self.query(
            MessageType::GetHistoryForKey,
            GetHistoryForKey {
                key: key.to_owned(),
            }
            .encode_to_vec(),
        )?;
        Ok(ResultIterator::new(
            self.peer,
            &self.channel_id,
            &self.tx_id,
            batch,
        ))
    }

    // --- metadata ---

    /// All metadata entries of a key (`collection` empty for public state).
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # ledger.run(|stub| stub.put_state_metadata("", "color", "owner", b"alice".to_vec()));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let metadata = stub.get_state_metadata("", "color")?;
    /// assert_eq!(metadata["owner"], b"alice");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_state_metadata(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<HashMap<String, Vec<u8>>, ShimError> {
        let request = GetStateMetadata {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        let result = StateMetadataResult::decode(
            self.call(MessageType::GetStateMetadata, request.encode_to_vec())?
                .as_slice(),
        )
        .map_err(malformed("state metadata"))?;
        Ok(result
            .entries
            .into_iter()
            .map(|e| (e.metakey, e.value))
            .collect())
    }

    /// Sets one metadata entry of a key.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.put_state_metadata("", "color", "owner", b"alice".to_vec())?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.state_metadata("color")["owner"], b"alice");
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn put_state_metadata(
        &self,
        collection: &str,
        key: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<(), ShimError> {
        let metadata = StateMetadata {
            metakey: name.to_owned(),
            value,
        };
        if let Some(batch) = self.open_batch(key)?.as_mut() {
            batch.put_metadata(collection, key, metadata);
            return Ok(());
        }
        let request = PutStateMetadata {
            key: key.to_owned(),
            collection: collection.to_owned(),
            metadata: Some(metadata),
        };
        self.call(MessageType::PutStateMetadata, request.encode_to_vec())
            .map(drop)
    }

    /// The key-level endorsement policy of a public key.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # ledger.run(|stub| stub.set_state_validation_parameter("color", b"policy".to_vec()));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let policy = stub.get_state_validation_parameter("color")?;
    /// assert_eq!(policy, Some(b"policy".to_vec()));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_state_validation_parameter(&self, key: &str) -> Result<Option<Vec<u8>>, ShimError> {
        Ok(self
            .get_state_metadata("", key)?
            .remove(VALIDATION_PARAMETER))
    }

    /// Sets the key-level endorsement policy of a public key.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// // On a peer: an encoded `common.SignaturePolicyEnvelope`.
    /// stub.set_state_validation_parameter("color", b"policy".to_vec())?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.state_metadata("color")["VALIDATION_PARAMETER"], b"policy");
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn set_state_validation_parameter(
        &self,
        key: &str,
        policy: Vec<u8>,
    ) -> Result<(), ShimError> {
        self.put_state_metadata("", key, VALIDATION_PARAMETER, policy)
    }

    // --- private data ---

    /// The committed private value of `key` in `collection`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// assert_eq!(stub.get_private_data("secrets", "pin")?, Some(b"1234".to_vec()));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_private_data(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ShimError> {
        require_collection(collection)?;
        self.get(key, collection)
    }

    /// The SHA-256 of a private value, readable by peers outside the collection too.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let hash = stub.get_private_data_hash("secrets", "pin")?;
    /// assert_eq!(hash.map(|sha256| sha256.len()), Some(32));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn get_private_data_hash(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, ShimError> {
        require_collection(collection)?;
        let request = GetState {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        let hash = self.call(MessageType::GetPrivateDataHash, request.encode_to_vec())?;
        Ok((!hash.is_empty()).then_some(hash))
    }

    /// Writes a private value; only its hash goes on the chain.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.put_private_data("secrets", "pin", "1234")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.private_data("secrets", "pin"), Some(b"1234".to_vec()));
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn put_private_data(
        &self,
        collection: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), ShimError> {
        require_collection(collection)?;
        self.put(key, collection, value.into())
    }

    /// Deletes a private value.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.del_private_data("secrets", "pin")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.private_data("secrets", "pin"), None);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn del_private_data(&self, collection: &str, key: &str) -> Result<(), ShimError> {
        require_collection(collection)?;
        self.del(key, collection)
    }

    /// Deletes a private value and purges it from the private store.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// stub.purge_private_data("secrets", "pin")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.private_data("secrets", "pin"), None);
    /// ```
    ///
    /// # Errors
    /// The peer's error, or a lost connection.
    pub fn purge_private_data(&self, collection: &str, key: &str) -> Result<(), ShimError> {
        require_collection(collection)?;
        if let Some(batch) = self.open_batch(key)?.as_mut() {
            batch.purge(collection, key);
            return Ok(());
        }
        let request = PurgePrivateState {
            key: key.to_owned(),
            collection: collection.to_owned(),
        };
        self.call(MessageType::PurgePrivateData, request.encode_to_vec())
            .map(drop)
    }

    /// Simple private keys in `[start, end)` of a collection; an empty `start` as in
    /// [`Self::get_state_by_range`].
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// # ledger.run(|stub| stub.put_private_data("secrets", "puk", "5678"));
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let pins = stub.get_private_data_by_range("secrets", "", "")?;
    /// assert_eq!(pins.count(), 2);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// As [`Self::get_state_by_range`], and for an empty collection name.
    pub fn get_private_data_by_range(
        &self,
        collection: &str,
        start: &str,
        end: &str,
    ) -> Result<StateIterator<'a>, ShimError> {
        require_collection(collection)?;
        let start = simple_range(start, end)?;
        self.range(start, end, collection, None).map(|(it, _)| it)
    }

    // --- other chaincodes ---

    /// Calls another chaincode in this transaction. On the same channel (`channel` empty) it
    /// shares this transaction's reads and writes; on another channel it may only read.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::{Chaincode, Response, Stub};
    /// # let mut ledger = MockLedger::new("assets");
    /// # struct Pricing;
    /// # impl Chaincode for Pricing {
    /// #     fn invoke(&self, _: &mut Stub<'_>) -> Response {
    /// #         Response::success("42")
    /// #     }
    /// # }
    /// # ledger.add_chaincode("pricing", Pricing);
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// let price = stub.invoke_chaincode("pricing", &[b"price".as_slice(), b"asset1"], "")?;
    /// assert_eq!(price.payload, b"42");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// The callee's failure, the peer's error, or a lost connection.
    pub fn invoke_chaincode(
        &self,
        name: &str,
        args: &[&[u8]],
        channel: &str,
    ) -> Result<Response, ShimError> {
        let target = if channel.is_empty() {
            name.to_owned()
        } else {
            format!("{name}/{channel}")
        };
        let spec = ChaincodeSpec {
            chaincode_id: Some(ChaincodeId {
                name: target,
                ..Default::default()
            }),
            input: Some(ChaincodeInput {
                args: args.iter().map(|a| a.to_vec()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = self.call(MessageType::InvokeChaincode, spec.encode_to_vec())?;
        let completed =
            ChaincodeMessage::decode(answer.as_slice()).map_err(malformed("chaincode message"))?;
        if completed.r#type != MessageType::Completed as i32 {
            return Err(ShimError::Peer(
                String::from_utf8_lossy(&completed.payload).into_owned(),
            ));
        }
        let response = ccvm_proto::protos::Response::decode(completed.payload.as_slice())
            .map_err(malformed("response"))?;
        Ok(Response {
            status: response.status,
            message: response.message,
            payload: response.payload,
        })
    }
}

fn require_collection(collection: &str) -> Result<(), ShimError> {
    if collection.is_empty() {
        Err(ShimError::InvalidArgument(
            Refusal::EmptyCollection.text().to_owned(),
        ))
    } else {
        Ok(())
    }
}

/// What Fabric's shims send for an empty range start: the first simple key, past the composite
/// keys (which begin with U+0000).
const EMPTY_KEY_SUBSTITUTE: &str = "\x01";

/// The start key to send for a range of simple keys `[start, end)`, refusing keys in the
/// composite key namespace as Fabric's shims do.
fn simple_range<'k>(start: &'k str, end: &str) -> Result<&'k str, ShimError> {
    for key in [start, end] {
        if key.starts_with('\0') {
            return Err(ShimError::InvalidArgument(format!(
                "first character of the key [{key}] contains a null character which is not allowed"
            )));
        }
    }
    Ok(if start.is_empty() {
        EMPTY_KEY_SUBSTITUTE
    } else {
        start
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ccvm_proto::protos::{GetState, WriteBatchState};

    use super::*;

    /// A peer that answers every GET_STATE and GET_STATE_MULTIPLE with `value of KEY`, takes
    /// every write (but batches, when it is to refuse them), and records the requests with the
    /// keys or records each carried.
    #[derive(Default)]
    struct RecordingPeer {
        requests: Mutex<Vec<(MessageType, usize)>>,
        refuses_batches: bool,
    }

    impl RecordingPeer {
        fn record(&self, kind: MessageType, count: usize) {
            self.requests
                .lock()
                .expect("not poisoned")
                .push((kind, count));
        }

        fn requests(&self) -> Vec<(MessageType, usize)> {
            self.requests.lock().expect("not poisoned").clone()
        }
    }

    impl PeerCall for RecordingPeer {
        fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
            let kind = MessageType::try_from(request.r#type).unwrap_or(MessageType::Undefined);
            let payload = match kind {
                MessageType::GetState => {
                    let key = GetState::decode(request.payload.as_slice())
                        .map_err(malformed("GetState"))?
                        .key;
                    self.record(kind, 1);
                    format!("value of {key}").into_bytes()
                }
                MessageType::GetStateMultiple => {
                    let keys = GetStateMultiple::decode(request.payload.as_slice())
                        .map_err(malformed("GetStateMultiple"))?
                        .keys;
                    self.record(kind, keys.len());
                    GetStateMultipleResult {
                        values: keys
                            .iter()
                            .map(|key| format!("value of {key}").into_bytes())
                            .collect(),
                    }
                    .encode_to_vec()
                }
                MessageType::PutState | MessageType::DelState => {
                    self.record(kind, 1);
                    Vec::new()
                }
                MessageType::WriteBatchState => {
                    let records = WriteBatchState::decode(request.payload.as_slice())
                        .map_err(malformed("WriteBatchState"))?
                        .rec;
                    self.record(kind, records.len());
                    if self.refuses_batches {
                        return Ok(ChaincodeMessage {
                            r#type: MessageType::Error as i32,
                            payload: b"access denied: no writes here".to_vec(),
                            ..request
                        });
                    }
                    Vec::new()
                }
                other => return Err(ShimError::Protocol(format!("unexpected {other:?}"))),
            };
            Ok(ChaincodeMessage {
                r#type: MessageType::Response as i32,
                payload,
                txid: request.txid,
                channel_id: request.channel_id,
                ..Default::default()
            })
        }
    }

    fn transaction(features: PeerFeatures) -> Transaction {
        Transaction {
            is_init: false,
            channel_id: "ch".to_owned(),
            tx_id: "tx".to_owned(),
            input: ChaincodeInput::default(),
            proposal: None,
            peer_features: features,
        }
    }

    const BATCHING: PeerFeatures = PeerFeatures {
        get_multiple_keys: None,
        write_batch_records: Some(100),
    };

    #[test]
    fn a_batch_is_sent_to_a_peer_that_takes_batches_in_requests_of_its_size()
    -> Result<(), ShimError> {
        let peer = RecordingPeer::default();
        let stub = Stub::new(&peer, &transaction(BATCHING))?;
        stub.start_write_batch();
        for n in 0..250 {
            stub.put_state(&format!("k{n}"), "v")?;
        }
        stub.del_state("k0")?;
        assert_eq!(peer.requests(), [], "held back until the batch is finished");
        stub.finish_write_batch()?;
        assert_eq!(
            peer.requests(),
            [
                (MessageType::WriteBatchState, 100),
                (MessageType::WriteBatchState, 100),
                (MessageType::WriteBatchState, 50),
            ],
            "the delete replaced the put of k0"
        );
        stub.put_state("after", "v")?;
        assert_eq!(
            peer.requests().last(),
            Some(&(MessageType::PutState, 1)),
            "a finished batch holds back nothing more"
        );
        Ok(())
    }

    #[test]
    fn a_peer_that_takes_no_batches_is_sent_each_write_as_it_is_made() -> Result<(), ShimError> {
        let peer = RecordingPeer::default();
        let stub = Stub::new(&peer, &transaction(PeerFeatures::default()))?;
        stub.start_write_batch();
        stub.put_state("a", "1")?;
        stub.del_state("b")?;
        assert_eq!(
            peer.requests(),
            [(MessageType::PutState, 1), (MessageType::DelState, 1)]
        );
        stub.finish_write_batch()?;
        assert_eq!(peer.requests().len(), 2, "nothing was held back to send");
        Ok(())
    }

    #[test]
    fn an_empty_key_is_refused_when_written_to_a_batch() -> Result<(), ShimError> {
        let peer = RecordingPeer::default();
        let stub = Stub::new(&peer, &transaction(BATCHING))?;
        stub.start_write_batch();
        let refused = stub.put_state("", "v").expect_err("an empty key");
        assert!(
            matches!(&refused, ShimError::InvalidArgument(text) if text == Refusal::EmptyKey.text()),
            "{refused:?}"
        );
        stub.finish_write_batch()?;
        assert_eq!(peer.requests(), [], "nothing was held back");
        Ok(())
    }

    /// Writes two keys in a batch it leaves open, and answers `status`.
    struct Batching {
        status: i32,
    }

    impl crate::Chaincode for Batching {
        fn invoke(&self, stub: &mut Stub<'_>) -> Response {
            stub.start_write_batch();
            let written = stub
                .put_state("a", "1")
                .and_then(|()| stub.put_state("b", "2"));
            match written {
                Ok(()) => Response {
                    status: self.status,
                    message: String::new(),
                    payload: Vec::new(),
                },
                Err(e) => Response::error(e.to_string()),
            }
        }
    }

    #[test]
    fn a_transaction_sends_its_open_batch_before_it_completes_unless_it_failed() {
        let peer = RecordingPeer::default();
        let completed =
            crate::run_transaction(&Batching { status: 200 }, transaction(BATCHING), &peer);
        assert_eq!(completed.r#type, MessageType::Completed as i32);
        assert_eq!(peer.requests(), [(MessageType::WriteBatchState, 2)]);

        let peer = RecordingPeer::default();
        let failed =
            crate::run_transaction(&Batching { status: 500 }, transaction(BATCHING), &peer);
        assert_eq!(failed.r#type, MessageType::Completed as i32);
        assert_eq!(
            peer.requests(),
            [],
            "a failed transaction's writes are dropped"
        );
    }

    #[test]
    fn a_refused_batch_fails_the_transaction_with_the_peers_reason() {
        let peer = RecordingPeer {
            refuses_batches: true,
            ..RecordingPeer::default()
        };
        let answer =
            crate::run_transaction(&Batching { status: 200 }, transaction(BATCHING), &peer);
        assert_eq!(answer.r#type, MessageType::Error as i32);
        let text = String::from_utf8_lossy(&answer.payload);
        assert!(
            text.contains("the write batch was refused")
                && text.contains("access denied: no writes here"),
            "{text}"
        );
    }

    fn read_keys(
        features: PeerFeatures,
        count: usize,
    ) -> Result<Vec<(MessageType, usize)>, ShimError> {
        let peer = RecordingPeer::default();
        let stub = Stub::new(&peer, &transaction(features))?;
        let keys: Vec<String> = (0..count).map(|n| format!("k{n}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = stub.get_multiple_states(&keys)?;
        let expected: Vec<Option<Vec<u8>>> = keys
            .iter()
            .map(|key| Some(format!("value of {key}").into_bytes()))
            .collect();
        assert_eq!(values, expected, "values come back in key order");
        Ok(peer.requests())
    }

    #[test]
    fn a_peer_that_did_not_offer_multiple_reads_is_asked_one_key_at_a_time() -> Result<(), ShimError>
    {
        assert_eq!(
            read_keys(PeerFeatures::default(), 3)?,
            vec![(MessageType::GetState, 1); 3]
        );
        Ok(())
    }

    #[test]
    fn a_peer_that_offered_multiple_reads_is_asked_in_batches_of_its_size() -> Result<(), ShimError>
    {
        let features = PeerFeatures {
            get_multiple_keys: Some(100),
            ..PeerFeatures::default()
        };
        assert_eq!(
            read_keys(features, 250)?,
            vec![
                (MessageType::GetStateMultiple, 100),
                (MessageType::GetStateMultiple, 100),
                (MessageType::GetStateMultiple, 50),
            ]
        );
        Ok(())
    }
}
