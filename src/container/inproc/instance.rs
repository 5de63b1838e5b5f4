//! Starting and running one guest instance as a task of the peer's runtime.
//!
//! The guest's `main` runs on a wasmtime fiber inside an ordinary tokio task: when it waits in
//! `receive`, the fiber suspends and the worker thread is free. A transaction handed to the guest
//! wakes its task on the thread that sent it, so a guest and the handler answering it share a
//! thread and no transaction pays for an OS thread wake-up.

use std::future::{Future, poll_fn};
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ccvm_sandbox::{GuestExit, TickerHold, classify, guest_wasi};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::error::InprocError;
use super::host::{BlockStore, GuestEnds, GuestState};
use super::limits::InprocLimits;
use crate::container::{
    ChaincodeStreams, Exit, ExitReport, InboundMessages, OutboundMessages, Started, StreamBroken,
    StreamConnector,
};
use crate::metrics::metrics;

/// Messages buffered between a guest and its handler in each direction.
const CHANNEL_BUFFER: usize = 64;

/// Counts a pool slot in use (`ccvm_wasm_pool_slots_in_use`) for as long as it is held.
pub(super) struct SlotInUse(());

impl SlotInUse {
    pub fn new() -> Self {
        metrics().wasm_pool_slots_in_use.inc();
        Self(())
    }
}

impl Drop for SlotInUse {
    fn drop(&mut self) {
        metrics().wasm_pool_slots_in_use.dec();
    }
}

/// Counts a live instance, and the pool slot it holds, for as long as it is held.
pub(super) struct LiveInstance {
    count: Arc<AtomicUsize>,
    _slot: SlotInUse,
}

impl LiveInstance {
    pub fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        metrics().wasm_instances.inc();
        Self {
            count: Arc::clone(count),
            _slot: SlotInUse::new(),
        }
    }
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        metrics().wasm_instances.dec();
    }
}

/// A running guest instance.
pub struct InstanceHandle {
    task: JoinHandle<GuestExit>,
    stop: CancellationToken,
    exited: ExitReport,
    /// Told when the first run is over; taken by whoever waits for it.
    first_run: Option<oneshot::Receiver<()>>,
}

impl InstanceHandle {
    /// Stops the guest: a waiting guest at once, a computing one at its next epoch check, within
    /// [`EPOCH_TICK`].
    ///
    /// [`EPOCH_TICK`]: super::EPOCH_TICK
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The instance as a started chaincode: how to stop it, how it ended, when its first run
    /// was over, and how long it may take to register.
    pub(super) fn into_started(self, register_within: Duration) -> Started {
        let stop = self.stop;
        Started {
            stop: Box::new(move || stop.cancel()),
            exited: self.exited,
            first_run: self.first_run,
            register_within: Some(register_within),
        }
    }

    /// Waits until the guest's first run is over: it registered and waits for the peer, it
    /// ended, or it was computing when an epoch check made it yield.
    /// Returns at once if it was waited for before.
    pub async fn first_run(&mut self) {
        if let Some(ran) = self.first_run.take() {
            let _ = ran.await;
        }
    }

    /// Waits until the instance ends.
    pub async fn wait(self) -> GuestExit {
        self.task
            .await
            .unwrap_or_else(|e| GuestExit::Trapped(format!("instance task failed: {e}")))
    }
}

/// Instantiates the guest in `store` and runs its `main` to its end.
///
/// wasmtime's instantiation and call futures are boxed: held inline they make the instance's
/// task four times larger, and spawning it copies every byte.
pub(super) async fn run_guest(
    store: &mut Store<GuestState>,
    pre: &CommandPre<GuestState>,
    name: &str,
) -> GuestExit {
    let command = match Box::pin(pre.instantiate_async(&mut *store)).await {
        Ok(command) => command,
        Err(e) => return GuestExit::Trapped(format!("instantiation failed: {}", e.root_cause())),
    };
    match Box::pin(command.wasi_cli_run().call_run(&mut *store)).await {
        Ok(Ok(())) => GuestExit::Finished,
        Ok(Err(())) => GuestExit::Failed,
        Err(error) => classify(name, &error, store.data().limiter.memory_refused),
    }
}

/// What one instance is given beyond the peer channel: its WASI environment, the block store if
/// it may read it, and a host directory if one is granted to it.
pub(super) struct Grants<'a> {
    pub env: &'a [(String, String)],
    pub blocks: Option<Arc<dyn BlockStore>>,
    pub dir: Option<&'a Path>,
}

/// New channels between a guest and the peer: the guest's ends, and the peer's.
pub(super) fn guest_channels() -> (GuestEnds, (InboundMessages, OutboundMessages)) {
    let (to_peer, inbound) = mpsc::channel(CHANNEL_BUFFER);
    let (outbound, from_peer) = mpsc::channel(CHANNEL_BUFFER);
    ((to_peer, from_peer), (inbound, outbound))
}

/// A store for one guest of `pre` holding `state`, within `limits`: its memory cap, and its
/// transaction deadline checked at each epoch tick, where a guest that has computed since its
/// last check also yields to other tasks. (The first check after a wait comes at once when the
/// guest waited past a tick; yielding there would only send an idle guest's next transaction
/// through the scheduler, waking another worker.)
pub(super) fn sandboxed_store(
    pre: &CommandPre<GuestState>,
    state: GuestState,
    limits: &InprocLimits,
) -> Store<GuestState> {
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limiter);
    let deadline = limits.wasm.tx_deadline;
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        state.clock.check_deadline(deadline)?;
        if std::mem::take(&mut state.resumed) {
            return Ok(UpdateDeadline::Continue(1));
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
    store
}

/// Connects a new instance launched as `name` to the peer and spawns its `main` as a task,
/// which also serves the peer's side of the connection: one task per instance, so the guest and
/// its handler share a thread and a launch wakes no other worker.
pub(super) fn start(
    pre: &CommandPre<GuestState>,
    name: &str,
    grants: Grants<'_>,
    connector: &StreamConnector,
    limits: &InprocLimits,
    (live, ticker): (LiveInstance, TickerHold),
) -> Result<InstanceHandle, InprocError> {
    let Grants { env, blocks, dir } = grants;
    let wasi = guest_wasi(env, dir).map_err(|reason| InprocError::Grant {
        chaincode: name.to_owned(),
        reason,
    })?;
    let (guest_ends, (inbound, outbound)) = guest_channels();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let peer = connector(ChaincodeStreams {
        launched_as: name.to_owned(),
        inbound,
        outbound,
        end_on_timeout: Some(stop.clone()),
    })?;
    let state = GuestState::new(name, wasi, guest_ends, peer.inline, limits, blocks, ticker);
    let mut store = sandboxed_store(pre, state, limits);
    let pre = pre.clone();
    let name = name.to_owned();
    let (notice, exited) = ExitReport::new();
    let guest = async move {
        let _live = live;
        let exit = tokio::select! {
            exit = run_guest(&mut store, &pre, &name) => exit,
            () = stopped.cancelled() => GuestExit::Stopped,
        };
        let metrics = metrics();
        metrics.guest_exits.with_label_values(&[exit.kind()]).inc();
        #[expect(clippy::cast_precision_loss, reason = "a histogram of memory sizes")]
        let peak = store.data().limiter.memory_peak_bytes as f64;
        metrics.guest_memory_peak.observe(peak);
        notice.report(Exit::Guest(exit.clone()));
        match &exit {
            GuestExit::Finished => info!(chaincode = %name, "wasm chaincode finished"),
            other => {
                warn!(chaincode = %name, exit = ?other, "wasm chaincode ended");
                let ended = StreamBroken::GuestEnded {
                    chaincode: name.clone(),
                    exit: other.clone(),
                };
                let _ = store.data().to_peer.send(Err(ended)).await;
            }
        }
        exit
    };
    let (ran, first_run) = oneshot::channel();
    let task = tokio::spawn(after_first_poll(
        async move {
            let (exit, ()) = tokio::join!(guest, peer.serve);
            exit
        },
        ran,
    ));
    Ok(InstanceHandle {
        task,
        stop,
        exited,
        first_run: Some(first_run),
    })
}

/// Runs `future`, telling `ran` once its first poll is over: it did all it could before it
/// had to wait, or it ended.
async fn after_first_poll<F: Future>(future: F, ran: oneshot::Sender<()>) -> F::Output {
    let mut future = pin!(future);
    let mut ran = Some(ran);
    poll_fn(|context| {
        let poll = future.as_mut().poll(context);
        if let Some(ran) = ran.take() {
            let _ = ran.send(());
        }
        poll
    })
    .await
}
