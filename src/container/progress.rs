//! What the node does while it launches a chaincode, for whoever watches: the `ccvm.Admin`
//! Launch stream behind the command line's progress line. Launches report into a broadcast
//! channel; with nobody watching a report costs a send into an empty channel.

use tokio::sync::broadcast;

/// Events kept for a watcher that falls behind (build output can be chatty).
const BACKLOG: usize = 1024;

/// A step of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchStage {
    /// The launch began.
    Starting,
    /// An image is being built (the detail names it).
    Building,
    /// One line of the image build's output.
    BuildOutput,
    /// The container is being created.
    Creating,
    /// The chaincode was started and is expected to register.
    Started,
}

/// One step of the launch of `chaincode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEvent {
    /// The chaincode name the launch was asked for.
    pub chaincode: String,
    /// What happened.
    pub stage: LaunchStage,
    /// Its details: an image or container name, a line of output.
    pub detail: String,
}

/// Where launches report their steps. Cheap to clone; clones report to the same watchers.
#[derive(Clone)]
pub struct LaunchProgress {
    sender: broadcast::Sender<LaunchEvent>,
}

impl Default for LaunchProgress {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl LaunchProgress {
    /// Reports a step of the launch of `chaincode`.
    pub fn report(&self, chaincode: &str, stage: LaunchStage, detail: impl Into<String>) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let _ = self.sender.send(LaunchEvent {
            chaincode: chaincode.to_owned(),
            stage,
            detail: detail.into(),
        });
    }

    /// Every step reported from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LaunchEvent> {
        self.sender.subscribe()
    }
}
