//! The host side of `wit/chaincode.wit`: the peer channel and logging, per instance.

use std::collections::VecDeque;

use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::{Message, MessageType};
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{GuestLimiter, TxClock};
use crate::container::{InlinePeer, Offered};

wasmtime::component::bindgen!({
    path: "wit",
    world: "chaincode",
    require_store_data_send: true,
    imports: {
        "ccvm:chaincode/peer.send": async,
        "ccvm:chaincode/peer.receive": async,
    },
});

use self::ccvm::chaincode::log::Level;
use self::ccvm::chaincode::{log, peer};
pub(crate) use Chaincode as Guest;

/// What one guest instance owns: its WASI context, its two channel ends and its limits.
pub(crate) struct GuestState {
    pub name: String,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub to_peer: mpsc::Sender<Result<ChaincodeMessage, String>>,
    pub from_peer: mpsc::Receiver<ChaincodeMessage>,
    pub limiter: GuestLimiter,
    pub clock: TxClock,
    /// Answers state requests on the guest's own task.
    pub inline: Box<dyn InlinePeer>,
    /// Inline answers waiting for the guest's next `receive`.
    pub answered: VecDeque<ChaincodeMessage>,
}

fn is_transaction(kind: i32) -> bool {
    kind == MessageType::Transaction as i32 || kind == MessageType::Init as i32
}

fn ends_transaction(kind: i32) -> bool {
    kind == MessageType::Completed as i32 || kind == MessageType::Error as i32
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl peer::Host for GuestState {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), String> {
        let message = match ChaincodeMessage::decode(message.as_slice()) {
            Ok(message) => message,
            Err(e) => {
                let refused = format!("undecodable message from chaincode {}: {e}", self.name);
                let _ = self.to_peer.send(Err(refused.clone())).await;
                return Err(refused);
            }
        };
        if ends_transaction(message.r#type) {
            self.clock.finished();
        }
        match self.inline.offer(message) {
            Offered::Answered(answer) => {
                self.answered.extend(answer);
                Ok(())
            }
            Offered::Declined(message) => self
                .to_peer
                .send(Ok(message))
                .await
                .map_err(|_| "the peer closed the channel".to_owned()),
        }
    }

    async fn receive(&mut self) -> Result<Vec<u8>, String> {
        if let Some(answer) = self.answered.pop_front() {
            return Ok(answer.encode_to_vec());
        }
        let message = self
            .from_peer
            .recv()
            .await
            .ok_or_else(|| "the peer closed the channel".to_owned())?;
        if is_transaction(message.r#type) {
            self.clock.started();
        }
        Ok(message.encode_to_vec())
    }
}

impl log::Host for GuestState {
    fn write(&mut self, level: Level, message: String) {
        let chaincode = self.name.as_str();
        match level {
            Level::Trace => tracing::trace!(chaincode, "{message}"),
            Level::Debug => tracing::debug!(chaincode, "{message}"),
            Level::Info => tracing::info!(chaincode, "{message}"),
            Level::Warn => tracing::warn!(chaincode, "{message}"),
            Level::Error => tracing::error!(chaincode, "{message}"),
        }
    }
}
