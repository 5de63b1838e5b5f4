//! The peer side of one chaincode connection as a state machine without I/O: a message from the
//! chaincode goes in, what it leads to comes out as [`Effect`]s for the transport to carry out.
//!
//! Two transports drive it. The [`Handler`]'s task does for a chaincode on a stream (gRPC, or the
//! channels of a guest): it awaits each message and carries out the effects in order. A VM whose
//! chaincode runs inside the peer drives it on the chaincode's own thread, within the call that
//! hands the peer a message, so that a wasm guest's REGISTER and GET_STATE are answered without
//! a hop to another task.
//!
//! States: created until REGISTER arrives, then ready (REGISTERED and READY are sent back at
//! once), closed once a registration is refused or the connection has ended. A message that is
//! wrong for the state gets an ERROR reply with its transaction id and the connection goes on.
//!
//! [`Handler`]: super::Handler

use std::collections::VecDeque;
use std::collections::vec_deque::Drain;
use std::mem;
use std::sync::Arc;
use std::time::Instant;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::registration_accepted;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::error::short_tx;
use super::invocation::Invocation;
use super::message::{error_reply, reply, type_name};
use super::registration::Registrant;
use super::registry::HandlerHandle;
use super::requests;
use super::support::ChaincodeSupport;
use super::tx_context::TxContexts;
use crate::container::OutboundMessages;

/// What a message from the chaincode leads to, for the transport to carry out in order.
pub(crate) enum Effect {
    /// Reaches the chaincode: only its transport can carry it out.
    ToChaincode(ToChaincode),
    /// Stays in the peer: carried out the same way whoever drives the connection.
    InPeer(InPeer),
}

/// The effects that reach the chaincode.
#[expect(
    clippy::large_enum_variant,
    reason = "carried out as soon as it is returned; boxing would allocate for each reply"
)]
pub(crate) enum ToChaincode {
    /// Send this message.
    Send(ChaincodeMessage),
    /// End the connection for this reason, once the messages sent before are on their way.
    Close(String),
}

/// The effects that stay in the peer.
pub(crate) enum InPeer {
    /// The chaincode has registered and the messages sent before tell it so (REGISTERED and
    /// READY): once they are on their way, open it to transactions.
    Ready(HandlerHandle),
    /// Run a chaincode-to-chaincode call; its answer is sent to the chaincode when it is done.
    Invoke(Invocation),
}

impl InPeer {
    /// Opens a registered chaincode to transactions, or spawns a chaincode call on `support`.
    pub fn apply(self, support: &ChaincodeSupport) {
        match self {
            Self::Ready(handle) => support.registry().ready(&handle),
            Self::Invoke(call) => {
                let span = info_span!("invoke_chaincode", channel = %call.channel(), tx = %short_tx(call.tx_id()));
                support.spawn(call.run(support.clone()).instrument(span));
            }
        }
    }
}

impl Effect {
    fn send(message: ChaincodeMessage) -> Self {
        Self::ToChaincode(ToChaincode::Send(message))
    }
}

/// Where a connection is in the registration handshake.
enum State {
    /// Waiting for REGISTER, with what judging it needs, and the sink kept for the handle a
    /// registration makes. (Only this state holds support, so that a guest whose connection
    /// outlives the peer's stop does not keep the peer's ledger open.)
    Created {
        support: ChaincodeSupport,
        outbound: OutboundMessages,
    },
    /// Registered under this handle.
    Ready(HandlerHandle),
    /// Registration refused, or the connection has ended.
    Closed,
}

/// The peer side of one chaincode connection.
pub(crate) struct Connection {
    state: State,
    contexts: Arc<TxContexts>,
    launched_as: Option<String>,
    authenticated_as: Option<String>,
    end_on_timeout: Option<CancellationToken>,
    retired: CancellationToken,
    /// The effects of the message being handled; kept so that handling one allocates nothing.
    effects: VecDeque<Effect>,
}

impl Connection {
    /// A connection whose replies go to `outbound`, for a chaincode that dialled in on its own.
    pub fn new(support: ChaincodeSupport, outbound: OutboundMessages) -> Self {
        Self {
            state: State::Created { support, outbound },
            contexts: Arc::default(),
            launched_as: None,
            authenticated_as: None,
            end_on_timeout: None,
            retired: CancellationToken::new(),
            effects: VecDeque::new(),
        }
    }

    /// A connection of a chaincode the peer launched as `name`: it may register under that name
    /// outside dev mode too.
    #[must_use]
    pub fn launched_as(mut self, name: String) -> Self {
        self.launched_as = Some(name);
        self
    }

    /// A connection whose chaincode is retired when `replaced` is cancelled: its code has been
    /// replaced by a newer version.
    #[must_use]
    pub fn retired_when_replaced(mut self, replaced: Option<&CancellationToken>) -> Self {
        if let Some(replaced) = replaced {
            self.retired = replaced.child_token();
        }
        self
    }

    /// The common name of the client certificate the chaincode connected with, if any.
    #[must_use]
    pub fn authenticated_as(mut self, name: Option<String>) -> Self {
        self.authenticated_as = name;
        self
    }

    /// Lets the peer end the chaincode through `end` when one of its transactions times out.
    #[must_use]
    pub fn ended_on_timeout_by(mut self, end: Option<CancellationToken>) -> Self {
        self.end_on_timeout = end;
        self
    }

    /// The connection's running transactions.
    pub fn contexts(&self) -> &Arc<TxContexts> {
        &self.contexts
    }

    /// Cancelled when the registered chaincode is retired (a newer instance takes its name).
    pub fn retired(&self) -> &CancellationToken {
        &self.retired
    }

    /// The chaincode's handle, once it has registered and until the connection ends.
    pub fn registered(&self) -> Option<&HandlerHandle> {
        match &self.state {
            State::Ready(handle) => Some(handle),
            State::Created { .. } | State::Closed => None,
        }
    }

    /// Ends the connection: nothing it receives has an effect any more, and it lets go of the
    /// chaincode's sink. Returns the handle to deregister, if the chaincode had registered.
    pub fn close(&mut self) -> Option<HandlerHandle> {
        match mem::replace(&mut self.state, State::Closed) {
            State::Ready(handle) => Some(handle),
            State::Created { .. } | State::Closed => None,
        }
    }

    /// Handles one message from the chaincode; returns its effects, in the order to carry them
    /// out.
    pub fn on_message(&mut self, message: ChaincodeMessage) -> Drain<'_, Effect> {
        self.effects.clear();
        match self.state {
            State::Created { .. } => self.on_created(message),
            State::Ready(_) => self.on_ready(message),
            State::Closed => {}
        }
        self.effects.drain(..)
    }

    /// Before registration only REGISTER is accepted.
    fn on_created(&mut self, message: ChaincodeMessage) {
        if message.r#type != MessageType::Register as i32 {
            let text = format!(
                "chaincode handler in state created cannot handle {}",
                type_name(message.r#type)
            );
            self.effects
                .push_back(Effect::send(error_reply(&message, text)));
            return;
        }
        let State::Created { support, outbound } = &self.state else {
            return;
        };
        let registrant = Registrant {
            support,
            outbound,
            contexts: &self.contexts,
            launched_as: self.launched_as.as_deref(),
            authenticated_as: self.authenticated_as.as_deref(),
            end_on_timeout: self.end_on_timeout.as_ref(),
            retired: &self.retired,
        };
        match registrant.register(&message) {
            Ok(handle) => {
                self.effects.extend(
                    registration_accepted(&message)
                        .into_iter()
                        .map(Effect::send),
                );
                self.effects
                    .push_back(Effect::InPeer(InPeer::Ready(handle.clone())));
                self.state = State::Ready(handle);
            }
            Err(why) => {
                warn!(%why, "chaincode registration refused");
                self.effects
                    .push_back(Effect::send(error_reply(&message, &why)));
                self.effects
                    .push_back(Effect::ToChaincode(ToChaincode::Close(why)));
                self.state = State::Closed;
            }
        }
    }

    /// Once registered: state requests, a transaction's end, chaincode calls and keepalives.
    fn on_ready(&mut self, message: ChaincodeMessage) {
        let Ok(kind) = MessageType::try_from(message.r#type) else {
            let text = format!("unknown message type {}", message.r#type);
            self.effects
                .push_back(Effect::send(error_reply(&message, text)));
            return;
        };
        match kind {
            MessageType::Completed | MessageType::Error => self.on_transaction_end(kind, message),
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
                let answer = self.serve_request(kind, &message);
                self.effects.push_back(Effect::send(answer));
            }
            MessageType::InvokeChaincode => {
                match self.contexts.get(&message.channel_id, &message.txid) {
                    Some(context) => {
                        if let Some(metrics) = context.shim_metrics.of(kind) {
                            metrics.received();
                        }
                        let State::Ready(handle) = &self.state else {
                            return;
                        };
                        let call = Invocation::new(context, message, handle.outbound().clone());
                        self.effects.push_back(Effect::InPeer(InPeer::Invoke(call)));
                    }
                    None => self
                        .effects
                        .push_back(Effect::send(no_transaction(&message))),
                }
            }
            MessageType::Keepalive => {}
            _ => {
                let text = format!(
                    "chaincode handler in state ready cannot handle {}",
                    kind.as_str_name()
                );
                self.effects
                    .push_back(Effect::send(error_reply(&message, text)));
            }
        }
    }

    /// Hands a transaction's COMPLETED or ERROR to the executor waiting for it.
    fn on_transaction_end(&self, kind: MessageType, message: ChaincodeMessage) {
        match self.contexts.get(&message.channel_id, &message.txid) {
            Some(context) => {
                context.complete(message);
            }
            None => warn!(
                channel = %message.channel_id, tx = %short_tx(&message.txid),
                "{} for a transaction that is not running", kind.as_str_name()
            ),
        }
    }

    /// The RESPONSE or ERROR to a state request.
    fn serve_request(&self, kind: MessageType, message: &ChaincodeMessage) -> ChaincodeMessage {
        let Some(context) = self.contexts.get(&message.channel_id, &message.txid) else {
            return no_transaction(message);
        };
        let recorded = context.shim_metrics.of(kind);
        if let Some(metrics) = recorded {
            metrics.received();
        }
        let started = Instant::now();
        let served = requests::serve(&context, kind, message);
        if let Some(metrics) = recorded {
            metrics.completed(served.is_ok(), started.elapsed());
        }
        match served {
            Ok(payload) => reply(message, MessageType::Response, payload),
            Err(e) => {
                debug!(tx = %short_tx(&message.txid), error = %e, "{} failed", kind.as_str_name());
                error_reply(message, e.for_chaincode())
            }
        }
    }
}

/// The ERROR reply to a request whose transaction is not running.
fn no_transaction(message: &ChaincodeMessage) -> ChaincodeMessage {
    error_reply(
        message,
        format!(
            "no ongoing transaction {} on channel {}",
            message.txid, message.channel_id
        ),
    )
}

#[cfg(test)]
mod tests {
    use ccvm_proto::Message;
    use ccvm_proto::protos::ChaincodeId;
    use tokio::sync::mpsc;

    use super::*;
    use crate::chaincode::{ChaincodeError, SupportConfig};
    use crate::ledger::Ledger;

    fn support() -> anyhow::Result<(ChaincodeSupport, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        Ok((ChaincodeSupport::new(ledger, SupportConfig::default()), dir))
    }

    fn register(name: &str) -> ChaincodeMessage {
        let id = ChaincodeId {
            name: name.to_owned(),
            ..Default::default()
        };
        ChaincodeMessage {
            r#type: MessageType::Register as i32,
            payload: id.encode_to_vec(),
            ..Default::default()
        }
    }

    /// The effects as `(kind, text)`: a message's type and payload, or what else it is.
    fn described(effects: Drain<'_, Effect>) -> Vec<(String, String)> {
        effects
            .map(|effect| match effect {
                Effect::ToChaincode(ToChaincode::Send(message)) => (
                    type_name(message.r#type),
                    String::from_utf8_lossy(&message.payload).into_owned(),
                ),
                Effect::ToChaincode(ToChaincode::Close(reason)) => ("close".to_owned(), reason),
                Effect::InPeer(InPeer::Ready(handle)) => {
                    ("ready".to_owned(), handle.name().to_owned())
                }
                Effect::InPeer(InPeer::Invoke(call)) => {
                    ("invoke".to_owned(), call.tx_id().to_owned())
                }
            })
            .collect()
    }

    #[test]
    fn before_register_a_request_gets_an_error_and_the_connection_goes_on() -> anyhow::Result<()> {
        let (support, _dir) = support()?;
        let (outbound, _inbound) = mpsc::channel(1);
        let mut connection = Connection::new(support, outbound).launched_as("cc:1".to_owned());
        let get = ChaincodeMessage {
            r#type: MessageType::GetState as i32,
            txid: "t1".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            described(connection.on_message(get)),
            [(
                "ERROR".to_owned(),
                "chaincode handler in state created cannot handle GET_STATE".to_owned()
            )]
        );
        let accepted = described(connection.on_message(register("cc:1")));
        let kinds: Vec<_> = accepted.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["REGISTERED", "READY", "ready"]);
        assert_eq!(
            connection.registered().map(HandlerHandle::name),
            Some("cc:1")
        );
        Ok(())
    }

    #[test]
    fn a_refused_registration_sends_its_reason_then_closes() -> anyhow::Result<()> {
        let (support, _dir) = support()?;
        let (outbound, _inbound) = mpsc::channel(1);
        let mut connection = Connection::new(support, outbound).launched_as("cc:1".to_owned());
        let refused = described(connection.on_message(register("other:1")));
        let reason = ChaincodeError::NotLaunched {
            name: "other:1".to_owned(),
        }
        .to_string();
        assert_eq!(
            refused,
            [
                ("ERROR".to_owned(), reason.clone()),
                ("close".to_owned(), reason)
            ]
        );
        assert!(
            described(connection.on_message(register("cc:1"))).is_empty(),
            "a closed connection takes nothing more"
        );
        assert!(connection.close().is_none());
        Ok(())
    }

    #[test]
    fn a_closed_connection_gives_its_handle_up_once() -> anyhow::Result<()> {
        let (support, _dir) = support()?;
        let (outbound, _inbound) = mpsc::channel(1);
        let mut connection = Connection::new(support, outbound).launched_as("cc:1".to_owned());
        assert_eq!(described(connection.on_message(register("cc:1"))).len(), 3);
        assert_eq!(
            connection.close().as_ref().map(HandlerHandle::name),
            Some("cc:1")
        );
        assert!(connection.close().is_none());
        assert!(connection.registered().is_none());
        let keepalive = ChaincodeMessage {
            r#type: MessageType::Keepalive as i32,
            ..Default::default()
        };
        assert!(described(connection.on_message(keepalive)).is_empty());
        Ok(())
    }
}
