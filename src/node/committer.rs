//! Ordering and committing for a single-node network: admitted transactions are cut into
//! blocks by one task and committed to the ledger, and each submitter learns its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvm_proto::Message;

use ccvm_proto::protos::TxValidationCode;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::channels::Channels;
use crate::ledger::{Ledger, PendingTx, TxOutcome};
use crate::metrics::metrics;
use crate::validation::Candidate;

/// Submissions waiting to be cut into a block before `Submit` callers wait for room.
const SUBMIT_QUEUE: usize = 4096;

struct Submission {
    channel: String,
    tx: PendingTx,
    /// The creator's signature over the envelope was verified on submission.
    signature_verified: bool,
    done: oneshot::Sender<Result<TxOutcome, String>>,
}

/// Told the chaincodes whose new definitions a block committed.
pub(crate) type OnRedefined = Arc<dyn Fn(&str) + Send + Sync>;

/// Cuts submitted transactions into blocks and commits them.
#[derive(Clone)]
pub(crate) struct BlockCutter {
    queue: mpsc::Sender<Submission>,
}

impl BlockCutter {
    /// Starts the cutting task on the current runtime; it ends once every clone is dropped.
    /// Each block's transactions are validated by its channel's validator before commit.
    pub fn start(
        ledger: Ledger,
        channels: Arc<Channels>,
        cutting: BlockCutting,
        on_redefined: OnRedefined,
    ) -> (Self, JoinHandle<()>) {
        let (queue, submissions) = mpsc::channel(SUBMIT_QUEUE);
        let task = tokio::spawn(cut_blocks(
            ledger,
            channels,
            submissions,
            cutting,
            on_redefined,
        ));
        (Self { queue }, task)
    }

    /// Orders `tx`, whose creator's signature the caller has verified, and waits for its
    /// commit.
    pub async fn submit_verified(
        &self,
        channel: String,
        tx: PendingTx,
    ) -> Result<TxOutcome, String> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Submission {
                channel,
                tx,
                signature_verified: true,
                done,
            })
            .await
            .map_err(|_| "the node is shutting down".to_owned())?;
        outcome
            .await
            .map_err(|_| "the node is shutting down".to_owned())?
    }
}

/// When a block is cut, as Fabric's `BatchSize` and `BatchTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockCutting {
    /// Most transactions in a block.
    pub max_txs: usize,
    /// Most bytes of transactions in a block; a larger transaction is a block of its own.
    pub max_bytes: usize,
    /// How long the first transaction of a block waits for more; zero cuts whatever is queued.
    pub timeout: Duration,
}

/// Cuts blocks of what is queued, up to a block's worth (waiting up to the batch timeout for
/// more), commits them per channel, and answers.
async fn cut_blocks(
    ledger: Ledger,
    channels: Arc<Channels>,
    mut submissions: mpsc::Receiver<Submission>,
    cutting: BlockCutting,
    on_redefined: OnRedefined,
) {
    let mut carried: Option<Submission> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match submissions.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let deadline = tokio::time::Instant::now() + cutting.timeout;
        let mut bytes = first.tx.envelope.encoded_len();
        let mut batch = vec![first];
        while batch.len() < cutting.max_txs.max(1) && bytes < cutting.max_bytes {
            let next = match submissions.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty) if !cutting.timeout.is_zero() => {
                    match tokio::time::timeout_at(deadline, submissions.recv()).await {
                        Ok(Some(next)) => next,
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(_) => break,
            };
            let size = next.tx.envelope.encoded_len();
            if bytes + size > cutting.max_bytes {
                carried = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        let mut by_channel: Vec<(String, Vec<Submission>)> = Vec::new();
        for submission in batch {
            match by_channel
                .iter_mut()
                .find(|(channel, _)| *channel == submission.channel)
            {
                Some((_, group)) => group.push(submission),
                None => by_channel.push((submission.channel.clone(), vec![submission])),
            }
        }
        for (channel, group) in by_channel {
            let (txs, waiters): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|s| ((s.tx, s.signature_verified), s.done))
                .unzip();
            let Some(validator) = channels.get(&channel).map(|on| Arc::clone(&on.validator)) else {
                for waiter in waiters {
                    let _ = waiter.send(Err(format!("channel {channel} does not exist")));
                }
                continue;
            };
            let ledger = ledger.clone();
            let name = channel.clone();
            let started = Instant::now();
            let committed = tokio::task::spawn_blocking(move || {
                let candidates: Vec<Candidate<'_>> = txs
                    .iter()
                    .map(|(tx, signature_verified)| Candidate {
                        envelope: &tx.envelope,
                        signature_verified: *signature_verified,
                    })
                    .collect();
                let verdicts = validator.validate_block(&name, &candidates);
                drop(candidates);
                let mut redefines = Vec::with_capacity(txs.len());
                let txs = txs
                    .into_iter()
                    .zip(verdicts)
                    .map(|((tx, _), verdict)| {
                        redefines.push(verdict.redefines);
                        PendingTx {
                            validation: verdict.code,
                            ..tx
                        }
                    })
                    .collect();
                ledger
                    .commit_block(&name, txs)
                    .map(|outcomes| (outcomes, redefines))
            })
            .await;
            match committed {
                Ok(Ok((outcomes, redefines))) => {
                    record_block(&channel, &outcomes, started.elapsed());
                    info!(%channel, block = outcomes.first().map(|o| o.block), txs = outcomes.len(), "committed block");
                    for ((waiter, outcome), redefined) in
                        waiters.into_iter().zip(outcomes).zip(redefines)
                    {
                        if outcome.code == TxValidationCode::Valid {
                            redefined.iter().for_each(|name| on_redefined(name));
                        }
                        let _ = waiter.send(Ok(outcome));
                    }
                }
                Ok(Err(e)) => {
                    warn!(%channel, error = %e, "block commit failed");
                    for waiter in waiters {
                        let _ = waiter.send(Err(format!("commit failed: {e}")));
                    }
                }
                Err(e) => {
                    warn!(%channel, error = %e, "block commit task failed");
                    for waiter in waiters {
                        let _ = waiter.send(Err("commit failed".to_owned()));
                    }
                }
            }
        }
    }
}

/// Fabric's ledger metrics for a block committed on `channel` in `elapsed`.
fn record_block(channel: &str, outcomes: &[TxOutcome], elapsed: Duration) {
    let metrics = metrics();
    metrics
        .block_processing_time
        .with_label_values(&[channel])
        .observe(elapsed.as_secs_f64());
    if let Some(last) = outcomes.last() {
        let height = i64::try_from(last.block + 1).unwrap_or(i64::MAX);
        metrics
            .blockchain_height
            .with_label_values(&[channel])
            .set(height);
    }
    for outcome in outcomes {
        metrics
            .transaction_count
            .with_label_values(&[
                channel,
                "ENDORSER_TRANSACTION",
                &outcome.chaincode,
                outcome.code.as_str_name(),
            ])
            .inc();
    }
}
