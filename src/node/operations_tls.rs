//! HTTPS for the operations endpoint: the server's rustls configuration from the operator's
//! files, and a listener that completes TLS handshakes off the accept path, so that a client
//! which connects and stays silent holds up nobody.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::config::OperationsTlsSettings;

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most handshakes under way at once; further connections wait to be accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// Why the endpoint's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationsTlsError {
    /// A certificate or key file could not be read or holds no PEM of its kind.
    #[error("operations TLS file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificates, key or CAs.
    #[error("operations TLS: {0}")]
    Config(String),
}

/// The server configuration of `settings`: its certificate and key, by default the node's TLS
/// pair in the `tls` directory beside its MSP directory, and client certificates verified
/// against `client_root_cas` (by default that directory's `ca.crt`): required at the handshake
/// when `client_auth_required`, otherwise verified if given.
///
/// # Errors
/// A file that cannot be read or parsed, or a set rustls refuses.
pub fn server_config(
    settings: &OperationsTlsSettings,
    msp_dir: &Path,
) -> Result<Arc<ServerConfig>, OperationsTlsError> {
    let tls_dir = msp_dir.with_file_name("tls");
    let cert_file = settings
        .cert_file
        .clone()
        .unwrap_or_else(|| tls_dir.join("server.crt"));
    let key_file = settings
        .key_file
        .clone()
        .unwrap_or_else(|| tls_dir.join("server.key"));
    let chain = certificates(&cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| OperationsTlsError::File {
        path: key_file.clone(),
        reason: e.to_string(),
    })?;
    let root_files = if settings.client_root_cas.is_empty() {
        vec![tls_dir.join("ca.crt")]
    } else {
        settings.client_root_cas.clone()
    };
    let mut roots = RootCertStore::empty();
    for file in &root_files {
        for certificate in certificates(file)? {
            roots
                .add(certificate)
                .map_err(|e| OperationsTlsError::Config(format!("{}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if settings.client_auth_required {
        verifier.build()
    } else {
        verifier.allow_unauthenticated().build()
    }
    .map_err(|e| OperationsTlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OperationsTlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| OperationsTlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file at `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, OperationsTlsError> {
    let failed = |reason: String| OperationsTlsError::File {
        path: path.to_owned(),
        reason,
    };
    let found = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if found.is_empty() {
        return Err(failed("no certificate in it".to_owned()));
    }
    Ok(found)
}

/// Whether the client of a connection proved itself with a certificate the endpoint verified.
#[derive(Debug, Clone, Copy)]
pub struct ClientCertificate {
    /// A certificate chaining to one of the endpoint's client CAs was presented.
    pub verified: bool,
}

impl Connected<IncomingStream<'_, TcpListener>> for ClientCertificate {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Self { verified: false }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientCertificate {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        Self {
            verified: session
                .peer_certificates()
                .is_some_and(|chain| !chain.is_empty()),
        }
    }
}

/// Accepts TCP connections and hands on those that completed a TLS handshake within
/// [`HANDSHAKE_TIMEOUT`], at most [`MAX_PENDING_HANDSHAKES`] under way at once.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`; the accepting task, which owns the socket, ends
    /// when this listener is dropped.
    ///
    /// # Errors
    /// The listener has no local address.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (handshaken, ready) = mpsc::channel(MAX_PENDING_HANDSHAKES);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), handshaken));
        Ok(Self { local_addr, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = handshaken.closed() => return,
            permit = Arc::clone(&pending).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            () = handshaken.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "operations endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = handshaken.send((tls, remote)).await;
                }
                Ok(Err(e)) => {
                    debug!(%remote, error = %e, "operations endpoint: TLS handshake failed")
                }
                Err(_) => debug!(%remote, "operations endpoint: TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
