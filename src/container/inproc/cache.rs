//! Compiled components, kept in memory and on disk so that a chaincode is compiled once per
//! engine, not once per start of the node.
//!
//! A compiled component is keyed by the SHA-256 of its wasm and the engine's compatibility hash
//! (wasmtime's version and every setting that changes the code it generates). On disk each
//! artifact is one file, `<wasm sha256>-<engine hash>.cwasm`, holding the SHA-256 of the
//! serialized code followed by the code; a file whose digest does not match (a torn write, a bad
//! disk) is recompiled and replaced. A cache that cannot be written (a full disk, a read-only
//! directory) costs only the compile time on the next start.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::{InprocError, Result};
use crate::metrics::metrics;
use crate::sync::lock;

/// Length of the digest that precedes the code in a cache file.
const DIGEST_BYTES: usize = 32;

/// Compiled components by wasm digest, in memory and, when given a directory, on disk.
pub(super) struct ComponentCache {
    engine: Engine,
    engine_hash: String,
    dir: Option<PathBuf>,
    compiled: Mutex<HashMap<[u8; DIGEST_BYTES], Component>>,
}

/// How a component was obtained, for the log and for tests of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Already compiled by this node.
    Memory,
    /// Loaded from the cache directory.
    Disk,
    /// Compiled now.
    Compiled,
}

impl ComponentCache {
    pub fn new(engine: Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            engine,
            engine_hash: format!("{:016x}", hasher.finish()),
            dir,
            compiled: Mutex::default(),
        }
    }

    /// The component of `wasm`, from memory, from disk, or compiled now.
    ///
    /// # Errors
    /// [`InprocError::Compile`] when `wasm` is not a valid component.
    pub fn get(&self, chaincode: &str, wasm: &[u8]) -> Result<(Component, CacheOutcome)> {
        let digest: [u8; DIGEST_BYTES] = Sha256::digest(wasm).into();
        if let Some(component) = lock(&self.compiled).get(&digest) {
            return Ok((component.clone(), CacheOutcome::Memory));
        }
        let file = self.dir.as_ref().map(|dir| {
            dir.join(format!(
                "{}-{}.cwasm",
                hex::encode(digest),
                self.engine_hash
            ))
        });
        let started = Instant::now();
        let (component, outcome) = match file.as_deref().and_then(|f| self.load(f)) {
            Some(component) => (component, CacheOutcome::Disk),
            None => {
                let component =
                    Component::new(&self.engine, wasm).map_err(|e| InprocError::Compile {
                        chaincode: chaincode.to_owned(),
                        reason: format!("{e:#}"),
                    })?;
                if let Some(file) = &file {
                    self.store(file, &component);
                }
                (component, CacheOutcome::Compiled)
            }
        };
        let source = if outcome == CacheOutcome::Disk {
            "disk"
        } else {
            "compiled"
        };
        metrics()
            .component_load_duration
            .with_label_values(&[source])
            .observe(started.elapsed().as_secs_f64());
        lock(&self.compiled).insert(digest, component.clone());
        Ok((component, outcome))
    }

    /// Loads a cache file, if it exists and its digest matches its code.
    fn load(&self, file: &Path) -> Option<Component> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(file = %file.display(), "cannot read a compiled component: {e}");
                return None;
            }
        };
        let intact = bytes.len() > DIGEST_BYTES
            && Sha256::digest(&bytes[DIGEST_BYTES..]).as_slice() == &bytes[..DIGEST_BYTES];
        if !intact {
            warn!(file = %file.display(), "compiled component is damaged; recompiling");
            return None;
        }
        match deserialize(&self.engine, &bytes[DIGEST_BYTES..]) {
            Ok(component) => {
                debug!(file = %file.display(), "loaded compiled component");
                Some(component)
            }
            Err(e) => {
                warn!(file = %file.display(), "compiled component refused: {e:#}; recompiling");
                None
            }
        }
    }

    /// Writes a cache file through a temporary file and a rename, so a reader never sees half
    /// of it. Failure is logged, not returned: the component in hand is good either way.
    fn store(&self, file: &Path, component: &Component) {
        let written = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|code| {
                let dir = file.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir)?;
                let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
                temporary.write_all(&Sha256::digest(&code))?;
                temporary.write_all(&code)?;
                temporary.as_file().sync_all()?;
                temporary.persist(file).map_err(|e| e.error)?;
                Ok(())
            });
        if let Err(e) = written {
            warn!(file = %file.display(), "cannot cache a compiled component: {e}");
        }
    }
}

/// Turns code serialized by [`Component::serialize`] back into a component.
#[expect(
    unsafe_code,
    reason = "wasmtime cannot check that precompiled code is its own; the caller does"
)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `code` comes from a file in the node's own cache directory whose name carries this
    // engine's compatibility hash and whose digest matched, so it is exactly what
    // `Component::serialize` wrote for an engine configured like this one. wasmtime checks the
    // header (version, target, settings) itself and refuses a mismatch.
    unsafe { Component::deserialize(engine, code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn a_component_is_compiled_once_then_served_from_memory() {
        let cache = ComponentCache::new(engine(), None);
        assert_eq!(
            cache.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(
            cache.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Memory
        );
    }

    #[test]
    fn a_second_cache_on_the_same_directory_loads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let first = ComponentCache::new(engine(), Some(dir.path().to_owned()));
        assert_eq!(
            first.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Compiled
        );
        let second = ComponentCache::new(engine(), Some(dir.path().to_owned()));
        assert_eq!(
            second.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Disk
        );
    }

    #[test]
    fn a_damaged_file_is_recompiled_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = ComponentCache::new(engine(), Some(dir.path().to_owned()));
        first.get("a", EMPTY_COMPONENT).unwrap();
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();

        let second = ComponentCache::new(engine(), Some(dir.path().to_owned()));
        assert_eq!(
            second.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Compiled
        );
        let third = ComponentCache::new(engine(), Some(dir.path().to_owned()));
        assert_eq!(
            third.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Disk
        );
    }

    #[test]
    fn an_unwritable_directory_still_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("file-not-dir");
        std::fs::write(&blocked, b"").unwrap();
        let cache = ComponentCache::new(engine(), Some(blocked.join("cache")));
        assert_eq!(
            cache.get("a", EMPTY_COMPONENT).unwrap().1,
            CacheOutcome::Compiled
        );
    }

    #[test]
    fn invalid_bytes_are_a_compile_error() {
        let cache = ComponentCache::new(engine(), None);
        let error = cache.get("junk", b"\0asm not really").unwrap_err();
        assert!(matches!(error, InprocError::Compile { .. }), "{error}");
    }
}
