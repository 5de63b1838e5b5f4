//! The engine settings: deterministic code, epoch interruption, and the instance pool.

use ccvm_sandbox::{TickerHold, deterministic_config};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{InprocError, Result};
use super::limits::InprocLimits;

/// Core wasm instances one guest component may create (a Rust guest has its program, the WASI
/// adapter and the small shim modules that link them).
const CORE_INSTANCES_PER_GUEST: u32 = 8;
/// Linear memories one guest component may define.
const MEMORIES_PER_GUEST: u32 = 2;
/// Tables one guest component may define.
const TABLES_PER_GUEST: u32 = 4;

/// Address space reserved for each linear memory: with 4 GiB, a 32-bit guest's loads and
/// stores need no bounds checks.
const MEMORY_RESERVATION_BYTES: u64 = 4 << 30;

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
        .max_memory_size(limits.wasm.max_memory_bytes)
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
/// [`InprocError::Engine`] when the pool has no room for an instance, or wasmtime refuses the
/// configuration or cannot reserve the address space of the pool.
pub(super) fn new_engine(limits: &InprocLimits) -> Result<Engine> {
    if limits.max_instances == 0 {
        return Err(InprocError::Engine(
            "inproc.max_instances is 0, so no wasm instance could run: set 1 or more".to_owned(),
        ));
    }
    let capacity = i64::from(limits.max_instances);
    crate::metrics::metrics().wasm_pool_capacity.set(capacity);
    let mut config = deterministic_config(limits.wasm.max_stack_bytes);
    config
        .memory_reservation(MEMORY_RESERVATION_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(limits)));
    Engine::new(&config).map_err(|e| {
        let reserved = u64::from(limits.max_instances)
            * u64::from(MEMORIES_PER_GUEST)
            * MEMORY_RESERVATION_BYTES;
        InprocError::Engine(format!(
            "{e:#} (the pool for {} instances reserves {} GiB of address space; if the process \
             may not have that much, lower inproc.max_instances)",
            limits.max_instances,
            reserved >> 30
        ))
    })
}

/// Advances the engine's epoch until every clone of the returned hold is dropped.
///
/// # Errors
/// [`InprocError::Engine`] when the thread cannot be started.
pub(super) fn start_epoch_ticker(engine: Engine) -> Result<TickerHold> {
    ccvm_sandbox::start_epoch_ticker(engine)
        .map_err(|e| InprocError::Engine(format!("cannot start the epoch thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_without_room_for_an_instance_is_refused() {
        let limits = InprocLimits {
            max_instances: 0,
            ..InprocLimits::default()
        };
        let refused = new_engine(&limits).expect_err("an empty pool");
        assert!(
            refused.to_string().contains("inproc.max_instances is 0"),
            "{refused}"
        );
    }
}
