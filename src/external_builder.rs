//! A Fabric external builder for ccvm's packages, so that a stock Fabric peer (2.5 or 3.x) runs
//! chaincode packaged by `ccvm chaincode package`. Fabric calls the builder's four programs
//! (`bin/detect`, `bin/build`, `bin/release`, `bin/run`); each is a line of shell that calls back
//! into the `ccvm` executable, where the steps below do the work:
//!
//! - **detect** accepts `wasm`, `binary` and `ccaas` packages holding what their type needs, and
//!   refuses any other so that Fabric tries its next builder;
//! - **build** copies the code to the build output (a wasm component is compiled once, to refuse
//!   one that would not run at install time, not at its first transaction);
//! - **release** hands a `ccaas` package's `connection.json` to the peer, which then dials it;
//! - **run** starts the chaincode from the peer's `chaincode.json`: a binary is executed with
//!   Fabric's shim settings, a wasm component runs in ccvm's sandbox with the node's limits.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::wasm_runner::{COMPONENT_PATH, check_component};
use crate::package::Platform;

/// The name to list the builder under in `core.yaml`'s `chaincode.externalBuilders`.
pub const BUILDER_NAME: &str = "ccvm";
/// The programs Fabric calls, in the order it calls them.
pub const STEPS: [&str; 4] = ["detect", "build", "release", "run"];
/// The executable of a `binary` package.
pub const BINARY_PATH: &str = "chaincode";
/// The connection of a `ccaas` package.
pub const CONNECTION_PATH: &str = "connection.json";
/// What build writes beside the code: the package's type, for run.
const BUILD_RECORD: &str = "ccvm-build.json";
/// Where release puts a served chaincode's connection for the peer.
const RELEASED_CONNECTION: &str = "chaincode/server/connection.json";

/// Why a step refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuilderError {
    /// The package is not one this builder runs; Fabric tries its next builder.
    #[error("not a ccvm package: {0}")]
    NotOurs(String),
    /// The package is ours but its code cannot run.
    #[error("{0}")]
    Unrunnable(String),
    /// The peer's `chaincode.json` is missing or unreadable.
    #[error("{path}: {reason}")]
    RunMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuilderError + '_ {
    move |source| BuilderError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `metadata.json` as Fabric hands it to a builder.
#[derive(Deserialize)]
struct PackageMetadata {
    #[serde(rename = "type")]
    platform: String,
}

/// What build leaves for run.
#[derive(Serialize, Deserialize)]
struct BuildRecord {
    #[serde(rename = "type")]
    platform: Platform,
}

/// Writes the builder's programs into `dir/bin`, each calling `ccvm` (this executable's path)
/// with the step's name and Fabric's arguments.
///
/// # Errors
/// [`BuilderError::Io`] when the directory or a program cannot be written.
pub fn install(dir: &Path, ccvm: &Path) -> Result<(), BuilderError> {
    use std::os::unix::fs::PermissionsExt;

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let executable = shell_quote(&ccvm.to_string_lossy());
    for step in STEPS {
        let path = bin.join(step);
        let script = format!("#!/bin/sh\nexec {executable} builder {step} \"$@\"\n");
        std::fs::write(&path, script).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// `text` as one word of `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The type of the package in `source` and `metadata`, when this builder runs it.
///
/// # Errors
/// [`BuilderError::NotOurs`] naming what the package is instead.
pub fn detect(source: &Path, metadata: &Path) -> Result<Platform, BuilderError> {
    let path = metadata.join("metadata.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| BuilderError::NotOurs(format!("cannot read {}: {e}", path.display())))?;
    let declared: PackageMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| BuilderError::NotOurs(format!("{}: {e}", path.display())))?;
    let platform = match declared.platform.to_ascii_lowercase().as_str() {
        "wasm" => Platform::Wasm,
        "binary" => Platform::Binary,
        "ccaas" => Platform::Ccaas,
        other => {
            return Err(BuilderError::NotOurs(format!(
                "type {other:?} is not one of wasm, binary, ccaas"
            )));
        }
    };
    let needed = code_path(platform);
    if !source.join(needed).is_file() {
        return Err(BuilderError::NotOurs(format!(
            "a {} package holds {needed}, and this one does not",
            platform.as_str()
        )));
    }
    Ok(platform)
}

/// The file a package of `platform` keeps its code in.
fn code_path(platform: Platform) -> &'static str {
    match platform {
        Platform::Wasm => COMPONENT_PATH,
        Platform::Ccaas => CONNECTION_PATH,
        Platform::Binary | Platform::Rust => BINARY_PATH,
    }
}

/// Copies the package's code from `source` to `output`, with a record of its type. A wasm
/// component is first handed to `check_wasm`, which refuses one that would not run.
///
/// # Errors
/// [`BuilderError::NotOurs`] as [`detect`], [`BuilderError::Unrunnable`] for code that cannot
/// run, [`BuilderError::Io`] for files that cannot be copied.
pub fn build(
    source: &Path,
    metadata: &Path,
    output: &Path,
    check_wasm: impl FnOnce(&[u8]) -> Result<(), String>,
) -> Result<Platform, BuilderError> {
    use std::os::unix::fs::PermissionsExt;

    let platform = detect(source, metadata)?;
    let name = code_path(platform);
    let from = source.join(name);
    let code = std::fs::read(&from).map_err(io(&from))?;
    let mode = match platform {
        Platform::Wasm => {
            check_component(&code).map_err(BuilderError::Unrunnable)?;
            check_wasm(&code).map_err(BuilderError::Unrunnable)?;
            0o644
        }
        Platform::Ccaas => {
            serde_json::from_slice::<serde_json::Value>(&code).map_err(|e| {
                BuilderError::Unrunnable(format!("{CONNECTION_PATH} is not JSON: {e}"))
            })?;
            0o644
        }
        Platform::Binary | Platform::Rust => 0o755,
    };
    std::fs::create_dir_all(output).map_err(io(output))?;
    let to = output.join(name);
    std::fs::write(&to, &code).map_err(io(&to))?;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).map_err(io(&to))?;
    let record = output.join(BUILD_RECORD);
    let json = serde_json::to_vec(&BuildRecord { platform })
        .map_err(|e| BuilderError::Unrunnable(e.to_string()))?;
    std::fs::write(&record, json).map_err(io(&record))?;
    Ok(platform)
}

/// The type of the package built into `output`.
fn built_platform(output: &Path) -> Result<Platform, BuilderError> {
    let path = output.join(BUILD_RECORD);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let record: BuildRecord = serde_json::from_slice(&bytes).map_err(|e| BuilderError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(record.platform)
}

/// Puts what the peer needs from the build in `output` into `release`: for a `ccaas` package the
/// connection the peer dials; nothing for one the peer runs.
///
/// # Errors
/// [`BuilderError::Io`] when the build output cannot be read or the release written.
pub fn release(output: &Path, release: &Path) -> Result<(), BuilderError> {
    if built_platform(output)? != Platform::Ccaas {
        return Ok(());
    }
    let to = release.join(RELEASED_CONNECTION);
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let from = output.join(CONNECTION_PATH);
    std::fs::copy(&from, &to).map_err(io(&from))?;
    Ok(())
}

/// The peer's `chaincode.json`: who the chaincode is and how it reaches the peer. The TLS fields
/// are empty when the peer's TLS is off.
#[derive(Debug, Deserialize)]
pub struct RunMetadata {
    /// The chaincode's package id, which it registers under.
    pub chaincode_id: String,
    /// The peer's chaincode address.
    pub peer_address: String,
    /// The chaincode's TLS client certificate (PEM).
    #[serde(default)]
    pub client_cert: String,
    /// Its key (PEM; Fabric labels a PKCS#8 key `EC PRIVATE KEY`).
    #[serde(default)]
    pub client_key: String,
    /// The CA of the peer's TLS certificate (PEM).
    #[serde(default)]
    pub root_cert: String,
    /// The peer's MSP id.
    #[serde(default)]
    pub mspid: String,
}

/// What run starts.
#[derive(Debug)]
pub struct RunPlan {
    /// The package's type.
    pub platform: Platform,
    /// The executable (binary) or component (wasm) in the build output.
    pub code: PathBuf,
    /// The settings Fabric's shims read (`CORE_PEER_ADDRESS`, `CORE_CHAINCODE_ID_NAME`,
    /// `CORE_PEER_TLS_*`, `CORE_TLS_CLIENT_*`, `CORE_PEER_LOCALMSPID`).
    pub env: Vec<(String, String)>,
}

/// The chaincode built into `output` and how to start it, from the peer's `chaincode.json` in
/// `run_metadata`. The TLS material is written beside it, in files of the run's own.
///
/// # Errors
/// [`BuilderError::RunMetadata`] for a missing or malformed `chaincode.json`,
/// [`BuilderError::Unrunnable`] for a package the peer dials rather than starts.
pub fn plan_run(output: &Path, run_metadata: &Path) -> Result<RunPlan, BuilderError> {
    let platform = built_platform(output)?;
    if platform == Platform::Ccaas {
        return Err(BuilderError::Unrunnable(
            "a ccaas package is served elsewhere and dialled by the peer; it is not run".to_owned(),
        ));
    }
    let path = run_metadata.join("chaincode.json");
    let bytes = std::fs::read(&path).map_err(|e| BuilderError::RunMetadata {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let metadata: RunMetadata =
        serde_json::from_slice(&bytes).map_err(|e| BuilderError::RunMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let mut env = vec![
        ("CORE_CHAINCODE_ID_NAME".to_owned(), metadata.chaincode_id),
        ("CORE_PEER_ADDRESS".to_owned(), metadata.peer_address),
        ("CORE_PEER_LOCALMSPID".to_owned(), metadata.mspid),
    ];
    let tls = !metadata.root_cert.is_empty();
    env.push(("CORE_PEER_TLS_ENABLED".to_owned(), tls.to_string()));
    if tls {
        for (variable, file, pem) in [
            (
                "CORE_PEER_TLS_ROOTCERT_FILE",
                "peer-root.pem",
                &metadata.root_cert,
            ),
            (
                "CORE_TLS_CLIENT_CERT_PATH",
                "client-cert.pem",
                &metadata.client_cert,
            ),
            (
                "CORE_TLS_CLIENT_KEY_PATH",
                "client-key.pem",
                &metadata.client_key,
            ),
        ] {
            if pem.is_empty() {
                continue;
            }
            let file = run_metadata.join(file);
            crate::fs_private::write_private(&file, pem).map_err(io(&file))?;
            env.push((variable.to_owned(), file.to_string_lossy().into_owned()));
        }
    }
    Ok(RunPlan {
        platform,
        code: output.join(code_path(platform)),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_dirs(
        kind: &str,
        file: Option<(&str, &[u8])>,
    ) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("src");
        let metadata = root.path().join("meta");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::create_dir_all(&metadata).unwrap();
        std::fs::write(
            metadata.join("metadata.json"),
            format!(r#"{{"type":"{kind}","label":"kv_1"}}"#),
        )
        .unwrap();
        if let Some((name, bytes)) = file {
            std::fs::write(source.join(name), bytes).unwrap();
        }
        (root, source, metadata)
    }

    #[test]
    fn detect_refuses_other_builders_packages_with_the_reason() {
        let (_root, source, metadata) = package_dirs("golang", Some(("main.go", b"package main")));
        let refused = detect(&source, &metadata).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(r#"type "golang" is not one of wasm, binary, ccaas"#),
            "{refused}"
        );
        let (_root, source, metadata) = package_dirs("wasm", None);
        let refused = detect(&source, &metadata).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("a wasm package holds chaincode.wasm"),
            "{refused}"
        );
    }

    #[test]
    fn a_core_module_is_refused_at_build_not_at_its_first_transaction() {
        let core_module = [0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00];
        let (root, source, metadata) = package_dirs("wasm", Some((COMPONENT_PATH, &core_module)));
        let refused = build(&source, &metadata, &root.path().join("out"), |_| Ok(())).unwrap_err();
        assert!(
            matches!(refused, BuilderError::Unrunnable(_)),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("core wasm module"),
            "{refused}"
        );
    }

    #[test]
    fn a_ccaas_build_is_released_as_the_connection_the_peer_dials() {
        let connection = br#"{"address":"127.0.0.1:9999","dial_timeout":"10s"}"#;
        let (root, source, metadata) = package_dirs("ccaas", Some((CONNECTION_PATH, connection)));
        let output = root.path().join("out");
        assert_eq!(
            build(&source, &metadata, &output, |_| Ok(())).unwrap(),
            Platform::Ccaas
        );
        let released = root.path().join("release");
        release(&output, &released).unwrap();
        assert_eq!(
            std::fs::read(released.join(RELEASED_CONNECTION)).unwrap(),
            connection
        );
        let not_run = plan_run(&output, root.path()).unwrap_err();
        assert!(not_run.to_string().contains("it is not run"), "{not_run}");
    }

    #[test]
    fn run_hands_the_peers_tls_material_to_the_chaincode_in_files() {
        let (root, source, metadata) = package_dirs("binary", Some((BINARY_PATH, b"\x7fELF")));
        let output = root.path().join("out");
        build(&source, &metadata, &output, |_| Ok(())).unwrap();
        let released = root.path().join("release");
        release(&output, &released).unwrap();
        assert!(!released.join(RELEASED_CONNECTION).exists());
        let run = root.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("chaincode.json"),
            r#"{"chaincode_id":"kv_1:abc","peer_address":"127.0.0.1:7052",
                "client_cert":"CERT","client_key":"KEY","root_cert":"ROOT","mspid":"Org1MSP"}"#,
        )
        .unwrap();
        let plan = plan_run(&output, &run).unwrap();
        assert_eq!(plan.platform, Platform::Binary);
        assert_eq!(plan.code, output.join(BINARY_PATH));
        let value = |name: &str| {
            plan.env
                .iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("{name} is not set"))
        };
        assert_eq!(value("CORE_CHAINCODE_ID_NAME"), "kv_1:abc");
        assert_eq!(value("CORE_PEER_TLS_ENABLED"), "true");
        assert_eq!(
            std::fs::read_to_string(value("CORE_TLS_CLIENT_KEY_PATH")).unwrap(),
            "KEY"
        );
        assert_eq!(
            std::fs::read_to_string(value("CORE_PEER_TLS_ROOTCERT_FILE")).unwrap(),
            "ROOT"
        );

        std::fs::write(
            run.join("chaincode.json"),
            r#"{"chaincode_id":"kv_1:abc","peer_address":"127.0.0.1:7052"}"#,
        )
        .unwrap();
        let plain = plan_run(&output, &run).unwrap();
        assert!(
            plain
                .env
                .contains(&("CORE_PEER_TLS_ENABLED".to_owned(), "false".to_owned()))
        );
        assert!(
            !plain
                .env
                .iter()
                .any(|(name, _)| name == "CORE_TLS_CLIENT_KEY_PATH")
        );
    }

    #[test]
    fn installed_programs_call_back_into_ccvm() {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), Path::new("/opt/it's here/ccvm")).unwrap();
        for step in STEPS {
            let script = std::fs::read_to_string(dir.path().join("bin").join(step)).unwrap();
            assert_eq!(
                script,
                format!("#!/bin/sh\nexec '/opt/it'\\''s here/ccvm' builder {step} \"$@\"\n")
            );
        }
    }
}
