//! Signed calls to the node's `ccvm.Admin` service: the client signs the method and a digest
//! of the request into an envelope sent as metadata; the node opens it, checks it was signed
//! lately for this very call, and hands the signer to access control.

use std::time::{Duration, SystemTime};

use ccvm_proto::Message;
use ccvm_proto::ccvm::AdminCall;
use ccvm_proto::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::msp::Identity;

/// The binary metadata key that carries the signed envelope.
pub const ADMIN_REQUEST_METADATA: &str = "ccvm-admin-request-bin";

/// How far a signed call's timestamp may be from the node's clock, either way: a captured call
/// cannot be replayed later than this.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Whether `signed_at` is within [`MAX_CLOCK_SKEW`] of `now`, either way.
pub fn within_clock_skew(signed_at: SystemTime, now: SystemTime) -> bool {
    let skew = now
        .duration_since(signed_at)
        .or_else(|_| signed_at.duration_since(now))
        .unwrap_or(Duration::MAX);
    skew <= MAX_CLOCK_SKEW
}

/// Why a signed call was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedCallError {
    /// The call carries no signed envelope.
    #[error("the call is not signed: metadata {ADMIN_REQUEST_METADATA} is missing")]
    Missing,
    /// The envelope does not decode.
    #[error("malformed signed call: {0}")]
    Malformed(String),
    /// The envelope authorizes another call or another request.
    #[error("the signature is for {0}, not this call")]
    OtherCall(String),
    /// The timestamp is too far from the node's clock.
    #[error("the call was signed too long ago or in the future (more than {} s away)", MAX_CLOCK_SKEW.as_secs())]
    Stale,
}

/// A signed call, opened: who claims to have signed what.
pub struct OpenedCall {
    /// The encoded `msp.SerializedIdentity` of the signer.
    pub creator: Vec<u8>,
    /// The signed bytes.
    pub payload: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Signs `request` to `method` as `identity`.
pub fn sign(identity: &Identity, method: &str, request: &impl Message) -> Envelope {
    let mut nonce = vec![0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let header = Header {
        channel_header: ChannelHeader {
            r#type: HeaderType::Message as i32,
            timestamp: Some(prost_types::Timestamp::from(SystemTime::now())),
            ..Default::default()
        }
        .encode_to_vec(),
        signature_header: SignatureHeader {
            creator: identity.serialized(),
            nonce,
        }
        .encode_to_vec(),
    };
    let payload = Payload {
        header: Some(header),
        data: AdminCall {
            method: method.to_owned(),
            request_sha256: Sha256::digest(request.encode_to_vec()).to_vec(),
        }
        .encode_to_vec(),
    }
    .encode_to_vec();
    let signature = identity.sign(&payload);
    Envelope { payload, signature }
}

/// Opens the signed envelope `encoded` of a call to `method` with `request`, checking that it
/// names this call and request and was signed within [`MAX_CLOCK_SKEW`] of `now`. The signature
/// itself is for access control to check, with the signer's validated key.
///
/// # Errors
/// [`SignedCallError`] saying what does not fit.
pub fn open(
    encoded: Option<&[u8]>,
    method: &str,
    request: &impl Message,
    now: SystemTime,
) -> Result<OpenedCall, SignedCallError> {
    let encoded = encoded.ok_or(SignedCallError::Missing)?;
    let malformed = |e: prost::DecodeError| SignedCallError::Malformed(e.to_string());
    let envelope = Envelope::decode(encoded).map_err(malformed)?;
    let payload = Payload::decode(envelope.payload.as_slice()).map_err(malformed)?;
    let header = payload
        .header
        .ok_or_else(|| SignedCallError::Malformed("no header".to_owned()))?;
    let channel_header =
        ChannelHeader::decode(header.channel_header.as_slice()).map_err(malformed)?;
    let signature_header =
        SignatureHeader::decode(header.signature_header.as_slice()).map_err(malformed)?;
    let call = AdminCall::decode(payload.data.as_slice()).map_err(malformed)?;
    if call.method != method
        || call.request_sha256 != Sha256::digest(request.encode_to_vec()).as_slice()
    {
        return Err(SignedCallError::OtherCall(call.method));
    }
    let signed_at = channel_header
        .timestamp
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| SignedCallError::Malformed("no timestamp".to_owned()))?;
    if !within_clock_skew(signed_at, now) {
        return Err(SignedCallError::Stale);
    }
    Ok(OpenedCall {
        creator: signature_header.creator,
        payload: envelope.payload,
        signature: envelope.signature,
    })
}
