//! The host side of `wit/chaincode.wit`: the peer channel and logging, per instance.

use ccvm_proto::Message;
use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "wit",
    world: "chaincode",
    require_store_data_send: true,
});

pub(crate) use Chaincode as Guest;
use ccvm::chaincode::log::Level;
use ccvm::chaincode::{log, peer};

/// What one guest instance owns: its WASI context and its two channel ends.
pub(crate) struct GuestState {
    pub name: String,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub to_peer: mpsc::Sender<Result<ChaincodeMessage, String>>,
    pub from_peer: mpsc::Receiver<ChaincodeMessage>,
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
        let decoded = ChaincodeMessage::decode(message.as_slice())
            .map_err(|e| format!("undecodable message from chaincode {}: {e}", self.name));
        let refused = decoded.as_ref().err().cloned();
        self.to_peer
            .blocking_send(decoded)
            .map_err(|_| "the peer closed the channel".to_owned())?;
        refused.map_or(Ok(()), Err)
    }

    fn receive(&mut self) -> Result<Vec<u8>, String> {
        self.from_peer
            .blocking_recv()
            .map(|message| message.encode_to_vec())
            .ok_or_else(|| "the peer closed the channel".to_owned())
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
