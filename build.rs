//! Builds what ccvm carries inside its binary, so that `ccvm node start` needs no extra step: the
//! system chaincodes (`examples/lifecycle`, `examples/qscc`, `examples/cscc`) for `wasm32-wasip2`, and the wasm
//! runner (`runner/`) as a static `x86_64-unknown-linux-musl` executable that the Docker VM puts
//! into the image of a `wasm` package.
//!
//! They are built by a second cargo with its own target directory (`target/embedded`),
//! shared by every profile of this crate, always in release mode.
//!
//! The runner's TLS (`ring`) has C code, compiled as `static_cc` says: with a musl C compiler
//! if one is installed, else the host's. So building the node needs nothing beyond the two
//! rustup targets.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/container/docker/static_cc.rs"]
mod static_cc;

const WASM_TARGET: &str = "wasm32-wasip2";
/// Packages built for [`WASM_TARGET`], each to `<package>.wasm` in `OUT_DIR`.
const SYSTEM_CHAINCODES: [&str; 3] = ["lifecycle", "qscc", "cscc"];
/// The target whose executables run in an empty (`FROM scratch`) image.
const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";
/// The runner package, built for [`STATIC_TARGET`] to `ccvm-wasm-runner` in `OUT_DIR`.
const RUNNER: &str = "ccvm-wasm-runner";
/// Sources of what is built here.
const INPUTS: [&str; 11] = [
    "examples/lifecycle",
    "lifecycle-schema",
    "examples/qscc",
    "examples/cscc",
    "guest-sdk",
    "proto",
    "runner",
    "sandbox",
    "wit",
    "Cargo.lock",
    "src/container/docker/static_cc.rs",
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
    check_target_installed(WASM_TARGET);
    check_target_installed(STATIC_TARGET);

    let target_dir = embedded_target_dir(&out_dir);
    cargo_build(&manifest_dir, &target_dir, WASM_TARGET, &SYSTEM_CHAINCODES);
    for package in SYSTEM_CHAINCODES {
        copy_built(
            &target_dir,
            WASM_TARGET,
            &format!("{package}.wasm"),
            &out_dir,
        );
    }
    cargo_build(&manifest_dir, &target_dir, STATIC_TARGET, &[RUNNER]);
    copy_built(&target_dir, STATIC_TARGET, RUNNER, &out_dir);
}

/// Builds `packages` for `target` in release mode with a cargo of its own.
fn cargo_build(manifest_dir: &Path, target_dir: &Path, target: &str, packages: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut build = Command::new(cargo);
    build
        .current_dir(manifest_dir)
        .args(["build", "--release", "--target", target, "--target-dir"])
        .arg(target_dir);
    for package in packages {
        build.args(["--package", package]);
    }
    for variable in HOST_ONLY_ENV {
        build.env_remove(variable);
    }
    if target == STATIC_TARGET {
        choose_static_c_compiler(&mut build);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {packages:?}: {e}"));
    assert!(
        status.success(),
        "building {packages:?} for {target} failed ({status}); see the output above"
    );
}

/// Copies the built `file` into `out_dir`, where the crate embeds it.
fn copy_built(target_dir: &Path, target: &str, file: &str, out_dir: &Path) {
    let built = target_dir.join(target).join("release").join(file);
    let embedded = out_dir.join(file);
    std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
        panic!(
            "cannot copy {} to {}: {e}",
            built.display(),
            embedded.display()
        )
    });
}

/// `target/embedded` beside this build's profile directories: `OUT_DIR` is
/// `<target>/[<triple>/]<profile>/build/<crate>-<hash>/out`.
fn embedded_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("embedded")
}

/// Fails with the command that fixes it when the standard library for `target` is missing.
fn check_target_installed(target: &str) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(
        sysroot.join("lib/rustlib").join(target).exists(),
        "the {target} target is not installed; run `rustup target add {target}`"
    );
}

/// Names the C compiler for [`STATIC_TARGET`] unless the caller did.
fn choose_static_c_compiler(build: &mut Command) {
    println!("cargo:rerun-if-env-changed={}", static_cc::STATIC_TARGET_CC);
    if let Some(compiler) = static_cc::static_c_compiler() {
        build.env(static_cc::STATIC_TARGET_CC, compiler);
    }
}
