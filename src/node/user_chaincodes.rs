//! Which user chaincodes the Docker VM runs: those whose definition is committed through
//! `_lifecycle` and whose package is installed on this node; and which endorsement policy each
//! defined chaincode's transactions must satisfy.

use std::collections::HashMap;

use ccvm_guest_sdk::{create_composite_key, split_composite_key};
use serde::Deserialize;
use tracing::{info, warn};

use super::system_chaincodes::LIFECYCLE;
use crate::chaincode::ChaincodeSupport;
use crate::container::{ChaincodeResolver, Resolved};
use crate::ledger::{DEFAULT_CHANNEL, Ledger, TxSimulator};
use crate::package::PackageStore;
use crate::validation::{StateView, ValidationState};

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
        read_definition(&mut reader, name)
    }
}

/// The committed definition of chaincode `name` as `reader` sees it.
fn read_definition(reader: &mut TxSimulator, name: &str) -> Option<Definition> {
    let bytes = reader.get_state(LIFECYCLE, &definition_key(name)?).ok()??;
    serde_json::from_slice(&bytes)
        .inspect_err(|e| warn!(chaincode = name, "unreadable definition: {e}"))
        .ok()
}

impl ValidationState for DefinedChaincodes {
    fn view(&self, channel: &str) -> Box<dyn StateView + '_> {
        let reader = self
            .ledger
            .new_simulator(channel, "")
            .inspect_err(|e| warn!(%channel, "cannot read state for validation: {e}"))
            .ok();
        Box::new(DefinitionsView {
            reader,
            policies: HashMap::new(),
        })
    }

    fn defined_by(&self, key: &str) -> Option<String> {
        let (object_type, attributes) = split_composite_key(key).ok()?;
        match (object_type.as_str(), attributes.as_slice()) {
            (DEFINITION, [name]) => Some(name.clone()),
            _ => None,
        }
    }
}

/// A snapshot of a channel's definitions and key metadata, each definition read once.
struct DefinitionsView {
    reader: Option<TxSimulator>,
    policies: HashMap<String, Option<String>>,
}

impl StateView for DefinitionsView {
    fn endorsement_policy(&mut self, name: &str) -> Option<String> {
        if let Some(policy) = self.policies.get(name) {
            return policy.clone();
        }
        let reader = self.reader.as_mut()?;
        let policy = read_definition(reader, name).map(|definition| definition.endorsement_policy);
        self.policies.insert(name.to_owned(), policy.clone());
        policy
    }

    fn validation_parameter(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.reader
            .as_mut()?
            .get_state_metadata(namespace, "", key)
            .inspect_err(|e| warn!(chaincode = namespace, "unreadable key metadata: {e}"))
            .ok()?
            .remove(VALIDATION_PARAMETER)
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
