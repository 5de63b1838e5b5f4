//! The lifecycle system chaincode, `_lifecycle`: which definitions each organization approved,
//! and which definitions are committed on the channel. The peer reads a committed definition to
//! decide how to launch a user chaincode and which policy endorses its transactions.
//!
//! Arguments and results are Fabric's messages (`lifecycle.*Args`, `lifecycle.*Result`), so
//! Fabric's `peer lifecycle chaincode` and SDKs use it unchanged:
//!
//! | function | result |
//! | --- | --- |
//! | `ApproveChaincodeDefinitionForMyOrg` | empty |
//! | `CheckCommitReadiness` | each organization's approval of the definition |
//! | `CommitChaincodeDefinition` | empty |
//! | `QueryApprovedChaincodeDefinition` | the caller's organization's approval |
//! | `QueryChaincodeDefinition` | the committed definition and its approvals |
//! | `QueryChaincodeDefinitions` | the committed definitions |
//!
//! Installed packages are the peer's, not the channel's: the peer answers `InstallChaincode`,
//! `QueryInstalledChaincodes` and the like itself, without a channel.
//!
//! Records are kept in world state through the ordinary stub as JSON (`ccvm-lifecycle-schema`),
//! so they are endorsed, committed and versioned like any other state. Sequences start at 1
//! and grow by one per commit. As in Fabric, readiness compares the parameters only (each
//! organization chooses its own package), and approving the same definition twice is refused.
//! The peer decides the rest before a call runs: who may call which function (its ACL: an
//! approval takes an admin of the peer's organization), and that a commit has its own
//! organization's approval and those of enough organizations for the channel's
//! `LifecycleEndorsement`. An organization's approval is valid only when endorsed by its own
//! peers; a commit, by the peers of `LifecycleEndorsement`.

use ccvm_guest_sdk::proto::lifecycle::chaincode_source::{Local, Type as Source};
use ccvm_guest_sdk::proto::lifecycle::query_chaincode_definitions_result::ChaincodeDefinition;
use ccvm_guest_sdk::proto::lifecycle::{
    ApproveChaincodeDefinitionForMyOrgArgs, ApproveChaincodeDefinitionForMyOrgResult,
    ChaincodeSource, CheckCommitReadinessArgs, CheckCommitReadinessResult,
    CommitChaincodeDefinitionArgs, CommitChaincodeDefinitionResult,
    QueryApprovedChaincodeDefinitionArgs, QueryApprovedChaincodeDefinitionResult,
    QueryChaincodeDefinitionArgs, QueryChaincodeDefinitionResult, QueryChaincodeDefinitionsResult,
};
use ccvm_guest_sdk::proto::msp::SerializedIdentity;
use ccvm_guest_sdk::proto::protos::CollectionConfigPackage;
use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub, create_composite_key};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use ccvm_lifecycle_schema::{
    APPROVAL, Approval, DEFINITION, Definition, ENDORSEMENT_PLUGIN, Parameters, SchemaError,
    VALIDATION_PLUGIN,
};

struct Lifecycle;

impl Chaincode for Lifecycle {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        let args = stub.args();
        let function = args
            .first()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .unwrap_or_default();
        let argument = args.get(1).cloned().unwrap_or_default();
        match dispatch(stub, &function, &argument) {
            Ok(payload) => Response::success(payload),
            Err(e) => Response::error(e.to_string()),
        }
    }
}

fn dispatch(stub: &Stub<'_>, function: &str, argument: &[u8]) -> Result<Vec<u8>, ShimError> {
    match function {
        "ApproveChaincodeDefinitionForMyOrg" => {
            let args: ApproveChaincodeDefinitionForMyOrgArgs = decode(function, argument)?;
            let parameters = Parameters::from_fabric(&(&args).into()).map_err(invalid)?;
            let package_id = match args.source.and_then(|source| source.r#type) {
                Some(Source::LocalPackage(local)) => local.package_id,
                Some(Source::Unavailable(_)) | None => String::new(),
            };
            approve(
                stub,
                Definition {
                    parameters,
                    package_id,
                },
            )?;
            Ok(ApproveChaincodeDefinitionForMyOrgResult {}.encode_to_vec())
        }
        "CheckCommitReadiness" => {
            let args: CheckCommitReadinessArgs = decode(function, argument)?;
            let parameters = Parameters::from_fabric(&(&args).into()).map_err(invalid)?;
            Ok(CheckCommitReadinessResult {
                approvals: approvals(stub, &parameters)?.into_iter().collect(),
            }
            .encode_to_vec())
        }
        "CommitChaincodeDefinition" => {
            let args: CommitChaincodeDefinitionArgs = decode(function, argument)?;
            let parameters = Parameters::from_fabric(&(&args).into()).map_err(invalid)?;
            commit(stub, &parameters)?;
            Ok(CommitChaincodeDefinitionResult {}.encode_to_vec())
        }
        "QueryApprovedChaincodeDefinition" => {
            let args: QueryApprovedChaincodeDefinitionArgs = decode(function, argument)?;
            let approved = approved(stub, &args.name, args.sequence)?;
            let parameters = &approved.definition.parameters;
            Ok(QueryApprovedChaincodeDefinitionResult {
                sequence: parameters.fabric_sequence(),
                version: parameters.version.clone(),
                endorsement_plugin: ENDORSEMENT_PLUGIN.to_owned(),
                validation_plugin: VALIDATION_PLUGIN.to_owned(),
                validation_parameter: parameters.validation_parameter.clone(),
                collections: Some(CollectionConfigPackage::default()),
                init_required: parameters.init_required,
                source: Some(ChaincodeSource {
                    r#type: Some(Source::LocalPackage(Local {
                        package_id: approved.definition.package_id.clone(),
                    })),
                }),
            }
            .encode_to_vec())
        }
        "QueryChaincodeDefinition" => {
            let args: QueryChaincodeDefinitionArgs = decode(function, argument)?;
            let Some(definition) = committed(stub, &args.name)? else {
                return Err(ShimError::InvalidArgument(format!(
                    "namespace {} is not defined on channel {}",
                    args.name,
                    stub.channel_id()
                )));
            };
            let parameters = &definition.parameters;
            Ok(QueryChaincodeDefinitionResult {
                sequence: parameters.fabric_sequence(),
                version: parameters.version.clone(),
                endorsement_plugin: ENDORSEMENT_PLUGIN.to_owned(),
                validation_plugin: VALIDATION_PLUGIN.to_owned(),
                validation_parameter: parameters.validation_parameter.clone(),
                collections: Some(CollectionConfigPackage::default()),
                init_required: parameters.init_required,
                approvals: approvals(stub, parameters)?.into_iter().collect(),
            }
            .encode_to_vec())
        }
        "QueryChaincodeDefinitions" => Ok(QueryChaincodeDefinitionsResult {
            chaincode_definitions: all::<Definition>(stub, DEFINITION)?
                .into_iter()
                .map(|definition| {
                    let parameters = definition.parameters;
                    ChaincodeDefinition {
                        sequence: parameters.fabric_sequence(),
                        name: parameters.name,
                        version: parameters.version,
                        endorsement_plugin: ENDORSEMENT_PLUGIN.to_owned(),
                        validation_plugin: VALIDATION_PLUGIN.to_owned(),
                        validation_parameter: parameters.validation_parameter,
                        collections: Some(CollectionConfigPackage::default()),
                        init_required: parameters.init_required,
                    }
                })
                .collect(),
        }
        .encode_to_vec()),
        "InstallChaincode"
        | "QueryInstalledChaincode"
        | "QueryInstalledChaincodes"
        | "GetInstalledChaincodePackage" => Err(ShimError::InvalidArgument(format!(
            "{function} is about the peer's own packages: call it without a channel"
        ))),
        other => Err(ShimError::InvalidArgument(format!(
            "_lifecycle has no function {other:?}"
        ))),
    }
}

/// Records the caller's organization's approval of `definition`.
fn approve(stub: &Stub<'_>, definition: Definition) -> Result<(), ShimError> {
    let committed = committed(stub, &definition.parameters.name)?;
    definition
        .check_sequence(committed.as_ref())
        .map_err(invalid)?;
    let approval = Approval {
        msp_id: creator_msp(stub)?,
        definition,
    };
    let approval_key = approval_key(
        &approval.definition.parameters.name,
        approval.definition.parameters.sequence,
        &approval.msp_id,
    )?;
    if let Some(previous) = stub.get_state(&approval_key)?
        && from_json::<Approval>(&previous)? == approval
    {
        return Err(ShimError::InvalidArgument(format!(
            "attempted to redefine uncommitted sequence ({}) for namespace {} with unchanged \
             content",
            approval.definition.parameters.sequence, approval.definition.parameters.name
        )));
    }
    put_json(stub, &approval_key, &approval)
}

/// Commits the definition of `parameters`. Every organization's approval at its sequence is
/// read, so that a change to any of them before the commit is ordered invalidates it. The
/// definition records the package the committing organization approved, else the first
/// approving organization's; each peer runs the package its own organization approved.
fn commit(stub: &Stub<'_>, parameters: &Parameters) -> Result<(), ShimError> {
    let Parameters { name, sequence, .. } = parameters;
    let committed = committed(stub, name)?;
    if committed.as_ref().map(|c| c.parameters.sequence) == Some(*sequence) {
        return Err(ShimError::InvalidArgument(format!(
            "chaincode {name} sequence {sequence} is already committed"
        )));
    }
    let msp_id = creator_msp(stub)?;
    let agreeing: Vec<Approval> = approvals_at(stub, name, *sequence)?
        .into_iter()
        .filter(|approval| approval.definition.parameters == *parameters)
        .collect();
    let chosen = agreeing
        .iter()
        .find(|approval| approval.msp_id == msp_id)
        .or_else(|| agreeing.first());
    let Some(chosen) = chosen else {
        return Err(ShimError::InvalidArgument(format!(
            "no organization has approved this definition of chaincode {name} sequence \
             {sequence}"
        )));
    };
    chosen
        .definition
        .check_sequence(committed.as_ref())
        .map_err(invalid)?;
    put_json(stub, &key(DEFINITION, &[name])?, &chosen.definition)
}

/// Every organization's approval of chaincode `name` at `sequence`; a record filed under
/// another organization's key than its own does not count.
fn approvals_at(stub: &Stub<'_>, name: &str, sequence: u64) -> Result<Vec<Approval>, ShimError> {
    let mut approvals = Vec::new();
    for entry in
        stub.get_state_by_partial_composite_key(APPROVAL, &[name, &sequence.to_string()])?
    {
        let entry = entry?;
        let approval: Approval = from_json(&entry.value)?;
        if entry.key == approval_key(name, sequence, &approval.msp_id)? {
            approvals.push(approval);
        }
    }
    Ok(approvals)
}

/// The caller's organization's approval of chaincode `name` at `sequence`, or at its latest
/// approved sequence for 0.
fn approved(stub: &Stub<'_>, name: &str, sequence: i64) -> Result<Approval, ShimError> {
    let msp_id = creator_msp(stub)?;
    let not_approved = || {
        ShimError::InvalidArgument(format!(
            "organization {msp_id} has not approved chaincode {name} at sequence {sequence}"
        ))
    };
    if sequence > 0 {
        let sequence = u64::try_from(sequence).map_err(|_| not_approved())?;
        return stub
            .get_state(&approval_key(name, sequence, &msp_id)?)?
            .map(|bytes| from_json::<Approval>(&bytes))
            .transpose()?
            .ok_or_else(not_approved);
    }
    let mut latest: Option<Approval> = None;
    for entry in stub.get_state_by_partial_composite_key(APPROVAL, &[name])? {
        let approval: Approval = from_json(&entry?.value)?;
        let newer = latest.as_ref().is_none_or(|seen| {
            seen.definition.parameters.sequence < approval.definition.parameters.sequence
        });
        if approval.msp_id == msp_id && newer {
            latest = Some(approval);
        }
    }
    latest.ok_or_else(not_approved)
}

/// The key of an organization's approval of a definition's sequence.
fn approval_key(name: &str, sequence: u64, msp_id: &str) -> Result<String, ShimError> {
    key(APPROVAL, &[name, &sequence.to_string(), msp_id])
}

/// Which organizations approved `parameters` for their sequence, and whether as given.
fn approvals(
    stub: &Stub<'_>,
    parameters: &Parameters,
) -> Result<std::collections::BTreeMap<String, bool>, ShimError> {
    Ok(approvals_at(stub, &parameters.name, parameters.sequence)?
        .into_iter()
        .map(|approval| {
            let matches = approval.definition.parameters == *parameters;
            (approval.msp_id, matches)
        })
        .collect())
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

/// `function`'s argument, Fabric's message `M`.
fn decode<M: Message + Default>(function: &str, argument: &[u8]) -> Result<M, ShimError> {
    M::decode(argument).map_err(|e| {
        ShimError::InvalidArgument(format!(
            "{function} takes Fabric's lifecycle arguments (a protobuf message): {e}"
        ))
    })
}

fn key(object_type: &str, attributes: &[&str]) -> Result<String, ShimError> {
    create_composite_key(object_type, attributes)
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ShimError> {
    serde_json::from_slice(bytes).map_err(|e| ShimError::InvalidArgument(format!("bad JSON: {e}")))
}

fn put_json(stub: &Stub<'_>, key: &str, value: &impl Serialize) -> Result<(), ShimError> {
    let json = serde_json::to_vec(value).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
    stub.put_state(key, json)
}

fn main() -> Result<(), ShimError> {
    ccvm_guest_sdk::start(Lifecycle)
}
