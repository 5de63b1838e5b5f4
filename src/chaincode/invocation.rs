//! A chaincode-to-chaincode call (INVOKE_CHAINCODE), run on a task of its own.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ccvm_proto::Message;
use ccvm_proto::protos::{ChaincodeMessage, ChaincodeSpec};
use ccvm_proto::{MessageType, Refusal};

use super::message::{error_reply, reply};
use super::support::{ChaincodeSupport, ExecuteRequest};
use super::tx_context::TxContext;
use crate::container::OutboundMessages;

/// A call a chaincode made during one of its transactions, and where its answer goes.
pub(crate) struct Invocation {
    caller: Arc<TxContext>,
    message: ChaincodeMessage,
    reply_to: OutboundMessages,
}

impl Invocation {
    /// The call `message` made in the transaction `caller`, answered through `reply_to`.
    pub fn new(
        caller: Arc<TxContext>,
        message: ChaincodeMessage,
        reply_to: OutboundMessages,
    ) -> Self {
        Self {
            caller,
            message,
            reply_to,
        }
    }

    /// The caller's channel.
    pub fn channel(&self) -> &str {
        &self.message.channel_id
    }

    /// The caller's transaction id.
    pub fn tx_id(&self) -> &str {
        &self.message.txid
    }

    /// Runs the call and sends the caller its RESPONSE or ERROR.
    pub async fn run(self, support: ChaincodeSupport) {
        let kind = MessageType::InvokeChaincode;
        let started = Instant::now();
        let answer = invoke_chaincode(&support, &self.caller, &self.message).await;
        if let Some(metrics) = self.caller.shim_metrics.of(kind) {
            let success = answer.r#type == MessageType::Response as i32;
            metrics.completed(success, started.elapsed());
        }
        let _ = self.reply_to.send(Box::new(answer)).await;
    }
}

/// Runs a chaincode-to-chaincode call. On the same channel the callee shares the caller's
/// simulator; on another channel it gets its own and may only read. The RESPONSE payload is the
/// callee's encoded COMPLETED message, as Fabric does.
async fn invoke_chaincode(
    support: &ChaincodeSupport,
    caller: &TxContext,
    message: &ChaincodeMessage,
) -> ChaincodeMessage {
    let spec = match ChaincodeSpec::decode(message.payload.as_slice()) {
        Ok(spec) => spec,
        Err(e) => {
            return error_reply(
                message,
                Refusal::Malformed.with(format_args!("INVOKE_CHAINCODE: {e}")),
            );
        }
    };
    let target = spec.chaincode_id.map(|id| id.name).unwrap_or_default();
    let (name, channel) = match target.split_once('/') {
        Some((name, channel)) if !channel.is_empty() => (name, channel),
        _ => (target.as_str(), caller.tx.channel.as_str()),
    };
    let (simulator, read_only) = if channel == caller.tx.channel {
        (Arc::clone(&caller.tx.simulator), caller.tx.read_only)
    } else {
        match support.ledger().new_simulator(channel, &caller.tx.tx_id) {
            Ok(simulator) => (Arc::new(Mutex::new(simulator)), true),
            Err(e) => return error_reply(message, e.for_chaincode()),
        }
    };
    let request = ExecuteRequest {
        channel: channel.to_owned(),
        chaincode: name.to_owned(),
        tx_id: caller.tx.tx_id.clone(),
        input: spec.input.unwrap_or_default(),
        signed_proposal: caller.tx.signed_proposal.clone(),
        simulator,
        read_only,
    };
    match support.execute(request).await {
        Ok(completed) => reply(message, MessageType::Response, completed.encode_to_vec()),
        Err(e) => error_reply(message, Refusal::ChaincodeCallFailed.with(e)),
    }
}
