//! The sandbox limits of a guest instance, and the resource limiter that enforces its memory cap.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Most linear memory one guest instance may use. A system chaincode's working set is a few MiB;
/// 64 MiB leaves ample room and stops a memory bomb long before it hurts the peer.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Deepest wasm stack a guest may use: wasmtime's own default, enough for ordinary recursion and
/// small enough that runaway recursion traps at once.
pub const DEFAULT_MAX_STACK_BYTES: usize = 512 * 1024;
/// Most guest instances alive at once: the size of the instance pool. Each reserves address
/// space, not memory, until it runs.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;
/// How often the engine's epoch advances; a guest's deadline is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits of one guest instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InprocLimits {
    /// Longest a guest may compute on one transaction before it is stopped.
    pub tx_deadline: Duration,
    /// Most linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Deepest wasm stack, in bytes.
    pub max_stack_bytes: usize,
    /// Most instances alive at once; starting one more fails.
    pub max_instances: u32,
}

impl Default for InprocLimits {
    fn default() -> Self {
        Self {
            tx_deadline: crate::chaincode::DEFAULT_EXECUTE_TIMEOUT,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_stack_bytes: DEFAULT_MAX_STACK_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

/// Enforces the memory cap and remembers whether it refused a growth, so that the trap that
/// follows can be named.
pub(crate) struct GuestLimiter {
    limits: StoreLimits,
    pub memory_refused: bool,
}

impl GuestLimiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .build(),
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_refused = true;
            tracing::warn!(
                current,
                desired,
                "refused to grow a wasm chaincode's memory"
            );
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// Tracks whether the guest is working on a transaction and since when.
#[derive(Debug, Default)]
pub(crate) struct TxClock {
    running: usize,
    since: Option<Instant>,
}

impl TxClock {
    /// The guest was handed a transaction (it may queue it behind the one it runs).
    pub fn started(&mut self) {
        self.running += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// The guest finished a transaction; a queued one starts now.
    pub fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.since = (self.running > 0).then(Instant::now);
    }

    /// Whether the current transaction has run longer than `deadline`.
    pub fn overdue(&self, deadline: Duration) -> bool {
        self.since.is_some_and(|since| since.elapsed() > deadline)
    }
}
