//! `gateway.Gateway`: Fabric's client API of one peer (evaluate, endorse, submit, commit status,
//! chaincode events), so that `@hyperledger/fabric-gateway` applications run unchanged. The node
//! is the only endorser and its own orderer, so every call is served in this process; codes,
//! texts and `gateway.ErrorDetail`s follow Fabric's gateway.

use std::pin::Pin;
use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::common::Envelope;
use ccvm_proto::gateway::gateway_server::{self, GatewayServer};
use ccvm_proto::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, CommitStatusResponse,
    EndorseRequest, EndorseResponse, ErrorDetail, EvaluateRequest, EvaluateResponse,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use ccvm_proto::google::rpc::Status as RichStatus;
use ccvm_proto::orderer::seek_position::Type as SeekType;
use ccvm_proto::protos::{Response as ChaincodeResponse, SignedProposal};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tracing::debug;

use super::block_content::transactions;
use super::block_feed::{BlockFeed, FeedError};
use super::channels::Channels;
use super::endorser::{Endorser, ProposalFailure, Purpose};
use super::ordering::{Orderer, broadcast_status};
use super::proposal::UnpackedProposal;
use super::status::ServiceError;
use super::tls::client_cert_hash;
use crate::fabric::{ERROR_THRESHOLD, endorsed_transaction};
use crate::ledger::Ledger;
use crate::policy::{GATEWAY_CHAINCODE_EVENTS, GATEWAY_COMMIT_STATUS};

/// Commit status requests waiting for their transaction at once; more are refused with
/// `RESOURCE_EXHAUSTED` until one ends.
pub const MAX_COMMIT_STATUS_WAITERS: usize = 4096;
/// Chaincode event streams open at once.
pub const MAX_CHAINCODE_EVENT_STREAMS: usize = 1024;
/// Responses of one chaincode event stream held for a client that does not read; the stream
/// reads no further blocks until it does.
const EVENT_STREAM_BUFFER: usize = 4;

/// The type URL of a `gateway.ErrorDetail` in a status's details.
const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/gateway.ErrorDetail";

/// The node's gateway.
pub struct GatewayService {
    endorser: Arc<Endorser>,
    orderer: Arc<Orderer>,
    ledger: Ledger,
    channels: Arc<Channels>,
    /// The node's organization, as endorser and orderer in error details.
    msp_id: String,
    /// The node's client address, as endorser and orderer in error details.
    address: String,
    commit_waiters: Arc<Semaphore>,
    event_streams: Arc<Semaphore>,
    stop: CancellationToken,
}

impl GatewayService {
    pub(crate) fn server(
        endorser: Arc<Endorser>,
        orderer: Arc<Orderer>,
        ledger: Ledger,
        channels: Arc<Channels>,
        msp_id: String,
        address: String,
        stop: CancellationToken,
    ) -> GatewayServer<Self> {
        GatewayServer::new(Self {
            endorser,
            orderer,
            ledger,
            channels,
            msp_id,
            address,
            commit_waiters: Arc::new(Semaphore::new(MAX_COMMIT_STATUS_WAITERS)),
            event_streams: Arc::new(Semaphore::new(MAX_CHAINCODE_EVENT_STREAMS)),
            stop,
        })
    }

    /// A failed call whose cause is this node's answer `detail`, attached as Fabric's gateway
    /// attaches a failed endorser's or orderer's answer.
    fn failed(&self, code: Code, message: impl Into<String>, detail: String) -> Status {
        let message = message.into();
        let detail = ErrorDetail {
            address: self.address.clone(),
            msp_id: self.msp_id.clone(),
            message: detail,
        };
        let rich = RichStatus {
            code: code as i32,
            message: message.clone(),
            details: vec![prost_types::Any {
                type_url: ERROR_DETAIL_TYPE.to_owned(),
                value: detail.encode_to_vec(),
            }],
        };
        Status::with_details(code, message, rich.encode_to_vec().into())
    }

    fn has_channel(&self, channel: &str) -> bool {
        self.channels.get(channel).is_some()
    }
}

/// How Fabric's gateway words a chaincode's error response.
fn chaincode_error(response: &ChaincodeResponse) -> String {
    format!(
        "chaincode response {}, {}",
        response.status, response.message
    )
}

fn signed_proposal(
    proposed: Option<SignedProposal>,
    missing: &'static str,
) -> Result<SignedProposal, Status> {
    proposed
        .filter(|signed| !signed.proposal_bytes.is_empty())
        .ok_or_else(|| Status::invalid_argument(missing))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<ChaincodeEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl gateway_server::Gateway for GatewayService {
    type ChaincodeEventsStream = EventStream;

    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let request = request.into_inner();
        let signed = signed_proposal(
            request.proposed_transaction,
            "failed to unpack transaction proposal: a signed proposal is required",
        )?;
        let proposal = UnpackedProposal::parse(&signed).map_err(|e| {
            Status::invalid_argument(format!("failed to unpack transaction proposal: {e}"))
        })?;
        if !self.has_channel(&proposal.channel) {
            return Err(Status::unavailable(format!(
                "failed to get config for channel [{0}]: channel {0} does not exist",
                proposal.channel
            )));
        }
        if !request.target_organizations.is_empty()
            && !request.target_organizations.contains(&self.msp_id)
        {
            return Err(Status::failed_precondition(format!(
                "no peers available to evaluate chaincode {} in channel {}",
                proposal.chaincode, proposal.channel
            )));
        }
        let processed = self
            .endorser
            .process(
                proposal,
                signed,
                client_cert_hash.as_deref(),
                Purpose::Evaluate,
            )
            .await;
        let returned = "evaluate call to endorser returned error: ";
        match processed {
            Ok(response) => {
                let result = response.response.unwrap_or_default();
                if result.status >= ERROR_THRESHOLD {
                    let detail = chaincode_error(&result);
                    return Err(self.failed(Code::Unknown, format!("{returned}{detail}"), detail));
                }
                Ok(Response::new(EvaluateResponse {
                    result: Some(result),
                }))
            }
            Err(ProposalFailure::Refused(reason)) => Err(self.failed(
                Code::FailedPrecondition,
                format!("{returned}{reason}"),
                reason,
            )),
            Err(ProposalFailure::Simulation(reason)) => Err(self.failed(
                Code::Aborted,
                "failed to evaluate transaction, see attached details for more info",
                reason,
            )),
        }
    }

    async fn endorse(
        &self,
        request: Request<EndorseRequest>,
    ) -> Result<Response<EndorseResponse>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let request = request.into_inner();
        let signed = signed_proposal(
            request.proposed_transaction,
            "the proposed transaction must contain a signed proposal",
        )?;
        let mut proposal = UnpackedProposal::parse(&signed).map_err(Status::invalid_argument)?;
        let elsewhere: Vec<&str> = request
            .endorsing_organizations
            .iter()
            .filter(|org| **org != self.msp_id)
            .map(String::as_str)
            .collect();
        if !elsewhere.is_empty() {
            return Err(Status::unavailable(format!(
                "failed to find any endorsing peers for org(s): {}",
                elsewhere.join(", ")
            )));
        }
        if !self.has_channel(&proposal.channel) {
            return Err(Status::failed_precondition(format!(
                "no combination of peers can be derived which satisfy the endorsement policy: channel {} does not exist",
                proposal.channel
            )));
        }
        let header = std::mem::take(&mut proposal.header);
        let payload_without_transient = std::mem::take(&mut proposal.payload_without_transient);
        let processed = self
            .endorser
            .process(
                proposal,
                signed,
                client_cert_hash.as_deref(),
                Purpose::Endorse,
            )
            .await;
        let not_endorsed = |detail| {
            self.failed(
                Code::Aborted,
                "failed to endorse transaction, see attached details for more info",
                detail,
            )
        };
        let endorsed = match processed {
            Ok(endorsed) => endorsed,
            Err(ProposalFailure::Refused(reason) | ProposalFailure::Simulation(reason)) => {
                return Err(not_endorsed(reason));
            }
        };
        let result = endorsed.response.clone().unwrap_or_default();
        if result.status >= ERROR_THRESHOLD {
            return Err(not_endorsed(chaincode_error(&result)));
        }
        let payload = endorsed_transaction(
            header,
            payload_without_transient,
            endorsed.payload,
            endorsed.endorsement.into_iter().collect(),
        );
        Ok(Response::new(EndorseResponse {
            prepared_transaction: Some(Envelope {
                payload: payload.encode_to_vec(),
                signature: Vec::new(),
            }),
        }))
    }

    /// Answers once the transaction is admitted and queued for a block, as Fabric's Gateway
    /// answers once its orderer accepts it; `CommitStatus` waits for the commit, so a client's
    /// status request overlaps the block's commit.
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let envelope = request
            .into_inner()
            .prepared_transaction
            .ok_or_else(|| Status::invalid_argument("a prepared transaction is required"))?;
        if envelope.signature.is_empty() {
            return Err(Status::invalid_argument(
                "prepared transaction must be signed",
            ));
        }
        match self
            .orderer
            .admit(envelope, client_cert_hash.as_deref())
            .await
        {
            Ok(_) => Ok(Response::new(SubmitResponse {})),
            Err(refusal) => {
                let status = broadcast_status(&refusal);
                let info = refusal.client_text();
                if (status as i32) < 500 {
                    Err(Status::aborted(format!(
                        "received unsuccessful response from orderer: status={}, info={info}",
                        status.as_str_name()
                    )))
                } else {
                    Err(self.failed(
                        Code::Unavailable,
                        "no orderers could successfully process transaction",
                        info,
                    ))
                }
            }
        }
    }

    async fn commit_status(
        &self,
        request: Request<SignedCommitStatusRequest>,
    ) -> Result<Response<CommitStatusResponse>, Status> {
        let signed = request.into_inner();
        if signed.request.is_empty() {
            return Err(Status::invalid_argument(
                "a commit status request is required",
            ));
        }
        let request = CommitStatusRequest::decode(signed.request.as_slice())
            .map_err(|e| Status::invalid_argument(format!("invalid status request: {e}")))?;
        let channel = self.channels.get(&request.channel_id).ok_or_else(|| {
            Status::aborted(format!("channel does not exist: {}", request.channel_id))
        })?;
        channel
            .access
            .authorize(
                GATEWAY_COMMIT_STATUS,
                &request.identity,
                &signed.request,
                &signed.signature,
            )
            .map_err(|denied| Status::permission_denied(denied.to_string()))?;
        let _waiting = Arc::clone(&self.commit_waiters)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "{MAX_COMMIT_STATUS_WAITERS} commit status requests are already waiting on this node"
                ))
            })?;
        let mut feed = BlockFeed::new(self.ledger.clone(), request.channel_id, self.stop.clone());
        let committed = feed
            .committed_tx(&request.transaction_id)
            .await
            .map_err(feed_status)?;
        Ok(Response::new(CommitStatusResponse {
            result: committed.code,
            block_number: committed.block,
        }))
    }

    async fn chaincode_events(
        &self,
        request: Request<SignedChaincodeEventsRequest>,
    ) -> Result<Response<Self::ChaincodeEventsStream>, Status> {
        let signed = request.into_inner();
        if signed.request.is_empty() {
            return Err(Status::invalid_argument(
                "a chaincode events request is required",
            ));
        }
        let request = ChaincodeEventsRequest::decode(signed.request.as_slice()).map_err(|e| {
            Status::invalid_argument(format!("invalid chaincode events request: {e}"))
        })?;
        let channel = self.channels.get(&request.channel_id).ok_or_else(|| {
            Status::not_found(format!("channel does not exist: {}", request.channel_id))
        })?;
        channel
            .access
            .authorize(
                GATEWAY_CHAINCODE_EVENTS,
                &request.identity,
                &signed.request,
                &signed.signature,
            )
            .map_err(|denied| Status::permission_denied(denied.to_string()))?;
        let (start, after) = self.events_start(&request)?;
        let streaming = Arc::clone(&self.event_streams)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "{MAX_CHAINCODE_EVENT_STREAMS} chaincode event streams are already open on this node"
                ))
            })?;
        let (responses, stream) = mpsc::channel(EVENT_STREAM_BUFFER);
        let feed = BlockFeed::new(
            self.ledger.clone(),
            request.channel_id.clone(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            let _streaming = streaming;
            send_chaincode_events(feed, start, after, request.chaincode_id, responses).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }
}

impl GatewayService {
    /// The block a chaincode event stream starts at: the next commit when unset, a given
    /// number, or the block of `after_transaction_id` when the channel has it; then also the
    /// transaction whose events are the last to skip.
    fn events_start(
        &self,
        request: &ChaincodeEventsRequest,
    ) -> Result<(u64, Option<String>), Status> {
        if !request.after_transaction_id.is_empty()
            && let Some(committed) = self
                .ledger
                .committed_tx(&request.channel_id, &request.after_transaction_id)
                .map_err(|e| Status::aborted(ServiceError::from(e).client_text()))?
        {
            return Ok((committed.block, Some(request.after_transaction_id.clone())));
        }
        let position = request
            .start_position
            .as_ref()
            .and_then(|position| position.r#type.as_ref());
        let start = match position {
            None | Some(SeekType::NextCommit(_)) => self
                .ledger
                .chain_info(&request.channel_id)
                .map(|info| info.height)
                .map_err(|e| Status::aborted(ServiceError::from(e).client_text()))?,
            Some(SeekType::Specified(specified)) => specified.number,
            Some(SeekType::Newest(_)) => {
                return Err(Status::invalid_argument(
                    "invalid start position type: newest",
                ));
            }
            Some(SeekType::Oldest(_)) => {
                return Err(Status::invalid_argument(
                    "invalid start position type: oldest",
                ));
            }
        };
        Ok((start, None))
    }
}

/// Sends, block by block from `start`, the events of `chaincode` from valid transactions,
/// skipping blocks with none, until the client goes or the node stops. With `after`, the
/// transactions up to and including that one are skipped.
async fn send_chaincode_events(
    mut feed: BlockFeed,
    start: u64,
    mut after: Option<String>,
    chaincode: String,
    responses: mpsc::Sender<Result<ChaincodeEventsResponse, Status>>,
) {
    let mut number = start;
    loop {
        let block = tokio::select! {
            () = responses.closed() => return,
            block = feed.block(number) => block,
        };
        let block = match block {
            Ok(block) => block,
            Err(FeedError::Stopped) => return,
            Err(e) => {
                let _ = responses.send(Err(feed_status(e))).await;
                return;
            }
        };
        let mut events = Vec::new();
        for tx in transactions(&block) {
            if let Some(last_skipped) = &after {
                if tx.tx_id == *last_skipped {
                    after = None;
                }
                continue;
            }
            if tx.is_valid() {
                events.extend(
                    tx.events
                        .into_iter()
                        .filter(|event| event.chaincode_id == chaincode),
                );
            }
        }
        if !events.is_empty() {
            let response = ChaincodeEventsResponse {
                events,
                block_number: number,
            };
            if responses.send(Ok(response)).await.is_err() {
                debug!("chaincode event stream closed by the client");
                return;
            }
        }
        number += 1;
    }
}

fn feed_status(error: FeedError) -> Status {
    match error {
        FeedError::Stopped => Status::unavailable(error.to_string()),
        FeedError::Ledger(e) => Status::aborted(ServiceError::from(e).client_text()),
    }
}
