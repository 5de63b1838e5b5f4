//! Fabric's `ChaincodeMessage` protocol and the messages around it, wire-compatible with
//! Hyperledger Fabric: same packages, message names, field numbers and enum values.
//!
//! Each module is one protobuf package. With the `grpc` feature, `protos` also holds the
//! tonic client and server for `ChaincodeSupport`, `Chaincode`, `Endorser` and `Deliver`,
//! `gateway` the `Gateway`, `orderer` the `AtomicBroadcast`, `discovery` the `Discovery`, and
//! `ccvm` the `Committer` service.

#![allow(
    missing_docs,
    clippy::all,
    clippy::allow_attributes_without_reason,
    reason = "generated code"
)]

#[cfg(feature = "grpc")]
pub mod codec;
pub mod refusal;

/// The shim protocol, proposals and transactions (`package protos`).
pub mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

/// Headers, envelopes and blocks (`package common`).
pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
}

/// Serialized identities (`package msp`).
pub mod msp {
    include!(concat!(env!("OUT_DIR"), "/msp.rs"));
}

/// Items returned by state and history iterators (`package queryresult`).
pub mod queryresult {
    include!(concat!(env!("OUT_DIR"), "/queryresult.rs"));
}

/// A transaction's read-write set by namespace (`package rwset`).
pub mod rwset {
    include!(concat!(env!("OUT_DIR"), "/rwset.rs"));
}

/// Key-value reads and writes (`package kvrwset`).
pub mod kvrwset {
    include!(concat!(env!("OUT_DIR"), "/kvrwset.rs"));
}

/// Fabric's gateway: a peer's client API (`package gateway`).
pub mod gateway {
    include!(concat!(env!("OUT_DIR"), "/gateway.rs"));
}

/// The ordering service's broadcast and deliver API (`package orderer`).
pub mod orderer {
    include!(concat!(env!("OUT_DIR"), "/orderer.rs"));
}

/// gRPC's rich error status, which carries a failed call's details (`package google.rpc`).
pub mod google {
    /// `package google.rpc`.
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

/// Fabric's discovery service: a channel's organizations, orderers, peers and endorsers
/// (`package discovery`).
pub mod discovery {
    include!(concat!(env!("OUT_DIR"), "/discovery.rs"));
}

/// The gossip messages a discovery answer carries for each peer (`package gossip`).
pub mod gossip {
    include!(concat!(env!("OUT_DIR"), "/gossip.rs"));
}

/// The arguments and results of `_lifecycle`'s functions (`package lifecycle`).
pub mod lifecycle {
    include!(concat!(env!("OUT_DIR"), "/lifecycle.rs"));
}

/// ccvm's own single-node commit service (`package ccvm`).
pub mod ccvm {
    include!(concat!(env!("OUT_DIR"), "/ccvm.rs"));
}

pub use prost::Message;
pub use prost_types::Timestamp;
pub use protos::chaincode_message::Type as MessageType;
pub use refusal::Refusal;

/// Most keys a chaincode reads with one GET_STATE_MULTIPLE, and most records it writes with one
/// WRITE_BATCH_STATE: Fabric's defaults (`chaincode.runtimeParams`).
pub const MAX_BATCH_KEYS: u32 = 1000;

/// What a ccvm peer offers beyond the base protocol, as a Fabric 3.1 peer with its sample
/// configuration does: reading several keys in one request, and batched writes.
pub fn peer_capabilities() -> protos::ChaincodeAdditionalParams {
    protos::ChaincodeAdditionalParams {
        use_write_batch: true,
        max_size_write_batch: MAX_BATCH_KEYS,
        use_get_multiple_keys: true,
        max_size_get_multiple_keys: MAX_BATCH_KEYS,
    }
}

/// The peer's answers to a REGISTER it accepts, in the order a chaincode expects them:
/// REGISTERED, then READY carrying [`peer_capabilities`], each with the REGISTER's transaction
/// id and channel.
pub fn registration_accepted(register: &protos::ChaincodeMessage) -> [protos::ChaincodeMessage; 2] {
    let reply = |kind: MessageType, payload: Vec<u8>| protos::ChaincodeMessage {
        r#type: kind as i32,
        payload,
        txid: register.txid.clone(),
        channel_id: register.channel_id.clone(),
        ..Default::default()
    };
    [
        reply(MessageType::Registered, Vec::new()),
        reply(MessageType::Ready, peer_capabilities().encode_to_vec()),
    ]
}
