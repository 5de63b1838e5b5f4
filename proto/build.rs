//! Compiles `protos/` with protox (no `protoc` needed); gRPC stubs only with the `grpc` feature.

const PROTO_FILES: &[&str] = &[
    "peer/chaincode_shim.proto",
    "peer/peer.proto",
    "peer/transaction.proto",
    "peer/events.proto",
    "peer/policy.proto",
    "gateway/gateway.proto",
    "orderer/ab.proto",
    "google/rpc/status.proto",
    "common/ledger.proto",
    "common/policies.proto",
    "common/configtx.proto",
    "common/configuration.proto",
    "orderer/configuration.proto",
    "peer/configuration.proto",
    "peer/query.proto",
    "peer/collection.proto",
    "peer/lifecycle/lifecycle.proto",
    "msp/identities.proto",
    "ledger/queryresult/kv_query_result.proto",
    "ledger/rwset/rwset.proto",
    "ledger/rwset/kvrwset/kv_rwset.proto",
    "ccvm/committer.proto",
    "ccvm/admin.proto",
    "discovery/protocol.proto",
];

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=protos");
    let descriptors = protox::compile(PROTO_FILES, ["protos"])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        // No `connect` constructor: it would clash with the `Chaincode.Connect` rpc.
        .build_transport(false)
        .codec_path("crate::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
