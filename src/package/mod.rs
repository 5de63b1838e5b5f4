//! Chaincode packages in Fabric 2.x's format: a `.tar.gz` holding `metadata.json` (`type` and
//! `label`) and `code.tar.gz`. A package's id is `LABEL:SHA256HEX`, the hash taken over the
//! package file. Installed packages are kept as files in the node's data directory.

mod archive;
mod store;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use archive::{CodeFile, write_tar, write_tar_gz};
pub use store::PackageStore;

/// Why a package is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The bytes are not a package.
    #[error("not a chaincode package: {0}")]
    Malformed(String),
    /// The label breaks Fabric's rule.
    #[error(
        "label {0:?} must start with a letter or digit and hold only letters, digits and _ . + -"
    )]
    Label(String),
    /// The type is not one ccvm runs.
    #[error("package type {0:?} is not one of rust, binary, wasm, ccaas")]
    Platform(String),
    /// The package store could not be read or written.
    #[error("package store {path}: {source}")]
    Store {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How a package's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// A cargo project using ccvm's guest SDK, built by cargo in a build container to a static
    /// musl binary.
    Rust,
    /// A prebuilt static executable, `chaincode` in the code archive.
    Binary,
    /// A `wasm32-wasip2` component, `chaincode.wasm` in the code archive.
    Wasm,
    /// A chaincode already running elsewhere: `connection.json` in the code archive.
    Ccaas,
}

impl Platform {
    /// The name used in `metadata.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Binary => "binary",
            Self::Wasm => "wasm",
            Self::Ccaas => "ccaas",
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = PackageError;

    fn from_str(text: &str) -> Result<Self, PackageError> {
        match text.to_ascii_lowercase().as_str() {
            "rust" => Ok(Self::Rust),
            "binary" => Ok(Self::Binary),
            "wasm" => Ok(Self::Wasm),
            "ccaas" => Ok(Self::Ccaas),
            _ => Err(PackageError::Platform(text.to_owned())),
        }
    }
}

/// `metadata.json` of a package.
#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    #[serde(rename = "type")]
    platform: String,
    label: String,
}

/// A chaincode package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `LABEL:SHA256HEX`.
    pub id: String,
    /// The label.
    pub label: String,
    /// How its code runs.
    pub platform: Platform,
    /// `code.tar.gz`.
    pub code: Vec<u8>,
}

/// The id of the package file `bytes` labelled `label`.
pub fn package_id(label: &str, bytes: &[u8]) -> String {
    format!("{label}:{}", hex::encode(Sha256::digest(bytes)))
}

fn check_label(label: &str) -> Result<(), PackageError> {
    let mut bytes = label.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b)) {
        Ok(())
    } else {
        Err(PackageError::Label(label.to_owned()))
    }
}

impl Package {
    /// Reads a package file.
    ///
    /// # Errors
    /// [`PackageError::Malformed`] for anything but a gzipped tar with `metadata.json` and
    /// `code.tar.gz`, [`PackageError::Label`] or [`PackageError::Platform`] for bad metadata.
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let entries = archive::read_tar_gz(bytes)?;
        let find = |name: &str| {
            entries
                .iter()
                .find(|file| file.path == name)
                .map(|file| file.bytes.clone())
                .ok_or_else(|| PackageError::Malformed(format!("no {name}")))
        };
        let metadata: Metadata = serde_json::from_slice(&find("metadata.json")?)
            .map_err(|e| PackageError::Malformed(format!("metadata.json: {e}")))?;
        check_label(&metadata.label)?;
        let platform = metadata.platform.parse()?;
        let code = find("code.tar.gz")?;
        archive::read_tar_gz(&code)
            .map_err(|e| PackageError::Malformed(format!("code.tar.gz: {e}")))?;
        Ok(Self {
            id: package_id(&metadata.label, bytes),
            label: metadata.label,
            platform,
            code,
        })
    }

    /// Writes a package file holding `code`.
    ///
    /// # Errors
    /// [`PackageError::Label`] for a label Fabric would refuse.
    pub fn build(
        label: &str,
        platform: Platform,
        code: &[CodeFile],
    ) -> Result<Vec<u8>, PackageError> {
        check_label(label)?;
        let metadata = serde_json::to_vec(&Metadata {
            platform: platform.as_str().to_owned(),
            label: label.to_owned(),
        })
        .map_err(|e| PackageError::Malformed(e.to_string()))?;
        let code = archive::write_tar_gz(code)?;
        archive::write_tar_gz(&[
            CodeFile::new("metadata.json", metadata, 0o644),
            CodeFile::new("code.tar.gz", code, 0o644),
        ])
    }

    /// The contents of one file of `code.tar.gz`.
    ///
    /// # Errors
    /// [`PackageError::Malformed`] when the archive cannot be read or has no such file.
    pub fn code_file(&self, path: &str) -> Result<Vec<u8>, PackageError> {
        self.code_files()?
            .into_iter()
            .find(|file| file.path == path)
            .map(|file| file.bytes)
            .ok_or_else(|| {
                PackageError::Malformed(format!(
                    "{} package {} has no {path}",
                    self.platform.as_str(),
                    self.id
                ))
            })
    }

    /// The files of `code.tar.gz`.
    ///
    /// # Errors
    /// [`PackageError::Malformed`] when the archive cannot be read.
    pub fn code_files(&self) -> Result<Vec<CodeFile>, PackageError> {
        archive::read_tar_gz(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        Package::build(
            "basic_1.0",
            Platform::Binary,
            &[CodeFile::new("chaincode", b"\x7fELF".to_vec(), 0o755)],
        )
        .unwrap()
    }

    #[test]
    fn a_built_package_parses_back_with_its_id() {
        let bytes = sample();
        let package = Package::parse(&bytes).unwrap();
        assert_eq!(package.label, "basic_1.0");
        assert_eq!(package.platform, Platform::Binary);
        assert_eq!(package.id, package_id("basic_1.0", &bytes));
        assert!(package.id.starts_with("basic_1.0:"));
        assert_eq!(package.id.len(), "basic_1.0:".len() + 64);
        let files = package.code_files().unwrap();
        assert_eq!(
            files,
            vec![CodeFile::new("chaincode", b"\x7fELF".to_vec(), 0o755)]
        );
    }

    #[test]
    fn bad_packages_are_refused_with_the_reason() {
        assert!(matches!(
            Package::parse(b"not gzip"),
            Err(PackageError::Malformed(_))
        ));
        let no_code = archive::write_tar_gz(&[CodeFile::new(
            "metadata.json",
            br#"{"type":"binary","label":"x"}"#.to_vec(),
            0o644,
        )])
        .unwrap();
        let error = Package::parse(&no_code).unwrap_err();
        assert!(error.to_string().contains("no code.tar.gz"), "{error}");
        let cobol = archive::write_tar_gz(&[
            CodeFile::new(
                "metadata.json",
                br#"{"type":"cobol","label":"x"}"#.to_vec(),
                0o644,
            ),
            CodeFile::new("code.tar.gz", archive::write_tar_gz(&[]).unwrap(), 0o644),
        ])
        .unwrap();
        assert!(matches!(
            Package::parse(&cobol),
            Err(PackageError::Platform(_))
        ));
        assert!(matches!(
            Package::build("-bad", Platform::Binary, &[]),
            Err(PackageError::Label(_))
        ));
    }
}
