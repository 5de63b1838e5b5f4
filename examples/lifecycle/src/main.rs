//! The lifecycle system chaincode, `_lifecycle`: which chaincode packages are installed on the
//! peer, which definitions each organization approved, and which definitions are committed on
//! the channel. The peer reads a committed definition to decide how to launch a user chaincode.
//!
//! Everything is kept in world state through the ordinary stub, so it is endorsed, committed and
//! versioned like any other state. Arguments and results are JSON:
//!
//! | function | arguments | result |
//! | --- | --- | --- |
//! | `InstallChaincode` | `{"package_id", "label", "platform"}` | the record |
//! | `QueryInstalledChaincodes` | | the records |
//! | `ApproveChaincodeDefinitionForMyOrg` | a definition | the approval |
//! | `CheckCommitReadiness` | a definition's parameters | `{"approvals": {msp id: bool}}` |
//! | `CommitChaincodeDefinition` | a definition | the definition |
//! | `QueryChaincodeDefinition` | name | the definition and its `approvals` |
//! | `QueryChaincodeDefinitions` | | the definitions |
//!
//! A definition is its parameters `{"name", "version", "sequence", "endorsement_policy",
//! "init_required"}` and the package it runs, `"package_id"` and `"platform"`. Sequences start at
//! 1 and grow by one per commit. As in Fabric, readiness compares the parameters only (each
//! organization chooses its own package); a commit needs the committing organization's approval
//! of exactly that definition, and approving the same definition twice is refused. Who may call
//! which function is the peer's ACL: approval takes an admin of the peer's organization.

use ccvm_guest_sdk::proto::msp::SerializedIdentity;
use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub, create_composite_key};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use ccvm_lifecycle_schema::{
    APPROVAL, Approval, Committed, DEFINITION, Definition, INSTALLED, Installed, Parameters,
    Readiness, SchemaError,
};

struct Lifecycle;

impl Chaincode for Lifecycle {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        let (function, params) = stub.function_and_parameters();
        match dispatch(stub, &function, &params) {
            Ok(payload) => Response::success(payload),
            Err(e) => Response::error(e.to_string()),
        }
    }
}

fn dispatch(stub: &Stub<'_>, function: &str, params: &[String]) -> Result<Vec<u8>, ShimError> {
    match function {
        "InstallChaincode" => {
            let installed: Installed = parse(params)?;
            installed.check().map_err(invalid)?;
            put_json(stub, &key(INSTALLED, &[&installed.package_id])?, &installed)?;
            json(&installed)
        }
        "QueryInstalledChaincodes" => json(&all::<Installed>(stub, INSTALLED)?),
        "ApproveChaincodeDefinitionForMyOrg" => {
            let definition: Definition = parse(params)?;
            definition.check().map_err(invalid)?;
            let committed = committed(stub, &definition.parameters.name)?;
            definition
                .check_sequence(committed.as_ref())
                .map_err(invalid)?;
            let approval = Approval {
                msp_id: creator_msp(stub)?,
                definition,
            };
            let approval_key = approval_key(&approval.definition.parameters, &approval.msp_id)?;
            let previous = stub.get_state(&approval_key)?;
            if let Some(previous) = previous
                && from_json::<Approval>(&previous)? == approval
            {
                return Err(ShimError::InvalidArgument(format!(
                    "attempted to redefine uncommitted sequence ({}) for namespace {} with \
                     unchanged content",
                    approval.definition.parameters.sequence, approval.definition.parameters.name
                )));
            }
            put_json(stub, &approval_key, &approval)?;
            json(&approval)
        }
        "CheckCommitReadiness" => {
            let parameters: Parameters = parse(params)?;
            parameters.check().map_err(invalid)?;
            json(&readiness(stub, &parameters)?)
        }
        "CommitChaincodeDefinition" => {
            let definition: Definition = parse(params)?;
            definition.check().map_err(invalid)?;
            let Parameters { name, sequence, .. } = &definition.parameters;
            let committed = committed(stub, name)?;
            if committed.as_ref().map(|c| c.parameters.sequence) == Some(*sequence) {
                return Err(ShimError::InvalidArgument(format!(
                    "chaincode {name} sequence {sequence} is already committed"
                )));
            }
            definition
                .check_sequence(committed.as_ref())
                .map_err(invalid)?;
            let msp_id = creator_msp(stub)?;
            let own = stub
                .get_state(&approval_key(&definition.parameters, &msp_id)?)?
                .map(|bytes| from_json::<Approval>(&bytes))
                .transpose()?;
            if own.map(|approval| approval.definition).as_ref() != Some(&definition) {
                return Err(ShimError::InvalidArgument(format!(
                    "organization {msp_id} has not approved this definition of chaincode \
                     {name} sequence {sequence}"
                )));
            }
            put_json(stub, &key(DEFINITION, &[name])?, &definition)?;
            json(&definition)
        }
        "QueryChaincodeDefinition" => {
            let name = params.first().ok_or_else(|| {
                ShimError::InvalidArgument("QueryChaincodeDefinition needs a name".to_owned())
            })?;
            let Some(definition) = committed(stub, name)? else {
                return Err(ShimError::InvalidArgument(format!(
                    "namespace {name} is not defined on channel {}",
                    stub.channel_id()
                )));
            };
            let approvals = readiness(stub, &definition.parameters)?.approvals;
            json(&Committed {
                definition,
                approvals,
            })
        }
        "QueryChaincodeDefinitions" => json(&all::<Definition>(stub, DEFINITION)?),
        other => Err(ShimError::InvalidArgument(format!(
            "_lifecycle has no function {other:?}"
        ))),
    }
}

/// The key of an organization's approval of a definition's sequence.
fn approval_key(parameters: &Parameters, msp_id: &str) -> Result<String, ShimError> {
    let sequence = parameters.sequence.to_string();
    key(APPROVAL, &[&parameters.name, &sequence, msp_id])
}

/// Which organizations approved `parameters` for their sequence, as they are given.
fn readiness(stub: &Stub<'_>, parameters: &Parameters) -> Result<Readiness, ShimError> {
    let sequence = parameters.sequence.to_string();
    let mut readiness = Readiness::default();
    for entry in
        stub.get_state_by_partial_composite_key(APPROVAL, &[&parameters.name, &sequence])?
    {
        let approval: Approval = from_json(&entry?.value)?;
        let matches = approval.definition.parameters == *parameters;
        readiness.approvals.insert(approval.msp_id, matches);
    }
    Ok(readiness)
}

/// The committed definition of a chaincode, if any.
fn committed(stub: &Stub<'_>, name: &str) -> Result<Option<Definition>, ShimError> {
    stub.get_state(&key(DEFINITION, &[name])?)?
        .map(|bytes| from_json(&bytes))
        .transpose()
}

/// Every record of one type.
fn all<T: DeserializeOwned>(stub: &Stub<'_>, object_type: &str) -> Result<Vec<T>, ShimError> {
    stub.get_state_by_partial_composite_key(object_type, &[])?
        .map(|entry| from_json(&entry?.value))
        .collect()
}

/// The MSP id of the transaction's creator.
fn creator_msp(stub: &Stub<'_>) -> Result<String, ShimError> {
    let identity = SerializedIdentity::decode(stub.creator())
        .map_err(|e| ShimError::InvalidArgument(format!("the creator is not an identity: {e}")))?;
    if identity.mspid.is_empty() {
        return Err(ShimError::InvalidArgument(
            "the creator names no MSP".to_owned(),
        ));
    }
    Ok(identity.mspid)
}

/// A record that breaks the schema's rules is an invalid argument.
#[expect(clippy::needless_pass_by_value, reason = "used as map_err(invalid)")]
fn invalid(e: SchemaError) -> ShimError {
    ShimError::InvalidArgument(e.to_string())
}

fn key(object_type: &str, attributes: &[&str]) -> Result<String, ShimError> {
    create_composite_key(object_type, attributes)
}

fn parse<T: DeserializeOwned>(params: &[String]) -> Result<T, ShimError> {
    let text = params
        .first()
        .ok_or_else(|| ShimError::InvalidArgument("expected one JSON argument".to_owned()))?;
    from_json(text.as_bytes())
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ShimError> {
    serde_json::from_slice(bytes).map_err(|e| ShimError::InvalidArgument(format!("bad JSON: {e}")))
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, ShimError> {
    serde_json::to_vec(value).map_err(|e| ShimError::InvalidArgument(e.to_string()))
}

fn put_json(stub: &Stub<'_>, key: &str, value: &impl Serialize) -> Result<(), ShimError> {
    stub.put_state(key, json(value)?)
}

fn main() -> Result<(), ShimError> {
    ccvm_guest_sdk::start(Lifecycle)
}
