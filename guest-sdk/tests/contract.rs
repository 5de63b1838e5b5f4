//! Contracts route, decode, encode and describe their transactions as Fabric's contract APIs
//! do, checked through the mock ledger.

use std::sync::{Arc, Mutex};

use ccvm_guest_sdk::contract::{Contracts, JsonSchema, contract};
use ccvm_guest_sdk::mock::{MockCall, MockLedger};
use ccvm_guest_sdk::{ShimError, Stub};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "ccvm_guest_sdk::contract::schemars")]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "ccvm_guest_sdk::contract::schemars")]
enum Colour {
    Red,
    Green,
}

/// Records what its hooks saw.
#[derive(Default)]
struct Shapes {
    seen: Arc<Mutex<Vec<String>>>,
}

#[contract(name = "shapes")]
impl Shapes {
    #[before]
    fn check(&self, stub: &mut Stub<'_>, function: &str) -> Result<(), String> {
        self.seen
            .lock()
            .expect("not poisoned")
            .push(format!("before {function}"));
        if stub.transient().contains_key("deny") {
            return Err(format!("{function} is denied"));
        }
        Ok(())
    }

    #[after]
    fn record(&self, _stub: &mut Stub<'_>, function: &str, payload: &[u8]) -> Result<(), String> {
        let payload = String::from_utf8_lossy(payload);
        self.seen
            .lock()
            .expect("not poisoned")
            .push(format!("after {function} {payload}"));
        Ok(())
    }

    #[unknown]
    fn fallback(&self, _stub: &mut Stub<'_>, function: &str) -> Result<String, String> {
        Ok(format!("no {function} here"))
    }

    /// A struct argument as JSON, a number and a bool as their JSON text; a struct result.
    #[transaction]
    fn shift(
        &self,
        stub: &mut Stub<'_>,
        point: Point,
        by: i64,
        twice: bool,
    ) -> Result<Point, ShimError> {
        let by = if twice { by * 2 } else { by };
        let moved = Point {
            x: point.x + by,
            y: point.y + by,
        };
        stub.put_state("last", serde_json::to_vec(&moved).expect("a point is JSON"))?;
        Ok(moved)
    }

    #[transaction(evaluate, name = "Paint")]
    fn paint_name(&self, _stub: &Stub<'_>, colour: Colour, label: Option<String>) -> String {
        format!("{colour:?} {}", label.unwrap_or_default())
    }

    #[transaction(evaluate)]
    fn reveal(
        &self,
        _stub: &mut Stub<'_>,
        #[transient("secret-price")] price: u32,
        name: String,
    ) -> String {
        format!("{name} costs {price}")
    }

    #[transaction]
    fn count(&self, _stub: &mut Stub<'_>, items: Vec<u8>) -> usize {
        items.len()
    }

    #[transaction]
    fn nothing(&self, _stub: &mut Stub<'_>) {}
}

/// A second contract, called by `Other:...`.
struct Other;

#[contract]
impl Other {
    #[transaction(evaluate)]
    fn hello(&self, _stub: &mut Stub<'_>) -> &'static str {
        "hello from Other"
    }
}

fn chaincode() -> Contracts {
    Contracts::new()
        .with(Shapes::default())
        .with(Other)
        .info("shapes-cc", "2.1.0")
}

fn text(ledger: &mut MockLedger, chaincode: &Contracts, args: &[&str]) -> Result<String, String> {
    let outcome = ledger.invoke(chaincode, args);
    if outcome.response.is_success() {
        Ok(String::from_utf8(outcome.response.payload).expect("UTF-8 payload"))
    } else {
        Err(outcome.response.message)
    }
}

#[test]
fn arguments_and_results_travel_as_fabrics_contract_apis_encode_them() {
    let chaincode = chaincode();
    let mut ledger = MockLedger::new("shapes");
    let shifted = text(
        &mut ledger,
        &chaincode,
        &["Shift", r#"{"x":1,"y":2}"#, "3", "true"],
    );
    assert_eq!(
        shifted.map(|s| serde_json::from_str::<Value>(&s).ok()),
        Ok(Some(json!({"x": 7, "y": 8})))
    );
    assert_eq!(ledger.state("last"), Some(br#"{"x":7,"y":8}"#.to_vec()));

    assert_eq!(
        text(&mut ledger, &chaincode, &["shapes:Paint", "Green", "wall"]),
        Ok("Green wall".to_owned())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Count", "[1,2,3]"]),
        Ok("3".to_owned())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Nothing"]),
        Ok(String::new())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Other:Hello"]),
        Ok("hello from Other".to_owned())
    );
}

#[test]
fn bad_calls_are_refused_with_fabrics_messages() {
    let chaincode = chaincode();
    let mut ledger = MockLedger::new("shapes");
    assert_eq!(
        text(&mut ledger, &chaincode, &["Shift", r#"{"x":1,"y":2}"#]),
        Err("Expected 3 parameters, but 1 have been supplied".to_owned())
    );
    let not_a_number = text(
        &mut ledger,
        &chaincode,
        &["Shift", r#"{"x":1,"y":2}"#, "three", "true"],
    );
    assert!(
        not_a_number.as_ref().is_err_and(|e| e.contains("by")),
        "{not_a_number:?}"
    );
    let not_a_colour = text(&mut ledger, &chaincode, &["Paint", "Blue", "x"]);
    assert!(
        not_a_colour
            .as_ref()
            .is_err_and(|e| e.contains("unknown variant `Blue`")),
        "{not_a_colour:?}"
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Nobody:Hello"]),
        Err("Contract name is not known to the chaincode: Nobody".to_owned())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Other:Goodbye"]),
        Err("You've asked to invoke a function that does not exist: Goodbye".to_owned())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["org.hyperledger.fabric:Nothing"]),
        Err("You've asked to invoke a function that does not exist: Nothing".to_owned())
    );
}

#[test]
fn hooks_run_around_transactions_and_answer_unknown_names() {
    let shapes = Shapes::default();
    let chaincode = Contracts::new().with(shapes);
    let mut ledger = MockLedger::new("shapes");
    assert_eq!(
        text(&mut ledger, &chaincode, &["Count", "[9]"]),
        Ok("1".to_owned())
    );
    assert_eq!(
        text(&mut ledger, &chaincode, &["Rotate"]),
        Ok("no Rotate here".to_owned())
    );

    let denied = ledger.call(
        &chaincode,
        MockCall::new(&["Shift", r#"{"x":0,"y":0}"#, "1", "false"]).transient("deny", ""),
    );
    assert_eq!(denied.response.message, "Shift is denied");
    assert!(!denied.committed);
    assert_eq!(ledger.state("last"), None, "the transaction never ran");
}

#[test]
fn hooks_see_each_transaction_and_its_encoded_result() {
    let seen = Arc::default();
    let chaincode = Contracts::new().with(Shapes {
        seen: Arc::clone(&seen),
    });
    let mut ledger = MockLedger::new("shapes");
    ledger.invoke(&chaincode, &["Count", "[1,2]"]);
    ledger.invoke(&chaincode, &["Missing"]);
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen, ["before Count", "after Count 2", "before Missing"]);
}

#[test]
fn get_metadata_describes_every_contract_from_its_rust_types() {
    let chaincode = chaincode();
    let mut ledger = MockLedger::new("shapes");
    let metadata = text(
        &mut ledger,
        &chaincode,
        &["org.hyperledger.fabric:GetMetadata"],
    )
    .map(|text| serde_json::from_str::<Value>(&text).expect("metadata is JSON"))
    .expect("GetMetadata succeeds");
    assert_eq!(
        metadata["info"],
        json!({"title": "shapes-cc", "version": "2.1.0"})
    );
    let shapes = &metadata["contracts"]["shapes"];
    assert_eq!(
        shapes["contractInstance"],
        json!({"name": "shapes", "default": true})
    );
    assert_eq!(
        metadata["contracts"]["Other"]["contractInstance"]["default"],
        json!(false)
    );

    let transactions = shapes["transactions"].as_array().expect("a list");
    let names: Vec<&str> = transactions
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["Shift", "Paint", "Reveal", "Count", "Nothing"]);
    let shift = &transactions[0];
    assert_eq!(shift["tags"], json!(["SUBMIT", "submitTx"]));
    let parameters: Vec<&str> = shift["parameters"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(parameters, ["point", "by", "twice"]);
    assert_eq!(
        shift["parameters"][0]["schema"],
        json!({"$ref": "#/components/schemas/Point"})
    );
    assert_eq!(shift["parameters"][2]["schema"]["type"], json!("boolean"));
    assert_eq!(
        shift["returns"],
        json!({"$ref": "#/components/schemas/Point"})
    );
    assert_eq!(transactions[1]["tags"], json!(["EVALUATE"]));
    let reveal: Vec<&str> = transactions[2]["parameters"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(reveal, ["name"], "transient arguments are not parameters");
    assert!(
        transactions[4].get("returns").is_none(),
        "a unit result has no schema"
    );

    let point = &metadata["components"]["schemas"]["Point"];
    assert_eq!(point["$id"], json!("Point"));
    assert_eq!(point["required"], json!(["x", "y"]));
    assert_eq!(point["properties"]["x"]["type"], json!("integer"));
    assert!(metadata["components"]["schemas"]["Colour"].is_object());
}

#[test]
fn transient_arguments_are_read_by_key() {
    let chaincode = chaincode();
    let mut ledger = MockLedger::new("shapes");
    let call = MockCall::new(&["Reveal", "lamp"]).transient("secret-price", "12");
    assert_eq!(
        ledger.call(&chaincode, call).response.payload,
        b"lamp costs 12"
    );
    let missing = ledger.invoke(&chaincode, &["Reveal", "lamp"]);
    assert!(
        missing.response.message.contains("secret-price"),
        "{}",
        missing.response.message
    );
}
