//! The sandbox limits of the inproc VM's guests, and the size of its instance pool.

use std::time::Duration;

use ccvm_sandbox::{DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_STACK_BYTES};

/// Most guest instances alive at once: the size of the instance pool. Each reserves address
/// space, not memory, until it runs.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

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
}

impl Default for InprocLimits {
    fn default() -> Self {
        Self {
            tx_deadline: crate::chaincode::DEFAULT_EXECUTE_TIMEOUT,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_stack_bytes: DEFAULT_MAX_STACK_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}
