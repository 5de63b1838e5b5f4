//! Checks that a message was signed by the identity that claims it: the public key of the
//! certificate in an `msp.SerializedIdentity` must verify the ECDSA P-256 / SHA-256 signature.
//!
//! Which MSPs and certificate authorities to trust is not decided here: any well-formed identity
//! that signed its message is accepted.

use std::collections::HashMap;
use std::sync::Mutex;

use ccvm_proto::Message;
use ccvm_proto::msp::SerializedIdentity;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

use crate::sync::lock;

/// Most identities whose parsed key is kept; a cache that fills up is emptied, which bounds the
/// memory a client cycling through identities can take.
const MAX_CACHED_IDENTITIES: usize = 1024;

/// Verifies signatures by serialized identities, caching each identity's parsed public key.
#[derive(Default)]
pub struct SignatureVerifier {
    keys: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

impl SignatureVerifier {
    /// Checks `signature` over `message` against the certificate in `serialized_identity`.
    ///
    /// # Errors
    /// A text saying why: an undecodable identity or certificate, or a signature that does not
    /// verify.
    pub fn verify(
        &self,
        serialized_identity: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        let key = self.public_key(serialized_identity)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
            .verify(message, signature)
            .map_err(|_| "the signature does not match the creator's certificate".to_owned())
    }

    fn public_key(&self, serialized_identity: &[u8]) -> Result<Vec<u8>, String> {
        let mut keys = lock(&self.keys);
        if let Some(key) = keys.get(serialized_identity) {
            return Ok(key.clone());
        }
        let key = parse_public_key(serialized_identity)?;
        if keys.len() >= MAX_CACHED_IDENTITIES {
            keys.clear();
        }
        keys.insert(serialized_identity.to_vec(), key.clone());
        Ok(key)
    }
}

fn parse_public_key(serialized_identity: &[u8]) -> Result<Vec<u8>, String> {
    let identity = SerializedIdentity::decode(serialized_identity)
        .map_err(|e| format!("malformed creator identity: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&identity.id_bytes)
        .map_err(|e| format!("creator certificate of {} is not PEM: {e}", identity.mspid))?;
    let cert = pem.parse_x509().map_err(|e| {
        format!(
            "creator certificate of {} is malformed: {e}",
            identity.mspid
        )
    })?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn signatures_verify_only_with_the_signers_certificate() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let alice = Identity::load_or_create(&dir.path().join("alice"), "Org1MSP", "alice")?;
        let mallory = Identity::load_or_create(&dir.path().join("mallory"), "Org1MSP", "mallory")?;
        let verifier = SignatureVerifier::default();
        let signature = alice.sign(b"proposal");
        verifier
            .verify(&alice.serialized(), b"proposal", &signature)
            .map_err(anyhow::Error::msg)?;
        assert!(
            verifier
                .verify(&alice.serialized(), b"tampered", &signature)
                .is_err()
        );
        assert!(
            verifier
                .verify(&mallory.serialized(), b"proposal", &signature)
                .is_err()
        );
        assert!(
            verifier
                .verify(b"not an identity", b"proposal", &signature)
                .is_err()
        );
        Ok(())
    }
}
