//! Chaincode as a service: the chaincode serves `protos.Chaincode/Connect` and the peer dials it,
//! as Fabric runs chaincode on Kubernetes. Each peer connection is a conversation of its own,
//! opened by the chaincode's REGISTER as when the chaincode dials the peer. Settings follow
//! Fabric's conventions for such chaincode: `CHAINCODE_SERVER_ADDRESS`, `CHAINCODE_ID`,
//! `CHAINCODE_TLS_DISABLED`, `CHAINCODE_TLS_KEY`, `CHAINCODE_TLS_CERT` and
//! `CHAINCODE_CLIENT_CA_CERT`.

use std::pin::Pin;
use std::sync::Arc;

use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::protos::chaincode_server::{self, ChaincodeServer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::chaincode::Chaincode;
use crate::error::ShimError;
use crate::grpc::{MAX_MESSAGE_BYTES, OUTBOUND_BUFFER, converse};
use crate::shim::Shim;

/// Where a chaincode served as a service listens, and what it registers as.
///
/// ```
/// use std::sync::Arc;
///
/// use ccvm_guest_sdk::{Chaincode, Response, ServerSettings, Stub, serve_as_server};
///
/// struct Ping;
///
/// impl Chaincode for Ping {
///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
///         Response::success("pong")
///     }
/// }
///
/// // CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 CHAINCODE_ID=ping:4f3a… ./chaincode
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// if let Some(settings) = ServerSettings::from_env()? {
///     serve_as_server(Arc::new(Ping), settings).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `host:port` to listen on (`CHAINCODE_SERVER_ADDRESS`); port 0 picks a free one.
    pub address: String,
    /// The name to register under: the package id of its `ccaas` package (`CHAINCODE_ID`).
    pub chaincode_id: String,
    /// TLS of the listener, unless `CHAINCODE_TLS_DISABLED` is true (Fabric's default).
    pub tls: Option<ServerTls>,
}

/// TLS material of a chaincode served as a service.
///
/// ```
/// use ccvm_guest_sdk::ServerSettings;
///
/// // CHAINCODE_TLS_DISABLED=false CHAINCODE_TLS_KEY=… CHAINCODE_TLS_CERT=…
/// // CHAINCODE_CLIENT_CA_CERT=… (peers must then show a certificate of that CA)
/// if let Some(tls) = ServerSettings::from_env()?.and_then(|settings| settings.tls) {
///     println!("mutual TLS: {}", tls.client_ca_pem.is_some());
/// }
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// PEM key of the server certificate (`CHAINCODE_TLS_KEY`).
    pub key_pem: Vec<u8>,
    /// PEM server certificate (`CHAINCODE_TLS_CERT`).
    pub cert_pem: Vec<u8>,
    /// PEM CA whose client certificates a peer must show (`CHAINCODE_CLIENT_CA_CERT`); with
    /// none, any peer may connect.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl ServerSettings {
    /// The server settings from the environment, or `None` when `CHAINCODE_SERVER_ADDRESS` is
    /// not set (the chaincode then dials the peer).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use ccvm_guest_sdk::{Chaincode, Response, ServerSettings, Stub, serve_as_server};
    ///
    /// struct Ping;
    ///
    /// impl Chaincode for Ping {
    ///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
    ///         Response::success("pong")
    ///     }
    /// }
    ///
    /// // CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 CHAINCODE_ID=ping:4f3a… ./chaincode
    /// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
    /// if let Some(settings) = ServerSettings::from_env()? {
    ///     serve_as_server(Arc::new(Ping), settings).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ShimError::Config`] naming the missing or unreadable setting.
    pub fn from_env() -> Result<Option<Self>, ShimError> {
        Self::from(&|name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn from(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, ShimError> {
        let Some(address) = env("CHAINCODE_SERVER_ADDRESS") else {
            return Ok(None);
        };
        let chaincode_id = env("CHAINCODE_ID").ok_or_else(|| {
            ShimError::Config(
                "CHAINCODE_ID must name the chaincode's package when it is served".to_owned(),
            )
        })?;
        let disabled = env("CHAINCODE_TLS_DISABLED").is_none_or(|v| v.eq_ignore_ascii_case("true"));
        let tls = if disabled {
            None
        } else {
            let read = |var: &str| -> Result<Vec<u8>, ShimError> {
                let path = env(var).ok_or_else(|| {
                    ShimError::Config(format!("{var} must be set when TLS is enabled"))
                })?;
                std::fs::read(&path).map_err(|e| ShimError::Config(format!("{var} ({path}): {e}")))
            };
            Some(ServerTls {
                key_pem: read("CHAINCODE_TLS_KEY")?,
                cert_pem: read("CHAINCODE_TLS_CERT")?,
                client_ca_pem: env("CHAINCODE_CLIENT_CA_CERT")
                    .map(|_| read("CHAINCODE_CLIENT_CA_CERT"))
                    .transpose()?,
            })
        };
        Ok(Some(Self {
            address,
            chaincode_id,
            tls,
        }))
    }
}

/// Most peer connections a chaincode served as a service holds at once; a peer beyond them is
/// refused with `RESOURCE_EXHAUSTED`.
///
/// ```
/// use ccvm_guest_sdk::MAX_PEER_CONNECTIONS;
///
/// // A peer dialling beyond these is refused with RESOURCE_EXHAUSTED until one closes.
/// assert_eq!(MAX_PEER_CONNECTIONS, 64);
/// ```
pub const MAX_PEER_CONNECTIONS: usize = 64;

/// One peer's connection to a chaincode served as a service.
///
/// ```
/// use ccvm_guest_sdk::{PeerConnection, ServerSettings, listen_for_peers};
///
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// let settings = ServerSettings::from_env()?.expect("CHAINCODE_SERVER_ADDRESS is set");
/// listen_for_peers(&settings, |connection: PeerConnection| {
///     let PeerConnection { mut inbound, outbound, place } = connection;
///     tokio::spawn(async move {
///         let _place = place; // held for as long as the conversation lasts
///         while let Ok(Some(message)) = inbound.message().await {
///             println!("the peer sent {:?}", message.r#type);
///         }
///         drop(outbound);
///     });
/// })
/// .await
/// # }
/// ```
pub struct PeerConnection {
    /// The peer's messages.
    pub inbound: Streaming<ChaincodeMessage>,
    /// Where the chaincode's messages go, starting with its REGISTER.
    pub outbound: mpsc::Sender<ChaincodeMessage>,
    /// The connection's place among [`MAX_PEER_CONNECTIONS`], freed when dropped: keep it for as
    /// long as the conversation lasts.
    pub place: OwnedSemaphorePermit,
}

/// Listens as `settings` say and hands each peer that dials in to `on_connection`, until the
/// process ends. The address it listens on is printed to stderr (`serving chaincode ID on
/// ADDRESS`), which tells a free port it was given as port 0.
///
/// ```
/// use ccvm_guest_sdk::{PeerConnection, ServerSettings, listen_for_peers};
///
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// let settings = ServerSettings::from_env()?.expect("CHAINCODE_SERVER_ADDRESS is set");
/// listen_for_peers(&settings, |connection: PeerConnection| {
///     let PeerConnection { mut inbound, outbound, place } = connection;
///     tokio::spawn(async move {
///         let _place = place; // held for as long as the conversation lasts
///         while let Ok(Some(message)) = inbound.message().await {
///             println!("the peer sent {:?}", message.r#type);
///         }
///         drop(outbound);
///     });
/// })
/// .await
/// # }
/// ```
///
/// # Errors
/// An address that cannot be bound, unusable TLS material, or a failed server.
pub async fn listen_for_peers(
    settings: &ServerSettings,
    on_connection: impl Fn(PeerConnection) + Send + Sync + 'static,
) -> Result<(), ShimError> {
    let listener = TcpListener::bind(&settings.address)
        .await
        .map_err(|e| ShimError::Config(format!("cannot listen on {}: {e}", settings.address)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ShimError::Config(format!("cannot read the bound address: {e}")))?;
    let mut server = Server::builder();
    if let Some(tls) = &settings.tls {
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        server = server
            .tls_config(config)
            .map_err(|e| ShimError::Config(format!("TLS: {e}")))?;
    }
    let service = ChaincodeServer::new(Served {
        on_connection: Box::new(on_connection),
        places: Arc::new(Semaphore::new(MAX_PEER_CONNECTIONS)),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    eprintln!("serving chaincode {} on {bound}", settings.chaincode_id);
    server
        .add_service(service)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
        .map_err(|e| ShimError::Disconnected(format!("the chaincode server failed: {e}")))
}

/// Serves `chaincode` as `settings` say: each peer that dials in gets a conversation of its own.
///
/// ```
/// use std::sync::Arc;
///
/// use ccvm_guest_sdk::{Chaincode, Response, ServerSettings, Stub, serve_as_server};
///
/// struct Ping;
///
/// impl Chaincode for Ping {
///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
///         Response::success("pong")
///     }
/// }
///
/// // CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 CHAINCODE_ID=ping:4f3a… ./chaincode
/// # async fn run() -> Result<(), ccvm_guest_sdk::ShimError> {
/// if let Some(settings) = ServerSettings::from_env()? {
///     serve_as_server(Arc::new(Ping), settings).await?;
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`listen_for_peers`].
pub async fn serve_as_server(
    chaincode: Arc<dyn Chaincode + Send + Sync>,
    settings: ServerSettings,
) -> Result<(), ShimError> {
    let chaincode_id = settings.chaincode_id.clone();
    listen_for_peers(&settings, move |connection| {
        let shim = Shim::new(chaincode_id.clone());
        // The channel is new and empty, so the REGISTER always fits.
        if connection
            .outbound
            .try_send(shim.register_message())
            .is_err()
        {
            return;
        }
        let chaincode = Arc::clone(&chaincode);
        tokio::spawn(async move {
            let PeerConnection {
                inbound,
                outbound,
                place,
            } = connection;
            if let Err(e) = converse(chaincode, shim, inbound, outbound).await {
                eprintln!("a peer's connection ended: {e}");
            }
            drop(place);
        });
    })
    .await
}

/// The `protos.Chaincode` service: each connection, within its place, handed on.
struct Served {
    on_connection: Box<dyn Fn(PeerConnection) + Send + Sync>,
    places: Arc<Semaphore>,
}

type ToPeer = Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, Status>> + Send>>;

#[tonic::async_trait]
impl chaincode_server::Chaincode for Served {
    type ConnectStream = ToPeer;

    async fn connect(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<Response<ToPeer>, Status> {
        let place = Arc::clone(&self.places).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the chaincode already serves {MAX_PEER_CONNECTIONS} peer connections"
            ))
        })?;
        let (outbound, to_peer) = mpsc::channel(OUTBOUND_BUFFER);
        (self.on_connection)(PeerConnection {
            inbound: request.into_inner(),
            outbound,
            place,
        });
        Ok(Response::new(Box::pin(
            ReceiverStream::new(to_peer).map(Ok),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_server_address_the_chaincode_dials_the_peer() -> Result<(), ShimError> {
        assert!(ServerSettings::from(&|_| None)?.is_none());
        Ok(())
    }

    #[test]
    fn a_served_chaincode_needs_its_id_and_is_plain_unless_tls_is_enabled() -> Result<(), ShimError>
    {
        let missing_id = ServerSettings::from(&|name| {
            (name == "CHAINCODE_SERVER_ADDRESS").then(|| "0.0.0.0:9999".to_owned())
        });
        assert!(
            matches!(&missing_id, Err(ShimError::Config(why)) if why.starts_with("CHAINCODE_ID")),
            "{missing_id:?}"
        );
        let settings = ServerSettings::from(&|name| match name {
            "CHAINCODE_SERVER_ADDRESS" => Some("0.0.0.0:9999".to_owned()),
            "CHAINCODE_ID" => Some("kv_1.0:abc".to_owned()),
            _ => None,
        })?
        .expect("served");
        assert_eq!(settings.chaincode_id, "kv_1.0:abc");
        assert!(settings.tls.is_none());
        let tls_without_key = ServerSettings::from(&|name| match name {
            "CHAINCODE_SERVER_ADDRESS" => Some("0.0.0.0:9999".to_owned()),
            "CHAINCODE_ID" => Some("kv_1.0:abc".to_owned()),
            "CHAINCODE_TLS_DISABLED" => Some("false".to_owned()),
            _ => None,
        });
        assert!(
            matches!(&tls_without_key, Err(ShimError::Config(why)) if why.starts_with("CHAINCODE_TLS_KEY must be set")),
            "{tls_without_key:?}"
        );
        Ok(())
    }
}
