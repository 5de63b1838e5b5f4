//! Answers that need no waiting: a transaction's state requests and its end. Both the handler's
//! loop and a transport that can answer inline (the inproc VM, on the guest's own thread) use
//! them, so a wasm guest's GET_STATE costs no thread hop.

use std::time::Instant;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use tracing::{debug, warn};

use super::error::short_tx;
use super::message::{error_reply, reply};
use super::requests;
use super::tx_context::TxContexts;

/// What answering a message at once came to.
pub(crate) enum Immediate {
    /// Send this reply.
    Reply(ChaincodeMessage),
    /// Handled; nothing to send (a transaction's COMPLETED or ERROR).
    Done,
    /// The message needs the handler's loop (registration, a chaincode call, a keepalive, or
    /// something invalid).
    Pending(ChaincodeMessage),
}

/// Answers `message` now if it is a state request or the end of a transaction.
pub(crate) fn answer(contexts: &TxContexts, message: ChaincodeMessage) -> Immediate {
    let Ok(kind) = MessageType::try_from(message.r#type) else {
        return Immediate::Pending(message);
    };
    match kind {
        MessageType::Completed | MessageType::Error => {
            match contexts.get(&message.channel_id, &message.txid) {
                Some(context) => {
                    context.complete(message);
                }
                None => warn!(
                    channel = %message.channel_id, tx = %short_tx(&message.txid),
                    "{} for a transaction that is not running", kind.as_str_name()
                ),
            }
            Immediate::Done
        }
        MessageType::GetState
        | MessageType::GetStateMultiple
        | MessageType::PutState
        | MessageType::DelState
        | MessageType::WriteBatchState
        | MessageType::GetStateByRange
        | MessageType::QueryStateNext
        | MessageType::QueryStateClose
        | MessageType::GetQueryResult
        | MessageType::GetHistoryForKey
        | MessageType::GetStateMetadata
        | MessageType::PutStateMetadata
        | MessageType::GetPrivateDataHash
        | MessageType::PurgePrivateData => {
            Immediate::Reply(match contexts.get(&message.channel_id, &message.txid) {
                None => no_transaction(&message),
                Some(context) => {
                    let recorded = context.shim_metrics.of(kind);
                    if let Some(metrics) = recorded {
                        metrics.received();
                    }
                    let started = Instant::now();
                    let served = requests::serve(&context, kind, &message);
                    if let Some(metrics) = recorded {
                        metrics.completed(served.is_ok(), started.elapsed());
                    }
                    match served {
                        Ok(payload) => reply(&message, MessageType::Response, payload),
                        Err(e) => {
                            debug!(tx = %short_tx(&message.txid), error = %e, "{} failed", kind.as_str_name());
                            error_reply(&message, e.for_chaincode())
                        }
                    }
                }
            })
        }
        _ => Immediate::Pending(message),
    }
}

/// The ERROR reply to a request whose transaction is not running.
pub(crate) fn no_transaction(message: &ChaincodeMessage) -> ChaincodeMessage {
    error_reply(
        message,
        format!(
            "no ongoing transaction {} on channel {}",
            message.txid, message.channel_id
        ),
    )
}
