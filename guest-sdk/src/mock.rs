//! A ledger in memory for unit tests of chaincode: `cargo test`, no peer, no wasm.
//!
//! [`MockLedger`] plays the peer. It answers the stub's requests as a Fabric peer does, so the
//! chaincode under test runs its real code, message for message: a transaction reads committed
//! state only (it does not see its own writes), its writes are applied when it succeeds and
//! dropped when it fails, ranges and partial composite keys run over committed keys, and each
//! committed write of a key is kept in its history. Private data, key metadata, events, the
//! creator, transient data and calls to other chaincodes work too, on the same channel or, as
//! on a Fabric peer, on another one (reading that channel's state, its writes discarded).
//!
//! ```
//! use ccvm_guest_sdk::mock::MockLedger;
//! use ccvm_guest_sdk::{Chaincode, Response, Stub};
//!
//! struct Put;
//!
//! impl Chaincode for Put {
//!     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
//!         let (_, params) = stub.function_and_parameters();
//!         match stub.put_state(&params[0], params[1].clone()) {
//!             Ok(()) => Response::success(Vec::new()),
//!             Err(e) => Response::error(e.to_string()),
//!         }
//!     }
//! }
//!
//! let mut ledger = MockLedger::new("put");
//! assert!(ledger.invoke(&Put, &["put", "k", "v"]).response.is_success());
//! assert_eq!(ledger.state("k"), Some(b"v".to_vec()));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use ccvm_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use ccvm_proto::msp::SerializedIdentity;
use ccvm_proto::protos::{
    ChaincodeEvent, ChaincodeInput, ChaincodeInvocationSpec, ChaincodeMessage,
    ChaincodeProposalPayload, ChaincodeSpec, DelState, GetHistoryForKey, GetState, GetStateByRange,
    GetStateMetadata, GetStateMultiple, GetStateMultipleResult, Proposal, PurgePrivateState,
    PutState, PutStateMetadata, QueryMetadata, QueryResponse, QueryResponseMetadata,
    QueryResultBytes, SignedProposal, StateMetadata, StateMetadataResult, WriteBatchState,
    write_record,
};
use ccvm_proto::queryresult::{KeyModification, Kv};
use ccvm_proto::{Message, MessageType, Refusal, Timestamp};
use sha2::{Digest, Sha256};

use crate::chaincode::{Chaincode, Response};
use crate::error::ShimError;
use crate::shim::{PeerCall, PeerFeatures, Transaction, run_transaction};
use crate::stub::Stub;

/// The channel a mock ledger's transactions run on unless told otherwise.
///
/// ```
/// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
/// # use ccvm_guest_sdk::mock::MOCK_CHANNEL;
/// # let mut ledger = MockLedger::new("assets");
/// # let outcome = ledger.run_call(MockCall::default(), |stub| {
/// assert_eq!(stub.channel_id(), MOCK_CHANNEL);
/// # Ok(())
/// # });
/// # assert!(outcome.committed, "{:?}", outcome.response);
/// ```
pub const MOCK_CHANNEL: &str = "mychannel";

/// What the mock peer offers beyond the base protocol, as a Fabric 3.1 peer and a ccvm peer do
/// with their defaults: reads of up to 1,000 keys in one request, and batched writes of up to
/// 1,000 records.
const MOCK_PEER_FEATURES: PeerFeatures = PeerFeatures {
    get_multiple_keys: Some(1000),
    write_batch_records: Some(1000),
};

/// One call to a chaincode on a [`MockLedger`]: its arguments and what the proposal carries.
///
/// ```
/// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
///
/// let mut ledger = MockLedger::new("assets");
/// let call = MockCall::new(&["TransferAsset", "asset1"])
///     .creator("Org2MSP", b"")
///     .transient("price", "42");
/// assert!(ledger.run_call(call, |stub| stub.put_state("asset1", "org2")).committed);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MockCall {
    args: Vec<Vec<u8>>,
    creator: Option<Vec<u8>>,
    transient: HashMap<String, Vec<u8>>,
    timestamp: Option<Timestamp>,
    is_init: bool,
}

impl MockCall {
    /// A call with these arguments (the first is the function name).
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::new(&[b"binary".as_slice(), &[0xff, 0x00]]), |stub| {
    /// assert_eq!(stub.args()[1], [0xff, 0x00]);
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn new<A: AsRef<[u8]>>(args: &[A]) -> Self {
        Self {
            args: args.iter().map(|a| a.as_ref().to_vec()).collect(),
            ..Self::default()
        }
    }

    /// Submitted by the identity of `msp_id` with the PEM certificate `certificate`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().creator("Org2MSP", b""), |stub| {
    /// let creator = SerializedIdentity::decode(stub.creator()).unwrap();
    /// assert_eq!(creator.mspid, "Org2MSP");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    #[must_use]
    pub fn creator(mut self, msp_id: &str, certificate: &[u8]) -> Self {
        self.creator = Some(serialized_identity(msp_id, certificate));
        self
    }

    /// With transient data `key` = `value`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().transient("price", "42"), |stub| {
    /// assert_eq!(stub.transient()["price"], b"42");
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    #[must_use]
    pub fn transient(mut self, key: &str, value: impl Into<Vec<u8>>) -> Self {
        self.transient.insert(key.to_owned(), value.into());
        self
    }

    /// Created by the client at `timestamp`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::proto::Timestamp;
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default().at(Timestamp { seconds: 86_400, nanos: 0 }), |stub| {
    /// assert_eq!(stub.tx_timestamp().map(|t| t.seconds), Some(86_400));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    #[must_use]
    pub fn at(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// As an INIT transaction.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Once;
    /// impl Chaincode for Once {
    ///     fn init(&self, _: &mut Stub<'_>) -> Response {
    ///         Response::success("init")
    ///     }
    ///     fn invoke(&self, _: &mut Stub<'_>) -> Response {
    ///         Response::success("invoke")
    ///     }
    /// }
    ///
    /// let outcome = MockLedger::new("once").call(&Once, MockCall::new(&["setup"]).init());
    /// assert_eq!(outcome.response.payload, b"init");
    /// ```
    #[must_use]
    pub fn init(mut self) -> Self {
        self.is_init = true;
        self
    }
}

/// What a call on the mock ledger came to.
///
/// ```
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// let mut ledger = MockLedger::new("assets");
/// let failed = ledger.run(|stub| {
///     stub.put_state("color", "blue")?;
///     stub.put_state("", "red")?; // refused: an empty key
///     Ok(())
/// });
/// assert!(!failed.committed && !failed.response.is_success());
/// assert_eq!(ledger.state("color"), None, "a failed transaction writes nothing");
/// assert_eq!(failed.tx_id.len(), 64);
/// ```
#[derive(Debug, Clone)]
pub struct MockOutcome {
    /// The chaincode's response.
    pub response: Response,
    /// The event the transaction set, if any.
    pub event: Option<ChaincodeEvent>,
    /// The transaction's id.
    pub tx_id: String,
    /// Whether its writes were applied (it succeeded).
    pub committed: bool,
}

/// A committed public value with its metadata.
#[derive(Debug, Clone, Default)]
struct Entry {
    value: Vec<u8>,
    metadata: BTreeMap<String, Vec<u8>>,
}

/// Where a key lives: chaincode namespace, collection (empty for public state), key.
type Place = (String, String, String);

/// Committed state.
#[derive(Default)]
struct World {
    entries: BTreeMap<Place, Entry>,
    history: HashMap<(String, String), Vec<KeyModification>>,
}

/// One transaction's pending change to a key.
#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>),
    Delete,
}

/// What a transaction has written so far.
#[derive(Default)]
struct Writes {
    values: BTreeMap<Place, Write>,
    metadata: BTreeMap<Place, BTreeMap<String, Vec<u8>>>,
}

/// The channels a mock ledger knows: their committed state and the chaincodes on them that a
/// transaction can call.
struct Network {
    /// The channel the chaincode under test runs on.
    home: String,
    worlds: HashMap<String, World>,
    callees: HashMap<(String, String), Box<dyn Chaincode>>,
}

impl Network {
    fn world_mut(&mut self, channel: &str) -> &mut World {
        self.worlds.entry(channel.to_owned()).or_default()
    }

    fn home_world(&self) -> Option<&World> {
        self.worlds.get(&self.home)
    }
}

/// A ledger in memory that runs chaincode as a Fabric peer would; see the module docs.
///
/// ```
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// let mut ledger = MockLedger::new("assets");
/// ledger.set_state("asset1", "blue");
/// let outcome = ledger.run(|stub| {
///     stub.put_state("asset1", "red")?;
///     assert_eq!(stub.get_state("asset1")?, Some(b"blue".to_vec()), "not its own write");
///     Ok(())
/// });
/// assert!(outcome.committed);
/// assert_eq!(ledger.state("asset1"), Some(b"red".to_vec()));
/// ```
pub struct MockLedger {
    name: String,
    network: Network,
    creator: Vec<u8>,
    transactions: u64,
}

impl MockLedger {
    /// A ledger for the chaincode named `name` (its state namespace) on [`MOCK_CHANNEL`]; calls
    /// are submitted by an `Org1MSP` identity without a certificate unless told otherwise.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// // The name is the state namespace, as a chaincode's name is on a peer.
    /// stub.put_state("color", "blue")?;
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// assert_eq!(ledger.state("color"), Some(b"blue".to_vec()));
    /// ```
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            network: Network {
                home: MOCK_CHANNEL.to_owned(),
                worlds: HashMap::new(),
                callees: HashMap::new(),
            },
            creator: serialized_identity("Org1MSP", b""),
            transactions: 0,
        }
    }

    /// Runs the transactions on `channel` (set it before adding chaincodes or state).
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets").on_channel("orders");
    /// assert!(ledger.run(|stub| {
    ///     assert_eq!(stub.channel_id(), "orders");
    ///     Ok(())
    /// }).committed);
    /// ```
    #[must_use]
    pub fn on_channel(mut self, channel: &str) -> Self {
        self.network.home = channel.to_owned();
        self
    }

    /// Submits calls by the identity of `msp_id` with the PEM certificate `certificate`.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// ledger.set_creator("Org2MSP", b"");
    /// assert!(ledger.run(|stub| {
    ///     assert_eq!(SerializedIdentity::decode(stub.creator()).unwrap().mspid, "Org2MSP");
    ///     Ok(())
    /// }).committed);
    /// ```
    pub fn set_creator(&mut self, msp_id: &str, certificate: &[u8]) {
        self.creator = serialized_identity(msp_id, certificate);
    }

    /// Lets the chaincode under test call `chaincode` as `name` (on the same channel).
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Echo;
    /// impl Chaincode for Echo {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         Response::success(stub.string_args().join(" "))
    ///     }
    /// }
    ///
    /// let mut ledger = MockLedger::new("caller");
    /// ledger.add_chaincode("echo", Echo);
    /// let outcome = ledger.run(|stub| {
    ///     let echoed = stub.invoke_chaincode("echo", &[b"hi".as_slice()], "")?;
    ///     assert_eq!(echoed.payload, b"hi");
    ///     Ok(())
    /// });
    /// assert!(outcome.committed);
    /// ```
    pub fn add_chaincode(&mut self, name: &str, chaincode: impl Chaincode + 'static) {
        let channel = self.network.home.clone();
        self.add_chaincode_on(&channel, name, chaincode);
    }

    /// Lets the chaincode under test call `chaincode` as `name/channel`. On another channel, as
    /// on a Fabric peer, the call reads that channel's committed state and its writes are
    /// discarded; only its response comes back.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Registry;
    /// impl Chaincode for Registry {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         match stub.get_state("asset1") {
    ///             Ok(owner) => Response::success(owner.unwrap_or_default()),
    ///             Err(e) => Response::error(e.to_string()),
    ///         }
    ///     }
    /// }
    ///
    /// let mut ledger = MockLedger::new("market");
    /// ledger.add_chaincode_on("registry", "assets", Registry);
    /// ledger.set_state_on("registry", "assets", "asset1", "alice");
    /// let outcome = ledger.run(|stub| {
    ///     let owner = stub.invoke_chaincode("assets", &[b"owner".as_slice()], "registry")?;
    ///     assert_eq!(owner.payload, b"alice");
    ///     Ok(())
    /// });
    /// assert!(outcome.committed);
    /// ```
    pub fn add_chaincode_on(
        &mut self,
        channel: &str,
        name: &str,
        chaincode: impl Chaincode + 'static,
    ) {
        self.network
            .callees
            .insert((channel.to_owned(), name.to_owned()), Box::new(chaincode));
    }

    /// Sets a committed public value of the chaincode under test, as if a transaction wrote it.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # let mut ledger = MockLedger::new("assets");
    /// # ledger.set_state("color", "blue");
    /// # let outcome = ledger.run_call(MockCall::default(), |stub| {
    /// assert_eq!(stub.get_state("color")?, Some(b"blue".to_vec()));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    pub fn set_state(&mut self, key: &str, value: impl Into<Vec<u8>>) {
        let (channel, name) = (self.network.home.clone(), self.name.clone());
        self.set_state_on(&channel, &name, key, value);
    }

    /// Sets a committed public value of `chaincode` on `channel`, for the chaincode under test
    /// to read through a call to it.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Reader;
    /// impl Chaincode for Reader {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         Response::success(stub.get_state("rate").ok().flatten().unwrap_or_default())
    ///     }
    /// }
    ///
    /// let mut ledger = MockLedger::new("billing");
    /// ledger.add_chaincode("rates", Reader);
    /// ledger.set_state_on("mychannel", "rates", "rate", "7");
    /// assert!(ledger.run(|stub| {
    ///     assert_eq!(stub.invoke_chaincode("rates", &[b"rate".as_slice()], "")?.payload, b"7");
    ///     Ok(())
    /// }).committed);
    /// ```
    pub fn set_state_on(
        &mut self,
        channel: &str,
        chaincode: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) {
        let place = (chaincode.to_owned(), String::new(), key.to_owned());
        self.network
            .world_mut(channel)
            .entries
            .entry(place)
            .or_default()
            .value = value.into();
    }

    /// The committed public value of `key`.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// ledger.run(|stub| stub.put_state("color", "blue"));
    /// assert_eq!(ledger.state("color"), Some(b"blue".to_vec()));
    /// assert_eq!(ledger.state("size"), None);
    /// ```
    pub fn state(&self, key: &str) -> Option<Vec<u8>> {
        self.committed(&self.name, "", key)
    }

    /// The committed private value of `key` in `collection`.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// ledger.run(|stub| stub.put_private_data("secrets", "pin", "1234"));
    /// assert_eq!(ledger.private_data("secrets", "pin"), Some(b"1234".to_vec()));
    /// assert_eq!(ledger.state("pin"), None, "private data is not public state");
    /// ```
    pub fn private_data(&self, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.committed(&self.name, collection, key)
    }

    /// The committed metadata of a public key.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// ledger.run(|stub| stub.put_state("color", "blue"));
    /// ledger.run(|stub| stub.set_state_validation_parameter("color", b"policy".to_vec()));
    /// assert_eq!(ledger.state_metadata("color")["VALIDATION_PARAMETER"], b"policy");
    /// ```
    pub fn state_metadata(&self, key: &str) -> BTreeMap<String, Vec<u8>> {
        self.network
            .home_world()
            .and_then(|world| {
                world
                    .entries
                    .get(&(self.name.clone(), String::new(), key.to_owned()))
            })
            .map(|entry| entry.metadata.clone())
            .unwrap_or_default()
    }

    /// Every committed change to a public key, newest first.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// ledger.run(|stub| stub.put_state("color", "red"));
    /// ledger.run(|stub| stub.put_state("color", "blue"));
    /// let values: Vec<Vec<u8>> = ledger.history("color").into_iter().map(|m| m.value).collect();
    /// assert_eq!(values, [b"blue".to_vec(), b"red".to_vec()]);
    /// ```
    pub fn history(&self, key: &str) -> Vec<KeyModification> {
        let mut changes = self
            .network
            .home_world()
            .and_then(|world| world.history.get(&(self.name.clone(), key.to_owned())))
            .cloned()
            .unwrap_or_default();
        changes.reverse();
        changes
    }

    fn committed(&self, namespace: &str, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.network
            .home_world()?
            .entries
            .get(&(namespace.to_owned(), collection.to_owned(), key.to_owned()))
            .map(|entry| entry.value.clone())
    }

    /// Calls `chaincode` with `args` (the function name first), submitted by the ledger's
    /// creator; its writes are applied if it succeeds.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Echo;
    /// impl Chaincode for Echo {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         Response::success(stub.string_args().join(" "))
    ///     }
    /// }
    ///
    /// let outcome = MockLedger::new("echo").invoke(&Echo, &["say", "hi"]);
    /// assert_eq!(outcome.response.payload, b"say hi");
    /// ```
    pub fn invoke<A: AsRef<[u8]>>(&mut self, chaincode: &dyn Chaincode, args: &[A]) -> MockOutcome {
        self.call(chaincode, MockCall::new(args))
    }

    /// Runs `transaction` as a chaincode's `invoke`, for testing code that works on a
    /// [`Stub`]; its writes are applied if it returns `Ok`.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// assert!(ledger.run(|stub| stub.put_state("color", "blue")).committed);
    /// assert_eq!(ledger.state("color"), Some(b"blue".to_vec()));
    /// ```
    pub fn run(
        &mut self,
        transaction: impl Fn(&mut Stub<'_>) -> Result<(), ShimError>,
    ) -> MockOutcome {
        self.run_call(MockCall::default(), transaction)
    }

    /// Runs `transaction` as [`MockLedger::run`] does, with `call`'s arguments, creator,
    /// transient data and time.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    ///
    /// let mut ledger = MockLedger::new("assets");
    /// let call = MockCall::new(&["transfer", "asset1"]).transient("price", "42");
    /// let outcome = ledger.run_call(call, |stub| {
    ///     assert_eq!(stub.function_and_parameters().1, ["asset1"]);
    ///     assert_eq!(stub.transient()["price"], b"42");
    ///     Ok(())
    /// });
    /// assert!(outcome.committed);
    /// ```
    pub fn run_call(
        &mut self,
        call: MockCall,
        transaction: impl Fn(&mut Stub<'_>) -> Result<(), ShimError>,
    ) -> MockOutcome {
        self.call(&Closure(transaction), call)
    }

    /// Runs one call on `chaincode`; its writes are applied if it succeeds.
    ///
    /// ```
    /// use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// use ccvm_guest_sdk::{Chaincode, Response, Stub};
    ///
    /// struct Secret;
    /// impl Chaincode for Secret {
    ///     fn invoke(&self, stub: &mut Stub<'_>) -> Response {
    ///         Response::success(stub.transient().get("pin").cloned().unwrap_or_default())
    ///     }
    /// }
    ///
    /// let call = MockCall::new(&["reveal"]).transient("pin", "1234");
    /// assert_eq!(MockLedger::new("secret").call(&Secret, call).response.payload, b"1234");
    /// ```
    pub fn call(&mut self, chaincode: &dyn Chaincode, call: MockCall) -> MockOutcome {
        self.transactions += 1;
        let tx_id = hex(&Sha256::digest(
            format!("{}/{}", self.name, self.transactions).as_bytes(),
        ));
        let timestamp = call.timestamp.unwrap_or_else(now);
        let proposal = self.proposal(&call, &tx_id, timestamp);
        let transaction = Transaction {
            is_init: call.is_init,
            channel_id: self.network.home.clone(),
            tx_id: tx_id.clone(),
            input: ChaincodeInput {
                args: call.args,
                ..Default::default()
            },
            proposal: Some(proposal.clone()),
            peer_features: MOCK_PEER_FEATURES,
        };
        let empty = World::default();
        let running = Running {
            network: &self.network,
            channel: &self.network.home,
            world: self.network.home_world().unwrap_or(&empty),
            tx_id: &tx_id,
            proposal: &proposal,
            writes: RefCell::default(),
            queries: Cell::new(0),
        };
        let completed = run_transaction(
            chaincode,
            transaction,
            &MockPeer {
                running: &running,
                namespace: &self.name,
            },
        );
        let writes = running.writes.into_inner();
        let response = decode_response(&completed);
        let committed = response.is_success();
        if committed {
            self.apply(writes, &tx_id, timestamp);
        }
        MockOutcome {
            response,
            event: completed.chaincode_event,
            tx_id,
            committed,
        }
    }

    fn proposal(&self, call: &MockCall, tx_id: &str, timestamp: Timestamp) -> SignedProposal {
        let channel_header = ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            channel_id: self.network.home.clone(),
            tx_id: tx_id.to_owned(),
            timestamp: Some(timestamp),
            ..Default::default()
        };
        let signature_header = SignatureHeader {
            creator: call.creator.clone().unwrap_or_else(|| self.creator.clone()),
            nonce: tx_id.as_bytes().to_vec(),
        };
        let spec = ChaincodeInvocationSpec {
            chaincode_spec: Some(ChaincodeSpec {
                input: Some(ChaincodeInput {
                    args: call.args.clone(),
                    is_init: call.is_init,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let proposal = Proposal {
            header: Header {
                channel_header: channel_header.encode_to_vec(),
                signature_header: signature_header.encode_to_vec(),
            }
            .encode_to_vec(),
            payload: ChaincodeProposalPayload {
                input: spec.encode_to_vec(),
                transient_map: call.transient.clone(),
            }
            .encode_to_vec(),
            ..Default::default()
        };
        SignedProposal {
            proposal_bytes: proposal.encode_to_vec(),
            signature: Vec::new(),
        }
    }

    fn apply(&mut self, writes: Writes, tx_id: &str, timestamp: Timestamp) {
        let home = self.network.home.clone();
        let world = self.network.world_mut(&home);
        for (place, write) in writes.values {
            if place.1.is_empty() {
                let (value, is_delete) = match &write {
                    Write::Put(value) => (value.clone(), false),
                    Write::Delete => (Vec::new(), true),
                };
                world
                    .history
                    .entry((place.0.clone(), place.2.clone()))
                    .or_default()
                    .push(KeyModification {
                        tx_id: tx_id.to_owned(),
                        value,
                        timestamp: Some(timestamp),
                        is_delete,
                    });
            }
            match write {
                Write::Put(value) => world.entries.entry(place).or_default().value = value,
                Write::Delete => {
                    world.entries.remove(&place);
                }
            }
        }
        for (place, entries) in writes.metadata {
            if let Some(entry) = world.entries.get_mut(&place) {
                entry.metadata.extend(entries);
            }
        }
    }
}

/// A closure run as a chaincode's `invoke` ([`MockLedger::run`]).
struct Closure<F>(F);

impl<F: Fn(&mut Stub<'_>) -> Result<(), ShimError>> Chaincode for Closure<F> {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        match (self.0)(stub) {
            Ok(()) => Response::success(Vec::new()),
            Err(e) => Response::error(e.to_string()),
        }
    }
}

/// One transaction under way on one channel: committed state to read, writes to collect, open
/// queries.
struct Running<'l> {
    network: &'l Network,
    channel: &'l str,
    world: &'l World,
    tx_id: &'l str,
    proposal: &'l SignedProposal,
    writes: RefCell<Writes>,
    /// How many queries the transaction opened, for their ids.
    queries: Cell<usize>,
}

/// The peer side of one chaincode in a transaction (the one under test, or one it calls).
struct MockPeer<'r, 'l> {
    running: &'r Running<'l>,
    namespace: &'r str,
}

impl PeerCall for MockPeer<'_, '_> {
    fn call(&self, request: ChaincodeMessage) -> Result<ChaincodeMessage, ShimError> {
        let kind = MessageType::try_from(request.r#type).unwrap_or(MessageType::Undefined);
        let (answer, payload) = match self.serve(kind, &request.payload) {
            Ok(payload) => (MessageType::Response, payload),
            Err(text) => (MessageType::Error, text.into_bytes()),
        };
        Ok(ChaincodeMessage {
            r#type: answer as i32,
            payload,
            txid: request.txid,
            channel_id: request.channel_id,
            ..Default::default()
        })
    }
}

impl MockPeer<'_, '_> {
    fn serve(&self, kind: MessageType, payload: &[u8]) -> Result<Vec<u8>, String> {
        match kind {
            MessageType::GetState => {
                let request: GetState = decode(payload)?;
                Ok(self
                    .read(&request.collection, &request.key)
                    .unwrap_or_default())
            }
            MessageType::GetStateMultiple => {
                let request: GetStateMultiple = decode(payload)?;
                let values = request
                    .keys
                    .iter()
                    .map(|key| self.read(&request.collection, key).unwrap_or_default())
                    .collect();
                Ok(GetStateMultipleResult { values }.encode_to_vec())
            }
            MessageType::GetPrivateDataHash => {
                let request: GetState = decode(payload)?;
                Ok(self
                    .read(&request.collection, &request.key)
                    .map(|value| Sha256::digest(&value).to_vec())
                    .unwrap_or_default())
            }
            MessageType::PutState => {
                let request: PutState = decode(payload)?;
                self.write(&request.collection, &request.key, Write::Put(request.value))?;
                Ok(Vec::new())
            }
            MessageType::DelState => {
                let request: DelState = decode(payload)?;
                self.write(&request.collection, &request.key, Write::Delete)?;
                Ok(Vec::new())
            }
            MessageType::PurgePrivateData => {
                let request: PurgePrivateState = decode(payload)?;
                self.write(&request.collection, &request.key, Write::Delete)?;
                Ok(Vec::new())
            }
            MessageType::WriteBatchState => {
                let request: WriteBatchState = decode(payload)?;
                for record in request.rec {
                    match record.r#type() {
                        write_record::Type::PutState => {
                            self.write(&record.collection, &record.key, Write::Put(record.value))?;
                        }
                        write_record::Type::DelState | write_record::Type::PurgePrivateData => {
                            self.write(&record.collection, &record.key, Write::Delete)?;
                        }
                        write_record::Type::PutStateMetadata => {
                            let metadata = record.metadata.unwrap_or_default();
                            self.write_metadata(&record.collection, &record.key, metadata)?;
                        }
                        write_record::Type::Undefined => {
                            return Err(Refusal::UntypedRecord.text().to_owned());
                        }
                    }
                }
                Ok(Vec::new())
            }
            MessageType::GetStateMetadata => {
                let request: GetStateMetadata = decode(payload)?;
                let entries = self
                    .running
                    .world
                    .entries
                    .get(&self.place(&request.collection, &request.key))
                    .map(|entry| entry.metadata.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(metakey, value)| StateMetadata { metakey, value })
                    .collect();
                Ok(StateMetadataResult { entries }.encode_to_vec())
            }
            MessageType::PutStateMetadata => {
                let request: PutStateMetadata = decode(payload)?;
                let metadata = request.metadata.ok_or(Refusal::NoMetadata.text())?;
                self.write_metadata(&request.collection, &request.key, metadata)?;
                Ok(Vec::new())
            }
            MessageType::GetStateByRange => self.range(decode(payload)?),
            MessageType::GetHistoryForKey => {
                let request: GetHistoryForKey = decode(payload)?;
                let mut changes = self
                    .running
                    .world
                    .history
                    .get(&(self.namespace.to_owned(), request.key))
                    .cloned()
                    .unwrap_or_default();
                changes.reverse();
                let results = changes.iter().map(result_bytes).collect();
                Ok(self.open(results, Vec::new()))
            }
            MessageType::QueryStateNext | MessageType::QueryStateClose => {
                Err(Refusal::UnknownIterator.text().to_owned())
            }
            MessageType::GetQueryResult => Err(Refusal::RichQueryUnsupported.text().to_owned()),
            MessageType::InvokeChaincode => self.invoke(decode(payload)?),
            other => Err(Refusal::NotAStateRequest.with(other.as_str_name())),
        }
    }

    fn place(&self, collection: &str, key: &str) -> Place {
        (
            self.namespace.to_owned(),
            collection.to_owned(),
            key.to_owned(),
        )
    }

    fn read(&self, collection: &str, key: &str) -> Option<Vec<u8>> {
        self.running
            .world
            .entries
            .get(&self.place(collection, key))
            .map(|entry| entry.value.clone())
    }

    fn write(&self, collection: &str, key: &str, write: Write) -> Result<(), String> {
        require_key(key)?;
        self.running
            .writes
            .borrow_mut()
            .values
            .insert(self.place(collection, key), write);
        Ok(())
    }

    fn write_metadata(
        &self,
        collection: &str,
        key: &str,
        metadata: StateMetadata,
    ) -> Result<(), String> {
        require_key(key)?;
        self.running
            .writes
            .borrow_mut()
            .metadata
            .entry(self.place(collection, key))
            .or_default()
            .insert(metadata.metakey, metadata.value);
        Ok(())
    }

    /// Committed keys of the namespace in `[start, end)`, or one page of them.
    fn range(&self, request: GetStateByRange) -> Result<Vec<u8>, String> {
        let page = if request.metadata.is_empty() {
            None
        } else {
            Some(decode::<QueryMetadata>(&request.metadata)?)
        };
        let start = match &page {
            Some(page) if !page.bookmark.is_empty() => page.bookmark.clone(),
            _ => request.start_key,
        };
        let from = self.place(&request.collection, &start);
        let to = if request.end_key.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(self.place(&request.collection, &request.end_key))
        };
        let limit = page.as_ref().map_or(usize::MAX, |p| {
            usize::try_from(p.page_size.max(0)).unwrap_or(0)
        });
        let mut keys = self
            .running
            .world
            .entries
            .range((Bound::Included(from), to))
            .take_while(|((namespace, collection, _), _)| {
                namespace == self.namespace && *collection == request.collection
            });
        let mut results = Vec::new();
        for ((_, _, key), entry) in keys.by_ref().take(limit) {
            let kv = Kv {
                namespace: self.namespace.to_owned(),
                key: key.clone(),
                value: entry.value.clone(),
            };
            results.push(QueryResultBytes {
                result_bytes: kv.encode_to_vec(),
            });
        }
        let metadata = match page {
            None => Vec::new(),
            Some(_) => QueryResponseMetadata {
                fetched_records_count: i32::try_from(results.len()).unwrap_or(i32::MAX),
                bookmark: keys
                    .next()
                    .map(|((_, _, key), _)| key.clone())
                    .unwrap_or_default(),
            }
            .encode_to_vec(),
        };
        Ok(self.open(results, metadata))
    }

    /// A query's whole answer in one batch.
    fn open(&self, results: Vec<QueryResultBytes>, metadata: Vec<u8>) -> Vec<u8> {
        let opened = self.running.queries.get() + 1;
        self.running.queries.set(opened);
        QueryResponse {
            results,
            has_more: false,
            id: format!("query-{opened}"),
            metadata,
        }
        .encode_to_vec()
    }

    /// Runs a chaincode added with [`MockLedger::add_chaincode`] or
    /// [`MockLedger::add_chaincode_on`] in this transaction: `name` on this channel, whose
    /// writes join the transaction's, or `name/channel` on another, which reads that channel's
    /// committed state and whose writes are discarded.
    fn invoke(&self, spec: ChaincodeSpec) -> Result<Vec<u8>, String> {
        let target = spec.chaincode_id.map(|id| id.name).unwrap_or_default();
        let running = self.running;
        let (name, channel) = target.split_once('/').unwrap_or((&target, running.channel));
        let callee = running
            .network
            .callees
            .get(&(channel.to_owned(), name.to_owned()))
            .ok_or_else(|| {
                format!("chaincode {name} on channel {channel} is not added to the mock ledger")
            })?;
        let transaction = Transaction {
            is_init: false,
            channel_id: channel.to_owned(),
            tx_id: running.tx_id.to_owned(),
            input: spec.input.unwrap_or_default(),
            proposal: Some(running.proposal.clone()),
            peer_features: MOCK_PEER_FEATURES,
        };
        let completed = if channel == running.channel {
            let peer = MockPeer {
                running,
                namespace: name,
            };
            run_transaction(callee.as_ref(), transaction, &peer)
        } else {
            let empty = World::default();
            let elsewhere = Running {
                network: running.network,
                channel,
                world: running.network.worlds.get(channel).unwrap_or(&empty),
                tx_id: running.tx_id,
                proposal: running.proposal,
                writes: RefCell::default(),
                queries: Cell::new(0),
            };
            let peer = MockPeer {
                running: &elsewhere,
                namespace: name,
            };
            run_transaction(callee.as_ref(), transaction, &peer)
        };
        Ok(completed.encode_to_vec())
    }
}

fn result_bytes(change: &KeyModification) -> QueryResultBytes {
    QueryResultBytes {
        result_bytes: change.encode_to_vec(),
    }
}

fn require_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err(Refusal::EmptyKey.text().to_owned())
    } else {
        Ok(())
    }
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, String> {
    M::decode(payload).map_err(|e| Refusal::Malformed.with(e))
}

/// The chaincode's response in its COMPLETED (or ERROR) message.
fn decode_response(completed: &ChaincodeMessage) -> Response {
    if completed.r#type != MessageType::Completed as i32 {
        return Response::error(String::from_utf8_lossy(&completed.payload).into_owned());
    }
    match ccvm_proto::protos::Response::decode(completed.payload.as_slice()) {
        Ok(response) => Response {
            status: response.status,
            message: response.message,
            payload: response.payload,
        },
        Err(e) => Response::error(format!("malformed response: {e}")),
    }
}

fn serialized_identity(msp_id: &str, certificate: &[u8]) -> Vec<u8> {
    SerializedIdentity {
        mspid: msp_id.to_owned(),
        id_bytes: certificate.to_vec(),
    }
    .encode_to_vec()
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
