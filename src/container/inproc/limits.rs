//! The limits of the inproc VM: its guests' sandbox, the size of its instance pool, and how long
//! a guest may take to register.

use std::time::Duration;

use ccvm_sandbox::WasmLimits;

/// Most guest instances alive at once: the size of the instance pool. Each reserves address
/// space, not memory, until it runs.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// Most instances of one chaincode alive at once. A chaincode whose instances are all running a
/// transaction gets one more, up to this many; on two cores four instances run about three
/// times as many transactions as one.
pub const DEFAULT_INSTANCES_PER_CHAINCODE: usize = 4;

/// How long a started guest may take to register. A guest registers in its first run, within
/// microseconds of its start; one that has not after a few seconds computes instead (spins), and
/// would otherwise hold a core for the whole startup timeout, which is sized for image builds.
pub const DEFAULT_REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits of the inproc VM: each guest's, and the VM's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InprocLimits {
    /// The limits of each guest instance.
    pub wasm: WasmLimits,
    /// Most instances alive at once; starting one more fails.
    pub max_instances: u32,
    /// Most instances of one chaincode alive at once.
    pub instances_per_chaincode: usize,
    /// How long a started instance may take to register before it is stopped.
    pub register_timeout: Duration,
}

impl Default for InprocLimits {
    fn default() -> Self {
        Self {
            wasm: WasmLimits::default(),
            max_instances: DEFAULT_MAX_INSTANCES,
            instances_per_chaincode: DEFAULT_INSTANCES_PER_CHAINCODE,
            register_timeout: DEFAULT_REGISTER_TIMEOUT,
        }
    }
}
