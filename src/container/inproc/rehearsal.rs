//! Rehearsing a launch, so that a chaincode's first real launch is as fast as a relaunch.
//!
//! A launch into a pool slot no instance has used costs about three times a relaunch: the
//! kernel maps the slot's memory and faults in every page the guest, its fiber stack and its
//! tables touch on the way to READY. A rehearsal pays that ahead of time: it runs an instance up
//! to READY against a stand-in peer and drops it. The slot it leaves stays warm for the
//! component, its touched pages kept resident and reset, so the next launch reuses it.
//!
//! wasmtime splits a pool of 128 slots or more into shards (one per CPU, up to 16) and gives
//! each thread one; a thread takes a warm slot only from its own shard. A launch on another
//! worker than the rehearsal's would find none there and take a never-used slot. So a rehearsal
//! runs once per worker of the runtime, each as a task of its own, all started together so that
//! the idle workers take them up.

use std::collections::VecDeque;
use std::time::Duration;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{GuestState, TickerHold, guest_wasi, run_guest, sandboxed_store};
use tokio::task::JoinSet;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::host::{InprocGuest, InprocLink};
use super::instance::{SlotInUse, guest_channels};
use super::limits::InprocLimits;
use crate::container::launch_config::CHAINCODE_ID_ENV;
use crate::container::{InboundMessages, InlinePeer, Offered, OutboundMessages};

/// How long a rehearsal may take before it is given up.
const REHEARSAL_LIMIT: Duration = Duration::from_secs(5);

/// Rehearses the launch of `pre` as `name` once per worker thread of the current runtime, the
/// rehearsals running at the same time as tasks of their own (dropped with this future).
///
/// # Errors
/// The first rehearsal's failure, as [`rehearse`] gives it.
pub(super) async fn rehearse_on_each_worker(
    pre: &CommandPre<InprocGuest>,
    name: &str,
    limits: &InprocLimits,
    ticker: &TickerHold,
) -> Result<(), String> {
    let mut rehearsals = JoinSet::new();
    for _ in 0..tokio::runtime::Handle::current().metrics().num_workers() {
        let (pre, name) = (pre.clone(), name.to_owned());
        let (limits, ticker) = (limits.clone(), ticker.clone());
        rehearsals.spawn(async move { rehearse(&pre, &name, &limits, ticker).await });
    }
    while let Some(rehearsed) = rehearsals.join_next().await {
        rehearsed.map_err(|e| format!("the rehearsal failed: {e}"))??;
    }
    Ok(())
}

/// Runs an instance of `pre` launched as `name` up to READY, then drops it.
///
/// # Errors
/// Why the guest did not get to READY: it failed to instantiate, ended, sent something other
/// than REGISTER, or took longer than [`REHEARSAL_LIMIT`].
async fn rehearse(
    pre: &CommandPre<InprocGuest>,
    name: &str,
    limits: &InprocLimits,
    ticker: TickerHold,
) -> Result<(), String> {
    let wasi = guest_wasi(&[(CHAINCODE_ID_ENV.to_owned(), name.to_owned())], None)?;
    let (guest_ends, (mut inbound, outbound)) = guest_channels();
    let link = InprocLink::new(guest_ends, Box::new(StandIn), None);
    let state = GuestState::new(name, wasi, link, &limits.wasm, ticker);
    let _slot = SlotInUse::new();
    let mut store = sandboxed_store(pre.engine(), state, limits.wasm.tx_deadline);
    let rehearsal = async {
        tokio::select! {
            exit = run_guest(&mut store, pre) => Err(format!("it ended: {exit}")),
            ready = stand_in_peer(&mut inbound, &outbound) => ready,
        }
    };
    tokio::time::timeout(REHEARSAL_LIMIT, rehearsal)
        .await
        .map_err(|_| format!("it was not ready within {REHEARSAL_LIMIT:?}"))?
}

/// Plays the peer's side of a registration: takes REGISTER, answers REGISTERED and READY, and
/// returns once the guest has taken both (it then waits for its first transaction).
async fn stand_in_peer(
    inbound: &mut InboundMessages,
    outbound: &OutboundMessages,
) -> Result<(), String> {
    let register = match inbound.recv().await {
        Some(Ok(message)) => message,
        Some(Err(why)) => return Err(why.to_string()),
        None => return Err("it closed its channel".to_owned()),
    };
    if register.r#type != MessageType::Register as i32 {
        return Err(format!("it sent message type {} first", register.r#type));
    }
    for message in ccvm_proto::registration_accepted(&register) {
        outbound
            .send(Box::new(message))
            .await
            .map_err(|_| "it closed its channel".to_owned())?;
    }
    while outbound.capacity() < outbound.max_capacity() {
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// The stand-in peer answers nothing inline.
struct StandIn;

impl InlinePeer for StandIn {
    fn offer(&self, message: ChaincodeMessage, _: &mut VecDeque<ChaincodeMessage>) -> Offered {
        Offered::Declined(message)
    }
}
