//! Which user chaincodes the Docker VM runs: those whose definition is committed through
//! `_lifecycle` and whose package is installed on this node; and which endorsement policy each
//! defined chaincode's transactions must satisfy.

use ccvm_guest_sdk::create_composite_key;
use serde::Deserialize;
use tracing::warn;

use super::system_chaincodes::LIFECYCLE;
use crate::container::{ChaincodeResolver, Resolved};
use crate::ledger::{DEFAULT_CHANNEL, Ledger};
use crate::package::PackageStore;
use crate::validation::EndorsementPolicies;

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
    create_composite_key("definition", &[name]).ok()
}

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

impl EndorsementPolicies for DefinedChaincodes {
    fn endorsement_policy(&self, channel: &str, name: &str) -> Option<String> {
        self.definition_on(channel, name)
            .map(|definition| definition.endorsement_policy)
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
