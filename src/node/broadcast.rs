//! `orderer.AtomicBroadcast`: Fabric's ordering service API on the node's client port, so that
//! Fabric's SDKs and `peer chaincode invoke -o` submit transactions and fetch blocks unchanged.

use std::pin::Pin;
use std::sync::Arc;

use ccvm_proto::common::{Envelope, Status as BlockStatus};
use ccvm_proto::orderer::atomic_broadcast_server::{self, AtomicBroadcastServer};
use ccvm_proto::orderer::{BroadcastResponse, DeliverResponse, deliver_response};
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::policy::EVENT_BLOCK;

use super::deliver::{Delivered, Deliverer};
use super::ordering::{Orderer, broadcast_status};
use super::tls::client_cert_hash;

/// Envelopes of one Broadcast stream being ordered at once; the stream is not read further
/// until the oldest is answered, so a client cannot queue more than this.
pub const MAX_BROADCAST_IN_FLIGHT: usize = 64;

/// The ordering service of the node's channels.
pub struct BroadcastService {
    orderer: Arc<Orderer>,
    deliverer: Arc<Deliverer>,
}

impl BroadcastService {
    pub(crate) fn server(
        orderer: Arc<Orderer>,
        deliverer: Arc<Deliverer>,
    ) -> AtomicBroadcastServer<Self> {
        AtomicBroadcastServer::new(Self { orderer, deliverer })
    }
}

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl atomic_broadcast_server::AtomicBroadcast for BroadcastService {
    type BroadcastStream = Answers<BroadcastResponse>;
    type DeliverStream = Answers<DeliverResponse>;

    /// Answers each envelope, in order, once its block is committed; the first refusal is
    /// answered and ends the stream, as Fabric's orderer does.
    async fn broadcast(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let envelopes = request.into_inner();
        let (answers, answered) = mpsc::channel(MAX_BROADCAST_IN_FLIGHT);
        tokio::spawn(answer_broadcasts(
            Arc::clone(&self.orderer),
            envelopes,
            client_cert_hash,
            answers,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(answered))))
    }

    /// The channel's blocks, as the orderer delivers them to peers and clients.
    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let stream = self.deliverer.open(
            request.into_inner(),
            client_cert_hash,
            EVENT_BLOCK,
            |delivered| DeliverResponse {
                r#type: Some(match delivered {
                    Delivered::Block { block, .. } => deliver_response::Type::Block(block),
                    Delivered::Status(status) => deliver_response::Type::Status(status as i32),
                }),
            },
        )?;
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Orders the envelopes of one Broadcast stream, up to [`MAX_BROADCAST_IN_FLIGHT`] at once,
/// and sends their answers in order.
async fn answer_broadcasts(
    orderer: Arc<Orderer>,
    mut envelopes: Streaming<Envelope>,
    client_cert_hash: Option<Vec<u8>>,
    answers: mpsc::Sender<Result<BroadcastResponse, Status>>,
) {
    let mut in_flight = FuturesOrdered::new();
    let mut reading = true;
    while reading || !in_flight.is_empty() {
        tokio::select! {
            received = envelopes.message(), if reading && in_flight.len() < MAX_BROADCAST_IN_FLIGHT => {
                match received {
                    Ok(Some(envelope)) => {
                        let orderer = Arc::clone(&orderer);
                        let client_cert_hash = client_cert_hash.clone();
                        in_flight.push_back(async move {
                            orderer.order(envelope, client_cert_hash.as_deref()).await
                        });
                    }
                    Ok(None) => reading = false,
                    Err(status) => {
                        debug!(%status, "broadcast stream ended");
                        reading = false;
                    }
                }
            }
            Some(ordered) = in_flight.next(), if !in_flight.is_empty() => {
                let answer = match ordered {
                    Ok(_) => BroadcastResponse {
                        status: BlockStatus::Success as i32,
                        info: String::new(),
                    },
                    Err(refusal) => BroadcastResponse {
                        status: broadcast_status(&refusal) as i32,
                        info: refusal.to_string(),
                    },
                };
                let refused = answer.status != BlockStatus::Success as i32;
                if answers.send(Ok(answer)).await.is_err() || refused {
                    return;
                }
            }
        }
    }
}
