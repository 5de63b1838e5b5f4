//! The system chaincodes a node has: the ones built into ccvm, and `*.wasm` components from the
//! configured directory, which add to them or replace them by name.

use std::path::Path;

use tracing::info;

use super::NodeError;
use crate::container::inproc::InprocVm;

/// The lifecycle system chaincode: installed packages and chaincode definitions.
pub const LIFECYCLE: &str = "_lifecycle";
/// The query system chaincode: chain info, blocks and transactions.
pub const QSCC: &str = "qscc";

/// The system chaincodes compiled into the `ccvm` binary, by name.
const BUILT_IN: [(&str, &[u8]); 2] = [
    (
        LIFECYCLE,
        include_bytes!(concat!(env!("OUT_DIR"), "/lifecycle.wasm")),
    ),
    (QSCC, include_bytes!(concat!(env!("OUT_DIR"), "/qscc.wasm"))),
];

/// The wasm of a system chaincode built into ccvm.
pub fn built_in(name: &str) -> Option<&'static [u8]> {
    BUILT_IN
        .iter()
        .find(|(built_in, _)| *built_in == name)
        .map(|(_, wasm)| *wasm)
}

/// Installs the built-in system chaincodes, compiled on first use; those named in
/// `block_readers` may read the block store.
pub(super) fn install_built_in(inproc: &InprocVm, block_readers: &[String]) {
    for (name, wasm) in BUILT_IN {
        inproc.install_source(name, wasm, reads_blocks(name, block_readers));
    }
}

fn reads_blocks(name: &str, block_readers: &[String]) -> bool {
    block_readers.iter().any(|reader| reader == name)
}

/// Compiles and installs every `*.wasm` in `dir` as a system chaincode named after its file;
/// returns their names.
pub(super) fn install_directory(
    inproc: &InprocVm,
    dir: &Path,
    block_readers: &[String],
) -> Result<Vec<String>, NodeError> {
    let unreadable = |source| NodeError::ChaincodeDir {
        dir: dir.to_owned(),
        source,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "wasm"));
    paths.sort();
    let mut names = Vec::with_capacity(paths.len());
    for path in paths {
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let wasm = std::fs::read(&path).map_err(unreadable)?;
        let component = if reads_blocks(name, block_readers) {
            inproc.compile_block_reader(name, &wasm)?
        } else {
            inproc.compile(name, &wasm)?
        };
        info!(
            chaincode = name, path = %path.display(), compiled = ?component.cache_outcome(),
            "installed system chaincode"
        );
        inproc.install(name, component);
        names.push(name.to_owned());
    }
    Ok(names)
}
