//! The records `_lifecycle` keeps in world state as JSON, the rules a valid one follows, the
//! keys it keeps them under, and how a definition's parameters are read from the arguments
//! Fabric's `peer lifecycle chaincode` sends: one schema for the chaincode that writes them, the
//! node that launches and validates by them, and the command line that shows them.

mod policy_text;

use std::collections::BTreeMap;

use base64::Engine;
use ccvm_proto::Message;
use ccvm_proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, CheckCommitReadinessArgs, CommitChaincodeDefinitionArgs,
};
use ccvm_proto::protos::{ApplicationPolicy, CollectionConfigPackage, application_policy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use policy_text::signature_policy_text;

/// Composite-key object type of an approval: `approval/NAME/SEQUENCE/MSP_ID`.
pub const APPROVAL: &str = "approval";
/// Composite-key object type of a committed definition: `definition/NAME`.
pub const DEFINITION: &str = "definition";
/// The endorsement plugin a definition names: ccvm endorses as Fabric's default plugin does.
pub const ENDORSEMENT_PLUGIN: &str = "escc";
/// The validation plugin a definition names: ccvm validates as Fabric's default plugin does.
pub const VALIDATION_PLUGIN: &str = "vscc";
/// The policy a definition without one is endorsed under: the channel's `Endorsement`.
pub const DEFAULT_ENDORSEMENT_POLICY: &str = "/Channel/Application/Endorsement";

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
    /// A sequence below 1.
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
    /// An endorsement or validation plugin other than Fabric's defaults.
    #[error(
        "{kind} plugin {name:?} is not supported: ccvm endorses and validates as Fabric's default plugins (escc, vscc) do"
    )]
    Plugin {
        /// `endorsement` or `validation`.
        kind: &'static str,
        /// The plugin named.
        name: String,
    },
    /// Private data collections in a definition.
    #[error("private data collections are not defined through ccvm's lifecycle yet")]
    Collections,
    /// A validation parameter that is not an `ApplicationPolicy` ccvm evaluates.
    #[error("the endorsement policy (validation parameter) {0}")]
    Policy(String),
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
    /// The endorsement policy as the node evaluates it: Fabric's signature-policy language, a
    /// channel policy path, or empty for the channel's `Endorsement` policy.
    #[serde(default)]
    pub endorsement_policy: String,
    /// The same policy as Fabric records it: an encoded `protos.ApplicationPolicy` (base64 in
    /// JSON).
    #[serde(default, with = "base64_bytes")]
    pub validation_parameter: Vec<u8>,
    /// Whether `Init` must be invoked before other functions.
    #[serde(default)]
    pub init_required: bool,
}

/// A definition's parameters as Fabric's lifecycle arguments carry them
/// (`ApproveChaincodeDefinitionForMyOrgArgs`, `CheckCommitReadinessArgs`,
/// `CommitChaincodeDefinitionArgs`).
#[derive(Debug, Clone, Copy)]
pub struct FabricParameters<'a> {
    /// The chaincode's name.
    pub name: &'a str,
    /// Its version label.
    pub version: &'a str,
    /// Its sequence.
    pub sequence: i64,
    /// The endorsement plugin; empty for the default.
    pub endorsement_plugin: &'a str,
    /// The validation plugin; empty for the default.
    pub validation_plugin: &'a str,
    /// An encoded `protos.ApplicationPolicy`; empty for the channel's `Endorsement` policy.
    pub validation_parameter: &'a [u8],
    /// Private data collections.
    pub collections: Option<&'a CollectionConfigPackage>,
    /// Whether `Init` must be invoked first.
    pub init_required: bool,
}

/// `From` each of Fabric's argument messages that carries a definition's parameters.
macro_rules! fabric_parameters_from {
    ($($args:ty),*) => {$(
        impl<'a> From<&'a $args> for FabricParameters<'a> {
            fn from(args: &'a $args) -> Self {
                Self {
                    name: &args.name,
                    version: &args.version,
                    sequence: args.sequence,
                    endorsement_plugin: &args.endorsement_plugin,
                    validation_plugin: &args.validation_plugin,
                    validation_parameter: &args.validation_parameter,
                    collections: args.collections.as_ref(),
                    init_required: args.init_required,
                }
            }
        }
    )*};
}

fabric_parameters_from!(
    ApproveChaincodeDefinitionForMyOrgArgs,
    CheckCommitReadinessArgs,
    CommitChaincodeDefinitionArgs
);

impl Parameters {
    /// Reads Fabric's arguments: the default plugins (or none named), no collections, and the
    /// validation parameter as the endorsement policy, the channel's `Endorsement` policy
    /// when it is empty, as Fabric records it.
    ///
    /// # Errors
    /// [`SchemaError`] naming what ccvm does not take or what does not check.
    pub fn from_fabric(fabric: &FabricParameters<'_>) -> Result<Self, SchemaError> {
        let plugin = |kind, name: &str, default| {
            if name.is_empty() || name == default {
                Ok(())
            } else {
                Err(SchemaError::Plugin {
                    kind,
                    name: name.to_owned(),
                })
            }
        };
        plugin("endorsement", fabric.endorsement_plugin, ENDORSEMENT_PLUGIN)?;
        plugin("validation", fabric.validation_plugin, VALIDATION_PLUGIN)?;
        if fabric
            .collections
            .is_some_and(|collections| !collections.config.is_empty())
        {
            return Err(SchemaError::Collections);
        }
        let validation_parameter = if fabric.validation_parameter.is_empty() {
            channel_policy_reference(DEFAULT_ENDORSEMENT_POLICY)
        } else {
            fabric.validation_parameter.to_vec()
        };
        let parameters = Self {
            name: fabric.name.to_owned(),
            version: fabric.version.to_owned(),
            sequence: u64::try_from(fabric.sequence).map_err(|_| SchemaError::ZeroSequence)?,
            endorsement_policy: endorsement_policy_text(&validation_parameter)?,
            validation_parameter,
            init_required: fabric.init_required,
        };
        parameters.check()?;
        Ok(parameters)
    }

    /// The sequence as Fabric's messages carry it.
    pub fn fabric_sequence(&self) -> i64 {
        i64::try_from(self.sequence).unwrap_or(i64::MAX)
    }

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
}

impl Definition {
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

/// An encoded `ApplicationPolicy` that refers to the channel policy at `path`.
pub fn channel_policy_reference(path: &str) -> Vec<u8> {
    ApplicationPolicy {
        r#type: Some(application_policy::Type::ChannelConfigPolicyReference(
            path.to_owned(),
        )),
    }
    .encode_to_vec()
}

/// The endorsement policy an encoded `ApplicationPolicy` holds, as the node evaluates it: a
/// channel policy path, or a signature policy in Fabric's language.
///
/// # Errors
/// [`SchemaError::Policy`] for bytes that are no such policy, or a signature policy the node
/// does not evaluate.
pub fn endorsement_policy_text(validation_parameter: &[u8]) -> Result<String, SchemaError> {
    let policy = ApplicationPolicy::decode(validation_parameter)
        .map_err(|e| SchemaError::Policy(format!("is not an ApplicationPolicy: {e}")))?;
    match policy.r#type {
        Some(application_policy::Type::ChannelConfigPolicyReference(path))
            if path.starts_with('/') =>
        {
            Ok(path)
        }
        Some(application_policy::Type::ChannelConfigPolicyReference(path)) => Err(
            SchemaError::Policy(format!("{path:?} is not a channel policy path")),
        ),
        Some(application_policy::Type::SignaturePolicy(envelope)) => {
            signature_policy_text(&envelope).map_err(SchemaError::Policy)
        }
        None => Err(SchemaError::Policy("names no policy".to_owned())),
    }
}

/// Bytes as base64 text in JSON.
mod base64_bytes {
    use super::{Deserialize, Deserializer, Engine, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
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

/// The key of organization `msp_id`'s approval of chaincode `name` at `sequence`, as the
/// chaincode's stub forms the composite key `approval/NAME/SEQUENCE/MSP_ID`.
pub fn approval_key(name: &str, sequence: u64, msp_id: &str) -> String {
    let s = COMPOSITE_KEY_SEPARATOR;
    format!("{s}{APPROVAL}{s}{name}{s}{sequence}{s}{msp_id}{s}")
}

/// The key range `[start, end)` that holds every organization's approval of chaincode `name` at
/// `sequence`.
pub fn approvals_range(name: &str, sequence: u64) -> (String, String) {
    let s = COMPOSITE_KEY_SEPARATOR;
    let prefix = format!("{s}{APPROVAL}{s}{name}{s}{sequence}{s}");
    let end = format!("{prefix}{}", char::MAX);
    (prefix, end)
}

/// The organization whose approval `key` holds, if it is such a key.
pub fn approved_by(key: &str) -> Option<&str> {
    let s = COMPOSITE_KEY_SEPARATOR;
    let parts: Vec<&str> = key
        .strip_prefix(s)?
        .strip_prefix(APPROVAL)?
        .strip_prefix(s)?
        .strip_suffix(s)?
        .split(s)
        .collect();
    match parts.as_slice() {
        [name, sequence, msp_id]
            if !name.is_empty() && sequence.parse::<u64>().is_ok() && !msp_id.is_empty() =>
        {
            Some(msp_id)
        }
        _ => None,
    }
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
                validation_parameter: Vec::new(),
                init_required: false,
            },
            package_id: String::new(),
        }
    }

    fn fabric(validation_parameter: &[u8]) -> FabricParameters<'_> {
        FabricParameters {
            name: "basic",
            version: "1.0",
            sequence: 1,
            endorsement_plugin: "",
            validation_plugin: "vscc",
            validation_parameter,
            collections: None,
            init_required: true,
        }
    }

    #[test]
    fn a_definition_reads_and_writes_as_flat_json() {
        let json = r#"{"name":"basic","version":"1.0","sequence":1,"package_id":""}"#;
        let read: Definition = serde_json::from_str(json).unwrap();
        assert_eq!(read, definition(1));
        let mut with_policy = definition(1);
        with_policy.parameters.validation_parameter = vec![0x12, 0x01, b'/'];
        let written = serde_json::to_value(&with_policy).unwrap();
        assert_eq!(written["name"], "basic");
        assert_eq!(written["sequence"], 1);
        assert_eq!(written["validation_parameter"], "EgEv");
        assert_eq!(
            serde_json::from_value::<Definition>(written).unwrap(),
            with_policy
        );
    }

    #[test]
    fn fabrics_arguments_are_read_with_the_channel_default_policy() {
        let read = Parameters::from_fabric(&fabric(&[])).unwrap();
        assert_eq!(read.endorsement_policy, DEFAULT_ENDORSEMENT_POLICY);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(&read.validation_parameter),
            "EiAvQ2hhbm5lbC9BcHBsaWNhdGlvbi9FbmRvcnNlbWVudA==",
            "the reference Fabric records"
        );
        assert!(read.init_required);
        let admins = channel_policy_reference("/Channel/Application/Admins");
        assert_eq!(
            Parameters::from_fabric(&fabric(&admins))
                .unwrap()
                .endorsement_policy,
            "/Channel/Application/Admins"
        );
    }

    #[test]
    fn fabrics_arguments_ccvm_does_not_take_are_refused_by_name() {
        let custom = FabricParameters {
            endorsement_plugin: "myescc",
            ..fabric(&[])
        };
        assert_eq!(
            Parameters::from_fabric(&custom).unwrap_err().to_string(),
            "endorsement plugin \"myescc\" is not supported: ccvm endorses and validates as Fabric's default plugins (escc, vscc) do"
        );
        let collections = CollectionConfigPackage {
            config: vec![Default::default()],
        };
        let with_collections = FabricParameters {
            collections: Some(&collections),
            ..fabric(&[])
        };
        assert_eq!(
            Parameters::from_fabric(&with_collections),
            Err(SchemaError::Collections)
        );
        let negative = FabricParameters {
            sequence: -1,
            ..fabric(&[])
        };
        assert_eq!(
            Parameters::from_fabric(&negative),
            Err(SchemaError::ZeroSequence)
        );
        assert!(matches!(
            Parameters::from_fabric(&fabric(b"\xff\xff")),
            Err(SchemaError::Policy(reason)) if reason.contains("is not an ApplicationPolicy")
        ));
    }

    #[test]
    fn each_invalid_record_names_its_fault() {
        let mut bad = definition(1);
        bad.parameters.name = "a--b".to_owned();
        assert_eq!(
            bad.parameters.check(),
            Err(SchemaError::Name("a--b".to_owned()))
        );
        let mut bad = definition(0);
        assert_eq!(bad.parameters.check(), Err(SchemaError::ZeroSequence));
        bad.parameters.sequence = 3;
        assert_eq!(
            bad.check_sequence(Some(&definition(1)))
                .unwrap_err()
                .to_string(),
            "chaincode basic expects sequence 2, not 3"
        );
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

    #[test]
    fn an_approval_key_names_its_organization_and_lies_in_its_sequence_range() {
        let key = approval_key("basic", 2, "Org1MSP");
        assert_eq!(key, "\u{0}approval\u{0}basic\u{0}2\u{0}Org1MSP\u{0}");
        assert_eq!(approved_by(&key), Some("Org1MSP"));
        let (start, end) = approvals_range("basic", 2);
        assert!(start.as_str() <= key.as_str() && key.as_str() < end.as_str());
        let (other_start, _) = approvals_range("basic", 20);
        assert!(!key.starts_with(&other_start));
        assert_eq!(approved_by(&definition_key("basic")), None);
        assert_eq!(
            approved_by("\u{0}approval\u{0}basic\u{0}x\u{0}Org1MSP\u{0}"),
            None
        );
        assert_eq!(approved_by("\u{0}approval\u{0}basic\u{0}2\u{0}\u{0}"), None);
    }
}
