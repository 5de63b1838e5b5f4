//! The wasm transport: inside ccvm's inproc VM the shim talks to the peer through the host
//! functions of the `ccvm:chaincode/peer` interface (`wit/chaincode.wit`). The guest is single
//! threaded: a stub call sends its request and waits in `receive` for the answer; a transaction
//! the peer sends meanwhile waits its turn.

use std::cell::RefCell;
use std::collections::VecDeque;

use ccvm_proto::Message;
use ccvm_proto::protos::ChaincodeMessage;

use crate::chaincode::Chaincode;
use crate::error::ShimError;
use crate::shim::{Action, PeerCall, Shim, Transaction, run_transaction};

wit_bindgen::generate!({
    path: "../wit",
    world: "chaincode",
});

use self::ccvm::chaincode::peer;

fn send(message: &ChaincodeMessage) -> Result<(), ShimError> {
    peer::send(&message.encode_to_vec()).map_err(ShimError::Disconnected)
}

fn receive() -> Result<ChaincodeMessage, ShimError> {
    let bytes = peer::receive().map_err(ShimError::Disconnected)?;
    ChaincodeMessage::decode(bytes.as_slice())
        .map_err(|e| ShimError::Protocol(format!("undecodable message from peer: {e}")))
}

/// The guest's side of the conversation: the shim and the transactions waiting their turn.
struct WasmPeer {
    shim: RefCell<Shim>,
    waiting: RefCell<VecDeque<Transaction>>,
}

impl WasmPeer {
    /// Feeds one message to the shim; returns it if it answers the running transaction.
    fn dispatch(&self, message: ChaincodeMessage) -> Result<Option<ChaincodeMessage>, ShimError> {
        let action = self.shim.borrow_mut().handle(message)?;
        match action {
            Action::Nothing => Ok(None),
            Action::Send(reply) => send(&reply).map(|()| None),
            Action::Run(transaction) => {
                self.waiting.borrow_mut().push_back(transaction);
                Ok(None)
            }
            Action::Deliver(answer) => Ok(Some(answer)),
        }
    }
}

impl PeerCall for WasmPeer {
    fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
        send(&request)?;
        loop {
            if let Some(answer) = self.dispatch(receive()?)?
                && answer.txid == request.txid
                && answer.channel_id == request.channel_id
            {
                return Ok(answer);
            }
        }
    }
}

/// Registers with the peer under `CORE_CHAINCODE_ID_NAME` and serves transactions, one at a
/// time, until the peer closes the channel.
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
/// // Built with `cargo build --target wasm32-wasip2`, run by ccvm inside the peer.
/// fn main() -> Result<(), ShimError> {
///     ccvm_guest_sdk::start(Ping)
/// }
/// ```
///
/// # Errors
/// A missing name, a refused registration, or a broken channel.
pub fn start<C: Chaincode>(chaincode: C) -> Result<(), ShimError> {
    let name = std::env::var("CORE_CHAINCODE_ID_NAME").map_err(|_| {
        ShimError::Config("chaincode id not provided: set CORE_CHAINCODE_ID_NAME".to_owned())
    })?;
    let shim = Shim::new(name);
    send(&shim.register_message())?;
    let peer = WasmPeer {
        shim: RefCell::new(shim),
        waiting: RefCell::default(),
    };
    loop {
        let next = peer.waiting.borrow_mut().pop_front();
        match next {
            Some(transaction) => send(&run_transaction(&chaincode, transaction, &peer))?,
            None => match receive() {
                Ok(message) => {
                    peer.dispatch(message)?;
                }
                Err(ShimError::Disconnected(_)) => return Ok(()),
                Err(e) => return Err(e),
            },
        }
    }
}
