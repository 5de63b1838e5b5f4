//! Several instances of one guest behind one conversation with the peer, so that a chaincode
//! serves transactions side by side although each instance runs one at a time. The peer sees one
//! chaincode: the first instance's REGISTER goes to it, and every other instance is answered with
//! the peer's own replies to it. Each transaction the peer starts is handed to the ready instance
//! holding the fewest, and every later message of that transaction goes to the same instance.

use std::collections::HashMap;
use std::sync::Arc;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{GuestExit, ends_transaction, starts_transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Most messages from the peer waiting, across all instances, for an instance to take them: as
/// many as the instances' relay buffers held when each instance had a stream of its own. With
/// that many waiting the fan-out stops reading the peer's stream, and gRPC's flow control holds
/// the peer back.
pub const MAX_WAITING_MESSAGES: usize = 256;

/// A message on its way to an instance, holding its place among the [`MAX_WAITING_MESSAGES`]
/// until the instance takes it. The peer's replies to the registration, replayed to each
/// instance, hold none.
pub struct ToInstance {
    /// The message.
    pub message: ChaincodeMessage,
    _place: Option<OwnedSemaphorePermit>,
}

impl ToInstance {
    fn reply(message: ChaincodeMessage) -> Self {
        Self {
            message,
            _place: None,
        }
    }
}

/// What an instance tells the fan-out.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every value is a message: boxing would allocate once for each"
)]
pub enum FromInstance {
    /// A message for the peer from the instance at `index`.
    Message(usize, ChaincodeMessage),
    /// The instance at `index` has ended, and how; its last messages came before this.
    Ended(usize, GuestExit),
}

/// The peer's side of each instance, and which instance holds which transaction.
struct Instances {
    /// Unbounded, so that a busy instance never holds up the others: what waits in them is
    /// bounded by [`MAX_WAITING_MESSAGES`].
    to_instances: Vec<Option<mpsc::UnboundedSender<ToInstance>>>,
    /// Whether each instance has been given the peer's answer to its registration.
    ready: Vec<bool>,
    /// Transactions each instance holds.
    load: Vec<usize>,
    /// The instance holding each open transaction, by channel and transaction id.
    routes: HashMap<(String, String), usize>,
}

impl Instances {
    fn deliver(&mut self, index: usize, message: ToInstance) {
        let Some(Some(to_instance)) = self.to_instances.get(index) else {
            return;
        };
        if to_instance.send(message).is_err() {
            self.to_instances[index] = None;
        }
    }

    /// The ready instance holding the fewest transactions, or `fallback` while none is ready.
    fn least_loaded(&self, fallback: usize) -> usize {
        (0..self.load.len())
            .filter(|&index| self.ready[index] && self.to_instances[index].is_some())
            .min_by_key(|&index| self.load[index])
            .unwrap_or(fallback)
    }

    fn route(message: &ChaincodeMessage) -> (String, String) {
        (message.channel_id.clone(), message.txid.clone())
    }
}

/// The peer's replies to the registration, kept to answer each instance that registers.
#[derive(Default)]
struct Handshake {
    /// The instance whose REGISTER went to the peer.
    registrar: Option<usize>,
    /// The peer's replies so far, REGISTERED then READY.
    replies: Vec<ChaincodeMessage>,
    /// Whether READY has come, which ends the handshake.
    done: bool,
    /// Instances that registered before the handshake ended.
    waiting: Vec<usize>,
}

/// Relays between the peer and the instances until every instance has ended, and returns the
/// first failure among them, if any. When an instance fails, the others are cut off from the
/// peer, so that they end too and the peer starts the chaincode again; when the peer ends the
/// conversation, so do the instances.
pub async fn fan_out(
    to_peer: mpsc::Sender<ChaincodeMessage>,
    mut from_peer: mpsc::Receiver<ChaincodeMessage>,
    mut from_instances: mpsc::Receiver<FromInstance>,
    to_instances: Vec<mpsc::UnboundedSender<ToInstance>>,
) -> GuestExit {
    let places = Arc::new(Semaphore::new(MAX_WAITING_MESSAGES));
    let count = to_instances.len();
    let mut instances = Instances {
        to_instances: to_instances.into_iter().map(Some).collect(),
        ready: vec![false; count],
        load: vec![0; count],
        routes: HashMap::new(),
    };
    let mut handshake = Handshake::default();
    let mut running = count;
    let mut first_failure = None;
    let mut peer_open = true;
    while running > 0 {
        tokio::select! {
            told = from_instances.recv() => match told {
                Some(FromInstance::Message(index, message)) => {
                    from_instance(index, message, &mut instances, &mut handshake, &to_peer).await;
                }
                Some(FromInstance::Ended(index, exit)) => {
                    running -= 1;
                    instances.to_instances[index] = None;
                    if exit != GuestExit::Finished && first_failure.is_none() {
                        first_failure = Some(exit);
                        instances.to_instances.iter_mut().for_each(|sender| *sender = None);
                    }
                }
                None => break,
            },
            message = next_from_peer(&places, &mut from_peer), if peer_open => match message {
                Some(message) => from_peer_message(message, &mut instances, &mut handshake),
                None => {
                    peer_open = false;
                    instances.to_instances.iter_mut().for_each(|sender| *sender = None);
                }
            },
        }
    }
    first_failure.unwrap_or(GuestExit::Finished)
}

async fn from_instance(
    index: usize,
    message: ChaincodeMessage,
    instances: &mut Instances,
    handshake: &mut Handshake,
    to_peer: &mpsc::Sender<ChaincodeMessage>,
) {
    if message.r#type == MessageType::Register as i32 {
        for reply in &handshake.replies {
            instances.deliver(index, ToInstance::reply(reply.clone()));
        }
        if handshake.done {
            instances.ready[index] = true;
            return;
        }
        handshake.waiting.push(index);
        if handshake.registrar.is_some() {
            return;
        }
        handshake.registrar = Some(index);
    } else if ends_transaction(message.r#type) {
        let route = Instances::route(&message);
        if instances.routes.get(&route) == Some(&index) {
            instances.routes.remove(&route);
            instances.load[index] = instances.load[index].saturating_sub(1);
        }
    }
    // A closed peer ends the conversation: the instances are cut off when the peer's side ends.
    let _ = to_peer.send(message).await;
}

/// The peer's next message, once a place among the [`MAX_WAITING_MESSAGES`] is free for it;
/// `None` when the peer has ended the conversation.
async fn next_from_peer(
    places: &Arc<Semaphore>,
    from_peer: &mut mpsc::Receiver<ChaincodeMessage>,
) -> Option<ToInstance> {
    // The semaphore is never closed.
    let place = Arc::clone(places).acquire_owned().await.ok()?;
    let message = from_peer.recv().await?;
    Some(ToInstance {
        message,
        _place: Some(place),
    })
}

fn from_peer_message(
    to_instance: ToInstance,
    instances: &mut Instances,
    handshake: &mut Handshake,
) {
    let registrar = handshake.registrar.unwrap_or(0);
    let message = &to_instance.message;
    if !handshake.done {
        let kind = message.r#type;
        if kind == MessageType::Registered as i32 || kind == MessageType::Ready as i32 {
            handshake.replies.push(message.clone());
            handshake.done = kind == MessageType::Ready as i32;
            for &index in &handshake.waiting {
                instances.ready[index] = handshake.done;
                instances.deliver(index, ToInstance::reply(message.clone()));
            }
            return;
        }
        if kind == MessageType::Error as i32 {
            // A refused registration: every instance that asked is told.
            for &index in &handshake.waiting {
                instances.deliver(index, ToInstance::reply(message.clone()));
            }
            return;
        }
    }
    let route = Instances::route(message);
    let index = if starts_transaction(message.r#type) {
        match instances.routes.get(&route) {
            Some(&holder) => holder,
            None => {
                let index = instances.least_loaded(registrar);
                instances.routes.insert(route, index);
                instances.load[index] += 1;
                index
            }
        }
    } else {
        instances.routes.get(&route).copied().unwrap_or(registrar)
    };
    instances.deliver(index, to_instance);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fan-out over `count` instances, driven from the test through the channels' other ends.
    struct Harness {
        to_fan_out: mpsc::Sender<FromInstance>,
        instances: Vec<mpsc::UnboundedReceiver<ToInstance>>,
        peer_sends: mpsc::Sender<ChaincodeMessage>,
        peer_receives: mpsc::Receiver<ChaincodeMessage>,
        fan_out: tokio::task::JoinHandle<GuestExit>,
    }

    fn harness(count: usize) -> Harness {
        let (to_peer, peer_receives) = mpsc::channel(16);
        let (peer_sends, from_peer) = mpsc::channel(16);
        let (to_fan_out, from_instances) = mpsc::channel(16);
        let (senders, instances) = (0..count).map(|_| mpsc::unbounded_channel()).unzip();
        let fan_out = tokio::spawn(fan_out(to_peer, from_peer, from_instances, senders));
        Harness {
            to_fan_out,
            instances,
            peer_sends,
            peer_receives,
            fan_out,
        }
    }

    fn message(kind: MessageType, txid: &str) -> ChaincodeMessage {
        ChaincodeMessage {
            r#type: kind as i32,
            txid: txid.to_owned(),
            channel_id: "mychannel".to_owned(),
            ..Default::default()
        }
    }

    impl Harness {
        async fn instance_says(&self, index: usize, kind: MessageType, txid: &str) {
            self.to_fan_out
                .send(FromInstance::Message(index, message(kind, txid)))
                .await
                .expect("the fan-out is running");
        }

        async fn peer_says(&self, kind: MessageType, txid: &str) {
            self.peer_sends
                .send(message(kind, txid))
                .await
                .expect("the fan-out is running");
        }

        /// The type and transaction id of the next message that reaches the peer.
        async fn peer_got(&mut self) -> (i32, String) {
            let message = self
                .peer_receives
                .recv()
                .await
                .expect("the fan-out is running");
            (message.r#type, message.txid)
        }

        async fn received(&mut self, index: usize) -> (i32, String) {
            let message = self.instances[index]
                .recv()
                .await
                .expect("the instance is still connected")
                .message;
            (message.r#type, message.txid)
        }

        /// Registers every instance: the first before the peer answers, the rest after.
        async fn register_all(&mut self) {
            self.instance_says(0, MessageType::Register, "").await;
            assert_eq!(self.peer_got().await.0, MessageType::Register as i32);
            self.peer_says(MessageType::Registered, "").await;
            self.peer_says(MessageType::Ready, "").await;
            for index in 1..self.instances.len() {
                self.instance_says(index, MessageType::Register, "").await;
            }
            for index in 0..self.instances.len() {
                assert_eq!(self.received(index).await.0, MessageType::Registered as i32);
                assert_eq!(self.received(index).await.0, MessageType::Ready as i32);
            }
        }
    }

    #[tokio::test]
    async fn the_peer_sees_one_registration_and_every_instance_gets_its_answer() {
        let mut harness = harness(3);
        harness.instance_says(0, MessageType::Register, "").await;
        harness.instance_says(1, MessageType::Register, "").await;
        assert_eq!(harness.peer_got().await.0, MessageType::Register as i32);
        harness.peer_says(MessageType::Registered, "").await;
        harness.peer_says(MessageType::Ready, "").await;
        assert_eq!(harness.received(0).await.0, MessageType::Registered as i32);
        harness.instance_says(2, MessageType::Register, "").await;
        for index in 0..3 {
            if index != 0 {
                assert_eq!(
                    harness.received(index).await.0,
                    MessageType::Registered as i32
                );
            }
            assert_eq!(harness.received(index).await.0, MessageType::Ready as i32);
        }
        // The next message the peer gets is this one: no other registration reached it.
        harness
            .instance_says(2, MessageType::Completed, "after")
            .await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::Completed as i32, "after".to_owned())
        );
    }

    #[tokio::test]
    async fn a_refused_registration_reaches_every_instance_that_asked() {
        let mut harness = harness(2);
        harness.instance_says(0, MessageType::Register, "").await;
        harness.instance_says(1, MessageType::Register, "").await;
        assert_eq!(harness.peer_got().await.0, MessageType::Register as i32);
        harness.peer_says(MessageType::Error, "").await;
        assert_eq!(harness.received(0).await.0, MessageType::Error as i32);
        assert_eq!(harness.received(1).await.0, MessageType::Error as i32);
    }

    #[tokio::test]
    async fn transactions_go_to_the_least_busy_instance_and_stay_there() {
        let mut harness = harness(3);
        harness.register_all().await;
        for txid in ["t1", "t2", "t3"] {
            harness.peer_says(MessageType::Transaction, txid).await;
        }
        let mut holders = HashMap::new();
        for index in 0..3 {
            let (kind, txid) = harness.received(index).await;
            assert_eq!(kind, MessageType::Transaction as i32);
            holders.insert(txid, index);
        }
        assert_eq!(
            holders.len(),
            3,
            "each instance holds one transaction: {holders:?}"
        );
        // The peer's answer to a guest's call goes to the instance that made it.
        let t2 = holders["t2"];
        harness.instance_says(t2, MessageType::GetState, "t2").await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::GetState as i32, "t2".to_owned())
        );
        harness.peer_says(MessageType::Response, "t2").await;
        assert_eq!(
            harness.received(t2).await,
            (MessageType::Response as i32, "t2".to_owned())
        );
        // The instance that finishes first is the one that gets the next transaction.
        harness
            .instance_says(t2, MessageType::Completed, "t2")
            .await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::Completed as i32, "t2".to_owned())
        );
        harness.peer_says(MessageType::Transaction, "t4").await;
        assert_eq!(
            harness.received(t2).await,
            (MessageType::Transaction as i32, "t4".to_owned())
        );
    }

    #[tokio::test]
    async fn a_peer_flooding_a_busy_instance_is_held_back_at_the_bound() {
        let mut harness = harness(1);
        harness.register_all().await;
        // The peer's channel holds 16 more than the fan-out lets wait for the instance.
        for txid in 0..MAX_WAITING_MESSAGES + 16 {
            harness
                .peer_says(MessageType::Transaction, &txid.to_string())
                .await;
        }
        // Whatever the fan-out would still read, it reads while the test sleeps.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(harness.instances[0].len(), MAX_WAITING_MESSAGES);
        let flood = message(MessageType::Transaction, "flood");
        assert!(
            matches!(
                harness.peer_sends.try_send(flood.clone()),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            "the fan-out stopped reading the peer"
        );
        // Once the instance takes a message, the fan-out reads one more.
        harness.received(0).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(harness.instances[0].len(), MAX_WAITING_MESSAGES);
        assert!(harness.peer_sends.try_send(flood).is_ok());
    }

    #[tokio::test]
    async fn a_failed_instance_cuts_the_others_off_and_its_failure_is_returned() {
        let mut harness = harness(3);
        harness.register_all().await;
        let failure = GuestExit::Trapped("unreachable executed".to_owned());
        harness
            .to_fan_out
            .send(FromInstance::Ended(1, failure.clone()))
            .await
            .expect("the fan-out is running");
        for index in [0, 2] {
            assert!(
                harness.instances[index].recv().await.is_none(),
                "instance {index} is cut off from the peer"
            );
            harness
                .to_fan_out
                .send(FromInstance::Ended(index, GuestExit::Finished))
                .await
                .expect("the fan-out waits for every instance");
        }
        assert_eq!(harness.fan_out.await.expect("the fan-out ends"), failure);
    }

    #[tokio::test]
    async fn the_peer_ending_the_conversation_ends_every_instance() {
        let Harness {
            to_fan_out,
            mut instances,
            peer_sends,
            peer_receives: _peer_receives,
            fan_out,
        } = harness(2);
        drop(peer_sends);
        for (index, instance) in instances.iter_mut().enumerate() {
            assert!(
                instance.recv().await.is_none(),
                "instance {index} is cut off"
            );
            to_fan_out
                .send(FromInstance::Ended(index, GuestExit::Finished))
                .await
                .expect("the fan-out waits for every instance");
        }
        assert_eq!(
            fan_out.await.expect("the fan-out ends"),
            GuestExit::Finished
        );
    }
}
