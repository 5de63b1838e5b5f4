//! The runner's link between a guest instance and the peer: channels to the fan-out that shares
//! the peer's stream among the instances, and the transactions the instance holds, so that an
//! instance that fails can fail them.

use std::collections::VecDeque;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{
    BrokenMessage, GuestExit, PEER_CLOSED, PeerLink, ends_transaction, starts_transaction,
};
use tokio::sync::mpsc;

use crate::fan_out::{FromInstance, ToInstance};

/// One instance's ends of the fan-out, and the transactions it has been handed and not finished.
pub struct RelayLink {
    /// The instance's place among the fan-out's instances.
    index: usize,
    to_peer: mpsc::Sender<FromInstance>,
    from_peer: mpsc::UnboundedReceiver<ToInstance>,
    /// Channel and id of each transaction the guest holds, oldest first.
    open: VecDeque<(String, String)>,
}

impl RelayLink {
    /// The link of the instance at `index`, sending its messages to `to_peer` and handing it
    /// those from `from_peer`.
    pub fn new(
        index: usize,
        to_peer: mpsc::Sender<FromInstance>,
        from_peer: mpsc::UnboundedReceiver<ToInstance>,
    ) -> Self {
        Self {
            index,
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
            if self
                .to_peer
                .send(FromInstance::Message(self.index, failed))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Tells the fan-out that the instance has ended, and how.
    pub async fn ended(&self, exit: GuestExit) {
        // A fan-out that has gone needs telling nothing.
        let _ = self
            .to_peer
            .send(FromInstance::Ended(self.index, exit))
            .await;
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
            .send(FromInstance::Message(self.index, message))
            .await
            .map_err(|_| PEER_CLOSED.to_owned())
    }

    fn try_receive(&mut self) -> Option<ChaincodeMessage> {
        let message = self.from_peer.try_recv().ok()?.message;
        self.handed(&message);
        Some(message)
    }

    async fn receive(&mut self) -> Option<ChaincodeMessage> {
        let message = self.from_peer.recv().await?.message;
        self.handed(&message);
        Some(message)
    }

    async fn refuse(&mut self, chaincode: &str, broken: BrokenMessage) -> String {
        format!("chaincode {chaincode} sent a message the peer cannot take: {broken}")
    }
}
