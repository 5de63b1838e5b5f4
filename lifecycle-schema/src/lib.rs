//! The records `_lifecycle` keeps in world state as JSON, the rules a valid one follows, and
//! the keys it keeps them under: one schema for the chaincode that writes them, the node that
//! launches and validates by them, and the command line that shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The ways a user chaincode package can be run.
pub const PLATFORMS: [&str; 4] = ["rust", "binary", "wasm", "ccaas"];

/// Composite-key object type of an installed package's record: `installed/PACKAGE_ID`.
pub const INSTALLED: &str = "installed";
/// Composite-key object type of an approval: `approval/NAME/SEQUENCE/MSP_ID`.
pub const APPROVAL: &str = "approval";
/// Composite-key object type of a committed definition: `definition/NAME`.
pub const DEFINITION: &str = "definition";

/// The first character of a composite key, and the one after each of its parts (Fabric's).
const COMPOSITE_KEY_SEPARATOR: char = '\u{0}';

/// Why a record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A chaincode name that is not letters and digits joined by single `-` or `_`.
    #[error("chaincode name {0:?} must be letters and digits, joined by single - or _")]
    Name(String),
    /// A version with characters other than letters, digits and `_ . + -`, or none.
    #[error("version {0:?} must be letters, digits and _ . + -")]
    Version(String),
    /// Sequence 0.
    #[error("sequence starts at 1")]
    ZeroSequence,
    /// A sequence other than the one after the committed definition's.
    #[error("chaincode {name} expects sequence {expected}, not {given}")]
    Sequence {
        /// The chaincode.
        name: String,
        /// One more than the committed sequence, or 1.
        expected: u64,
        /// The sequence given.
        given: u64,
    },
    /// A platform not in [`PLATFORMS`].
    #[error("platform {0:?} is not one of rust, binary, wasm, ccaas")]
    Platform(String),
    /// A package id that is not `LABEL:SHA256HEX` of its label.
    #[error("package id {package_id:?} {why}")]
    PackageId {
        /// The package id given.
        package_id: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A chaincode package installed on the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// `LABEL:SHA256HEX` of the package.
    pub package_id: String,
    /// The label from the package's metadata.
    pub label: String,
    /// How the package runs: one of [`PLATFORMS`].
    pub platform: String,
}

impl Installed {
    /// Checks the platform and that the package id is `LABEL:SHA256HEX` of this label.
    ///
    /// # Errors
    /// [`SchemaError::Platform`] or [`SchemaError::PackageId`].
    pub fn check(&self) -> Result<(), SchemaError> {
        check_platform(&self.platform)?;
        let refused = |why| SchemaError::PackageId {
            package_id: self.package_id.clone(),
            why,
        };
        let Some((label, hash)) = self.package_id.split_once(':') else {
            return Err(refused("is not LABEL:SHA256HEX"));
        };
        if label != self.label {
            return Err(refused("does not start with the package's label"));
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refused("does not end with a SHA-256 in hex"));
        }
        Ok(())
    }
}

/// What organizations agree on when they approve a definition, and what readiness compares, as
/// in Fabric: everything but the package, which each organization chooses for itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    /// The chaincode's name.
    pub name: String,
    /// Its version label.
    pub version: String,
    /// 1 for the first definition, one more for each later one.
    pub sequence: u64,
    /// The endorsement policy: Fabric's signature-policy language, a channel policy path, or
    /// empty for the channel's `Endorsement` policy.
    #[serde(default)]
    pub endorsement_policy: String,
    /// Whether `Init` must be invoked before other functions.
    #[serde(default)]
    pub init_required: bool,
}

impl Parameters {
    /// Checks the name, the version and that the sequence is not 0.
    ///
    /// # Errors
    /// [`SchemaError::Name`], [`SchemaError::Version`] or [`SchemaError::ZeroSequence`].
    pub fn check(&self) -> Result<(), SchemaError> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .split(['-', '_'])
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !name_ok {
            return Err(SchemaError::Name(self.name.clone()));
        }
        let version_ok = !self.version.is_empty()
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
        if !version_ok {
            return Err(SchemaError::Version(self.version.clone()));
        }
        if self.sequence == 0 {
            return Err(SchemaError::ZeroSequence);
        }
        Ok(())
    }
}

/// A chaincode definition, as approved by organizations and committed on a channel: its
/// parameters and the package the node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// What the organizations agree on.
    #[serde(flatten)]
    pub parameters: Parameters,
    /// The installed package this definition runs (empty for none yet).
    #[serde(default)]
    pub package_id: String,
    /// How the package runs: one of [`PLATFORMS`].
    pub platform: String,
}

impl Definition {
    /// Checks the parameters and the platform.
    ///
    /// # Errors
    /// As [`Parameters::check`], or [`SchemaError::Platform`].
    pub fn check(&self) -> Result<(), SchemaError> {
        self.parameters.check()?;
        check_platform(&self.platform)
    }

    /// Checks that this definition is the next sequence after the committed one.
    ///
    /// # Errors
    /// [`SchemaError::Sequence`].
    pub fn check_sequence(&self, committed: Option<&Definition>) -> Result<(), SchemaError> {
        let expected = committed.map_or(1, |c| c.parameters.sequence + 1);
        if self.parameters.sequence == expected {
            Ok(())
        } else {
            Err(SchemaError::Sequence {
                name: self.parameters.name.clone(),
                expected,
                given: self.parameters.sequence,
            })
        }
    }

    /// The name a chaincode run by this definition registers under: `NAME:VERSION`.
    pub fn registers_as(&self) -> String {
        format!("{}:{}", self.parameters.name, self.parameters.version)
    }
}

/// One organization's approval of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approving organization.
    pub msp_id: String,
    /// What it approved.
    pub definition: Definition,
}

/// Which organizations approved a definition's parameters as given.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Each approving organization, and whether its approval matches.
    pub approvals: BTreeMap<String, bool>,
}

/// A committed definition and the approvals of its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The definition.
    #[serde(flatten)]
    pub definition: Definition,
    /// Each approving organization, and whether its approval matches.
    #[serde(default)]
    pub approvals: BTreeMap<String, bool>,
}

fn check_platform(platform: &str) -> Result<(), SchemaError> {
    if PLATFORMS.contains(&platform) {
        Ok(())
    } else {
        Err(SchemaError::Platform(platform.to_owned()))
    }
}

/// The key of chaincode `name`'s committed definition, as the chaincode's stub forms the
/// composite key `definition/NAME`.
pub fn definition_key(name: &str) -> String {
    let s = COMPOSITE_KEY_SEPARATOR;
    format!("{s}{DEFINITION}{s}{name}{s}")
}

/// The key range `[start, end)` that holds every committed definition.
pub fn definitions_range() -> (String, String) {
    let s = COMPOSITE_KEY_SEPARATOR;
    (
        format!("{s}{DEFINITION}{s}"),
        format!("{s}{DEFINITION}{s}{}", char::MAX),
    )
}

/// The chaincode whose committed definition `key` holds, if it is such a key.
pub fn defined_by(key: &str) -> Option<&str> {
    let s = COMPOSITE_KEY_SEPARATOR;
    let name = key
        .strip_prefix(s)?
        .strip_prefix(DEFINITION)?
        .strip_prefix(s)?
        .strip_suffix(s)?;
    (!name.is_empty() && !name.contains(s)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(sequence: u64) -> Definition {
        Definition {
            parameters: Parameters {
                name: "basic".to_owned(),
                version: "1.0".to_owned(),
                sequence,
                endorsement_policy: String::new(),
                init_required: false,
            },
            package_id: String::new(),
            platform: "wasm".to_owned(),
        }
    }

    #[test]
    fn a_definition_reads_and_writes_as_flat_json() {
        let json =
            r#"{"name":"basic","version":"1.0","sequence":1,"package_id":"","platform":"wasm"}"#;
        let read: Definition = serde_json::from_str(json).unwrap();
        assert_eq!(read, definition(1));
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written["name"], "basic");
        assert_eq!(written["sequence"], 1);
    }

    #[test]
    fn each_invalid_record_names_its_fault() {
        let mut bad = definition(1);
        bad.parameters.name = "a--b".to_owned();
        assert_eq!(bad.check(), Err(SchemaError::Name("a--b".to_owned())));
        let mut bad = definition(0);
        assert_eq!(bad.check(), Err(SchemaError::ZeroSequence));
        bad.parameters.sequence = 3;
        assert_eq!(
            bad.check_sequence(Some(&definition(1)))
                .unwrap_err()
                .to_string(),
            "chaincode basic expects sequence 2, not 3"
        );
        bad.platform = "java".to_owned();
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "platform \"java\" is not one of rust, binary, wasm, ccaas"
        );
        let installed = Installed {
            package_id: "other:abc".to_owned(),
            label: "basic".to_owned(),
            platform: "wasm".to_owned(),
        };
        assert!(matches!(
            installed.check(),
            Err(SchemaError::PackageId { why, .. }) if why.contains("label")
        ));
    }

    #[test]
    fn a_definition_key_is_read_back_and_nothing_else_is() {
        assert_eq!(definition_key("basic"), "\u{0}definition\u{0}basic\u{0}");
        assert_eq!(defined_by(&definition_key("basic")), Some("basic"));
        assert_eq!(
            defined_by("\u{0}approval\u{0}basic\u{0}1\u{0}Org1MSP\u{0}"),
            None
        );
        assert_eq!(defined_by("\u{0}definition\u{0}a\u{0}b\u{0}"), None);
        assert_eq!(defined_by("definition"), None);
    }
}
