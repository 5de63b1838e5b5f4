//! How a guest instance ends, named so that the transaction it was running can say why.

use std::time::Duration;

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
    /// The guest did not register within this bound and was stopped.
    NotRegistered(Duration),
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
            Self::NotRegistered(_) => "unregistered",
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
            Self::NotRegistered(within) => {
                write!(f, "stopped: did not register within {within:?}")
            }
            Self::MemoryLimit => f.write_str("stopped: memory limit exceeded"),
            Self::StackOverflow => f.write_str("trapped: stack overflow"),
            Self::Stopped => f.write_str("stopped by the peer"),
            Self::Trapped(trap) => write!(f, "trapped: {trap}"),
        }
    }
}

/// The error an epoch check raises to stop a guest that is past one of its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overdue {
    /// The running transaction is past its deadline.
    #[error("transaction deadline exceeded")]
    Transaction,
    /// The guest has not registered within this bound.
    #[error("did not register within {0:?}")]
    Registration(Duration),
}

/// Names why the guest `name`'s `main` failed with `error`; `memory_refused` says whether its
/// limiter refused a growth. The name carries the trap but not the guest's backtrace, which is
/// logged instead: text that reaches a transaction response must be the same on every peer.
pub fn classify(name: &str, error: &wasmtime::Error, memory_refused: bool) -> GuestExit {
    warn!(chaincode = %name, "wasm chaincode failed: {error:?}");
    let trap = error.downcast_ref::<Trap>();
    if let Some(overdue) = error.downcast_ref::<Overdue>() {
        match *overdue {
            Overdue::Transaction => GuestExit::Timeout,
            Overdue::Registration(within) => GuestExit::NotRegistered(within),
        }
    } else if trap == Some(&Trap::StackOverflow) {
        GuestExit::StackOverflow
    } else if memory_refused {
        GuestExit::MemoryLimit
    } else {
        GuestExit::Trapped(trap.map_or_else(|| error.root_cause().to_string(), Trap::to_string))
    }
}
