//! Unpacking a client's signed proposal into what the endorser needs.

use ccvm_proto::Message;
use ccvm_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use ccvm_proto::protos::{
    ChaincodeHeaderExtension, ChaincodeInput, ChaincodeInvocationSpec, ChaincodeProposalPayload,
    Proposal, SignedProposal,
};

use crate::fabric::{compute_tx_id, proposal_hash};

/// A chaincode proposal, decoded and checked.
pub(crate) struct UnpackedProposal {
    pub channel: String,
    pub tx_id: String,
    pub chaincode: String,
    pub input: ChaincodeInput,
    /// The encoded `msp.SerializedIdentity` of the submitter.
    pub creator: Vec<u8>,
    /// SHA-256 over the header and the payload without its transient data.
    pub hash: Vec<u8>,
    /// The hash of the client's TLS certificate the proposal claims to come over.
    pub tls_cert_hash: Vec<u8>,
    /// The proposal's header, which its transaction carries too.
    pub header: Header,
    /// The encoded proposal payload without its transient data, as its transaction carries it.
    pub payload_without_transient: Vec<u8>,
}

impl UnpackedProposal {
    /// Decodes and checks a proposal: an endorser transaction whose id is the hash of its nonce
    /// and creator, naming a chaincode.
    pub fn parse(signed: &SignedProposal) -> Result<Self, String> {
        let proposal = decode::<Proposal>(&signed.proposal_bytes, "proposal")?;
        let header = decode::<Header>(&proposal.header, "proposal header")?;
        let channel_header = decode::<ChannelHeader>(&header.channel_header, "channel header")?;
        let signature_header =
            decode::<SignatureHeader>(&header.signature_header, "signature header")?;
        if channel_header.r#type != HeaderType::EndorserTransaction as i32 {
            return Err(format!(
                "unsupported proposal header type {}",
                channel_header.r#type
            ));
        }
        if signature_header.creator.is_empty() || signature_header.nonce.is_empty() {
            return Err("proposal has no creator or nonce".to_owned());
        }
        let expected = compute_tx_id(&signature_header.nonce, &signature_header.creator);
        if channel_header.tx_id != expected {
            return Err(format!(
                "invalid transaction id {}: expected {expected}",
                channel_header.tx_id
            ));
        }
        let extension =
            decode::<ChaincodeHeaderExtension>(&channel_header.extension, "header extension")?;
        let payload = decode::<ChaincodeProposalPayload>(&proposal.payload, "proposal payload")?;
        let invocation = decode::<ChaincodeInvocationSpec>(&payload.input, "invocation spec")?;
        let spec = invocation.chaincode_spec.unwrap_or_default();
        let chaincode = extension
            .chaincode_id
            .or(spec.chaincode_id)
            .map(|id| id.name)
            .filter(|name| !name.is_empty())
            .ok_or("proposal names no chaincode")?;
        let payload_without_transient = ChaincodeProposalPayload {
            input: payload.input,
            transient_map: Default::default(),
        }
        .encode_to_vec();
        let hash = proposal_hash(
            &header.channel_header,
            &header.signature_header,
            &payload_without_transient,
        );
        Ok(Self {
            channel: channel_header.channel_id,
            tx_id: channel_header.tx_id,
            chaincode,
            input: spec.input.unwrap_or_default(),
            creator: signature_header.creator,
            hash,
            tls_cert_hash: channel_header.tls_cert_hash,
            header,
            payload_without_transient,
        })
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, String> {
    M::decode(bytes).map_err(|e| format!("malformed {what}: {e}"))
}
