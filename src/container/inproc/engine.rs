//! The engine settings: deterministic code, epoch interruption, and the instance pool.

use ccvm_sandbox::{TickerHold, deterministic_config};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{InprocError, Result};
use super::limits::InprocLimits;

/// Stack left on a guest's fiber for the host functions it calls, beyond the wasm stack cap.
const HOST_STACK_BYTES: usize = 1024 * 1024;
/// Core wasm instances one guest component may create (a Rust guest has its program, the WASI
/// adapter and the small shim modules that link them).
const CORE_INSTANCES_PER_GUEST: u32 = 8;
/// Linear memories one guest component may define.
const MEMORIES_PER_GUEST: u32 = 2;
/// Tables one guest component may define.
const TABLES_PER_GUEST: u32 = 4;

/// Slots an ended instance leaves warm for the next instance of its component: a relaunch
/// after a trap or a reload reuses one without faulting its pages in again.
const WARM_SLOTS: u32 = 16;
/// Bytes of a warm slot's linear memory kept resident (reset in place rather than returned to
/// the kernel). Where the kernel offers `PAGEMAP_SCAN` (Linux 6.7 and later) these are the pages
/// the guest dirtied, wherever they are; elsewhere the lowest addresses: a Rust guest's stack
/// (the first MiB) and the data and heap pages just above it.
const MEMORY_KEPT_RESIDENT: usize = 2 * 1024 * 1024;
/// Bytes of a warm slot's tables kept resident.
const TABLES_KEPT_RESIDENT: usize = 64 * 1024;
/// Bytes of a warm slot's host stack kept resident.
const STACK_KEPT_RESIDENT: usize = 256 * 1024;

/// The instance pool: room for `max_instances` guests, each within the memory cap.
fn pool(limits: &InprocLimits) -> PoolingAllocationConfig {
    let guests = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(guests)
        .total_core_instances(guests.saturating_mul(CORE_INSTANCES_PER_GUEST))
        .total_memories(guests.saturating_mul(MEMORIES_PER_GUEST))
        .total_tables(guests.saturating_mul(TABLES_PER_GUEST))
        .total_stacks(guests)
        .max_memory_size(limits.max_memory_bytes)
        .max_unused_warm_slots(WARM_SLOTS)
        .linear_memory_keep_resident(MEMORY_KEPT_RESIDENT)
        .table_keep_resident(TABLES_KEPT_RESIDENT)
        .async_stack_keep_resident(STACK_KEPT_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// The engine every guest of a node runs on, with the sandbox's deterministic settings. Instances
/// come from a pool sized by [`InprocLimits::max_instances`].
///
/// # Errors
/// [`InprocError::Engine`] when wasmtime refuses the configuration.
pub(super) fn new_engine(limits: &InprocLimits) -> Result<Engine> {
    let mut config = deterministic_config(limits.max_stack_bytes);
    config
        .async_stack_size(limits.max_stack_bytes + HOST_STACK_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
    Engine::new(&config).map_err(|e| InprocError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch until every clone of the returned hold is dropped.
///
/// # Errors
/// [`InprocError::Engine`] when the thread cannot be started.
pub(super) fn start_epoch_ticker(engine: Engine) -> Result<TickerHold> {
    ccvm_sandbox::start_epoch_ticker(engine)
        .map_err(|e| InprocError::Engine(format!("cannot start the epoch thread: {e}")))
}
