//! ccvm: a Hyperledger Fabric-compatible chaincode runtime.
//!
//! The layers, each depending only on those below it:
//!
//! - [`cli`] parses the `ccvm` command line and prints; it holds no logic of its own.
//! - [`node`] wires configuration, the ledger, chaincode support and the gRPC servers into a
//!   running peer.
//! - [`chaincode`] is the peer side of the `ChaincodeMessage` protocol: the [`chaincode::Handler`]
//!   state machine, transaction contexts, and the registry of connected chaincodes. It sees only
//!   a stream of messages in and out; gRPC is one transport adapted onto it.
//! - [`container`] starts chaincode: the inproc VM (wasm inside the peer) and the Docker VM.
//! - [`external_builder`] lets Fabric's own peers run ccvm packages, as a Fabric external builder.
//! - [`package`] reads and keeps chaincode packages in Fabric's format.
//! - [`scaffold`] creates new chaincode projects on the guest SDK.
//! - [`msp`] and [`policy`] decide trust: which identities belong to which organization in which
//!   role, and whether a set of signers satisfies a policy. Pure functions of their inputs.
//! - [`logging`] and [`metrics`] are what an operator watches: Fabric's log spec and metrics.
//! - [`fabric`] holds conventions of Fabric's protocol that the client and the node share.
//! - [`ledger`] keeps world state with MVCC versions, history and blocks in an embedded store.

pub mod chaincode;
pub mod channel;
pub mod cli;
pub mod client;
pub mod config;
pub mod container;
pub mod external_builder;
pub mod fabric;
mod fs_private;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod msp;
pub mod node;
pub mod operations_client;
pub mod package;
pub mod policy;
pub mod scaffold;
pub mod signed_call;
mod sync;
pub mod validation;

pub use ccvm_proto as proto;
