//! Endorsement: simulates a proposal on its chaincode and signs the result, for the
//! `protos.Endorser` service and the gateway alike.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ccvm_proto::Message;
use ccvm_proto::protos::endorser_server::{self, EndorserServer};
use ccvm_proto::protos::{
    ChaincodeAction, ChaincodeEvent, ChaincodeId, Endorsement, ProposalResponse,
    ProposalResponsePayload, Response as ChaincodeResponse, SignedProposal,
};
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, info_span};

use super::access::Access;
use super::channels::Channels;
use super::lifecycle_checks::check_lifecycle_call;
use super::local_lifecycle::LocalLifecycle;
use super::proposal::UnpackedProposal;
use super::system_chaincodes::{CSCC, LIFECYCLE, QSCC, built_in};
use super::tls::client_cert_hash;
use super::transient::TransientStore;
use crate::chaincode::{ChaincodeSupport, ExecuteRequest};
use crate::fabric::ERROR_THRESHOLD;
use crate::metrics::metrics;
use crate::msp::{Identity, OwnSignatures};
use crate::policy::resource_of;
use crate::sync::lock;

/// The status of a proposal that failed before or while running the chaincode.
const INTERNAL_ERROR: i32 = 500;
/// The status of a proposal the node answered itself.
const SUCCESS: i32 = 200;

/// What a proposal is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Its result is signed and its private data kept, for a transaction to commit.
    Endorse,
    /// Only its chaincode's answer is wanted: nothing is signed or kept.
    Evaluate,
}

/// Why a proposal has no chaincode answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProposalFailure {
    /// It is malformed, its signer is refused, or its transaction is already committed.
    Refused(String),
    /// It was accepted but not simulated: no such channel, or its chaincode failed to start
    /// or to answer.
    Simulation(String),
}

impl ProposalFailure {
    fn into_message(self) -> String {
        match self {
            Self::Refused(message) | Self::Simulation(message) => message,
        }
    }
}

/// Whether a call of `function` of `chaincode` reads the channel its first argument names, so
/// that a channel-less proposal of it is about that channel: qscc's queries, and cscc's
/// configuration queries.
fn asks_about_named_channel(chaincode: &str, function: &str) -> bool {
    chaincode == QSCC
        || (chaincode == CSCC && matches!(function, "GetConfigBlock" | "GetChannelConfig"))
}

/// Runs proposals with the node's identity.
pub(crate) struct Endorser {
    support: ChaincodeSupport,
    identity: Arc<Identity>,
    transient: Arc<TransientStore>,
    channels: Arc<Channels>,
    /// Who may call a system chaincode without a channel.
    local: Arc<Access>,
    /// Answers `_lifecycle`'s calls about the node's packages.
    local_lifecycle: Arc<LocalLifecycle>,
    own_signatures: Arc<OwnSignatures>,
}

impl Endorser {
    pub fn new(
        support: ChaincodeSupport,
        identity: Arc<Identity>,
        transient: Arc<TransientStore>,
        channels: Arc<Channels>,
        local: Arc<Access>,
        local_lifecycle: Arc<LocalLifecycle>,
        own_signatures: Arc<OwnSignatures>,
    ) -> Self {
        Self {
            support,
            identity,
            transient,
            channels,
            local,
            local_lifecycle,
            own_signatures,
        }
    }

    /// Checks `proposal` (decoded from `signed`) as Fabric's endorser does, runs it, and
    /// answers with the chaincode's response: endorsed when it succeeded and `purpose` is
    /// [`Purpose::Endorse`], bare otherwise.
    pub async fn process(
        &self,
        mut proposal: UnpackedProposal,
        signed: SignedProposal,
        client_cert_hash: Option<&[u8]>,
        purpose: Purpose,
    ) -> Result<ProposalResponse, ProposalFailure> {
        metrics().proposals_received.inc();
        let refused = |message: String| ProposalFailure::Refused(message);
        let function = proposal
            .input
            .args
            .first()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .unwrap_or_default();
        if proposal.channel.is_empty() && asks_about_named_channel(&proposal.chaincode, &function) {
            // A channel-less query of a channel's chain or configuration (`peer channel
            // getinfo`) is about the channel it names.
            proposal.channel = proposal
                .input
                .args
                .get(1)
                .map(|channel| String::from_utf8_lossy(channel).into_owned())
                .unwrap_or_default();
        }
        let (access, purpose) = if proposal.channel.is_empty() {
            // A channel-less call of a system chaincode is about the node: it is checked
            // against the node's organizations and its answer is not endorsed.
            if built_in(&proposal.chaincode).is_none() {
                return Err(ProposalFailure::Simulation(format!(
                    "channel '' not found: only system chaincodes are called without a channel, not {}",
                    proposal.chaincode
                )));
            }
            (Arc::clone(&self.local), Purpose::Evaluate)
        } else {
            let channel = self.channels.get(&proposal.channel).ok_or_else(|| {
                ProposalFailure::Simulation(format!("channel '{}' not found", proposal.channel))
            })?;
            (Arc::clone(&channel.access), purpose)
        };
        access
            .check_tls_binding(client_cert_hash, &proposal.tls_cert_hash)
            .map_err(|denied| refused(denied.to_string()))?;
        let resource = resource_of(access.acls(), &proposal.chaincode, &function);
        access
            .authorize(
                &resource,
                &proposal.creator,
                &signed.proposal_bytes,
                &signed.signature,
            )
            .map_err(|denied| refused(denied.to_string()))?;
        if proposal.chaincode == LIFECYCLE && !proposal.channel.is_empty() {
            let ledger = self.support.ledger();
            check_lifecycle_call(
                &access.policies,
                self.identity.msp_id(),
                || {
                    ledger
                        .new_simulator(&proposal.channel, "")
                        .map_err(|e| e.to_string())
                },
                &function,
                &proposal.input.args,
            )
            .map_err(refused)?;
        }
        let started = Instant::now();
        let (channel, chaincode) = (proposal.channel.clone(), proposal.chaincode.clone());
        let answer = if channel.is_empty() && chaincode == LIFECYCLE {
            self.answer_locally(function, proposal.input.args).await
        } else {
            self.run(proposal, signed, purpose).await
        };
        let success = answer.as_ref().is_ok_and(|answer| {
            answer
                .response
                .as_ref()
                .is_some_and(|response| response.status < ERROR_THRESHOLD)
        });
        if success {
            metrics().successful_proposals.inc();
        }
        metrics()
            .proposal_duration
            .with_label_values(&[
                channel.as_str(),
                chaincode.as_str(),
                if success { "true" } else { "false" },
            ])
            .observe(started.elapsed().as_secs_f64());
        answer
    }

    /// Answers a channel-less call of `_lifecycle` about the node's packages, unendorsed.
    async fn answer_locally(
        &self,
        function: String,
        mut args: Vec<Vec<u8>>,
    ) -> Result<ProposalResponse, ProposalFailure> {
        let argument = if args.len() > 1 {
            args.swap_remove(1)
        } else {
            Vec::new()
        };
        let local = Arc::clone(&self.local_lifecycle);
        let payload = tokio::task::spawn_blocking(move || local.answer(&function, &argument))
            .await
            .map_err(|e| ProposalFailure::Simulation(format!("the lifecycle task failed: {e}")))?
            .map_err(ProposalFailure::Simulation)?;
        Ok(ProposalResponse {
            version: 1,
            response: Some(ChaincodeResponse {
                status: SUCCESS,
                message: String::new(),
                payload,
            }),
            ..Default::default()
        })
    }

    /// Simulates an accepted proposal and, for [`Purpose::Endorse`], endorses its results.
    async fn run(
        &self,
        proposal: UnpackedProposal,
        signed: SignedProposal,
        purpose: Purpose,
    ) -> Result<ProposalResponse, ProposalFailure> {
        let refused = |message: String| ProposalFailure::Refused(message);
        let ledger = self.support.ledger();
        let simulator = if proposal.channel.is_empty() {
            ledger.channel_less_simulator(&proposal.tx_id)
        } else {
            ledger.new_simulator(&proposal.channel, &proposal.tx_id)
        }
        .map_err(|e| ProposalFailure::Simulation(e.for_chaincode()))?;
        if simulator
            .tx_id_committed()
            .map_err(|e| ProposalFailure::Simulation(e.for_chaincode()))?
        {
            return Err(refused(format!(
                "duplicate transaction found [{}]: it is already committed",
                proposal.tx_id
            )));
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
            .map_err(|e| ProposalFailure::Simulation(e.to_string()))?;
        let response = ChaincodeResponse::decode(completed.payload.as_slice()).map_err(|e| {
            ProposalFailure::Simulation(format!("chaincode sent a malformed response: {e}"))
        })?;
        if response.status >= ERROR_THRESHOLD || purpose == Purpose::Evaluate {
            return Ok(ProposalResponse {
                version: 1,
                response: Some(response),
                ..Default::default()
            });
        }
        let results = lock(&simulator).take_results();
        self.transient
            .put(&proposal.tx_id, results.private)
            .map_err(|full| ProposalFailure::Simulation(full.to_string()))?;
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

/// The `protos.Endorser` service.
pub struct EndorserService {
    endorser: Arc<Endorser>,
}

impl EndorserService {
    /// The service as a tonic server.
    pub(crate) fn server(endorser: Arc<Endorser>) -> EndorserServer<Self> {
        EndorserServer::new(Self { endorser })
    }

    async fn endorse(
        &self,
        signed: SignedProposal,
        client_cert_hash: Option<Vec<u8>>,
    ) -> Result<ProposalResponse, ProposalFailure> {
        let proposal = UnpackedProposal::parse(&signed).map_err(ProposalFailure::Refused)?;
        self.endorser
            .process(
                proposal,
                signed,
                client_cert_hash.as_deref(),
                Purpose::Endorse,
            )
            .await
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
        Ok(Response::new(answer.unwrap_or_else(|failure| {
            let message = failure.into_message();
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
