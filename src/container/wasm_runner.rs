//! The wasm runner (`runner/`), built into ccvm as a static executable: the entrypoint of a
//! `wasm` package's image, which runs the package's component in ccvm's sandbox.

/// The runner executable.
pub const EXECUTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ccvm-wasm-runner"));

/// Where the runner finds the chaincode component in the image.
pub const COMPONENT_PATH: &str = "chaincode.wasm";
/// Where the runner finds the component's code precompiled by the node that built the image
/// (`ccvm_wasm_runner::precompiled_path` of [`COMPONENT_PATH`]).
pub const PRECOMPILED_PATH: &str = "chaincode.cwasm";

/// How a wasm component's binary begins: the magic bytes, then the component encoding's version
/// and layer (a core module has version 1, layer 0 instead).
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00];

/// Refuses bytes that are not a wasm component before an image is built around them, naming
/// what they are instead.
pub fn check_component(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&COMPONENT_PREAMBLE) {
        Ok(())
    } else if bytes.starts_with(b"\0asm") {
        Err(format!(
            "{COMPONENT_PATH} is a core wasm module, not a component: build it for wasm32-wasip2"
        ))
    } else {
        Err(format!("{COMPONENT_PATH} is not a wasm component"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_component_is_accepted() {
        assert_eq!(check_component(&COMPONENT_PREAMBLE), Ok(()));
        let core_module = [0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00];
        assert!(check_component(&core_module).is_err_and(|e| e.contains("core wasm module")));
        assert!(check_component(b"#!/bin/sh").is_err_and(|e| e.contains("not a wasm component")));
    }
}
