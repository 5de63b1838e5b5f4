//! `ccvm chaincode queryinstalled | checkcommitreadiness | querycommitted`: Fabric's lifecycle
//! queries, answered by the node and `_lifecycle` and printed as Fabric's `peer lifecycle
//! chaincode` prints them: text, or with `--output json` the JSON of Fabric's result messages
//! (snake_case fields, tab-indented, empty and false fields left out).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use base64::Engine;
use ccvm_lifecycle_schema::{Committed, Parameters, Readiness};
use clap::Args;
use prost::Message;
use serde::Serialize;

use super::lifecycle::{DefinitionParams, TargetArgs, committed_definitions};
use crate::node::LIFECYCLE;
use crate::policy::EndorsementPolicy;
use crate::proto::common::SignaturePolicyEnvelope;
use crate::proto::protos::{ApplicationPolicy, application_policy};

/// The endorsement plugin named in a definition: ccvm endorses as Fabric's default plugin does.
const ENDORSEMENT_PLUGIN: &str = "escc";
/// The validation plugin named in a definition: ccvm validates as Fabric's default plugin does.
const VALIDATION_PLUGIN: &str = "vscc";

/// How a query's result is printed.
#[derive(Args)]
pub(super) struct OutputArgs {
    /// `json` prints Fabric's JSON of the result; anything else prints text.
    #[arg(short = 'O', long = "output", default_value = "")]
    output: String,
}

impl OutputArgs {
    fn json(&self) -> bool {
        self.output.eq_ignore_ascii_case("json")
    }
}

#[derive(Args)]
pub(super) struct QueryInstalledArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
pub(super) struct CheckCommitReadinessArgs {
    #[command(flatten)]
    definition: DefinitionParams,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
pub(super) struct QueryCommittedArgs {
    /// One chaincode's definition, with its approvals; every committed definition without it.
    #[arg(short = 'n', long)]
    name: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Fabric's `QueryInstalledChaincodesResult`.
#[derive(Serialize)]
struct InstalledChaincodes {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    installed_chaincodes: Vec<InstalledChaincode>,
}

#[derive(Serialize)]
struct InstalledChaincode {
    package_id: String,
    label: String,
    /// The chaincodes, by channel, whose committed definition runs this package.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    references: BTreeMap<String, References>,
}

#[derive(Serialize)]
struct References {
    chaincodes: Vec<ChaincodeReference>,
}

#[derive(Serialize)]
struct ChaincodeReference {
    name: String,
    version: String,
}

/// Fabric's `CheckCommitReadinessResult`.
#[derive(Serialize)]
struct ReadinessResult {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    approvals: BTreeMap<String, bool>,
}

/// Fabric's `QueryChaincodeDefinitionResult`.
#[derive(Serialize)]
struct DefinitionResult {
    #[serde(flatten)]
    fields: DefinitionFields,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    approvals: BTreeMap<String, bool>,
}

/// Fabric's `QueryChaincodeDefinitionsResult`.
#[derive(Serialize)]
struct DefinitionsResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    chaincode_definitions: Vec<NamedDefinition>,
}

/// Fabric's `QueryChaincodeDefinitionsResult.ChaincodeDefinition`.
#[derive(Serialize)]
struct NamedDefinition {
    name: String,
    #[serde(flatten)]
    fields: DefinitionFields,
}

/// The fields, in Fabric's order, that both query results show of a committed definition.
#[derive(Serialize)]
struct DefinitionFields {
    sequence: u64,
    version: String,
    endorsement_plugin: &'static str,
    validation_plugin: &'static str,
    /// Base64 of the `ApplicationPolicy` the definition is endorsed under.
    validation_parameter: String,
    /// Private data collections: none are defined through ccvm's lifecycle.
    collections: Collections,
    #[serde(skip_serializing_if = "is_false")]
    init_required: bool,
}

impl DefinitionFields {
    fn of(parameters: &Parameters) -> anyhow::Result<Self> {
        Ok(Self {
            sequence: parameters.sequence,
            version: parameters.version.clone(),
            endorsement_plugin: ENDORSEMENT_PLUGIN,
            validation_plugin: VALIDATION_PLUGIN,
            validation_parameter: validation_parameter(&parameters.endorsement_policy)?,
            collections: Collections {},
            init_required: parameters.init_required,
        })
    }

    /// The line Fabric's CLI prints for a committed definition.
    fn summary(&self) -> String {
        format!(
            "Version: {}, Sequence: {}, Endorsement Plugin: {}, Validation Plugin: {}",
            self.version, self.sequence, self.endorsement_plugin, self.validation_plugin
        )
    }
}

/// An empty `CollectionConfigPackage`.
#[derive(Serialize)]
struct Collections {}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_false(value: &bool) -> bool {
    !*value
}

/// `ccvm chaincode queryinstalled`: the node's packages, each with the chaincodes on the
/// target's channel whose committed definition runs it.
pub(super) async fn query_installed(args: &QueryInstalledArgs) -> anyhow::Result<()> {
    let target = &args.target;
    let packages = target.client.admin(&target.peer).await?.packages().await?;
    let definitions = committed_definitions(target).await?;
    let installed = InstalledChaincodes {
        installed_chaincodes: packages
            .into_iter()
            .map(|package| {
                let chaincodes: Vec<ChaincodeReference> = definitions
                    .iter()
                    .filter(|definition| definition.package_id == package.package_id)
                    .map(|definition| ChaincodeReference {
                        name: definition.parameters.name.clone(),
                        version: definition.parameters.version.clone(),
                    })
                    .collect();
                let references = if chaincodes.is_empty() {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([(target.channel.clone(), References { chaincodes })])
                };
                InstalledChaincode {
                    package_id: package.package_id,
                    label: package.label,
                    references,
                }
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.output.json() {
        return print_json(&mut out, &installed);
    }
    writeln!(out, "Installed chaincodes on peer:")?;
    for package in &installed.installed_chaincodes {
        writeln!(
            out,
            "Package ID: {}, Label: {}",
            package.package_id, package.label
        )?;
    }
    Ok(())
}

/// `ccvm chaincode checkcommitreadiness`: which organizations approved the definition.
pub(super) async fn check_commit_readiness(args: &CheckCommitReadinessArgs) -> anyhow::Result<()> {
    let definition = &args.definition;
    let parameters = serde_json::to_vec(&definition.parameters()?)?;
    let answer = args
        .target
        .evaluate(
            LIFECYCLE,
            vec![b"CheckCommitReadiness".to_vec(), parameters],
        )
        .await?;
    let readiness: Readiness = serde_json::from_slice(&answer)
        .context("_lifecycle answered readiness with something other than its approvals")?;
    let result = ReadinessResult {
        approvals: readiness.approvals,
    };
    let mut out = std::io::stdout().lock();
    if args.output.json() {
        return print_json(&mut out, &result);
    }
    writeln!(
        out,
        "Chaincode definition for chaincode '{}', version '{}', sequence '{}' on channel '{}' \
         approval status by org:",
        definition.name, definition.version, definition.sequence, args.target.channel
    )?;
    for (msp_id, approved) in &result.approvals {
        writeln!(out, "{msp_id}: {approved}")?;
    }
    Ok(())
}

/// `ccvm chaincode querycommitted`: one committed definition with its approvals, or all.
pub(super) async fn query_committed(args: &QueryCommittedArgs) -> anyhow::Result<()> {
    let channel = &args.target.channel;
    let mut out = std::io::stdout().lock();
    if let Some(name) = &args.name {
        let answer = args
            .target
            .evaluate(
                LIFECYCLE,
                vec![
                    b"QueryChaincodeDefinition".to_vec(),
                    name.clone().into_bytes(),
                ],
            )
            .await?;
        let committed: Committed = serde_json::from_slice(&answer)
            .context("_lifecycle answered with something other than a definition")?;
        let result = DefinitionResult {
            fields: DefinitionFields::of(&committed.definition.parameters)?,
            approvals: committed.approvals,
        };
        if args.output.json() {
            return print_json(&mut out, &result);
        }
        let approvals: Vec<String> = result
            .approvals
            .iter()
            .map(|(msp_id, approved)| format!("{msp_id}: {approved}"))
            .collect();
        writeln!(
            out,
            "Committed chaincode definition for chaincode '{name}' on channel '{channel}':"
        )?;
        writeln!(
            out,
            "{}, Approvals: [{}]",
            result.fields.summary(),
            approvals.join(", ")
        )?;
        return Ok(());
    }
    let result = DefinitionsResult {
        chaincode_definitions: committed_definitions(&args.target)
            .await?
            .into_iter()
            .map(|definition| {
                Ok(NamedDefinition {
                    fields: DefinitionFields::of(&definition.parameters)?,
                    name: definition.parameters.name,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if args.output.json() {
        return print_json(&mut out, &result);
    }
    writeln!(
        out,
        "Committed chaincode definitions on channel '{channel}':"
    )?;
    for definition in &result.chaincode_definitions {
        writeln!(
            out,
            "Name: {}, {}",
            definition.name,
            definition.fields.summary()
        )?;
    }
    Ok(())
}

/// Base64 of the `ApplicationPolicy` Fabric records for an endorsement policy kept as text: a
/// signature policy, or a reference to a channel policy (the channel's `Endorsement` when the
/// text is empty).
fn validation_parameter(policy: &str) -> anyhow::Result<String> {
    let parsed = EndorsementPolicy::parse(policy)
        .with_context(|| format!("the committed endorsement policy {policy:?}"))?;
    let kind = match parsed {
        EndorsementPolicy::Channel(path) => {
            application_policy::Type::ChannelConfigPolicyReference(path)
        }
        EndorsementPolicy::Signature(signature) => application_policy::Type::SignaturePolicy(
            SignaturePolicyEnvelope::decode(signature.to_envelope().as_slice())?,
        ),
    };
    let encoded = ApplicationPolicy { r#type: Some(kind) }.encode_to_vec();
    Ok(base64::engine::general_purpose::STANDARD.encode(encoded))
}

/// Writes `value` as Go's `json.MarshalIndent(value, "", "\t")` does, and a line end.
fn print_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut serializer)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SignaturePolicy;

    #[test]
    fn the_channel_default_policy_is_recorded_as_fabric_records_it() {
        assert_eq!(
            validation_parameter("").unwrap(),
            "EiAvQ2hhbm5lbC9BcHBsaWNhdGlvbi9FbmRvcnNlbWVudA=="
        );
    }

    #[test]
    fn a_signature_policy_is_recorded_as_its_envelope() {
        let encoded = validation_parameter("OR('Org1MSP.peer','Org2MSP.peer')").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let Some(application_policy::Type::SignaturePolicy(envelope)) =
            ApplicationPolicy::decode(bytes.as_slice()).unwrap().r#type
        else {
            panic!("not a signature policy");
        };
        assert_eq!(
            SignaturePolicy::from_envelope(&envelope.encode_to_vec()).unwrap(),
            SignaturePolicy::parse("OR('Org1MSP.peer','Org2MSP.peer')").unwrap()
        );
    }

    #[test]
    fn json_is_printed_as_fabrics_cli_prints_it() {
        let mut out = Vec::new();
        print_json(
            &mut out,
            &ReadinessResult {
                approvals: BTreeMap::from([
                    ("Org2MSP".to_owned(), false),
                    ("Org1MSP".to_owned(), true),
                ]),
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n\t\"approvals\": {\n\t\t\"Org1MSP\": true,\n\t\t\"Org2MSP\": false\n\t}\n}\n"
        );
        let mut empty = Vec::new();
        print_json(
            &mut empty,
            &InstalledChaincodes {
                installed_chaincodes: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(String::from_utf8(empty).unwrap(), "{}\n");
    }
}
