//! The chaincode stream played by a raw gRPC client: bad input gets a clear error while other
//! chaincodes and transactions keep running, and messages no shim here sends (WRITE_BATCH_STATE)
//! work.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use ccvm::proto::protos::chaincode_support_client::ChaincodeSupportClient;
use ccvm::proto::protos::{
    ChaincodeAdditionalParams, ChaincodeId, ChaincodeMessage, GetState, GetStateMultiple,
    GetStateMultipleResult, Response, StateMetadata, WriteBatchState, WriteRecord, write_record,
};
use ccvm::proto::{Message, MessageType};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Endpoint;

use crate::harness::{CHANNEL, TestNode, rust_chaincode, to_args};

/// How long to wait for the peer's next message before failing.
const REPLY_DEADLINE: Duration = Duration::from_secs(30);

struct RawChaincode {
    outbound: mpsc::Sender<ChaincodeMessage>,
    inbound: Streaming<ChaincodeMessage>,
}

impl RawChaincode {
    async fn connect(node: &TestNode) -> Result<Self> {
        let channel = Endpoint::from_shared(format!("http://{}", node.chaincode_addr()))?
            .connect()
            .await?;
        let (outbound, to_peer) = mpsc::channel(16);
        let inbound = ChaincodeSupportClient::new(channel)
            .register(ReceiverStream::new(to_peer))
            .await?
            .into_inner();
        Ok(Self { outbound, inbound })
    }

    async fn send(&self, kind: MessageType, txid: &str, payload: Vec<u8>) -> Result<()> {
        let message = ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: txid.to_owned(),
            channel_id: CHANNEL.to_owned(),
            ..Default::default()
        };
        self.outbound.send(message).await.context("stream closed")
    }

    async fn next(&mut self) -> Result<Option<ChaincodeMessage>> {
        Ok(tokio::time::timeout(REPLY_DEADLINE, self.inbound.message()).await??)
    }

    async fn expect(&mut self, kind: MessageType) -> Result<ChaincodeMessage> {
        let message = self.next().await?.context("stream ended")?;
        anyhow::ensure!(
            message.r#type == kind as i32,
            "expected {kind:?}, got {message:?}"
        );
        Ok(message)
    }

    async fn register(&mut self, name: &str) -> Result<()> {
        let id = ChaincodeId {
            name: name.to_owned(),
            ..Default::default()
        };
        self.send(MessageType::Register, "", id.encode_to_vec())
            .await?;
        self.expect(MessageType::Registered).await?;
        let ready = self.expect(MessageType::Ready).await?;
        let offered = ChaincodeAdditionalParams::decode(ready.payload.as_slice())?;
        assert_eq!(
            offered,
            ChaincodeAdditionalParams {
                use_write_batch: true,
                max_size_write_batch: 1000,
                use_get_multiple_keys: true,
                max_size_get_multiple_keys: 1000,
            },
            "READY offers batched writes and multiple reads as a Fabric 3.1 peer does"
        );
        Ok(())
    }
}

fn text(message: &ChaincodeMessage) -> String {
    String::from_utf8_lossy(&message.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_state_and_unknown_messages_get_error_replies() -> Result<()> {
    let node = TestNode::start().await?;
    let mut raw = RawChaincode::connect(&node).await?;

    raw.send(MessageType::GetState, "early", Vec::new()).await?;
    let error = raw.expect(MessageType::Error).await?;
    assert_eq!(error.txid, "early");
    assert!(
        text(&error).contains("state created cannot handle GET_STATE"),
        "{}",
        text(&error)
    );

    raw.register("raw").await?;
    raw.send(
        MessageType::GetState,
        "no-such-tx",
        GetState {
            key: "k".into(),
            collection: String::new(),
        }
        .encode_to_vec(),
    )
    .await?;
    let error = raw.expect(MessageType::Error).await?;
    assert!(
        text(&error).contains("no ongoing transaction no-such-tx"),
        "{}",
        text(&error)
    );

    raw.outbound
        .send(ChaincodeMessage {
            r#type: 99,
            txid: "t".into(),
            ..Default::default()
        })
        .await?;
    let error = raw.expect(MessageType::Error).await?;
    assert!(
        text(&error).contains("unknown message type 99"),
        "{}",
        text(&error)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_fails_the_request_not_the_transaction() -> Result<()> {
    let node = TestNode::start().await?;
    let mut raw = RawChaincode::connect(&node).await?;
    raw.register("raw").await?;

    let query = node
        .client
        .query(CHANNEL, "raw", to_args(&["anything"]), HashMap::new());
    let chaincode = async {
        let transaction = raw.expect(MessageType::Transaction).await?;
        raw.send(
            MessageType::GetState,
            &transaction.txid,
            vec![0xff, 0xff, 0xff],
        )
        .await?;
        let error = raw.expect(MessageType::Error).await?;
        assert!(
            text(&error).contains("malformed payload"),
            "{}",
            text(&error)
        );
        let response = Response {
            status: 200,
            message: String::new(),
            payload: b"survived".to_vec(),
        };
        raw.send(
            MessageType::Completed,
            &transaction.txid,
            response.encode_to_vec(),
        )
        .await
    };
    let (answer, played) = tokio::join!(query, chaincode);
    played?;
    assert_eq!(answer?.payload, b"survived");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_closes_only_its_stream() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.max_message_bytes = 4096).await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    let mut raw = RawChaincode::connect(&node).await?;
    raw.register("raw").await?;

    raw.send(MessageType::PutState, "big", vec![7; 64 * 1024])
        .await?;
    let ended = loop {
        match raw.next().await {
            Ok(Some(_)) => continue,
            Ok(None) => break "ended".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    assert!(!ended.is_empty());
    node.wait_deregistered("raw").await?;
    node.invoke("kv", &["put", "still", "fine"]).await?;
    Ok(())
}

/// A message whose field 1 is a string: on the wire it cannot be a `ChaincodeMessage`, whose
/// field 1 is an enum.
#[derive(Clone, PartialEq, prost::Message)]
struct NotAChaincodeMessage {
    #[prost(string, tag = "1")]
    text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_close_only_their_stream() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let channel = Endpoint::from_shared(format!("http://{}", node.chaincode_addr()))?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let codec = tonic_prost::ProstCodec::<NotAChaincodeMessage, ChaincodeMessage>::default();
    let garbage = tokio_stream::iter(vec![NotAChaincodeMessage {
        text: "garbage".into(),
    }]);
    let path = http::uri::PathAndQuery::from_static("/protos.ChaincodeSupport/Register");
    let mut replies = grpc
        .streaming(tonic::Request::new(garbage), path, codec)
        .await?
        .into_inner();
    let outcome = tokio::time::timeout(REPLY_DEADLINE, replies.message()).await?;
    assert!(
        !matches!(outcome, Ok(Some(_))),
        "garbage got a reply: {outcome:?}"
    );

    node.invoke("kv", &["put", "after", "garbage"]).await?;
    assert_eq!(node.query_text("kv", &["get", "after"]).await?, "garbage");
    Ok(())
}

/// Answers the next transaction by running `requests` in it, then completing with `payload`.
async fn serve_one(
    raw: &mut RawChaincode,
    requests: Vec<(MessageType, Vec<u8>)>,
    payload: &[u8],
) -> Result<Vec<ChaincodeMessage>> {
    let transaction = raw.expect(MessageType::Transaction).await?;
    let mut answers = Vec::new();
    for (kind, body) in requests {
        raw.send(kind, &transaction.txid, body).await?;
        answers.push(raw.expect(MessageType::Response).await?);
    }
    let response = Response {
        status: 200,
        message: String::new(),
        payload: payload.to_vec(),
    };
    raw.send(
        MessageType::Completed,
        &transaction.txid,
        response.encode_to_vec(),
    )
    .await?;
    Ok(answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_batches_and_multiple_gets_work_end_to_end() -> Result<()> {
    let node = TestNode::start().await?;
    let mut raw = RawChaincode::connect(&node).await?;
    raw.register("raw").await?;

    let record = |kind: write_record::Type, key: &str, value: &[u8]| WriteRecord {
        key: key.to_owned(),
        value: value.to_vec(),
        r#type: kind as i32,
        ..Default::default()
    };
    let mut policy = record(write_record::Type::PutStateMetadata, "a", b"");
    policy.metadata = Some(StateMetadata {
        metakey: "VALIDATION_PARAMETER".into(),
        value: b"p".to_vec(),
    });
    let batch = WriteBatchState {
        rec: vec![
            record(write_record::Type::PutState, "a", b"1"),
            record(write_record::Type::PutState, "b", b"2"),
            record(write_record::Type::PutState, "c", b"3"),
            policy,
        ],
    };
    let invoke = node
        .client
        .invoke(CHANNEL, "raw", to_args(&["batch"]), HashMap::new());
    let (committed, served) = tokio::join!(
        invoke,
        serve_one(
            &mut raw,
            vec![(MessageType::WriteBatchState, batch.encode_to_vec())],
            b"batched"
        )
    );
    served?;
    assert_eq!(committed?.response.payload, b"batched");

    let delete = WriteBatchState {
        rec: vec![record(write_record::Type::DelState, "c", b"")],
    };
    let invoke = node
        .client
        .invoke(CHANNEL, "raw", to_args(&["delete"]), HashMap::new());
    let (committed, served) = tokio::join!(
        invoke,
        serve_one(
            &mut raw,
            vec![(MessageType::WriteBatchState, delete.encode_to_vec())],
            b""
        )
    );
    served?;
    committed?;

    let get = GetStateMultiple {
        keys: vec!["a".into(), "b".into(), "c".into()],
        collection: String::new(),
    };
    let query = node
        .client
        .query(CHANNEL, "raw", to_args(&["read"]), HashMap::new());
    let (queried, served) = tokio::join!(
        query,
        serve_one(
            &mut raw,
            vec![(MessageType::GetStateMultiple, get.encode_to_vec())],
            b"read"
        )
    );
    queried?;
    let values = GetStateMultipleResult::decode(served?[0].payload.as_slice())?.values;
    assert_eq!(values, [b"1".to_vec(), b"2".to_vec(), Vec::new()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_is_sent_only_when_configured() -> Result<()> {
    let quiet = TestNode::start().await?;
    let mut raw = RawChaincode::connect(&quiet).await?;
    raw.register("raw").await?;
    let nothing = tokio::time::timeout(Duration::from_millis(300), raw.inbound.message()).await;
    assert!(nothing.is_err(), "an unconfigured node sent {nothing:?}");

    let chatty = TestNode::start_with(|config| config.chaincode.keepalive_ms = Some(50)).await?;
    let mut raw = RawChaincode::connect(&chatty).await?;
    raw.register("raw").await?;
    raw.expect(MessageType::Keepalive).await?;
    Ok(())
}
