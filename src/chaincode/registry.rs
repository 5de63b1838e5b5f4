//! The registry of connected chaincodes and the handle used to run transactions on one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccvm_proto::Message;
use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::{ChaincodeError, Result, short_tx};
use super::support::ExecuteRequest;
use super::tx_context::{TxContexts, TxInfo};
use crate::container::OutboundMessages;
use crate::sync::lock;

static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

/// A registered chaincode: where to send it messages and its running transactions.
#[derive(Clone)]
pub struct HandlerHandle {
    id: u64,
    name: String,
    outbound: OutboundMessages,
    pub(crate) contexts: Arc<TxContexts>,
    retired: CancellationToken,
    end_on_timeout: Option<CancellationToken>,
}

impl HandlerHandle {
    pub(crate) fn new(name: String, outbound: OutboundMessages, contexts: Arc<TxContexts>) -> Self {
        Self {
            id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed),
            name,
            outbound,
            contexts,
            retired: CancellationToken::new(),
            end_on_timeout: None,
        }
    }

    /// Cancels `retired` when the chaincode is retired, for whoever serves its connection.
    #[must_use]
    pub(crate) fn retired_through(mut self, retired: CancellationToken) -> Self {
        self.retired = retired;
        self
    }

    /// Where the chaincode's messages go.
    pub(crate) fn outbound(&self) -> &OutboundMessages {
        &self.outbound
    }

    /// Lets the peer end the chaincode through `end` when one of its transactions times out.
    #[must_use]
    pub(crate) fn ended_on_timeout_by(mut self, end: Option<CancellationToken>) -> Self {
        self.end_on_timeout = end;
        self
    }

    /// What ends the chaincode when one of its transactions times out, for one running inside
    /// the peer.
    pub(crate) fn end_on_timeout(&self) -> Option<&CancellationToken> {
        self.end_on_timeout.as_ref()
    }

    /// The name the chaincode registered with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a TRANSACTION (or INIT) and waits for COMPLETED, at most `timeout`.
    ///
    /// # Errors
    /// [`ChaincodeError::DuplicateTx`], [`ChaincodeError::Timeout`],
    /// [`ChaincodeError::Disconnected`], or [`ChaincodeError::Failed`] when the chaincode answers
    /// with ERROR.
    pub async fn execute(
        &self,
        request: ExecuteRequest,
        timeout: Duration,
    ) -> Result<ChaincodeMessage> {
        let short = short_tx(&request.tx_id);
        let (_, done) = self
            .contexts
            .open(TxInfo {
                channel: request.channel.clone(),
                tx_id: request.tx_id.clone(),
                namespace: self.namespace().to_owned(),
                signed_proposal: request.signed_proposal.clone(),
                simulator: request.simulator,
                read_only: request.read_only,
            })
            .ok_or_else(|| ChaincodeError::DuplicateTx {
                channel: request.channel.clone(),
                chaincode: self.name.clone(),
                short_tx: short.clone(),
            })?;
        let kind = if request.input.is_init {
            MessageType::Init
        } else {
            MessageType::Transaction
        };
        let message = ChaincodeMessage {
            r#type: kind as i32,
            payload: request.input.encode_to_vec(),
            txid: request.tx_id.clone(),
            proposal: request.signed_proposal,
            channel_id: request.channel.clone(),
            ..Default::default()
        };
        let outcome = match self.outbound.send(Box::new(message)).await {
            Ok(()) => Some(tokio::time::timeout(timeout, done).await),
            Err(_) => None,
        };
        self.contexts.close(&request.channel, &request.tx_id);
        match outcome {
            None | Some(Ok(Err(_))) => Err(ChaincodeError::Disconnected {
                chaincode: self.name.clone(),
                reason: self
                    .contexts
                    .closed_because()
                    .unwrap_or_else(|| "stream closed during the transaction".to_owned()),
            }),
            Some(Err(_)) => Err(ChaincodeError::Timeout {
                channel: request.channel,
                chaincode: self.name.clone(),
                short_tx: short,
                timeout,
            }),
            Some(Ok(Ok(reply))) if reply.r#type == MessageType::Error as i32 => {
                Err(ChaincodeError::Failed {
                    chaincode: self.name.clone(),
                    message: String::from_utf8_lossy(&reply.payload).into_owned(),
                })
            }
            Some(Ok(Ok(reply))) => Ok(reply),
        }
    }

    /// How many transactions the chaincode is running now.
    pub fn running_transactions(&self) -> usize {
        self.contexts.len()
    }

    /// The ledger namespace of the chaincode: its name without a `:version` suffix.
    pub fn namespace(&self) -> &str {
        self.name.split(':').next().unwrap_or(&self.name)
    }
}

/// A registered handler, and whether the chaincode has been told it is ready. Until then no
/// transaction may be sent to it: it would reach the chaincode before REGISTERED and READY. A
/// retiring handler gets no new transactions and gives up its name to the next registration.
struct Registered {
    handle: HandlerHandle,
    ready: bool,
    retiring: bool,
}

impl Registered {
    fn serves(&self) -> bool {
        self.ready && !self.retiring
    }
}

/// Registered handlers by name, and their names by ledger namespace, so that a chaincode
/// registered as `name:version` is found by `name` without a scan of every handler.
#[derive(Default)]
struct Handlers {
    by_name: HashMap<String, Registered>,
    by_namespace: HashMap<String, Vec<String>>,
}

impl Handlers {
    /// Adds `entry`, replacing a handler registered under the same name.
    fn insert(&mut self, entry: Registered) {
        let name = entry.handle.name.clone();
        let namespace = entry.handle.namespace().to_owned();
        if self.by_name.insert(name.clone(), entry).is_none() {
            self.by_namespace.entry(namespace).or_default().push(name);
        }
    }

    fn remove(&mut self, name: &str) {
        let Some(entry) = self.by_name.remove(name) else {
            return;
        };
        let namespace = entry.handle.namespace();
        if let Some(names) = self.by_namespace.get_mut(namespace) {
            names.retain(|registered| registered != name);
            if names.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }

    /// The serving handler registered as exactly `name`, or else one registered as
    /// `name:version`.
    fn serving(&self, name: &str) -> Option<&HandlerHandle> {
        if let Some(entry) = self.by_name.get(name) {
            return entry.serves().then_some(&entry.handle);
        }
        self.by_namespace
            .get(name)?
            .iter()
            .filter_map(|registered| self.by_name.get(registered))
            .find(|entry| entry.serves())
            .map(|entry| &entry.handle)
    }
}

/// Connected chaincodes by registered name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: Arc<Mutex<Handlers>>,
    registered: Arc<Notify>,
}

impl HandlerRegistry {
    /// Claims the handler's name (taking it from a retiring handler); the handler serves
    /// transactions once [`Self::ready`] is called.
    ///
    /// # Errors
    /// [`ChaincodeError::AlreadyRegistered`] when the name is taken.
    pub fn register(&self, handle: HandlerHandle) -> Result<()> {
        let mut handlers = lock(&self.handlers);
        if handlers
            .by_name
            .get(&handle.name)
            .is_some_and(|entry| !entry.retiring)
        {
            return Err(ChaincodeError::AlreadyRegistered { name: handle.name });
        }
        handlers.insert(Registered {
            handle,
            ready: false,
            retiring: false,
        });
        Ok(())
    }

    /// Retires the chaincode registered as exactly `name`: it takes no new transactions,
    /// finishes those it runs, then its connection closes. Returns whether one was registered.
    pub fn retire(&self, name: &str) -> bool {
        let mut handlers = lock(&self.handlers);
        match handlers.by_name.get_mut(name) {
            Some(entry) if !entry.retiring => {
                entry.retiring = true;
                entry.handle.retired.cancel();
                true
            }
            _ => false,
        }
    }

    /// Opens a registered handler to transactions, once its chaincode has been sent READY.
    pub fn ready(&self, handle: &HandlerHandle) {
        if let Some(entry) = lock(&self.handlers)
            .by_name
            .get_mut(&handle.name)
            .filter(|entry| entry.handle.id == handle.id)
        {
            entry.ready = true;
        }
        self.registered.notify_waiters();
    }

    /// Resolves once a chaincode of that name is registered and ready.
    pub async fn registered(&self, name: &str) -> HandlerHandle {
        loop {
            let notified = self.registered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(handle) = self.get(name) {
                return handle;
            }
            notified.await;
        }
    }

    /// Removes the handler, if it is still the one registered under its name.
    pub fn deregister(&self, handle: &HandlerHandle) {
        let mut handlers = lock(&self.handlers);
        if handlers
            .by_name
            .get(&handle.name)
            .is_some_and(|entry| entry.handle.id == handle.id)
        {
            handlers.remove(&handle.name);
        }
    }

    /// The serving handler for a chaincode: an exact registered name, or `name` matching the part
    /// of a registered `name:version` before the colon.
    pub fn get(&self, name: &str) -> Option<HandlerHandle> {
        lock(&self.handlers).serving(name).cloned()
    }

    /// The names of all serving chaincodes, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.handlers)
            .by_name
            .values()
            .filter(|entry| entry.serves())
            .map(|entry| entry.handle.name.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(name: &str) -> HandlerHandle {
        let (outbound, _) = tokio::sync::mpsc::channel(1);
        HandlerHandle::new(name.to_owned(), outbound, Arc::default())
    }

    fn ready(registry: &HandlerRegistry, name: &str) -> Result<HandlerHandle> {
        let handle = handle(name);
        registry.register(handle.clone())?;
        registry.ready(&handle);
        Ok(handle)
    }

    #[test]
    fn a_versioned_name_is_found_by_its_namespace_until_it_leaves() -> Result<()> {
        let registry = HandlerRegistry::default();
        let first = ready(&registry, "cc:1.0")?;
        ready(&registry, "other:1.0")?;
        assert_eq!(registry.get("cc").map(|h| h.id), Some(first.id));
        assert_eq!(registry.get("cc:1.0").map(|h| h.id), Some(first.id));
        assert!(registry.get("cc:2.0").is_none());

        assert!(registry.retire("cc:1.0"));
        assert!(
            registry.get("cc").is_none(),
            "a retiring handler serves nothing"
        );
        let second = ready(&registry, "cc:2.0")?;
        assert_eq!(registry.get("cc").map(|h| h.id), Some(second.id));

        registry.deregister(&first);
        registry.deregister(&second);
        assert!(registry.get("cc").is_none());
        assert_eq!(registry.names(), vec!["other:1.0".to_owned()]);
        Ok(())
    }

    #[test]
    fn a_retiring_handler_gives_up_its_name_once() -> Result<()> {
        let registry = HandlerRegistry::default();
        let old = ready(&registry, "cc")?;
        assert!(matches!(
            registry.register(handle("cc")),
            Err(ChaincodeError::AlreadyRegistered { .. })
        ));
        registry.retire("cc");
        let new = ready(&registry, "cc")?;
        registry.deregister(&old);
        assert_eq!(registry.get("cc").map(|h| h.id), Some(new.id));
        registry.deregister(&new);
        assert!(registry.names().is_empty());
        Ok(())
    }
}
