//! Ordering and committing for a single-node network: each channel's admitted transactions are
//! cut into blocks by a thread of its own, as the channel's `BatchSize` and `BatchTimeout` say,
//! and committed to the ledger, and each submitter learns its outcome.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccvm_proto::Message;

use ccvm_proto::protos::TxValidationCode;
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use tokio_util::task::TaskTracker;

use crate::channel::Batching;
use crate::ledger::{Ledger, PendingTx, TxOutcome};
use crate::metrics::metrics;
use crate::validation::{Candidate, TxValidator};

/// Submissions waiting to be cut into a block before `Submit` callers wait for room.
const SUBMIT_QUEUE: usize = 4096;

struct Submission {
    tx: PendingTx,
    /// The creator's signature over the envelope was verified on submission.
    signature_verified: bool,
    done: oneshot::Sender<Result<TxOutcome, String>>,
}

/// Told the chaincodes whose new definitions a block committed.
pub(crate) type OnRedefined = Arc<dyn Fn(&str) + Send + Sync>;

/// What one channel's cutter works with.
pub(crate) struct CutterParts {
    /// The channel.
    pub channel: String,
    /// The ledger its blocks are committed to.
    pub ledger: Ledger,
    /// The validation of its transactions.
    pub validator: Arc<TxValidator>,
    /// When its blocks are cut.
    pub cutting: BlockCutting,
    /// Told the chaincodes whose new definitions a block committed.
    pub on_redefined: OnRedefined,
}

/// Cuts one channel's submitted transactions into blocks and commits them.
#[derive(Clone)]
pub(crate) struct BlockCutter {
    queue: mpsc::Sender<Submission>,
}

impl BlockCutter {
    /// Starts the channel's cutter on a blocking thread of `tasks`; it ends once every clone
    /// of the cutter is dropped. Each block's transactions are validated and committed on
    /// that thread, so a submission's only hand-offs are to the cutter and back.
    pub fn start(parts: CutterParts, tasks: &TaskTracker) -> Self {
        let (queue, submissions) = mpsc::channel(SUBMIT_QUEUE);
        let runtime = Handle::current();
        tasks.spawn_blocking(move || runtime.block_on(cut_blocks(parts, submissions)));
        Self { queue }
    }

    /// Queues `tx`, whose creator's signature the caller has verified, to be cut into a block;
    /// waits only for room in the queue.
    pub async fn queue_verified(&self, tx: PendingTx) -> Result<Queued, String> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Submission {
                tx,
                signature_verified: true,
                done,
            })
            .await
            .map_err(|_| SHUTTING_DOWN.to_owned())?;
        Ok(Queued(outcome))
    }
}

/// What the node says of a submission it could not commit because it is stopping.
const SHUTTING_DOWN: &str = "the node is shutting down";

/// A transaction queued to be cut into a block. Dropping it does not withdraw the transaction.
pub(crate) struct Queued(oneshot::Receiver<Result<TxOutcome, String>>);

impl Queued {
    /// Waits for the transaction's commit and answers its outcome.
    pub async fn committed(self) -> Result<TxOutcome, String> {
        self.0.await.map_err(|_| SHUTTING_DOWN.to_owned())?
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

impl BlockCutting {
    /// The cutting a channel's configuration sets: at most `BatchSize.MaxMessageCount`
    /// transactions, cut once `BatchSize.PreferredMaxBytes` are reached, after
    /// `BatchTimeout`.
    pub fn of(batching: &Batching) -> Self {
        let count = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
        Self {
            max_txs: count(batching.max_message_count),
            max_bytes: count(batching.preferred_max_bytes),
            timeout: batching.timeout,
        }
    }
}

/// Cuts blocks of what is queued, up to a block's worth (waiting up to the batch timeout for
/// more), commits them, and answers.
async fn cut_blocks(parts: CutterParts, mut submissions: mpsc::Receiver<Submission>) {
    let CutterParts {
        channel,
        ledger,
        validator,
        cutting,
        on_redefined,
    } = parts;
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
        commit_batch(&channel, &ledger, &validator, &on_redefined, batch);
    }
}

/// Validates and commits one block of `batch` on `channel`, and answers each submitter.
fn commit_batch(
    channel: &str,
    ledger: &Ledger,
    validator: &TxValidator,
    on_redefined: &OnRedefined,
    batch: Vec<Submission>,
) {
    let (txs, waiters): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|s| ((s.tx, s.signature_verified), s.done))
        .unzip();
    let started = Instant::now();
    let committed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let candidates: Vec<Candidate<'_>> = txs
            .iter()
            .map(|(tx, signature_verified)| Candidate {
                envelope: &tx.envelope,
                signature_verified: *signature_verified,
            })
            .collect();
        let verdicts = validator.validate_block(channel, &candidates);
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
            .commit_block(channel, txs)
            .map(|outcomes| (outcomes, redefines))
    }));
    match committed {
        Ok(Ok((outcomes, redefines))) => {
            record_block(channel, &outcomes, started.elapsed());
            info!(%channel, block = outcomes.first().map(|o| o.block), txs = outcomes.len(), "committed block");
            for ((waiter, outcome), redefined) in waiters.into_iter().zip(outcomes).zip(redefines) {
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
        Err(_) => {
            warn!(%channel, "block commit panicked");
            for waiter in waiters {
                let _ = waiter.send(Err("commit failed".to_owned()));
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
