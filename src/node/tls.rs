//! TLS of the node's two ports. The client port serves the organization's TLS certificate (as a
//! Fabric peer does), optionally requiring client certificates. The chaincode port serves mutual
//! TLS with the chaincodes the node launches: a CA the node creates on its first start, a server
//! certificate for the chaincode listener, and a client certificate per launched chaincode whose
//! common name is the name it must register with.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use sha2::{Digest, Sha256};

use crate::config::PeerTlsSettings;
use crate::container::{CertIssuer, ClientCredentials, IssueError};
use crate::fs_private::write_private;

/// The CA's common name; its certificate is rebuilt from it and the stored key when issuing.
const CA_NAME: &str = "ccvm chaincode CA";

/// Why the chaincode CA could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A TLS file could not be read or written.
    #[error("TLS file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key or certificate could not be made or read.
    #[error("chaincode CA: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// The client port's TLS: the server certificate and key of `settings`, by default `server.crt`
/// and `server.key` in the `tls` directory beside the node's MSP directory (where `cryptogen`
/// and the development organization put them), and, when client authentication is required, the
/// CAs client certificates must chain to, by default that directory's `ca.crt`.
///
/// # Errors
/// A file that cannot be read.
pub(super) fn client_port_tls(
    settings: &PeerTlsSettings,
    msp_dir: &Path,
) -> Result<ServerTlsConfig, TlsError> {
    let tls_dir = msp_dir.with_file_name("tls");
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::File {
            path: path.to_owned(),
            source,
        })
    };
    let cert = read(
        settings
            .cert_file
            .as_deref()
            .unwrap_or(&tls_dir.join("server.crt")),
    )?;
    let key = read(
        settings
            .key_file
            .as_deref()
            .unwrap_or(&tls_dir.join("server.key")),
    )?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if settings.client_auth_required {
        let roots = if settings.client_root_cas.is_empty() {
            vec![tls_dir.join("ca.crt")]
        } else {
            settings.client_root_cas.clone()
        };
        let mut bundle = Vec::new();
        for root in &roots {
            bundle.extend(read(root)?);
            bundle.push(b'\n');
        }
        tls = tls.client_ca_root(Certificate::from_pem(bundle));
    }
    Ok(tls)
}

/// SHA-256 of the client's TLS certificate, when it presented one: what Fabric's SDKs put in a
/// channel header's `tls_cert_hash` to bind a message to their connection.
pub(super) fn client_cert_hash<T>(request: &tonic::Request<T>) -> Option<Vec<u8>> {
    let certs = request.peer_certs()?;
    let first = certs.first()?;
    Some(Sha256::digest(first.as_ref()).to_vec())
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The node's chaincode CA and the listener's certificate.
pub(super) struct ChaincodeCa {
    ca_cert_pem: String,
    ca_key: KeyPair,
    server: Identity,
}

impl ChaincodeCa {
    /// Loads the CA from `dir`, creating it on first use, and issues the listener a certificate
    /// for `server_names` (IP addresses and host names).
    ///
    /// # Errors
    /// A CA file that cannot be read or written, or a key that cannot be used.
    pub fn load_or_create(dir: &Path, server_names: Vec<String>) -> Result<Self, TlsError> {
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::File { path, source }
        };
        let (ca_cert_pem, ca_key) = if key_path.exists() {
            let key = std::fs::read_to_string(&key_path).map_err(file_error(&key_path))?;
            let cert = std::fs::read_to_string(&cert_path).map_err(file_error(&cert_path))?;
            (cert, KeyPair::from_pem(&key)?)
        } else {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?.pem();
            std::fs::create_dir_all(dir).map_err(file_error(dir))?;
            write_private(&key_path, &key.serialize_pem()).map_err(file_error(&key_path))?;
            std::fs::write(&cert_path, &cert).map_err(file_error(&cert_path))?;
            (cert, key)
        };
        let mut params = CertificateParams::new(server_names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ccvm chaincode listener");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let server_cert = params.signed_by(&server_key, &issuer)?;
        Ok(Self {
            ca_cert_pem,
            ca_key,
            server: Identity::from_pem(server_cert.pem(), server_key.serialize_pem()),
        })
    }

    /// The chaincode listener's TLS: this CA's certificate, and client certificates verified
    /// against this CA. A connection without one is let through the handshake so that its
    /// REGISTER can be refused with the reason (no certificate), which a failed handshake would
    /// not tell the chaincode; it can do nothing else.
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.server.clone())
            .client_ca_root(Certificate::from_pem(&self.ca_cert_pem))
            .client_auth_optional(true)
    }
}

impl CertIssuer for ChaincodeCa {
    fn issue(&self, name: &str) -> Result<ClientCredentials, IssueError> {
        let issue = || -> Result<ClientCredentials, rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate()?;
            let issuer = Issuer::new(ca_params()?, &self.ca_key);
            let cert = params.signed_by(&key, &issuer)?;
            Ok(ClientCredentials {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                root_pem: self.ca_cert_pem.clone(),
            })
        };
        issue().map_err(|e| IssueError {
            chaincode: name.to_owned(),
            source: Arc::new(e),
        })
    }
}
