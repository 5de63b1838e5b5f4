//! `ccvm-wasm-runner`: runs one `wasm32-wasip2` chaincode in a container, in the same sandbox as
//! the peer's own wasm guests (deterministic engine, memory and stack caps, a deadline per
//! transaction), and relays its peer channel to the peer's `ChaincodeSupport.Register` stream
//! over gRPC, with the settings and TLS files Fabric's shims read (`CORE_PEER_ADDRESS`,
//! `CORE_CHAINCODE_ID_NAME`, `CORE_PEER_TLS_*`).
//!
//! When the guest fails (trap, deadline, memory cap) the transactions it holds are failed with
//! the reason, and the runner exits with a non-zero code so the peer relaunches it.

mod host;

use std::process::ExitCode;
use std::time::Duration;

use ccvm_guest_sdk::{PeerSettings, open_stream};
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{
    GuestExit, GuestLimiter, LogBudget, TxClock, WasmLimits, classify, deterministic_config,
    guest_wasi, start_epoch_ticker,
};
use tokio::sync::mpsc;
use tracing::{error, info};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::sync::CommandPre;

use self::host::{GuestState, log, peer};

/// The chaincode component inside the container, unless `CCVM_WASM_FILE` names another.
const DEFAULT_WASM_FILE: &str = "/chaincode.wasm";
/// Messages buffered between the guest and the relay in each direction.
const RELAY_BUFFER: usize = 64;
/// How long the relay may take to deliver the guest's last messages once it has ended.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The compiled chaincode, linked against the runner's host functions.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<CommandPre<GuestState>, String> {
    let component =
        Component::new(engine, wasm).map_err(|e| format!("not a chaincode component: {e:#}"))?;
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| format!("{e:#}"))?;
    peer::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| format!("{e:#}"))?;
    log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("the chaincode imports more than it is granted: {e:#}"))?;
    CommandPre::new(pre).map_err(|e| format!("the chaincode is not a WASI command: {e:#}"))
}

/// Carries the guest's messages to the peer and the peer's to the guest until either side ends.
async fn relay(
    settings: PeerSettings,
    outbound: mpsc::Receiver<ChaincodeMessage>,
    inbound: mpsc::Sender<ChaincodeMessage>,
) -> Result<(), String> {
    let mut stream = open_stream(&settings, outbound)
        .await
        .map_err(|e| e.to_string())?;
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

/// Instantiates the guest and runs its `main` to its end.
fn run_guest(store: &mut Store<GuestState>, pre: &CommandPre<GuestState>, name: &str) -> GuestExit {
    let command = match pre.instantiate(&mut *store) {
        Ok(command) => command,
        Err(e) => return GuestExit::Trapped(format!("instantiation failed: {}", e.root_cause())),
    };
    match command.wasi_cli_run().call_run(&mut *store) {
        Ok(Ok(())) => GuestExit::Finished,
        Ok(Err(())) => GuestExit::Failed,
        Err(error) => classify(name, &error, store.data().limiter.memory_refused),
    }
}

fn run() -> Result<(), String> {
    let settings = PeerSettings::from_env_and_args().map_err(|e| e.to_string())?;
    let limits = WasmLimits::from_env(env)?;
    let path = env("CCVM_WASM_FILE").unwrap_or_else(|| DEFAULT_WASM_FILE.to_owned());
    let wasm = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let engine =
        Engine::new(&deterministic_config(limits.max_stack_bytes)).map_err(|e| format!("{e:#}"))?;
    let pre = compile(&engine, &wasm)?;
    let name = settings.chaincode_name.clone();
    info!(chaincode = %name, peer = %settings.peer_address, "starting the wasm chaincode");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (to_peer, outbound) = mpsc::channel(RELAY_BUFFER);
    let (inbound, from_peer) = mpsc::channel(RELAY_BUFFER);
    let relayed = runtime.spawn(relay(settings, outbound, inbound));

    let wasi = guest_wasi(&[("CORE_CHAINCODE_ID_NAME".to_owned(), name.clone())], None)?;
    let mut store = Store::new(
        &engine,
        GuestState {
            wasi,
            table: ResourceTable::new(),
            to_peer,
            from_peer,
            limiter: GuestLimiter::new(limits.max_memory_bytes),
            clock: TxClock::default(),
            log: LogBudget::default(),
            max_message_bytes: limits.max_message_bytes,
            open: Default::default(),
        },
    );
    store.limiter(|state| &mut state.limiter);
    let deadline = limits.tx_deadline;
    store.epoch_deadline_callback(move |store| {
        store.data().clock.check_deadline(deadline)?;
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
    let ticker =
        start_epoch_ticker(engine).map_err(|e| format!("cannot start the epoch thread: {e}"))?;

    let exit = run_guest(&mut store, &pre, &name);
    drop(ticker);
    let mut state = store.into_data();
    if exit != GuestExit::Finished {
        let reason = format!("wasm chaincode {name} {exit}");
        for failed in state.fail_open_transactions(&reason) {
            let _ = state.to_peer.blocking_send(failed);
        }
    }
    drop(state);
    let relay_result = runtime.block_on(async {
        tokio::time::timeout(FLUSH_TIMEOUT, relayed)
            .await
            .unwrap_or(Ok(Ok(())))
            .unwrap_or_else(|e| Err(format!("the relay failed: {e}")))
    });
    match (exit, relay_result) {
        (GuestExit::Finished, Ok(())) => Ok(()),
        (_, Err(e)) => Err(e),
        (exit, Ok(())) => Err(format!("wasm chaincode {name} {exit}")),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            error!("{reason}");
            ExitCode::FAILURE
        }
    }
}
