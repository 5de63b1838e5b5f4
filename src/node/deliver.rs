//! Block delivery: `protos.Deliver` (blocks, filtered blocks, blocks with private data) and the
//! ordering service's `Deliver`, both answering signed `SeekInfo` envelopes from the ledger, as
//! Fabric's `common/deliver` does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use ccvm_proto::Message;
use ccvm_proto::common::{
    Block, ChannelHeader, Envelope, Payload, SignatureHeader, Status as BlockStatus,
};
use ccvm_proto::orderer::seek_info::{SeekBehavior, SeekContentType};
use ccvm_proto::orderer::seek_position::Type as SeekType;
use ccvm_proto::orderer::{SeekInfo, SeekPosition};
use ccvm_proto::protos::deliver_server::{self, DeliverServer};
use ccvm_proto::protos::{
    BlockAndPrivateData, DeliverResponse, FilteredBlock, FilteredChaincodeAction,
    FilteredTransaction, FilteredTransactionActions, deliver_response, filtered_transaction,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::block_content::transactions;
use super::block_feed::{BlockFeed, FeedError};
use super::channels::Channels;
use super::tls::client_cert_hash;
use crate::ledger::Ledger;
use crate::policy::{EVENT_BLOCK, EVENT_FILTERED_BLOCK};
use crate::signed_call::{MAX_CLOCK_SKEW, within_clock_skew};

/// Deliver streams open at once, over both services; more are refused with
/// `RESOURCE_EXHAUSTED` until one ends.
pub const MAX_DELIVER_STREAMS: usize = 1024;
/// Blocks of one stream held for a client that does not read; the stream reads no further
/// blocks until it does.
const DELIVER_BUFFER: usize = 4;

/// One answer on a deliver stream, before it takes its service's message type.
pub(crate) enum Delivered {
    /// A block of `channel`.
    Block {
        /// The channel.
        channel: String,
        /// The block.
        block: Block,
    },
    /// The outcome of a request: SUCCESS after its last block, or why it ends the stream.
    Status(BlockStatus),
}

/// Serves deliver streams from the ledger.
pub(crate) struct Deliverer {
    ledger: Ledger,
    channels: Arc<Channels>,
    stop: CancellationToken,
    streams: Arc<Semaphore>,
}

impl Deliverer {
    pub fn new(ledger: Ledger, channels: Arc<Channels>, stop: CancellationToken) -> Self {
        Self {
            ledger,
            channels,
            stop,
            streams: Arc::new(Semaphore::new(MAX_DELIVER_STREAMS)),
        }
    }

    /// Answers the seek requests of `envelopes`, one after the other, each checked against the
    /// ACL `resource`; `answer` turns what is delivered into the service's message.
    pub fn open<R: Send + 'static>(
        &self,
        envelopes: Streaming<Envelope>,
        client_cert_hash: Option<Vec<u8>>,
        resource: &'static str,
        answer: fn(Delivered) -> R,
    ) -> Result<ReceiverStream<Result<R, Status>>, Status> {
        let permit = Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{MAX_DELIVER_STREAMS} deliver streams are already open on this node"
            ))
        })?;
        let (answers, stream) = mpsc::channel(DELIVER_BUFFER);
        let session = Session {
            ledger: self.ledger.clone(),
            channels: Arc::clone(&self.channels),
            stop: self.stop.clone(),
            client_cert_hash,
            resource,
            answers,
            answer,
            _permit: permit,
        };
        tokio::spawn(session.run(envelopes));
        Ok(ReceiverStream::new(stream))
    }
}

/// A seek request, checked.
struct Seek {
    channel: String,
    start: u64,
    stop: u64,
    behavior: SeekBehavior,
    content: SeekContentType,
}

/// Why a stream ended early.
enum Ended {
    /// The client went away or the node is stopping: nothing more to send.
    Quietly,
    /// Refused or failed with this status, sent as the stream's last answer.
    With(BlockStatus, String),
}

/// One deliver stream.
struct Session<R> {
    ledger: Ledger,
    channels: Arc<Channels>,
    stop: CancellationToken,
    client_cert_hash: Option<Vec<u8>>,
    resource: &'static str,
    answers: mpsc::Sender<Result<R, Status>>,
    answer: fn(Delivered) -> R,
    _permit: OwnedSemaphorePermit,
}

impl<R: Send + 'static> Session<R> {
    async fn run(self, mut envelopes: Streaming<Envelope>) {
        loop {
            let envelope = tokio::select! {
                () = self.stop.cancelled() => return,
                received = envelopes.message() => match received {
                    Ok(Some(envelope)) => envelope,
                    Ok(None) | Err(_) => return,
                },
            };
            let ended = match self.seek(&envelope) {
                Ok(seek) => self.deliver(seek).await,
                Err(refusal) => Err(refusal),
            };
            match ended {
                Ok(()) => {
                    if !self.send(Delivered::Status(BlockStatus::Success)).await {
                        return;
                    }
                }
                Err(Ended::Quietly) => return,
                Err(Ended::With(status, reason)) => {
                    debug!(?status, %reason, "deliver request refused");
                    let _ = self.send(Delivered::Status(status)).await;
                    return;
                }
            }
        }
    }

    /// Checks a seek request as Fabric's deliver handler does, in its order.
    fn seek(&self, envelope: &Envelope) -> Result<Seek, Ended> {
        let bad = |reason: String| Ended::With(BlockStatus::BadRequest, reason);
        let payload = Payload::decode(envelope.payload.as_slice())
            .map_err(|e| bad(format!("malformed envelope payload: {e}")))?;
        let header = payload
            .header
            .ok_or_else(|| bad("envelope has no header".to_owned()))?;
        let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
            .map_err(|e| bad(format!("malformed channel header: {e}")))?;
        let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
            .map_err(|e| bad(format!("malformed signature header: {e}")))?;
        check_timestamp(channel_header.timestamp.as_ref()).map_err(bad)?;
        let channel = channel_header.channel_id;
        let not_found = || {
            Ended::With(
                BlockStatus::NotFound,
                format!("channel {channel} does not exist"),
            )
        };
        let access = Arc::clone(&self.channels.get(&channel).ok_or_else(not_found)?.access);
        access
            .check_tls_binding(
                self.client_cert_hash.as_deref(),
                &channel_header.tls_cert_hash,
            )
            .map_err(|denied| bad(denied.to_string()))?;
        let height = self
            .ledger
            .chain_info(&channel)
            .map_err(|_| not_found())?
            .height;
        let info = SeekInfo::decode(payload.data.as_slice())
            .map_err(|e| bad(format!("malformed seek info: {e}")))?;
        access
            .authorize(
                self.resource,
                &signature_header.creator,
                &envelope.payload,
                &envelope.signature,
            )
            .map_err(|denied| Ended::With(BlockStatus::Forbidden, denied.to_string()))?;
        let (Some(start), Some(stop)) = (info.start.as_ref(), info.stop.as_ref()) else {
            return Err(bad("seek info has no start or no stop".to_owned()));
        };
        let start = position(start, height, None).map_err(bad)?;
        let stop = position(stop, height, Some(start)).map_err(bad)?;
        if stop < start {
            return Err(bad(format!(
                "the stop block {stop} is before the start block {start}"
            )));
        }
        Ok(Seek {
            channel,
            start,
            stop,
            behavior: SeekBehavior::try_from(info.behavior).unwrap_or_default(),
            content: SeekContentType::try_from(info.content_type).unwrap_or_default(),
        })
    }

    /// Sends the blocks of `seek`, waiting for those not yet committed unless asked not to.
    async fn deliver(&self, seek: Seek) -> Result<(), Ended> {
        let mut feed = BlockFeed::new(self.ledger.clone(), seek.channel.clone(), self.stop.clone());
        for number in seek.start..=seek.stop {
            if seek.behavior == SeekBehavior::FailIfNotReady {
                let height = self
                    .ledger
                    .chain_info(&seek.channel)
                    .map(|info| info.height)
                    .unwrap_or_default();
                if number >= height {
                    return Err(Ended::With(
                        BlockStatus::NotFound,
                        format!("block {number} is not committed yet"),
                    ));
                }
            }
            let block = tokio::select! {
                () = self.answers.closed() => return Err(Ended::Quietly),
                block = feed.block(number) => block,
            };
            let mut block = match block {
                Ok(block) => block,
                Err(FeedError::Stopped) => return Err(Ended::Quietly),
                Err(FeedError::Ledger(e)) => {
                    return Err(Ended::With(
                        BlockStatus::ServiceUnavailable,
                        e.for_chaincode(),
                    ));
                }
            };
            if seek.content == SeekContentType::HeaderWithSig {
                block.data = None;
            }
            let delivered = Delivered::Block {
                channel: seek.channel.clone(),
                block,
            };
            if !self.send(delivered).await {
                return Err(Ended::Quietly);
            }
        }
        Ok(())
    }

    /// Sends one answer; false when the client has gone.
    async fn send(&self, delivered: Delivered) -> bool {
        self.answers
            .send(Ok((self.answer)(delivered)))
            .await
            .is_ok()
    }
}

/// A seek position as a block number on a chain `height` blocks high; `start` is the start of a
/// stop position.
fn position(position: &SeekPosition, height: u64, start: Option<u64>) -> Result<u64, String> {
    let newest = height.saturating_sub(1);
    match &position.r#type {
        Some(SeekType::Oldest(_)) => Ok(start.unwrap_or(0)),
        Some(SeekType::Newest(_)) => Ok(start.map_or(newest, |start| start.max(newest))),
        Some(SeekType::Specified(specified)) => Ok(specified.number),
        Some(SeekType::NextCommit(_)) => Ok(height),
        None => Err("seek position has no type".to_owned()),
    }
}

/// A request must be signed within [`MAX_CLOCK_SKEW`] of the node's clock.
fn check_timestamp(timestamp: Option<&prost_types::Timestamp>) -> Result<(), String> {
    let signed_at = timestamp
        .and_then(|t| SystemTime::try_from(*t).ok())
        .ok_or_else(|| "the request has no timestamp".to_owned())?;
    if !within_clock_skew(signed_at, SystemTime::now()) {
        return Err(format!(
            "the request's timestamp is more than {} s from the node's clock",
            MAX_CLOCK_SKEW.as_secs()
        ));
    }
    Ok(())
}

/// `block` as Fabric's filtered block: each transaction's id, type and validation code, and
/// the chaincode events of endorser transactions without their payloads.
pub(crate) fn filtered(channel: &str, block: &Block) -> FilteredBlock {
    let filtered_transactions = transactions(block)
        .into_iter()
        .map(|tx| {
            let endorser =
                tx.header_type == ccvm_proto::common::HeaderType::EndorserTransaction as i32;
            FilteredTransaction {
                txid: tx.tx_id,
                r#type: tx.header_type,
                tx_validation_code: tx.code,
                data: endorser.then(|| {
                    filtered_transaction::Data::TransactionActions(FilteredTransactionActions {
                        chaincode_actions: tx
                            .events
                            .into_iter()
                            .map(|event| FilteredChaincodeAction {
                                chaincode_event: Some(ccvm_proto::protos::ChaincodeEvent {
                                    payload: Vec::new(),
                                    ..event
                                }),
                            })
                            .collect(),
                    })
                }),
            }
        })
        .collect();
    FilteredBlock {
        channel_id: channel.to_owned(),
        number: block.header.as_ref().map_or(0, |header| header.number),
        filtered_transactions,
    }
}

/// The `protos.Deliver` service: the peer's block events.
pub struct DeliverService {
    deliverer: Arc<Deliverer>,
}

impl DeliverService {
    pub(crate) fn server(deliverer: Arc<Deliverer>) -> DeliverServer<Self> {
        DeliverServer::new(Self { deliverer })
    }

    fn open(
        &self,
        request: Request<Streaming<Envelope>>,
        resource: &'static str,
        answer: fn(Delivered) -> DeliverResponse,
    ) -> Result<Response<Answers>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let stream =
            self.deliverer
                .open(request.into_inner(), client_cert_hash, resource, answer)?;
        Ok(Response::new(Box::pin(stream)))
    }
}

type Answers = Pin<Box<dyn Stream<Item = Result<DeliverResponse, Status>> + Send>>;

fn status_answer(status: BlockStatus) -> DeliverResponse {
    DeliverResponse {
        r#type: Some(deliver_response::Type::Status(status as i32)),
    }
}

fn block_answer(delivered: Delivered) -> DeliverResponse {
    match delivered {
        Delivered::Block { block, .. } => DeliverResponse {
            r#type: Some(deliver_response::Type::Block(block)),
        },
        Delivered::Status(status) => status_answer(status),
    }
}

fn filtered_answer(delivered: Delivered) -> DeliverResponse {
    match delivered {
        Delivered::Block { channel, block } => DeliverResponse {
            r#type: Some(deliver_response::Type::FilteredBlock(filtered(
                &channel, &block,
            ))),
        },
        Delivered::Status(status) => status_answer(status),
    }
}

/// Private data is applied to the node's private state at commit and not kept per block, so
/// a block comes with an empty private data map.
fn private_data_answer(delivered: Delivered) -> DeliverResponse {
    match delivered {
        Delivered::Block { block, .. } => DeliverResponse {
            r#type: Some(deliver_response::Type::BlockAndPrivateData(
                BlockAndPrivateData {
                    block: Some(block),
                    private_data_map: Default::default(),
                },
            )),
        },
        Delivered::Status(status) => status_answer(status),
    }
}

#[tonic::async_trait]
impl deliver_server::Deliver for DeliverService {
    type DeliverStream = Answers;
    type DeliverFilteredStream = Answers;
    type DeliverWithPrivateDataStream = Answers;

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Answers>, Status> {
        self.open(request, EVENT_BLOCK, block_answer)
    }

    async fn deliver_filtered(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Answers>, Status> {
        self.open(request, EVENT_FILTERED_BLOCK, filtered_answer)
    }

    async fn deliver_with_private_data(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Answers>, Status> {
        self.open(request, EVENT_BLOCK, private_data_answer)
    }
}
