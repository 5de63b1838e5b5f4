//! What WASI shows a guest of the world outside: nothing that could differ between peers. Every
//! peer that endorses a transaction must compute the same result, so the clocks are frozen at
//! zero and randomness is a fixed stream; there are no files, sockets or name lookups.

use std::time::Duration;

use wasmtime_wasi::{Deterministic, HostMonotonicClock, HostWallClock, WasiCtx};

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

/// The WASI context of a guest registering as `name`: its name in `CORE_CHAINCODE_ID_NAME`,
/// frozen clocks, zero randomness, and no other capability.
pub(crate) fn guest_wasi(name: &str) -> WasiCtx {
    WasiCtx::builder()
        .env("CORE_CHAINCODE_ID_NAME", name)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(vec![0]))
        .insecure_random(Deterministic::new(vec![0]))
        .insecure_random_seed(0)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .build()
}
