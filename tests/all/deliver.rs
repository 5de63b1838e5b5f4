//! Block delivery on the node's client port: `protos.Deliver` and the orderer's `Deliver`, with
//! Fabric's older Node SDK as a submitting client and block listener, and the refusals of bad
//! seek requests.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use ccvm::msp::Identity;
use ccvm::msp::dev_org::DevOrganization;
use ccvm::node::dev_organization;
use ccvm::proto::Message;
use ccvm::proto::common::{
    ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader, Status as BlockStatus,
};
use ccvm::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ccvm::proto::orderer::seek_info::SeekBehavior;
use ccvm::proto::orderer::seek_position::Type as SeekType;
use ccvm::proto::orderer::{SeekInfo, SeekNewest, SeekOldest, SeekPosition, SeekSpecified};
use ccvm::proto::protos::deliver_client::DeliverClient;
use ccvm::proto::protos::{DeliverResponse, TxValidationCode, deliver_response};
use tonic::Streaming;
use tonic::transport::Channel;

use crate::harness::{CHANNEL, TestNode, node_chaincode, node_client, rust_chaincode};

fn specified(number: u64) -> SeekPosition {
    SeekPosition {
        r#type: Some(SeekType::Specified(SeekSpecified { number })),
    }
}

/// A seek request for `channel` signed by `identity`, as Fabric's SDKs send it.
fn seek(identity: &Identity, channel: &str, info: &SeekInfo) -> Envelope {
    let channel_header = ChannelHeader {
        r#type: HeaderType::DeliverSeekInfo as i32,
        channel_id: channel.to_owned(),
        timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: SignatureHeader {
                creator: identity.serialized(),
                nonce: vec![7; 24],
            }
            .encode_to_vec(),
        }),
        data: info.encode_to_vec(),
    }
    .encode_to_vec();
    Envelope {
        signature: identity.sign(&payload),
        payload,
    }
}

fn from_to(start: SeekPosition, stop: SeekPosition) -> SeekInfo {
    SeekInfo {
        start: Some(start),
        stop: Some(stop),
        ..Default::default()
    }
}

async fn deliver_client(node: &TestNode) -> Result<DeliverClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    Ok(DeliverClient::new(channel))
}

/// Opens a Deliver stream with one request.
async fn deliver(node: &TestNode, request: Envelope) -> Result<Streaming<DeliverResponse>> {
    Ok(deliver_client(node)
        .await?
        .deliver(tokio_stream::iter([request]))
        .await?
        .into_inner())
}

/// The next answer of a stream, within a deadline.
async fn next(stream: &mut Streaming<DeliverResponse>) -> Result<deliver_response::Type> {
    tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .context("no answer within 30 s")??
        .and_then(|response| response.r#type)
        .context("the stream ended")
}

async fn status_of(node: &TestNode, request: Envelope) -> Result<i32> {
    let mut stream = deliver(node, request).await?;
    match next(&mut stream).await? {
        deliver_response::Type::Status(status) => Ok(status),
        other => anyhow::bail!("a status, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_older_node_sdk_submits_through_broadcast_and_hears_blocks_and_events() -> Result<()>
{
    let node = TestNode::start().await?;
    let _chaincode = node_chaincode(&node, "shim-kv.js", "sdkkv")?;
    node.wait_registered("sdkkv").await?;
    let user = dev_organization(&node.config().data_dir).user_msp_dir();
    let seen = node_client(
        "sdk-submit.js",
        &node,
        &user,
        &node.config().msp_id,
        "sdkkv",
        &[],
    )
    .await?;
    assert_eq!(seen["submit"]["ok"], true, "{seen}");
    assert_eq!(seen["evaluate"]["value"], "submitted", "{seen}");
    assert_eq!(seen["event"]["ok"], true, "{seen}");
    let blocks = seen["blocks"]["value"]
        .as_array()
        .context(seen.to_string())?;
    let numbers: Vec<u64> = blocks.iter().filter_map(|b| b["number"].as_u64()).collect();
    assert_eq!(numbers, [0, 1], "{seen}");
    assert_eq!(
        blocks[1]["txs"][0], seen["submitTxId"],
        "block 1 holds the SDK's submission: {seen}"
    );
    assert_eq!(
        seen["contractEvents"]["value"][0]["name"], "sdk-event",
        "{seen}"
    );
    assert_eq!(
        seen["contractEvents"]["value"][0]["payload"], "from the SDK",
        "{seen}"
    );
    assert_eq!(
        node.query_text("sdkkv", &["get", "sdk"]).await?,
        "submitted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_streams_blocks_then_waits_for_new_ones_and_filters_them() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let first = node.invoke("kv", &["event", "hello", "world"]).await?;
    let identity = node.client.identity();

    let mut blocks = deliver(
        &node,
        seek(identity, CHANNEL, &from_to(specified(1), specified(2))),
    )
    .await?;
    match next(&mut blocks).await? {
        deliver_response::Type::Block(block) => {
            assert_eq!(block.header.context("a header")?.number, 1);
        }
        other => anyhow::bail!("block 1, not {other:?}"),
    }
    let waiting = tokio::spawn(async move {
        let block = next(&mut blocks).await;
        (block, blocks)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "block 2 is not committed yet");
    let second = node.invoke("kv", &["put", "k", "v"]).await?;
    let (block, mut blocks) = waiting.await?;
    match block? {
        deliver_response::Type::Block(block) => {
            assert_eq!(block.header.context("a header")?.number, 2);
        }
        other => anyhow::bail!("block 2, not {other:?}"),
    }
    assert_eq!(
        next(&mut blocks).await?,
        deliver_response::Type::Status(BlockStatus::Success as i32),
        "the stop block ends the request with SUCCESS"
    );

    let mut filtered = deliver_client(&node)
        .await?
        .deliver_filtered(tokio_stream::iter([seek(
            identity,
            CHANNEL,
            &from_to(
                SeekPosition {
                    r#type: Some(SeekType::Oldest(SeekOldest {})),
                },
                SeekPosition {
                    r#type: Some(SeekType::Newest(SeekNewest {})),
                },
            ),
        )]))
        .await?
        .into_inner();
    let mut txs = Vec::new();
    for _ in 0..3 {
        match next(&mut filtered).await? {
            deliver_response::Type::FilteredBlock(block) => {
                assert_eq!(block.channel_id, CHANNEL);
                txs.extend(block.filtered_transactions);
            }
            other => anyhow::bail!("a filtered block, not {other:?}"),
        }
    }
    let genesis = txs.remove(0);
    assert_eq!(
        genesis.r#type,
        HeaderType::Config as i32,
        "block 0 holds the channel's configuration"
    );
    let ids: Vec<&str> = txs.iter().map(|tx| tx.txid.as_str()).collect();
    assert_eq!(ids, [first.tx_id.as_str(), second.tx_id.as_str()]);
    assert!(
        txs.iter()
            .all(|tx| tx.tx_validation_code == TxValidationCode::Valid as i32)
    );
    let Some(ccvm::proto::protos::filtered_transaction::Data::TransactionActions(actions)) =
        &txs[0].data
    else {
        anyhow::bail!("the endorser transaction has its actions: {:?}", txs[0]);
    };
    let event = actions.chaincode_actions[0]
        .chaincode_event
        .as_ref()
        .context("an event")?;
    assert_eq!(
        (event.event_name.as_str(), event.payload.len()),
        ("hello", 0),
        "a filtered event keeps its name and loses its payload"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_seek_requests_are_answered_with_fabrics_statuses() -> Result<()> {
    let node = TestNode::start().await?;
    let identity = node.client.identity();
    let everything = from_to(specified(0), specified(u64::MAX));

    assert_eq!(
        status_of(&node, seek(identity, "nochannel", &everything)).await?,
        BlockStatus::NotFound as i32
    );
    let backwards = from_to(specified(5), specified(2));
    assert_eq!(
        status_of(&node, seek(identity, CHANNEL, &backwards)).await?,
        BlockStatus::BadRequest as i32
    );
    let no_stop = SeekInfo {
        start: Some(specified(0)),
        ..Default::default()
    };
    assert_eq!(
        status_of(&node, seek(identity, CHANNEL, &no_stop)).await?,
        BlockStatus::BadRequest as i32
    );
    let garbled = Envelope {
        payload: vec![0xff; 16],
        signature: Vec::new(),
    };
    assert_eq!(
        status_of(&node, garbled).await?,
        BlockStatus::BadRequest as i32
    );
    let not_ready = SeekInfo {
        behavior: SeekBehavior::FailIfNotReady as i32,
        ..from_to(specified(3), specified(3))
    };
    assert_eq!(
        status_of(&node, seek(identity, CHANNEL, &not_ready)).await?,
        BlockStatus::NotFound as i32
    );

    let elsewhere = tempfile::tempdir()?;
    let other_org = DevOrganization::at(elsewhere.path());
    other_org.create_if_absent("Org9MSP")?;
    let outsider = Identity::load(&other_org.user_msp_dir(), "Org9MSP")?;
    assert_eq!(
        status_of(&node, seek(&outsider, CHANNEL, &everything)).await?,
        BlockStatus::Forbidden as i32,
        "a reader of another organization's CA is refused"
    );

    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let mut orderer = AtomicBroadcastClient::new(channel)
        .deliver(tokio_stream::iter([seek(&outsider, CHANNEL, &everything)]))
        .await?
        .into_inner();
    let refused = orderer.message().await?.and_then(|r| r.r#type);
    assert_eq!(
        refused,
        Some(ccvm::proto::orderer::deliver_response::Type::Status(
            BlockStatus::Forbidden as i32
        )),
        "the orderer's Deliver refuses the outsider too"
    );
    node.query("qscc", &["GetChainInfo", CHANNEL])
        .await
        .context("the node still serves")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_back_its_stream_not_the_node() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let identity = node.client.identity();
    let mut idle = deliver(
        &node,
        seek(
            identity,
            CHANNEL,
            &from_to(specified(0), specified(u64::MAX)),
        ),
    )
    .await?;
    let value = "v".repeat(1024 * 1024);
    for n in 0..24 {
        node.invoke("kv", &["put", &format!("k{n}"), &value])
            .await?;
    }
    assert_eq!(
        node.query("kv", &["get", "k23"]).await?.payload.len(),
        value.len(),
        "the node serves while a stream is not read"
    );
    for number in 0..24 {
        match next(&mut idle).await? {
            deliver_response::Type::Block(block) => {
                assert_eq!(block.header.context("a header")?.number, number);
            }
            other => anyhow::bail!("block {number}, not {other:?}"),
        }
    }
    Ok(())
}
