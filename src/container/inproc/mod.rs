//! The inproc VM: system chaincode compiled to a `wasm32-wasip2` component and run by wasmtime
//! inside the peer. The guest's shim talks to the peer through the host functions of
//! `wit/chaincode.wit`, which carry encoded `ChaincodeMessage`s over in-process channels.
//!
//! Only this module names wasmtime. `engine` owns the engine settings, `host` the host
//! functions and per-instance state, `cache` compiled components in memory and on disk,
//! `instance` starting and running one guest, `limits` the
//! sandbox: a wall-clock deadline per transaction (epoch interruption), a memory cap and a stack
//! cap, each ending the instance with a named [`GuestExit`]; `determinism` what WASI shows the
//! guest (frozen clocks, fixed randomness, no files or sockets).

mod cache;
mod determinism;
mod engine;
mod error;
mod host;
mod instance;
mod limits;

pub use cache::CacheOutcome;
pub use engine::{Compiled, InprocVm};
pub use error::{InprocError, Result};
pub use instance::{GuestExit, InstanceHandle};
pub use limits::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_STACK_BYTES, EPOCH_TICK,
    InprocLimits,
};
