//! A chaincode that misbehaves on purpose, to show that the inproc VM's sandbox contains it:
//! `spin` never returns, `hoard` allocates without end, `recurse` never stops recursing, `clock`
//! reads the host's time, `read NAME` reads `/data/NAME`, `sleep` sleeps an hour, `babble` (in
//! wasm) sends the peer bytes that are not a message and `hang` (in wasm) waits for a message the
//! peer never sends. `relay MESSAGE...` (in wasm) sends the peer each `ChaincodeMessage` as it
//! is, in the running transaction where it names none, and answers with the peer's replies, each
//! after its length (4 bytes, big-endian). Any other function answers normally, so a test can tell a contained guest
//! from a broken one. Launched as `quitter` it ends at once, as `silent` it never
//! registers.
//!
//! Build for the inproc VM: `cargo build --release --target wasm32-wasip2 -p hostile`

use std::hint::black_box;

use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub};

struct Hostile;

/// The peer channel itself, beneath the SDK's shim.
#[cfg(target_family = "wasm")]
mod raw {
    wit_bindgen::generate!({
        inline: "
            package ccvm:hostile;

            world babbler {
                import ccvm:chaincode/peer@0.1.0;
            }
        ",
        path: "../../wit",
        world: "ccvm:hostile/babbler",
        generate_all,
    });

    /// Waits for a message from the peer in the middle of a transaction, when none is coming.
    pub fn hang() -> String {
        match ccvm::chaincode::peer::receive() {
            Ok(_) => "the peer sent something unasked".to_owned(),
            Err(closed) => closed,
        }
    }

    /// Sends each of the encoded `messages` to the peer, in the transaction `tx_id` on `channel`
    /// where it names none, and returns the peer's replies, each after its length.
    pub fn relay(messages: &[Vec<u8>], tx_id: &str, channel: &str) -> Result<Vec<u8>, String> {
        use ccvm_guest_sdk::proto::Message;
        use ccvm_guest_sdk::proto::protos::ChaincodeMessage;

        let mut replies = Vec::new();
        for bytes in messages {
            let mut message =
                ChaincodeMessage::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
            if message.txid.is_empty() {
                tx_id.clone_into(&mut message.txid);
            }
            if message.channel_id.is_empty() {
                channel.clone_into(&mut message.channel_id);
            }
            ccvm::chaincode::peer::send(&message.encode_to_vec())?;
            let reply = ccvm::chaincode::peer::receive()?;
            let length = u32::try_from(reply.len()).map_err(|e| e.to_string())?;
            replies.extend(length.to_be_bytes());
            replies.extend(reply);
        }
        Ok(replies)
    }

    /// Sends bytes that do not decode as a `ChaincodeMessage`.
    pub fn babble() -> String {
        match ccvm::chaincode::peer::send(&[0xff, 0xff, 0xff, 0xff]) {
            Ok(()) => "the peer took garbage".to_owned(),
            Err(refused) => refused,
        }
    }
}

/// Recurses until `n` wraps around: long after any stack is exhausted.
fn depth(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    black_box(depth(n + 1)).wrapping_add(n)
}

impl Chaincode for Hostile {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        let (function, _) = stub.function_and_parameters();
        match function.as_str() {
            "spin" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            "hoard" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1024 * 1024]));
                }
            }
            "recurse" => Response::success(depth(0).to_string()),
            "read" => {
                let (_, params) = stub.function_and_parameters();
                let path = format!("/data/{}", params.first().map_or("", String::as_str));
                match std::fs::read_to_string(&path) {
                    Ok(text) => Response::success(text),
                    Err(e) => Response::error(format!("cannot read {path}: {e}")),
                }
            }
            #[cfg(target_family = "wasm")]
            "babble" => Response::error(raw::babble()),
            #[cfg(target_family = "wasm")]
            "hang" => Response::error(raw::hang()),
            #[cfg(target_family = "wasm")]
            "relay" => match raw::relay(&stub.args()[1..], stub.tx_id(), stub.channel_id()) {
                Ok(replies) => Response::success(replies),
                Err(e) => Response::error(e),
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Response::success("slept an hour")
            }
            "clock" => {
                let since_epoch =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                Response::success(
                    since_epoch
                        .map(|d| d.as_secs())
                        .unwrap_or(u64::MAX)
                        .to_string(),
                )
            }
            _ => Response::success("well behaved"),
        }
    }
}

/// Registered as `quitter` (any version) it ends before registering; as `silent` it never
/// registers.
fn main() -> Result<(), ShimError> {
    let name = std::env::var("CORE_CHAINCODE_ID_NAME").unwrap_or_default();
    match name.split(':').next() {
        Some("quitter") => Ok(()),
        Some("silent") => loop {
            std::hint::spin_loop();
        },
        _ => ccvm_guest_sdk::start(Hostile),
    }
}
