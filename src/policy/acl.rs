//! Access control lists: which policy guards which resource, with Fabric's defaults from its
//! sample `configtx.yaml` (`Application.ACLs`), overridable per channel.

use std::collections::BTreeMap;

use super::APPLICATION_PREFIX;

/// The resource a proposal to `function` of `chaincode` is checked against: the function's own
/// resource when the ACLs name it (`qscc/GetChainInfo`), else `peer/Propose`.
pub fn resource_of(acls: &Acls, chaincode: &str, function: &str) -> String {
    let own = format!("{chaincode}/{function}");
    if acls.table.contains_key(&own) {
        own
    } else {
        PROPOSE.to_owned()
    }
}

/// The resource of every proposal to a user chaincode.
pub const PROPOSE: &str = "peer/Propose";
/// The resource of the gateway's commit status requests.
pub const GATEWAY_COMMIT_STATUS: &str = "gateway/CommitStatus";
/// The resource of the gateway's chaincode event streams.
pub const GATEWAY_CHAINCODE_EVENTS: &str = "gateway/ChaincodeEvents";
/// The resource of full block delivery (with or without private data).
pub const EVENT_BLOCK: &str = "event/Block";
/// The resource of filtered block delivery.
pub const EVENT_FILTERED_BLOCK: &str = "event/FilteredBlock";

/// The resources `_lifecycle` keeps for the peer's own organization's admins.
const LOCAL_ADMIN_LIFECYCLE: [&str; 5] = [
    "InstallChaincode",
    "QueryInstalledChaincode",
    "QueryInstalledChaincodes",
    "ApproveChaincodeDefinitionForMyOrg",
    "GetInstalledChaincodePackage",
];

/// Which policy guards which resource on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acls {
    table: BTreeMap<String, String>,
}

impl Acls {
    /// Fabric's default ACLs of a channel's resources with `overrides` (resource → policy path)
    /// on top: what a new channel's configuration carries.
    pub fn channel_defaults(overrides: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let channel = |name: &str| format!("{APPLICATION_PREFIX}{name}");
        let mut table = BTreeMap::new();
        for function in [
            "CheckCommitReadiness",
            "CommitChaincodeDefinition",
            "QueryChaincodeDefinition",
            "QueryChaincodeDefinitions",
        ] {
            table.insert(format!("_lifecycle/{function}"), channel("Writers"));
        }
        for function in [
            "GetChainInfo",
            "GetBlockByNumber",
            "GetBlockByHash",
            "GetTransactionByID",
            "GetBlockByTxID",
        ] {
            table.insert(format!("qscc/{function}"), channel("Readers"));
        }
        for function in ["GetConfigBlock", "GetChannelConfig"] {
            table.insert(format!("cscc/{function}"), channel("Readers"));
        }
        table.insert(PROPOSE.to_owned(), channel("Writers"));
        table.insert("peer/ChaincodeToChaincode".to_owned(), channel("Writers"));
        table.insert(GATEWAY_COMMIT_STATUS.to_owned(), channel("Readers"));
        table.insert(GATEWAY_CHAINCODE_EVENTS.to_owned(), channel("Readers"));
        table.insert(EVENT_BLOCK.to_owned(), channel("Readers"));
        table.insert(EVENT_FILTERED_BLOCK.to_owned(), channel("Readers"));
        table.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        table
    }

    /// The ACLs on a node of `local_msp_id` of a channel whose configuration guards its
    /// resources by `channel` (resource → policy path). `_lifecycle`'s per-organization
    /// functions and the node's admin service are guarded by the admins of the node's
    /// organization, and the list of the node's channels by its members (its `Readers`), unless
    /// `channel` names them.
    pub fn new(local_msp_id: &str, channel: &BTreeMap<String, String>) -> Self {
        let local_admins = format!("{APPLICATION_PREFIX}{local_msp_id}/Admins");
        let mut table: BTreeMap<String, String> = LOCAL_ADMIN_LIFECYCLE
            .iter()
            .map(|function| (format!("_lifecycle/{function}"), local_admins.clone()))
            .collect();
        table.insert(ADMIN_SERVICE.to_owned(), local_admins);
        table.insert(
            CSCC_GET_CHANNELS.to_owned(),
            format!("{APPLICATION_PREFIX}{local_msp_id}/Readers"),
        );
        table.extend(channel.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self { table }
    }

    /// The policy path guarding `resource`; resources the table does not name fall back to
    /// the channel's `Admins`, the strictest default.
    pub fn policy_for(&self, resource: &str) -> String {
        self.table
            .get(resource)
            .cloned()
            .unwrap_or_else(|| format!("{APPLICATION_PREFIX}Admins"))
    }
}

/// The resource of cscc's list of the node's channels, which no channel guards.
pub const CSCC_GET_CHANNELS: &str = "cscc/GetChannels";

/// The resource of every call to the node's `ccvm.Admin` service.
pub const ADMIN_SERVICE: &str = "ccvm/Admin";
