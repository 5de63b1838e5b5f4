//! The records `_lifecycle` keeps, and the rules a valid one follows.

use std::collections::BTreeMap;

use ccvm_guest_sdk::ShimError;
use serde::{Deserialize, Serialize};

/// The ways a user chaincode package can be run.
const PLATFORMS: [&str; 4] = ["rust", "binary", "wasm", "ccaas"];

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
    pub fn check(&self) -> Result<(), ShimError> {
        check_platform(&self.platform)?;
        let Some((label, hash)) = self.package_id.split_once(':') else {
            return Err(invalid(format!(
                "package id {:?} is not LABEL:SHA256HEX",
                self.package_id
            )));
        };
        if label != self.label {
            return Err(invalid(format!(
                "package id {:?} does not start with the label {:?}",
                self.package_id, self.label
            )));
        }
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "package id {:?} does not end with a SHA-256 in hex",
                self.package_id
            )));
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
    /// The endorsement policy, kept as data.
    #[serde(default)]
    pub endorsement_policy: String,
    /// Whether `Init` must be invoked before other functions.
    #[serde(default)]
    pub init_required: bool,
}

impl Parameters {
    pub fn check(&self) -> Result<(), ShimError> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .split(['-', '_'])
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !name_ok {
            return Err(invalid(format!(
                "chaincode name {:?} must be letters and digits, joined by single - or _",
                self.name
            )));
        }
        let version_ok = !self.version.is_empty()
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
        if !version_ok {
            return Err(invalid(format!(
                "version {:?} must be letters, digits and _ . + -",
                self.version
            )));
        }
        if self.sequence == 0 {
            return Err(invalid("sequence starts at 1".to_owned()));
        }
        Ok(())
    }
}

/// A chaincode definition, as approved by organizations and committed on a channel: its
/// parameters and the package the node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    #[serde(flatten)]
    pub parameters: Parameters,
    /// The installed package this definition runs (empty for none yet).
    #[serde(default)]
    pub package_id: String,
    /// How the package runs: one of [`PLATFORMS`].
    pub platform: String,
}

impl Definition {
    pub fn check(&self) -> Result<(), ShimError> {
        self.parameters.check()?;
        check_platform(&self.platform)
    }

    /// A definition must be the next sequence after the committed one.
    pub fn check_sequence(&self, committed: Option<&Definition>) -> Result<(), ShimError> {
        let next = committed.map_or(1, |c| c.parameters.sequence + 1);
        if self.parameters.sequence == next {
            Ok(())
        } else {
            Err(invalid(format!(
                "chaincode {} expects sequence {next}, not {}",
                self.parameters.name, self.parameters.sequence
            )))
        }
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
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Readiness {
    pub approvals: BTreeMap<String, bool>,
}

/// A committed definition and the approvals of its parameters.
#[derive(Debug, Serialize)]
pub struct Committed {
    #[serde(flatten)]
    pub definition: Definition,
    pub approvals: BTreeMap<String, bool>,
}

fn check_platform(platform: &str) -> Result<(), ShimError> {
    if PLATFORMS.contains(&platform) {
        Ok(())
    } else {
        Err(invalid(format!(
            "platform {platform:?} is not one of {}",
            PLATFORMS.join(", ")
        )))
    }
}

fn invalid(text: String) -> ShimError {
    ShimError::InvalidArgument(text)
}
