//! Work a node runs beside its servers, stopped and waited for when the node shuts down.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The node's background tasks (readying system chaincodes, watching their directory, starting
/// those installed from it) and the token that asks them to stop.
pub(super) struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    pub(super) fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// The token a task watches to know it should stop.
    pub(super) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Adds a task to stop and wait for.
    pub(super) fn add(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Asks every task to stop at its next step.
    pub(super) fn cancel(&self) {
        self.stop.cancel();
    }

    /// Waits until every task has ended: a step under way, such as compiling a chaincode,
    /// finishes first, so that nothing the tasks hold (the ledger, the wasm engine) outlives
    /// this call.
    pub(super) async fn ended(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
