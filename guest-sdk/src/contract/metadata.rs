//! Fabric's contract metadata, the answer to `org.hyperledger.fabric:GetMetadata`: every contract
//! with its transactions, their parameters and results as JSON schemas, and the object types
//! they use under `components.schemas`.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::Contract;

/// Where Fabric's metadata keeps the schemas of object types, as a JSON pointer.
const COMPONENT_SCHEMAS: &str = "/components/schemas";

/// The meta-schema Fabric's contract metadata conforms to.
const METADATA_SCHEMA: &str =
    "https://hyperledger.github.io/fabric-chaincode-node/main/api/contract-schema.json";

/// One transaction as the metadata describes it (built by `#[contract]`).
///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contract, SchemaGenerator, contract};
///
/// struct Assets;
/// #[contract]
/// impl Assets {
///     #[transaction]
///     fn create_asset(&self, _stub: &mut Stub<'_>, id: String, size: u32) {}
/// }
///
/// let create = &Assets.transactions(&mut SchemaGenerator::default())[0];
/// assert_eq!((create.name, create.evaluate, create.returns.is_none()), ("CreateAsset", false, true));
/// ```
pub struct TransactionMetadata {
    /// The transaction's name.
    pub name: &'static str,
    /// Whether it only reads (`EVALUATE`) rather than being submitted for ordering (`SUBMIT`).
    pub evaluate: bool,
    /// Its positional parameters; transient arguments are not among them.
    pub parameters: Vec<ParameterMetadata>,
    /// The schema of its result, if it returns one.
    pub returns: Option<Schema>,
}

/// One positional parameter of a transaction.
///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contract, SchemaGenerator, contract};
///
/// struct Assets;
/// #[contract]
/// impl Assets {
///     #[transaction]
///     fn resize(&self, _stub: &mut Stub<'_>, id: String, size: u32) {}
/// }
///
/// let resize = &Assets.transactions(&mut SchemaGenerator::default())[0];
/// let names: Vec<&str> = resize.parameters.iter().map(|p| p.name).collect();
/// assert_eq!(names, ["id", "size"]);
/// assert_eq!(resize.parameters[1].schema.get("type"), Some(&serde_json::json!("integer")));
/// ```
pub struct ParameterMetadata {
    /// The parameter's name in the Rust method.
    pub name: &'static str,
    /// Its JSON schema.
    pub schema: Schema,
}

/// A generator of the schemas transactions refer to, with object types kept as references into
/// `#/components/schemas/`.
pub(crate) fn schema_generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft07();
    settings.definitions_path = COMPONENT_SCHEMAS.into();
    settings.meta_schema = None;
    settings.into_generator()
}

/// The metadata of a chaincode made of `contracts`, the first being the default one; `title`
/// and `version` describe the chaincode.
pub(crate) fn describe(contracts: &[Box<dyn Contract>], title: &str, version: &str) -> Value {
    let mut schemas = schema_generator();
    let mut described = Map::new();
    for (index, contract) in contracts.iter().enumerate() {
        let transactions: Vec<Value> = contract
            .transactions(&mut schemas)
            .into_iter()
            .map(describe_transaction)
            .collect();
        described.insert(
            contract.name().to_owned(),
            json!({
                "name": contract.name(),
                "contractInstance": { "name": contract.name(), "default": index == 0 },
                "transactions": transactions,
                "info": { "title": contract.name(), "version": version },
            }),
        );
    }
    let components: Map<String, Value> = schemas
        .take_definitions(true)
        .into_iter()
        .map(|(name, mut schema)| {
            if let Value::Object(fields) = &mut schema {
                fields.insert("$id".to_owned(), Value::String(name.clone()));
            }
            (name, schema)
        })
        .collect();
    json!({
        "$schema": METADATA_SCHEMA,
        "contracts": described,
        "info": { "title": title, "version": version },
        "components": { "schemas": components },
    })
}

fn describe_transaction(transaction: TransactionMetadata) -> Value {
    let tags = if transaction.evaluate {
        json!(["EVALUATE"])
    } else {
        json!(["SUBMIT", "submitTx"])
    };
    let parameters: Vec<Value> = transaction
        .parameters
        .into_iter()
        .map(|parameter| {
            json!({
                "name": parameter.name,
                "description": "",
                "schema": parameter.schema,
            })
        })
        .collect();
    let mut described = json!({
        "name": transaction.name,
        "tags": tags,
        "parameters": parameters,
    });
    if let Some(returns) = transaction.returns {
        described["returns"] = returns.to_value();
    }
    described
}
