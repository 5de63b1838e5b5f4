//! A client of a node's operations endpoint (HTTP/1.1, plain or over TLS), for `ccvm node
//! status` and for tools that read `/metrics` or change `/logspec`.

use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Why a request to the operations endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationsError {
    /// Nothing answers at the address.
    #[error("no operations endpoint at {address}: {source}")]
    Connect {
        /// The address dialled.
        address: String,
        /// The connection error.
        source: std::io::Error,
    },
    /// A TLS file could not be read, or rustls refused its contents.
    #[error("operations client TLS: {0}")]
    Tls(String),
    /// The method is not one HTTP knows.
    #[error("invalid method {0:?}")]
    Method(String),
    /// The exchange failed.
    #[error("operations endpoint at {address}: {source}")]
    Http {
        /// The address dialled.
        address: String,
        /// The HTTP error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// TLS towards an endpoint served over HTTPS: the CAs its certificate must chain to and,
/// for `/metrics` and `/logspec`, the client's own certificate and key.
#[derive(Clone)]
pub struct OperationsTls {
    config: Arc<ClientConfig>,
}

impl OperationsTls {
    /// Trusts the CA certificates in the PEM file `ca_file`; presents the certificate and key
    /// of `client` (PEM files) when given.
    ///
    /// # Errors
    /// [`OperationsError::Tls`] for a file that cannot be read or that rustls refuses.
    pub fn new(ca_file: &Path, client: Option<(&Path, &Path)>) -> Result<Self, OperationsError> {
        let tls = |what: &Path, e: &dyn std::fmt::Display| {
            OperationsError::Tls(format!("{}: {e}", what.display()))
        };
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca_file).map_err(|e| tls(ca_file, &e))? {
            roots
                .add(certificate.map_err(|e| tls(ca_file, &e))?)
                .map_err(|e| tls(ca_file, &e))?;
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OperationsError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = CertificateDer::pem_file_iter(cert_file)
                    .map_err(|e| tls(cert_file, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls(cert_file, &e))?;
                let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls(key_file, &e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls(cert_file, &e))?
            }
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// Sends `method path` with `body` (JSON, when not empty) to the plain-HTTP endpoint at
/// `address`; the response's status code and body.
///
/// # Errors
/// [`OperationsError`] when the endpoint cannot be reached or the exchange fails.
pub async fn request(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), OperationsError> {
    request_over(address, None, method, path, body).await
}

/// As [`request`], over TLS when `tls` is given.
///
/// # Errors
/// [`OperationsError`] when the endpoint cannot be reached, the handshake fails, or the
/// exchange fails.
pub async fn request_over(
    address: &str,
    tls: Option<&OperationsTls>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), OperationsError> {
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| OperationsError::Method(method.to_owned()))?;
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|source| OperationsError::Connect {
            address: address.to_owned(),
            source,
        })?;
    let Some(tls) = tls else {
        return exchange(stream, address, method, path, body).await;
    };
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| OperationsError::Tls(format!("{host}: {e}")))?;
    let stream = TlsConnector::from(Arc::clone(&tls.config))
        .connect(name, stream)
        .await
        .map_err(|source| OperationsError::Connect {
            address: address.to_owned(),
            source,
        })?;
    exchange(stream, address, method, path, body).await
}

/// One request and its response on a connection.
async fn exchange<S>(
    stream: S,
    address: &str,
    method: Method,
    path: &str,
    body: &str,
) -> Result<(u16, String), OperationsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| OperationsError::Http {
        address: address.to_owned(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.into()))?;
    let connection = tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, address)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| failed(e.into()))?;
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => {
            // The connection's own error says why it ended (a TLS alert from the endpoint, say);
            // the request's only that it was cut.
            let cause = match connection.await {
                Ok(Err(ended)) => ended,
                _ => e,
            };
            return Err(failed(cause.into()));
        }
    };
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.into()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
