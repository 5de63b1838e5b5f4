//! Serving the state requests a chaincode makes during a transaction.
//!
//! Each function decodes one request payload, acts on the transaction's simulator and returns the
//! RESPONSE payload; an `Err` becomes an ERROR reply with the same transaction id.

use ccvm_proto::Message;
use ccvm_proto::protos::{
    ChaincodeMessage, DelState, GetHistoryForKey, GetState, GetStateByRange, GetStateMetadata,
    GetStateMultiple, GetStateMultipleResult, PurgePrivateState, PutState, PutStateMetadata,
    QueryMetadata, QueryResponse, QueryStateClose, QueryStateNext, StateMetadata,
    StateMetadataResult, WriteBatchState, write_record,
};
use ccvm_proto::{MessageType, Refusal};

use super::queries::QueryIterator;
use super::tx_context::TxContext;
use crate::ledger::{LedgerError, RangeScan};

/// Why a state request failed. The chaincode is sent [`RequestError::for_chaincode`] as the
/// ERROR payload, which leads with the [`Refusal`] kind's fixed text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The payload is not the message its type names.
    #[error("{}", Refusal::Malformed.with(.0))]
    Malformed(#[from] prost::DecodeError),
    /// A key was empty.
    #[error("{}", Refusal::EmptyKey.text())]
    EmptyKey,
    /// A private data request named no collection.
    #[error("{}", Refusal::EmptyCollection.text())]
    EmptyCollection,
    /// A write in a chaincode called from another channel, which may only read.
    #[error("{}", Refusal::ReadOnly.text())]
    ReadOnly,
    /// A WRITE_BATCH_STATE record of no type.
    #[error("{}", Refusal::UntypedRecord.text())]
    UntypedRecord,
    /// A PUT_STATE_METADATA without its metadata.
    #[error("{}", Refusal::NoMetadata.text())]
    NoMetadata,
    /// A paginated range over private data.
    #[error("{}", Refusal::PrivatePagination.text())]
    PrivatePagination,
    /// QUERY_STATE_NEXT for an iterator the transaction does not have open.
    #[error("{}", Refusal::UnknownIterator.with(.0))]
    UnknownIterator(String),
    /// GET_QUERY_RESULT: the state store has no query language.
    #[error("{}", Refusal::RichQueryUnsupported.text())]
    RichQuery,
    /// A message type that is not a state request.
    #[error("{}", Refusal::NotAStateRequest.with(.0.as_str_name()))]
    NotAStateRequest(MessageType),
    /// The ledger refused the request or failed underneath it.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl RequestError {
    /// The ERROR payload's text: the reason itself, but only [`LedgerError::for_chaincode`]'s
    /// account of a failing store.
    pub(crate) fn for_chaincode(&self) -> String {
        match self {
            Self::Ledger(e) => e.for_chaincode(),
            refusal => refusal.to_string(),
        }
    }
}

/// Serves one state request of a running transaction.
pub(crate) fn serve(
    context: &TxContext,
    kind: MessageType,
    message: &ChaincodeMessage,
) -> Result<Vec<u8>, RequestError> {
    let payload = message.payload.as_slice();
    match kind {
        MessageType::GetState => {
            let req: GetState = decode(payload)?;
            get(context, &req.collection, &req.key).map(Option::unwrap_or_default)
        }
        MessageType::GetStateMultiple => {
            let req: GetStateMultiple = decode(payload)?;
            let values = req
                .keys
                .iter()
                .map(|key| get(context, &req.collection, key).map(Option::unwrap_or_default))
                .collect::<Result<_, _>>()?;
            Ok(GetStateMultipleResult { values }.encode_to_vec())
        }
        MessageType::GetPrivateDataHash => {
            let req: GetState = decode(payload)?;
            require_collection(&req.collection)?;
            let hash = context.simulator().get_private_data_hash(
                &context.tx.namespace,
                &req.collection,
                &req.key,
            )?;
            Ok(hash.unwrap_or_default())
        }
        MessageType::PutState => {
            let req: PutState = decode(payload)?;
            put(context, &req.collection, &req.key, req.value)?;
            Ok(Vec::new())
        }
        MessageType::DelState => {
            let req: DelState = decode(payload)?;
            delete(context, &req.collection, &req.key)?;
            Ok(Vec::new())
        }
        MessageType::PurgePrivateData => {
            let req: PurgePrivateState = decode(payload)?;
            purge(context, &req.collection, &req.key)?;
            Ok(Vec::new())
        }
        MessageType::WriteBatchState => {
            let req: WriteBatchState = decode(payload)?;
            for record in req.rec {
                match record.r#type() {
                    write_record::Type::PutState => {
                        put(context, &record.collection, &record.key, record.value)?
                    }
                    write_record::Type::DelState => {
                        delete(context, &record.collection, &record.key)?
                    }
                    write_record::Type::PurgePrivateData => {
                        purge(context, &record.collection, &record.key)?
                    }
                    write_record::Type::PutStateMetadata => {
                        let metadata = record.metadata.unwrap_or_default();
                        put_metadata(context, &record.collection, &record.key, metadata)?;
                    }
                    write_record::Type::Undefined => {
                        return Err(RequestError::UntypedRecord);
                    }
                }
            }
            Ok(Vec::new())
        }
        MessageType::GetStateMetadata => {
            let req: GetStateMetadata = decode(payload)?;
            let entries = context
                .simulator()
                .get_state_metadata(&context.tx.namespace, &req.collection, &req.key)?
                .into_iter()
                .map(|(metakey, value)| StateMetadata { metakey, value })
                .collect();
            Ok(StateMetadataResult { entries }.encode_to_vec())
        }
        MessageType::PutStateMetadata => {
            let req: PutStateMetadata = decode(payload)?;
            let metadata = req.metadata.ok_or(RequestError::NoMetadata)?;
            put_metadata(context, &req.collection, &req.key, metadata)?;
            Ok(Vec::new())
        }
        MessageType::GetStateByRange => {
            let req: GetStateByRange = decode(payload)?;
            let page = if req.metadata.is_empty() {
                None
            } else {
                Some(decode::<QueryMetadata>(&req.metadata)?)
            };
            if page.is_some() && !req.collection.is_empty() {
                return Err(RequestError::PrivatePagination);
            }
            let start = match &page {
                Some(page) if !page.bookmark.is_empty() => page.bookmark.as_str(),
                _ => req.start_key.as_str(),
            };
            let page_size = page
                .as_ref()
                .map(|p| usize::try_from(p.page_size.max(0)).unwrap_or(0));
            let scan = RangeScan::new(
                &context.tx.namespace,
                &req.collection,
                start,
                &req.end_key,
                page_size,
            );
            open_iterator(
                context,
                QueryIterator::Range {
                    scan,
                    paginated: page.is_some(),
                },
            )
        }
        MessageType::GetHistoryForKey => {
            let req: GetHistoryForKey = decode(payload)?;
            open_iterator(
                context,
                QueryIterator::History {
                    namespace: context.tx.namespace.clone(),
                    key: req.key,
                    before: None,
                    done: false,
                },
            )
        }
        MessageType::QueryStateNext => {
            let req: QueryStateNext = decode(payload)?;
            let mut iterator = context
                .take_iterator(&req.id)
                .ok_or_else(|| RequestError::UnknownIterator(req.id.clone()))?;
            let response = next_batch(context, &mut iterator, &req.id)?;
            if !iterator.exhausted() {
                context.put_iterator(req.id, iterator);
            }
            Ok(response.encode_to_vec())
        }
        MessageType::QueryStateClose => {
            let req: QueryStateClose = decode(payload)?;
            context.take_iterator(&req.id);
            Ok(QueryResponse {
                id: req.id,
                ..Default::default()
            }
            .encode_to_vec())
        }
        MessageType::GetQueryResult => Err(RequestError::RichQuery),
        other => Err(RequestError::NotAStateRequest(other)),
    }
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, RequestError> {
    Ok(M::decode(payload)?)
}

fn require_key(key: &str) -> Result<(), RequestError> {
    if key.is_empty() {
        Err(RequestError::EmptyKey)
    } else {
        Ok(())
    }
}

fn require_collection(collection: &str) -> Result<(), RequestError> {
    if collection.is_empty() {
        Err(RequestError::EmptyCollection)
    } else {
        Ok(())
    }
}

fn require_writable(context: &TxContext) -> Result<(), RequestError> {
    if context.tx.read_only {
        Err(RequestError::ReadOnly)
    } else {
        Ok(())
    }
}

fn get(context: &TxContext, collection: &str, key: &str) -> Result<Option<Vec<u8>>, RequestError> {
    let mut simulator = context.simulator();
    let found = if collection.is_empty() {
        simulator.get_state(&context.tx.namespace, key)
    } else {
        simulator.get_private_data(&context.tx.namespace, collection, key)
    };
    Ok(found?)
}

fn put(
    context: &TxContext,
    collection: &str,
    key: &str,
    value: Vec<u8>,
) -> Result<(), RequestError> {
    require_writable(context)?;
    require_key(key)?;
    let mut simulator = context.simulator();
    if collection.is_empty() {
        simulator.put_state(&context.tx.namespace, key, value);
    } else {
        simulator.put_private_data(&context.tx.namespace, collection, key, value);
    }
    Ok(())
}

fn delete(context: &TxContext, collection: &str, key: &str) -> Result<(), RequestError> {
    require_writable(context)?;
    require_key(key)?;
    let mut simulator = context.simulator();
    if collection.is_empty() {
        simulator.delete_state(&context.tx.namespace, key);
    } else {
        simulator.delete_private_data(&context.tx.namespace, collection, key);
    }
    Ok(())
}

fn purge(context: &TxContext, collection: &str, key: &str) -> Result<(), RequestError> {
    require_writable(context)?;
    require_key(key)?;
    require_collection(collection)?;
    context
        .simulator()
        .purge_private_data(&context.tx.namespace, collection, key);
    Ok(())
}

fn put_metadata(
    context: &TxContext,
    collection: &str,
    key: &str,
    metadata: StateMetadata,
) -> Result<(), RequestError> {
    require_writable(context)?;
    require_key(key)?;
    context.simulator().put_state_metadata(
        &context.tx.namespace,
        collection,
        key,
        &metadata.metakey,
        metadata.value,
    )?;
    Ok(())
}

fn open_iterator(
    context: &TxContext,
    mut iterator: QueryIterator,
) -> Result<Vec<u8>, RequestError> {
    let id = context.new_iterator_id();
    let response = next_batch(context, &mut iterator, &id)?;
    if !iterator.exhausted() {
        context.put_iterator(id, iterator);
    }
    Ok(response.encode_to_vec())
}

fn next_batch(
    context: &TxContext,
    iterator: &mut QueryIterator,
    id: &str,
) -> Result<QueryResponse, RequestError> {
    Ok(iterator.next_batch(&mut context.simulator(), id)?)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ccvm_proto::protos::{
        GetStateByRange, PutState, QueryStateNext, WriteBatchState, WriteRecord,
    };

    use super::*;
    use crate::chaincode::tx_context::{TxContexts, TxInfo};
    use crate::ledger::{DEFAULT_CHANNEL, Ledger};

    /// A transaction of chaincode `cc` on a fresh ledger, writable unless `read_only`.
    fn context(read_only: bool) -> anyhow::Result<(tempfile::TempDir, Arc<TxContext>)> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let info = TxInfo {
            channel: DEFAULT_CHANNEL.to_owned(),
            tx_id: "tx".to_owned(),
            namespace: "cc".to_owned(),
            signed_proposal: None,
            simulator: Arc::new(Mutex::new(ledger.new_simulator(DEFAULT_CHANNEL, "tx")?)),
            read_only,
        };
        let (context, _completion) = TxContexts::default()
            .open(info)
            .map_err(|refused| anyhow::anyhow!("the transaction is new: {refused:?}"))?;
        Ok((dir, context))
    }

    fn request(kind: MessageType, payload: impl Message) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: kind as i32,
            payload: payload.encode_to_vec(),
            ..Default::default()
        }
    }

    fn put(key: &str) -> ChaincodeMessage {
        request(
            MessageType::PutState,
            PutState {
                key: key.to_owned(),
                value: b"v".to_vec(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn each_refusal_is_its_own_kind() -> anyhow::Result<()> {
        let (_dir, writable) = context(false)?;
        let serve = |kind, message: ChaincodeMessage| serve(&writable, kind, &message);

        assert!(matches!(
            serve(MessageType::PutState, put("")),
            Err(RequestError::EmptyKey)
        ));
        let garbage = ChaincodeMessage {
            payload: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        assert!(matches!(
            serve(MessageType::GetState, garbage),
            Err(RequestError::Malformed(_))
        ));
        let next = QueryStateNext {
            id: "nowhere".to_owned(),
        };
        assert!(matches!(
            serve(MessageType::QueryStateNext, request(MessageType::QueryStateNext, next)),
            Err(RequestError::UnknownIterator(id)) if id == "nowhere"
        ));
        let paged_private = GetStateByRange {
            collection: "secrets".to_owned(),
            metadata: QueryMetadata {
                page_size: 2,
                ..Default::default()
            }
            .encode_to_vec(),
            ..Default::default()
        };
        assert!(matches!(
            serve(
                MessageType::GetStateByRange,
                request(MessageType::GetStateByRange, paged_private)
            ),
            Err(RequestError::PrivatePagination)
        ));
        let untyped = WriteBatchState {
            rec: vec![WriteRecord {
                key: "k".to_owned(),
                ..Default::default()
            }],
        };
        assert!(matches!(
            serve(
                MessageType::WriteBatchState,
                request(MessageType::WriteBatchState, untyped)
            ),
            Err(RequestError::UntypedRecord)
        ));
        assert!(matches!(
            serve(MessageType::GetQueryResult, ChaincodeMessage::default()),
            Err(RequestError::RichQuery)
        ));
        assert!(matches!(
            serve(MessageType::Completed, ChaincodeMessage::default()),
            Err(RequestError::NotAStateRequest(MessageType::Completed))
        ));
        assert!(serve(MessageType::PutState, put("k")).is_ok());
        Ok(())
    }

    #[test]
    fn every_refusal_reads_back_from_its_payload() {
        let refusals = [
            (
                RequestError::Malformed(GetState::decode([0xff_u8].as_slice()).unwrap_err()),
                Refusal::Malformed,
            ),
            (RequestError::EmptyKey, Refusal::EmptyKey),
            (RequestError::EmptyCollection, Refusal::EmptyCollection),
            (RequestError::ReadOnly, Refusal::ReadOnly),
            (RequestError::UntypedRecord, Refusal::UntypedRecord),
            (RequestError::NoMetadata, Refusal::NoMetadata),
            (RequestError::PrivatePagination, Refusal::PrivatePagination),
            (
                RequestError::UnknownIterator("it-1".to_owned()),
                Refusal::UnknownIterator,
            ),
            (RequestError::RichQuery, Refusal::RichQueryUnsupported),
            (
                RequestError::NotAStateRequest(MessageType::Completed),
                Refusal::NotAStateRequest,
            ),
            (
                RequestError::Ledger(LedgerError::UnknownChannel("other".to_owned())),
                Refusal::UnknownChannel,
            ),
            (
                RequestError::Ledger(LedgerError::PrivateMetadata),
                Refusal::PrivateMetadata,
            ),
        ];
        for (refused, kind) in refusals {
            let payload = refused.for_chaincode();
            assert_eq!(Refusal::of(&payload), Some(kind), "{payload}");
        }
        assert_eq!(
            RequestError::NotAStateRequest(MessageType::Completed).for_chaincode(),
            "not a state request: COMPLETED"
        );
    }

    #[test]
    fn a_chaincode_called_from_another_channel_may_only_read() -> anyhow::Result<()> {
        let (_dir, read_only) = context(true)?;
        let refused = serve(&read_only, MessageType::PutState, &put("k")).unwrap_err();
        assert!(matches!(refused, RequestError::ReadOnly));
        assert_eq!(
            refused.for_chaincode(),
            "writes are not allowed in a chaincode called from another channel"
        );
        let read = request(
            MessageType::GetState,
            GetState {
                key: "k".to_owned(),
                ..Default::default()
            },
        );
        assert!(serve(&read_only, MessageType::GetState, &read).is_ok());
        Ok(())
    }

    #[test]
    fn a_failing_store_is_told_without_its_details() {
        let store = RequestError::Ledger(LedgerError::Store(redb::Error::Io(
            std::io::Error::other("disk /var/lib/ccvm/ledger.redb is full"),
        )));
        assert_eq!(store.for_chaincode(), crate::ledger::STORE_FAILURE);
        assert!(
            store.to_string().contains("ledger.redb"),
            "the log keeps it"
        );
        assert_eq!(
            Refusal::of(&store.for_chaincode()),
            Some(Refusal::StoreFailure)
        );
        let refusal = RequestError::Ledger(LedgerError::PrivateMetadata);
        assert_eq!(refusal.for_chaincode(), Refusal::PrivateMetadata.text());
    }
}
