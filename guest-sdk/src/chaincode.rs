//! The trait a chaincode implements and the response it returns.

use crate::stub::Stub;

/// Status of a successful response.
const OK: i32 = 200;
/// Status of a failed response; Fabric treats 400 and above as errors.
const ERROR: i32 = 500;

/// A chaincode's answer to one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 200 for success; 400 and above are errors and are not endorsed.
    pub status: i32,
    /// A message, usually the error.
    pub message: String,
    /// The result returned to the client.
    pub payload: Vec<u8>,
}

impl Response {
    /// A success carrying `payload`.
    pub fn success(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            status: OK,
            message: String::new(),
            payload: payload.into(),
        }
    }

    /// A failure (status 500) carrying `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            status: ERROR,
            message: message.into(),
            payload: Vec::new(),
        }
    }

    /// Whether the status is below Fabric's error threshold.
    pub fn is_success(&self) -> bool {
        (OK..400).contains(&self.status)
    }
}

impl From<Response> for ccvm_proto::protos::Response {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            message: r.message,
            payload: r.payload,
        }
    }
}

/// A chaincode: called once per transaction with a [`Stub`] onto the ledger.
///
/// Implementations must be deterministic: every peer that endorses must compute the same result.
pub trait Chaincode {
    /// Called for a transaction marked as initialisation. The default succeeds with no payload.
    fn init(&self, stub: &mut Stub<'_>) -> Response {
        let _ = stub;
        Response::success(Vec::new())
    }

    /// Called for every other transaction.
    fn invoke(&self, stub: &mut Stub<'_>) -> Response;
}
