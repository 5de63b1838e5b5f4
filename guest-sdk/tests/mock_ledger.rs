//! The mock ledger keeps a Fabric peer's transaction semantics, so a chaincode's unit tests
//! see what the chaincode will see on a peer.

use ccvm_guest_sdk::mock::{MockCall, MockLedger};
use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub, create_composite_key};

/// A chaincode whose functions exercise one stub call each.
struct Probe;

impl Probe {
    fn run(stub: &mut Stub<'_>) -> Result<Vec<u8>, ShimError> {
        let (function, params) = stub.function_and_parameters();
        let param = |i: usize| params.get(i).map_or("", String::as_str);
        match function.as_str() {
            "put" => stub.put_state(param(0), param(1)).map(|()| Vec::new()),
            "get" => Ok(stub.get_state(param(0))?.unwrap_or_default()),
            "txid" => Ok(stub.tx_id().as_bytes().to_vec()),
            "put_then_get" => {
                stub.put_state(param(0), param(1))?;
                Ok(stub
                    .get_state(param(0))?
                    .unwrap_or_else(|| b"<none>".to_vec()))
            }
            "put_then_fail" => {
                stub.put_state(param(0), param(1))?;
                Err(ShimError::InvalidArgument("failed on purpose".to_owned()))
            }
            "delete" => stub.del_state(param(0)).map(|()| Vec::new()),
            "keys" => {
                let keys: Result<Vec<String>, ShimError> = stub
                    .get_state_by_range(param(0), param(1))?
                    .map(|kv| kv.map(|kv| kv.key))
                    .collect();
                Ok(keys?.join(",").into_bytes())
            }
            "page" => {
                let size = param(0).parse().unwrap_or(0);
                let (page, info) =
                    stub.get_state_by_range_with_pagination("", "", size, param(1))?;
                let keys: Result<Vec<String>, ShimError> =
                    page.map(|kv| kv.map(|kv| kv.key)).collect();
                Ok(format!("{}|{}", keys?.join(","), info.bookmark).into_bytes())
            }
            "owned" => {
                let keys: Result<Vec<String>, ShimError> = stub
                    .get_state_by_partial_composite_key("owner", &[param(0)])?
                    .map(|kv| kv.map(|kv| kv.key))
                    .collect();
                Ok(keys?.len().to_string().into_bytes())
            }
            "history" => {
                let values: Result<Vec<String>, ShimError> = stub
                    .get_history_for_key(param(0))?
                    .map(|m| {
                        m.map(|m| match m.is_delete {
                            true => "<deleted>".to_owned(),
                            false => String::from_utf8_lossy(&m.value).into_owned(),
                        })
                    })
                    .collect();
                Ok(values?.join(",").into_bytes())
            }
            "put_private" => stub
                .put_private_data(param(0), param(1), param(2))
                .map(|()| Vec::new()),
            "private_hash" => Ok(stub
                .get_private_data_hash(param(0), param(1))?
                .unwrap_or_default()),
            "endorse_by" => stub
                .set_state_validation_parameter(param(0), param(1).as_bytes().to_vec())
                .map(|()| Vec::new()),
            "event" => stub
                .set_event(param(0), param(1).as_bytes().to_vec())
                .map(|()| Vec::new()),
            "secret" => Ok(stub.transient().get(param(0)).cloned().unwrap_or_default()),
            "rich" => stub.get_query_result(param(0)).map(|_| Vec::new()),
            "call" => {
                let args: Vec<&[u8]> = params[1..].iter().map(String::as_bytes).collect();
                let response = stub.invoke_chaincode(param(0), &args, "")?;
                Ok(response.payload)
            }
            "call_on" => {
                let args: Vec<&[u8]> = params[2..].iter().map(String::as_bytes).collect();
                let response = stub.invoke_chaincode(param(0), &args, param(1))?;
                Ok(response.payload)
            }
            other => Err(ShimError::InvalidArgument(format!("no function {other}"))),
        }
    }
}

impl Chaincode for Probe {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        match Self::run(stub) {
            Ok(payload) => Response::success(payload),
            Err(e) => Response::error(e.to_string()),
        }
    }
}

#[test]
fn a_transaction_does_not_read_its_own_writes() {
    let mut ledger = MockLedger::new("probe");
    ledger.set_state("k", "old");
    let outcome = ledger.invoke(&Probe, &["put_then_get", "k", "new"]);
    assert_eq!(
        outcome.response.payload, b"old",
        "the committed value, as on a peer"
    );
    assert_eq!(
        ledger.state("k"),
        Some(b"new".to_vec()),
        "applied once it succeeded"
    );
}

#[test]
fn a_failed_transaction_writes_nothing() {
    let mut ledger = MockLedger::new("probe");
    let outcome = ledger.invoke(&Probe, &["put_then_fail", "k", "v"]);
    assert!(!outcome.committed);
    assert_eq!(outcome.response.message, "failed on purpose");
    assert_eq!(ledger.state("k"), None);
    assert!(ledger.history("k").is_empty());
}

#[test]
fn an_empty_key_is_refused_as_the_peer_refuses_it() {
    let mut ledger = MockLedger::new("probe");
    let outcome = ledger.invoke(&Probe, &["put", "", "v"]);
    assert!(!outcome.committed);
    assert!(
        outcome.response.message.contains("empty"),
        "{}",
        outcome.response.message
    );
}

#[test]
fn ranges_skip_composite_keys_and_pages_continue_at_the_bookmark() {
    let mut ledger = MockLedger::new("probe");
    for key in ["a", "b", "c", "d", "e"] {
        ledger.set_state(key, key);
    }
    let composite = create_composite_key("owner", &["ana", "a1"]).expect("valid parts");
    ledger.set_state(&composite, "a1");

    assert_eq!(
        ledger.invoke(&Probe, &["keys", "b", "d"]).response.payload,
        b"b,c"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["keys", "", ""]).response.payload,
        b"a,b,c,d,e"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["page", "2", ""]).response.payload,
        b"a,b|c"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["page", "2", "c"]).response.payload,
        b"c,d|e"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["page", "2", "e"]).response.payload,
        b"e|"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["owned", "ana"]).response.payload,
        b"1"
    );
    assert_eq!(
        ledger.invoke(&Probe, &["owned", "bo"]).response.payload,
        b"0"
    );
}

#[test]
fn history_lists_committed_changes_newest_first() {
    let mut ledger = MockLedger::new("probe");
    for args in [["put", "k", "1"], ["put", "k", "2"], ["delete", "k", ""]] {
        assert!(ledger.invoke(&Probe, &args).committed);
    }
    assert!(
        !ledger
            .invoke(&Probe, &["put_then_fail", "k", "3"])
            .committed
    );
    let outcome = ledger.invoke(&Probe, &["history", "k"]);
    assert_eq!(outcome.response.payload, b"<deleted>,2,1");
    let transactions: Vec<String> = ledger.history("k").into_iter().map(|m| m.tx_id).collect();
    assert_eq!(transactions.len(), 3);
    assert!(
        transactions.iter().all(|id| id.len() == 64),
        "{transactions:?}"
    );
}

#[test]
fn private_data_is_kept_apart_and_hashed() {
    let mut ledger = MockLedger::new("probe");
    assert!(
        ledger
            .invoke(&Probe, &["put_private", "secrets", "k", "v"])
            .committed
    );
    assert_eq!(ledger.private_data("secrets", "k"), Some(b"v".to_vec()));
    assert_eq!(ledger.state("k"), None, "not public state");
    let hash = ledger
        .invoke(&Probe, &["private_hash", "secrets", "k"])
        .response
        .payload;
    assert_eq!(
        hash,
        [
            0x4c, 0x94, 0x48, 0x5e, 0x0c, 0x21, 0xae, 0x6c, 0x41, 0xce, 0x1d, 0xfe, 0x7b, 0x6b,
            0xfa, 0xce, 0xea, 0x5a, 0xb6, 0x8e, 0x40, 0xa2, 0x47, 0x6f, 0x50, 0x20, 0x8e, 0x52,
            0x6f, 0x50, 0x60, 0x80
        ],
        "SHA-256 of \"v\""
    );
}

#[test]
fn key_level_endorsement_policies_are_kept_as_key_metadata() {
    let mut ledger = MockLedger::new("probe");
    assert!(ledger.invoke(&Probe, &["put", "k", "v"]).committed);
    assert!(
        ledger
            .invoke(&Probe, &["endorse_by", "k", "policy"])
            .committed
    );
    assert_eq!(
        ledger.state_metadata("k").get("VALIDATION_PARAMETER"),
        Some(&b"policy".to_vec())
    );
}

#[test]
fn events_transient_data_and_rich_queries_behave_as_on_the_peer() {
    let mut ledger = MockLedger::new("probe");
    let outcome = ledger.invoke(&Probe, &["event", "Moved", "payload"]);
    let event = outcome.event.expect("the transaction set an event");
    assert_eq!(
        (event.event_name.as_str(), event.payload.as_slice()),
        ("Moved", &b"payload"[..])
    );

    let call = MockCall::new(&["secret", "price"]).transient("price", "42");
    assert_eq!(ledger.call(&Probe, call).response.payload, b"42");

    let rich = ledger.invoke(&Probe, &["rich", "{}"]);
    assert!(!rich.committed);
    assert!(
        rich.response.message.contains("not supported"),
        "{}",
        rich.response.message
    );
}

#[test]
fn a_called_chaincode_writes_in_its_own_namespace_within_the_transaction() {
    let mut ledger = MockLedger::new("probe");
    ledger.add_chaincode("other", Probe);
    let outcome = ledger.invoke(&Probe, &["call", "other", "put", "k", "v"]);
    assert!(outcome.committed, "{:?}", outcome.response);
    assert_eq!(ledger.state("k"), None, "written in the callee's namespace");
    let read = ledger.invoke(&Probe, &["call", "other", "put_then_get", "k", "w"]);
    assert_eq!(
        read.response.payload, b"v",
        "committed in the callee's namespace"
    );

    let missing = ledger.invoke(&Probe, &["call", "absent", "put", "k", "v"]);
    assert!(!missing.committed);
    assert!(
        missing.response.message.contains("absent"),
        "{}",
        missing.response.message
    );
}

#[test]
fn a_chaincode_on_another_channel_reads_its_state_and_its_writes_are_discarded() {
    let mut ledger = MockLedger::new("probe");
    ledger.add_chaincode_on("otherchannel", "other", Probe);
    ledger.set_state_on("otherchannel", "other", "k", "there");

    let call = [
        "call_on",
        "other",
        "otherchannel",
        "put_then_get",
        "k",
        "new",
    ];
    let outcome = ledger.invoke(&Probe, &call);
    assert!(outcome.committed, "{:?}", outcome.response);
    assert_eq!(
        outcome.response.payload, b"there",
        "it reads that channel's committed state"
    );
    let again = ledger.invoke(&Probe, &["call_on", "other", "otherchannel", "get", "k"]);
    assert_eq!(again.response.payload, b"there", "its write was discarded");

    let txid = ledger.invoke(&Probe, &["call_on", "other", "otherchannel", "txid"]);
    assert_eq!(
        txid.response.payload,
        txid.tx_id.as_bytes(),
        "the callee runs in the caller's transaction"
    );

    let here = ledger.invoke(&Probe, &["call", "other", "get", "k"]);
    assert!(!here.committed);
    assert!(
        here.response
            .message
            .contains("chaincode other on channel mychannel is not added to the mock ledger"),
        "the same name on this channel is another chaincode: {}",
        here.response.message
    );
}

#[test]
fn naming_this_channel_calls_the_chaincode_on_it() {
    let mut ledger = MockLedger::new("probe").on_channel("orders");
    ledger.add_chaincode("other", Probe);
    let outcome = ledger.invoke(&Probe, &["call_on", "other", "orders", "put", "k", "v"]);
    assert!(outcome.committed, "{:?}", outcome.response);
    let read = ledger.invoke(&Probe, &["call", "other", "get", "k"]);
    assert_eq!(
        read.response.payload, b"v",
        "the write joined the transaction"
    );
}
