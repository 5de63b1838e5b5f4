//! What the node's gRPC services answer to bytes that are not the message they expect: the
//! sender's mistake, `INVALID_ARGUMENT`, never `INTERNAL`.

use anyhow::{Context, Result};
use bytes::{Buf, BufMut};
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Endpoint;
use tonic::{Code, Status};

use crate::harness::{CHANNEL, TestNode};

/// Sends and receives raw bytes as the body of a gRPC message.
#[derive(Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_is_an_invalid_argument_and_the_peer_keeps_serving() -> Result<()> {
    let node = TestNode::start().await?;
    let channel = Endpoint::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let mut grpc = Grpc::new(channel);
    grpc.ready().await.context("the peer's port")?;
    // Field 1 (bytes) announcing 100 bytes that never come.
    let truncated = vec![0x0a, 0x64, 0x01];
    let refused = grpc
        .unary(
            tonic::Request::new(truncated),
            "/protos.Endorser/ProcessProposal".parse()?,
            RawBytes,
        )
        .await
        .expect_err("the request does not decode");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().starts_with("malformed SignedProposal: "),
        "{}",
        refused.message()
    );

    let info = node.query("qscc", &["GetChainInfo", CHANNEL]).await?;
    assert_eq!(info.status, 200, "the peer serves the next proposal");
    Ok(())
}
