//! The host side of `wit/chaincode.wit`: the peer channel and logging for every guest, and the
//! block store for a guest granted it.

use std::collections::VecDeque;
use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::InprocLimits;
use crate::container::{InlinePeer, Offered, StreamBroken};
use ccvm_sandbox::{
    GuestLimiter, LogBudget, TickerHold, TxClock, check_message_size, starts_transaction,
};

wasmtime::component::bindgen!({
    path: "wit",
    world: "query-chaincode",
    require_store_data_send: true,
    imports: {
        "ccvm:chaincode/peer.send": async,
        "ccvm:chaincode/peer.receive": async,
    },
});

use self::ccvm::chaincode::log::Level;
pub(crate) use self::ccvm::chaincode::{ledger, log, peer};

/// The peer's block store as a guest granted the `ledger` interface reads it. Each method returns
/// one encoded protobuf message, or why it cannot.
pub trait BlockStore: Send + Sync {
    /// The channel's encoded `common.BlockchainInfo`.
    ///
    /// # Errors
    /// An unknown channel, or a store that cannot be read.
    fn chain_info(&self, channel: &str) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` with that number.
    ///
    /// # Errors
    /// No such block, or a store that cannot be read.
    fn block_by_number(&self, channel: &str, number: u64) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` with that header hash.
    ///
    /// # Errors
    /// No such block, or a store that cannot be read.
    fn block_by_hash(&self, channel: &str, hash: &[u8]) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` holding the transaction.
    ///
    /// # Errors
    /// No such transaction, or a store that cannot be read.
    fn block_by_tx_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String>;

    /// The encoded `protos.ProcessedTransaction`.
    ///
    /// # Errors
    /// No such transaction, or a store that cannot be read.
    fn transaction_by_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String>;
}

/// A guest's ends of its two channels to the peer: messages to it, and messages from it.
pub(super) type GuestEnds = (
    mpsc::Sender<Result<Box<ChaincodeMessage>, StreamBroken>>,
    mpsc::Receiver<Box<ChaincodeMessage>>,
);

/// What one guest instance owns: its WASI context, its two channel ends and its limits.
pub(crate) struct GuestState {
    pub name: String,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub to_peer: mpsc::Sender<Result<Box<ChaincodeMessage>, StreamBroken>>,
    pub from_peer: mpsc::Receiver<Box<ChaincodeMessage>>,
    pub limiter: GuestLimiter,
    pub clock: TxClock,
    /// What the guest may still write to the log.
    pub log: LogBudget,
    /// Largest message the guest may send.
    pub max_message_bytes: usize,
    /// Answers state requests on the guest's own task.
    pub inline: Box<dyn InlinePeer>,
    /// Inline answers waiting for the guest's next `receive`.
    pub answered: VecDeque<ChaincodeMessage>,
    /// The guest has come back from waiting in `receive` and not yet met an epoch check: the
    /// ticks that passed while it waited were not spent computing, so that check does not yield.
    /// (A `receive` answered at once does not count, so a guest making many calls still yields.)
    pub resumed: bool,
    /// The block store, for a guest granted it; the only way to it is the `ledger` interface,
    /// which is linked only for such a guest.
    pub blocks: Option<Arc<dyn BlockStore>>,
    /// Keeps the engine's epoch advancing while the guest lives, even after its VM has gone.
    _ticker: TickerHold,
}

impl GuestState {
    fn blocks(&self) -> Result<&dyn BlockStore, String> {
        self.blocks
            .as_deref()
            .ok_or_else(|| format!("chaincode {} may not read the block store", self.name))
    }

    /// The state of a new guest launched as `name`, holding its ends of the channels to the
    /// peer and offering its messages to `inline` first; `ticker` keeps the epoch advancing for
    /// as long as the guest lives.
    pub fn new(
        name: &str,
        wasi: WasiCtx,
        (to_peer, from_peer): GuestEnds,
        inline: Box<dyn InlinePeer>,
        limits: &InprocLimits,
        blocks: Option<Arc<dyn BlockStore>>,
        ticker: TickerHold,
    ) -> Self {
        Self {
            name: name.to_owned(),
            wasi,
            table: ResourceTable::new(),
            to_peer,
            from_peer,
            limiter: GuestLimiter::new(limits.wasm.max_memory_bytes),
            clock: TxClock::default(),
            log: LogBudget::default(),
            max_message_bytes: limits.wasm.max_message_bytes,
            inline,
            answered: VecDeque::new(),
            resumed: false,
            blocks,
            _ticker: ticker,
        }
    }

    /// Ends the guest's connection because it `broke` the protocol, which the peer logs and
    /// fails its transactions with; returns the reason for the guest.
    async fn close_with(&mut self, broke: StreamBroken) -> String {
        let reason = broke.to_string();
        let _ = self.to_peer.send(Err(broke)).await;
        reason
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
    async fn send(&mut self, message: Vec<u8>) -> Result<(), String> {
        if let Err(oversize) = check_message_size(message.len(), self.max_message_bytes) {
            let chaincode = self.name.clone();
            let refused = StreamBroken::Oversize {
                chaincode,
                oversize,
            };
            return Err(self.close_with(refused).await);
        }
        let message = match ChaincodeMessage::decode(message.as_slice()) {
            Ok(message) => message,
            Err(source) => {
                let chaincode = self.name.clone();
                let refused = StreamBroken::Undecodable { chaincode, source };
                return Err(self.close_with(refused).await);
            }
        };
        self.clock.sent(message.r#type);
        match self.inline.offer(message, &mut self.answered) {
            Offered::Answered => Ok(()),
            Offered::Declined(message) => self
                .to_peer
                .send(Ok(Box::new(message)))
                .await
                .map_err(|_| "the peer closed the channel".to_owned()),
            Offered::Closed(reason) => {
                let _ = self
                    .to_peer
                    .send(Err(StreamBroken::Closed { reason }))
                    .await;
                Ok(())
            }
        }
    }

    async fn receive(&mut self) -> Result<Vec<u8>, String> {
        if let Some(answer) = self.answered.pop_front() {
            return Ok(answer.encode_to_vec());
        }
        let message = match self.from_peer.try_recv() {
            Ok(message) => message,
            Err(_) => {
                let message = self.from_peer.recv().await;
                self.resumed = true;
                message.ok_or_else(|| "the peer closed the channel".to_owned())?
            }
        };
        self.clock.received(message.r#type);
        if starts_transaction(message.r#type)
            && let Some(note) = self.log.transaction_started()
        {
            tracing::warn!(chaincode = self.name.as_str(), "{note}");
        }
        Ok(message.encode_to_vec())
    }
}

impl log::Host for GuestState {
    fn write(&mut self, level: Level, message: String) {
        let Some(message) = self.log.admit(&message) else {
            return;
        };
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

impl ledger::Host for GuestState {
    fn chain_info(&mut self, channel: String) -> Result<Vec<u8>, String> {
        self.blocks()?.chain_info(&channel)
    }

    fn block_by_number(&mut self, channel: String, number: u64) -> Result<Vec<u8>, String> {
        self.blocks()?.block_by_number(&channel, number)
    }

    fn block_by_hash(&mut self, channel: String, hash: Vec<u8>) -> Result<Vec<u8>, String> {
        self.blocks()?.block_by_hash(&channel, &hash)
    }

    fn block_by_tx_id(&mut self, channel: String, tx_id: String) -> Result<Vec<u8>, String> {
        self.blocks()?.block_by_tx_id(&channel, &tx_id)
    }

    fn transaction_by_id(&mut self, channel: String, tx_id: String) -> Result<Vec<u8>, String> {
        self.blocks()?.transaction_by_id(&channel, &tx_id)
    }
}
