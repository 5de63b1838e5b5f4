//! Locking shared state that holds no invariant a panic could break halfway: a poisoned lock is
//! recovered rather than turned into a second panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering it if a holder panicked.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
