//! The query system chaincode, `qscc`, as Fabric has it: a channel's chain info, a block by
//! number or by transaction id, and a committed transaction by id. Each answer is the encoded
//! protobuf message Fabric's qscc returns (`common.BlockchainInfo`, `common.Block`,
//! `protos.ProcessedTransaction`), so Fabric's client SDKs decode it unchanged.
//!
//! | function | arguments |
//! | --- | --- |
//! | `GetChainInfo` | channel |
//! | `GetBlockByNumber` | channel, number |
//! | `GetBlockByHash` | channel, header hash (32 raw bytes, or 64 hex digits) |
//! | `GetBlockByTxID` | channel, transaction id |
//! | `GetTransactionByID` | channel, transaction id |
//!
//! It reads the block store through the `ccvm:chaincode/ledger` interface, which the peer grants
//! to it alone, so it runs only inside ccvm, built for `wasm32-wasip2`.

#[cfg(target_family = "wasm")]
mod query {
    use ccvm_guest_sdk::{Chaincode, Response, Stub};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "block-reader",
    });

    use self::ccvm::chaincode::ledger;

    pub struct Qscc;

    impl Chaincode for Qscc {
        fn invoke(&self, stub: &mut Stub<'_>) -> Response {
            let (function, params) = stub.function_and_parameters();
            let answered = if function == "GetBlockByHash" {
                block_by_hash(stub.args())
            } else {
                answer(&function, &params)
            };
            match answered {
                Ok(payload) => Response::success(payload),
                Err(e) => Response::error(e),
            }
        }
    }

    /// Fabric passes the hash as raw bytes; a command line can pass it in hex.
    fn block_by_hash(args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let [_, channel, hash, ..] = args else {
            return Err(format!(
                "GetBlockByHash needs 2 arguments, got {}",
                args.len().saturating_sub(1)
            ));
        };
        let channel =
            std::str::from_utf8(channel).map_err(|_| "the channel name is not UTF-8".to_owned())?;
        let hash = match hash.len() {
            64 => decode_hex(hash).ok_or_else(|| "the block hash is not hex".to_owned())?,
            _ => hash.clone(),
        };
        ledger::block_by_hash(channel, &hash)
    }

    fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        text.chunks(2)
            .map(|pair| Some(digit(pair[0])? << 4 | digit(*pair.get(1)?)?))
            .collect()
    }

    fn answer(function: &str, params: &[String]) -> Result<Vec<u8>, String> {
        let arg = |index: usize| {
            params.get(index).map(String::as_str).ok_or_else(|| {
                format!(
                    "{function} needs {} arguments, got {}",
                    index + 1,
                    params.len()
                )
            })
        };
        match function {
            "GetChainInfo" => ledger::chain_info(arg(0)?),
            "GetBlockByNumber" => {
                let number = arg(1)?
                    .parse()
                    .map_err(|_| format!("block number {:?} is not a number", arg(1)))?;
                ledger::block_by_number(arg(0)?, number)
            }
            "GetBlockByTxID" => ledger::block_by_tx_id(arg(0)?, arg(1)?),
            "GetTransactionByID" => ledger::transaction_by_id(arg(0)?, arg(1)?),
            other => Err(format!("qscc has no function {other:?}")),
        }
    }
}

#[cfg(target_family = "wasm")]
fn main() -> Result<(), ccvm_guest_sdk::ShimError> {
    ccvm_guest_sdk::start(query::Qscc)
}

#[cfg(not(target_family = "wasm"))]
fn main() {
    eprintln!(
        "qscc reads the peer's block store and runs only inside ccvm: build it for wasm32-wasip2"
    );
    std::process::exit(2);
}
