//! The inproc VM: system chaincode compiled to a `wasm32-wasip2` component and run by wasmtime
//! inside the peer. The guest's shim talks to the peer through the host functions of
//! `wit/chaincode.wit`, which carry encoded `ChaincodeMessage`s over in-process channels.
//!
//! Only this module names wasmtime. `vm` keeps the system chaincodes and starts them; `engine`
//! owns the engine settings and the instance pool; `linking` and `cache` turn wasm into a
//! component linked against the host, compiled once and kept in memory and on disk; `host` the
//! host functions and per-instance state (the block store only for a guest granted it);
//! `instance` starting and running one guest; `limits` the sandbox: a wall-clock deadline per
//! transaction (epoch interruption), a memory cap and a stack cap, each ending the instance with
//! a named [`GuestExit`]; `determinism` what WASI shows the guest (frozen clocks, fixed
//! randomness, no files or sockets).

mod cache;
mod determinism;
mod engine;
mod error;
mod host;
mod instance;
mod limits;
mod linking;
mod vm;

pub use cache::CacheOutcome;
pub use error::{InprocError, Result};
pub use host::BlockStore;
pub use instance::{GuestExit, InstanceHandle};
pub use limits::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_STACK_BYTES, EPOCH_TICK,
    InprocLimits,
};
pub use linking::Compiled;
pub use vm::InprocVm;
