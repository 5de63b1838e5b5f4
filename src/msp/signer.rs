//! A signing identity read from an MSP directory: the certificate in `signcerts/` and its
//! private key in `keystore/`, as `cryptogen` and Fabric CA write them.

use std::fs;
use std::path::Path;

use ccvm_proto::Message;
use ccvm_proto::msp::SerializedIdentity;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
};
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::dir::files_in;
use super::error::MspError;
use super::identity::Curve;
use super::low_s::to_low_s;

/// An identity that signs proposals, transactions, endorsements and admin requests.
pub struct Identity {
    msp_id: String,
    cert_pem: String,
    /// The encoded `msp.SerializedIdentity`, made once.
    serialized: Vec<u8>,
    key: EcdsaKeyPair,
    curve: Curve,
    rng: SystemRandom,
}

impl Identity {
    /// Loads the signing identity of the MSP directory `dir` as a member of `msp_id`: the first
    /// certificate in `signcerts/` and the key in `keystore/` that belongs to it.
    ///
    /// # Errors
    /// A missing certificate, or no P-256 or P-384 PKCS#8 key in `keystore/` that matches it.
    pub fn load(dir: &Path, msp_id: &str) -> Result<Self, MspError> {
        let signcerts = dir.join("signcerts");
        if !signcerts.is_dir() {
            return Err(MspError::Material {
                path: signcerts,
                reason: "does not exist: this is not the MSP directory of a signing identity"
                    .to_owned(),
            });
        }
        let cert_path =
            files_in(&signcerts)?
                .into_iter()
                .next()
                .ok_or_else(|| MspError::Material {
                    path: signcerts.clone(),
                    reason: "holds no certificate".to_owned(),
                })?;
        let cert_pem = fs::read_to_string(&cert_path).map_err(|source| MspError::Io {
            path: cert_path.clone(),
            source,
        })?;
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| MspError::Material {
                path: cert_path.clone(),
                reason: format!("holds no PEM certificate: {e}"),
            })?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| MspError::Material {
                path: cert_path.clone(),
                reason: format!("malformed certificate: {e}"),
            })?;
        let public_key = cert.public_key().subject_public_key.data.to_vec();
        let rng = SystemRandom::new();
        let keystore = dir.join("keystore");
        for path in files_in(&keystore)? {
            let text = fs::read(&path).map_err(|source| MspError::Io {
                path: path.clone(),
                source,
            })?;
            let Some((key, curve)) = pkcs8_key(&text, &rng) else {
                continue;
            };
            if key.public_key().as_ref() == public_key.as_slice() {
                let serialized = SerializedIdentity {
                    mspid: msp_id.to_owned(),
                    id_bytes: cert_pem.clone().into_bytes(),
                }
                .encode_to_vec();
                return Ok(Self {
                    msp_id: msp_id.to_owned(),
                    cert_pem,
                    serialized,
                    key,
                    curve,
                    rng,
                });
            }
        }
        Err(MspError::Material {
            path: keystore,
            reason: format!(
                "holds no PKCS#8 ECDSA key for the certificate {}",
                cert_path.display()
            ),
        })
    }

    /// The MSP id.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The encoded `msp.SerializedIdentity` that goes into headers and endorsements.
    pub fn serialized(&self) -> Vec<u8> {
        self.serialized.clone()
    }

    /// An ECDSA signature (ASN.1 DER) over `message`, with the curve's matching hash, in the
    /// low-S form Fabric requires.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, message)
            .map(|signature| to_low_s(signature.as_ref().to_vec(), self.curve))
            .unwrap_or_default()
    }
}

/// The P-256 or P-384 key in a PEM file holding PKCS#8, also under the `EC PRIVATE KEY` label
/// Fabric's `tlsgen` gives PKCS#8 keys; `None` for anything else.
fn pkcs8_key(text: &[u8], rng: &SystemRandom) -> Option<(EcdsaKeyPair, Curve)> {
    let (_, der) = <(SectionKind, Vec<u8>)>::pem_slice_iter(text)
        .filter_map(Result::ok)
        .find(|(kind, _)| matches!(kind, SectionKind::PrivateKey | SectionKind::EcPrivateKey))?;
    [
        (&ECDSA_P256_SHA256_ASN1_SIGNING, Curve::P256),
        (&ECDSA_P384_SHA384_ASN1_SIGNING, Curve::P384),
    ]
    .into_iter()
    .find_map(|(algorithm, curve)| {
        EcdsaKeyPair::from_pkcs8(algorithm, &der, rng)
            .ok()
            .map(|key| (key, curve))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::dev_org::DevOrganization;
    use crate::msp::{IdentityError, MspMaterial, Trust};

    #[test]
    fn signatures_are_low_s_and_a_high_s_twin_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let org = DevOrganization::at(dir.path());
        org.create_if_absent("Org1MSP")?;
        let user = Identity::load(&org.user_msp_dir(), "Org1MSP")?;
        let trust = Trust::new(&[MspMaterial::load(&org.msp_dir(), "Org1MSP")?])?;
        let mut high_s_twin = None;
        for n in 0..64u8 {
            let message = [n; 16];
            let signature = user.sign(&message);
            trust.verify(&user.serialized(), &message, &signature)?;
            let parsed = super::super::low_s::flip_s_for_tests(&signature, Curve::P256);
            high_s_twin.get_or_insert((message, parsed));
        }
        let (message, twin) = high_s_twin.expect("signed");
        let refused = trust
            .verify(&user.serialized(), &message, &twin)
            .unwrap_err();
        assert!(matches!(refused, IdentityError::HighS { .. }), "{refused}");
        Ok(())
    }
}
