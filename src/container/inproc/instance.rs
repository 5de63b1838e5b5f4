//! Starting and running one guest instance on a blocking thread.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::bindings::sync::Command;

use super::host::GuestState;
use crate::container::StreamConnector;

/// Messages buffered between a guest and its handler in each direction.
const CHANNEL_BUFFER: usize = 64;

/// How a guest instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestExit {
    /// `main` returned successfully (the peer closed the channel).
    Finished,
    /// `main` returned an error.
    Failed,
    /// The guest trapped; the text names the trap.
    Trapped(String),
}

/// A running guest instance.
pub struct InstanceHandle {
    task: JoinHandle<GuestExit>,
}

impl InstanceHandle {
    /// Waits until the instance ends.
    pub async fn wait(self) -> GuestExit {
        self.task
            .await
            .unwrap_or_else(|e| GuestExit::Trapped(format!("instance thread failed: {e}")))
    }
}

/// Connects a new instance to the peer and runs its `main` on a blocking thread.
pub(super) fn start(
    engine: &wasmtime::Engine,
    linker: &Linker<GuestState>,
    component: &Component,
    name: &str,
    connector: &StreamConnector,
) -> InstanceHandle {
    let (to_peer, inbound) = mpsc::channel(CHANNEL_BUFFER);
    let (outbound, from_peer) = mpsc::channel(CHANNEL_BUFFER);
    connector(name.to_owned(), inbound, outbound);
    let wasi = WasiCtx::builder()
        .env("CORE_CHAINCODE_ID_NAME", name)
        .build();
    let state = GuestState {
        name: name.to_owned(),
        wasi,
        table: ResourceTable::new(),
        to_peer,
        from_peer,
    };
    let mut store = Store::new(engine, state);
    let linker = linker.clone();
    let component = component.clone();
    let name = name.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        let exit = match Command::instantiate(&mut store, &component, &linker) {
            Ok(command) => match command.wasi_cli_run().call_run(&mut store) {
                Ok(Ok(())) => GuestExit::Finished,
                Ok(Err(())) => GuestExit::Failed,
                Err(trap) => GuestExit::Trapped(format!("{trap:#}")),
            },
            Err(e) => GuestExit::Trapped(format!("instantiation failed: {e:#}")),
        };
        match &exit {
            GuestExit::Finished => info!(chaincode = %name, "wasm chaincode finished"),
            other => {
                warn!(chaincode = %name, exit = ?other, "wasm chaincode ended");
                let reason = format!("wasm chaincode {name} ended: {other:?}");
                let _ = store.data().to_peer.blocking_send(Err(reason));
            }
        }
        exit
    });
    InstanceHandle { task }
}
