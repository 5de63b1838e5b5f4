//! The sandbox every ccvm wasm chaincode runs in, whether inside the peer (the inproc VM) or in
//! a container (the wasm runner): engine settings under which every peer computes the same
//! result (`determinism`), what WASI shows the guest (frozen clocks, fixed randomness, no files
//! or sockets), the limits of a guest and their enforcement (`wasm_limits`, `limits`), what it may
//! write to the host's log (`log_budget`), how an instance ended (`exit`), and the host functions
//! and store every guest runs with (`host`).

mod determinism;
mod exit;
mod host;
mod limits;
mod log_budget;
mod wasm_limits;

pub use determinism::{GUEST_DATA_DIR, deterministic_config, guest_wasi};
pub use exit::{GuestExit, Overdue, classify};
pub use host::{
    BrokenMessage, GuestState, PEER_CLOSED, PeerLink, chaincode_linker, run_guest, sandboxed_store,
};
pub use limits::{
    DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_STACK_BYTES,
    DEFAULT_RUNNER_INSTANCES, DEFAULT_TX_DEADLINE, EPOCH_TICK, GuestLimiter, Oversize, TickerHold,
    TxClock, check_message_size, ends_transaction, runner_env, start_epoch_ticker,
    starts_transaction,
};
pub use log_budget::{
    LogBudget, MAX_LOG_BYTES_PER_SECOND, MAX_LOG_BYTES_PER_TX, MAX_LOG_LINE_BYTES,
};
pub use wasm_limits::WasmLimits;
