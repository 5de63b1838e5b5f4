//! What the node checks of a `_lifecycle` proposal on a channel before running it: that a
//! definition's endorsement policy can be evaluated on the channel, and that a definition is
//! committed only once this node's organization and enough of the channel's organizations
//! approved it.

use std::collections::BTreeSet;

use ccvm_lifecycle_schema::Parameters;
use ccvm_proto::Message;
use ccvm_proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, CommitChaincodeDefinitionArgs,
};

use super::user_chaincodes::read_approvals;
use crate::ledger::TxSimulator;
use crate::policy::{APPLICATION_PREFIX, ChannelPolicies};

/// The channel policy a commit's approvals must satisfy, as its endorsements must.
const LIFECYCLE_ENDORSEMENT: &str = "LifecycleEndorsement";

const APPROVE: &str = "ApproveChaincodeDefinitionForMyOrg";
const COMMIT: &str = "CommitChaincodeDefinition";

/// The definition a call of `function` with `args` approves or commits; `None` for other
/// functions and for arguments that are no definition, which `_lifecycle` refuses itself.
fn proposed_definition(function: &str, args: &[Vec<u8>]) -> Option<Parameters> {
    let argument = args.get(1).map(Vec::as_slice).unwrap_or_default();
    match function {
        APPROVE => ApproveChaincodeDefinitionForMyOrgArgs::decode(argument)
            .ok()
            .and_then(|args| Parameters::from_fabric(&(&args).into()).ok()),
        COMMIT => CommitChaincodeDefinitionArgs::decode(argument)
            .ok()
            .and_then(|args| Parameters::from_fabric(&(&args).into()).ok()),
        _ => None,
    }
}

/// Checks a `_lifecycle` call of `function` with `args` on a channel of `policies`, reading
/// its approvals through `reader`, on a node of organization `local_msp_id`:
/// - an approval or commit of a definition whose endorsement policy could never be evaluated
///   on the channel (a path to no policy) is refused before it is recorded;
/// - a commit is refused unless this node's organization approved exactly its parameters (as
///   Fabric's peer refuses to endorse it), and unless the approving organizations satisfy the
///   channel's `LifecycleEndorsement` policy, a majority of them by default.
///
/// # Errors
/// The reason, for the client.
pub(super) fn check_lifecycle_call(
    policies: &ChannelPolicies,
    local_msp_id: &str,
    reader: impl FnOnce() -> Result<TxSimulator, String>,
    function: &str,
    args: &[Vec<u8>],
) -> Result<(), String> {
    let Some(parameters) = proposed_definition(function, args) else {
        return Ok(());
    };
    policies
        .check_endorsement_text(&parameters.endorsement_policy)
        .map_err(|e| {
            format!(
                "chaincode {} cannot be defined with this endorsement policy: {e}",
                parameters.name
            )
        })?;
    if function != COMMIT {
        return Ok(());
    }
    let mut reader = reader()?;
    let approvals = read_approvals(&mut reader, &parameters.name, parameters.sequence)
        .map_err(|e| format!("cannot read the approvals: {e}"))?;
    let agreeing: BTreeSet<String> = approvals
        .into_iter()
        .filter(|approval| approval.definition.parameters == parameters)
        .map(|approval| approval.msp_id)
        .collect();
    if !agreeing.contains(local_msp_id) {
        return Err(format!(
            "chaincode definition not agreed to by this org ({local_msp_id})"
        ));
    }
    let path = format!("{APPLICATION_PREFIX}{LIFECYCLE_ENDORSEMENT}");
    policies.check_organizations(&path, &agreeing).map_err(|e| {
        let missing: Vec<&str> = policies
            .msp_ids()
            .filter(|msp_id| !agreeing.contains(*msp_id))
            .collect();
        let not_by = if missing.is_empty() {
            String::new()
        } else {
            format!(", not by {}", missing.join(", "))
        };
        format!(
            "chaincode definition of {} at sequence {} is approved by {}{not_by}: {e}",
            parameters.name,
            parameters.sequence,
            agreeing.iter().cloned().collect::<Vec<_>>().join(", "),
        )
    })
}
