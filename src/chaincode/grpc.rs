//! The gRPC transport: `protos.ChaincodeSupport/Register` adapted onto a [`Handler`].

use std::pin::Pin;

use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::protos::chaincode_support_server::{self, ChaincodeSupportServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::handler::Handler;
use super::support::ChaincodeSupport;
use crate::container::StreamBroken;

/// Messages buffered towards one chaincode before the handler waits for the stream.
const OUTBOUND_BUFFER: usize = 256;

/// The `ChaincodeSupport` gRPC service: each `Register` stream gets its own [`Handler`].
pub struct ChaincodeSupportService {
    support: ChaincodeSupport,
}

impl ChaincodeSupportService {
    /// The service as a tonic server, with the configured message size limit.
    pub fn server(support: ChaincodeSupport) -> ChaincodeSupportServer<Self> {
        let limit = support.config().max_message_bytes;
        ChaincodeSupportServer::new(Self { support })
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, Status>> + Send>>;

#[tonic::async_trait]
impl chaincode_support_server::ChaincodeSupport for ChaincodeSupportService {
    type RegisterStream = MessageStream;

    async fn register(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let authenticated_as = request
            .peer_certs()
            .and_then(|certs| certs.first().and_then(|cert| common_name(cert)));
        let inbound = request
            .into_inner()
            .map(|next| next.map_err(StreamBroken::Transport));
        let (outbound, replies) = mpsc::channel(OUTBOUND_BUFFER);
        let handler = Handler::new(self.support.clone(), outbound, authenticated_as);
        self.support.spawn(handler.serve(inbound));
        Ok(Response::new(Box::pin(
            ReceiverStream::new(replies).map(|reply| Ok(*reply)),
        )))
    }
}

/// The common name of a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}
