//! How a guest instance ends, named so that the transaction it was running can say why.

use tracing::warn;
use wasmtime::Trap;

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
    /// The guest trapped; the text names the trap.
    Trapped(String),
}

impl GuestExit {
    /// A one-word name of why the guest ended, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Timeout => "deadline",
            Self::MemoryLimit => "memory",
            Self::StackOverflow => "stack",
            Self::Stopped => "stopped",
            Self::Trapped(_) => "trap",
        }
    }
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

/// The error an epoch callback raises to stop a guest that is past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("transaction deadline exceeded")]
pub struct DeadlineExceeded;

/// Names why the guest `name`'s `main` failed with `error`; `memory_refused` says whether its
/// limiter refused a growth. The name carries the trap but not the guest's backtrace, which is
/// logged instead: text that reaches a transaction response must be the same on every peer.
pub fn classify(name: &str, error: &wasmtime::Error, memory_refused: bool) -> GuestExit {
    warn!(chaincode = %name, "wasm chaincode failed: {error:?}");
    let trap = error.downcast_ref::<Trap>();
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        GuestExit::Timeout
    } else if trap == Some(&Trap::StackOverflow) {
        GuestExit::StackOverflow
    } else if memory_refused {
        GuestExit::MemoryLimit
    } else {
        GuestExit::Trapped(trap.map_or_else(|| error.root_cause().to_string(), Trap::to_string))
    }
}
