//! The sandbox limits of a guest instance: the resource limiter that enforces its memory cap, and
//! the clock that tells when a transaction has run past its deadline.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvm_proto::MessageType;
use wasmtime::{Engine, ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::exit::Overdue;

/// Most linear memory one guest instance may use. A system chaincode's working set is a few MiB;
/// 64 MiB leaves ample room and stops a memory bomb long before it hurts the peer.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Deepest wasm stack a guest may use: wasmtime's own default, enough for ordinary recursion and
/// small enough that runaway recursion traps at once.
pub const DEFAULT_MAX_STACK_BYTES: usize = 512 * 1024;
/// Longest a transaction may run before its guest is stopped: Fabric's default
/// `chaincode.executetimeout`.
pub const DEFAULT_TX_DEADLINE: Duration = Duration::from_secs(30);
/// Largest `ChaincodeMessage` a guest may send, in bytes: Fabric's default gRPC message limit,
/// so that a guest inside the peer is held to what a chaincode reaching it over gRPC is. A larger
/// message ends the guest's connection, as gRPC ends a stream.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 100 * 1024 * 1024;
/// A guest's message over the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {bytes} bytes is over the limit of {limit} bytes")]
pub struct Oversize {
    /// The message's size.
    pub bytes: usize,
    /// The most a message may hold.
    pub limit: usize,
}

/// Refuses a message of `len` bytes from a guest allowed `max` bytes.
///
/// # Errors
/// [`Oversize`], when `len` is over `max`.
pub fn check_message_size(len: usize, max: usize) -> Result<(), Oversize> {
    if len > max {
        return Err(Oversize {
            bytes: len,
            limit: max,
        });
    }
    Ok(())
}

/// How often the engine's epoch advances; a guest's deadline is checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Keeps an engine's epoch ticker running for as long as any clone of it lives. Whoever runs
/// guests holds one, and so should each guest's store: a guest still computing when the rest
/// has gone then reaches its next epoch check, where it yields or stops, rather than spinning
/// forever on the thread that runs it.
#[derive(Clone, Debug)]
pub struct TickerHold {
    _alive: Arc<()>,
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`], on a thread of its own, until every clone of
/// the returned hold is dropped.
///
/// # Errors
/// Why the thread cannot be started.
pub fn start_epoch_ticker(engine: Engine) -> std::io::Result<TickerHold> {
    let hold = Arc::new(());
    let held = Arc::downgrade(&hold);
    std::thread::Builder::new()
        .name("ccvm-epoch".to_owned())
        .spawn(move || {
            while held.strong_count() > 0 {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
    Ok(TickerHold { _alive: hold })
}

/// The environment variables that carry a guest's limits to the wasm runner in a container.
pub mod runner_env {
    /// Longest a transaction may compute, in milliseconds.
    pub const TX_DEADLINE_MS: &str = "CCVM_WASM_TX_DEADLINE_MS";
    /// Most linear memory, in bytes.
    pub const MAX_MEMORY_BYTES: &str = "CCVM_WASM_MAX_MEMORY_BYTES";
    /// Deepest wasm stack, in bytes.
    pub const MAX_STACK_BYTES: &str = "CCVM_WASM_MAX_STACK_BYTES";
    /// Largest message the guest may send, in bytes.
    pub const MAX_MESSAGE_BYTES: &str = "CCVM_WASM_MAX_MESSAGE_BYTES";
    /// The most instances of the guest that share one conversation with the peer.
    pub const INSTANCES: &str = "CCVM_WASM_INSTANCES";
}

/// The most instances of a guest a runner keeps behind one conversation with the peer when
/// [`runner_env::INSTANCES`] is unset. A runner starts with one and adds one whenever a
/// transaction arrives while every instance is busy. Each instance runs one transaction at a
/// time and spends most of it waiting on the peer, so as many instances as transactions in
/// flight keep the cores busy; each costs about 100 KiB plus the memory its guest uses.
pub const DEFAULT_RUNNER_INSTANCES: NonZeroUsize =
    NonZeroUsize::new(16).expect("sixteen is not zero");

/// Enforces the memory cap and remembers whether it refused a growth, so that the trap that
/// follows can be named.
pub struct GuestLimiter {
    limits: StoreLimits,
    /// Set once a growth beyond the cap has been refused.
    pub memory_refused: bool,
    /// The most linear memory the guest has been allowed, in bytes.
    pub memory_peak_bytes: usize,
}

impl GuestLimiter {
    /// A limiter allowing at most `max_memory_bytes` of linear memory.
    #[must_use]
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .build(),
            memory_refused: false,
            memory_peak_bytes: 0,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_peak_bytes = self.memory_peak_bytes.max(desired);
        } else {
            self.memory_refused = true;
            tracing::warn!(
                current,
                desired,
                "refused to grow a wasm chaincode's memory"
            );
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// Whether a message of type `kind` from the peer hands the guest a transaction.
#[must_use]
pub fn starts_transaction(kind: i32) -> bool {
    kind == MessageType::Transaction as i32 || kind == MessageType::Init as i32
}

/// Whether a message of type `kind` from the guest is a transaction's last.
#[must_use]
pub fn ends_transaction(kind: i32) -> bool {
    kind == MessageType::Completed as i32 || kind == MessageType::Error as i32
}

/// Tracks whether the guest is working on a transaction and since when, and, for a guest
/// that must register within a bound, whether it has.
#[derive(Debug, Default)]
pub struct TxClock {
    running: usize,
    since: Option<Instant>,
    /// When the guest started and how long it may take to send REGISTER, until it has.
    registration: Option<(Instant, Duration)>,
}

impl TxClock {
    /// The clock of a guest starting now that must register `within` that long.
    #[must_use]
    pub fn awaiting_registration(within: Duration) -> Self {
        Self {
            registration: Some((Instant::now(), within)),
            ..Self::default()
        }
    }

    /// The guest was handed a transaction (it may queue it behind the one it runs).
    fn started(&mut self) {
        self.running += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// The guest finished a transaction; a queued one starts now.
    fn finished(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.since = (self.running > 0).then(Instant::now);
    }

    /// Notes a message the peer hands the guest: a transaction starts the clock.
    pub fn received(&mut self, kind: i32) {
        if starts_transaction(kind) {
            self.started();
        }
    }

    /// Notes a message the guest sends: REGISTER ends the wait for registration, and a
    /// transaction's last message stops the clock.
    pub fn sent(&mut self, kind: i32) {
        if kind == MessageType::Register as i32 {
            self.registration = None;
        }
        if ends_transaction(kind) {
            self.finished();
        }
    }

    /// An epoch check: [`Overdue`], which stops the guest, once the current transaction has run
    /// longer than `deadline`, or the guest has not registered within its bound.
    ///
    /// # Errors
    /// [`Overdue`] past either bound.
    pub fn check_deadline(&self, deadline: Duration) -> Result<(), Overdue> {
        if let Some((started, within)) = self.registration
            && started.elapsed() > within
        {
            return Err(Overdue::Registration(within));
        }
        match self.since {
            Some(since) if since.elapsed() > deadline => Err(Overdue::Transaction),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: i32 = MessageType::Transaction as i32;
    const COMPLETED: i32 = MessageType::Completed as i32;
    const GET_STATE: i32 = MessageType::GetState as i32;

    #[test]
    fn an_idle_guest_is_never_past_its_deadline() {
        let clock = TxClock::default();
        assert!(clock.check_deadline(Duration::ZERO).is_ok());
    }

    #[test]
    fn a_running_transaction_is_past_a_deadline_it_has_outlived() {
        let mut clock = TxClock::default();
        clock.received(TX);
        clock.sent(GET_STATE);
        assert!(
            clock.check_deadline(Duration::ZERO).is_err(),
            "a stub call does not end the transaction"
        );
        assert!(clock.check_deadline(Duration::from_secs(3600)).is_ok());
        clock.sent(COMPLETED);
        assert!(clock.check_deadline(Duration::ZERO).is_ok());
    }

    #[test]
    fn a_guest_that_does_not_register_in_time_is_overdue_until_it_does() {
        let mut clock = TxClock::awaiting_registration(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(
            clock.check_deadline(Duration::from_secs(3600)),
            Err(Overdue::Registration(Duration::ZERO))
        );
        clock.sent(MessageType::Register as i32);
        assert_eq!(clock.check_deadline(Duration::from_secs(3600)), Ok(()));
        let waiting = TxClock::awaiting_registration(Duration::from_secs(3600));
        assert_eq!(waiting.check_deadline(Duration::from_secs(3600)), Ok(()));
    }

    #[test]
    fn a_queued_transaction_runs_on_the_clock_until_the_last_one_ends() {
        let mut clock = TxClock::default();
        clock.received(TX);
        clock.received(TX);
        clock.sent(COMPLETED);
        assert!(
            clock.check_deadline(Duration::ZERO).is_err(),
            "the queued transaction started when the first ended"
        );
        clock.sent(MessageType::Error as i32);
        assert!(clock.check_deadline(Duration::ZERO).is_ok());
        clock.sent(COMPLETED);
        assert!(
            clock.check_deadline(Duration::ZERO).is_ok(),
            "an end without a transaction does not start the clock"
        );
    }
}
