//! The configuration system chaincode, `cscc`, as Fabric has it for reading: the channels the
//! node has, and a channel's configuration. Each answer is the encoded protobuf message Fabric's
//! cscc returns (`protos.ChannelQueryResponse`, `common.Block`, `common.Config`), so `peer
//! channel list` and Fabric's client SDKs decode it unchanged.
//!
//! | function | arguments | answer |
//! | --- | --- | --- |
//! | `GetChannels` | | the node's channels |
//! | `GetConfigBlock` | channel | the channel's latest configuration block |
//! | `GetChannelConfig` | channel | the configuration that block holds |
//!
//! A ccvm node creates its channels itself (`ccvm channel create`), so Fabric's `JoinChain`
//! functions are refused with that reason. It reads the block store through the
//! `ccvm:chaincode/ledger` interface, which the peer grants to the system chaincodes that read
//! blocks, so it runs only inside ccvm, built for `wasm32-wasip2`.

#[cfg(target_family = "wasm")]
mod configuration {
    use ccvm_guest_sdk::proto::Message;
    use ccvm_guest_sdk::proto::common::{Block, ConfigEnvelope, Envelope, Payload};
    use ccvm_guest_sdk::proto::protos::{ChannelInfo, ChannelQueryResponse};
    use ccvm_guest_sdk::{Chaincode, Response, Stub};

    wit_bindgen::generate!({
        path: "../../wit",
        world: "block-reader",
    });

    use self::ccvm::chaincode::ledger;

    pub struct Cscc;

    impl Chaincode for Cscc {
        fn invoke(&self, stub: &mut Stub<'_>) -> Response {
            let (function, params) = stub.function_and_parameters();
            match answer(&function, &params) {
                Ok(payload) => Response::success(payload),
                Err(e) => Response::error(e),
            }
        }
    }

    fn answer(function: &str, params: &[String]) -> Result<Vec<u8>, String> {
        let channel = || {
            params
                .first()
                .map(String::as_str)
                .filter(|channel| !channel.is_empty())
                .ok_or_else(|| format!("{function} needs a channel name"))
        };
        match function {
            "GetChannels" => Ok(ChannelQueryResponse {
                channels: ledger::channels()?
                    .into_iter()
                    .map(|channel_id| ChannelInfo { channel_id })
                    .collect(),
            }
            .encode_to_vec()),
            "GetConfigBlock" => ledger::config_block(channel()?),
            "GetChannelConfig" => config_of(&ledger::config_block(channel()?)?),
            "JoinChain" | "JoinChainBySnapshot" | "JoinBySnapshotStatus" => Err(format!(
                "{function} is not supported: a ccvm node creates its channels itself (ccvm channel create)"
            )),
            other => Err(format!("cscc has no function {other:?}")),
        }
    }

    /// The encoded `common.Config` in the configuration block `block`.
    fn config_of(block: &[u8]) -> Result<Vec<u8>, String> {
        let malformed = |what: &str| format!("the configuration block's {what} does not decode");
        let block = Block::decode(block).map_err(|_| malformed("block"))?;
        let envelope = block
            .data
            .and_then(|data| data.data.into_iter().next())
            .ok_or_else(|| malformed("transaction"))?;
        let envelope = Envelope::decode(envelope.as_slice()).map_err(|_| malformed("envelope"))?;
        let payload =
            Payload::decode(envelope.payload.as_slice()).map_err(|_| malformed("payload"))?;
        let config = ConfigEnvelope::decode(payload.data.as_slice())
            .map_err(|_| malformed("config envelope"))?
            .config
            .ok_or_else(|| malformed("configuration"))?;
        Ok(config.encode_to_vec())
    }
}

#[cfg(target_family = "wasm")]
fn main() -> Result<(), ccvm_guest_sdk::ShimError> {
    ccvm_guest_sdk::start(configuration::Cscc)
}

#[cfg(not(target_family = "wasm"))]
fn main() {
    eprintln!(
        "cscc reads the peer's channels and runs only inside ccvm: build it for wasm32-wasip2"
    );
    std::process::exit(2);
}
