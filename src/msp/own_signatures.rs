//! Signatures this node made lately, so that checking one of its own endorsements at commit
//! costs a hash instead of an ECDSA verification.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::sync::lock;

/// Most signatures remembered; a full log is emptied, which bounds its memory whatever is never
/// submitted.
pub const MAX_OWN_SIGNATURES: usize = 65_536;

/// The signatures the node made, by digest of what they sign.
#[derive(Default)]
pub struct OwnSignatures {
    recent: Mutex<HashMap<[u8; 32], Vec<u8>>>,
}

impl OwnSignatures {
    /// Remembers that the node made `signature` over `message`.
    pub fn record(&self, message: &[u8], signature: &[u8]) {
        let digest: [u8; 32] = Sha256::digest(message).into();
        let mut recent = lock(&self.recent);
        if recent.len() >= MAX_OWN_SIGNATURES {
            recent.clear();
        }
        recent.insert(digest, signature.to_vec());
    }

    /// Whether the node made exactly `signature` over `message`; forgets it, as each
    /// endorsement is checked once.
    pub fn take(&self, message: &[u8], signature: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(message).into();
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
        let own = OwnSignatures::default();
        own.record(b"payload", b"sig");
        assert!(!own.take(b"payload", b"forged"), "another signature");
        assert!(!own.take(b"other payload", b"sig"), "another message");
        assert!(own.take(b"payload", b"sig"));
        assert!(!own.take(b"payload", b"sig"), "recognised once");
    }
}
