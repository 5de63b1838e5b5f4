//! Conventions of Fabric's transaction protocol that a client and the peer share, so that both
//! compute them the same way: how a transaction id is derived, and which chaincode statuses are
//! errors.

use sha2::{Digest, Sha256};

/// Chaincode statuses from here up are errors and are not endorsed (Fabric's `ERRORTHRESHOLD`).
pub const ERROR_THRESHOLD: i32 = 400;

/// Fabric's transaction id: hex SHA-256 of the nonce followed by the serialized creator.
pub fn compute_tx_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(creator);
    hex::encode(hasher.finalize())
}

/// Fabric's proposal hash, which an endorsement's response payload carries: SHA-256 over the
/// channel header, the signature header and the proposal payload without its transient data.
pub fn proposal_hash(
    channel_header: &[u8],
    signature_header: &[u8],
    payload_without_transient: &[u8],
) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(channel_header);
    hasher.update(signature_header);
    hasher.update(payload_without_transient);
    hasher.finalize().to_vec()
}
