//! Which C compiler builds C code (such as `ring`'s) for the static musl target. Debian's
//! `musl-tools` provides a musl compiler; where none is installed the host's C compiler is used,
//! which serves as well for such code: it needs only the compiler's own headers, and the musl
//! target links against Rust's own copy of musl. So a build for the target needs nothing beyond
//! `rustup target add x86_64-unknown-linux-musl`.
//!
//! The build script includes this file too, so it uses `std` alone.

use std::env;

/// The variable through which cc-rs takes the C compiler for `x86_64-unknown-linux-musl`.
pub const STATIC_TARGET_CC: &str = "CC_x86_64_unknown_linux_musl";

/// musl C compilers, in the order they are preferred; cc-rs itself looks only for the first.
const MUSL_C_COMPILERS: [&str; 2] = ["x86_64-linux-musl-gcc", "musl-gcc"];

/// The host's C compiler, which Rust's linking on Linux already needs.
const HOST_C_COMPILER: &str = "cc";

/// The C compiler to set in [`STATIC_TARGET_CC`] for a build of the static target, unless the
/// caller's environment names one: the first musl compiler on `PATH`, else the host's.
pub fn static_c_compiler() -> Option<&'static str> {
    if env::var_os(STATIC_TARGET_CC).is_some() {
        return None;
    }
    Some(
        MUSL_C_COMPILERS
            .into_iter()
            .find(|compiler| on_path(compiler))
            .unwrap_or(HOST_C_COMPILER),
    )
}

/// Whether an executable file called `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    env::var_os("PATH").is_some_and(|path| {
        env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}
