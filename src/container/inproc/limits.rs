//! The sandbox limits of the inproc VM's guests, and the size of its instance pool.

use std::time::Duration;

use ccvm_sandbox::{DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_STACK_BYTES};

/// Most guest instances alive at once: the size of the instance pool. Each reserves address
/// space, not memory, until it runs.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// How long a started guest may take to register. A guest registers in its first run, within
/// microseconds of its start; one that has not after a few seconds computes instead (spins), and
/// would otherwise hold a core for the whole startup timeout, which is sized for image builds.
pub const DEFAULT_REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits of one guest instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InprocLimits {
    /// Longest a guest may compute on one transaction before it is stopped.
    pub tx_deadline: Duration,
    /// Most linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Deepest wasm stack, in bytes.
    pub max_stack_bytes: usize,
    /// Largest message a guest may send, in bytes.
    pub max_message_bytes: usize,
    /// Most instances alive at once; starting one more fails.
    pub max_instances: u32,
    /// How long a started instance may take to register before it is stopped.
    pub register_timeout: Duration,
}

impl Default for InprocLimits {
    fn default() -> Self {
        Self {
            tx_deadline: crate::chaincode::DEFAULT_EXECUTE_TIMEOUT,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_stack_bytes: DEFAULT_MAX_STACK_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
            register_timeout: DEFAULT_REGISTER_TIMEOUT,
        }
    }
}
