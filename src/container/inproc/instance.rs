//! Starting and running one guest instance as a task of the peer's runtime.
//!
//! The guest's `main` runs on a wasmtime fiber inside an ordinary tokio task: when it waits in
//! `receive`, the fiber suspends and the worker thread is free. A transaction handed to the guest
//! wakes its task on the thread that sent it, so a guest and the handler answering it share a
//! thread and no transaction pays for an OS thread wake-up.
//!
//! A start runs the guest's first run (up to its first wait: registered and waiting for the peer,
//! for a guest that behaves) on the starting task, and only then spawns the rest. So a launch
//! finds its chaincode registered when the start returns, and arms no timer to wait for it.

use std::future::{Future, poll_fn};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use ccvm_sandbox::{GuestExit, GuestState, TickerHold, guest_wasi, run_guest, sandboxed_store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::error::InprocError;
use super::host::{BlockStore, GuestEnds, InprocGuest, InprocLink};
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
}

impl InstanceHandle {
    /// Stops the guest: a waiting guest at once, a computing one at its next epoch check, within
    /// [`EPOCH_TICK`].
    ///
    /// [`EPOCH_TICK`]: super::EPOCH_TICK
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The instance as a started chaincode: how to stop it and how it ended.
    pub(super) fn into_started(self) -> Started {
        let stop = self.stop;
        Started {
            stop: Box::new(move || stop.cancel()),
            exited: self.exited,
        }
    }

    /// Waits until the instance ends.
    pub async fn wait(self) -> GuestExit {
        self.task
            .await
            .unwrap_or_else(|e| GuestExit::Trapped(format!("instance task failed: {e}")))
    }
}

/// What one instance is given beyond the peer channel: its WASI environment, the block store if
/// it may read it, a host directory if one is granted to it, and the token cancelled when its
/// code is replaced.
pub(super) struct Grants<'a> {
    pub env: &'a [(String, String)],
    pub blocks: Option<Arc<dyn BlockStore>>,
    pub dir: Option<&'a Path>,
    pub replaced: Option<CancellationToken>,
}

/// New channels between a guest and the peer: the guest's ends, and the peer's.
pub(super) fn guest_channels() -> (GuestEnds, (InboundMessages, OutboundMessages)) {
    let (to_peer, inbound) = mpsc::channel(CHANNEL_BUFFER);
    let (outbound, from_peer) = mpsc::channel(CHANNEL_BUFFER);
    ((to_peer, from_peer), (inbound, outbound))
}

/// Connects a new instance launched as `name` to the peer and runs its `main`, with the peer's
/// side of the connection, up to its first wait; then spawns the rest as a task: one task per
/// instance, so the guest and its handler share a thread and a launch wakes no other worker.
pub(super) async fn start(
    pre: &CommandPre<InprocGuest>,
    name: &str,
    grants: Grants<'_>,
    connector: &StreamConnector,
    limits: &InprocLimits,
    (live, ticker): (LiveInstance, TickerHold),
) -> Result<InstanceHandle, InprocError> {
    let Grants {
        env,
        blocks,
        dir,
        replaced,
    } = grants;
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
        replaced,
    })?;
    let link = InprocLink::new(guest_ends, peer.inline, blocks);
    let state = GuestState::new(name, wasi, link, &limits.wasm, ticker)
        .registering_within(limits.register_timeout);
    let mut store = sandboxed_store(pre.engine(), state, limits.wasm.tx_deadline);
    let pre = pre.clone();
    let name = name.to_owned();
    let (notice, exited) = ExitReport::new();
    let guest = async move {
        let _live = live;
        let exit = tokio::select! {
            exit = run_guest(&mut store, &pre) => exit,
            () = stopped.cancelled() => GuestExit::Stopped,
        };
        let metrics = metrics();
        metrics.guest_exits.with_label_values(&[exit.kind()]).inc();
        #[expect(clippy::cast_precision_loss, reason = "a histogram of memory sizes")]
        let peak = store.data().memory_peak_bytes() as f64;
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
                store.data().link().end(ended).await;
            }
        }
        exit
    };
    let task = spawn_after_first_run(async move {
        let (exit, ()) = tokio::join!(guest, peer.serve);
        exit
    })
    .await;
    Ok(InstanceHandle { task, stop, exited })
}

/// Polls `future` once on the calling task, so that it does all it can before it first has to
/// wait, then spawns the rest as a task of its own. (A future may be polled by another task
/// than the one that polled it before: it wakes whichever polled it last.)
async fn spawn_after_first_run<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Box::pin(future);
    match poll_fn(|context| Poll::Ready(future.as_mut().poll(context))).await {
        Poll::Ready(output) => tokio::spawn(std::future::ready(output)),
        Poll::Pending => tokio::spawn(future),
    }
}
