//! The peer side of the `ChaincodeMessage` protocol answers alike over both transports that
//! drive it: a chaincode on channels, whose messages the handler's task reads, and a wasm guest,
//! whose messages are answered inline within its host call. One body of cases runs over each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ccvm::chaincode::{ChaincodeSupport, ExecuteRequest, SupportConfig};
use ccvm::config::DEFAULT_LEDGER_CACHE_BYTES;
use ccvm::container::inproc::InstanceHandle;
use ccvm::container::{ChaincodeStreams, StreamBroken};
use ccvm::ledger::Ledger;
use ccvm::proto::common::Envelope;
use ccvm::proto::protos::{ChaincodeId, ChaincodeInput, ChaincodeMessage, GetState, PutState};
use ccvm::proto::{Message, MessageType, Refusal};
use tokio::sync::mpsc;

use crate::harness::{CHANNEL, TestNode, wasm_example};

/// How long to wait for the peer's next message before failing.
const REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// A chaincode that sends messages to the peer during one of its transactions, each in that
/// transaction where the message names none, and collects one reply to each.
trait Relay {
    async fn relay(&mut self, messages: Vec<ChaincodeMessage>) -> Result<Vec<ChaincodeMessage>>;
}

fn message(kind: MessageType, payload: Vec<u8>) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        payload,
        ..Default::default()
    }
}

fn get_state(key: &str) -> ChaincodeMessage {
    let request = GetState {
        key: key.to_owned(),
        ..Default::default()
    };
    message(MessageType::GetState, request.encode_to_vec())
}

fn text(reply: &ChaincodeMessage) -> String {
    String::from_utf8_lossy(&reply.payload).into_owned()
}

/// The cases: what the chaincode sends, and what the peer must answer.
async fn the_peer_answers_as_fabrics_handler(chaincode: &mut impl Relay) -> Result<()> {
    let put = PutState {
        key: "k".to_owned(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let mut elsewhere = get_state("k");
    elsewhere.txid = "no-such-tx".to_owned();
    let replies = chaincode
        .relay(vec![
            get_state("absent"),
            message(MessageType::PutState, put.encode_to_vec()),
            get_state("k"),
            ChaincodeMessage {
                r#type: 999,
                ..Default::default()
            },
            message(MessageType::Register, Vec::new()),
            elsewhere,
            message(MessageType::PutState, vec![0xff, 0xff, 0xff]),
            message(MessageType::PutState, PutState::default().encode_to_vec()),
        ])
        .await?;
    let kinds: Vec<_> = replies
        .iter()
        .map(|reply| MessageType::try_from(reply.r#type).map(|kind| kind.as_str_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        kinds,
        [
            "RESPONSE", "RESPONSE", "RESPONSE", "ERROR", "ERROR", "ERROR", "ERROR", "ERROR"
        ]
    );
    assert!(
        replies[0].payload.is_empty(),
        "a key never written reads empty"
    );
    assert!(
        replies[2].payload.is_empty(),
        "a read sees committed state, not the transaction's own write: {:?}",
        text(&replies[2])
    );
    assert_eq!(text(&replies[3]), "unknown message type 999");
    assert_eq!(
        text(&replies[4]),
        "chaincode handler in state ready cannot handle REGISTER"
    );
    assert_eq!(
        text(&replies[5]),
        format!("no ongoing transaction no-such-tx on channel {CHANNEL}")
    );
    assert_eq!(
        Refusal::of(&text(&replies[6])),
        Some(Refusal::Malformed),
        "{}",
        text(&replies[6])
    );
    assert_eq!(
        text(&replies[7]),
        Refusal::EmptyKey.text(),
        "a refusal reads the same over every transport"
    );
    assert_eq!(
        replies[5].txid, "no-such-tx",
        "a reply carries its request's tx id"
    );
    Ok(())
}

/// A chaincode played on the channels a VM hands the peer; the handler's task reads them.
struct OnChannels {
    support: ChaincodeSupport,
    ledger: Ledger,
    to_peer: mpsc::Sender<Result<Box<ChaincodeMessage>, StreamBroken>>,
    from_peer: mpsc::Receiver<Box<ChaincodeMessage>>,
    _dir: tempfile::TempDir,
}

const ON_CHANNELS: &str = "relay";

impl OnChannels {
    async fn register() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(dir.path(), DEFAULT_LEDGER_CACHE_BYTES)?;
        ledger.create_channel(CHANNEL, &Envelope::default())?;
        let support = ChaincodeSupport::new(ledger.clone(), SupportConfig::default());
        let (to_peer, inbound) = mpsc::channel(8);
        let (outbound, from_peer) = mpsc::channel(8);
        let peer = support.connector()(ChaincodeStreams {
            launched_as: ON_CHANNELS.to_owned(),
            inbound,
            outbound,
            end_on_timeout: None,
            replaced: None,
        })?;
        tokio::spawn(peer.serve);
        let mut chaincode = Self {
            support,
            ledger,
            to_peer,
            from_peer,
            _dir: dir,
        };
        let id = ChaincodeId {
            name: ON_CHANNELS.to_owned(),
            ..Default::default()
        };
        chaincode
            .send(message(MessageType::Register, id.encode_to_vec()))
            .await?;
        for expected in [MessageType::Registered, MessageType::Ready] {
            let reply = chaincode.next().await?;
            ensure!(
                reply.r#type == expected as i32,
                "expected {expected:?}, got {reply:?}"
            );
        }
        Ok(chaincode)
    }

    async fn send(&self, message: ChaincodeMessage) -> Result<()> {
        self.to_peer
            .send(Ok(Box::new(message)))
            .await
            .context("the peer closed the channel")
    }

    async fn next(&mut self) -> Result<ChaincodeMessage> {
        match tokio::time::timeout(REPLY_DEADLINE, self.from_peer.recv()).await? {
            Some(message) => Ok(*message),
            None => bail!("the peer closed the channel"),
        }
    }
}

impl Relay for OnChannels {
    async fn relay(&mut self, messages: Vec<ChaincodeMessage>) -> Result<Vec<ChaincodeMessage>> {
        let tx_id = "relayed-tx";
        let simulator = Arc::new(Mutex::new(self.ledger.new_simulator(CHANNEL, tx_id)?));
        let execution = tokio::spawn({
            let support = self.support.clone();
            async move {
                support
                    .execute(ExecuteRequest {
                        channel: CHANNEL.to_owned(),
                        chaincode: ON_CHANNELS.to_owned(),
                        tx_id: tx_id.to_owned(),
                        input: ChaincodeInput::default(),
                        signed_proposal: None,
                        simulator,
                        read_only: false,
                    })
                    .await
            }
        });
        let transaction = self.next().await?;
        ensure!(transaction.r#type == MessageType::Transaction as i32);
        let mut replies = Vec::new();
        for mut message in messages {
            if message.txid.is_empty() {
                message.txid.clone_from(&transaction.txid);
            }
            if message.channel_id.is_empty() {
                message.channel_id.clone_from(&transaction.channel_id);
            }
            self.send(message).await?;
            replies.push(self.next().await?);
        }
        self.send(ChaincodeMessage {
            txid: transaction.txid,
            channel_id: transaction.channel_id,
            ..message(MessageType::Completed, Vec::new())
        })
        .await?;
        execution.await??;
        Ok(replies)
    }
}

/// The `hostile` example in wasm, relaying the messages from inside the peer.
struct WasmGuest {
    node: TestNode,
    _instance: InstanceHandle,
}

impl WasmGuest {
    async fn start() -> Result<Self> {
        let node = TestNode::start().await?;
        let vm = node.inner().inproc();
        let instance = vm
            .start(
                "hostile:1.0",
                &vm.compile("hostile", &wasm_example("hostile")?)?,
            )
            .await?;
        node.wait_registered("hostile").await?;
        Ok(Self {
            node,
            _instance: instance,
        })
    }
}

impl Relay for WasmGuest {
    async fn relay(&mut self, messages: Vec<ChaincodeMessage>) -> Result<Vec<ChaincodeMessage>> {
        let args = std::iter::once(b"relay".to_vec())
            .chain(messages.iter().map(Message::encode_to_vec))
            .collect();
        let response = self.node.query_bytes("hostile", args).await?;
        ensure!(response.status == 200, "relay failed: {}", response.message);
        let mut replies = Vec::new();
        let mut rest = response.payload.as_slice();
        while let Some((length, tail)) = rest.split_first_chunk::<4>() {
            let length = usize::try_from(u32::from_be_bytes(*length))?;
            let (reply, tail) = tail.split_at_checked(length).context("a truncated reply")?;
            replies.push(ChaincodeMessage::decode(reply)?);
            rest = tail;
        }
        ensure!(
            rest.is_empty(),
            "{} stray bytes after the replies",
            rest.len()
        );
        Ok(replies)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_on_channels_is_answered_as_fabrics_handler_answers() -> Result<()> {
    the_peer_answers_as_fabrics_handler(&mut OnChannels::register().await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_guest_is_answered_inline_as_fabrics_handler_answers() -> Result<()> {
    the_peer_answers_as_fabrics_handler(&mut WasmGuest::start().await?).await
}
