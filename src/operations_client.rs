//! A client of a node's operations endpoint (plain HTTP/1.1), for `ccvm node status` and for
//! tools that read `/metrics` or change `/logspec`.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;

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

/// Sends `method path` with `body` (JSON, when not empty) to the endpoint at `address`; the
/// response's status code and body.
///
/// # Errors
/// [`OperationsError`] when the endpoint cannot be reached or the exchange fails.
pub async fn request(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), OperationsError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| OperationsError::Http {
        address: address.to_owned(),
        source,
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| OperationsError::Method(method.to_owned()))?;
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|source| OperationsError::Connect {
            address: address.to_owned(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.into()))?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, address)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| failed(e.into()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.into()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.into()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
