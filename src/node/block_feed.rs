//! Committed blocks as they come: a reader that waits for a block the channel does not have yet,
//! for the services that stream blocks or wait for a transaction's commit.

use ccvm_proto::common::Block;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ledger::{CommittedTx, Ledger, LedgerError};

/// Why a wait for a block or a transaction ended without one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FeedError {
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopped,
    /// The ledger failed underneath.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Reads one channel's blocks, waiting for those not yet committed.
pub(crate) struct BlockFeed {
    ledger: Ledger,
    channel: String,
    commits: watch::Receiver<u64>,
    stop: CancellationToken,
}

impl BlockFeed {
    pub fn new(ledger: Ledger, channel: String, stop: CancellationToken) -> Self {
        let commits = ledger.commit_notifications();
        Self {
            ledger,
            channel,
            commits,
            stop,
        }
    }

    /// The block numbered `number`, once it is committed.
    pub async fn block(&mut self, number: u64) -> Result<Block, FeedError> {
        loop {
            self.commits.borrow_and_update();
            match self.ledger.block(&self.channel, number) {
                Err(LedgerError::NoSuchBlock { .. }) => self.next_commit().await?,
                found => return Ok(found?),
            }
        }
    }

    /// Where and how the transaction `tx_id` committed, once it has.
    pub async fn committed_tx(&mut self, tx_id: &str) -> Result<CommittedTx, FeedError> {
        loop {
            self.commits.borrow_and_update();
            if let Some(committed) = self.ledger.committed_tx(&self.channel, tx_id)? {
                return Ok(committed);
            }
            self.next_commit().await?;
        }
    }

    async fn next_commit(&mut self) -> Result<(), FeedError> {
        tokio::select! {
            () = self.stop.cancelled() => Err(FeedError::Stopped),
            changed = self.commits.changed() => changed.map_err(|_| FeedError::Stopped),
        }
    }
}
