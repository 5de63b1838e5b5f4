//! Checkpoints of the store: a durable commit of everything the journal holds, after which the
//! journal starts again. The journal asks for one every so many blocks, and a thread of the
//! ledger makes it, so that no block's commit waits for the store's sync.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, Weak};
use std::thread::JoinHandle;

use redb::Database;

use super::error::{LedgerError, Result};
use super::journal::Journal;
use crate::sync::lock;

/// Commits the store durably, with it every block the journal holds, and starts the journal
/// again.
///
/// # Errors
/// The store's failure; the journal then keeps its blocks.
pub(super) fn checkpoint(db: &Database, journal: &Mutex<Journal>) -> Result<()> {
    let txn = db.begin_write()?;
    let mut journal = lock(journal);
    txn.commit()?;
    journal.checkpointed();
    Ok(())
}

/// The thread that makes checkpoints when asked; it ends when this is dropped.
pub(crate) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the store `db` and its `journal`, neither of which it keeps alive.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(db: Weak<Database>, journal: Weak<Mutex<Journal>>) -> Result<Self> {
        let (wake, woken) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("ccvm-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    let (Some(db), Some(journal)) = (db.upgrade(), journal.upgrade()) else {
                        return;
                    };
                    if let Err(e) = checkpoint(&db, &journal) {
                        tracing::warn!(error = %e, "store checkpoint failed; the journal keeps its blocks");
                    }
                }
            })
            .map_err(|e| LedgerError::Store(e.into()))?;
        Ok(Self {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; while one is waiting to be made, asking again does nothing.
    pub fn request(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
