//! Builds the system chaincodes ccvm carries (`examples/lifecycle`, `examples/qscc`) for
//! `wasm32-wasip2`, so that `ccvm node start` has them with no extra step.
//!
//! They are built by a second cargo with its own target directory (`target/system-chaincode`),
//! shared by every profile of this crate, always in release mode.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Packages built, each to `<package>.wasm` in `OUT_DIR`.
const SYSTEM_CHAINCODES: [&str; 2] = ["lifecycle", "qscc"];
/// Sources the system chaincodes are built from.
const INPUTS: [&str; 6] = [
    "examples/lifecycle",
    "examples/qscc",
    "guest-sdk",
    "proto",
    "wit",
    "Cargo.lock",
];
/// Settings of this build that must not leak into the wasm one.
const HOST_ONLY_ENV: [&str; 6] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for input in INPUTS {
        println!(
            "cargo:rerun-if-changed={}",
            manifest_dir.join(input).display()
        );
    }
    check_target_installed();

    let target_dir = system_chaincode_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut build = Command::new(cargo);
    build
        .current_dir(&manifest_dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for package in SYSTEM_CHAINCODES {
        build.args(["--package", package]);
    }
    for variable in HOST_ONLY_ENV {
        build.env_remove(variable);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the system chaincodes: {e}"));
    assert!(
        status.success(),
        "building the system chaincodes for {TARGET} failed ({status}); see the output above"
    );
    for package in SYSTEM_CHAINCODES {
        let built = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{package}.wasm"));
        let embedded = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} to {}: {e}",
                built.display(),
                embedded.display()
            )
        });
    }
}

/// `target/system-chaincode` beside this build's profile directories: `OUT_DIR` is
/// `<target>/[<triple>/]<profile>/build/<crate>-<hash>/out`.
fn system_chaincode_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("system-chaincode")
}

/// Fails with the command that fixes it when the standard library for `wasm32-wasip2` is
/// missing.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(
        sysroot.join("lib/rustlib").join(TARGET).exists(),
        "the {TARGET} target is not installed; run `rustup target add {TARGET}`"
    );
}
