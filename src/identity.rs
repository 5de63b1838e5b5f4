//! Signing identities: an MSP id, a P-256 key and a self-signed X.509 certificate, kept as PEM
//! files in a directory. The node creates a development identity for itself and one for clients
//! on first start.

use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ccvm_proto::Message;
use ccvm_proto::msp::SerializedIdentity;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

/// The MSP id of the identities a node creates for development.
pub const DEFAULT_MSP_ID: &str = "DevMSP";

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const MSP_ID_FILE: &str = "mspid";

/// Why an identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing an identity file failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Key or certificate generation or parsing failed.
    #[error("identity in {dir}: {reason}")]
    Invalid {
        /// The identity directory.
        dir: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// An identity that can sign proposals, transactions and endorsements.
pub struct Identity {
    msp_id: String,
    cert_pem: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Identity {
    /// Loads the identity in `dir`, creating it first (with `common_name`) if absent.
    ///
    /// # Errors
    /// Fails when the files cannot be written or read back.
    pub fn load_or_create(
        dir: &Path,
        msp_id: &str,
        common_name: &str,
    ) -> Result<Self, IdentityError> {
        if !dir.join(CERT_FILE).exists() {
            create(dir, msp_id, common_name)?;
        }
        Self::load(dir)
    }

    /// Loads the identity in `dir`.
    ///
    /// # Errors
    /// Fails when a file is missing or does not hold a P-256 key and certificate.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| IdentityError::Io { path, source })
        };
        let invalid = |reason: String| IdentityError::Invalid {
            dir: dir.to_owned(),
            reason,
        };
        let cert_pem = read(CERT_FILE)?;
        let key_pem = read(KEY_FILE)?;
        let msp_id = read(MSP_ID_FILE)?.trim().to_owned();
        let pkcs8 = KeyPair::from_pem(&key_pem)
            .map_err(|e| invalid(e.to_string()))?
            .serialize_der();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
            .map_err(|e| invalid(format!("not a P-256 key: {e}")))?;
        Ok(Self {
            msp_id,
            cert_pem,
            key,
            rng,
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
        SerializedIdentity {
            mspid: self.msp_id.clone(),
            id_bytes: self.cert_pem.clone().into_bytes(),
        }
        .encode_to_vec()
    }

    /// An ECDSA P-256 / SHA-256 signature (ASN.1 DER) over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, message)
            .map(|signature| signature.as_ref().to_vec())
            .unwrap_or_default()
    }
}

/// Writes `text` to a file only its owner can read (a private key).
pub(crate) fn write_private(path: &Path, text: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

fn create(dir: &Path, msp_id: &str, common_name: &str) -> Result<(), IdentityError> {
    let invalid = |reason: String| IdentityError::Invalid {
        dir: dir.to_owned(),
        reason,
    };
    let key = KeyPair::generate().map_err(|e| invalid(e.to_string()))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| invalid(e.to_string()))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, msp_id);
    params.distinguished_name = name;
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(e.to_string()))?;
    let write = |file: &str, contents: &str| {
        let path = dir.join(file);
        fs::write(&path, contents).map_err(|source| IdentityError::Io { path, source })
    };
    fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let key_path = dir.join(KEY_FILE);
    write_private(&key_path, &key.serialize_pem()).map_err(|source| IdentityError::Io {
        path: key_path,
        source,
    })?;
    write(MSP_ID_FILE, msp_id)?;
    write(CERT_FILE, &cert.pem())
}
