//! The chaincode side of the protocol as a sans-IO state machine: it takes the peer's messages
//! and says what to do; a transport moves the bytes. The gRPC transport and ccvm's wasm host
//! channel both drive this same machine.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ccvm_proto::protos::{
    ChaincodeAdditionalParams, ChaincodeId, ChaincodeInput, ChaincodeMessage, SignedProposal,
};
use ccvm_proto::{Message, MessageType};

use crate::chaincode::{Chaincode, ERROR_THRESHOLD};
use crate::error::ShimError;
use crate::stub::Stub;

/// Sends one request of a running transaction to the peer and waits for its answer.
///
/// ```
/// use ccvm_guest_sdk::proto::MessageType;
/// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
/// use ccvm_guest_sdk::{
///     Chaincode, PeerCall, PeerFeatures, Response, ShimError, Stub, Transaction, run_transaction,
/// };
///
/// /// A peer whose ledger is empty and that takes every write.
/// struct EmptyPeer;
///
/// impl PeerCall for EmptyPeer {
///     fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
///         Ok(ChaincodeMessage {
///             r#type: MessageType::Response as i32,
///             txid: request.txid,
///             channel_id: request.channel_id,
///             ..Default::default()
///         })
///     }
/// }
///
/// struct Greeter;
///
/// impl Chaincode for Greeter {
///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
///         match stub.put_state("greeting", "hello") {
///             Ok(()) => Response::success("greeted"),
///             Err(e) => Response::error(e.to_string()),
///         }
///     }
/// }
///
/// let transaction = Transaction {
///     is_init: false,
///     channel_id: "mychannel".to_owned(),
///     tx_id: "tx1".to_owned(),
///     input: ChaincodeInput { args: vec![b"greet".to_vec()], ..Default::default() },
///     proposal: None,
///     peer_features: PeerFeatures::default(),
/// };
/// let completed = run_transaction(&Greeter, transaction, &EmptyPeer);
/// assert_eq!(completed.r#type, MessageType::Completed as i32);
/// ```
pub trait PeerCall {
    /// Sends `request` and returns the peer's RESPONSE or ERROR for it.
    ///
    /// ```
    /// use ccvm_guest_sdk::proto::MessageType;
    /// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
    /// use ccvm_guest_sdk::{
    ///     Chaincode, PeerCall, PeerFeatures, Response, ShimError, Stub, Transaction, run_transaction,
    /// };
    ///
    /// /// A peer whose ledger is empty and that takes every write.
    /// struct EmptyPeer;
    ///
    /// impl PeerCall for EmptyPeer {
    ///     fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
    ///         Ok(ChaincodeMessage {
    ///             r#type: MessageType::Response as i32,
    ///             txid: request.txid,
    ///             channel_id: request.channel_id,
    ///             ..Default::default()
    ///         })
    ///     }
    /// }
    ///
    /// struct Greeter;
    ///
    /// impl Chaincode for Greeter {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         match stub.put_state("greeting", "hello") {
    ///             Ok(()) => Response::success("greeted"),
    ///             Err(e) => Response::error(e.to_string()),
    ///         }
    ///     }
    /// }
    ///
    /// let transaction = Transaction {
    ///     is_init: false,
    ///     channel_id: "mychannel".to_owned(),
    ///     tx_id: "tx1".to_owned(),
    ///     input: ChaincodeInput { args: vec![b"greet".to_vec()], ..Default::default() },
    ///     proposal: None,
    ///     peer_features: PeerFeatures::default(),
    /// };
    /// let completed = run_transaction(&Greeter, transaction, &EmptyPeer);
    /// assert_eq!(completed.r#type, MessageType::Completed as i32);
    /// ```
    ///
    /// # Errors
    /// [`ShimError::Disconnected`] when the connection is gone.
    fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError>;
}

/// Sends one request of a transaction and returns the RESPONSE payload; an ERROR answer
/// becomes [`ShimError::Peer`] with the peer's text.
pub(crate) fn request(
    peer: &dyn PeerCall,
    channel_id: &str,
    tx_id: &str,
    kind: MessageType,
    payload: Vec<u8>,
) -> Result<Vec<u8>, ShimError> {
    let answer = peer.call(ChaincodeMessage {
        r#type: kind as i32,
        payload,
        txid: tx_id.to_owned(),
        channel_id: channel_id.to_owned(),
        ..Default::default()
    })?;
    match MessageType::try_from(answer.r#type) {
        Ok(MessageType::Response) => Ok(answer.payload),
        Ok(MessageType::Error) => Err(ShimError::Peer(
            String::from_utf8_lossy(&answer.payload).into_owned(),
        )),
        _ => Err(ShimError::Protocol(format!(
            "expected RESPONSE to {}, got type {}",
            kind.as_str_name(),
            answer.r#type
        ))),
    }
}

/// The fewest keys a capable peer is sent per GET_STATE_MULTIPLE, whatever smaller figure it
/// advertises: Fabric's Go shim's floor.
const MIN_MULTIPLE_KEYS: usize = 100;
/// The fewest records a capable peer is sent per WRITE_BATCH_STATE, whatever smaller figure it
/// advertises: Fabric's Go shim's floor.
const MIN_BATCH_RECORDS: usize = 100;

/// What the peer said in READY it can do beyond the base protocol.
///
/// ```
/// use ccvm_guest_sdk::PeerFeatures;
///
/// // Before READY, or from a peer that offers nothing more: one GET_STATE per key, and one
/// // request per write.
/// assert_eq!(PeerFeatures::default().get_multiple_keys, None);
/// assert_eq!(PeerFeatures::default().write_batch_records, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerFeatures {
    /// Most keys per GET_STATE_MULTIPLE, if the peer takes it at all; a peer that does not
    /// (Fabric before 3.1) is asked one GET_STATE per key.
    pub get_multiple_keys: Option<usize>,
    /// Most records per WRITE_BATCH_STATE, if the peer takes batched writes at all; a peer
    /// that does not (Fabric before 3.1) is sent each write as it is made, batch or not.
    pub write_batch_records: Option<usize>,
}

impl PeerFeatures {
    /// The features READY's `payload` offers. An empty or unreadable payload offers none, as
    /// Fabric's shims read it.
    fn from_ready(payload: &[u8]) -> Self {
        let Ok(params) = ChaincodeAdditionalParams::decode(payload) else {
            return Self::default();
        };
        let max_keys = usize::try_from(params.max_size_get_multiple_keys).unwrap_or(usize::MAX);
        let max_records = usize::try_from(params.max_size_write_batch).unwrap_or(usize::MAX);
        Self {
            get_multiple_keys: params
                .use_get_multiple_keys
                .then_some(max_keys.max(MIN_MULTIPLE_KEYS)),
            write_batch_records: params
                .use_write_batch
                .then_some(max_records.max(MIN_BATCH_RECORDS)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Established,
    Ready,
}

/// A transaction the peer asked the chaincode to run.
///
/// ```
/// # use ccvm_guest_sdk::proto::MessageType;
/// # use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
/// # use ccvm_guest_sdk::{
/// #     Chaincode, PeerCall, PeerFeatures, Response, ShimError, Stub, Transaction, run_transaction,
/// # };
/// #
/// # /// A peer whose ledger is empty and that takes every write.
/// # struct EmptyPeer;
/// #
/// # impl PeerCall for EmptyPeer {
/// #     fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
/// #         Ok(ChaincodeMessage {
/// #             r#type: MessageType::Response as i32,
/// #             txid: request.txid,
/// #             channel_id: request.channel_id,
/// #             ..Default::default()
/// #         })
/// #     }
/// # }
/// #
/// # struct Greeter;
/// #
/// # impl Chaincode for Greeter {
/// #     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
/// #         match stub.put_state("greeting", "hello") {
/// #             Ok(()) => Response::success("greeted"),
/// #             Err(e) => Response::error(e.to_string()),
/// #         }
/// #     }
/// # }
/// #
/// # let transaction = Transaction {
/// #     is_init: false,
/// #     channel_id: "mychannel".to_owned(),
/// #     tx_id: "tx1".to_owned(),
/// #     input: ChaincodeInput { args: vec![b"greet".to_vec()], ..Default::default() },
/// #     proposal: None,
/// #     peer_features: PeerFeatures::default(),
/// # };
/// let completed = run_transaction(&Greeter, transaction, &EmptyPeer);
/// assert_eq!(completed.r#type, MessageType::Completed as i32);
/// ```
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Whether it is an INIT rather than a TRANSACTION.
    pub is_init: bool,
    /// The channel.
    pub channel_id: String,
    /// The transaction id.
    pub tx_id: String,
    /// The arguments.
    pub input: ChaincodeInput,
    /// The client's signed proposal.
    pub proposal: Option<SignedProposal>,
    /// What the peer can do beyond the base protocol.
    pub peer_features: PeerFeatures,
}

impl Transaction {
    /// A message of `kind` that answers this transaction.
    fn reply(&self, kind: MessageType, payload: Vec<u8>) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: kind as i32,
            payload,
            txid: self.tx_id.clone(),
            channel_id: self.channel_id.clone(),
            ..Default::default()
        }
    }

    /// The ERROR message that fails this transaction with `text`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::proto::MessageType;
    /// # use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
    /// # use ccvm_guest_sdk::{
    /// #     Chaincode, PeerCall, PeerFeatures, Response, ShimError, Stub, Transaction, run_transaction,
    /// # };
    /// #
    /// # /// A peer whose ledger is empty and that takes every write.
    /// # struct EmptyPeer;
    /// #
    /// # impl PeerCall for EmptyPeer {
    /// #     fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
    /// #         Ok(ChaincodeMessage {
    /// #             r#type: MessageType::Response as i32,
    /// #             txid: request.txid,
    /// #             channel_id: request.channel_id,
    /// #             ..Default::default()
    /// #         })
    /// #     }
    /// # }
    /// #
    /// # struct Greeter;
    /// #
    /// # impl Chaincode for Greeter {
    /// #     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    /// #         match stub.put_state("greeting", "hello") {
    /// #             Ok(()) => Response::success("greeted"),
    /// #             Err(e) => Response::error(e.to_string()),
    /// #         }
    /// #     }
    /// # }
    /// #
    /// # let transaction = Transaction {
    /// #     is_init: false,
    /// #     channel_id: "mychannel".to_owned(),
    /// #     tx_id: "tx1".to_owned(),
    /// #     input: ChaincodeInput { args: vec![b"greet".to_vec()], ..Default::default() },
    /// #     proposal: None,
    /// #     peer_features: PeerFeatures::default(),
    /// # };
    /// let refused = transaction.error("busy".to_owned());
    /// assert_eq!((refused.r#type, refused.txid.as_str()), (MessageType::Error as i32, "tx1"));
    /// ```
    pub fn error(&self, text: String) -> ChaincodeMessage {
        self.reply(MessageType::Error, text.into_bytes())
    }
}

/// What the transport should do with a message from the peer.
///
/// ```
/// use ccvm_guest_sdk::proto::MessageType;
/// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
/// use ccvm_guest_sdk::proto::Message;
/// use ccvm_guest_sdk::{Action, Shim};
///
/// let message = |kind: MessageType, payload: Vec<u8>| ChaincodeMessage {
///     r#type: kind as i32,
///     payload,
///     txid: "tx1".to_owned(),
///     ..Default::default()
/// };
/// let mut shim = Shim::new("kv:1.0");
/// let _register = shim.register_message(); // sent first
/// assert!(matches!(shim.handle(message(MessageType::Registered, vec![]))?, Action::Nothing));
/// assert!(matches!(shim.handle(message(MessageType::Ready, vec![]))?, Action::Nothing));
/// assert!(shim.is_ready());
/// let input = ChaincodeInput { args: vec![b"get".to_vec()], ..Default::default() };
/// let action = shim.handle(message(MessageType::Transaction, input.encode_to_vec()))?;
/// assert!(matches!(action, Action::Run(transaction) if transaction.tx_id == "tx1"));
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
#[derive(Debug)]
pub enum Action {
    /// Nothing (a handshake step or a keepalive).
    Nothing,
    /// Send this message to the peer.
    Send(ChaincodeMessage),
    /// Run this transaction, then send the message [`run_transaction`] returns.
    Run(Transaction),
    /// Hand this RESPONSE or ERROR to the transaction waiting in [`PeerCall::call`].
    Deliver(ChaincodeMessage),
}

/// The shim's handshake state: created → established (REGISTERED) → ready (READY).
///
/// ```
/// use ccvm_guest_sdk::proto::MessageType;
/// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
/// use ccvm_guest_sdk::proto::Message;
/// use ccvm_guest_sdk::{Action, Shim};
///
/// let message = |kind: MessageType, payload: Vec<u8>| ChaincodeMessage {
///     r#type: kind as i32,
///     payload,
///     txid: "tx1".to_owned(),
///     ..Default::default()
/// };
/// let mut shim = Shim::new("kv:1.0");
/// let _register = shim.register_message(); // sent first
/// assert!(matches!(shim.handle(message(MessageType::Registered, vec![]))?, Action::Nothing));
/// assert!(matches!(shim.handle(message(MessageType::Ready, vec![]))?, Action::Nothing));
/// assert!(shim.is_ready());
/// let input = ChaincodeInput { args: vec![b"get".to_vec()], ..Default::default() };
/// let action = shim.handle(message(MessageType::Transaction, input.encode_to_vec()))?;
/// assert!(matches!(action, Action::Run(transaction) if transaction.tx_id == "tx1"));
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
#[derive(Debug)]
pub struct Shim {
    name: String,
    state: State,
    features: PeerFeatures,
}

impl Shim {
    /// A shim for the chaincode registering as `name`.
    ///
    /// ```
    /// use ccvm_guest_sdk::Shim;
    ///
    /// let shim = Shim::new("asset-transfer:1.0");
    /// assert!(!shim.is_ready());
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: State::Created,
            features: PeerFeatures::default(),
        }
    }

    /// The REGISTER message that opens the conversation.
    ///
    /// ```
    /// use ccvm_guest_sdk::Shim;
    /// use ccvm_guest_sdk::proto::{Message, MessageType, protos::ChaincodeId};
    ///
    /// let register = Shim::new("kv:1.0").register_message();
    /// assert_eq!(register.r#type, MessageType::Register as i32);
    /// assert_eq!(ChaincodeId::decode(register.payload.as_slice()).unwrap().name, "kv:1.0");
    /// ```
    pub fn register_message(&self) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: MessageType::Register as i32,
            payload: ChaincodeId {
                name: self.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            ..Default::default()
        }
    }

    /// Whether the peer has sent READY.
    ///
    /// ```
    /// use ccvm_guest_sdk::proto::MessageType;
    /// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
    /// use ccvm_guest_sdk::proto::Message;
    /// use ccvm_guest_sdk::{Action, Shim};
    ///
    /// let message = |kind: MessageType, payload: Vec<u8>| ChaincodeMessage {
    ///     r#type: kind as i32,
    ///     payload,
    ///     txid: "tx1".to_owned(),
    ///     ..Default::default()
    /// };
    /// let mut shim = Shim::new("kv:1.0");
    /// let _register = shim.register_message(); // sent first
    /// assert!(matches!(shim.handle(message(MessageType::Registered, vec![]))?, Action::Nothing));
    /// assert!(matches!(shim.handle(message(MessageType::Ready, vec![]))?, Action::Nothing));
    /// assert!(shim.is_ready());
    /// let input = ChaincodeInput { args: vec![b"get".to_vec()], ..Default::default() };
    /// let action = shim.handle(message(MessageType::Transaction, input.encode_to_vec()))?;
    /// assert!(matches!(action, Action::Run(transaction) if transaction.tx_id == "tx1"));
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Decides what to do with one message from the peer. A message that is wrong for the state
    /// is answered with ERROR, as Fabric's shims do.
    ///
    /// ```
    /// use ccvm_guest_sdk::proto::MessageType;
    /// use ccvm_guest_sdk::proto::protos::ChaincodeMessage;
    /// use ccvm_guest_sdk::{Shim, ShimError};
    ///
    /// let mut shim = Shim::new("kv:1.0");
    /// let refused = ChaincodeMessage {
    ///     r#type: MessageType::Error as i32,
    ///     payload: b"chaincode kv:1.0 is not installed".to_vec(),
    ///     ..Default::default()
    /// };
    /// assert!(matches!(shim.handle(refused), Err(ShimError::Peer(text)) if text.contains("not installed")));
    /// ```
    ///
    /// # Errors
    /// [`ShimError::Peer`] when the peer refuses the registration (ERROR before REGISTERED).
    pub fn handle(&mut self, message: ChaincodeMessage) -> Result<Action, ShimError> {
        let kind = MessageType::try_from(message.r#type).unwrap_or(MessageType::Undefined);
        if kind == MessageType::Keepalive {
            return Ok(Action::Nothing);
        }
        match (self.state, kind) {
            (State::Created, MessageType::Registered) => {
                self.state = State::Established;
                Ok(Action::Nothing)
            }
            (State::Created, MessageType::Error) => Err(ShimError::Peer(
                String::from_utf8_lossy(&message.payload).into_owned(),
            )),
            (State::Established, MessageType::Ready) => {
                self.state = State::Ready;
                self.features = PeerFeatures::from_ready(&message.payload);
                Ok(Action::Nothing)
            }
            (State::Ready, MessageType::Response | MessageType::Error) => {
                Ok(Action::Deliver(message))
            }
            (State::Ready, MessageType::Transaction | MessageType::Init) => {
                match ChaincodeInput::decode(message.payload.as_slice()) {
                    Ok(input) => Ok(Action::Run(Transaction {
                        is_init: kind == MessageType::Init,
                        channel_id: message.channel_id,
                        tx_id: message.txid,
                        input,
                        proposal: message.proposal,
                        peer_features: self.features,
                    })),
                    Err(e) => Ok(Action::Send(error_message(
                        &message,
                        format!("malformed input: {e}"),
                    ))),
                }
            }
            (state, _) => {
                let text = format!(
                    "shim in state {state:?} cannot handle {}",
                    kind.as_str_name()
                );
                Ok(Action::Send(error_message(&message, text)))
            }
        }
    }
}

fn error_message(to: &ChaincodeMessage, text: String) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: MessageType::Error as i32,
        payload: text.into_bytes(),
        txid: to.txid.clone(),
        channel_id: to.channel_id.clone(),
        ..Default::default()
    }
}

/// Runs one transaction on `chaincode` and returns the message to send back: COMPLETED with the
/// response and any event, or ERROR if the chaincode panicked, its proposal was unreadable or
/// the peer refused the writes of its open write batch. A successful response's open batch is
/// sent first; an error response's is dropped, as the peer would discard its writes.
///
/// ```
/// use ccvm_guest_sdk::proto::MessageType;
/// use ccvm_guest_sdk::proto::protos::{ChaincodeInput, ChaincodeMessage};
/// use ccvm_guest_sdk::{
///     Chaincode, PeerCall, PeerFeatures, Response, ShimError, Stub, Transaction, run_transaction,
/// };
///
/// /// A peer whose ledger is empty and that takes every write.
/// struct EmptyPeer;
///
/// impl PeerCall for EmptyPeer {
///     fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
///         Ok(ChaincodeMessage {
///             r#type: MessageType::Response as i32,
///             txid: request.txid,
///             channel_id: request.channel_id,
///             ..Default::default()
///         })
///     }
/// }
///
/// struct Greeter;
///
/// impl Chaincode for Greeter {
///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
///         match stub.put_state("greeting", "hello") {
///             Ok(()) => Response::success("greeted"),
///             Err(e) => Response::error(e.to_string()),
///         }
///     }
/// }
///
/// let transaction = Transaction {
///     is_init: false,
///     channel_id: "mychannel".to_owned(),
///     tx_id: "tx1".to_owned(),
///     input: ChaincodeInput { args: vec![b"greet".to_vec()], ..Default::default() },
///     proposal: None,
///     peer_features: PeerFeatures::default(),
/// };
/// let completed = run_transaction(&Greeter, transaction, &EmptyPeer);
/// assert_eq!(completed.r#type, MessageType::Completed as i32);
/// ```
pub fn run_transaction(
    chaincode: &dyn Chaincode,
    transaction: Transaction,
    peer: &dyn PeerCall,
) -> ChaincodeMessage {
    let mut stub = match Stub::new(peer, &transaction) {
        Ok(stub) => stub,
        Err(e) => return transaction.error(e.to_string()),
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if transaction.is_init {
            chaincode.init(&mut stub)
        } else {
            chaincode.invoke(&mut stub)
        }
    }));
    match outcome {
        Ok(response) => {
            if response.status < ERROR_THRESHOLD
                && let Err(refused) = stub.finish_write_batch()
            {
                return transaction.error(format!("the write batch was refused: {refused}"));
            }
            let mut completed = transaction.reply(
                MessageType::Completed,
                ccvm_proto::protos::Response::from(response).encode_to_vec(),
            );
            completed.chaincode_event = stub.take_event();
            completed
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            transaction.error(format!("chaincode panicked: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageType) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: kind as i32,
            txid: "tx1".to_owned(),
            ..Default::default()
        }
    }

    fn ready(params: Option<ChaincodeAdditionalParams>) -> ChaincodeMessage {
        ChaincodeMessage {
            payload: params.map(|p| p.encode_to_vec()).unwrap_or_default(),
            ..message(MessageType::Ready)
        }
    }

    /// The features a transaction carries after the handshake ended with `ready`.
    fn features_after(ready: ChaincodeMessage) -> Result<PeerFeatures, ShimError> {
        let mut shim = Shim::new("cc");
        shim.handle(message(MessageType::Registered))?;
        shim.handle(ready)?;
        match shim.handle(message(MessageType::Transaction))? {
            Action::Run(transaction) => Ok(transaction.peer_features),
            other => Err(ShimError::Protocol(format!(
                "expected a transaction, got {other:?}"
            ))),
        }
    }

    #[test]
    fn a_ready_without_payload_offers_nothing_beyond_the_base_protocol() -> Result<(), ShimError> {
        assert_eq!(features_after(ready(None))?, PeerFeatures::default());
        Ok(())
    }

    #[test]
    fn offered_features_are_used_as_offered_and_no_smaller_than_fabrics_floors()
    -> Result<(), ShimError> {
        let offered = |reads: Option<u32>, writes: Option<u32>| {
            let features = features_after(ready(Some(ChaincodeAdditionalParams {
                use_get_multiple_keys: reads.is_some(),
                max_size_get_multiple_keys: reads.unwrap_or(1000),
                use_write_batch: writes.is_some(),
                max_size_write_batch: writes.unwrap_or(1000),
            })))?;
            Ok::<_, ShimError>((features.get_multiple_keys, features.write_batch_records))
        };
        assert_eq!(offered(Some(1000), Some(500))?, (Some(1000), Some(500)));
        assert_eq!(
            offered(Some(5), Some(5))?,
            (Some(MIN_MULTIPLE_KEYS), Some(MIN_BATCH_RECORDS))
        );
        assert_eq!(offered(None, Some(1000))?, (None, Some(1000)));
        assert_eq!(offered(Some(1000), None)?, (Some(1000), None));
        assert_eq!(offered(None, None)?, (None, None));
        Ok(())
    }

    #[test]
    fn handshake_reaches_ready_only_in_order() -> Result<(), ShimError> {
        let mut shim = Shim::new("cc");
        assert!(
            matches!(shim.handle(message(MessageType::Ready))?, Action::Send(m) if m.r#type == MessageType::Error as i32)
        );
        assert!(matches!(
            shim.handle(message(MessageType::Registered))?,
            Action::Nothing
        ));
        assert!(!shim.is_ready());
        assert!(matches!(
            shim.handle(message(MessageType::Ready))?,
            Action::Nothing
        ));
        assert!(shim.is_ready());
        assert!(
            matches!(shim.handle(message(MessageType::Transaction))?, Action::Run(tx) if tx.tx_id == "tx1")
        );
        assert!(matches!(
            shim.handle(message(MessageType::Response))?,
            Action::Deliver(_)
        ));
        Ok(())
    }

    #[test]
    fn refused_registration_is_an_error() {
        let mut shim = Shim::new("cc");
        let mut refusal = message(MessageType::Error);
        refusal.payload = b"not launched".to_vec();
        assert!(
            matches!(shim.handle(refusal), Err(ShimError::Peer(text)) if text == "not launched")
        );
    }
}
