//! What WASI shows a guest of the world outside: nothing that could differ between peers. Every
//! peer that endorses a transaction must compute the same result, so the clocks are frozen at
//! zero and randomness is a fixed stream; there are no sockets or name lookups, and no files
//! unless the operator grants a chaincode a directory (then keeping it the same on every peer is
//! the operator's part).

use std::path::Path;
use std::time::Duration;

use wasmtime::Config;
use wasmtime_wasi::{Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtx};

/// Where a granted directory appears inside the guest.
pub const GUEST_DATA_DIR: &str = "/data";

/// Stack left on a guest's fiber for the host functions it calls, beyond the wasm stack cap.
const HOST_STACK_BYTES: usize = 1024 * 1024;

/// Engine settings under which every peer computes the same result: NaNs are canonicalised,
/// relaxed SIMD (whose results vary by CPU) is off, threads are not compiled in, and a guest can
/// be interrupted at each epoch tick; the wasm stack is capped at `max_stack_bytes`, on a fiber
/// with room for the host functions beyond it.
#[must_use]
pub fn deterministic_config(max_stack_bytes: usize) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .epoch_interruption(true)
        .max_wasm_stack(max_stack_bytes)
        .async_stack_size(max_stack_bytes + HOST_STACK_BYTES);
    config
}

/// A clock that always reads zero (the Unix epoch for the wall clock). A chaincode that needs
/// the time reads the transaction's timestamp from its proposal, which every peer shares.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context of a guest with environment `env` (its name in `CORE_CHAINCODE_ID_NAME`):
/// frozen clocks, zero randomness, `granted` (opened through cap-std, confined beneath it) as
/// [`GUEST_DATA_DIR`] if given, and no other capability.
///
/// # Errors
/// Why `granted` cannot be opened.
pub fn guest_wasi(env: &[(String, String)], granted: Option<&Path>) -> Result<WasiCtx, String> {
    let mut builder = WasiCtx::builder();
    if let Some(dir) = granted {
        builder
            .preopened_dir(dir, GUEST_DATA_DIR, FsPerms::ReadWrite)
            .map_err(|e| format!("cannot open {}: {e:#}", dir.display()))?;
    }
    Ok(builder
        .envs(env)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(vec![0]))
        .insecure_random(Deterministic::new(vec![0]))
        .insecure_random_seed(0)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .build())
}
