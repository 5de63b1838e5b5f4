//! The inproc VM: system chaincode compiled to a `wasm32-wasip2` component and run by wasmtime
//! inside the peer. The guest's shim talks to the peer through the host functions of
//! `wit/chaincode.wit`, which carry encoded `ChaincodeMessage`s over in-process channels.
//!
//! Only this module names wasmtime. `vm` keeps the system chaincodes and starts them; `engine`
//! owns the engine settings and the instance pool; `linking` and `cache` turn wasm into a
//! component linked against the host, compiled once and kept in memory and on disk; `host` the
//! host functions and per-instance state (the block store only for a guest granted it);
//! `instance` starting and running one guest; `rehearsal` readying a pool slot for a
//! chaincode's first launch; `limits` the sandbox limits and pool size. The
//! sandbox itself (deterministic settings, a wall-clock deadline per transaction, the memory and
//! stack caps, each ending the instance with a named [`GuestExit`], and what WASI shows the
//! guest) is `ccvm-sandbox`, shared with the wasm runner that runs user chaincode in Docker.

mod cache;
mod engine;
mod error;
mod host;
mod instance;
mod limits;
mod linking;
mod rehearsal;
mod vm;

pub use cache::CacheOutcome;
pub use ccvm_sandbox::{DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_STACK_BYTES, EPOCH_TICK, GuestExit};
pub use error::{InprocError, Result};
pub use host::BlockStore;
pub use instance::InstanceHandle;
pub use limits::{
    DEFAULT_INSTANCES_PER_CHAINCODE, DEFAULT_MAX_INSTANCES, DEFAULT_REGISTER_TIMEOUT, InprocLimits,
};
pub use linking::Compiled;
pub use vm::InprocVm;
