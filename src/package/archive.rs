//! Gzipped tar archives held in memory: reading a package's files and writing new ones.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::PackageError;

/// Most bytes a package may unpack to, so a small archive cannot fill the disk or memory.
const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFile {
    /// The path inside the archive.
    pub path: String,
    /// The contents.
    pub bytes: Vec<u8>,
    /// Unix permission bits.
    pub mode: u32,
}

impl CodeFile {
    /// A file at `path` with `bytes` and permission bits `mode`.
    pub fn new(path: impl Into<String>, bytes: Vec<u8>, mode: u32) -> Self {
        Self {
            path: path.into(),
            bytes,
            mode,
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> PackageError {
    PackageError::Malformed(e.to_string())
}

/// The regular files of a gzipped tar, paths without a leading `./`.
pub(crate) fn read_tar_gz(bytes: &[u8]) -> Result<Vec<CodeFile>, PackageError> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes).take(MAX_UNPACKED_BYTES));
    let mut files = Vec::new();
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(malformed)?;
        let path = path
            .to_str()
            .ok_or_else(|| malformed("a path is not UTF-8"))?
            .trim_start_matches("./")
            .to_owned();
        if path.split('/').any(|part| part == "..") {
            return Err(malformed(format!("{path} leaves the archive")));
        }
        let mode = entry.header().mode().map_err(malformed)?;
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).map_err(malformed)?;
        files.push(CodeFile::new(path, contents, mode));
    }
    Ok(files)
}

/// A gzipped tar of `files`.
///
/// # Errors
/// [`PackageError::Malformed`] when a file cannot be written into the archive.
pub fn write_tar_gz(files: &[CodeFile]) -> Result<Vec<u8>, PackageError> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    append_files(&mut gzip, files)?;
    gzip.finish().map_err(malformed)
}

/// A plain (uncompressed) tar of `files`.
///
/// # Errors
/// [`PackageError::Malformed`] when a file cannot be written into the archive.
pub fn write_tar(files: &[CodeFile]) -> Result<Vec<u8>, PackageError> {
    let mut tar = Vec::new();
    append_files(&mut tar, files)?;
    Ok(tar)
}

fn append_files(out: &mut impl Write, files: &[CodeFile]) -> Result<(), PackageError> {
    let mut builder = tar::Builder::new(out);
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.bytes.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, &file.path, file.bytes.as_slice())
            .map_err(malformed)?;
    }
    builder.finish().map_err(malformed)
}
