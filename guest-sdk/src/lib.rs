//! Write Hyperledger Fabric chaincode in Rust, for ccvm or any Fabric-compatible peer.
//!
//! Implement [`Chaincode`] (its `invoke`, and `init` if the chaincode needs it) and call
//! [`start`] from `main`. Inside `invoke`, the [`Stub`] reads and writes the ledger with plain
//! blocking calls: `stub.get_state("k")?`. The same source builds natively, where the shim dials
//! the peer's `ChaincodeSupport.Register` stream over gRPC (feature `grpc`), and for
//! `wasm32-wasip2`, where ccvm runs it inside the peer and the shim talks to the peer through the
//! host functions of `wit/chaincode.wit`.
//!
//! ```no_run
//! use ccvm_guest_sdk::{Chaincode, Response, Stub};
//!
//! struct Counter;
//!
//! impl Chaincode for Counter {
//!     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
//!         let (function, params) = stub.function_and_parameters();
//!         match function.as_str() {
//!             "get" => match stub.get_state(&params[0]) {
//!                 Ok(value) => Response::success(value.unwrap_or_default()),
//!                 Err(e) => Response::error(e.to_string()),
//!             },
//!             _ => Response::error(format!("unknown function {function}")),
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), ccvm_guest_sdk::ShimError> {
//!     ccvm_guest_sdk::start(Counter)
//! }
//! ```
//!
//! The native process takes Fabric's settings: `--peer.address HOST:PORT` (or
//! `CORE_PEER_ADDRESS`), its name from `CORE_CHAINCODE_ID_NAME`, and TLS from
//! `CORE_PEER_TLS_ENABLED`, `CORE_TLS_CLIENT_KEY_PATH`, `CORE_TLS_CLIENT_CERT_PATH` and
//! `CORE_PEER_TLS_ROOTCERT_FILE`.

mod batch;
mod chaincode;
pub mod cid;
mod composite;
pub mod contract;
mod error;
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
mod grpc;
mod iterators;
pub mod mock;
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
mod server;
mod shim;
mod stub;
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
mod tx_threads;
#[cfg(target_family = "wasm")]
mod wasm;

pub use ccvm_proto as proto;
pub use chaincode::{Chaincode, Response};
pub use composite::{create_composite_key, split_composite_key};
pub use error::ShimError;
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
pub use grpc::{PeerSettings, TlsSettings, open_stream, serve, start};
pub use iterators::{HistoryIterator, KeyModification, PageInfo, StateIterator};
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
pub use server::{
    MAX_PEER_CONNECTIONS, PeerConnection, ServerSettings, ServerTls, listen_for_peers,
    serve_as_server,
};
pub use shim::{Action, PeerCall, PeerFeatures, Shim, Transaction, run_transaction};
pub use stub::Stub;
#[cfg(all(feature = "grpc", not(target_family = "wasm")))]
pub use tx_threads::MAX_TRANSACTION_THREADS;
#[cfg(target_family = "wasm")]
pub use wasm::start;
