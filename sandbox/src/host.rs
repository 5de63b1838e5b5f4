//! The host side of the `chaincode` world (`wit/chaincode.wit`) for every wasm guest, wherever it
//! runs: each instance's state, the `peer` and `log` host functions, the linker that grants them,
//! the store that holds an instance within its limits, and running its `main`.
//!
//! What the guest's messages reach is the [`PeerLink`] of whoever runs it: the peer's handler
//! inside the peer, a gRPC stream to the peer in the wasm runner. The host functions do what is
//! the same for both: hold the guest to its message size, decode its messages, keep its
//! transaction clock and log budget.

use std::future::Future;
use std::time::Duration;

use ccvm_proto::Message;
use ccvm_proto::protos::ChaincodeMessage;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::exit::{GuestExit, classify};
use crate::limits::{
    GuestLimiter, Oversize, TickerHold, TxClock, check_message_size, starts_transaction,
};
use crate::log_budget::LogBudget;
use crate::wasm_limits::WasmLimits;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "chaincode",
    require_store_data_send: true,
    imports: {
        "ccvm:chaincode/peer.send": async,
        "ccvm:chaincode/peer.receive": async,
    },
});

use self::ccvm::chaincode::log::Level;
use self::ccvm::chaincode::{log, peer};

/// What a guest whose peer has closed the channel is told.
pub const PEER_CLOSED: &str = "the peer closed the channel";

/// Bytes from a guest that the peer cannot take as a message.
#[derive(Debug, thiserror::Error)]
pub enum BrokenMessage {
    /// Over the guest's message size limit.
    #[error(transparent)]
    Oversize(#[from] Oversize),
    /// Not an encoded `ChaincodeMessage`.
    #[error("undecodable message: {0}")]
    Undecodable(#[from] prost::DecodeError),
}

/// The peer's end of a guest's channel, as whoever runs the guest connects it.
pub trait PeerLink: Send + 'static {
    /// Carries `message` from the guest (within its size limit, decoded, and noted by its
    /// transaction clock) towards the peer.
    ///
    /// # Errors
    /// The reason the guest is given, such as [`PEER_CLOSED`].
    fn send(
        &mut self,
        message: ChaincodeMessage,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The peer's next message for the guest, if one is there now.
    fn try_receive(&mut self) -> Option<ChaincodeMessage>;

    /// Waits for the peer's next message for the guest; `None` once the peer has closed the
    /// channel.
    fn receive(&mut self) -> impl Future<Output = Option<ChaincodeMessage>> + Send;

    /// The guest `chaincode` sent bytes the peer cannot take; returns the reason the guest is
    /// given (the link may also end the connection, as gRPC ends a stream).
    fn refuse(
        &mut self,
        chaincode: &str,
        broken: BrokenMessage,
    ) -> impl Future<Output = String> + Send;
}

/// Decodes a message a guest allowed `max_bytes` sent.
///
/// # Errors
/// [`BrokenMessage`] for bytes over the limit or not a `ChaincodeMessage`.
fn decode_from_guest(bytes: &[u8], max_bytes: usize) -> Result<ChaincodeMessage, BrokenMessage> {
    check_message_size(bytes.len(), max_bytes)?;
    Ok(ChaincodeMessage::decode(bytes)?)
}

/// What one guest instance owns: its WASI context, its link to the peer, its limits and the
/// clocks they are measured by.
pub struct GuestState<L> {
    name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    clock: TxClock,
    /// What the guest may still write to the log.
    log: LogBudget,
    /// Largest message the guest may send.
    max_message_bytes: usize,
    /// The guest has come back from waiting in `receive` and not yet met an epoch check: the
    /// ticks that passed while it waited were not spent computing, so that check does not yield.
    /// (A `receive` answered at once does not count, so a guest making many calls still yields.)
    resumed: bool,
    link: L,
    /// Keeps the engine's epoch advancing while the guest lives, even after whoever started it
    /// has gone.
    _ticker: TickerHold,
}

impl<L: PeerLink> GuestState<L> {
    /// The state of a new guest launched as `name` under `limits`, with WASI context `wasi`,
    /// talking to the peer through `link`; `ticker` keeps the epoch advancing for as long as
    /// the guest lives.
    pub fn new(
        name: &str,
        wasi: WasiCtx,
        link: L,
        limits: &WasmLimits,
        ticker: TickerHold,
    ) -> Self {
        Self {
            name: name.to_owned(),
            wasi,
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(limits.max_memory_bytes),
            clock: TxClock::default(),
            log: LogBudget::default(),
            max_message_bytes: limits.max_message_bytes,
            resumed: false,
            link,
            _ticker: ticker,
        }
    }

    /// Bounds the time before the guest registers: past `within`, its next epoch check stops it
    /// with [`GuestExit::NotRegistered`].
    #[must_use]
    pub fn registering_within(mut self, within: Duration) -> Self {
        self.clock = TxClock::awaiting_registration(within);
        self
    }

    /// The name the guest was launched as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guest's link to the peer.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The guest's link to the peer, once the guest has ended.
    pub fn into_link(self) -> L {
        self.link
    }

    /// The most linear memory the guest has been allowed, in bytes.
    pub fn memory_peak_bytes(&self) -> usize {
        self.limiter.memory_peak_bytes
    }
}

impl<L: Send> WasiView for GuestState<L> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl<L: PeerLink> peer::Host for GuestState<L> {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), String> {
        let message = match decode_from_guest(&message, self.max_message_bytes) {
            Ok(message) => message,
            Err(broken) => return Err(self.link.refuse(&self.name, broken).await),
        };
        self.clock.sent(message.r#type);
        self.link.send(message).await
    }

    async fn receive(&mut self) -> Result<Vec<u8>, String> {
        let message = match self.link.try_receive() {
            Some(message) => message,
            None => {
                let message = self.link.receive().await;
                self.resumed = true;
                message.ok_or_else(|| PEER_CLOSED.to_owned())?
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

impl<L: Send> log::Host for GuestState<L> {
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

/// A linker with what every chaincode guest may import: WASI (as the sandbox configures it),
/// the peer channel and logging.
///
/// # Errors
/// The host functions cannot be linked.
pub fn chaincode_linker<L: PeerLink>(engine: &Engine) -> wasmtime::Result<Linker<GuestState<L>>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    peer::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// A store on `engine` holding `state`: its memory cap, and its deadlines checked at each epoch
/// tick, where a guest that has computed since its last check also yields to other tasks. (The
/// first check after a wait comes at once when the guest waited past a tick; yielding there
/// would only send an idle guest's next transaction through the scheduler, waking another
/// worker.) A transaction may run `tx_deadline`.
pub fn sandboxed_store<L: PeerLink>(
    engine: &Engine,
    state: GuestState<L>,
    tx_deadline: Duration,
) -> Store<GuestState<L>> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        state.clock.check_deadline(tx_deadline)?;
        if std::mem::take(&mut state.resumed) {
            return Ok(UpdateDeadline::Continue(1));
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
    store
}

/// Instantiates the guest in `store` and runs its `main` to its end.
///
/// wasmtime's instantiation and call futures are boxed: held inline they make the task that
/// runs the guest four times larger, and spawning it copies every byte.
pub async fn run_guest<L: PeerLink>(
    store: &mut Store<GuestState<L>>,
    pre: &CommandPre<GuestState<L>>,
) -> GuestExit {
    let command = match Box::pin(pre.instantiate_async(&mut *store)).await {
        Ok(command) => command,
        Err(e) => return GuestExit::Trapped(format!("instantiation failed: {}", e.root_cause())),
    };
    match Box::pin(command.wasi_cli_run().call_run(&mut *store)).await {
        Ok(Ok(())) => GuestExit::Finished,
        Ok(Err(())) => GuestExit::Failed,
        Err(error) => {
            let state = store.data();
            classify(&state.name, &error, state.limiter.memory_refused)
        }
    }
}
