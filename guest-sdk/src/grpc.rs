//! The native transport: the shim dials the peer's `ChaincodeSupport.Register` stream over gRPC.
//! Each transaction runs on a transaction thread of the shim's own (see `tx_threads`), so stub
//! calls simply wait for the peer's answer.

use std::sync::Arc;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::protos::chaincode_support_client::ChaincodeSupportClient;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::chaincode::Chaincode;
use crate::error::ShimError;
use crate::server::{ServerSettings, serve_as_server};
use crate::shim::{Action, Shim};
use crate::tx_threads::TxThreads;

/// Messages buffered towards the peer.
pub(crate) const OUTBOUND_BUFFER: usize = 256;
/// Largest message accepted from the peer, as Fabric's shims allow by default.
pub(crate) const MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// Where the peer is and how to reach it, read from Fabric's flags and environment.
///
/// ```
/// use ccvm_guest_sdk::PeerSettings;
///
/// let args = ["--peer.address".to_owned(), "peer0.org1.example.com:7052".to_owned()];
/// let env = |name: &str| match name {
///     "CORE_CHAINCODE_ID_NAME" => Some("kv:1.0".to_owned()),
///     _ => None,
/// };
/// let settings = PeerSettings::from_settings(&args, &env)?;
/// assert_eq!(settings.peer_address, "peer0.org1.example.com:7052");
/// assert_eq!(settings.chaincode_name, "kv:1.0");
/// assert!(settings.tls.is_none(), "CORE_PEER_TLS_ENABLED is not true");
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// `host:port` of the peer's chaincode listener.
    pub peer_address: String,
    /// The name to register under.
    pub chaincode_name: String,
    /// TLS material, when `CORE_PEER_TLS_ENABLED` is true.
    pub tls: Option<TlsSettings>,
}

/// TLS material for the connection to the peer.
///
/// ```
/// use ccvm_guest_sdk::PeerSettings;
///
/// let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem");
/// let env = |name: &str| match name {
///     "CORE_PEER_ADDRESS" => Some("peer0:7052".to_owned()),
///     "CORE_CHAINCODE_ID_NAME" => Some("kv:1.0".to_owned()),
///     "CORE_PEER_TLS_ENABLED" => Some("true".to_owned()),
///     "CORE_PEER_TLS_ROOTCERT_FILE" => Some(root.to_owned()),
///     _ => None,
/// };
/// let tls = PeerSettings::from_settings(&[], &env)?.tls.expect("TLS is enabled");
/// assert!(tls.root_cert_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
/// assert!(tls.client_identity.is_none(), "no CORE_TLS_CLIENT_KEY_PATH");
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM of the CA that signed the peer's certificate.
    pub root_cert_pem: Vec<u8>,
    /// PEM key and certificate of this chaincode, for mutual TLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl PeerSettings {
    /// Reads `--peer.address` (or `CORE_PEER_ADDRESS`), `CORE_CHAINCODE_ID_NAME` (or
    /// `--chaincode-id-name`) and the TLS variables.
    ///
    /// ```no_run
    /// use ccvm_guest_sdk::PeerSettings;
    ///
    /// // As Fabric's peer starts a chaincode:
    /// //   CORE_CHAINCODE_ID_NAME=kv:1.0 ./chaincode --peer.address peer0:7052
    /// let settings = PeerSettings::from_env_and_args()?;
    /// println!("registering as {} with {}", settings.chaincode_name, settings.peer_address);
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShimError::Config`] naming the missing or unreadable setting.
    pub fn from_env_and_args() -> Result<Self, ShimError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::from_settings(&args, &|name: &str| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// As [`PeerSettings::from_env_and_args`], with the command line `args` (the program name
    /// left out) and the variables `env` finds.
    ///
    /// ```
    /// use ccvm_guest_sdk::PeerSettings;
    ///
    /// let args = ["--peer.address".to_owned(), "peer0.org1.example.com:7052".to_owned()];
    /// let env = |name: &str| match name {
    ///     "CORE_CHAINCODE_ID_NAME" => Some("kv:1.0".to_owned()),
    ///     _ => None,
    /// };
    /// let settings = PeerSettings::from_settings(&args, &env)?;
    /// assert_eq!(settings.peer_address, "peer0.org1.example.com:7052");
    /// assert_eq!(settings.chaincode_name, "kv:1.0");
    /// assert!(settings.tls.is_none(), "CORE_PEER_TLS_ENABLED is not true");
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShimError::Config`] naming the missing or unreadable setting.
    pub fn from_settings(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ShimError> {
        let peer_address = flag(args, "peer.address")
            .or_else(|| env("CORE_PEER_ADDRESS"))
            .ok_or_else(|| {
                ShimError::Config(
                    "peer address not provided: pass --peer.address HOST:PORT".to_owned(),
                )
            })?;
        let chaincode_name = env("CORE_CHAINCODE_ID_NAME")
            .or_else(|| flag(args, "chaincode-id-name"))
            .ok_or_else(|| {
                ShimError::Config(
                    "chaincode id not provided: set CORE_CHAINCODE_ID_NAME".to_owned(),
                )
            })?;
        let tls = if env("CORE_PEER_TLS_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            Some(read_tls(env)?)
        } else {
            None
        };
        Ok(Self {
            peer_address,
            chaincode_name,
            tls,
        })
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if *arg == long {
            return iter.next().cloned();
        }
        if let Some(value) = arg
            .strip_prefix(&long)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Some(value.to_owned());
        }
    }
    None
}

fn read_tls(env: &dyn Fn(&str) -> Option<String>) -> Result<TlsSettings, ShimError> {
    let read = |var: &str| -> Result<Vec<u8>, ShimError> {
        let path = env(var)
            .ok_or_else(|| ShimError::Config(format!("{var} must be set when TLS is enabled")))?;
        std::fs::read(&path).map_err(|e| ShimError::Config(format!("{var} ({path}): {e}")))
    };
    let root_cert_pem = read("CORE_PEER_TLS_ROOTCERT_FILE")?;
    let client_identity = match (
        env("CORE_TLS_CLIENT_KEY_PATH"),
        env("CORE_TLS_CLIENT_CERT_PATH"),
    ) {
        (Some(_), Some(_)) => {
            let key = relabel_key(&decode_base64_pem(&read("CORE_TLS_CLIENT_KEY_PATH")?)?)?;
            let cert = decode_base64_pem(&read("CORE_TLS_CLIENT_CERT_PATH")?)?;
            Some((key, cert))
        }
        _ => None,
    };
    Ok(TlsSettings {
        root_cert_pem,
        client_identity,
    })
}

/// Fabric stores the chaincode's client key and certificate as base64 of the PEM; a file that
/// already holds PEM is taken as is.
fn decode_base64_pem(contents: &[u8]) -> Result<Vec<u8>, ShimError> {
    if contents.starts_with(b"-----BEGIN") {
        return Ok(contents.to_vec());
    }
    let text: Vec<u8> = contents
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    BASE64_STANDARD.decode(text).map_err(|_| {
        ShimError::Config("client key or certificate is neither PEM nor base64 PEM".to_owned())
    })
}

/// The client key as PEM whose label says what its DER holds. Fabric's `tlsgen` writes a PKCS#8
/// key under the label `EC PRIVATE KEY` (for external builders' `chaincode.json` and its Docker
/// chaincode's `CORE_TLS_CLIENT_KEY_PATH`), which TLS would read as SEC1 and refuse. The format
/// is told from the DER itself, and the key is written out again under the right label.
fn relabel_key(pem: &[u8]) -> Result<Vec<u8>, ShimError> {
    let unreadable = |why: String| ShimError::Config(format!("client key: {why}"));
    let der = <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .find_map(|(kind, der)| {
            matches!(
                kind,
                SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey
            )
            .then_some(der)
        })
        .ok_or_else(|| unreadable("no private key in the PEM".to_owned()))?;
    let label =
        match PrivateKeyDer::try_from(der.as_slice()).map_err(|e| unreadable(e.to_owned()))? {
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            _ => return Err(unreadable("an unknown key format".to_owned())),
        };
    let body = BASE64_STANDARD.encode(&der);
    let mut relabelled = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        relabelled.push_str(&String::from_utf8_lossy(line));
        relabelled.push('\n');
    }
    relabelled.push_str(&format!("-----END {label}-----\n"));
    Ok(relabelled.into_bytes())
}

/// `error` and each error beneath it, joined: the transport's errors say what failed only in
/// their sources ("transport error" over the reason a key was refused).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects with settings from the environment and serves until the peer closes the stream.
///
/// ```no_run
/// use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub};
///
/// struct Ping;
///
/// impl Chaincode for Ping {
///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
///         Response::success("pong")
///     }
/// }
///
/// fn main() -> Result<(), ShimError> {
///     ccvm_guest_sdk::start(Ping)
/// }
/// ```
///
/// # Errors
/// A missing setting, a failed connection, or a refused registration.
///
/// With `CHAINCODE_SERVER_ADDRESS` set the chaincode runs as a service instead: it listens there
/// and each peer that dials it gets a conversation of its own (see [`ServerSettings`]).
pub fn start<C: Chaincode + Send + Sync + 'static>(chaincode: C) -> Result<(), ShimError> {
    let server = ServerSettings::from_env()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ShimError::Config(format!("cannot start a runtime: {e}")))?;
    match server {
        Some(settings) => runtime.block_on(serve_as_server(Arc::new(chaincode), settings)),
        None => {
            let settings = PeerSettings::from_env_and_args()?;
            runtime.block_on(serve(Arc::new(chaincode), settings))
        }
    }
}

/// The error of a send or wait on the stream to the peer once it has closed.
pub(crate) fn stream_closed() -> ShimError {
    ShimError::Disconnected("stream to peer closed".to_owned())
}

/// Registers with the peer and serves transactions until the peer closes the stream.
///
/// ```
/// use std::sync::Arc;
///
/// use ccvm_guest_sdk::{Chaincode, PeerSettings, Response, Stub, serve};
///
/// struct Ping;
///
/// impl Chaincode for Ping {
///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
///         Response::success("pong")
///     }
/// }
///
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// let settings = PeerSettings::from_env_and_args()?;
/// serve(Arc::new(Ping), settings).await
/// # }
/// ```
///
/// # Errors
/// A failed connection, a refused registration, or a broken stream.
pub async fn serve(
    chaincode: Arc<dyn Chaincode + Send + Sync>,
    settings: PeerSettings,
) -> Result<(), ShimError> {
    let (outbound, to_peer) = mpsc::channel(OUTBOUND_BUFFER);
    let shim = Shim::new(settings.chaincode_name.clone());
    outbound
        .send(shim.register_message())
        .await
        .map_err(|_| stream_closed())?;
    let inbound = open_stream(&settings, to_peer).await?;
    converse(chaincode, shim, inbound, outbound).await
}

/// Holds one conversation with a peer whose REGISTER `shim` has sent on `outbound`: answers the
/// peer's messages from `inbound` and runs its transactions until the peer closes the stream.
///
/// # Errors
/// A refused registration, or a broken stream.
pub(crate) async fn converse(
    chaincode: Arc<dyn Chaincode + Send + Sync>,
    mut shim: Shim,
    mut inbound: tonic::Streaming<ChaincodeMessage>,
    outbound: mpsc::Sender<ChaincodeMessage>,
) -> Result<(), ShimError> {
    let (mut threads, mut ended) = TxThreads::new(chaincode, outbound.clone());
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            Some(finished) = ended.recv() => {
                if outbound.send(threads.finish(finished)).await.is_err() {
                    return Err(stream_closed());
                }
                continue;
            }
        };
        let message = match message {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(status) => return Err(ShimError::Disconnected(status.message().to_owned())),
        };
        let reply = match shim.handle(message)? {
            Action::Nothing => None,
            Action::Send(reply) => Some(reply),
            Action::Deliver(answer) => {
                threads.deliver(answer);
                None
            }
            Action::Run(transaction) => threads.run(transaction),
        };
        if let Some(reply) = reply
            && outbound.send(reply).await.is_err()
        {
            return Err(stream_closed());
        }
    }
}

/// Dials the peer and opens its `ChaincodeSupport.Register` stream: `to_peer` carries the
/// chaincode's messages, starting with its REGISTER; the stream returned carries the peer's.
///
/// ```
/// use ccvm_guest_sdk::{PeerSettings, Shim, open_stream};
/// use tokio::sync::mpsc;
///
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// let settings = PeerSettings::from_env_and_args()?;
/// let shim = Shim::new(settings.chaincode_name.clone());
/// let (to_peer, outbound) = mpsc::channel(16);
/// to_peer.send(shim.register_message()).await.expect("the channel is open");
/// let mut from_peer = open_stream(&settings, outbound).await?;
/// while let Some(message) = from_peer.message().await.ok().flatten() {
///     println!("the peer sent {:?}", message.r#type);
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// A failed connection, or a peer that refuses the stream.
pub async fn open_stream(
    settings: &PeerSettings,
    to_peer: mpsc::Receiver<ChaincodeMessage>,
) -> Result<tonic::Streaming<ChaincodeMessage>, ShimError> {
    let channel = connect(settings).await?;
    let mut client = ChaincodeSupportClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    client
        .register(ReceiverStream::new(to_peer))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| ShimError::Disconnected(status.message().to_owned()))
}

async fn connect(settings: &PeerSettings) -> Result<tonic::transport::Channel, ShimError> {
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", settings.peer_address))
        .map_err(|e| {
            ShimError::Config(format!(
                "invalid peer address {}: {e}",
                settings.peer_address
            ))
        })?
        .tcp_nodelay(true);
    if let Some(tls) = &settings.tls {
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.root_cert_pem));
        if let Some((key, cert)) = &tls.client_identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| ShimError::Config(format!("TLS: {}", with_causes(&e))))?;
    }
    endpoint.connect().await.map_err(|e| {
        ShimError::Disconnected(format!(
            "cannot connect to peer at {}: {}",
            settings.peer_address,
            with_causes(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_both_spellings() {
        let args = vec![
            "--peer.address".to_owned(),
            "h:1".to_owned(),
            "--chaincode-id-name=cc:1".to_owned(),
        ];
        assert_eq!(flag(&args, "peer.address").as_deref(), Some("h:1"));
        assert_eq!(flag(&args, "chaincode-id-name").as_deref(), Some("cc:1"));
        assert_eq!(flag(&args, "missing"), None);
    }

    /// A P-256 key made for these tests, in PKCS#8 and then in SEC1.
    const PKCS8_BODY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWjXwr3sIk2yj62YK\n\
        Wa9J9O/YWgsMSswJwq7RRhAHiMyhRANCAATFnzKbkn2WO1tB7ZhVCiyqAen2jZt6\n\
        ywtSJkVQURX24TVFHAzx39fGxF1KSKbjBFZvNjKhCEJgsqaoxbgWwBuX\n";
    const SEC1_BODY: &str = "MHcCAQEEIFo18K97CJNso+tmClmvSfTv2FoLDErMCcKu0UYQB4jMoAoGCCqGSM49\n\
        AwEHoUQDQgAExZ8ym5J9ljtbQe2YVQosqgHp9o2bessLUiZFUFEV9uE1RRwM8d/X\n\
        xsRdSkim4wRWbzYyoQhCYLKmqMW4FsAblw==\n";

    fn pem(label: &str, body: &str) -> Vec<u8> {
        format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n").into_bytes()
    }

    #[test]
    fn a_pkcs8_key_labelled_as_sec1_as_fabric_writes_it_is_relabelled() -> Result<(), ShimError> {
        let relabelled = relabel_key(&pem("EC PRIVATE KEY", PKCS8_BODY))?;
        assert_eq!(relabelled, pem("PRIVATE KEY", PKCS8_BODY));
        Ok(())
    }

    #[test]
    fn keys_labelled_as_what_they_are_keep_their_label() -> Result<(), ShimError> {
        for (label, body) in [("PRIVATE KEY", PKCS8_BODY), ("EC PRIVATE KEY", SEC1_BODY)] {
            assert_eq!(relabel_key(&pem(label, body))?, pem(label, body));
        }
        Ok(())
    }

    #[test]
    fn a_file_without_a_key_is_refused_saying_so() {
        let refused =
            relabel_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(
            matches!(&refused, Err(ShimError::Config(why)) if why == "client key: no private key in the PEM"),
            "{refused:?}"
        );
    }

    #[test]
    fn client_material_may_be_base64_of_pem() -> Result<(), ShimError> {
        assert_eq!(
            decode_base64_pem(b"LS0tLS1CRUdJTg==")?,
            b"-----BEGIN".to_vec()
        );
        assert_eq!(
            decode_base64_pem(b"-----BEGIN x")?,
            b"-----BEGIN x".to_vec()
        );
        Ok(())
    }
}
