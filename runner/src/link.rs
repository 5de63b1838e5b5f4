//! The runner's link between a guest and the peer: channels to the task that relays the peer's
//! gRPC stream, and the transactions the guest holds, so that a guest that fails can fail them.

use std::collections::VecDeque;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{BrokenMessage, PEER_CLOSED, PeerLink, ends_transaction, starts_transaction};
use tokio::sync::mpsc;

/// One guest's ends of the relay, and the transactions it has been handed and not finished.
pub struct RelayLink {
    to_peer: mpsc::Sender<ChaincodeMessage>,
    from_peer: mpsc::Receiver<ChaincodeMessage>,
    /// Channel and id of each transaction the guest holds, oldest first.
    open: VecDeque<(String, String)>,
}

impl RelayLink {
    /// A link sending the guest's messages to `to_peer` and handing it those from `from_peer`.
    pub fn new(
        to_peer: mpsc::Sender<ChaincodeMessage>,
        from_peer: mpsc::Receiver<ChaincodeMessage>,
    ) -> Self {
        Self {
            to_peer,
            from_peer,
            open: VecDeque::new(),
        }
    }

    /// Fails every transaction the guest still holds with `reason`, as ERROR messages to the
    /// peer.
    pub async fn fail_open_transactions(&mut self, reason: &str) {
        for (channel_id, txid) in self.open.drain(..) {
            let failed = ChaincodeMessage {
                r#type: MessageType::Error as i32,
                payload: reason.as_bytes().to_vec(),
                txid,
                channel_id,
                ..Default::default()
            };
            if self.to_peer.send(failed).await.is_err() {
                return;
            }
        }
    }

    fn handed(&mut self, message: &ChaincodeMessage) {
        if starts_transaction(message.r#type) {
            self.open
                .push_back((message.channel_id.clone(), message.txid.clone()));
        }
    }
}

impl PeerLink for RelayLink {
    async fn send(&mut self, message: ChaincodeMessage) -> Result<(), String> {
        if ends_transaction(message.r#type) {
            self.open
                .retain(|(channel, txid)| *channel != message.channel_id || *txid != message.txid);
        }
        self.to_peer
            .send(message)
            .await
            .map_err(|_| PEER_CLOSED.to_owned())
    }

    fn try_receive(&mut self) -> Option<ChaincodeMessage> {
        let message = self.from_peer.try_recv().ok()?;
        self.handed(&message);
        Some(message)
    }

    async fn receive(&mut self) -> Option<ChaincodeMessage> {
        let message = self.from_peer.recv().await?;
        self.handed(&message);
        Some(message)
    }

    async fn refuse(&mut self, chaincode: &str, broken: BrokenMessage) -> String {
        format!("chaincode {chaincode} sent a message the peer cannot take: {broken}")
    }
}
