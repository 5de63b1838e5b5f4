//! The node's ordering service front door: what every path that orders a transaction checks
//! (`ccvm.Committer`, `orderer.AtomicBroadcast`, `gateway.Gateway/Submit`), and the
//! `ccvm.Committer` service itself.

use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::ccvm::SubmitResponse;
use ccvm_proto::ccvm::committer_server::{self, CommitterServer};
use ccvm_proto::common::{
    ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader, Status as BlockStatus,
};
use ccvm_proto::protos::TxValidationCode;
use tonic::{Request, Response, Status};

use super::access::AccessDenied;
use super::channels::Channels;
use super::committer::Queued;
use super::status::ServiceError;
use super::tls::client_cert_hash;
use super::transient::TransientStore;
use crate::ledger::{PendingTx, TxOutcome};
use crate::policy::APPLICATION_PREFIX;

/// Checks signed transaction envelopes and orders the admitted ones into blocks.
pub(crate) struct Orderer {
    transient: Arc<TransientStore>,
    channels: Arc<Channels>,
}

impl Orderer {
    pub fn new(transient: Arc<TransientStore>, channels: Arc<Channels>) -> Self {
        Self {
            transient,
            channels,
        }
    }

    /// Admits `envelope` as [`Orderer::admit`] does, orders it, and resolves once its block is
    /// committed. The outcome may be any validation code: ordering does not endorse.
    ///
    /// # Errors
    /// Why it was not admitted, or [`ServiceError::Unavailable`] when the node is stopping.
    pub async fn order(
        &self,
        envelope: Envelope,
        client_cert_hash: Option<&[u8]>,
    ) -> Result<TxOutcome, ServiceError> {
        self.admit(envelope, client_cert_hash)
            .await?
            .committed()
            .await
            .map_err(ServiceError::Unavailable)
    }

    /// Admits `envelope` as Fabric's orderer does (a readable header of an endorser
    /// transaction, for a channel of this node, within the channel's
    /// `BatchSize.AbsoluteMaxBytes`, bound to the client's TLS certificate when required,
    /// signed by a valid identity that satisfies the channel's `Writers`) and resolves once it
    /// is queued for its channel's next block, as Fabric's orderer acknowledges a broadcast once
    /// accepted: the returned [`Queued`] tells its commit.
    ///
    /// # Errors
    /// Why it was not admitted, or [`ServiceError::Unavailable`] when the node is stopping.
    pub async fn admit(
        &self,
        envelope: Envelope,
        client_cert_hash: Option<&[u8]>,
    ) -> Result<Queued, ServiceError> {
        let (header, creator) = Payload::decode(envelope.payload.as_slice())
            .ok()
            .and_then(|payload| payload.header)
            .and_then(|header| {
                let channel = ChannelHeader::decode(header.channel_header.as_slice()).ok()?;
                let signature = SignatureHeader::decode(header.signature_header.as_slice()).ok()?;
                Some((channel, signature.creator))
            })
            .ok_or_else(|| ServiceError::Malformed("envelope has no readable header".to_owned()))?;
        if header.r#type != HeaderType::EndorserTransaction as i32 {
            return Err(ServiceError::Malformed(format!(
                "this ordering service orders endorser transactions, not header type {}: a node's \
                 channels keep the configuration they were created with",
                HeaderType::try_from(header.r#type).map_or_else(
                    |_| header.r#type.to_string(),
                    |kind| kind.as_str_name().to_owned()
                )
            )));
        }
        let channel = self
            .channels
            .get(&header.channel_id)
            .ok_or_else(|| ServiceError::NoChannel(header.channel_id.clone()))?;
        let size = envelope.encoded_len();
        let limit = channel.config.batching.absolute_max_bytes;
        if u32::try_from(size).map_or(true, |size| size > limit) {
            return Err(ServiceError::Malformed(format!(
                "message payload is {size} bytes and exceeds maximum allowed {limit} bytes"
            )));
        }
        let access = &channel.access;
        access.check_tls_binding(client_cert_hash, &header.tls_cert_hash)?;
        let writer = access
            .trust
            .verify(&creator, &envelope.payload, &envelope.signature)
            .map_err(AccessDenied::from)?;
        let writers = format!("{APPLICATION_PREFIX}Writers");
        access
            .policies
            .check(&writers, &[writer])
            .map_err(|reason| AccessDenied::Policy {
                resource: "the ordering service".to_owned(),
                reason,
            })?;
        let private = self.transient.take(&header.tx_id);
        channel
            .cutter
            .queue_verified(PendingTx {
                envelope,
                private,
                validation: TxValidationCode::Valid,
            })
            .await
            .map_err(ServiceError::Unavailable)
    }
}

/// The status an orderer answers a refused envelope with, as Fabric's `ClassifyError` does.
pub(crate) fn broadcast_status(refusal: &ServiceError) -> BlockStatus {
    match refusal {
        ServiceError::AccessDenied(_) | ServiceError::Unsigned(_) => BlockStatus::Forbidden,
        ServiceError::NoChannel(_) => BlockStatus::NotFound,
        ServiceError::Unavailable(_) => BlockStatus::ServiceUnavailable,
        ServiceError::Malformed(_) => BlockStatus::BadRequest,
        _ => BlockStatus::InternalServerError,
    }
}

/// The `ccvm.Committer` service: orders one envelope and answers with its commit outcome in
/// the same call.
pub struct CommitterService {
    orderer: Arc<Orderer>,
}

impl CommitterService {
    pub(crate) fn server(orderer: Arc<Orderer>) -> CommitterServer<Self> {
        CommitterServer::new(Self { orderer })
    }
}

#[tonic::async_trait]
impl committer_server::Committer for CommitterService {
    async fn submit(&self, request: Request<Envelope>) -> Result<Response<SubmitResponse>, Status> {
        let client_cert_hash = client_cert_hash(&request);
        let outcome = self
            .orderer
            .order(request.into_inner(), client_cert_hash.as_deref())
            .await?;
        Ok(Response::new(SubmitResponse {
            tx_id: outcome.tx_id,
            validation_code: outcome.code as i32,
            block_number: outcome.block,
        }))
    }
}
