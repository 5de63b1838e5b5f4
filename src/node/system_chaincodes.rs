//! The system chaincodes a node has: the ones built into ccvm, and `*.wasm` components from the
//! configured directory, which add to them or replace them by name. A system chaincode can be
//! reloaded on the running node (a newer file in the directory, or a reload request):
//! transactions in flight finish on the old instance, new ones start on the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::NodeError;
use crate::chaincode::ChaincodeSupport;
use crate::container::inproc::{Compiled, InprocVm};
use crate::sync::lock;

/// The lifecycle system chaincode: installed packages and chaincode definitions.
pub const LIFECYCLE: &str = "_lifecycle";
/// The query system chaincode: chain info, blocks and transactions.
pub const QSCC: &str = "qscc";
/// The configuration system chaincode: the node's channels and their configurations.
pub const CSCC: &str = "cscc";

/// The system chaincodes compiled into the `ccvm` binary, by name.
const BUILT_IN: [(&str, &[u8]); 3] = [
    (
        LIFECYCLE,
        include_bytes!(concat!(env!("OUT_DIR"), "/lifecycle.wasm")),
    ),
    (QSCC, include_bytes!(concat!(env!("OUT_DIR"), "/qscc.wasm"))),
    (CSCC, include_bytes!(concat!(env!("OUT_DIR"), "/cscc.wasm"))),
];

/// The wasm of a system chaincode built into ccvm.
pub fn built_in(name: &str) -> Option<&'static [u8]> {
    BUILT_IN
        .iter()
        .find(|(built_in, _)| *built_in == name)
        .map(|(_, wasm)| *wasm)
}

/// Where a system chaincode comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into ccvm.
    BuiltIn,
    /// A file of the system chaincode directory.
    File(PathBuf),
}

/// A system chaincode and whether it runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemChaincodeStatus {
    /// Its name.
    pub name: String,
    /// Where its wasm comes from.
    pub origin: Origin,
    /// Whether an instance is registered and serving.
    pub running: bool,
}

/// What a file looked like when last loaded, to notice a newer one.
type Stamp = (SystemTime, u64);

/// The node's system chaincodes: installs, lists and reloads them.
#[derive(Clone)]
pub(super) struct SystemChaincodes {
    inproc: Arc<InprocVm>,
    support: ChaincodeSupport,
    dir: Option<PathBuf>,
    block_readers: Arc<[String]>,
    loaded: Arc<Mutex<HashMap<String, Stamp>>>,
}

impl SystemChaincodes {
    pub fn new(
        inproc: Arc<InprocVm>,
        support: ChaincodeSupport,
        dir: Option<PathBuf>,
        block_readers: &[String],
    ) -> Self {
        Self {
            inproc,
            support,
            dir,
            block_readers: block_readers.into(),
            loaded: Arc::default(),
        }
    }

    /// Whether `name` may read the block store: `qscc`, `cscc`, and those configured to.
    fn reads_blocks(&self, name: &str) -> bool {
        name == QSCC || name == CSCC || self.block_readers.iter().any(|reader| reader == name)
    }

    /// Installs the built-in system chaincodes (started on first use, compiled then if
    /// [`Self::prepare_built_ins`] has not yet), then compiles and
    /// installs every `*.wasm` of the directory; returns the names from the directory.
    pub fn install_all(&self) -> Result<Vec<String>, NodeError> {
        for (name, wasm) in BUILT_IN {
            self.inproc
                .install_source(name, wasm, self.reads_blocks(name));
        }
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let files = wasm_files(dir)?;
        let mut names = Vec::with_capacity(files.len());
        for (name, path, stamp) in files {
            let component = self.compile_file(&name, &path)?;
            self.inproc.install(&name, component);
            lock(&self.loaded).insert(name.clone(), stamp);
            names.push(name);
        }
        Ok(names)
    }

    /// Readies the built-in system chaincodes that the directory does not replace (`replaced`
    /// names those installed from it) for a fast first launch, one after another on a task of
    /// their own: see [`InprocVm::prepare`]. The receiver turns true once all are done. Once
    /// `stop` is cancelled, the task ends after the chaincode it is readying.
    pub fn prepare_built_ins(
        &self,
        replaced: &[String],
        stop: CancellationToken,
    ) -> (JoinHandle<()>, watch::Receiver<bool>) {
        let names: Vec<&'static str> = BUILT_IN
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !replaced.iter().any(|replaced| replaced == name))
            .collect();
        let inproc = Arc::clone(&self.inproc);
        let (done, prepared) = watch::channel(false);
        let task = tokio::spawn(async move {
            for name in names {
                if stop.is_cancelled() {
                    return;
                }
                match inproc.prepare(name).await {
                    Ok(()) => debug!(chaincode = name, "system chaincode prepared"),
                    Err(why) => warn!(chaincode = name, %why, "system chaincode not prepared"),
                }
            }
            done.send_replace(true);
        });
        (task, prepared)
    }

    /// Compiles `wasm` as `name`, granting the block store if `name` is a block reader.
    fn compile(&self, name: &str, wasm: &[u8]) -> Result<Compiled, NodeError> {
        Ok(if self.reads_blocks(name) {
            self.inproc.compile_block_reader(name, wasm)?
        } else {
            self.inproc.compile(name, wasm)?
        })
    }

    fn compile_file(&self, name: &str, path: &Path) -> Result<Compiled, NodeError> {
        let wasm = std::fs::read(path).map_err(|source| NodeError::ChaincodeDir {
            dir: path.to_owned(),
            source,
        })?;
        let component = self.compile(name, &wasm)?;
        info!(
            chaincode = name, path = %path.display(), compiled = ?component.cache_outcome(),
            "installed system chaincode"
        );
        Ok(component)
    }

    /// Compiles `name` from `file`, or from its built-in wasm when the directory has none.
    fn compile_source(&self, name: &str, file: Option<&Path>) -> Result<Compiled, NodeError> {
        match file {
            Some(path) => self.compile_file(name, path),
            None => {
                let wasm = built_in(name)
                    .ok_or_else(|| NodeError::UnknownSystemChaincode(name.to_owned()))?;
                self.compile(name, wasm)
            }
        }
    }

    /// The file that provides `name`, if the directory has one.
    fn file_of(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.as_ref()?.join(format!("{name}.wasm"));
        path.is_file().then_some(path)
    }

    /// Every system chaincode, sorted by name.
    pub fn list(&self) -> Vec<SystemChaincodeStatus> {
        self.inproc
            .installed()
            .into_iter()
            .map(|name| SystemChaincodeStatus {
                origin: self.file_of(&name).map_or(Origin::BuiltIn, Origin::File),
                running: self.support.registry().get(&name).is_some(),
                name,
            })
            .collect()
    }

    /// Compiles `name` again from its file (or its built-in wasm) and swaps it in: a running
    /// instance finishes its transactions while the new one starts.
    ///
    /// # Errors
    /// [`NodeError::UnknownSystemChaincode`], or why the new wasm cannot be compiled or
    /// started; a wasm that does not compile leaves the old instance serving.
    pub async fn reload(&self, name: &str) -> Result<(), NodeError> {
        let file = self.file_of(name);
        let stamp = file.as_deref().and_then(|path| stamp(path).ok());
        let (this, owned) = (self.clone(), name.to_owned());
        let component =
            tokio::task::spawn_blocking(move || this.compile_source(&owned, file.as_deref()))
                .await
                .map_err(|e| NodeError::Crashed(e.to_string()))??;
        if let Some(stamp) = stamp {
            lock(&self.loaded).insert(name.to_owned(), stamp);
        }
        // Installing retires the instances of the replaced code (they finish what they run);
        // retiring the name after it would retire an instance of the new code that a
        // transaction launched in between.
        let running = self.support.registry().get(name).is_some();
        self.inproc.install(name, component);
        if running {
            self.support
                .launch(name)
                .await
                .map_err(|e| NodeError::Reload {
                    name: name.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        info!(chaincode = name, "system chaincode reloaded");
        Ok(())
    }

    /// Reloads every system chaincode whose file in the directory is new or has changed, every
    /// `interval`, until `stop` is cancelled (a reload under way finishes first).
    pub fn watch(&self, interval: Duration, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let dir = self.dir.clone()?;
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let files = match wasm_files(&dir) {
                    Ok(files) => files,
                    Err(e) => {
                        warn!("cannot scan the system chaincode directory: {e}");
                        continue;
                    }
                };
                for (name, _, stamp) in files {
                    if stop.is_cancelled() {
                        return;
                    }
                    if lock(&this.loaded).get(&name) == Some(&stamp) {
                        continue;
                    }
                    info!(chaincode = %name, "system chaincode file changed; reloading");
                    lock(&this.loaded).insert(name.clone(), stamp);
                    if let Err(e) = this.reload(&name).await {
                        warn!(chaincode = %name, error = %e, "reload failed");
                    }
                }
            }
        }))
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.modified()?, metadata.len()))
}

/// `(name, path, stamp)` of every `*.wasm` in `dir`, sorted by name.
fn wasm_files(dir: &Path) -> Result<Vec<(String, PathBuf, Stamp)>, NodeError> {
    let unreadable = |source| NodeError::ChaincodeDir {
        dir: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let stamp = stamp(&path).map_err(unreadable)?;
        files.push((name.to_owned(), path.clone(), stamp));
    }
    files.sort();
    Ok(files)
}
