//! The peer-side handler of one chaincode connection.
//!
//! States: created until REGISTER arrives, then ready (REGISTERED and READY are sent back at
//! once). A message that is wrong for the state gets an ERROR reply with its transaction id and
//! the stream goes on; a chaincode that may not register gets an ERROR and the stream closes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ccvm_proto::Message;
use ccvm_proto::MessageType;
use ccvm_proto::protos::{ChaincodeMessage, ChaincodeSpec};
use ccvm_proto::registration_accepted;
use tokio::sync::oneshot;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::error::short_tx;
use super::immediate::{self, Immediate, no_transaction};
use super::message::{bare, error_reply, reply, type_name};
use super::registration::Registrant;
use super::registry::HandlerHandle;
use super::support::{ChaincodeSupport, ExecuteRequest};
use super::tx_context::{TxContext, TxContexts};
use crate::container::{OutboundMessages, StreamBroken};

/// Drives one chaincode connection: a stream of messages in, a sink of messages out.
pub struct Handler {
    support: ChaincodeSupport,
    outbound: OutboundMessages,
    contexts: Arc<TxContexts>,
    registered: Option<HandlerHandle>,
    launched_as: Option<String>,
    authenticated_as: Option<String>,
    /// Ends the chaincode when one of its transactions times out (see [`ChaincodeStreams`]).
    ///
    /// [`ChaincodeStreams`]: crate::container::ChaincodeStreams
    end_on_timeout: Option<CancellationToken>,
    /// Where an inline registration ([`InlineRegistration`]) hands over the chaincode's handle.
    ///
    /// [`InlineRegistration`]: super::registration::InlineRegistration
    inline_registration: Option<oneshot::Receiver<HandlerHandle>>,
}

impl Handler {
    /// A handler that replies through `outbound`, for a chaincode that dialled in on its own.
    pub fn new(support: ChaincodeSupport, outbound: OutboundMessages) -> Self {
        Self {
            support,
            outbound,
            contexts: Arc::default(),
            registered: None,
            launched_as: None,
            authenticated_as: None,
            end_on_timeout: None,
            inline_registration: None,
        }
    }

    /// The common name of the client certificate the chaincode connected with, if any.
    #[must_use]
    pub fn authenticated_as(mut self, name: Option<String>) -> Self {
        self.authenticated_as = name;
        self
    }

    /// A handler for a chaincode the peer launched as `name`: it may register under that name
    /// outside dev mode too.
    pub(crate) fn launched(
        support: ChaincodeSupport,
        outbound: OutboundMessages,
        name: String,
        contexts: Arc<TxContexts>,
    ) -> Self {
        Self {
            launched_as: Some(name),
            contexts,
            ..Self::new(support, outbound)
        }
    }

    /// Lets the peer end the chaincode through `end` when one of its transactions times out.
    #[must_use]
    pub(crate) fn ended_on_timeout_by(mut self, end: Option<CancellationToken>) -> Self {
        self.end_on_timeout = end;
        self
    }

    /// Takes the chaincode's registration from `registration` if it is done inline.
    #[must_use]
    pub(crate) fn registered_inline(
        mut self,
        registration: oneshot::Receiver<HandlerHandle>,
    ) -> Self {
        self.inline_registration = Some(registration);
        self
    }

    /// Serves the connection until the chaincode's stream ends or fails (`Err` carries the
    /// reason, which is logged). On return the chaincode is deregistered and its waiting
    /// transactions fail with a disconnect.
    pub async fn serve<S>(mut self, mut inbound: S)
    where
        S: Stream<Item = Result<ChaincodeMessage, StreamBroken>> + Unpin + Send,
    {
        let mut keepalive = self.support.config().keepalive.map(tokio::time::interval);
        let reason = loop {
            let next = tokio::select! {
                biased;
                () = self.support.stopping() => break "the peer is shutting down".to_owned(),
                () = retired_and_idle(self.registered.as_ref()) => {
                    break "retired: a newer instance took its place".to_owned();
                }
                handle = registered_inline(&mut self.inline_registration) => {
                    self.registered = Some(handle);
                    continue;
                }
                next = inbound.next() => next,
                () = tick(keepalive.as_mut()) => {
                    if self.registered.is_some() && self.send(bare(MessageType::Keepalive)).await.is_err() {
                        break "outbound stream closed".to_owned();
                    }
                    continue;
                }
            };
            let message = match next {
                None => break self.why_lost("stream ended".to_owned()).await,
                Some(Err(broken)) => break self.why_lost(broken.to_string()).await,
                Some(Ok(message)) => message,
            };
            let outcome = if self.registered.is_some() {
                self.handle_ready(message).await
            } else {
                self.handle_created(message).await
            };
            if let Err(reason) = outcome {
                break reason;
            }
        };
        match self.registered.take() {
            Some(handle) => {
                info!(chaincode = handle.name(), %reason, "chaincode disconnected");
                self.support.registry().deregister(&handle);
            }
            None => debug!(%reason, "unregistered chaincode stream ended"),
        }
        self.contexts.close_all(&reason);
    }

    /// Why the chaincode's stream was lost: how its VM saw it end, when the peer launched it
    /// and the VM says so in time, else `reason`.
    async fn why_lost(&self, reason: String) -> String {
        let Some(handle) = &self.registered else {
            return reason;
        };
        match self.support.exit_reason(handle.namespace()).await {
            Some(exit) => format!("chaincode {} {exit}", handle.name()),
            None => reason,
        }
    }

    async fn send(&self, message: ChaincodeMessage) -> Result<(), String> {
        self.outbound
            .send(Box::new(message))
            .await
            .map_err(|_| "outbound stream closed".to_owned())
    }

    /// Before registration only REGISTER is accepted.
    async fn handle_created(&mut self, message: ChaincodeMessage) -> Result<(), String> {
        if message.r#type != MessageType::Register as i32 {
            let text = format!(
                "chaincode handler in state created cannot handle {}",
                type_name(message.r#type)
            );
            return self.send(error_reply(&message, text)).await;
        }
        let registrant = Registrant {
            support: &self.support,
            outbound: &self.outbound,
            contexts: &self.contexts,
            launched_as: self.launched_as.as_deref(),
            authenticated_as: self.authenticated_as.as_deref(),
            end_on_timeout: self.end_on_timeout.as_ref(),
        };
        let handle = match registrant.register(&message) {
            Ok(handle) => handle,
            Err(why) => return self.refuse(&message, why).await,
        };
        self.registered = Some(handle.clone());
        for accepted in registration_accepted(&message) {
            self.send(accepted).await?;
        }
        self.support.registry().ready(&handle);
        Ok(())
    }

    async fn refuse(
        &self,
        message: &ChaincodeMessage,
        why: impl std::fmt::Display,
    ) -> Result<(), String> {
        let why = why.to_string();
        warn!(%why, "chaincode registration refused");
        self.send(error_reply(message, &why)).await?;
        Err(why)
    }

    async fn handle_ready(&mut self, message: ChaincodeMessage) -> Result<(), String> {
        let message = match immediate::answer(&self.contexts, message) {
            Immediate::Reply(reply) => return self.send(reply).await,
            Immediate::Done => return Ok(()),
            Immediate::Pending(message) => message,
        };
        let Ok(kind) = MessageType::try_from(message.r#type) else {
            let text = format!("unknown message type {}", message.r#type);
            return self.send(error_reply(&message, text)).await;
        };
        match kind {
            MessageType::Keepalive => Ok(()),
            MessageType::InvokeChaincode => {
                let Some(context) = self.contexts.get(&message.channel_id, &message.txid) else {
                    return self.send(no_transaction(&message)).await;
                };
                if let Some(metrics) = context.shim_metrics.of(kind) {
                    metrics.received();
                }
                let support = self.support.clone();
                let outbound = self.outbound.clone();
                let span = info_span!("invoke_chaincode", channel = %message.channel_id, tx = %short_tx(&message.txid));
                self.support.spawn(
                    async move {
                        let started = Instant::now();
                        let answer = invoke_chaincode(&support, &context, &message).await;
                        if let Some(metrics) = context.shim_metrics.of(kind) {
                            let success = answer.r#type == MessageType::Response as i32;
                            metrics.completed(success, started.elapsed());
                        }
                        let _ = outbound.send(Box::new(answer)).await;
                    }
                    .instrument(span),
                );
                Ok(())
            }
            _ => {
                let text = format!(
                    "chaincode handler in state ready cannot handle {}",
                    kind.as_str_name()
                );
                self.send(error_reply(&message, text)).await
            }
        }
    }
}

/// The handle of a chaincode registered inline, once; never if there is none (any more), or
/// the registration is left to the handler.
async fn registered_inline(
    registration: &mut Option<oneshot::Receiver<HandlerHandle>>,
) -> HandlerHandle {
    if let Some(receiver) = registration {
        let registered = receiver.await;
        *registration = None;
        if let Ok(handle) = registered {
            return handle;
        }
    }
    std::future::pending().await
}

/// Resolves once the registered chaincode is retired and idle; never before registration.
async fn retired_and_idle(registered: Option<&HandlerHandle>) {
    match registered {
        Some(handle) => handle.retired_and_idle().await,
        None => std::future::pending().await,
    }
}

/// The next keepalive tick, or never when keepalive is off.
async fn tick(timer: Option<&mut tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
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
        Err(e) => return error_reply(message, format!("malformed INVOKE_CHAINCODE: {e}")),
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
        Err(e) => error_reply(message, e.for_client()),
    }
}
