//! ccvm's integration tests: one binary, a module per area, real components throughout (a real
//! node on loopback, real chaincode processes built from `examples/`, Fabric's own Node shim).

mod ccaas;
mod chaincode_tls;
mod channels;
mod cli;
mod deliver;
mod discovery;
mod docker;
mod docker_wasm;
mod fabric_cli;
mod fabric_net;
mod fabric_network;
mod gateway;
mod grpc_edge;
mod harness;
mod hot_swap;
mod inproc;
mod ledger_commit;
mod node_shim;
mod operations;
mod peer_side;
mod raw_chaincode;
mod rust_chaincode;
mod scaffold;
mod system_chaincodes;
mod trust;
