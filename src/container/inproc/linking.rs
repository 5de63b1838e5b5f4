//! Turning wasm bytes into a component linked against the host: compiled through the cache,
//! then pre-instantiated so a start costs microseconds.

use std::path::PathBuf;

use ccvm_sandbox::chaincode_linker;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::cache::{CacheOutcome, ComponentCache};
use super::error::{InprocError, Result};
use super::host::{InprocGuest, ledger};

/// A chaincode component compiled and linked against the host, ready to start in microseconds.
#[derive(Clone)]
pub struct Compiled {
    pub(super) pre: CommandPre<InprocGuest>,
    outcome: CacheOutcome,
    pub(super) reads_blocks: bool,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("outcome", &self.outcome)
            .field("reads_blocks", &self.reads_blocks)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Where the compiled code came from.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.outcome
    }
}

/// The component cache and the two linkers: one with what every guest may import, one that also
/// grants the block store.
pub(super) struct Linking {
    cache: ComponentCache,
    linker: Linker<InprocGuest>,
    block_reader_linker: Linker<InprocGuest>,
}

impl Linking {
    /// # Errors
    /// [`InprocError::Engine`] when the host functions cannot be linked.
    pub fn new(engine: Engine, cache_dir: Option<PathBuf>) -> Result<Self> {
        let linker =
            chaincode_linker(&engine).map_err(|e| InprocError::Engine(format!("{e:#}")))?;
        let mut block_reader_linker = linker.clone();
        ledger::add_to_linker::<_, HasSelf<_>>(&mut block_reader_linker, |state| state)
            .map_err(|e| InprocError::Engine(format!("{e:#}")))?;
        Ok(Self {
            cache: ComponentCache::new(engine, cache_dir),
            linker,
            block_reader_linker,
        })
    }

    /// Compiles `wasm` (or takes it from the cache) and links it; with `reads_blocks` the guest
    /// may import the block store.
    ///
    /// # Errors
    /// [`InprocError::Compile`] for bytes that are not a valid component, or a component that
    /// imports more than it is granted.
    pub fn link(&self, chaincode: &str, wasm: &[u8], reads_blocks: bool) -> Result<Compiled> {
        let (component, outcome) = self.cache.get(chaincode, wasm)?;
        let refused = |e: wasmtime::Error| InprocError::Compile {
            chaincode: chaincode.to_owned(),
            reason: format!("{e:#}"),
        };
        let linker = if reads_blocks {
            &self.block_reader_linker
        } else {
            &self.linker
        };
        let pre = linker.instantiate_pre(&component).map_err(refused)?;
        let pre = CommandPre::new(pre).map_err(refused)?;
        Ok(Compiled {
            pre,
            outcome,
            reads_blocks,
        })
    }
}
