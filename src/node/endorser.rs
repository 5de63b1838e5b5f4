//! The `protos.Endorser` service: simulates a proposal on its chaincode and signs the result.

use std::sync::{Arc, Mutex};

use ccvm_proto::Message;
use ccvm_proto::protos::endorser_server::{self, EndorserServer};
use ccvm_proto::protos::{
    ChaincodeAction, ChaincodeEvent, ChaincodeId, Endorsement, ProposalResponse,
    ProposalResponsePayload, Response as ChaincodeResponse, SignedProposal,
};
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, info_span};

use super::access::Access;
use super::committer::TransientStore;
use super::proposal::UnpackedProposal;
use super::tls::client_cert_hash;
use crate::chaincode::{ChaincodeSupport, ExecuteRequest};
use crate::fabric::ERROR_THRESHOLD;
use crate::msp::{Identity, OwnSignatures};
use crate::policy::resource_of;
use crate::sync::lock;

/// The status of a proposal that failed before or while running the chaincode.
const INTERNAL_ERROR: i32 = 500;

/// Endorses proposals with the node's identity.
pub struct EndorserService {
    support: ChaincodeSupport,
    identity: Arc<Identity>,
    transient: Arc<TransientStore>,
    access: Arc<Access>,
    own_signatures: Arc<OwnSignatures>,
}

impl EndorserService {
    /// The service as a tonic server.
    pub(crate) fn server(
        support: ChaincodeSupport,
        identity: Arc<Identity>,
        transient: Arc<TransientStore>,
        access: Arc<Access>,
        own_signatures: Arc<OwnSignatures>,
    ) -> EndorserServer<Self> {
        EndorserServer::new(Self {
            support,
            identity,
            transient,
            access,
            own_signatures,
        })
    }

    async fn endorse(
        &self,
        signed: SignedProposal,
        client_cert_hash: Option<Vec<u8>>,
    ) -> Result<ProposalResponse, String> {
        let proposal = UnpackedProposal::parse(&signed)?;
        self.access
            .check_tls_binding(client_cert_hash.as_deref(), &proposal.tls_cert_hash)
            .map_err(|denied| denied.to_string())?;
        let function = proposal
            .input
            .args
            .first()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .unwrap_or_default();
        let resource = resource_of(self.access.acls(), &proposal.chaincode, &function);
        self.access
            .authorize(
                &resource,
                &proposal.creator,
                &signed.proposal_bytes,
                &signed.signature,
            )
            .map_err(|denied| denied.to_string())?;
        let simulator = self
            .support
            .ledger()
            .new_simulator(&proposal.channel, &proposal.tx_id)
            .map_err(|e| e.for_chaincode())?;
        if simulator.tx_id_committed().map_err(|e| e.for_chaincode())? {
            return Err(format!(
                "duplicate transaction found [{}]: it is already committed",
                proposal.tx_id
            ));
        }
        let simulator = Arc::new(Mutex::new(simulator));
        let completed = self
            .support
            .execute(ExecuteRequest {
                channel: proposal.channel.clone(),
                chaincode: proposal.chaincode.clone(),
                tx_id: proposal.tx_id.clone(),
                input: proposal.input,
                signed_proposal: Some(signed),
                simulator: Arc::clone(&simulator),
                read_only: false,
            })
            .await
            .map_err(|e| e.for_client())?;
        let response = ChaincodeResponse::decode(completed.payload.as_slice())
            .map_err(|e| format!("chaincode sent a malformed response: {e}"))?;
        if response.status >= ERROR_THRESHOLD {
            return Ok(ProposalResponse {
                version: 1,
                response: Some(response),
                ..Default::default()
            });
        }
        let results = lock(&simulator).take_results();
        self.transient.put(&proposal.tx_id, results.private);
        let action = ChaincodeAction {
            results: results.public.encode_to_vec(),
            events: completed
                .chaincode_event
                .map(|event| ChaincodeEvent {
                    chaincode_id: proposal.chaincode.clone(),
                    tx_id: proposal.tx_id.clone(),
                    ..event
                })
                .map(|event| event.encode_to_vec())
                .unwrap_or_default(),
            response: Some(response.clone()),
            chaincode_id: Some(ChaincodeId {
                name: proposal.chaincode,
                ..Default::default()
            }),
        };
        let payload = ProposalResponsePayload {
            proposal_hash: proposal.hash,
            extension: action.encode_to_vec(),
        }
        .encode_to_vec();
        let endorser = self.identity.serialized();
        let signed = [payload.as_slice(), endorser.as_slice()].concat();
        let signature = self.identity.sign(&signed);
        self.own_signatures.record(&payload, &signature);
        Ok(ProposalResponse {
            version: 1,
            timestamp: None,
            response: Some(response),
            payload,
            endorsement: Some(Endorsement {
                endorser,
                signature,
            }),
        })
    }
}

#[tonic::async_trait]
impl endorser_server::Endorser for EndorserService {
    async fn process_proposal(
        &self,
        request: Request<SignedProposal>,
    ) -> Result<Response<ProposalResponse>, Status> {
        let span = info_span!("endorse");
        let client_cert_hash = client_cert_hash(&request);
        let answer = self
            .endorse(request.into_inner(), client_cert_hash)
            .instrument(span)
            .await;
        Ok(Response::new(answer.unwrap_or_else(|message| {
            debug!(%message, "proposal failed");
            ProposalResponse {
                version: 1,
                response: Some(ChaincodeResponse {
                    status: INTERNAL_ERROR,
                    message,
                    payload: Vec::new(),
                }),
                ..Default::default()
            }
        })))
    }
}
