//! Serving the state requests a chaincode makes during a transaction.
//!
//! Each function decodes one request payload, acts on the transaction's simulator and returns the
//! RESPONSE payload; an `Err` becomes an ERROR reply with the same transaction id.

use ccvm_proto::Message;
use ccvm_proto::MessageType;
use ccvm_proto::protos::{
    ChaincodeMessage, DelState, GetHistoryForKey, GetState, GetStateByRange, GetStateMetadata,
    GetStateMultiple, GetStateMultipleResult, PurgePrivateState, PutState, PutStateMetadata,
    QueryMetadata, QueryResponse, QueryStateClose, QueryStateNext, StateMetadata,
    StateMetadataResult, WriteBatchState, write_record,
};

use super::queries::QueryIterator;
use super::tx_context::TxContext;
use crate::ledger::RangeScan;

/// Why a request failed; sent to the chaincode as the ERROR payload.
pub(crate) type RequestError = String;

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
            let hash = context
                .simulator()
                .get_private_data_hash(&context.tx.namespace, &req.collection, &req.key)
                .map_err(|e| e.for_chaincode())?;
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
                        return Err("write batch record has no type".to_owned());
                    }
                }
            }
            Ok(Vec::new())
        }
        MessageType::GetStateMetadata => {
            let req: GetStateMetadata = decode(payload)?;
            let entries = context
                .simulator()
                .get_state_metadata(&context.tx.namespace, &req.collection, &req.key)
                .map_err(|e| e.for_chaincode())?
                .into_iter()
                .map(|(metakey, value)| StateMetadata { metakey, value })
                .collect();
            Ok(StateMetadataResult { entries }.encode_to_vec())
        }
        MessageType::PutStateMetadata => {
            let req: PutStateMetadata = decode(payload)?;
            let metadata = req
                .metadata
                .ok_or("PUT_STATE_METADATA carries no metadata")?;
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
                return Err("pagination is not supported for private data".to_owned());
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
                .ok_or_else(|| format!("query iterator {} not found", req.id))?;
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
        MessageType::GetQueryResult => {
            Err("rich queries (GET_QUERY_RESULT) are not supported by this state store".to_owned())
        }
        other => Err(format!("{} is not a state request", other.as_str_name())),
    }
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, RequestError> {
    M::decode(payload).map_err(|e| format!("malformed payload: {e}"))
}

fn require_key(key: &str) -> Result<(), RequestError> {
    if key.is_empty() {
        Err("key must not be an empty string".to_owned())
    } else {
        Ok(())
    }
}

fn require_collection(collection: &str) -> Result<(), RequestError> {
    if collection.is_empty() {
        Err("collection must not be an empty string".to_owned())
    } else {
        Ok(())
    }
}

fn require_writable(context: &TxContext) -> Result<(), RequestError> {
    if context.tx.read_only {
        Err("writes are not allowed in a chaincode called from another channel".to_owned())
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
    found.map_err(|e| e.for_chaincode())
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
    context
        .simulator()
        .put_state_metadata(
            &context.tx.namespace,
            collection,
            key,
            &metadata.metakey,
            metadata.value,
        )
        .map_err(|e| e.for_chaincode())
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
    iterator
        .next_batch(&mut context.simulator(), id)
        .map_err(|e| e.for_chaincode())
}
