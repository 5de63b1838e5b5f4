//! Fabric's `ChaincodeMessage` protocol and the messages around it, wire-compatible with
//! Hyperledger Fabric: same packages, message names, field numbers and enum values.
//!
//! Each module is one protobuf package. With the `grpc` feature, `protos` also holds the
//! tonic client and server for `ChaincodeSupport`, `Chaincode` and `Endorser`, and `ccvm` the
//! `Committer` service.

#![allow(
    missing_docs,
    clippy::all,
    clippy::allow_attributes_without_reason,
    reason = "generated code"
)]

#[cfg(feature = "grpc")]
pub mod codec;

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

/// ccvm's own single-node commit service (`package ccvm`).
pub mod ccvm {
    include!(concat!(env!("OUT_DIR"), "/ccvm.rs"));
}

pub use prost::Message;
pub use prost_types::Timestamp;
pub use protos::chaincode_message::Type as MessageType;

/// The peer's answers to a REGISTER it accepts, in the order a chaincode expects them:
/// REGISTERED, then READY, each carrying the REGISTER's transaction id and channel.
pub fn registration_accepted(register: &protos::ChaincodeMessage) -> [protos::ChaincodeMessage; 2] {
    let reply = |kind: MessageType| protos::ChaincodeMessage {
        r#type: kind as i32,
        txid: register.txid.clone(),
        channel_id: register.channel_id.clone(),
        ..Default::default()
    };
    [reply(MessageType::Registered), reply(MessageType::Ready)]
}
