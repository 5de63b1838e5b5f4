//! Small constructors for the messages the peer sends.

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;

/// A reply to `request` with the same channel and transaction id.
pub(crate) fn reply(
    request: &ChaincodeMessage,
    kind: MessageType,
    payload: Vec<u8>,
) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        payload,
        txid: request.txid.clone(),
        channel_id: request.channel_id.clone(),
        ..Default::default()
    }
}

/// An ERROR reply to `request` carrying `text`.
pub(crate) fn error_reply(
    request: &ChaincodeMessage,
    text: impl std::fmt::Display,
) -> ChaincodeMessage {
    reply(request, MessageType::Error, text.to_string().into_bytes())
}

/// A message of `kind` with no payload and no transaction.
pub(crate) fn bare(kind: MessageType) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        ..Default::default()
    }
}

/// The readable name of a message type number.
pub(crate) fn type_name(kind: i32) -> String {
    MessageType::try_from(kind)
        .map_or_else(|_| format!("type {kind}"), |t| t.as_str_name().to_owned())
}
