//! Which user chaincodes the Docker VM runs: those whose definition is committed through
//! `_lifecycle` and whose package is installed on this node; and which endorsement policy each
//! defined chaincode's transactions must satisfy.

use std::collections::HashMap;

use ccvm_lifecycle_schema::{
    Approval, Definition, approval_key, approvals_range, approved_by, defined_by, definition_key,
    definitions_range,
};
use tracing::{info, warn};

use super::system_chaincodes::LIFECYCLE;
use crate::chaincode::ChaincodeSupport;
use crate::container::{ChaincodeResolver, Resolved};
use crate::ledger::{DEFAULT_CHANNEL, Ledger, RangeScan, TxSimulator};
use crate::package::PackageStore;
use crate::validation::{StateView, ValidationState};

/// Definitions read from the store at a time when all are listed.
const DEFINITIONS_BATCH: usize = 256;

/// The metadata entry that holds a key's endorsement policy.
const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";

/// Resolves a chaincode name through the definitions committed on the node's channels.
pub(super) struct DefinedChaincodes {
    pub ledger: Ledger,
    pub packages: PackageStore,
    /// The node's organization, whose approval of a definition names the package it runs.
    pub local_msp_id: String,
}

impl DefinedChaincodes {
    /// The definition that decides which package chaincode `name` runs on this node: the one
    /// committed on the default channel, else on the first other channel, by name, that has
    /// one. A node runs one package per chaincode name, whichever channel calls it.
    fn definition(&self, name: &str) -> Option<Definition> {
        self.definition_on(DEFAULT_CHANNEL, name).or_else(|| {
            self.channels()
                .iter()
                .filter(|channel| *channel != DEFAULT_CHANNEL)
                .find_map(|channel| self.definition_on(channel, name))
        })
    }

    /// The definition of chaincode `name` committed on `channel`, with the package this node
    /// runs for it.
    pub(super) fn definition_on(&self, channel: &str, name: &str) -> Option<Definition> {
        let mut reader = self.ledger.new_simulator(channel, "").ok()?;
        let definition = read_definition(&mut reader, name)?;
        Some(self.with_own_package(&mut reader, definition))
    }

    /// `definition` naming the package the node's organization approved for it, as each
    /// organization chooses its own package; none when the organization approved other
    /// parameters or nothing at that sequence.
    fn with_own_package(&self, reader: &mut TxSimulator, definition: Definition) -> Definition {
        let parameters = &definition.parameters;
        let key = approval_key(&parameters.name, parameters.sequence, &self.local_msp_id);
        let package_id = reader
            .get_state(LIFECYCLE, &key)
            .inspect_err(|e| warn!(chaincode = %parameters.name, "unreadable approval: {e}"))
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Approval>(&bytes).ok())
            .filter(|approval| approval.definition.parameters == *parameters)
            .map(|approval| approval.definition.package_id)
            .unwrap_or_default();
        Definition {
            package_id,
            ..definition
        }
    }

    /// The node's channels.
    pub(super) fn channels(&self) -> Vec<String> {
        self.ledger
            .channels()
            .inspect_err(|e| warn!("cannot list the channels: {e}"))
            .unwrap_or_default()
    }

    /// Every definition committed on `channel`, by name, each with the package this node runs
    /// for it.
    pub(super) fn committed_on(&self, channel: &str) -> Vec<Definition> {
        let Ok(mut reader) = self.ledger.new_simulator(channel, "") else {
            return Vec::new();
        };
        let (start, end) = definitions_range();
        let mut scan = RangeScan::new(LIFECYCLE, "", &start, &end, None);
        let mut definitions = Vec::new();
        while scan.has_more() {
            let rows = match reader.scan_range(&mut scan, DEFINITIONS_BATCH) {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(%channel, "cannot read the committed definitions: {e}");
                    break;
                }
            };
            definitions.extend(rows.into_iter().filter_map(|(key, bytes)| {
                serde_json::from_slice::<Definition>(&bytes)
                    .inspect_err(|e| warn!(%key, "unreadable definition: {e}"))
                    .ok()
            }));
        }
        definitions
            .into_iter()
            .map(|definition| self.with_own_package(&mut reader, definition))
            .collect()
    }
}

/// Every organization's approval of chaincode `name` at `sequence` as `reader` sees it, by
/// organization. A record filed under another organization's key than its own is not one.
pub(super) fn read_approvals(
    reader: &mut TxSimulator,
    name: &str,
    sequence: u64,
) -> Result<Vec<Approval>, crate::ledger::LedgerError> {
    let (start, end) = approvals_range(name, sequence);
    let mut scan = RangeScan::new(LIFECYCLE, "", &start, &end, None);
    let mut approvals = Vec::new();
    while scan.has_more() {
        for (key, bytes) in reader.scan_range(&mut scan, DEFINITIONS_BATCH)? {
            let Ok(approval) = serde_json::from_slice::<Approval>(&bytes)
                .inspect_err(|e| warn!(%key, "unreadable approval: {e}"))
            else {
                continue;
            };
            if approved_by(&key) == Some(approval.msp_id.as_str()) {
                approvals.push(approval);
            }
        }
    }
    Ok(approvals)
}

/// The committed definition of chaincode `name` as `reader` sees it.
fn read_definition(reader: &mut TxSimulator, name: &str) -> Option<Definition> {
    let bytes = reader.get_state(LIFECYCLE, &definition_key(name)).ok()??;
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
        defined_by(key).map(str::to_owned)
    }

    fn approving_org(&self, key: &str) -> Option<String> {
        approved_by(key).map(str::to_owned)
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
        let policy = read_definition(reader, name)
            .map(|definition| definition.parameters.endorsement_policy);
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
            registers_as: definition.registers_as(),
            package,
        })
    }
}
