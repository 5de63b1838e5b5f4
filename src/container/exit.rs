//! How a started chaincode ended, as its VM tells it: a typed [`Exit`] that callers match on,
//! delivered through an [`ExitReport`].

use std::future::Future;

use ccvm_sandbox::GuestExit;
use tokio::sync::watch;

use super::ccaas::ServiceEnd;

/// How a started chaincode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// A wasm guest inside the peer ended: it finished, trapped, ran past its deadline or
    /// memory cap, or was stopped.
    Guest(GuestExit),
    /// A container exited with `code`, with the engine's error text if it gave one.
    Container {
        /// The exit code.
        code: i64,
        /// What the engine said beyond the code.
        error: Option<String>,
    },
    /// The engine lost track of the container (it was removed, or waiting on it failed).
    ContainerLost(Option<String>),
    /// The connection to a chaincode the peer dialled ended.
    Disconnected(ServiceEnd),
    /// The task that ran the chaincode ended before it could say (it panicked, or was
    /// cancelled).
    Lost,
}

impl Exit {
    /// The bound within which the chaincode had to register, when its VM stopped it for not
    /// registering within it.
    #[must_use]
    pub fn registration_overdue(&self) -> Option<std::time::Duration> {
        match self {
            Self::Guest(GuestExit::NotRegistered(within)) => Some(*within),
            _ => None,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Guest(exit) => exit.fmt(f),
            Self::Container { code, error: None } => write!(f, "container exited with {code}"),
            Self::Container {
                code,
                error: Some(error),
            } => write!(f, "container exited with {code}: {error}"),
            Self::ContainerLost(None) => f.write_str("lost track of the container"),
            Self::ContainerLost(Some(why)) => write!(f, "lost track of the container: {why}"),
            Self::Disconnected(how) => how.fmt(f),
            Self::Lost => f.write_str("failed: the task running it ended unexpectedly"),
        }
    }
}

/// How a started chaincode ended, once it has. Cheap to clone; every clone sees the same end.
#[derive(Clone)]
pub struct ExitReport(watch::Receiver<Option<Exit>>);

/// Where a VM tells the [`ExitReport`] it handed out how its chaincode ended.
pub struct ExitNotice(watch::Sender<Option<Exit>>);

impl ExitReport {
    /// A report, and the notice that fills it.
    #[must_use]
    pub fn new() -> (ExitNotice, Self) {
        let (notice, report) = watch::channel(None);
        (ExitNotice(notice), Self(report))
    }

    /// A report of what `ended` resolves to, awaited by a task of its own.
    pub fn watching(ended: impl Future<Output = Exit> + Send + 'static) -> Self {
        let (notice, report) = Self::new();
        tokio::spawn(async move { notice.report(ended.await) });
        report
    }

    /// Waits until the chaincode has ended and says how.
    pub async fn ended(&mut self) -> Exit {
        match self.0.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(Exit::Lost),
            Err(_) => Exit::Lost,
        }
    }
}

impl ExitNotice {
    /// Reports how the chaincode ended.
    pub fn report(self, exit: Exit) {
        self.0.send_replace(Some(exit));
    }
}

impl Drop for ExitNotice {
    /// A notice dropped unsent (its task panicked, or was cancelled) still ends the report.
    fn drop(&mut self) {
        self.0.send_if_modified(|exit| {
            if exit.is_some() {
                return false;
            }
            *exit = Some(Exit::Lost);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_notice_dropped_unsent_says_its_task_was_lost() {
        let (notice, report) = ExitReport::new();
        assert_eq!(*report.0.borrow(), None);
        drop(notice);
        assert_eq!(*report.0.borrow(), Some(Exit::Lost));
    }

    #[test]
    fn a_reported_exit_is_kept_when_its_notice_goes() {
        let (notice, report) = ExitReport::new();
        notice.report(Exit::Container {
            code: 137,
            error: None,
        });
        assert_eq!(
            *report.0.borrow(),
            Some(Exit::Container {
                code: 137,
                error: None
            })
        );
    }

    #[test]
    fn exits_read_as_before_for_whoever_logs_them() {
        let cases = [
            (
                Exit::Guest(GuestExit::Timeout),
                "stopped: transaction deadline exceeded",
            ),
            (
                Exit::Container {
                    code: 1,
                    error: None,
                },
                "container exited with 1",
            ),
            (Exit::ContainerLost(None), "lost track of the container"),
            (Exit::Disconnected(ServiceEnd::Closed), "closed its stream"),
            (Exit::Lost, "failed: the task running it ended unexpectedly"),
        ];
        for (exit, text) in cases {
            assert_eq!(exit.to_string(), text);
        }
    }
}
