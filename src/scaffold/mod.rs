//! New chaincode projects: a cargo project on the guest SDK that builds natively and for
//! `wasm32-wasip2`, with unit tests on the SDK's mock ledger (`ccvm chaincode new`).

use std::path::{Path, PathBuf};

/// How the new chaincode is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// With the contract API: transactions as typed methods.
    Contract,
    /// With the low-level `Chaincode` trait: one `invoke` that dispatches by hand.
    Plain,
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a chaincode's (Fabric's rule) or a cargo package's.
    #[error(
        "{0:?} is not a valid chaincode name: a letter, then letters and digits joined by single '-' or '_'"
    )]
    InvalidName(String),
    /// The directory exists and holds files.
    #[error("{} already exists and is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// The guest SDK is not where the project would depend on it.
    #[error(
        "the guest SDK is not at {}: pass the path of its directory (guest-sdk in ccvm's source)",
        .0.display()
    )]
    NoSdk(PathBuf),
    /// Writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where this build of ccvm found the guest SDK: its source tree's `guest-sdk`.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-sdk")
}

/// The versions of the SDK's dependencies this ccvm was built and tested with, so that a new
/// project builds with the same ones (cargo drops the entries it does not need).
const LOCK_FILE: &str = include_str!("../../Cargo.lock");

/// Creates the chaincode project `name` in `dir` (which must be absent or empty), depending on
/// the guest SDK at `sdk`; returns the files written, relative to `dir`.
///
/// # Errors
/// An invalid name, a directory in use, no SDK at `sdk`, or a file that cannot be written.
pub fn create(
    dir: &Path,
    name: &str,
    style: Style,
    sdk: &Path,
) -> Result<Vec<&'static str>, ScaffoldError> {
    if !is_valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_owned()));
    }
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|sdk| sdk.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    let (main, put, get) = match style {
        Style::Contract => (include_str!("templates/contract.rs.tmpl"), "Put", "Get"),
        Style::Plain => (include_str!("templates/plain.rs.tmpl"), "put", "get"),
    };
    let sdk = sdk.display().to_string();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &sdk.replace('\\', "\\\\").replace('"', "\\\""))
            .replace("{{put}}", put)
            .replace("{{get}}", get)
    };
    let files = [
        (
            "Cargo.toml",
            fill(include_str!("templates/Cargo.toml.tmpl")),
        ),
        ("Cargo.lock", LOCK_FILE.to_owned()),
        ("src/main.rs", fill(main)),
        ("README.md", fill(include_str!("templates/README.md.tmpl"))),
        (
            ".gitignore",
            include_str!("templates/gitignore.tmpl").to_owned(),
        ),
    ];
    for (relative, contents) in &files {
        let path = dir.join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, contents));
        written.map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(files.iter().map(|(relative, _)| *relative).collect())
}

/// Fabric's rule for chaincode names (`^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$`), starting with a
/// letter as a cargo package must.
fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .split(['-', '_'])
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn names_follow_fabrics_rule_and_start_with_a_letter() {
        for name in ["kv", "asset-transfer", "my_cc2", "A1-b_c"] {
            assert!(is_valid_name(name), "{name}");
        }
        for name in [
            "", "2kv", "-kv", "kv-", "a--b", "a_-b", "my cc", "kv/1", "ünï",
        ] {
            assert!(!is_valid_name(name), "{name}");
        }
    }
}
