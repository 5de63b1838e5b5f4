//! `ccvm chaincode queryinstalled | checkcommitreadiness | querycommitted`: Fabric's lifecycle
//! queries, answered by the node and `_lifecycle` and printed as Fabric's `peer lifecycle
//! chaincode` prints them: text, or with `--output json` the JSON of Fabric's result messages
//! (snake_case fields, tab-indented, empty and false fields left out).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use prost::Message;
use serde::Serialize;

use super::lifecycle::{DefinitionParams, TargetArgs, committed_definitions};
use crate::node::LIFECYCLE;
use crate::proto::lifecycle::{
    CheckCommitReadinessResult, QueryChaincodeDefinitionArgs, QueryChaincodeDefinitionResult,
    QueryInstalledChaincodesArgs, QueryInstalledChaincodesResult,
};

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
    sequence: i64,
    version: String,
    endorsement_plugin: String,
    validation_plugin: String,
    /// Base64 of the `ApplicationPolicy` the definition is endorsed under.
    validation_parameter: String,
    /// Private data collections: none are defined through ccvm's lifecycle.
    collections: Collections,
    #[serde(skip_serializing_if = "is_false")]
    init_required: bool,
}

impl DefinitionFields {
    fn of(
        sequence: i64,
        version: String,
        (endorsement_plugin, validation_plugin): (String, String),
        validation_parameter: &[u8],
        init_required: bool,
    ) -> Self {
        Self {
            sequence,
            version,
            endorsement_plugin,
            validation_plugin,
            validation_parameter: base64::engine::general_purpose::STANDARD
                .encode(validation_parameter),
            collections: Collections {},
            init_required,
        }
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

/// `ccvm chaincode queryinstalled`: the node's packages, each with the chaincodes whose
/// committed definition runs it, by channel, as the node's `_lifecycle` answers without a
/// channel.
pub(super) async fn query_installed(args: &QueryInstalledArgs) -> anyhow::Result<()> {
    let target = &args.target;
    let answer = target
        .client
        .client(&target.peer)
        .await?
        .query(
            "",
            LIFECYCLE,
            vec![
                b"QueryInstalledChaincodes".to_vec(),
                QueryInstalledChaincodesArgs {}.encode_to_vec(),
            ],
            Default::default(),
        )
        .await?;
    let result = QueryInstalledChaincodesResult::decode(answer.payload.as_slice())
        .context("_lifecycle answered with something other than the installed packages")?;
    let installed = InstalledChaincodes {
        installed_chaincodes: result
            .installed_chaincodes
            .into_iter()
            .map(|package| InstalledChaincode {
                package_id: package.package_id,
                label: package.label,
                references: package
                    .references
                    .into_iter()
                    .map(|(channel, references)| {
                        let chaincodes = references
                            .chaincodes
                            .into_iter()
                            .map(|chaincode| ChaincodeReference {
                                name: chaincode.name,
                                version: chaincode.version,
                            })
                            .collect();
                        (channel, References { chaincodes })
                    })
                    .collect(),
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
    let answer = args
        .target
        .evaluate(
            LIFECYCLE,
            vec![
                b"CheckCommitReadiness".to_vec(),
                definition.readiness_args()?.encode_to_vec(),
            ],
        )
        .await?;
    let readiness = CheckCommitReadinessResult::decode(answer.as_slice())
        .context("_lifecycle answered readiness with something other than its approvals")?;
    let result = ReadinessResult {
        approvals: readiness.approvals.into_iter().collect(),
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
        let query = QueryChaincodeDefinitionArgs { name: name.clone() };
        let answer = args
            .target
            .evaluate(
                LIFECYCLE,
                vec![b"QueryChaincodeDefinition".to_vec(), query.encode_to_vec()],
            )
            .await?;
        let committed = QueryChaincodeDefinitionResult::decode(answer.as_slice())
            .context("_lifecycle answered with something other than a definition")?;
        let result = DefinitionResult {
            fields: DefinitionFields::of(
                committed.sequence,
                committed.version,
                (committed.endorsement_plugin, committed.validation_plugin),
                &committed.validation_parameter,
                committed.init_required,
            ),
            approvals: committed.approvals.into_iter().collect(),
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
            .map(|definition| NamedDefinition {
                fields: DefinitionFields::of(
                    definition.sequence,
                    definition.version,
                    (definition.endorsement_plugin, definition.validation_plugin),
                    &definition.validation_parameter,
                    definition.init_required,
                ),
                name: definition.name,
            })
            .collect(),
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
