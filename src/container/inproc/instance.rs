//! Starting and running one guest instance on a blocking thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::bindings::sync::Command;

use super::determinism::guest_wasi;
use super::host::GuestState;
use super::limits::{GuestLimiter, InprocLimits, TxClock};
use crate::container::StreamConnector;

/// Messages buffered between a guest and its handler in each direction.
const CHANNEL_BUFFER: usize = 64;

/// How a guest instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestExit {
    /// `main` returned successfully (the peer closed the channel).
    Finished,
    /// `main` returned an error.
    Failed,
    /// A transaction ran past the deadline and the guest was stopped.
    Timeout,
    /// The guest needed more memory than its cap.
    MemoryLimit,
    /// The guest exhausted its stack.
    StackOverflow,
    /// The peer stopped the guest.
    Stopped,
    /// The guest trapped; the text names the trap and the guest's backtrace.
    Trapped(String),
}

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Finished => f.write_str("finished"),
            Self::Failed => f.write_str("main returned an error"),
            Self::Timeout => f.write_str("stopped: transaction deadline exceeded"),
            Self::MemoryLimit => f.write_str("stopped: memory limit exceeded"),
            Self::StackOverflow => f.write_str("trapped: stack overflow"),
            Self::Stopped => f.write_str("stopped by the peer"),
            Self::Trapped(trap) => write!(f, "trapped: {trap}"),
        }
    }
}

/// The error the epoch callback raises to stop a guest the peer asked to stop.
#[derive(Debug, thiserror::Error)]
#[error("stopped by the peer")]
struct StopRequested;

/// The error the epoch callback raises to stop a guest that is past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("transaction deadline exceeded")]
struct DeadlineExceeded;

/// Names why a guest's `main` failed with `error`. The name carries the trap but not the guest's
/// backtrace, which is logged instead: text that reaches a transaction response must be the same
/// on every peer.
fn classify(name: &str, error: &wasmtime::Error, state: &GuestState) -> GuestExit {
    warn!(chaincode = %name, "wasm chaincode failed: {error:?}");
    let trap = error.downcast_ref::<Trap>();
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        GuestExit::Timeout
    } else if error.downcast_ref::<StopRequested>().is_some() {
        GuestExit::Stopped
    } else if trap == Some(&Trap::StackOverflow) {
        GuestExit::StackOverflow
    } else if state.limiter.memory_refused {
        GuestExit::MemoryLimit
    } else {
        GuestExit::Trapped(trap.map_or_else(|| error.root_cause().to_string(), Trap::to_string))
    }
}

/// A running guest instance.
pub struct InstanceHandle {
    task: JoinHandle<GuestExit>,
    stop: Arc<AtomicBool>,
}

impl InstanceHandle {
    /// Asks the guest to stop: it traps at its next epoch check, within [`EPOCH_TICK`].
    ///
    /// [`EPOCH_TICK`]: super::EPOCH_TICK
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A flag that stops the guest when set, for a stopper that outlives this handle.
    pub(super) fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Waits until the instance ends.
    pub async fn wait(self) -> GuestExit {
        self.task
            .await
            .unwrap_or_else(|e| GuestExit::Trapped(format!("instance thread failed: {e}")))
    }
}

/// Connects a new instance to the peer and runs its `main` on a blocking thread.
pub(super) fn start(
    engine: &wasmtime::Engine,
    linker: &Linker<GuestState>,
    component: &Component,
    name: &str,
    connector: &StreamConnector,
    limits: &InprocLimits,
) -> InstanceHandle {
    let (to_peer, inbound) = mpsc::channel(CHANNEL_BUFFER);
    let (outbound, from_peer) = mpsc::channel(CHANNEL_BUFFER);
    let inline = connector(name.to_owned(), inbound, outbound);
    let wasi = guest_wasi(name);
    let state = GuestState {
        name: name.to_owned(),
        wasi,
        table: ResourceTable::new(),
        to_peer,
        from_peer,
        limiter: GuestLimiter::new(limits.max_memory_bytes),
        clock: TxClock::default(),
        inline,
        answered: VecDeque::new(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    let deadline = limits.tx_deadline;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_requested = Arc::clone(&stop);
    store.epoch_deadline_callback(move |store| {
        if stop_requested.load(Ordering::Relaxed) {
            Err(StopRequested.into())
        } else if store.data().clock.overdue(deadline) {
            Err(DeadlineExceeded.into())
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
    store.set_epoch_deadline(1);
    let linker = linker.clone();
    let component = component.clone();
    let name = name.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        let exit = match Command::instantiate(&mut store, &component, &linker) {
            Ok(command) => match command.wasi_cli_run().call_run(&mut store) {
                Ok(Ok(())) => GuestExit::Finished,
                Ok(Err(())) => GuestExit::Failed,
                Err(error) => classify(&name, &error, store.data()),
            },
            Err(e) => GuestExit::Trapped(format!("instantiation failed: {}", e.root_cause())),
        };
        match &exit {
            GuestExit::Finished => info!(chaincode = %name, "wasm chaincode finished"),
            other => {
                warn!(chaincode = %name, exit = ?other, "wasm chaincode ended");
                let reason = format!("wasm chaincode {name} {other}");
                let _ = store.data().to_peer.blocking_send(Err(reason));
            }
        }
        exit
    });
    InstanceHandle { task, stop }
}
