//! The inproc VM: the system chaincodes it has, and starting them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ccvm_sandbox::TickerHold;
use tokio_util::sync::CancellationToken;

use super::engine::{new_engine, start_epoch_ticker};
use super::error::{InprocError, Result};
use super::host::BlockStore;
use super::instance::{self, Grants, InstanceHandle, LiveInstance};
use super::limits::InprocLimits;
use super::linking::{Compiled, Linking};
use super::rehearsal;
use crate::container::launch_config::CHAINCODE_ID_ENV;
use crate::container::{
    Connection, LaunchConfig, StartFuture, StreamConnector, Target, Vm, VmError,
};
use crate::sync::lock;

/// A system chaincode the VM has: compiled, or bytes compiled on its first start.
#[derive(Clone)]
enum Code {
    Source { wasm: Arc<[u8]>, reads_blocks: bool },
    Compiled(Compiled),
}

/// The code installed under a name, and the token its instances are told through that it has
/// been replaced.
struct Installed {
    code: Code,
    replaced: CancellationToken,
}

impl Installed {
    fn new(code: Code) -> Self {
        Self {
            code,
            replaced: CancellationToken::new(),
        }
    }
}

/// Runs wasm chaincode components inside the node.
///
/// One engine serves every instance (see [`InprocLimits`] for what bounds each). The VM keeps
/// the node's system chaincodes by name and starts one when the peer launches it.
pub struct InprocVm {
    linking: Arc<Linking>,
    blocks: Arc<dyn BlockStore>,
    connector: StreamConnector,
    limits: InprocLimits,
    ticker: TickerHold,
    installed: Mutex<HashMap<String, Installed>>,
    granted_dirs: Mutex<HashMap<String, PathBuf>>,
    instances_started: AtomicUsize,
    instances_live: Arc<AtomicUsize>,
}

impl InprocVm {
    /// A VM whose chaincodes are connected to the peer through `connector`; compiled components
    /// are cached in `cache_dir` when one is given. A chaincode granted the block store reads
    /// `blocks`.
    ///
    /// # Errors
    /// [`InprocError::Engine`] when wasmtime refuses the configuration.
    pub fn new(
        connector: StreamConnector,
        limits: InprocLimits,
        cache_dir: Option<PathBuf>,
        blocks: Arc<dyn BlockStore>,
    ) -> Result<Self> {
        let engine = new_engine(&limits)?;
        let ticker = start_epoch_ticker(engine.clone())?;
        Ok(Self {
            linking: Arc::new(Linking::new(engine, cache_dir)?),
            blocks,
            connector,
            limits,
            ticker,
            installed: Mutex::default(),
            granted_dirs: Mutex::default(),
            instances_started: AtomicUsize::new(0),
            instances_live: Arc::default(),
        })
    }

    /// Compiles a chaincode component (or takes it from the cache) and links it to the host.
    ///
    /// # Errors
    /// [`InprocError::Compile`] for bytes that are not a valid component, or a component that
    /// imports more than the host offers it.
    pub fn compile(&self, chaincode: &str, wasm: &[u8]) -> Result<Compiled> {
        self.linking.link(chaincode, wasm, false)
    }

    /// Like [`Self::compile`], for a chaincode granted the block store (`ccvm:chaincode/ledger`).
    ///
    /// # Errors
    /// As [`Self::compile`].
    pub fn compile_block_reader(&self, chaincode: &str, wasm: &[u8]) -> Result<Compiled> {
        self.linking.link(chaincode, wasm, true)
    }

    /// Makes `component` the system chaincode `name`, started by the peer when first called and
    /// again after it ends. A later install of the same name replaces it for future starts.
    /// Instances of the code it replaces take no more transactions.
    pub fn install(&self, name: &str, component: Compiled) {
        self.replace(name, Code::Compiled(component));
    }

    /// Like [`Self::install`] for bytes compiled on the chaincode's first start, so that a
    /// system chaincode nobody calls costs no compile time.
    pub fn install_source(&self, name: &str, wasm: impl Into<Arc<[u8]>>, reads_blocks: bool) {
        let source = Code::Source {
            wasm: wasm.into(),
            reads_blocks,
        };
        self.replace(name, source);
    }

    /// Installs `code` as `name`, and tells the instances of the code it replaces.
    fn replace(&self, name: &str, code: Code) {
        let replaced = lock(&self.installed).insert(name.to_owned(), Installed::new(code));
        if let Some(replaced) = replaced {
            replaced.replaced.cancel();
        }
    }

    /// Grants the chaincode `name` (every instance registering as `name` or `name:version`) the
    /// host directory `dir`, which it sees as `/data`.
    pub fn grant_dir(&self, name: &str, dir: PathBuf) {
        lock(&self.granted_dirs).insert(name.to_owned(), dir);
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

    /// How many instances are alive now.
    pub fn instances_live(&self) -> usize {
        self.instances_live.load(Ordering::Relaxed)
    }

    /// Starts an instance of `component` that registers as `name`: runs it up to its first
    /// wait (for a guest that behaves, registered), then as a task of its own.
    ///
    /// # Errors
    /// [`InprocError::Grant`] when a directory granted to it cannot be opened.
    pub async fn start(&self, name: &str, component: &Compiled) -> Result<InstanceHandle> {
        let env = [(CHAINCODE_ID_ENV.to_owned(), name.to_owned())];
        self.start_with_env(name, &env, component, None).await
    }

    /// Starts an instance of `component` launched as `name`, whose WASI environment is `env`,
    /// told through `replaced` when its code is replaced.
    async fn start_with_env(
        &self,
        name: &str,
        env: &[(String, String)],
        component: &Compiled,
        replaced: Option<CancellationToken>,
    ) -> Result<InstanceHandle> {
        let blocks = component.reads_blocks.then(|| Arc::clone(&self.blocks));
        let granted = {
            let granted_dirs = lock(&self.granted_dirs);
            let namespace = name
                .split_once(':')
                .map_or(name, |(namespace, _)| namespace);
            granted_dirs
                .get(name)
                .or_else(|| granted_dirs.get(namespace))
                .cloned()
        };
        let live = LiveInstance::new(&self.instances_live);
        let instance = instance::start(
            &component.pre,
            name,
            Grants {
                env,
                blocks,
                dir: granted.as_deref(),
                replaced,
            },
            &self.connector,
            &self.limits,
            (live, self.ticker.clone()),
        )
        .await?;
        self.instances_started.fetch_add(1, Ordering::Relaxed);
        Ok(instance)
    }

    /// Readies the installed chaincode `name` for a fast first launch: compiles it if it is
    /// installed as source, then rehearses a launch on each worker thread (runs an instance up
    /// to READY against a stand-in peer and drops it), which leaves a pool slot warm for its
    /// component wherever the launch runs. Rehearsals are not counted as started or live
    /// instances.
    ///
    /// # Errors
    /// [`InprocError::NotInstalled`], [`InprocError::Compile`], or [`InprocError::NotReady`]
    /// when its instance did not get to READY.
    pub async fn prepare(&self, name: &str) -> Result<()> {
        let (component, _) = self.compiled(name).await?;
        rehearsal::rehearse_on_each_worker(&component.pre, name, &self.limits, &self.ticker)
            .await
            .map_err(|reason| InprocError::NotReady {
                chaincode: name.to_owned(),
                reason,
            })
    }

    /// The installed chaincode `name`, compiled on a blocking thread if it is not yet, and the
    /// token cancelled when it is replaced.
    async fn compiled(&self, name: &str) -> Result<(Compiled, CancellationToken)> {
        let (code, replaced) = lock(&self.installed)
            .get(name)
            .map(|installed| (installed.code.clone(), installed.replaced.clone()))
            .ok_or_else(|| InprocError::NotInstalled {
                chaincode: name.to_owned(),
            })?;
        let (wasm, reads_blocks) = match code {
            Code::Compiled(compiled) => return Ok((compiled, replaced)),
            Code::Source { wasm, reads_blocks } => (wasm, reads_blocks),
        };
        let linking = Arc::clone(&self.linking);
        let chaincode = name.to_owned();
        let source = Arc::clone(&wasm);
        let compiled =
            tokio::task::spawn_blocking(move || linking.link(&chaincode, &source, reads_blocks))
                .await
                .map_err(|e| InprocError::Compile {
                    chaincode: name.to_owned(),
                    reason: format!("the compiling task failed: {e}"),
                })??;
        let mut installed = lock(&self.installed);
        if let Some(entry) = installed.get_mut(name)
            && matches!(&entry.code, Code::Source { wasm: current, .. } if Arc::ptr_eq(current, &wasm))
        {
            entry.code = Code::Compiled(compiled.clone());
        }
        Ok((compiled, replaced))
    }
}

impl Vm for InprocVm {
    fn target(&self, name: &str) -> Option<Target> {
        lock(&self.installed).contains_key(name).then(|| Target {
            registers_as: name.to_owned(),
            connection: Connection::InProcess,
            package: None,
        })
    }

    fn start<'a>(
        &'a self,
        name: &'a str,
        _target: &'a Target,
        config: &'a LaunchConfig,
    ) -> StartFuture<'a> {
        Box::pin(async move {
            let (component, replaced) = self.compiled(name).await?;
            let instance = self
                .start_with_env(name, &config.env, &component, Some(replaced))
                .await?;
            Ok::<_, VmError>(instance.into_started())
        })
    }

    fn most_instances(&self) -> usize {
        self.limits.instances_per_chaincode
    }
}
