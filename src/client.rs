//! A client of a ccvm node: builds and signs proposals like Fabric's SDKs, asks the endorser, and
//! submits endorsed transactions to the committer. The CLI, the tests and the benchmarks use it.

use std::collections::HashMap;

use ccvm_proto::Message;
use ccvm_proto::ccvm::admin_client::AdminClient;
use ccvm_proto::ccvm::committer_client::CommitterClient;
use ccvm_proto::ccvm::{
    CreateChannelRequest, InstallPackageRequest, InstalledPackage, LaunchEvent, LaunchRequest,
    ListPackagesRequest, ListRunningRequest, ListSystemChaincodesRequest,
    ReloadSystemChaincodeRequest, SubmitResponse, SystemChaincode,
};
use ccvm_proto::common::{ChannelHeader, Envelope, Header, HeaderType, SignatureHeader};
use ccvm_proto::gateway::gateway_client::GatewayClient;
use ccvm_proto::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, EndorseRequest,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest,
};
use ccvm_proto::protos::endorser_client::EndorserClient;
use ccvm_proto::protos::{
    ChaincodeHeaderExtension, ChaincodeId, ChaincodeInput, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, ChaincodeSpec, Endorsement, Proposal, ProposalResponse, Response,
    SignedProposal, TxValidationCode, chaincode_spec,
};
use rand::RngCore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity};

use crate::fabric::{
    DEFAULT_MAX_GRPC_MESSAGE_BYTES, ERROR_THRESHOLD, compute_tx_id, endorsed_transaction,
};
use crate::msp::Identity;
use crate::signed_call::{self, ADMIN_REQUEST_METADATA};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialed.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// A call to the node failed.
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    /// The chaincode (or the endorser) answered with an error status.
    #[error("chaincode returned status {status}: {message}")]
    Chaincode {
        /// The status, 400 or higher.
        status: i32,
        /// The message.
        message: String,
    },
    /// The transaction was committed but marked invalid.
    #[error("transaction {tx_id} is invalid: {code}")]
    Invalid {
        /// The transaction id.
        tx_id: String,
        /// The validation code's name.
        code: String,
    },
    /// An endorser (counted from 1 after the first) answered a proposal with a different result
    /// than the first endorser.
    #[error(
        "ProposalResponsePayloads do not match: endorser {0} after the first simulated a different result"
    )]
    PayloadMismatch(usize),
    /// The arguments given are not `{"Args":[...]}` or `{"function":...,"Args":[...]}`.
    #[error("invalid chaincode arguments: {0}")]
    Args(String),
}

/// How a client reaches a node whose client port serves TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA certificates (PEM) the node's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// The client's TLS certificate and key (PEM), for a node that requires client
    /// authentication; proposals and transactions then carry the certificate's hash.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// SHA-256 of the client certificate, for a channel header's `tls_cert_hash`.
    fn cert_hash(&self) -> Vec<u8> {
        self.client
            .as_ref()
            .and_then(|(cert, _)| CertificateDer::from_pem_slice(cert).ok())
            .map(|der| Sha256::digest(der.as_ref()).to_vec())
            .unwrap_or_default()
    }
}

/// Opens a gRPC channel to a node, over TLS when `tls` is given.
async fn dial(addr: &str, tls: Option<&ClientTls>) -> Result<Channel, ClientError> {
    let connect_error = |source| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(connect_error)?
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some((cert, key)) = &tls.client {
            config = config.identity(TlsIdentity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(config).map_err(connect_error)?;
    }
    endpoint.connect().await.map_err(connect_error)
}

/// A connection to a node's operator service, `ccvm.Admin`, signing each call as an admin.
pub struct Admin {
    client: AdminClient<Channel>,
    identity: Identity,
}

impl Admin {
    /// Connects to the node at `addr` (its client address), signing as `identity`, which must
    /// be an admin of the node's organization.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the node cannot be reached.
    pub async fn connect(addr: &str, identity: Identity) -> Result<Self, ClientError> {
        Self::connect_with(addr, identity, None).await
    }

    /// Connects as [`Admin::connect`] does, over TLS when `tls` is given.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the node cannot be reached.
    pub async fn connect_with(
        addr: &str,
        identity: Identity,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            client: AdminClient::new(dial(addr, tls).await?)
                .max_decoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES),
            identity,
        })
    }

    /// `request` to `method`, signed.
    fn signed<T: Message>(&self, method: &str, request: T) -> tonic::Request<T> {
        let envelope = signed_call::sign(&self.identity, method, &request);
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert_bin(
            ADMIN_REQUEST_METADATA,
            MetadataValue::from_bytes(&envelope.encode_to_vec()),
        );
        request
    }

    /// The node's system chaincodes.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn system_chaincodes(&mut self) -> Result<Vec<SystemChaincode>, ClientError> {
        let list = self
            .client
            .list_system_chaincodes(self.signed(
                "/ccvm.Admin/ListSystemChaincodes",
                ListSystemChaincodesRequest {},
            ))
            .await?;
        Ok(list.into_inner().chaincodes)
    }

    /// Launches the chaincode `name` unless it runs, streaming the steps of the launch; the
    /// last event says how it ended.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn launch(
        &mut self,
        name: &str,
    ) -> Result<tonic::Streaming<LaunchEvent>, ClientError> {
        let events = self
            .client
            .launch(self.signed(
                "/ccvm.Admin/Launch",
                LaunchRequest {
                    name: name.to_owned(),
                },
            ))
            .await?;
        Ok(events.into_inner())
    }

    /// Installs a chaincode package file on the node.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] with the node's reason when it refuses the package.
    pub async fn install_package(
        &mut self,
        package: Vec<u8>,
    ) -> Result<InstalledPackage, ClientError> {
        let installed = self
            .client
            .install_package(self.signed(
                "/ccvm.Admin/InstallPackage",
                InstallPackageRequest { package },
            ))
            .await?;
        Ok(installed.into_inner())
    }

    /// The packages installed on the node.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn packages(&mut self) -> Result<Vec<InstalledPackage>, ClientError> {
        let list = self
            .client
            .list_packages(self.signed("/ccvm.Admin/ListPackages", ListPackagesRequest {}))
            .await?;
        Ok(list.into_inner().packages)
    }

    /// The names of the chaincodes registered with the node now.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn running(&mut self) -> Result<Vec<String>, ClientError> {
        let running = self
            .client
            .list_running(self.signed("/ccvm.Admin/ListRunning", ListRunningRequest {}))
            .await?;
        Ok(running.into_inner().names)
    }

    /// Creates channel `name` on the node; answers its genesis block, an encoded `common.Block`.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] with the node's reason when it cannot.
    pub async fn create_channel(&mut self, name: &str) -> Result<Vec<u8>, ClientError> {
        let created = self
            .client
            .create_channel(self.signed(
                "/ccvm.Admin/CreateChannel",
                CreateChannelRequest {
                    name: name.to_owned(),
                },
            ))
            .await?;
        Ok(created.into_inner().genesis_block)
    }

    /// Reloads a system chaincode on the node.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] with the node's reason when it cannot.
    pub async fn reload_system_chaincode(&mut self, name: &str) -> Result<(), ClientError> {
        self.client
            .reload_system_chaincode(self.signed(
                "/ccvm.Admin/ReloadSystemChaincode",
                ReloadSystemChaincodeRequest {
                    name: name.to_owned(),
                },
            ))
            .await?;
        Ok(())
    }
}

/// A signed proposal and the parts needed later to build its transaction.
pub struct TxProposal {
    /// The transaction id.
    pub tx_id: String,
    /// The channel.
    pub channel: String,
    /// What goes to the endorser.
    pub signed: SignedProposal,
    header: Header,
    payload_without_transient: Vec<u8>,
}

/// The outcome of an invoke: the chaincode's response and where it was committed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The chaincode's response.
    pub response: Response,
    /// The transaction id.
    pub tx_id: String,
    /// The block it was written into.
    pub block: u64,
}

/// A connection to a node, signing as one identity.
pub struct Client {
    endorser: EndorserClient<Channel>,
    committer: CommitterClient<Channel>,
    gateway: GatewayClient<Channel>,
    identity: Identity,
    tls_cert_hash: Vec<u8>,
}

impl Client {
    /// Connects to the node at `addr` (`host:port`).
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the node does not answer.
    pub async fn connect(addr: &str, identity: Identity) -> Result<Self, ClientError> {
        Self::connect_with(addr, identity, None).await
    }

    /// Connects as [`Client::connect`] does, over TLS when `tls` is given.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the node does not answer.
    pub async fn connect_with(
        addr: &str,
        identity: Identity,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let channel = dial(addr, tls).await?;
        Ok(Self {
            endorser: EndorserClient::new(channel.clone())
                .max_decoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES),
            committer: CommitterClient::new(channel.clone())
                .max_decoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES),
            gateway: GatewayClient::new(channel)
                .max_decoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES)
                .max_encoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES),
            identity,
            tls_cert_hash: tls.map(ClientTls::cert_hash).unwrap_or_default(),
        })
    }

    /// The identity this client signs as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Builds and signs a proposal to call `chaincode` with `args` on `channel`.
    pub fn proposal(
        &self,
        channel: &str,
        chaincode: &str,
        args: Vec<Vec<u8>>,
        transient: HashMap<String, Vec<u8>>,
    ) -> TxProposal {
        let creator = self.identity.serialized();
        let mut nonce = vec![0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let tx_id = compute_tx_id(&nonce, &creator);
        let chaincode_id = ChaincodeId {
            name: chaincode.to_owned(),
            ..Default::default()
        };
        let channel_header = ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            timestamp: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            channel_id: channel.to_owned(),
            tx_id: tx_id.clone(),
            tls_cert_hash: self.tls_cert_hash.clone(),
            extension: ChaincodeHeaderExtension {
                chaincode_id: Some(chaincode_id.clone()),
            }
            .encode_to_vec(),
            ..Default::default()
        };
        let header = Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: SignatureHeader { creator, nonce }.encode_to_vec(),
        };
        let invocation = ChaincodeInvocationSpec {
            chaincode_spec: Some(ChaincodeSpec {
                r#type: chaincode_spec::Type::Undefined as i32,
                chaincode_id: Some(chaincode_id),
                input: Some(ChaincodeInput {
                    args,
                    ..Default::default()
                }),
                timeout: 0,
            }),
        };
        let input = invocation.encode_to_vec();
        let payload_without_transient = ChaincodeProposalPayload {
            input: input.clone(),
            transient_map: HashMap::new(),
        }
        .encode_to_vec();
        let proposal = Proposal {
            header: header.encode_to_vec(),
            payload: ChaincodeProposalPayload {
                input,
                transient_map: transient,
            }
            .encode_to_vec(),
            extension: Vec::new(),
        };
        let proposal_bytes = proposal.encode_to_vec();
        let signature = self.identity.sign(&proposal_bytes);
        TxProposal {
            tx_id,
            channel: channel.to_owned(),
            signed: SignedProposal {
                proposal_bytes,
                signature,
            },
            header,
            payload_without_transient,
        }
    }

    /// Sends a proposal to the endorser and returns its raw answer.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn endorse(&self, proposal: &TxProposal) -> Result<ProposalResponse, ClientError> {
        let mut endorser = self.endorser.clone();
        Ok(endorser
            .process_proposal(proposal.signed.clone())
            .await?
            .into_inner())
    }

    /// Wraps an endorsed proposal into a transaction envelope signed by this client.
    pub fn transaction_envelope(
        &self,
        proposal: &TxProposal,
        endorsed: &ProposalResponse,
    ) -> Envelope {
        self.envelope_endorsed_by(
            proposal,
            endorsed.payload.clone(),
            endorsed.endorsement.clone().into_iter().collect(),
        )
    }

    /// The transaction of `proposal` whose result, `response_payload`, carries
    /// `endorsements`, in an envelope signed by this client.
    fn envelope_endorsed_by(
        &self,
        proposal: &TxProposal,
        response_payload: Vec<u8>,
        endorsements: Vec<Endorsement>,
    ) -> Envelope {
        let payload = endorsed_transaction(
            proposal.header.clone(),
            proposal.payload_without_transient.clone(),
            response_payload,
            endorsements,
        )
        .encode_to_vec();
        let signature = self.identity.sign(&payload);
        Envelope { payload, signature }
    }

    /// Submits a transaction envelope for commit and waits for the outcome.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails or the committer refuses the envelope.
    pub async fn submit_envelope(&self, envelope: Envelope) -> Result<SubmitResponse, ClientError> {
        let mut committer = self.committer.clone();
        Ok(committer.submit(envelope).await?.into_inner())
    }

    /// Wraps an endorsed proposal into a signed transaction and submits it for commit.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails.
    pub async fn submit(
        &self,
        proposal: &TxProposal,
        endorsed: &ProposalResponse,
    ) -> Result<SubmitResponse, ClientError> {
        self.submit_envelope(self.transaction_envelope(proposal, endorsed))
            .await
    }

    /// Runs a chaincode function without committing and returns its response.
    ///
    /// # Errors
    /// [`ClientError::Chaincode`] for an error status; [`ClientError::Rpc`] when the call fails.
    pub async fn query(
        &self,
        channel: &str,
        chaincode: &str,
        args: Vec<Vec<u8>>,
        transient: HashMap<String, Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let proposal = self.proposal(channel, chaincode, args, transient);
        let endorsed = self.endorse(&proposal).await?;
        successful(&endorsed)
    }

    /// Runs a chaincode function, then commits its endorsed result.
    ///
    /// # Errors
    /// [`ClientError::Chaincode`] for an error status, [`ClientError::Invalid`] when commit
    /// rejects the transaction, [`ClientError::Rpc`] when a call fails.
    pub async fn invoke(
        &self,
        channel: &str,
        chaincode: &str,
        args: Vec<Vec<u8>>,
        transient: HashMap<String, Vec<u8>>,
    ) -> Result<Committed, ClientError> {
        self.invoke_endorsed_by(&[], self, channel, chaincode, args, transient)
            .await
    }

    /// Runs a chaincode function on this client's node and on the nodes of `endorsers` (each
    /// given the same proposal, signed by this client), then commits the transaction carrying
    /// every endorsement through `orderer`'s node.
    ///
    /// # Errors
    /// As [`Client::invoke`], or [`ClientError::PayloadMismatch`] when an endorser's result
    /// differs from this node's.
    pub async fn invoke_endorsed_by(
        &self,
        endorsers: &[Client],
        orderer: &Client,
        channel: &str,
        chaincode: &str,
        args: Vec<Vec<u8>>,
        transient: HashMap<String, Vec<u8>>,
    ) -> Result<Committed, ClientError> {
        let proposal = self.proposal(channel, chaincode, args, transient);
        let endorsed = self.endorse(&proposal).await?;
        let response = successful(&endorsed)?;
        let mut endorsements: Vec<Endorsement> = endorsed.endorsement.clone().into_iter().collect();
        for (index, endorser) in endorsers.iter().enumerate() {
            let theirs = endorser.endorse(&proposal).await?;
            successful(&theirs)?;
            if theirs.payload != endorsed.payload {
                return Err(ClientError::PayloadMismatch(index + 1));
            }
            endorsements.extend(theirs.endorsement);
        }
        let envelope = self.envelope_endorsed_by(&proposal, endorsed.payload, endorsements);
        let submitted = orderer.submit_envelope(envelope).await?;
        check_valid(&submitted)?;
        Ok(Committed {
            response,
            tx_id: submitted.tx_id,
            block: submitted.block_number,
        })
    }
}

impl Client {
    /// Endorses, submits and waits for the commit of `proposal` through the node's gateway, as
    /// Fabric's Gateway SDKs do: `Endorse`, the client's signature over the prepared
    /// transaction, `Submit`, then a signed `CommitStatus`.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when a call fails (a chaincode error fails `Endorse`);
    /// [`ClientError::Invalid`] when the transaction is committed invalid.
    pub async fn submit_through_gateway(&self, proposal: &TxProposal) -> Result<u64, ClientError> {
        self.endorse_and_submit_through_gateway(proposal).await?;
        self.commit_status_through_gateway(proposal).await
    }

    /// The first half of [`Client::submit_through_gateway`]: `Endorse`, the client's signature
    /// over the prepared transaction, and `Submit`, which answers once the transaction is
    /// queued for its block.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when a call fails (a chaincode error fails `Endorse`).
    pub async fn endorse_and_submit_through_gateway(
        &self,
        proposal: &TxProposal,
    ) -> Result<(), ClientError> {
        let mut gateway = self.gateway.clone();
        let mut prepared = gateway
            .endorse(EndorseRequest {
                transaction_id: proposal.tx_id.clone(),
                channel_id: proposal.channel.clone(),
                proposed_transaction: Some(proposal.signed.clone()),
                endorsing_organizations: Vec::new(),
            })
            .await?
            .into_inner()
            .prepared_transaction
            .unwrap_or_default();
        prepared.signature = self.identity.sign(&prepared.payload);
        gateway
            .submit(SubmitRequest {
                transaction_id: proposal.tx_id.clone(),
                channel_id: proposal.channel.clone(),
                prepared_transaction: Some(prepared),
            })
            .await?;
        Ok(())
    }

    /// The second half of [`Client::submit_through_gateway`]: a signed `CommitStatus`, which
    /// answers once the transaction's block is committed; returns the block's number.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the call fails; [`ClientError::Invalid`] when the transaction
    /// is committed invalid.
    pub async fn commit_status_through_gateway(
        &self,
        proposal: &TxProposal,
    ) -> Result<u64, ClientError> {
        let request = CommitStatusRequest {
            transaction_id: proposal.tx_id.clone(),
            channel_id: proposal.channel.clone(),
            identity: self.identity.serialized(),
        }
        .encode_to_vec();
        let status = self
            .gateway
            .clone()
            .commit_status(SignedCommitStatusRequest {
                signature: self.identity.sign(&request),
                request,
            })
            .await?
            .into_inner();
        check_valid(&SubmitResponse {
            tx_id: proposal.tx_id.clone(),
            validation_code: status.result,
            block_number: status.block_number,
        })?;
        Ok(status.block_number)
    }
}

impl Client {
    /// The events of `chaincode` on `channel` from the next block on, read through the node's
    /// gateway as Fabric's Gateway SDKs read them: one answer per block that has any.
    ///
    /// # Errors
    /// [`ClientError::Rpc`] when the node refuses the request.
    pub async fn chaincode_events(
        &self,
        channel: &str,
        chaincode: &str,
    ) -> Result<tonic::Streaming<ChaincodeEventsResponse>, ClientError> {
        let request = ChaincodeEventsRequest {
            channel_id: channel.to_owned(),
            chaincode_id: chaincode.to_owned(),
            identity: self.identity.serialized(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut gateway = self.gateway.clone();
        Ok(gateway
            .chaincode_events(SignedChaincodeEventsRequest {
                signature: self.identity.sign(&request),
                request,
            })
            .await?
            .into_inner())
    }
}

/// The chaincode response of an endorsement, or the error it carries.
///
/// # Errors
/// [`ClientError::Chaincode`] for a missing response or an error status.
pub fn successful(endorsed: &ProposalResponse) -> Result<Response, ClientError> {
    let response = endorsed.response.clone().unwrap_or_default();
    if response.status >= ERROR_THRESHOLD || response.status == 0 {
        return Err(ClientError::Chaincode {
            status: response.status,
            message: response.message,
        });
    }
    Ok(response)
}

/// Fails unless the committer marked the transaction valid.
///
/// # Errors
/// [`ClientError::Invalid`] with the validation code's name.
pub fn check_valid(submitted: &SubmitResponse) -> Result<(), ClientError> {
    let code = TxValidationCode::try_from(submitted.validation_code)
        .unwrap_or(TxValidationCode::InvalidOtherReason);
    if code == TxValidationCode::Valid {
        Ok(())
    } else {
        Err(ClientError::Invalid {
            tx_id: submitted.tx_id.clone(),
            code: code.as_str_name().to_owned(),
        })
    }
}

/// Parses Fabric's `-c` argument: `{"Args":["fn","a1",...]}` or `{"function":"fn","Args":[...]}`
/// (key case ignored, as Fabric's CLI does).
///
/// # Errors
/// [`ClientError::Args`] when the JSON has another shape.
pub fn parse_ctor_args(json: &str) -> Result<Vec<Vec<u8>>, ClientError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ClientError::Args(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| ClientError::Args("expected a JSON object".to_owned()))?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let mut args = Vec::new();
    if let Some(function) = field("function") {
        let function = function
            .as_str()
            .ok_or_else(|| ClientError::Args("\"function\" must be a string".to_owned()))?;
        args.push(function.as_bytes().to_vec());
    }
    if let Some(list) = field("args") {
        let list = list
            .as_array()
            .ok_or_else(|| ClientError::Args("\"Args\" must be an array".to_owned()))?;
        for item in list {
            let text = item
                .as_str()
                .ok_or_else(|| ClientError::Args("each of \"Args\" must be a string".to_owned()))?;
            args.push(text.as_bytes().to_vec());
        }
    }
    if args.is_empty() {
        return Err(ClientError::Args("no \"Args\" given".to_owned()));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctor_args_accept_both_fabric_forms() -> anyhow::Result<()> {
        assert_eq!(
            parse_ctor_args(r#"{"Args":["put","k","v"]}"#)?,
            vec![b"put".to_vec(), b"k".to_vec(), b"v".to_vec()]
        );
        assert_eq!(
            parse_ctor_args(r#"{"function":"get","Args":["k"]}"#)?,
            vec![b"get".to_vec(), b"k".to_vec()]
        );
        assert_eq!(parse_ctor_args(r#"{"args":["x"]}"#)?, vec![b"x".to_vec()]);
        Ok(())
    }

    #[test]
    fn ctor_args_reject_other_shapes() {
        for bad in ["[]", "{}", r#"{"Args":"x"}"#, r#"{"Args":[1]}"#, "not json"] {
            assert!(parse_ctor_args(bad).is_err(), "{bad} was accepted");
        }
    }
}
