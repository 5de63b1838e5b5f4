//! `ccvm-wasm-runner`: runs a `wasm32-wasip2` chaincode outside the peer, in the same sandbox as
//! the peer's own wasm guests (deterministic engine, memory and stack caps, a deadline per
//! transaction), and relays each instance's peer channel over gRPC. It runs the way Fabric runs
//! chaincode:
//!
//! - dialling the peer's `ChaincodeSupport.Register` stream, with the settings and TLS files
//!   Fabric's shims read (`CORE_PEER_ADDRESS`, `CORE_CHAINCODE_ID_NAME`, `CORE_PEER_TLS_*`), or
//! - as a service, when `CHAINCODE_SERVER_ADDRESS` is set: it serves `protos.Chaincode/Connect`
//!   and each peer connection gets guest instances of its own (Fabric's `CHAINCODE_*` settings).
//!
//! Each conversation with the peer is shared by instances of the guest, so that transactions run
//! side by side: it starts with one, and another starts whenever a transaction arrives while
//! every instance is busy, up to `CCVM_WASM_INSTANCES`; one idle for 30 s ends, as long as
//! another stays. When an instance fails (trap, deadline, memory cap) the transactions it holds
//! are failed with the reason and the conversation ends, so the peer starts or dials the
//! chaincode again.

mod fan_out;
mod link;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ccvm_guest_sdk::{PeerConnection, PeerSettings, ServerSettings, listen_for_peers, open_stream};
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{
    DEFAULT_RUNNER_INSTANCES, GuestExit, GuestState, TickerHold, WasmLimits, chaincode_linker,
    deterministic_config, guest_wasi, run_guest, runner_env, sandboxed_store, start_epoch_ticker,
};
use tokio::sync::mpsc;
use tracing::{info, warn};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use self::fan_out::fan_out;
use self::link::RelayLink;

/// The chaincode component inside the runner's container, unless `CCVM_WASM_FILE` names another.
pub const DEFAULT_WASM_FILE: &str = "/chaincode.wasm";
/// Messages buffered between the instances and the peer's stream in each direction.
const RELAY_BUFFER: usize = 64;
/// How long the relay may take to deliver the guest's last messages once it has ended.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A compiled chaincode and the limits each of its instances runs under.
pub struct Sandbox {
    engine: Engine,
    pre: CommandPre<GuestState<RelayLink>>,
    limits: WasmLimits,
    ticker: TickerHold,
}

impl Sandbox {
    /// Compiles the component in `wasm` under `limits` and starts the engine's epoch ticker.
    ///
    /// # Errors
    /// Bytes that are not a chaincode component, or one that imports more than it is granted.
    pub fn new(wasm: &[u8], limits: WasmLimits) -> Result<Self, String> {
        let engine = sandbox_engine(&limits)?;
        let component = compile(&engine, wasm)?;
        Self::with_component(engine, &component, limits)
    }

    /// Links `component`, compiled for `engine`, and starts the engine's epoch ticker.
    fn with_component(
        engine: Engine,
        component: &Component,
        limits: WasmLimits,
    ) -> Result<Self, String> {
        let linker = chaincode_linker(&engine).map_err(|e| format!("{e:#}"))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| format!("the chaincode imports more than it is granted: {e:#}"))?;
        let pre = CommandPre::new(pre)
            .map_err(|e| format!("the chaincode is not a WASI command: {e:#}"))?;
        let ticker = start_epoch_ticker(engine.clone())
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(Self {
            engine,
            pre,
            limits,
            ticker,
        })
    }

    /// Loads the component at `path`: the code [`precompile`] made of it, from
    /// [`precompiled_path`], when that file exists and was compiled by an engine like this one;
    /// otherwise compiles the component itself.
    ///
    /// # Errors
    /// An unreadable file, or as [`Sandbox::new`].
    pub fn load(path: &Path, limits: WasmLimits) -> Result<Self, String> {
        let engine = sandbox_engine(&limits)?;
        let precompiled = precompiled_path(path);
        let component = match std::fs::read(&precompiled) {
            Ok(code) => match deserialize(&engine, &code) {
                Ok(component) => {
                    info!(file = %precompiled.display(), "loaded the precompiled chaincode");
                    Some(component)
                }
                Err(e) => {
                    warn!(file = %precompiled.display(), "compiling the chaincode instead of loading code precompiled for another engine: {e:#}");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                warn!(file = %precompiled.display(), "compiling the chaincode: cannot read its precompiled code: {e}");
                None
            }
        };
        let component = match component {
            Some(component) => component,
            None => {
                let wasm = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                compile(&engine, &wasm)?
            }
        };
        Self::with_component(engine, &component, limits)
    }

    /// Runs instances registering as `name` behind one conversation with the peer, at most
    /// `most` of them, until every one has ended, and returns the first failure among them, if
    /// any.
    pub async fn run_instances(
        self: Arc<Self>,
        name: &str,
        most: NonZeroUsize,
        to_peer: mpsc::Sender<ChaincodeMessage>,
        from_peer: mpsc::Receiver<ChaincodeMessage>,
    ) -> GuestExit {
        let (to_fan_out, from_instances) = mpsc::channel(RELAY_BUFFER);
        let start = |index| {
            let (to_instance, from_fan_out) = mpsc::unbounded_channel();
            let link = RelayLink::new(index, to_fan_out.clone(), from_fan_out);
            let sandbox = Arc::clone(&self);
            let name = name.to_owned();
            tokio::spawn(async move { sandbox.run_instance(&name, link).await });
            to_instance
        };
        fan_out(to_peer, from_peer, from_instances, most, start).await
    }

    /// Runs one instance registering as `name` until its `main` ends, then tells the fan-out
    /// how it ended. When it fails, each transaction it still holds is failed with the reason.
    async fn run_instance(&self, name: &str, link: RelayLink) {
        let wasi = match guest_wasi(
            &[("CORE_CHAINCODE_ID_NAME".to_owned(), name.to_owned())],
            None,
        ) {
            Ok(wasi) => wasi,
            Err(e) => return link.ended(GuestExit::Trapped(e)).await,
        };
        let state = GuestState::new(name, wasi, link, &self.limits, self.ticker.clone());
        let mut store = sandboxed_store(&self.engine, state, self.limits.tx_deadline);
        let exit = run_guest(&mut store, &self.pre).await;
        let mut link = store.into_data().into_link();
        if exit != GuestExit::Finished {
            link.fail_open_transactions(&format!("wasm chaincode {name} {exit}"))
                .await;
        }
        link.ended(exit).await;
    }
}

/// The engine a chaincode runs on under `limits`.
fn sandbox_engine(limits: &WasmLimits) -> Result<Engine, String> {
    Engine::new(&deterministic_config(limits.max_stack_bytes)).map_err(|e| format!("{e:#}"))
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, String> {
    Component::new(engine, wasm).map_err(|e| format!("not a chaincode component: {e:#}"))
}

/// Where [`Sandbox::load`] looks for the precompiled code of the component at `component`:
/// beside it, with the extension `cwasm`.
pub fn precompiled_path(component: &Path) -> PathBuf {
    component.with_extension("cwasm")
}

/// The component in `wasm` compiled for this machine as the runner's engine under `limits`
/// compiles it, to be written to [`precompiled_path`] so that a runner starts without
/// compiling.
///
/// # Errors
/// Bytes that are not a chaincode component.
pub fn precompile(wasm: &[u8], limits: &WasmLimits) -> Result<Vec<u8>, String> {
    sandbox_engine(limits)?
        .precompile_component(wasm)
        .map_err(|e| format!("not a chaincode component: {e:#}"))
}

/// Turns code made by [`precompile`] back into a component.
#[expect(
    unsafe_code,
    reason = "wasmtime cannot check that precompiled code is its own; the image's builder does"
)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the precompiled file is written into the chaincode's image by the node that built
    // the image, with `precompile`, next to the component it was compiled from; nothing the
    // guest can reach writes files. wasmtime checks the header (version, target, settings)
    // itself and refuses code made by another engine, which is then compiled afresh.
    unsafe { Component::deserialize(engine, code) }
}

/// The most instances that share each conversation with the peer: [`runner_env::INSTANCES`] as
/// `env` gives it, or [`DEFAULT_RUNNER_INSTANCES`].
///
/// # Errors
/// A value that is not a whole number above zero.
pub fn instances_from_env(env: impl Fn(&str) -> Option<String>) -> Result<NonZeroUsize, String> {
    let name = runner_env::INSTANCES;
    match env(name) {
        None => Ok(DEFAULT_RUNNER_INSTANCES),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number above zero, not {value:?}")),
    }
}

/// Runs the chaincode the way the environment says: as a service when `CHAINCODE_SERVER_ADDRESS`
/// is set, otherwise dialling the peer. The component is `CCVM_WASM_FILE`, or `default_wasm` when
/// that is unset; limits come from `CCVM_WASM_*`, the instance count from
/// `CCVM_WASM_INSTANCES`.
///
/// # Errors
/// Missing or bad settings, a component that does not compile, or a failed guest or relay.
pub fn run_from_env(default_wasm: &Path) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let limits = WasmLimits::from_env(env)?;
    let instances = instances_from_env(env)?;
    let path = env("CCVM_WASM_FILE").map_or_else(|| default_wasm.to_owned(), Into::into);
    match ServerSettings::from_env().map_err(|e| e.to_string())? {
        Some(settings) => serve(Sandbox::load(&path, limits)?, &settings, instances),
        None => {
            let settings = PeerSettings::from_env_and_args().map_err(|e| e.to_string())?;
            dial(Sandbox::load(&path, limits)?, settings, instances)
        }
    }
}

/// A runtime for the relays and the guests: on the calling thread for one conversation with the
/// peer, with a worker per core for the conversations of a service.
///
/// One conversation's instances and relay take turns on one thread, with no wake-up crossing
/// threads. A guest that computes yields at every epoch tick, so the others keep serving; and
/// transactions that mostly wait on the peer, as chaincode's do, go faster so than spread over
/// a worker per core, where every message wakes another thread.
fn runtime(one_conversation: bool) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = if one_conversation {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// Runs up to `most_instances` instances behind one conversation dialled to the peer, until they
/// or the peer end it.
///
/// # Errors
/// A failed guest, or a relay that could not reach the peer.
pub fn dial(
    sandbox: Sandbox,
    settings: PeerSettings,
    most_instances: NonZeroUsize,
) -> Result<(), String> {
    let name = settings.chaincode_name.clone();
    info!(chaincode = %name, peer = %settings.peer_address, most_instances, "starting the wasm chaincode");
    let runtime = runtime(true)?;
    let (to_peer, outbound) = mpsc::channel(RELAY_BUFFER);
    let (inbound, from_peer) = mpsc::channel(RELAY_BUFFER);
    let relayed = runtime.spawn(async move {
        let stream = open_stream(&settings, outbound)
            .await
            .map_err(|e| e.to_string())?;
        relay(stream, inbound).await
    });
    let sandbox = Arc::new(sandbox);
    let (exit, relay_result) = runtime.block_on(async {
        let exit = sandbox
            .run_instances(&name, most_instances, to_peer, from_peer)
            .await;
        let relayed = tokio::time::timeout(FLUSH_TIMEOUT, relayed)
            .await
            .unwrap_or(Ok(Ok(())))
            .unwrap_or_else(|e| Err(format!("the relay failed: {e}")));
        (exit, relayed)
    });
    match (exit, relay_result) {
        (GuestExit::Finished, Ok(())) => Ok(()),
        (_, Err(e)) => Err(e),
        (exit, Ok(())) => Err(format!("wasm chaincode {name} {exit}")),
    }
}

/// Serves the chaincode as `settings` say until the process ends: each peer connection gets
/// up to `most_instances` instances of its own, registering as `CHAINCODE_ID`.
///
/// # Errors
/// An address that cannot be bound, or unusable TLS material.
pub fn serve(
    sandbox: Sandbox,
    settings: &ServerSettings,
    most_instances: NonZeroUsize,
) -> Result<(), String> {
    let runtime = runtime(false)?;
    let sandbox = Arc::new(sandbox);
    let name = settings.chaincode_id.clone();
    info!(chaincode = %name, address = %settings.address, most_instances, "serving the wasm chaincode");
    runtime
        .block_on(listen_for_peers(settings, move |connection| {
            let PeerConnection {
                inbound: stream,
                outbound: to_peer,
                place,
            } = connection;
            let (inbound, from_peer) = mpsc::channel(RELAY_BUFFER);
            tokio::spawn(async move {
                if let Err(e) = relay(stream, inbound).await {
                    warn!("{e}");
                }
            });
            let sandbox = Arc::clone(&sandbox);
            let name = name.clone();
            tokio::spawn(async move {
                let exit = sandbox
                    .run_instances(&name, most_instances, to_peer, from_peer)
                    .await;
                if exit != GuestExit::Finished {
                    warn!("wasm chaincode {name} {exit}");
                }
                drop(place);
            });
        }))
        .map_err(|e| e.to_string())
}

/// Carries the peer's messages from `stream` to the guest until either side ends.
async fn relay(
    mut stream: tonic::Streaming<ChaincodeMessage>,
    inbound: mpsc::Sender<ChaincodeMessage>,
) -> Result<(), String> {
    loop {
        match stream.message().await {
            Ok(Some(message)) => {
                if inbound.send(message).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("the peer ended the stream: {}", status.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_count_is_read_and_zero_is_refused() {
        let given = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!(instances_from_env(|_| None), Ok(DEFAULT_RUNNER_INSTANCES));
        assert_eq!(instances_from_env(given("8")).map(NonZeroUsize::get), Ok(8));
        let refused = instances_from_env(given("0")).expect_err("no instances is refused");
        assert!(
            refused.contains("CCVM_WASM_INSTANCES must be a whole number above zero"),
            "{refused}"
        );
    }
}
