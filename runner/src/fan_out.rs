//! Instances of one guest behind one conversation with the peer, so that a chaincode serves
//! transactions side by side although each instance runs one at a time. The conversation starts
//! with one instance; another is started whenever a transaction arrives while every instance is
//! busy, up to the most the runner was given. The peer sees one chaincode: the first instance's
//! REGISTER goes to it, and every later instance is answered with the peer's own replies to it.
//! Each transaction the peer starts is handed to the ready instance holding the fewest, and every
//! later message of that transaction goes to the same instance. An instance that has held no
//! transaction for [`RETIRE_AFTER_IDLE`] is cut off, so that it ends and its memory is returned,
//! as long as another stays to serve the peer.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use ccvm_proto::MessageType;
use ccvm_proto::protos::ChaincodeMessage;
use ccvm_sandbox::{GuestExit, ends_transaction, starts_transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

/// Most messages from the peer waiting, across all instances, for an instance to take them: as
/// many as the instances' relay buffers held when each instance had a stream of its own. With
/// that many waiting the fan-out stops reading the peer's stream, and gRPC's flow control holds
/// the peer back.
pub const MAX_WAITING_MESSAGES: usize = 256;

/// How long an instance holds no transaction before it is retired: checked at this interval, so
/// an idle instance ends between once and twice this long after its last transaction.
pub const RETIRE_AFTER_IDLE: Duration = Duration::from_secs(30);

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

/// Starts the instance at the index it is given and returns the way to it.
pub trait StartInstance: FnMut(usize) -> mpsc::UnboundedSender<ToInstance> {}

impl<F: FnMut(usize) -> mpsc::UnboundedSender<ToInstance>> StartInstance for F {}

/// An instance started and not yet registered, with the messages held for it until it is.
struct Starting {
    index: usize,
    held: Vec<ToInstance>,
}

/// The peer's side of one instance.
struct Place {
    /// Unbounded, so that a busy instance never holds up the others: what waits in them is
    /// bounded by [`MAX_WAITING_MESSAGES`]. `None` once the instance is cut off.
    to_instance: Option<mpsc::UnboundedSender<ToInstance>>,
    /// Whether the instance has been given the peer's answer to its registration.
    ready: bool,
    /// Transactions the instance holds.
    load: usize,
    /// When the instance last finished a transaction, or started.
    idle_since: Instant,
    /// Whether the instance is still running: it has not told of its end. The place of one that
    /// has ended is taken by the next instance to start.
    running: bool,
    /// Whether the instance was retired, so that how it ends is no failure of the chaincode.
    retired: bool,
}

impl Place {
    /// The place of an instance just started, reached through `to_instance`.
    fn started(to_instance: mpsc::UnboundedSender<ToInstance>) -> Self {
        Self {
            to_instance: Some(to_instance),
            ready: false,
            load: 0,
            idle_since: Instant::now(),
            running: true,
            retired: false,
        }
    }

    /// Whether the instance takes transactions: it is ready and not cut off.
    fn serves(&self) -> bool {
        self.ready && self.to_instance.is_some()
    }
}

/// The peer's side of each instance, which instance holds which transaction, and how to start
/// another.
struct Instances<S> {
    /// Each instance's place, by index.
    places: Vec<Place>,
    /// The instance holding each open transaction, by channel and transaction id.
    routes: HashMap<(String, String), usize>,
    /// The instance started last, until it has registered.
    starting: Option<Starting>,
    /// Most instances there may be; none start once the conversation is ending.
    most: usize,
    start: S,
}

impl<S: StartInstance> Instances<S> {
    fn new(most: NonZeroUsize, start: S) -> Self {
        Self {
            places: Vec::with_capacity(most.get()),
            routes: HashMap::new(),
            starting: None,
            most: most.get(),
            start,
        }
    }

    /// Starts another instance, in the place of one that has ended if there is one, and returns
    /// its index.
    fn start_one(&mut self) -> usize {
        let index = self
            .places
            .iter()
            .position(|place| !place.running)
            .unwrap_or(self.places.len());
        let place = Place::started((self.start)(index));
        if index == self.places.len() {
            self.places.push(place);
        } else {
            self.places[index] = place;
        }
        index
    }

    /// How many instances are running.
    fn running(&self) -> usize {
        self.places.iter().filter(|place| place.running).count()
    }

    /// The instance for a transaction the peer starts: the ready one holding the fewest; or,
    /// when each holds one already, a new one, if another may start and none is starting.
    fn take_transaction(&mut self, route: (String, String)) -> usize {
        let least = self.least_loaded();
        let index =
            if self.places[least].load > 0 && self.starting.is_none() && self.running() < self.most
            {
                let index = self.start_one();
                self.starting = Some(Starting {
                    index,
                    held: Vec::new(),
                });
                index
            } else {
                least
            };
        self.routes.insert(route, index);
        self.places[index].load += 1;
        index
    }

    /// Answers the registration of the instance at `index` with `replies`, then hands it what
    /// was held for it.
    fn registered(&mut self, index: usize, replies: &[ChaincodeMessage]) {
        let held = self
            .starting
            .take_if(|starting| starting.index == index)
            .map(|starting| starting.held);
        for reply in replies {
            self.deliver(index, ToInstance::reply(reply.clone()));
        }
        self.places[index].ready = true;
        for message in held.into_iter().flatten() {
            self.deliver(index, message);
        }
    }

    fn deliver(&mut self, index: usize, message: ToInstance) {
        if let Some(starting) = self.starting.as_mut().filter(|s| s.index == index) {
            starting.held.push(message);
            return;
        }
        let Some(place) = self.places.get_mut(index) else {
            return;
        };
        if place
            .to_instance
            .as_ref()
            .is_some_and(|to_instance| to_instance.send(message).is_err())
        {
            place.to_instance = None;
        }
    }

    /// Forgets the instance at `index`, which has ended, with anything held for it.
    fn ended(&mut self, index: usize) {
        let place = &mut self.places[index];
        place.to_instance = None;
        place.running = false;
        self.starting.take_if(|starting| starting.index == index);
    }

    /// A transaction of the instance at `index` has ended.
    fn finished(&mut self, index: usize) {
        let place = &mut self.places[index];
        place.load = place.load.saturating_sub(1);
        if place.load == 0 {
            place.idle_since = Instant::now();
        }
    }

    /// Cuts off the instances that have held no transaction for [`RETIRE_AFTER_IDLE`], the
    /// newest first, keeping at least one ready instance.
    fn retire_idle(&mut self) {
        let mut serving = self.places.iter().filter(|place| place.serves()).count();
        for place in self.places.iter_mut().rev() {
            if serving <= 1 {
                return;
            }
            if place.serves() && place.load == 0 && place.idle_since.elapsed() >= RETIRE_AFTER_IDLE
            {
                place.to_instance = None;
                place.retired = true;
                serving -= 1;
            }
        }
    }

    /// Cuts every instance off from the peer, so that each ends, and starts no more.
    fn cut_off_all(&mut self) {
        for place in &mut self.places {
            place.to_instance = None;
        }
        self.starting = None;
        self.most = 0;
    }

    /// The ready instance holding the fewest transactions, or the first while none is ready.
    fn least_loaded(&self) -> usize {
        self.places
            .iter()
            .enumerate()
            .filter(|(_, place)| place.serves())
            .min_by_key(|(_, place)| place.load)
            .map_or(0, |(index, _)| index)
    }
}

/// A transaction's channel and id, which route its messages.
fn route(message: &ChaincodeMessage) -> (String, String) {
    (message.channel_id.clone(), message.txid.clone())
}

/// The peer's replies to the first instance's registration, kept to answer each later instance.
#[derive(Default)]
struct Handshake {
    /// The peer's replies so far, REGISTERED then READY.
    replies: Vec<ChaincodeMessage>,
    /// Whether READY has come, which ends the handshake; later instances start only after it.
    done: bool,
}

/// Relays between the peer and the instances that `start` starts, at most `most` of them, until
/// every instance has ended, and returns the first failure among them, if any. When an instance
/// fails, the others are cut off from the peer, so that they end too and the peer starts the
/// chaincode again; when the peer ends the conversation, so do the instances. Idle instances are
/// retired (see [`RETIRE_AFTER_IDLE`]).
pub async fn fan_out(
    to_peer: mpsc::Sender<ChaincodeMessage>,
    mut from_peer: mpsc::Receiver<ChaincodeMessage>,
    mut from_instances: mpsc::Receiver<FromInstance>,
    most: NonZeroUsize,
    start: impl StartInstance,
) -> GuestExit {
    let places = Arc::new(Semaphore::new(MAX_WAITING_MESSAGES));
    let mut instances = Instances::new(most, start);
    instances.start_one();
    let mut handshake = Handshake::default();
    let mut first_failure = None;
    let mut peer_open = true;
    let mut retirement =
        tokio::time::interval_at(Instant::now() + RETIRE_AFTER_IDLE, RETIRE_AFTER_IDLE);
    retirement.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while instances.running() > 0 {
        tokio::select! {
            told = from_instances.recv() => match told {
                Some(FromInstance::Message(index, message)) => {
                    from_instance(index, message, &mut instances, &mut handshake, &to_peer).await;
                }
                Some(FromInstance::Ended(index, exit)) => {
                    let retired = instances.places[index].retired;
                    instances.ended(index);
                    if exit != GuestExit::Finished && !retired && first_failure.is_none() {
                        first_failure = Some(exit);
                        instances.cut_off_all();
                    }
                }
                None => break,
            },
            message = next_from_peer(&places, &mut from_peer), if peer_open => match message {
                Some(message) => from_peer_message(message, &mut instances, &mut handshake),
                None => {
                    peer_open = false;
                    instances.cut_off_all();
                }
            },
            _ = retirement.tick() => instances.retire_idle(),
        }
    }
    first_failure.unwrap_or(GuestExit::Finished)
}

async fn from_instance(
    index: usize,
    message: ChaincodeMessage,
    instances: &mut Instances<impl StartInstance>,
    handshake: &mut Handshake,
    to_peer: &mpsc::Sender<ChaincodeMessage>,
) {
    if message.r#type == MessageType::Register as i32 && handshake.done {
        instances.registered(index, &handshake.replies);
        return;
    }
    if ends_transaction(message.r#type) {
        let route = route(&message);
        if instances.routes.get(&route) == Some(&index) {
            instances.routes.remove(&route);
            instances.finished(index);
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

/// Hands the peer's message to its instance.
fn from_peer_message(
    to_instance: ToInstance,
    instances: &mut Instances<impl StartInstance>,
    handshake: &mut Handshake,
) {
    let message = &to_instance.message;
    if !handshake.done {
        // Only the first instance has registered: the peer's replies are its.
        let kind = message.r#type;
        if kind == MessageType::Registered as i32 || kind == MessageType::Ready as i32 {
            handshake.replies.push(message.clone());
            handshake.done = kind == MessageType::Ready as i32;
            instances.places[0].ready = handshake.done;
        }
        instances.deliver(0, to_instance);
        return;
    }
    let route = route(message);
    let index = match instances.routes.get(&route) {
        Some(&holder) => holder,
        None if starts_transaction(message.r#type) => instances.take_transaction(route),
        None => instances.least_loaded(),
    };
    instances.deliver(index, to_instance);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instances a started instance's receiver reaches the test through, with its index.
    type Starts = mpsc::UnboundedReceiver<(usize, mpsc::UnboundedReceiver<ToInstance>)>;

    /// A fan-out of at most `most` instances, driven from the test through the channels' other
    /// ends. The tests run on one thread, so the fan-out runs only while the test waits.
    struct Harness {
        to_fan_out: mpsc::Sender<FromInstance>,
        starts: Starts,
        /// Each place's latest instance.
        instances: Vec<mpsc::UnboundedReceiver<ToInstance>>,
        /// Instances started so far.
        starts_seen: usize,
        /// The place of the instance started last.
        newest: usize,
        peer_sends: mpsc::Sender<ChaincodeMessage>,
        peer_receives: mpsc::Receiver<ChaincodeMessage>,
        fan_out: tokio::task::JoinHandle<GuestExit>,
    }

    fn harness(most: usize) -> Harness {
        let (to_peer, peer_receives) = mpsc::channel(16);
        let (peer_sends, from_peer) = mpsc::channel(16);
        let (to_fan_out, from_instances) = mpsc::channel(16);
        let (started, starts) = mpsc::unbounded_channel();
        let start = move |index| {
            let (to_instance, instance) = mpsc::unbounded_channel();
            started
                .send((index, instance))
                .expect("the test takes the instances");
            to_instance
        };
        let most = NonZeroUsize::new(most).expect("a harness has instances");
        let fan_out = tokio::spawn(fan_out(to_peer, from_peer, from_instances, most, start));
        Harness {
            to_fan_out,
            starts,
            instances: Vec::new(),
            starts_seen: 0,
            newest: 0,
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
        /// How many instances the fan-out has started so far.
        fn started(&mut self) -> usize {
            while let Ok((index, instance)) = self.starts.try_recv() {
                if index == self.instances.len() {
                    self.instances.push(instance);
                } else {
                    assert!(
                        index < self.instances.len(),
                        "new places are taken in order"
                    );
                    self.instances[index] = instance;
                }
                self.starts_seen += 1;
                self.newest = index;
            }
            self.starts_seen
        }

        async fn instance_says(&self, index: usize, kind: MessageType, txid: &str) {
            self.to_fan_out
                .send(FromInstance::Message(index, message(kind, txid)))
                .await
                .expect("the fan-out is running");
        }

        /// The peer sends a message, and the fan-out runs until it has dealt with it.
        async fn peer_says(&self, kind: MessageType, txid: &str) {
            self.peer_sends
                .send(message(kind, txid))
                .await
                .expect("the fan-out is running");
            tokio::task::yield_now().await;
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

        /// The peer starts transaction `txid`; `holder` is the instance it reaches.
        async fn transaction_reaches(&mut self, txid: &str, holder: usize) {
            self.peer_says(MessageType::Transaction, txid).await;
            self.holds_transaction(holder, txid).await;
        }

        /// The next message the instance at `index` gets starts transaction `txid`.
        async fn holds_transaction(&mut self, index: usize, txid: &str) {
            assert_eq!(
                self.received(index).await,
                (MessageType::Transaction as i32, txid.to_owned())
            );
        }

        /// Registers the first instance with the peer.
        async fn register_first(&mut self) {
            self.instance_says(0, MessageType::Register, "").await;
            assert_eq!(self.peer_got().await.0, MessageType::Register as i32);
            assert_eq!(self.started(), 1);
            self.peer_says(MessageType::Registered, "").await;
            self.peer_says(MessageType::Ready, "").await;
            assert_eq!(self.received(0).await.0, MessageType::Registered as i32);
            assert_eq!(self.received(0).await.0, MessageType::Ready as i32);
        }

        /// Registers the first instance and gives it `t1`; `t2` then starts a second instance,
        /// which gets it once it has registered.
        async fn two_busy_instances(&mut self) {
            self.register_first().await;
            self.transaction_reaches("t1", 0).await;
            self.peer_says(MessageType::Transaction, "t2").await;
            assert_eq!(self.started(), 2);
            self.register_newest().await;
            self.holds_transaction(1, "t2").await;
        }

        /// Registers the newest instance, which is answered with the peer's replies to the first.
        async fn register_newest(&mut self) {
            self.started();
            let index = self.newest;
            self.instance_says(index, MessageType::Register, "").await;
            assert_eq!(self.received(index).await.0, MessageType::Registered as i32);
            assert_eq!(self.received(index).await.0, MessageType::Ready as i32);
        }
    }

    #[tokio::test]
    async fn the_peer_sees_one_registration_and_later_instances_get_its_answer() {
        let mut harness = harness(2);
        harness.two_busy_instances().await;
        // The next message the peer gets is this one: no other registration reached it.
        harness.instance_says(0, MessageType::Completed, "t1").await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::Completed as i32, "t1".to_owned())
        );
    }

    #[tokio::test]
    async fn a_refused_registration_reaches_the_instance_that_asked() {
        let mut harness = harness(2);
        harness.instance_says(0, MessageType::Register, "").await;
        assert_eq!(harness.peer_got().await.0, MessageType::Register as i32);
        assert_eq!(harness.started(), 1);
        harness.peer_says(MessageType::Error, "").await;
        assert_eq!(harness.received(0).await.0, MessageType::Error as i32);
    }

    #[tokio::test]
    async fn a_transaction_arriving_while_every_instance_is_busy_goes_to_a_new_one() {
        let mut harness = harness(3);
        harness.register_first().await;
        harness.transaction_reaches("t1", 0).await;
        assert_eq!(harness.started(), 1, "the first instance was free");
        harness.peer_says(MessageType::Transaction, "t2").await;
        assert_eq!(harness.started(), 2, "the only instance was busy");
        harness.transaction_reaches("t3", 0).await;
        assert_eq!(harness.started(), 2, "one instance at a time starts");
        // The new instance gets its transaction once it has registered.
        harness.register_newest().await;
        harness.holds_transaction(1, "t2").await;
        harness.peer_says(MessageType::Transaction, "t4").await;
        assert_eq!(harness.started(), 3, "both instances were busy");
        harness.register_newest().await;
        harness.holds_transaction(2, "t4").await;
        harness.transaction_reaches("t5", 1).await;
        assert_eq!(harness.started(), 3, "no more than the most start");
    }

    #[tokio::test]
    async fn transactions_go_to_the_least_busy_instance_and_stay_there() {
        let mut harness = harness(2);
        harness.two_busy_instances().await;
        // The peer's answer to a guest's call goes to the instance that made it.
        harness.instance_says(1, MessageType::GetState, "t2").await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::GetState as i32, "t2".to_owned())
        );
        harness.peer_says(MessageType::Response, "t2").await;
        assert_eq!(
            harness.received(1).await,
            (MessageType::Response as i32, "t2".to_owned())
        );
        // The instance that finishes first is the one that gets the next transaction.
        harness.instance_says(1, MessageType::Completed, "t2").await;
        assert_eq!(
            harness.peer_got().await,
            (MessageType::Completed as i32, "t2".to_owned())
        );
        harness.transaction_reaches("t3", 1).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_instance_is_retired_and_a_later_one_takes_its_place() {
        let mut harness = harness(2);
        harness.two_busy_instances().await;
        for (index, txid) in [(0, "t1"), (1, "t2")] {
            harness
                .instance_says(index, MessageType::Completed, txid)
                .await;
            assert_eq!(harness.peer_got().await.1, txid);
        }
        tokio::time::sleep(RETIRE_AFTER_IDLE / 2).await;
        assert!(
            matches!(
                harness.instances[1].try_recv(),
                Err(mpsc::error::TryRecvError::Empty)
            ),
            "an instance idle for less than the period keeps serving"
        );
        tokio::time::sleep(RETIRE_AFTER_IDLE * 2).await;
        assert!(
            matches!(
                harness.instances[1].try_recv(),
                Err(mpsc::error::TryRecvError::Disconnected)
            ),
            "the newest idle instance is cut off"
        );
        assert!(
            matches!(
                harness.instances[0].try_recv(),
                Err(mpsc::error::TryRecvError::Empty)
            ),
            "the last instance serving stays, however long it idles"
        );
        harness.transaction_reaches("t3", 0).await;
        // However a retired instance's guest ends, the chaincode has not failed.
        harness
            .to_fan_out
            .send(FromInstance::Ended(1, GuestExit::Failed))
            .await
            .expect("the fan-out is running");
        tokio::task::yield_now().await;
        harness.peer_says(MessageType::Transaction, "t4").await;
        assert_eq!(harness.started(), 3, "the only instance serving was busy");
        assert_eq!(harness.newest, 1, "the ended instance's place is taken");
        harness.register_newest().await;
        harness.holds_transaction(1, "t4").await;
    }

    #[tokio::test]
    async fn a_peer_flooding_a_busy_instance_is_held_back_at_the_bound() {
        let mut harness = harness(1);
        harness.register_first().await;
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
        harness.two_busy_instances().await;
        let failure = GuestExit::Trapped("unreachable executed".to_owned());
        harness
            .to_fan_out
            .send(FromInstance::Ended(1, failure.clone()))
            .await
            .expect("the fan-out is running");
        assert!(
            harness.instances[0].recv().await.is_none(),
            "the first instance is cut off from the peer"
        );
        // The remaining instance is busy, yet none starts after a failure.
        harness.peer_says(MessageType::Transaction, "t3").await;
        harness
            .to_fan_out
            .send(FromInstance::Ended(0, GuestExit::Finished))
            .await
            .expect("the fan-out waits for every instance");
        let exit = (&mut harness.fan_out).await.expect("the fan-out ends");
        assert_eq!(exit, failure);
        assert_eq!(harness.started(), 2);
    }

    #[tokio::test]
    async fn the_peer_ending_the_conversation_ends_every_instance() {
        let mut harness = harness(2);
        harness.two_busy_instances().await;
        let Harness {
            to_fan_out,
            mut instances,
            peer_sends,
            fan_out,
            ..
        } = harness;
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
