//! Installed packages, one file each in a directory of the node's data dir.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Package, PackageError};

/// The packages installed on a node.
#[derive(Debug, Clone)]
pub struct PackageStore {
    dir: PathBuf,
}

impl PackageStore {
    /// The store kept in `dir`, created when the first package is installed.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.tar.gz", id.replace(':', "_")))
    }

    fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
        move |source| PackageError::Store {
            path: path.to_owned(),
            source,
        }
    }

    /// Checks and keeps a package file; installing the same package again changes nothing.
    ///
    /// # Errors
    /// A malformed package, or a store that cannot be written (the store is left as it was).
    pub fn install(&self, bytes: &[u8]) -> Result<Package, PackageError> {
        let package = Package::parse(bytes)?;
        let path = self.file(&package.id);
        std::fs::create_dir_all(&self.dir).map_err(Self::io_error(&self.dir))?;
        let mut staged =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(Self::io_error(&self.dir))?;
        staged.write_all(bytes).map_err(Self::io_error(&path))?;
        staged.as_file().sync_all().map_err(Self::io_error(&path))?;
        staged.persist(&path).map_err(|e| PackageError::Store {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(package)
    }

    /// The installed package with that id, if any.
    ///
    /// # Errors
    /// A package file that cannot be read or no longer parses.
    pub fn get(&self, id: &str) -> Result<Option<Package>, PackageError> {
        self.file_bytes(id)?
            .map(|bytes| Package::parse(&bytes))
            .transpose()
    }

    /// The file of the installed package with that id, as it was installed, if any.
    ///
    /// # Errors
    /// A package file that cannot be read.
    pub fn file_bytes(&self, id: &str) -> Result<Option<Vec<u8>>, PackageError> {
        let path = self.file(id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io_error(&path)(e)),
        }
    }

    /// Every installed package, sorted by id.
    ///
    /// # Errors
    /// A store directory or package file that cannot be read.
    pub fn list(&self) -> Result<Vec<Package>, PackageError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io_error(&self.dir)(e)),
        };
        let mut packages = Vec::new();
        for entry in entries {
            let path = entry.map_err(Self::io_error(&self.dir))?.path();
            if path.to_str().is_some_and(|p| p.ends_with(".tar.gz")) {
                let bytes = std::fs::read(&path).map_err(Self::io_error(&path))?;
                packages.push(Package::parse(&bytes)?);
            }
        }
        packages.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(packages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{CodeFile, Platform};

    #[test]
    fn installed_packages_are_found_by_id_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path().join("packages"));
        assert!(store.list().unwrap().is_empty());
        let bytes = Package::build(
            "kv",
            Platform::Binary,
            &[CodeFile::new("chaincode", vec![1, 2, 3], 0o755)],
        )
        .unwrap();
        let installed = store.install(&bytes).unwrap();
        assert_eq!(store.install(&bytes).unwrap(), installed);
        assert_eq!(store.get(&installed.id).unwrap(), Some(installed.clone()));
        assert_eq!(store.get("kv:00").unwrap(), None);
        assert_eq!(store.list().unwrap(), vec![installed]);
        assert!(matches!(
            store.install(b"junk"),
            Err(PackageError::Malformed(_))
        ));
        assert_eq!(
            store.list().unwrap().len(),
            1,
            "a refused package leaves nothing"
        );
    }
}
