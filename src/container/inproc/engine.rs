//! The engine settings and the entry point of the inproc VM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::error::{InprocError, Result};
use super::host::{Guest, GuestState};
use super::instance::{self, InstanceHandle};
use super::limits::{EPOCH_TICK, InprocLimits};
use crate::container::StreamConnector;

/// Compiles and runs wasm chaincode components.
///
/// One engine serves every instance; execution is deterministic: NaNs are canonicalised,
/// relaxed SIMD is off, and threads are not compiled in. Each instance runs within
/// [`InprocLimits`].
pub struct InprocVm {
    engine: Engine,
    linker: Linker<GuestState>,
    connector: StreamConnector,
    limits: InprocLimits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for InprocVm {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set.
fn start_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) -> Result<()> {
    std::thread::Builder::new()
        .name("ccvm-epoch".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .map(drop)
        .map_err(|e| InprocError::Engine(format!("cannot start the epoch thread: {e}")))
}

impl InprocVm {
    /// A VM whose chaincodes are connected to the peer through `connector`.
    ///
    /// # Errors
    /// [`InprocError::Engine`] when wasmtime refuses the configuration.
    pub fn new(connector: StreamConnector, limits: InprocLimits) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(false)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_stack_bytes);
        let engine = Engine::new(&config).map_err(|e| InprocError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| InprocError::Engine(e.to_string()))?;
        Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| InprocError::Engine(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_epoch_ticker(engine.clone(), Arc::clone(&ticker_stop))?;
        Ok(Self {
            engine,
            linker,
            connector,
            limits,
            ticker_stop,
        })
    }

    /// Compiles a chaincode component.
    ///
    /// # Errors
    /// [`InprocError::Compile`] for bytes that are not a valid component.
    pub fn compile(&self, chaincode: &str, wasm: &[u8]) -> Result<Component> {
        Component::new(&self.engine, wasm).map_err(|e| InprocError::Compile {
            chaincode: chaincode.to_owned(),
            reason: format!("{e:#}"),
        })
    }

    /// Starts an instance of `component` that registers as `name`, on a thread of its own.
    pub fn start(&self, name: &str, component: &Component) -> InstanceHandle {
        instance::start(
            &self.engine,
            &self.linker,
            component,
            name,
            &self.connector,
            &self.limits,
        )
    }
}
