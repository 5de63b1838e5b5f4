//! A key-value chaincode that exposes nearly every stub call as a function, so one chaincode can
//! exercise the whole protocol.
//!
//! Build and run against a node in dev mode:
//!
//! ```text
//! cargo build -p kv
//! CORE_CHAINCODE_ID_NAME=kv:1.0 target/debug/kv --peer.address 127.0.0.1:7052
//! ```

use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub, create_composite_key};
use serde_json::json;

struct KeyValue;

impl Chaincode for KeyValue {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        let (function, params) = stub.function_and_parameters();
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        match dispatch(stub, &function, &params) {
            Ok(payload) => Response::success(payload),
            Err(e) => Response::error(e.to_string()),
        }
    }
}

fn arg<'p>(params: &[&'p str], index: usize) -> Result<&'p str, ShimError> {
    params
        .get(index)
        .copied()
        .ok_or_else(|| ShimError::InvalidArgument(format!("missing argument {}", index + 1)))
}

fn dispatch(stub: &mut Stub<'_>, function: &str, params: &[&str]) -> Result<Vec<u8>, ShimError> {
    match function {
        "put" => stub
            .put_state(arg(params, 0)?, arg(params, 1)?)
            .map(|()| Vec::new()),
        "get" => Ok(stub.get_state(arg(params, 0)?)?.unwrap_or_default()),
        "del" => stub.del_state(arg(params, 0)?).map(|()| Vec::new()),
        "bump" => {
            let key = arg(params, 0)?;
            let count = stub.get_state(key)?.map_or(0, |v| {
                String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0)
            });
            stub.put_state(key, (count + 1).to_string())
                .map(|()| Vec::new())
        }
        "getmulti" => {
            let values = stub.get_multiple_states(params)?;
            let values: Vec<String> = values
                .into_iter()
                .map(|v| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned())
                .collect();
            Ok(json!(values).to_string().into_bytes())
        }
        "putmany" => {
            let count: usize = arg(params, 1)?
                .parse()
                .map_err(|_| ShimError::InvalidArgument("count must be a number".to_owned()))?;
            for i in 0..count {
                stub.put_state(&format!("{}{i:05}", arg(params, 0)?), format!("v{i}"))?;
            }
            Ok(Vec::new())
        }
        "putbatch" => {
            let count: usize = arg(params, 1)?
                .parse()
                .map_err(|_| ShimError::InvalidArgument("count must be a number".to_owned()))?;
            stub.start_write_batch();
            for i in 0..count {
                stub.put_state(&format!("{}{i:05}", arg(params, 0)?), format!("v{i}"))?;
            }
            Ok(Vec::new())
        }
        "range" => {
            let keys: Result<Vec<String>, ShimError> = stub
                .get_state_by_range(arg(params, 0)?, arg(params, 1)?)?
                .map(|kv| kv.map(|kv| kv.key))
                .collect();
            Ok(json!(keys?).to_string().into_bytes())
        }
        "page" => {
            let size: i32 = arg(params, 2)?
                .parse()
                .map_err(|_| ShimError::InvalidArgument("page size must be a number".to_owned()))?;
            let (iterator, page) = stub.get_state_by_range_with_pagination(
                arg(params, 0)?,
                arg(params, 1)?,
                size,
                params.get(3).copied().unwrap_or(""),
            )?;
            let keys: Result<Vec<String>, ShimError> =
                iterator.map(|kv| kv.map(|kv| kv.key)).collect();
            Ok(json!({"keys": keys?, "bookmark": page.bookmark, "count": page.fetched_records_count}).to_string().into_bytes())
        }
        "history" => {
            let mut entries = Vec::new();
            for change in stub.get_history_for_key(arg(params, 0)?)? {
                let change = change?;
                entries.push(json!({
                    "tx_id": change.tx_id,
                    "value": String::from_utf8_lossy(&change.value),
                    "is_delete": change.is_delete,
                    "has_timestamp": change.timestamp.is_some(),
                }));
            }
            Ok(json!(entries).to_string().into_bytes())
        }
        "cput" => {
            let (value, parts) = params
                .split_last()
                .ok_or_else(|| ShimError::InvalidArgument("missing value".to_owned()))?;
            let (object_type, attributes) = parts
                .split_first()
                .ok_or_else(|| ShimError::InvalidArgument("missing type".to_owned()))?;
            stub.put_state(&create_composite_key(object_type, attributes)?, *value)
                .map(|()| Vec::new())
        }
        "cquery" => {
            let (object_type, attributes) = params
                .split_first()
                .ok_or_else(|| ShimError::InvalidArgument("missing type".to_owned()))?;
            let values: Result<Vec<String>, ShimError> = stub
                .get_state_by_partial_composite_key(object_type, attributes)?
                .map(|kv| kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
                .collect();
            Ok(json!(values?).to_string().into_bytes())
        }
        "event" => {
            stub.set_event(arg(params, 0)?, arg(params, 1)?.as_bytes().to_vec())?;
            Ok(Vec::new())
        }
        "setmeta" => stub
            .put_state_metadata(
                "",
                arg(params, 0)?,
                arg(params, 1)?,
                arg(params, 2)?.as_bytes().to_vec(),
            )
            .map(|()| Vec::new()),
        "setpolicy" => {
            let policy = decode_hex(arg(params, 1)?)
                .ok_or_else(|| ShimError::InvalidArgument("the policy is not hex".to_owned()))?;
            stub.set_state_validation_parameter(arg(params, 0)?, policy)
                .map(|()| Vec::new())
        }
        "getmeta" => {
            let metadata = stub.get_state_metadata("", arg(params, 0)?)?;
            Ok(metadata.get(arg(params, 1)?).cloned().unwrap_or_default())
        }
        "pput" => stub
            .put_private_data(arg(params, 0)?, arg(params, 1)?, arg(params, 2)?)
            .map(|()| Vec::new()),
        "pget" => Ok(stub
            .get_private_data(arg(params, 0)?, arg(params, 1)?)?
            .unwrap_or_default()),
        "phash" => Ok(stub
            .get_private_data_hash(arg(params, 0)?, arg(params, 1)?)?
            .unwrap_or_default()),
        "pdel" => stub
            .del_private_data(arg(params, 0)?, arg(params, 1)?)
            .map(|()| Vec::new()),
        "ppurge" => stub
            .purge_private_data(arg(params, 0)?, arg(params, 1)?)
            .map(|()| Vec::new()),
        "call" => {
            let args: Vec<&[u8]> = params[1..].iter().map(|a| a.as_bytes()).collect();
            let response = stub.invoke_chaincode(arg(params, 0)?, &args, "")?;
            if response.is_success() {
                Ok(response.payload)
            } else {
                Err(ShimError::Peer(format!(
                    "called chaincode failed: {}",
                    response.message
                )))
            }
        }
        "richquery" => stub.get_query_result(arg(params, 0)?).map(|_| Vec::new()),
        "creator" => Ok(stub.creator().to_vec()),
        "transient" => Ok(stub
            .transient()
            .get(arg(params, 0)?)
            .cloned()
            .unwrap_or_default()),
        "txinfo" => Ok(json!({
            "tx_id": stub.tx_id(),
            "channel": stub.channel_id(),
            "timestamp": stub.tx_timestamp().map(|t| t.seconds),
            "signed": stub.signed_proposal().is_some(),
        })
        .to_string()
        .into_bytes()),
        "fail" => Err(ShimError::InvalidArgument(arg(params, 0)?.to_owned())),
        "panic" => panic!("asked to panic"),
        "hang" => loop {
            std::thread::park();
        },
        other => Err(ShimError::InvalidArgument(format!(
            "unknown function {other}"
        ))),
    }
}

/// The bytes of a hex string, as a binary argument is passed in text.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    text.len().is_multiple_of(2).then_some(())?;
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

fn main() -> Result<(), ShimError> {
    ccvm_guest_sdk::start(KeyValue)
}
