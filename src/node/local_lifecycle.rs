//! `_lifecycle`'s functions about the node's own packages, which Fabric's peer answers itself
//! for a proposal without a channel: `InstallChaincode`, `QueryInstalledChaincode`,
//! `QueryInstalledChaincodes` and `GetInstalledChaincodePackage`, with Fabric's argument and
//! result messages, so `peer lifecycle chaincode install|queryinstalled|getinstalledpackage`
//! work against the node.

use std::collections::HashMap;
use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::lifecycle::{
    GetInstalledChaincodePackageArgs, GetInstalledChaincodePackageResult, InstallChaincodeArgs,
    InstallChaincodeResult, QueryInstalledChaincodeArgs, QueryInstalledChaincodeResult,
    QueryInstalledChaincodesResult, query_installed_chaincode_result,
    query_installed_chaincodes_result,
};
use tracing::{info, warn};

use super::user_chaincodes::DefinedChaincodes;
use crate::package::{Package, PackageError};

/// The chaincodes, by channel, whose committed definitions run a package.
type References = HashMap<String, Vec<(String, String)>>;

/// Answers the node's package functions of `_lifecycle`.
pub(crate) struct LocalLifecycle {
    definitions: Arc<DefinedChaincodes>,
}

impl LocalLifecycle {
    pub fn new(definitions: Arc<DefinedChaincodes>) -> Self {
        Self { definitions }
    }

    /// The encoded result of `function` called with the encoded `argument`.
    ///
    /// # Errors
    /// The text of the refusal: an argument that does not decode, a package that cannot be
    /// installed, one that is not installed, or a store that cannot be read.
    pub fn answer(&self, function: &str, argument: &[u8]) -> Result<Vec<u8>, String> {
        let packages = &self.definitions.packages;
        let failed = |e: PackageError| match e {
            PackageError::Store { .. } => {
                warn!(error = %e, "the package store failed");
                "the node's package store failed; its log has the details".to_owned()
            }
            refused => refused.to_string(),
        };
        match function {
            "InstallChaincode" => {
                let args: InstallChaincodeArgs = decode(function, argument)?;
                let package = packages
                    .install(&args.chaincode_install_package)
                    .map_err(|e| format!("failed to install chaincode: {}", failed(e)))?;
                info!(package = %package.id, "installed chaincode package");
                Ok(InstallChaincodeResult {
                    package_id: package.id,
                    label: package.label,
                }
                .encode_to_vec())
            }
            "QueryInstalledChaincode" => {
                let args: QueryInstalledChaincodeArgs = decode(function, argument)?;
                let package = packages
                    .get(&args.package_id)
                    .map_err(failed)?
                    .ok_or_else(|| not_installed(&args.package_id))?;
                let mut references = self.references();
                Ok(QueryInstalledChaincodeResult {
                    references: result_references(
                        references.remove(&package.id).unwrap_or_default(),
                        |name, version| query_installed_chaincode_result::Chaincode {
                            name,
                            version,
                        },
                        |chaincodes| query_installed_chaincode_result::References { chaincodes },
                    ),
                    package_id: package.id,
                    label: package.label,
                }
                .encode_to_vec())
            }
            "QueryInstalledChaincodes" => {
                let mut references = self.references();
                let installed = packages
                    .list()
                    .map_err(failed)?
                    .into_iter()
                    .map(|Package { id, label, .. }| {
                        query_installed_chaincodes_result::InstalledChaincode {
                            references: result_references(
                                references.remove(&id).unwrap_or_default(),
                                |name, version| query_installed_chaincodes_result::Chaincode {
                                    name,
                                    version,
                                },
                                |chaincodes| query_installed_chaincodes_result::References {
                                    chaincodes,
                                },
                            ),
                            package_id: id,
                            label,
                        }
                    })
                    .collect();
                Ok(QueryInstalledChaincodesResult {
                    installed_chaincodes: installed,
                }
                .encode_to_vec())
            }
            "GetInstalledChaincodePackage" => {
                let args: GetInstalledChaincodePackageArgs = decode(function, argument)?;
                let bytes = packages
                    .file_bytes(&args.package_id)
                    .map_err(failed)?
                    .ok_or_else(|| not_installed(&args.package_id))?;
                Ok(GetInstalledChaincodePackageResult {
                    chaincode_install_package: bytes,
                }
                .encode_to_vec())
            }
            other => Err(format!(
                "_lifecycle's {other} is about a channel: call it on one"
            )),
        }
    }

    /// Package id → channel → the chaincodes (name, version) whose committed definition on
    /// that channel runs the package.
    fn references(&self) -> HashMap<String, References> {
        let mut by_package: HashMap<String, References> = HashMap::new();
        for channel in self.definitions.channels() {
            for definition in self.definitions.committed_on(&channel) {
                if definition.package_id.is_empty() {
                    continue;
                }
                by_package
                    .entry(definition.package_id)
                    .or_default()
                    .entry(channel.clone())
                    .or_default()
                    .push((definition.parameters.name, definition.parameters.version));
            }
        }
        by_package
    }
}

/// A package's references as a result message's map: channel → `group` of the chaincodes,
/// each made by `chaincode` from its name and version. The two installed-package results
/// have messages of their own with the same fields.
fn result_references<C, R>(
    references: References,
    chaincode: impl Fn(String, String) -> C,
    group: impl Fn(Vec<C>) -> R,
) -> HashMap<String, R> {
    references
        .into_iter()
        .map(|(channel, chaincodes)| {
            let chaincodes = chaincodes
                .into_iter()
                .map(|(name, version)| chaincode(name, version))
                .collect();
            (channel, group(chaincodes))
        })
        .collect()
}

fn not_installed(package_id: &str) -> String {
    format!("chaincode install package '{package_id}' not found")
}

fn decode<M: Message + Default>(function: &str, argument: &[u8]) -> Result<M, String> {
    M::decode(argument).map_err(|e| {
        format!("{function} takes Fabric's lifecycle arguments (a protobuf message): {e}")
    })
}
