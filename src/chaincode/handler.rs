//! The task that drives one chaincode connection over a stream: it awaits each message, hands it
//! to the connection's [`Connection`] and carries out what comes back, sends first.
//!
//! A stream that ends, fails, or whose chaincode is retired and idle ends the connection: the
//! chaincode is deregistered and its waiting transactions fail with the reason.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::connection::{Connection, Effect, ToChaincode};
use super::message::bare;
use super::registry::RETIRED;
use super::support::ChaincodeSupport;
use super::tx_context::TxContexts;
use crate::container::{OutboundMessages, StreamBroken};
use crate::sync::lock;

/// Drives one chaincode connection: a stream of messages in, a sink of messages out.
pub struct Handler {
    support: ChaincodeSupport,
    outbound: OutboundMessages,
    connection: Arc<Mutex<Connection>>,
    contexts: Arc<TxContexts>,
    retired: CancellationToken,
}

impl Handler {
    /// A handler that replies through `outbound`, for a chaincode that dialled in on its own and
    /// showed the client certificate with common name `authenticated_as`, if any.
    pub fn new(
        support: ChaincodeSupport,
        outbound: OutboundMessages,
        authenticated_as: Option<String>,
    ) -> Self {
        let connection =
            Connection::new(support.clone(), outbound.clone()).authenticated_as(authenticated_as);
        Self::driving(support, outbound, Arc::new(Mutex::new(connection)))
    }

    /// A handler that drives `connection`, which the chaincode's VM may drive as well, replying
    /// through `outbound`.
    pub(crate) fn driving(
        support: ChaincodeSupport,
        outbound: OutboundMessages,
        connection: Arc<Mutex<Connection>>,
    ) -> Self {
        let (contexts, retired) = {
            let connection = lock(&connection);
            (
                Arc::clone(connection.contexts()),
                connection.retired().clone(),
            )
        };
        Self {
            support,
            outbound,
            connection,
            contexts,
            retired,
        }
    }

    /// Serves the connection until the chaincode's stream ends or fails (the reason is logged).
    /// On return the chaincode is deregistered and its waiting transactions fail with the
    /// reason.
    pub async fn serve<S>(self, mut inbound: S)
    where
        S: Stream<Item = Result<ChaincodeMessage, StreamBroken>> + Unpin + Send,
    {
        let mut keepalive = self.support.config().keepalive.map(tokio::time::interval);
        let mut effects = VecDeque::new();
        let reason = 'serve: loop {
            let next = tokio::select! {
                biased;
                () = self.support.stopping() => break "the peer is shutting down".to_owned(),
                () = self.retired_and_idle() => break RETIRED.to_owned(),
                next = inbound.next() => next,
                () = tick(keepalive.as_mut()) => {
                    let registered = lock(&self.connection).registered().is_some();
                    let keepalive = Box::new(bare(MessageType::Keepalive));
                    if registered && self.outbound.send(keepalive).await.is_err() {
                        break "outbound stream closed".to_owned();
                    }
                    continue;
                }
            };
            let message = match next {
                None => break self.why_lost("stream ended".to_owned()).await,
                // A guest's stream says how it ended: there is no VM report to wait for.
                Some(Err(broken @ StreamBroken::GuestEnded { .. })) => break broken.to_string(),
                Some(Err(broken)) => break self.why_lost(broken.to_string()).await,
                Some(Ok(message)) => message,
            };
            effects.extend(lock(&self.connection).on_message(message));
            while let Some(effect) = effects.pop_front() {
                match effect {
                    Effect::InPeer(effect) => effect.apply(&self.support),
                    Effect::ToChaincode(ToChaincode::Send(message)) => {
                        let sent = self.outbound.send(Box::new(message)).await;
                        if sent.is_err() {
                            break 'serve "outbound stream closed".to_owned();
                        }
                    }
                    Effect::ToChaincode(ToChaincode::Close(reason)) => break 'serve reason,
                }
            }
        };
        match lock(&self.connection).close() {
            Some(handle) => {
                info!(chaincode = handle.name(), %reason, "chaincode disconnected");
                self.support.registry().deregister(&handle);
            }
            None => debug!(%reason, "unregistered chaincode stream ended"),
        }
        self.contexts.close_all(&reason);
    }

    /// Resolves once the chaincode has been retired and has no transaction left to finish;
    /// from then on no transaction opens on it.
    async fn retired_and_idle(&self) {
        self.retired.cancelled().await;
        loop {
            self.contexts.idle().await;
            if self.contexts.close_if_idle(RETIRED) {
                return;
            }
        }
    }

    /// Why the chaincode's stream was lost: how its VM saw it end, when the peer launched it
    /// and the VM says so in time, else `reason`.
    async fn why_lost(&self, reason: String) -> String {
        let registered = lock(&self.connection)
            .registered()
            .map(|handle| (handle.name().to_owned(), handle.namespace().to_owned()));
        let Some((name, namespace)) = registered else {
            return reason;
        };
        match self.support.exit_reason(&namespace).await {
            Some(exit) => format!("chaincode {name} {exit}"),
            None => reason,
        }
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
