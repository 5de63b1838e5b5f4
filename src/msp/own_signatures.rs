//! Endorsements this node made lately, so that checking one of its own at commit costs a hash
//! instead of an ECDSA verification.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::sync::lock;

/// Most signatures remembered; a full log is emptied, which bounds its memory whatever is never
/// submitted.
pub const MAX_OWN_SIGNATURES: usize = 65_536;

/// The node's endorsement signatures, by digest of the payload each endorses.
pub struct OwnSignatures {
    /// The node's serialized identity, which every endorsement it signs names.
    endorser: Vec<u8>,
    recent: Mutex<HashMap<[u8; 32], Vec<u8>>>,
}

impl OwnSignatures {
    /// A log of the endorsements of the node whose serialized identity is `endorser`.
    pub fn new(endorser: Vec<u8>) -> Self {
        Self {
            endorser,
            recent: Mutex::default(),
        }
    }

    /// Remembers that the node made `signature` over `payload` followed by its identity.
    pub fn record(&self, payload: &[u8], signature: &[u8]) {
        let digest: [u8; 32] = Sha256::digest(payload).into();
        let mut recent = lock(&self.recent);
        if recent.len() >= MAX_OWN_SIGNATURES {
            recent.clear();
        }
        recent.insert(digest, signature.to_vec());
    }

    /// Whether the endorsement of `payload` by `endorser` with `signature` is exactly one the
    /// node made; forgets it, as each endorsement is checked once.
    pub fn take(&self, payload: &[u8], endorser: &[u8], signature: &[u8]) -> bool {
        if endorser != self.endorser {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(payload).into();
        let mut recent = lock(&self.recent);
        match recent.get(&digest) {
            Some(made) if made.as_slice() == signature => {
                recent.remove(&digest);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_signature_made_over_the_same_message_is_recognised_once() {
        let own = OwnSignatures::new(b"node".to_vec());
        own.record(b"payload", b"sig");
        assert!(
            !own.take(b"payload", b"node", b"forged"),
            "another signature"
        );
        assert!(
            !own.take(b"other payload", b"node", b"sig"),
            "another payload"
        );
        assert!(
            !own.take(b"payload", b"someone", b"sig"),
            "another endorser"
        );
        assert!(own.take(b"payload", b"node", b"sig"));
        assert!(!own.take(b"payload", b"node", b"sig"), "recognised once");
    }
}
