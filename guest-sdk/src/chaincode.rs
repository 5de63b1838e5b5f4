//! The trait a chaincode implements and the response it returns.

use crate::stub::Stub;

/// Status of a successful response.
const OK: i32 = 200;
/// Status of a failed response.
const ERROR: i32 = 500;
/// The lowest status Fabric treats as an error, whose transaction is not endorsed.
pub(crate) const ERROR_THRESHOLD: i32 = 400;

/// A chaincode's answer to one transaction.
///
/// ```
/// use ccvm_guest_sdk::Response;
///
/// let found = Response::success("blue");
/// assert_eq!((found.status, found.payload.as_slice()), (200, &b"blue"[..]));
/// let refused = Response::error("the asset asset9 does not exist");
/// assert_eq!((refused.status, refused.message.as_str()), (500, "the asset asset9 does not exist"));
/// ```
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
    ///
    /// ```
    /// use ccvm_guest_sdk::Response;
    ///
    /// assert!(Response::success(b"{\"size\":5}".to_vec()).is_success());
    /// ```
    pub fn success(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            status: OK,
            message: String::new(),
            payload: payload.into(),
        }
    }

    /// A failure (status 500) carrying `message`.
    ///
    /// ```
    /// use ccvm_guest_sdk::Response;
    ///
    /// let refused = Response::error(format!("the asset {} does not exist", "asset9"));
    /// assert!(!refused.is_success());
    /// ```
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            status: ERROR,
            message: message.into(),
            payload: Vec::new(),
        }
    }

    /// Whether the status is below Fabric's error threshold.
    ///
    /// ```
    /// use ccvm_guest_sdk::Response;
    ///
    /// let created = Response { status: 201, message: String::new(), payload: Vec::new() };
    /// assert!(created.is_success());
    /// assert!(!Response { status: 404, ..created }.is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        (OK..ERROR_THRESHOLD).contains(&self.status)
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
///
/// ```
/// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// use ccvm_guest_sdk::{Chaincode, Response, Stub};
///
/// /// Counts calls under the key `count`, starting from the value given at instantiation.
/// struct Counter;
///
/// impl Chaincode for Counter {
///     fn init(&self, stub: &mut Stub<'_>) -> Response {
///         let (_, params) = stub.function_and_parameters();
///         let start = params.first().cloned().unwrap_or_else(|| "0".to_owned());
///         match stub.put_state("count", start) {
///             Ok(()) => Response::success(Vec::new()),
///             Err(e) => Response::error(e.to_string()),
///         }
///     }
///
///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
///         let count = match stub.get_state("count") {
///             Ok(value) => value.unwrap_or_default(),
///             Err(e) => return Response::error(e.to_string()),
///         };
///         let next = String::from_utf8_lossy(&count).parse::<u64>().unwrap_or(0) + 1;
///         match stub.put_state("count", next.to_string()) {
///             Ok(()) => Response::success(next.to_string()),
///             Err(e) => Response::error(e.to_string()),
///         }
///     }
/// }
///
/// let mut ledger = MockLedger::new("counter");
/// assert!(ledger.call(&Counter, MockCall::new(&["init", "41"]).init()).committed);
/// assert_eq!(ledger.invoke(&Counter, &["bump"]).response.payload, b"42");
/// ```
pub trait Chaincode {
    /// Called for a transaction marked as initialisation. The default succeeds with no payload.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Seeded;
    ///
    /// impl Chaincode for Seeded {
    ///     fn init(&self, stub: &mut Stub<'_>) -> Response {
    ///         match stub.put_state("owner", "org1") {
    ///             Ok(()) => Response::success(Vec::new()),
    ///             Err(e) => Response::error(e.to_string()),
    ///         }
    ///     }
    ///
    ///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
    ///         Response::success(Vec::new())
    ///     }
    /// }
    ///
    /// let mut ledger = MockLedger::new("seeded");
    /// ledger.call(&Seeded, MockCall::new(&["init"]).init());
    /// assert_eq!(ledger.state("owner"), Some(b"org1".to_vec()));
    /// ```
    fn init(&self, stub: &mut Stub<'_>) -> Response {
        let _ = stub;
        Response::success(Vec::new())
    }

    /// Called for every other transaction.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Echo;
    ///
    /// impl Chaincode for Echo {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         Response::success(stub.string_args().join(" "))
    ///     }
    /// }
    ///
    /// assert_eq!(MockLedger::new("echo").invoke(&Echo, &["say", "hi"]).response.payload, b"say hi");
    /// ```
    fn invoke(&self, stub: &mut Stub<'_>) -> Response;
}
