//! The `ccvm-wasm-runner` executable: the entrypoint of a `wasm` package's container image (see
//! the library for how it runs). Exits non-zero when the guest fails, so the peer relaunches it.

use std::path::Path;
use std::process::ExitCode;

use ccvm_wasm_runner::{DEFAULT_WASM_FILE, run_from_env};
use tracing::error;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    match run_from_env(Path::new(DEFAULT_WASM_FILE)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            error!("{reason}");
            ExitCode::FAILURE
        }
    }
}
