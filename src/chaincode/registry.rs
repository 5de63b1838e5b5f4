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
use super::tx_context::{OpenRefused, TxContexts, TxInfo};
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

    /// The id the next handle will have: every handle made from now on has this id or a later
    /// one.
    pub(crate) fn next_id() -> u64 {
        NEXT_HANDLE_ID.load(Ordering::Relaxed)
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

    /// Sends a TRANSACTION (or INIT) and waits for COMPLETED, at most `timeout`; a transaction
    /// this instance no longer takes, as it has been retired or has ended, is handed back to
    /// run on another.
    ///
    /// # Errors
    /// [`ChaincodeError::DuplicateTx`], [`ChaincodeError::Timeout`],
    /// [`ChaincodeError::Disconnected`], or [`ChaincodeError::Failed`] when the chaincode answers
    /// with ERROR.
    pub(crate) async fn execute(
        &self,
        request: ExecuteRequest,
        timeout: Duration,
    ) -> std::result::Result<Result<ChaincodeMessage>, NotBegun> {
        let short = short_tx(&request.tx_id);
        if self.retired.is_cancelled() {
            return Err(NotBegun {
                request,
                reason: RETIRED.to_owned(),
            });
        }
        let opened = self.contexts.open(TxInfo {
            channel: request.channel.clone(),
            tx_id: request.tx_id.clone(),
            namespace: self.namespace().to_owned(),
            signed_proposal: request.signed_proposal.clone(),
            simulator: Arc::clone(&request.simulator),
            read_only: request.read_only,
        });
        let done = match opened {
            Ok((_, done)) => done,
            Err(OpenRefused::Closed(reason)) => return Err(NotBegun { request, reason }),
            Err(OpenRefused::Running) => {
                return Ok(Err(ChaincodeError::DuplicateTx {
                    channel: request.channel,
                    chaincode: self.name.clone(),
                    short_tx: short,
                }));
            }
        };
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
        Ok(match outcome {
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
        })
    }

    /// How many transactions the chaincode is running now.
    pub fn running_transactions(&self) -> usize {
        self.contexts.len()
    }

    /// The ledger namespace of the chaincode: its name without a `:version` suffix.
    pub fn namespace(&self) -> &str {
        namespace_of(&self.name)
    }
}

/// The ledger namespace of a chaincode registered as `name`: the name without a `:version`
/// suffix.
fn namespace_of(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// A registered handler, and whether the chaincode has been told it is ready. Until then no
/// transaction may be sent to it: it would reach the chaincode before REGISTERED and READY. A
/// retired handler (its handle's `retired` cancelled, by the registry or, its code replaced, by
/// its VM) gets no new transactions and gives up its name to the next registration.
struct Registered {
    handle: HandlerHandle,
    ready: bool,
    /// How many transactions it had been given when idle instances were last looked for.
    opened_when_seen: Option<u64>,
}

impl Registered {
    fn new(handle: HandlerHandle) -> Self {
        Self {
            handle,
            ready: false,
            opened_when_seen: None,
        }
    }

    /// Retires the instance; returns whether it had not been retired yet.
    fn retire(&mut self) -> bool {
        if self.retired() {
            return false;
        }
        self.handle.retired.cancel();
        true
    }

    fn retired(&self) -> bool {
        self.handle.retired.is_cancelled()
    }

    fn serves(&self) -> bool {
        self.ready && !self.retired()
    }
}

/// Why a retired instance takes no transaction, and why its connection ends.
pub(crate) const RETIRED: &str = "retired: a newer instance took its place";

/// A transaction handed back by an instance that was retired or ended before it began.
pub(crate) struct NotBegun {
    /// The transaction, to run on another instance.
    pub request: ExecuteRequest,
    /// Why the instance's connection ended.
    pub reason: String,
}

/// The instance of a chaincode chosen for a transaction, and how busy its chaincode is.
pub struct Pick {
    /// The instance to run the transaction on.
    pub handle: HandlerHandle,
    /// How many instances of the chaincode serve.
    pub instances: usize,
    /// Whether every serving instance is running a transaction.
    pub all_busy: bool,
}

/// The instances registered under one name, in the order they registered.
type Instances = Vec<Registered>;

/// Registered handlers by name, and their names by ledger namespace, so that a chaincode
/// registered as `name:version` is found by `name` without a scan of every handler.
#[derive(Default)]
struct Handlers {
    by_name: HashMap<String, Instances>,
    by_namespace: HashMap<String, Vec<String>>,
}

impl Handlers {
    /// Adds `entry` after the instances registered under the same name.
    fn insert(&mut self, entry: Registered) {
        let instances = self.by_name.entry(entry.handle.name.clone()).or_default();
        if instances.is_empty() {
            self.by_namespace
                .entry(entry.handle.namespace().to_owned())
                .or_default()
                .push(entry.handle.name.clone());
        }
        instances.push(entry);
    }

    /// Removes the instance with handle `id` registered as `name`, if it is there.
    fn remove(&mut self, name: &str, id: u64) {
        let Some(instances) = self.by_name.get_mut(name) else {
            return;
        };
        instances.retain(|entry| entry.handle.id != id);
        if !instances.is_empty() {
            return;
        }
        self.by_name.remove(name);
        let namespace = namespace_of(name);
        if let Some(names) = self.by_namespace.get_mut(namespace) {
            names.retain(|registered| registered != name);
            if names.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }

    /// The instance with handle `id` registered as `name`.
    fn entry_mut(&mut self, name: &str, id: u64) -> Option<&mut Registered> {
        self.by_name
            .get_mut(name)?
            .iter_mut()
            .find(|entry| entry.handle.id == id)
    }

    /// The instances registered as exactly `name` if one of them serves, or else those of a
    /// `name:version` of which one serves.
    fn serving(&self, name: &str) -> Option<&Instances> {
        let serves = |instances: &&Instances| instances.iter().any(Registered::serves);
        if let Some(instances) = self.by_name.get(name) {
            return Some(instances).filter(serves);
        }
        self.by_namespace
            .get(name)?
            .iter()
            .filter_map(|registered| self.by_name.get(registered))
            .find(serves)
    }
}

/// Chooses the instance for a transaction among `instances`: the one already running it if one
/// is (so that a chaincode calling itself is refused as a duplicate, as it is with one
/// instance), else the serving one running the fewest transactions, the earliest registered of
/// those (so that later instances fall idle first when load drops).
fn choose(instances: &Instances, tx: Option<(&str, &str)>) -> Option<Pick> {
    let mut serving = instances.iter().filter(|entry| entry.serves());
    let first = serving.next()?;
    let mut chosen = first;
    let mut count = 1;
    let mut least = first.handle.running_transactions();
    for entry in serving {
        count += 1;
        let load = entry.handle.running_transactions();
        if load < least {
            (chosen, least) = (entry, load);
        }
    }
    if count > 1
        && let Some((channel, tx_id)) = tx
        && let Some(running_it) = instances.iter().find(|entry| {
            entry.serves()
                && entry.handle.running_transactions() > 0
                && entry.handle.contexts.get(channel, tx_id).is_some()
        })
    {
        chosen = running_it;
    }
    Some(Pick {
        handle: chosen.handle.clone(),
        instances: count,
        all_busy: least > 0,
    })
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
            .is_some_and(|instances| instances.iter().any(|entry| !entry.retired()))
        {
            return Err(ChaincodeError::AlreadyRegistered { name: handle.name });
        }
        handlers.insert(Registered::new(handle));
        Ok(())
    }

    /// Registers one more instance of a chaincode the peer launched, beside those registered
    /// under its name; it serves transactions once [`Self::ready`] is called.
    pub fn join(&self, handle: HandlerHandle) {
        lock(&self.handlers).insert(Registered::new(handle));
    }

    /// Retires every instance of the chaincode registered as exactly `name`: they take no new
    /// transactions, finish those they run, then their connections close. Returns whether one
    /// of them had not been retired yet.
    pub fn retire(&self, name: &str) -> bool {
        let mut handlers = lock(&self.handlers);
        let mut retired = false;
        for entry in handlers.by_name.get_mut(name).into_iter().flatten() {
            retired |= entry.retire();
        }
        retired
    }

    /// Resolves once an instance of `name` registered since handle id `first_id` was next is
    /// ready; tells whether it serves (it does not when its code was replaced meanwhile).
    pub(crate) async fn registered_since(&self, name: &str, first_id: u64) -> bool {
        loop {
            let notified = self.registered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ready = lock(&self.handlers)
                .by_name
                .get(name)
                .and_then(|instances| {
                    instances
                        .iter()
                        .find(|entry| entry.ready && entry.handle.id >= first_id)
                        .map(Registered::serves)
                });
            if let Some(serves) = ready {
                return serves;
            }
            notified.await;
        }
    }

    /// Retires, of each chaincode with more than one serving instance, those that have been
    /// given no transaction since the last call and run none, the latest registered first,
    /// while one instance is left serving. Returns how many were retired.
    pub(crate) fn retire_idle_instances(&self) -> usize {
        let mut handlers = lock(&self.handlers);
        let mut retired = 0;
        for instances in handlers.by_name.values_mut() {
            let mut serving = instances.iter().filter(|entry| entry.serves()).count();
            for entry in instances.iter_mut().rev() {
                let opened = entry.handle.contexts.opened();
                let idle = entry.opened_when_seen == Some(opened)
                    && entry.handle.running_transactions() == 0;
                entry.opened_when_seen = Some(opened);
                if serving > 1 && idle && entry.serves() {
                    entry.retire();
                    serving -= 1;
                    retired += 1;
                }
            }
        }
        retired
    }

    /// Opens a registered handler to transactions, once its chaincode has been sent READY.
    pub fn ready(&self, handle: &HandlerHandle) {
        if let Some(entry) = lock(&self.handlers).entry_mut(&handle.name, handle.id) {
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

    /// Removes the handler, if it is still registered.
    pub fn deregister(&self, handle: &HandlerHandle) {
        lock(&self.handlers).remove(&handle.name, handle.id);
    }

    /// A serving handler for a chaincode: an exact registered name, or `name` matching the part
    /// of a registered `name:version` before the colon; of several instances, the least busy.
    pub fn get(&self, name: &str) -> Option<HandlerHandle> {
        self.pick(name, None).map(|pick| pick.handle)
    }

    /// The instance of chaincode `name` (found as [`Self::get`] finds it) to run a transaction
    /// on: given the transaction's channel and id, the instance already running it if one is,
    /// else the least busy.
    pub fn pick(&self, name: &str, tx: Option<(&str, &str)>) -> Option<Pick> {
        choose(lock(&self.handlers).serving(name)?, tx)
    }

    /// How many transactions the serving instances of chaincode `name` (found as [`Self::get`]
    /// finds it) are running.
    pub fn running_transactions(&self, name: &str) -> usize {
        lock(&self.handlers).serving(name).map_or(0, |instances| {
            instances
                .iter()
                .filter(|entry| entry.serves())
                .map(|entry| entry.handle.running_transactions())
                .sum()
        })
    }

    /// How many instances of the chaincode registered as exactly `name` serve.
    pub fn instances(&self, name: &str) -> usize {
        lock(&self.handlers)
            .by_name
            .get(name)
            .map_or(0, |instances| {
                instances.iter().filter(|entry| entry.serves()).count()
            })
    }

    /// The names of all serving chaincodes, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.handlers)
            .by_name
            .iter()
            .filter(|(_, instances)| instances.iter().any(Registered::serves))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{DEFAULT_CHANNEL, Ledger};

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

    /// Opens a transaction on `handle`, as an executor does.
    fn run(handle: &HandlerHandle, ledger: &Ledger, tx_id: &str) -> anyhow::Result<()> {
        let simulator = ledger.new_simulator(DEFAULT_CHANNEL, tx_id)?;
        let opened = handle.contexts.open(TxInfo {
            channel: DEFAULT_CHANNEL.to_owned(),
            tx_id: tx_id.to_owned(),
            namespace: handle.namespace().to_owned(),
            signed_proposal: None,
            simulator: Arc::new(Mutex::new(simulator)),
            read_only: false,
        });
        assert!(opened.is_ok(), "{tx_id} is new");
        Ok(())
    }

    fn joined(registry: &HandlerRegistry, name: &str) -> HandlerHandle {
        let handle = handle(name);
        registry.join(handle.clone());
        registry.ready(&handle);
        handle
    }

    #[test]
    fn a_transaction_goes_to_the_least_busy_instance_or_the_one_running_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let registry = HandlerRegistry::default();
        let first = joined(&registry, "cc");
        let second = joined(&registry, "cc");
        assert_eq!(registry.instances("cc"), 2);

        let idle = registry.pick("cc", None).expect("cc serves");
        assert_eq!(idle.handle.id, first.id, "of two idle, the earliest");
        assert!(!idle.all_busy);

        run(&first, &ledger, "a")?;
        let pick = registry.pick("cc", None).expect("cc serves");
        assert_eq!(pick.handle.id, second.id, "the idle one");
        assert!(!pick.all_busy);

        let again = registry
            .pick("cc", Some((DEFAULT_CHANNEL, "a")))
            .expect("cc serves");
        assert_eq!(
            again.handle.id, first.id,
            "the instance already running the transaction, which refuses it as a duplicate"
        );

        run(&second, &ledger, "b")?;
        let busy = registry.pick("cc", None).expect("cc serves");
        assert!(busy.all_busy);
        assert_eq!(busy.instances, 2);
        assert_eq!(registry.running_transactions("cc"), 2);
        Ok(())
    }

    #[tokio::test]
    async fn an_instance_whose_code_was_replaced_serves_nothing_even_registered_after() {
        let registry = HandlerRegistry::default();
        let replaced = CancellationToken::new();
        let of_old_code = || handle("cc").retired_through(replaced.child_token());
        let old = of_old_code();
        registry.join(old.clone());
        registry.ready(&old);
        assert_eq!(registry.get("cc").map(|h| h.id), Some(old.id));

        let first_id = HandlerHandle::next_id();
        replaced.cancel();
        assert!(registry.get("cc").is_none(), "replaced, it serves nothing");
        let late = of_old_code();
        registry.join(late.clone());
        registry.ready(&late);
        assert!(
            !registry.registered_since("cc", first_id).await,
            "registered after its code was replaced, it does not serve"
        );
        assert!(registry.get("cc").is_none());

        let fresh = joined(&registry, "cc");
        assert!(registry.registered_since("cc", fresh.id).await);
        assert_eq!(registry.get("cc").map(|h| h.id), Some(fresh.id));
        assert_eq!(registry.instances("cc"), 1);
        assert!(
            registry.retire("cc"),
            "retiring by name reaches the newer instance"
        );
        assert!(fresh.retired.is_cancelled());
    }

    #[test]
    fn instances_that_ran_nothing_since_the_last_look_are_retired_but_one() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open_with_default_channel(dir.path())?;
        let registry = HandlerRegistry::default();
        let first = joined(&registry, "cc");
        let second = joined(&registry, "cc");
        let third = joined(&registry, "cc");
        let other = ready(&registry, "other")?;

        assert_eq!(
            registry.retire_idle_instances(),
            0,
            "an instance never looked at before is not known to be idle"
        );
        run(&second, &ledger, "a")?;
        second.contexts.close(DEFAULT_CHANNEL, "a");
        assert_eq!(
            registry.retire_idle_instances(),
            2,
            "the first and the third ran nothing since; the second ran a transaction"
        );
        assert!(third.retired.is_cancelled() && first.retired.is_cancelled());
        assert!(!second.retired.is_cancelled() && !other.retired.is_cancelled());
        assert_eq!(
            registry.retire_idle_instances(),
            0,
            "the last instance serving stays"
        );
        assert_eq!(registry.instances("cc"), 1);

        assert!(registry.retire("cc"));
        assert!(second.retired.is_cancelled(), "retiring a name retires all");
        assert!(registry.get("cc").is_none());
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
