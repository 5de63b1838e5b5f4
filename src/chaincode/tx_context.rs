//! Transaction contexts: what the peer knows about a transaction while a chaincode runs it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ccvm_proto::protos::{ChaincodeMessage, SignedProposal};
use tokio::sync::{Notify, oneshot};

use ccvm_proto::MessageType;

use super::queries::QueryIterator;
use crate::ledger::TxSimulator;
use crate::metrics::{ShimRequestMetrics, metrics};
use crate::sync::lock;

/// A simulator shared by a transaction and the chaincodes it invokes on the same channel.
pub type SharedSimulator = Arc<Mutex<TxSimulator>>;

/// The requests a chaincode makes during a transaction, one metrics slot each.
const SHIM_REQUESTS: [MessageType; 15] = [
    MessageType::GetState,
    MessageType::GetStateMultiple,
    MessageType::PutState,
    MessageType::DelState,
    MessageType::WriteBatchState,
    MessageType::GetStateByRange,
    MessageType::QueryStateNext,
    MessageType::QueryStateClose,
    MessageType::GetQueryResult,
    MessageType::GetHistoryForKey,
    MessageType::GetStateMetadata,
    MessageType::PutStateMetadata,
    MessageType::GetPrivateDataHash,
    MessageType::PurgePrivateData,
    MessageType::InvokeChaincode,
];

/// Fabric's shim-request metrics of one handler's requests on one channel, each request type's
/// label set resolved on its first use, so that recording a request takes no lock.
pub(crate) struct ShimMetricsTable {
    channel: String,
    chaincode: String,
    slots: [OnceLock<ShimRequestMetrics>; SHIM_REQUESTS.len()],
}

impl ShimMetricsTable {
    fn new(channel: &str, chaincode: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            chaincode: chaincode.to_owned(),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The metrics of requests of `kind`; `None` for a type that is not a shim request.
    pub fn of(&self, kind: MessageType) -> Option<&ShimRequestMetrics> {
        let slot = SHIM_REQUESTS.iter().position(|request| *request == kind)?;
        Some(self.slots[slot].get_or_init(|| {
            metrics().shim_request(kind.as_str_name(), &self.channel, &self.chaincode)
        }))
    }
}

/// One running transaction on one chaincode.
pub(crate) struct TxContext {
    pub tx: TxInfo,
    /// Where the transaction's shim requests are counted.
    pub shim_metrics: Arc<ShimMetricsTable>,
    iterators: Mutex<HashMap<String, QueryIterator>>,
    next_iterator: Mutex<u64>,
    done: Mutex<Option<oneshot::Sender<ChaincodeMessage>>>,
}

impl TxContext {
    /// Locks the simulator; a poisoned lock is recovered since the simulator holds no invariant a
    /// panic could break halfway.
    pub fn simulator(&self) -> MutexGuard<'_, TxSimulator> {
        lock(&self.tx.simulator)
    }

    /// A fresh id for an iterator of this transaction.
    pub fn new_iterator_id(&self) -> String {
        let mut next = lock(&self.next_iterator);
        *next += 1;
        format!("{}-{}", self.tx.tx_id, *next)
    }

    /// Takes an open iterator out to advance it; put it back with [`Self::put_iterator`].
    pub fn take_iterator(&self, id: &str) -> Option<QueryIterator> {
        lock(&self.iterators).remove(id)
    }

    /// Keeps an iterator open under `id` (new, or returned after [`Self::take_iterator`]).
    pub fn put_iterator(&self, id: String, iterator: QueryIterator) {
        lock(&self.iterators).insert(id, iterator);
    }

    /// Hands the chaincode's final message to the waiting executor. Returns false if none waits.
    pub fn complete(&self, message: ChaincodeMessage) -> bool {
        lock(&self.done)
            .take()
            .is_some_and(|waiter| waiter.send(message).is_ok())
    }
}

/// What the peer knows about a running transaction.
pub(crate) struct TxInfo {
    pub channel: String,
    pub tx_id: String,
    /// The chaincode's ledger namespace.
    pub namespace: String,
    pub signed_proposal: Option<SignedProposal>,
    pub simulator: SharedSimulator,
    /// Whether writes are refused (a call into another channel is read-only).
    pub read_only: bool,
}

/// Running transactions by channel, then transaction id, so that a lookup by `&str` builds no
/// key. A channel's map stays once made: a handler sees few channels.
type ByChannel = HashMap<String, HashMap<String, Arc<TxContext>>>;

/// The running transactions of one handler, keyed by channel and transaction id.
#[derive(Default)]
pub(crate) struct TxContexts {
    contexts: Mutex<ByChannel>,
    /// How many transactions `contexts` holds, changed under its lock and read without it.
    running: AtomicUsize,
    /// How many transactions have been opened in all.
    opened: AtomicU64,
    closed_because: Mutex<Option<String>>,
    /// Woken when the last running transaction ends.
    idle: Notify,
    /// The shim-request metrics of this handler, by channel.
    shim_metrics: Mutex<HashMap<String, Arc<ShimMetricsTable>>>,
}

/// Why a transaction's context was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenRefused {
    /// The transaction id is already running.
    Running,
    /// The connection has ended, for the reason given: the transaction would never be answered.
    Closed(String),
}

impl TxContexts {
    /// Opens a context, unless the transaction id is already running or the connection has
    /// ended.
    pub fn open(
        &self,
        tx: TxInfo,
    ) -> Result<(Arc<TxContext>, oneshot::Receiver<ChaincodeMessage>), OpenRefused> {
        let mut contexts = lock(&self.contexts);
        if let Some(reason) = lock(&self.closed_because).clone() {
            return Err(OpenRefused::Closed(reason));
        }
        let channel = match contexts.get_mut(tx.channel.as_str()) {
            Some(channel) => channel,
            None => contexts.entry(tx.channel.clone()).or_default(),
        };
        if channel.contains_key(tx.tx_id.as_str()) {
            return Err(OpenRefused::Running);
        }
        let shim_metrics = Arc::clone(
            lock(&self.shim_metrics)
                .entry(tx.channel.clone())
                .or_insert_with(|| Arc::new(ShimMetricsTable::new(&tx.channel, &tx.namespace))),
        );
        let (sender, receiver) = oneshot::channel();
        let tx_id = tx.tx_id.clone();
        let context = Arc::new(TxContext {
            tx,
            shim_metrics,
            iterators: Mutex::default(),
            next_iterator: Mutex::default(),
            done: Mutex::new(Some(sender)),
        });
        channel.insert(tx_id, Arc::clone(&context));
        self.running.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok((context, receiver))
    }

    /// The context of a running transaction.
    pub fn get(&self, channel: &str, tx_id: &str) -> Option<Arc<TxContext>> {
        lock(&self.contexts).get(channel)?.get(tx_id).cloned()
    }

    /// How many transactions are running.
    pub fn len(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// How many transactions have been opened since the connection began.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Ends a transaction; its iterators are dropped with it.
    pub fn close(&self, channel: &str, tx_id: &str) {
        let mut contexts = lock(&self.contexts);
        let Some(running) = contexts.get_mut(channel) else {
            return;
        };
        if running.remove(tx_id).is_none() {
            return;
        }
        if self.running.fetch_sub(1, Ordering::Relaxed) == 1 {
            drop(contexts);
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no transaction is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Ends the connection for `reason` if no transaction is running, so that none opens
    /// after; returns whether it did.
    pub fn close_if_idle(&self, reason: &str) -> bool {
        let contexts = lock(&self.contexts);
        if self.len() > 0 {
            return false;
        }
        *lock(&self.closed_because) = Some(reason.to_owned());
        drop(contexts);
        true
    }

    /// Why the connection ended, once it has.
    pub fn closed_because(&self) -> Option<String> {
        lock(&self.closed_because).clone()
    }

    /// Ends every transaction because the connection ended, dropping their waiters so that
    /// executors see the disconnect and its reason.
    pub fn close_all(&self, reason: &str) {
        let mut contexts = lock(&self.contexts);
        lock(&self.closed_because).get_or_insert_with(|| reason.to_owned());
        self.running.store(0, Ordering::Relaxed);
        for context in contexts
            .drain()
            .flat_map(|(_, running)| running.into_values())
        {
            lock(&context.done).take();
        }
        drop(contexts);
        self.idle.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{DEFAULT_CHANNEL, Ledger};

    fn tx(ledger: &Ledger, tx_id: &str) -> anyhow::Result<TxInfo> {
        Ok(TxInfo {
            channel: DEFAULT_CHANNEL.to_owned(),
            tx_id: tx_id.to_owned(),
            namespace: "cc".to_owned(),
            signed_proposal: None,
            simulator: Arc::new(Mutex::new(ledger.new_simulator(DEFAULT_CHANNEL, tx_id)?)),
            read_only: false,
        })
    }

    #[tokio::test]
    async fn idle_resolves_when_the_last_transaction_closes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let contexts = Arc::new(TxContexts::default());
        for tx_id in ["a", "b"] {
            anyhow::ensure!(contexts.open(tx(&ledger, tx_id)?).is_ok(), "{tx_id} is new");
        }
        let idle = tokio::spawn({
            let contexts = Arc::clone(&contexts);
            async move { contexts.idle().await }
        });
        contexts.close(DEFAULT_CHANNEL, "a");
        tokio::task::yield_now().await;
        assert!(!idle.is_finished(), "one transaction still runs");
        contexts.close(DEFAULT_CHANNEL, "b");
        idle.await?;
        Ok(())
    }

    #[test]
    fn a_connection_closed_while_idle_opens_no_transaction_after() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let contexts = TxContexts::default();
        anyhow::ensure!(contexts.open(tx(&ledger, "a")?).is_ok(), "a is new");
        assert!(!contexts.close_if_idle("retired"), "a still runs");
        contexts.close(DEFAULT_CHANNEL, "a");
        assert!(contexts.close_if_idle("retired"));
        assert_eq!(
            contexts.open(tx(&ledger, "b")?).err(),
            Some(OpenRefused::Closed("retired".to_owned()))
        );
        assert_eq!(contexts.closed_because().as_deref(), Some("retired"));
        Ok(())
    }
}
