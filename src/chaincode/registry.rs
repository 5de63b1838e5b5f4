//! The registry of connected chaincodes and the handle used to run transactions on one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccvm_proto::Message;
use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::error::{ChaincodeError, Result, short_tx};
use super::support::ExecuteRequest;
use super::tx_context::{TxContexts, TxInfo};
use crate::sync::lock;

static NEXT_HANDLE_ID: AtomicU64 = AtomicU64::new(1);

/// How often a retired chaincode checks whether its last transaction has finished.
const RETIRE_POLL: Duration = Duration::from_millis(5);

/// A registered chaincode: where to send it messages and its running transactions.
#[derive(Clone)]
pub struct HandlerHandle {
    id: u64,
    name: String,
    outbound: mpsc::Sender<ChaincodeMessage>,
    pub(crate) contexts: Arc<TxContexts>,
    retired: CancellationToken,
}

impl HandlerHandle {
    pub(crate) fn new(
        name: String,
        outbound: mpsc::Sender<ChaincodeMessage>,
        contexts: Arc<TxContexts>,
    ) -> Self {
        Self {
            id: NEXT_HANDLE_ID.fetch_add(1, Ordering::Relaxed),
            name,
            outbound,
            contexts,
            retired: CancellationToken::new(),
        }
    }

    /// Resolves once the chaincode has been retired (a newer instance takes its place) and has
    /// no transaction left to finish.
    pub(crate) async fn retired_and_idle(&self) {
        self.retired.cancelled().await;
        while self.running_transactions() > 0 {
            tokio::time::sleep(RETIRE_POLL).await;
        }
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
        let outcome = match self.outbound.send(message).await {
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

/// Connected chaincodes by registered name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: Arc<Mutex<HashMap<String, Registered>>>,
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
            .get(&handle.name)
            .is_some_and(|entry| !entry.retiring)
        {
            return Err(ChaincodeError::AlreadyRegistered { name: handle.name });
        }
        handlers.insert(
            handle.name.clone(),
            Registered {
                handle,
                ready: false,
                retiring: false,
            },
        );
        Ok(())
    }

    /// Retires the chaincode registered as exactly `name`: it takes no new transactions,
    /// finishes those it runs, then its connection closes. Returns whether one was registered.
    pub fn retire(&self, name: &str) -> bool {
        let mut handlers = lock(&self.handlers);
        match handlers.get_mut(name) {
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
            .get(&handle.name)
            .is_some_and(|entry| entry.handle.id == handle.id)
        {
            handlers.remove(&handle.name);
        }
    }

    /// The serving handler for a chaincode: an exact registered name, or `name` matching the part
    /// of a registered `name:version` before the colon.
    pub fn get(&self, name: &str) -> Option<HandlerHandle> {
        let handlers = lock(&self.handlers);
        handlers
            .get(name)
            .or_else(|| handlers.values().find(|e| e.handle.namespace() == name))
            .filter(|entry| entry.serves())
            .map(|entry| entry.handle.clone())
    }

    /// The names of all serving chaincodes, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.handlers)
            .values()
            .filter(|entry| entry.serves())
            .map(|entry| entry.handle.name.clone())
            .collect();
        names.sort();
        names
    }
}
