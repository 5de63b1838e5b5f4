//! The inproc VM's side of a guest: its link to the peer's handler, which answers what it can
//! on the guest's own task and sends the rest down the guest's stream, and the block store for a
//! guest granted it. The host functions every guest has are `ccvm-sandbox`'s.

use std::collections::VecDeque;
use std::sync::Arc;

use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{BrokenMessage, GuestState, PEER_CLOSED, PeerLink};
use tokio::sync::mpsc;

use crate::container::{InlinePeer, Offered, StreamBroken};

wasmtime::component::bindgen!({
    path: "wit",
    world: "block-reader",
    require_store_data_send: true,
});

pub(crate) use self::ccvm::chaincode::ledger;

/// The state of an inproc guest.
pub(super) type InprocGuest = GuestState<InprocLink>;

/// The peer's block store as a guest granted the `ledger` interface reads it. Each method returns
/// one encoded protobuf message, or why it cannot.
pub trait BlockStore: Send + Sync {
    /// The channel's encoded `common.BlockchainInfo`.
    ///
    /// # Errors
    /// An unknown channel, or a store that cannot be read.
    fn chain_info(&self, channel: &str) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` with that number.
    ///
    /// # Errors
    /// No such block, or a store that cannot be read.
    fn block_by_number(&self, channel: &str, number: u64) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` with that header hash.
    ///
    /// # Errors
    /// No such block, or a store that cannot be read.
    fn block_by_hash(&self, channel: &str, hash: &[u8]) -> Result<Vec<u8>, String>;

    /// The encoded `common.Block` holding the transaction.
    ///
    /// # Errors
    /// No such transaction, or a store that cannot be read.
    fn block_by_tx_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String>;

    /// The encoded `protos.ProcessedTransaction`.
    ///
    /// # Errors
    /// No such transaction, or a store that cannot be read.
    fn transaction_by_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String>;

    /// The names of the peer's channels, sorted.
    ///
    /// # Errors
    /// A store that cannot be read.
    fn channels(&self) -> Result<Vec<String>, String>;

    /// The encoded `common.Block` of the channel's latest configuration.
    ///
    /// # Errors
    /// An unknown channel, one without a configuration block, or a store that cannot be read.
    fn config_block(&self, channel: &str) -> Result<Vec<u8>, String>;
}

/// A guest's ends of its two channels to the peer: messages to it, and messages from it.
pub(super) type GuestEnds = (
    mpsc::Sender<Result<Box<ChaincodeMessage>, StreamBroken>>,
    mpsc::Receiver<Box<ChaincodeMessage>>,
);

/// An inproc guest's link to the peer: each message is offered to the peer's inline side first,
/// and goes down the stream to the handler only if it is declined.
pub(crate) struct InprocLink {
    to_peer: mpsc::Sender<Result<Box<ChaincodeMessage>, StreamBroken>>,
    from_peer: mpsc::Receiver<Box<ChaincodeMessage>>,
    /// Answers state requests on the guest's own task.
    inline: Box<dyn InlinePeer>,
    /// Inline answers waiting for the guest's next `receive`.
    answered: VecDeque<ChaincodeMessage>,
    /// The block store, for a guest granted it; the only way to it is the `ledger` interface,
    /// which is linked only for such a guest.
    blocks: Option<Arc<dyn BlockStore>>,
}

impl InprocLink {
    /// A link over the guest's channel ends that offers its messages to `inline` first; with
    /// `blocks` for a guest that may read the block store.
    pub fn new(
        (to_peer, from_peer): GuestEnds,
        inline: Box<dyn InlinePeer>,
        blocks: Option<Arc<dyn BlockStore>>,
    ) -> Self {
        Self {
            to_peer,
            from_peer,
            inline,
            answered: VecDeque::new(),
            blocks,
        }
    }

    /// Tells the peer's handler the guest's connection has ended because of `broke`.
    pub async fn end(&self, broke: StreamBroken) {
        let _ = self.to_peer.send(Err(broke)).await;
    }
}

impl PeerLink for InprocLink {
    async fn send(&mut self, message: ChaincodeMessage) -> Result<(), String> {
        match self.inline.offer(message, &mut self.answered) {
            Offered::Answered => Ok(()),
            Offered::Declined(message) => self
                .to_peer
                .send(Ok(Box::new(message)))
                .await
                .map_err(|_| PEER_CLOSED.to_owned()),
            Offered::Closed(reason) => {
                self.end(StreamBroken::Closed { reason }).await;
                Ok(())
            }
        }
    }

    fn try_receive(&mut self) -> Option<ChaincodeMessage> {
        self.answered
            .pop_front()
            .or_else(|| self.from_peer.try_recv().ok().map(|message| *message))
    }

    async fn receive(&mut self) -> Option<ChaincodeMessage> {
        self.from_peer.recv().await.map(|message| *message)
    }

    /// Ends the connection, as gRPC ends a stream that carries such bytes.
    async fn refuse(&mut self, chaincode: &str, broken: BrokenMessage) -> String {
        let chaincode = chaincode.to_owned();
        let broke = match broken {
            BrokenMessage::Oversize(oversize) => StreamBroken::Oversize {
                chaincode,
                oversize,
            },
            BrokenMessage::Undecodable(source) => StreamBroken::Undecodable { chaincode, source },
        };
        let reason = broke.to_string();
        self.end(broke).await;
        reason
    }
}

/// The block store of a guest granted it.
fn blocks(guest: &InprocGuest) -> Result<&dyn BlockStore, String> {
    guest
        .link()
        .blocks
        .as_deref()
        .ok_or_else(|| format!("chaincode {} may not read the block store", guest.name()))
}

impl ledger::Host for InprocGuest {
    fn chain_info(&mut self, channel: String) -> Result<Vec<u8>, String> {
        blocks(self)?.chain_info(&channel)
    }

    fn block_by_number(&mut self, channel: String, number: u64) -> Result<Vec<u8>, String> {
        blocks(self)?.block_by_number(&channel, number)
    }

    fn block_by_hash(&mut self, channel: String, hash: Vec<u8>) -> Result<Vec<u8>, String> {
        blocks(self)?.block_by_hash(&channel, &hash)
    }

    fn block_by_tx_id(&mut self, channel: String, tx_id: String) -> Result<Vec<u8>, String> {
        blocks(self)?.block_by_tx_id(&channel, &tx_id)
    }

    fn transaction_by_id(&mut self, channel: String, tx_id: String) -> Result<Vec<u8>, String> {
        blocks(self)?.transaction_by_id(&channel, &tx_id)
    }

    fn channels(&mut self) -> Result<Vec<String>, String> {
        blocks(self)?.channels()
    }

    fn config_block(&mut self, channel: String) -> Result<Vec<u8>, String> {
        blocks(self)?.config_block(&channel)
    }
}
