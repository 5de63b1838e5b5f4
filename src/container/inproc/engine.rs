//! The engine settings and the entry point of the inproc VM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::cache::{CacheOutcome, ComponentCache};
use super::error::{InprocError, Result};
use super::host::{Guest, GuestState};
use super::instance::{self, InstanceHandle};
use super::limits::{EPOCH_TICK, InprocLimits};
use crate::container::{Started, StreamConnector, Vm};
use crate::sync::lock;

/// Stack left on a guest's fiber for the host functions it calls, beyond the wasm stack cap.
const HOST_STACK_BYTES: usize = 1024 * 1024;
/// Core wasm instances one guest component may create (a Rust guest has its program, the WASI
/// adapter and the small shim modules that link them).
const CORE_INSTANCES_PER_GUEST: u32 = 8;
/// Linear memories one guest component may define.
const MEMORIES_PER_GUEST: u32 = 2;
/// Tables one guest component may define.
const TABLES_PER_GUEST: u32 = 4;

/// A chaincode component compiled and linked against the host, ready to start in microseconds.
#[derive(Clone)]
pub struct Compiled {
    pre: CommandPre<GuestState>,
    outcome: CacheOutcome,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Where the compiled code came from.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.outcome
    }
}

/// Compiles and runs wasm chaincode components.
///
/// One engine serves every instance; execution is deterministic: NaNs are canonicalised,
/// relaxed SIMD is off, and threads are not compiled in. Instances come from a pool sized by
/// [`InprocLimits::max_instances`], and each runs within the other [`InprocLimits`].
pub struct InprocVm {
    linker: Linker<GuestState>,
    connector: StreamConnector,
    limits: InprocLimits,
    ticker_stop: Arc<AtomicBool>,
    cache: ComponentCache,
    installed: Mutex<HashMap<String, Compiled>>,
    instances_started: AtomicUsize,
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

/// The instance pool: room for `max_instances` guests, each within the memory cap.
fn pool(limits: &InprocLimits) -> PoolingAllocationConfig {
    let guests = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(guests)
        .total_core_instances(guests.saturating_mul(CORE_INSTANCES_PER_GUEST))
        .total_memories(guests.saturating_mul(MEMORIES_PER_GUEST))
        .total_tables(guests.saturating_mul(TABLES_PER_GUEST))
        .total_stacks(guests)
        .max_memory_size(limits.max_memory_bytes);
    pool
}

impl InprocVm {
    /// A VM whose chaincodes are connected to the peer through `connector`; compiled components
    /// are cached in `cache_dir` when one is given.
    ///
    /// # Errors
    /// [`InprocError::Engine`] when wasmtime refuses the configuration.
    pub fn new(
        connector: StreamConnector,
        limits: InprocLimits,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(false)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_stack_bytes)
            .async_stack_size(limits.max_stack_bytes + HOST_STACK_BYTES)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&limits)));
        let engine = Engine::new(&config).map_err(|e| InprocError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| InprocError::Engine(e.to_string()))?;
        Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| InprocError::Engine(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_epoch_ticker(engine.clone(), Arc::clone(&ticker_stop))?;
        Ok(Self {
            linker,
            connector,
            limits,
            ticker_stop,
            cache: ComponentCache::new(engine, cache_dir),
            installed: Mutex::default(),
            instances_started: AtomicUsize::new(0),
        })
    }

    /// Compiles a chaincode component (or takes it from the cache) and links it to the host.
    ///
    /// # Errors
    /// [`InprocError::Compile`] for bytes that are not a valid component, or a component that
    /// needs more than the host offers.
    pub fn compile(&self, chaincode: &str, wasm: &[u8]) -> Result<Compiled> {
        let (component, outcome) = self.cache.get(chaincode, wasm)?;
        let refused = |e: wasmtime::Error| InprocError::Compile {
            chaincode: chaincode.to_owned(),
            reason: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(refused)?;
        let pre = CommandPre::new(pre).map_err(refused)?;
        Ok(Compiled { pre, outcome })
    }

    /// Makes `component` the system chaincode `name`, started by the peer when first called and
    /// again after it ends. A later install of the same name replaces it for future starts.
    pub fn install(&self, name: &str, component: Compiled) {
        lock(&self.installed).insert(name.to_owned(), component);
    }

    /// The names of the installed system chaincodes, sorted.
    pub fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.installed).keys().cloned().collect();
        names.sort();
        names
    }

    /// How many instances this VM has started.
    pub fn instances_started(&self) -> usize {
        self.instances_started.load(Ordering::Relaxed)
    }

    /// Starts an instance of `component` that registers as `name`, as a task of its own.
    pub fn start(&self, name: &str, component: &Compiled) -> InstanceHandle {
        self.instances_started.fetch_add(1, Ordering::Relaxed);
        instance::start(&component.pre, name, &self.connector, &self.limits)
    }
}

impl Vm for InprocVm {
    fn has(&self, name: &str) -> bool {
        lock(&self.installed).contains_key(name)
    }

    fn start(&self, name: &str) -> std::result::Result<Started, String> {
        let component = lock(&self.installed)
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no system chaincode {name} is installed"))?;
        let instance = InprocVm::start(self, name, &component);
        let stop = instance.stop_token();
        Ok(Started {
            stop: Box::new(move || stop.cancel()),
            exited: Box::pin(async move { instance.wait().await.to_string() }),
        })
    }
}
