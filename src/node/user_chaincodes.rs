//! Which user chaincodes the Docker VM runs: those whose definition is committed through
//! `_lifecycle` and whose package is installed on this node; and which endorsement policy each
//! defined chaincode's transactions must satisfy.

use ccvm_guest_sdk::{create_composite_key, split_composite_key};
use serde::Deserialize;
use tracing::{info, warn};

use super::system_chaincodes::LIFECYCLE;
use crate::chaincode::ChaincodeSupport;
use crate::container::{ChaincodeResolver, Resolved};
use crate::ledger::{DEFAULT_CHANNEL, Ledger};
use crate::package::PackageStore;
use crate::validation::ChaincodeDefinitions;

/// The fields of a committed `_lifecycle` definition the peer needs to launch a chaincode.
#[derive(Debug, Deserialize)]
struct Definition {
    name: String,
    version: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    endorsement_policy: String,
}

/// `_lifecycle`'s key of a committed definition: the composite key `definition/NAME`, formed
/// as the chaincode forms it.
fn definition_key(name: &str) -> Option<String> {
    create_composite_key(DEFINITION, &[name]).ok()
}

/// The metadata entry that holds a key's endorsement policy.
const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// The object type of `_lifecycle`'s committed definitions.
const DEFINITION: &str = "definition";

/// Resolves a chaincode name through the definitions committed on the node's channel.
pub(super) struct DefinedChaincodes {
    pub ledger: Ledger,
    pub packages: PackageStore,
}

impl DefinedChaincodes {
    fn definition(&self, name: &str) -> Option<Definition> {
        self.definition_on(DEFAULT_CHANNEL, name)
    }

    fn definition_on(&self, channel: &str, name: &str) -> Option<Definition> {
        let mut reader = self.ledger.new_simulator(channel, "").ok()?;
        let bytes = reader.get_state(LIFECYCLE, &definition_key(name)?).ok()??;
        serde_json::from_slice(&bytes)
            .inspect_err(|e| warn!(chaincode = name, "unreadable definition: {e}"))
            .ok()
    }
}

impl ChaincodeDefinitions for DefinedChaincodes {
    fn endorsement_policy(&self, channel: &str, name: &str) -> Option<String> {
        self.definition_on(channel, name)
            .map(|definition| definition.endorsement_policy)
    }

    fn validation_parameter(&self, channel: &str, namespace: &str, key: &str) -> Option<Vec<u8>> {
        let mut reader = self.ledger.new_simulator(channel, "").ok()?;
        reader
            .get_state_metadata(namespace, "", key)
            .inspect_err(|e| warn!(chaincode = namespace, "unreadable key metadata: {e}"))
            .ok()?
            .remove(VALIDATION_PARAMETER)
    }

    fn defined_by(&self, key: &str) -> Option<String> {
        let (object_type, attributes) = split_composite_key(key).ok()?;
        match (object_type.as_str(), attributes.as_slice()) {
            (DEFINITION, [name]) => Some(name.clone()),
            _ => None,
        }
    }
}

/// Retires the running instances of chaincode `name` once a new definition of it is committed,
/// when the node runs it itself: its next call launches what the new definition names. A
/// chaincode started by hand in dev mode keeps running.
pub(super) fn retire_redefined(support: &ChaincodeSupport, name: &str) {
    if !support.launchable(name) {
        return;
    }
    for registered in support.registry().names() {
        if registered.split(':').next() == Some(name) && support.retire(&registered) {
            info!(chaincode = %registered, "retired: a new definition is committed");
        }
    }
}

impl ChaincodeResolver for DefinedChaincodes {
    fn resolve(&self, name: &str) -> Option<Resolved> {
        let definition = self.definition(name)?;
        if definition.package_id.is_empty() {
            return None;
        }
        let package = self
            .packages
            .get(&definition.package_id)
            .inspect_err(|e| warn!(chaincode = name, "unreadable package: {e}"))
            .ok()??;
        Some(Resolved {
            registers_as: format!("{}:{}", definition.name, definition.version),
            package,
        })
    }
}
