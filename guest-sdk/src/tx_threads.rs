//! The threads that run a native chaincode's transactions, one transaction at a time each.
//!
//! The connection's task owns every thread's handles: it gives a thread a transaction, hands it
//! the peer's answers to its stub calls, and takes it back when the transaction ends. Nothing is
//! shared behind a lock, so sixteen transactions in flight do not contend for one, and a thread
//! is reused rather than started per transaction: a connection keeps as many threads as it ever
//! ran transactions at once. A thread whose transaction never ends (a chaincode stuck in a loop)
//! holds only itself; the others go on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use ccvm_proto::protos::ChaincodeMessage;
use tokio::sync::mpsc;

use crate::chaincode::Chaincode;
use crate::error::ShimError;
use crate::grpc::stream_closed;
use crate::shim::{PeerCall, Transaction, run_transaction};

/// Most transactions one connection runs at once, each on a thread of its own; a transaction
/// beyond them is answered with ERROR at once. The peer rarely sends more than a few dozen
/// at once (its gateway and endorser bound their own concurrency); a chaincode whose transactions
/// never end (stuck in a loop) holds at most this many threads, not one per transaction the peer
/// sends it.
///
/// ```
/// use ccvm_guest_sdk::MAX_TRANSACTION_THREADS;
///
/// // The 129th transaction in flight on one connection is answered ERROR "busy" at once.
/// assert_eq!(MAX_TRANSACTION_THREADS, 128);
/// ```
pub const MAX_TRANSACTION_THREADS: usize = 128;

/// A transaction's channel and id.
type TxKey = (String, String);

/// A transaction that ended: the thread that ran it and its COMPLETED or ERROR message.
pub(crate) struct Finished {
    thread: usize,
    done: ChaincodeMessage,
}

/// The connection task's handles on one transaction thread.
struct TxThread {
    transactions: std_mpsc::Sender<Transaction>,
    answers: std_mpsc::Sender<ChaincodeMessage>,
}

/// The transaction threads of one connection.
pub(crate) struct TxThreads {
    chaincode: Arc<dyn Chaincode + Send + Sync>,
    outbound: mpsc::Sender<ChaincodeMessage>,
    finished: mpsc::UnboundedSender<Finished>,
    threads: Vec<TxThread>,
    idle: Vec<usize>,
    running: HashMap<TxKey, usize>,
}

impl TxThreads {
    /// Threads that run transactions of `chaincode` and send their stub calls on `outbound`.
    /// Ended transactions arrive on the receiver returned, to be given to [`Self::finish`].
    pub fn new(
        chaincode: Arc<dyn Chaincode + Send + Sync>,
        outbound: mpsc::Sender<ChaincodeMessage>,
    ) -> (Self, mpsc::UnboundedReceiver<Finished>) {
        let (finished, ended) = mpsc::unbounded_channel();
        let threads = Self {
            chaincode,
            outbound,
            finished,
            threads: Vec::new(),
            idle: Vec::new(),
            running: HashMap::new(),
        };
        (threads, ended)
    }

    /// Starts `transaction` on an idle thread, or on a new one. Returns the ERROR message to send
    /// for it when no thread can run it, or [`MAX_TRANSACTION_THREADS`] are busy.
    pub fn run(&mut self, transaction: Transaction) -> Option<ChaincodeMessage> {
        let key = (transaction.channel_id.clone(), transaction.tx_id.clone());
        let index = match self.idle.pop() {
            Some(index) => index,
            None if self.threads.len() >= MAX_TRANSACTION_THREADS => {
                return Some(transaction.error(format!(
                    "busy: the chaincode is running {MAX_TRANSACTION_THREADS} transactions \
                     already; try again later"
                )));
            }
            None => match self.start_thread() {
                Ok(index) => index,
                Err(e) => {
                    return Some(
                        transaction.error(format!("cannot start a transaction thread: {e}")),
                    );
                }
            },
        };
        if let Err(refused) = self.threads[index].transactions.send(transaction) {
            return Some(
                refused
                    .0
                    .error("the transaction thread has ended".to_owned()),
            );
        }
        self.running.insert(key, index);
        None
    }

    /// Hands the peer's answer to the thread whose transaction asked for it; an answer for a
    /// transaction that is not running is dropped.
    pub fn deliver(&self, answer: ChaincodeMessage) {
        let key = (answer.channel_id.clone(), answer.txid.clone());
        if let Some(&index) = self.running.get(&key) {
            let _ = self.threads[index].answers.send(answer);
        }
    }

    /// Takes a thread back once its transaction has ended; returns the message that ends it.
    pub fn finish(&mut self, finished: Finished) -> ChaincodeMessage {
        let done = &finished.done;
        self.running
            .remove(&(done.channel_id.clone(), done.txid.clone()));
        self.idle.push(finished.thread);
        finished.done
    }

    fn start_thread(&mut self) -> std::io::Result<usize> {
        let index = self.threads.len();
        let (transactions, next_transaction) = std_mpsc::channel();
        let (answers, next_answer) = std_mpsc::channel();
        let chaincode = Arc::clone(&self.chaincode);
        let peer = ThreadPeer {
            outbound: self.outbound.clone(),
            answers: next_answer,
        };
        let finished = self.finished.clone();
        std::thread::Builder::new()
            .name(format!("ccvm-tx-{index}"))
            .spawn(move || {
                while let Ok(transaction) = next_transaction.recv() {
                    let done = run_transaction(chaincode.as_ref(), transaction, &peer);
                    let ended = Finished {
                        thread: index,
                        done,
                    };
                    if finished.send(ended).is_err() {
                        return;
                    }
                }
            })?;
        self.threads.push(TxThread {
            transactions,
            answers,
        });
        Ok(index)
    }
}

/// A transaction thread's line to the peer: sends on the shared stream, waits for the answer
/// the connection task hands it.
struct ThreadPeer {
    outbound: mpsc::Sender<ChaincodeMessage>,
    answers: std_mpsc::Receiver<ChaincodeMessage>,
}

impl PeerCall for ThreadPeer {
    fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
        self.outbound
            .blocking_send(request)
            .map_err(|_| stream_closed())?;
        self.answers.recv().map_err(|_| stream_closed())
    }
}

#[cfg(test)]
mod tests {
    use ccvm_proto::protos::{ChaincodeInput, Response as ProtoResponse};
    use ccvm_proto::{Message, MessageType};

    use super::*;
    use crate::chaincode::Response;
    use crate::stub::Stub;

    /// Answers each transaction with the value of key `k`.
    struct ReadsK;

    impl Chaincode for ReadsK {
        fn invoke(&self, stub: &mut Stub<'_>) -> Response {
            match stub.get_state("k") {
                Ok(value) => Response::success(value.unwrap_or_default()),
                Err(e) => Response::error(e.to_string()),
            }
        }
    }

    fn transaction(tx_id: &str) -> Transaction {
        Transaction {
            is_init: false,
            channel_id: "ch".to_owned(),
            tx_id: tx_id.to_owned(),
            input: ChaincodeInput::default(),
            proposal: None,
            peer_features: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_transaction_beyond_the_thread_limit_is_refused_as_busy_until_one_ends() {
        let (outbound, mut to_peer) = mpsc::channel(MAX_TRANSACTION_THREADS + 1);
        let (mut threads, mut ended) = TxThreads::new(Arc::new(ReadsK), outbound);
        for n in 0..MAX_TRANSACTION_THREADS {
            assert!(threads.run(transaction(&n.to_string())).is_none());
        }
        let busy = threads
            .run(transaction("one too many"))
            .expect("refused at once");
        assert_eq!(busy.r#type, MessageType::Error as i32);
        assert_eq!(busy.txid, "one too many");
        assert!(
            String::from_utf8_lossy(&busy.payload).starts_with("busy: "),
            "{busy:?}"
        );

        let request = to_peer.recv().await.expect("a stub call");
        threads.deliver(ChaincodeMessage {
            r#type: MessageType::Response as i32,
            txid: request.txid.clone(),
            channel_id: request.channel_id.clone(),
            ..Default::default()
        });
        threads.finish(ended.recv().await.expect("an ended transaction"));
        assert!(
            threads.run(transaction("after one ended")).is_none(),
            "the thread that finished takes the next transaction"
        );
        assert_eq!(threads.threads.len(), MAX_TRANSACTION_THREADS);
    }

    #[tokio::test]
    async fn answers_reach_the_thread_of_their_transaction_and_threads_are_reused() {
        let (outbound, mut to_peer) = mpsc::channel(16);
        let (mut threads, mut ended) = TxThreads::new(Arc::new(ReadsK), outbound);
        for tx_id in ["a", "b"] {
            assert!(threads.run(transaction(tx_id)).is_none());
        }
        let mut requests = Vec::new();
        for _ in 0..2 {
            let request = to_peer.recv().await.expect("a stub call");
            assert_eq!(request.r#type, MessageType::GetState as i32);
            requests.push(request);
        }
        for request in requests.iter().rev() {
            threads.deliver(ChaincodeMessage {
                r#type: MessageType::Response as i32,
                payload: format!("value of {}", request.txid).into_bytes(),
                txid: request.txid.clone(),
                channel_id: request.channel_id.clone(),
                ..Default::default()
            });
        }
        for _ in 0..2 {
            let done = threads.finish(ended.recv().await.expect("an ended transaction"));
            assert_eq!(done.r#type, MessageType::Completed as i32);
            let response = ProtoResponse::decode(done.payload.as_slice()).expect("a response");
            assert_eq!(
                response.payload,
                format!("value of {}", done.txid).into_bytes()
            );
        }

        assert!(threads.run(transaction("c")).is_none());
        assert_eq!(
            threads.threads.len(),
            2,
            "an idle thread runs the next transaction"
        );
        let request = to_peer.recv().await.expect("a stub call");
        assert_eq!(request.txid, "c");
    }
}
