//! The host side of the `chaincode` world (`wit/chaincode.wit`) in the runner: the guest's peer
//! channel is relayed to the peer's gRPC stream, its log goes to the container's stderr.

use std::collections::VecDeque;

use ccvm_proto::protos::ChaincodeMessage;
use ccvm_proto::{Message, MessageType};
use ccvm_sandbox::{
    GuestLimiter, LogBudget, TickerHold, TxClock, check_message_size, ends_transaction,
    starts_transaction,
};
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "chaincode",
});

use self::ccvm::chaincode::log::Level;
pub use self::ccvm::chaincode::{log, peer};

/// What the one guest instance owns: its WASI context, its ends of the relay, its limits and the
/// transactions it has been handed and not yet finished.
pub struct GuestState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub to_peer: mpsc::Sender<ChaincodeMessage>,
    pub from_peer: mpsc::Receiver<ChaincodeMessage>,
    pub limiter: GuestLimiter,
    pub clock: TxClock,
    /// What the guest may still write to the log.
    pub log: LogBudget,
    /// Largest message the guest may send.
    pub max_message_bytes: usize,
    /// Channel and id of each transaction the guest holds, oldest first.
    pub open: VecDeque<(String, String)>,
    /// Keeps the epoch ticker going while the guest lives.
    pub _ticker: TickerHold,
}

impl GuestState {
    /// ERROR messages failing every transaction the guest still holds with `reason`.
    pub fn fail_open_transactions(&mut self, reason: &str) -> Vec<ChaincodeMessage> {
        self.open
            .drain(..)
            .map(|(channel_id, txid)| ChaincodeMessage {
                r#type: MessageType::Error as i32,
                payload: reason.as_bytes().to_vec(),
                txid,
                channel_id,
                ..Default::default()
            })
            .collect()
    }
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
    fn send(&mut self, message: Vec<u8>) -> Result<(), String> {
        check_message_size(message.len(), self.max_message_bytes)
            .map_err(|oversize| format!("the chaincode: {oversize}"))?;
        let message = ChaincodeMessage::decode(message.as_slice())
            .map_err(|e| format!("undecodable message from the chaincode: {e}"))?;
        self.clock.sent(message.r#type);
        if ends_transaction(message.r#type) {
            self.open
                .retain(|(channel, txid)| *channel != message.channel_id || *txid != message.txid);
        }
        self.to_peer
            .blocking_send(message)
            .map_err(|_| "the peer closed the channel".to_owned())
    }

    fn receive(&mut self) -> Result<Vec<u8>, String> {
        let message = self
            .from_peer
            .blocking_recv()
            .ok_or_else(|| "the peer closed the channel".to_owned())?;
        self.clock.received(message.r#type);
        if starts_transaction(message.r#type) {
            self.open
                .push_back((message.channel_id.clone(), message.txid.clone()));
            if let Some(note) = self.log.transaction_started() {
                tracing::warn!("{note}");
            }
        }
        Ok(message.encode_to_vec())
    }
}

impl log::Host for GuestState {
    fn write(&mut self, level: Level, message: String) {
        let Some(message) = self.log.admit(&message) else {
            return;
        };
        match level {
            Level::Trace => tracing::trace!("{message}"),
            Level::Debug => tracing::debug!("{message}"),
            Level::Info => tracing::info!("{message}"),
            Level::Warn => tracing::warn!("{message}"),
            Level::Error => tracing::error!("{message}"),
        }
    }
}
