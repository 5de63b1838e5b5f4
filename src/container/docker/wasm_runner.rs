//! The wasm runner (`runner/`), built into ccvm as a static executable: the entrypoint of a
//! `wasm` package's image, which runs the package's component in ccvm's sandbox.

use ccvm_sandbox::runner_env;

use crate::container::inproc::InprocLimits;

/// The runner executable.
pub(super) const EXECUTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ccvm-wasm-runner"));

/// Where the runner finds the chaincode component in the image.
pub(super) const COMPONENT_PATH: &str = "chaincode.wasm";

/// The container environment that gives the runner `limits`.
pub(super) fn limits_env(limits: &InprocLimits) -> [String; 3] {
    [
        format!(
            "{}={}",
            runner_env::TX_DEADLINE_MS,
            limits.tx_deadline.as_millis()
        ),
        format!(
            "{}={}",
            runner_env::MAX_MEMORY_BYTES,
            limits.max_memory_bytes
        ),
        format!("{}={}", runner_env::MAX_STACK_BYTES, limits.max_stack_bytes),
    ]
}
