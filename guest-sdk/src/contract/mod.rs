//! Contracts: chaincode written as methods with typed arguments, the way Fabric's contract APIs
//! (Go `contractapi`, Node `fabric-contract-api`) write it, and called by the same clients.
//!
//! Put `#[contract]` on an `impl` block and mark its transactions; [`Contracts`] routes each
//! call to its method and is the chaincode that [`crate::start`] runs:
//!
//! ```no_run
//! use ccvm_guest_sdk::contract::{Contracts, JsonSchema, contract};
//! use ccvm_guest_sdk::{ShimError, Stub};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! #[schemars(crate = "ccvm_guest_sdk::contract::schemars")]
//! struct Asset {
//!     id: String,
//!     size: u32,
//! }
//!
//! struct Assets;
//!
//! #[contract]
//! impl Assets {
//!     /// Called as `CreateAsset` with the arguments `"a1"` and `"5"`.
//!     #[transaction]
//!     fn create_asset(&self, stub: &mut Stub<'_>, id: String, size: u32) -> Result<(), ShimError> {
//!         let asset = Asset { id, size };
//!         stub.put_state(&asset.id, serde_json::to_vec(&asset).expect("an asset is JSON"))
//!     }
//!
//!     /// Called as `ReadAsset`; the client receives the asset as JSON.
//!     #[transaction(evaluate)]
//!     fn read_asset(&self, stub: &mut Stub<'_>, id: String) -> Result<Asset, String> {
//!         let bytes = stub.get_state(&id).map_err(|e| e.to_string())?;
//!         let bytes = bytes.ok_or_else(|| format!("the asset {id} does not exist"))?;
//!         serde_json::from_slice(&bytes).map_err(|e| e.to_string())
//!     }
//! }
//!
//! fn main() -> Result<(), ShimError> {
//!     ccvm_guest_sdk::start(Contracts::new().with(Assets))
//! }
//! ```
//!
//! - **Names.** A transaction is called by its method's name in Fabric's style (`create_asset` is
//!   `CreateAsset`) or by `#[transaction(name = "...")]`. A contract is named after its type or
//!   by `#[contract(name = "...")]`. A call names `Contract:Transaction`; a name without a
//!   contract goes to the first contract given to [`Contracts::with`], the default one.
//! - **Methods.** A transaction takes `&self`, then the stub (`&mut Stub<'_>` or `&Stub<'_>`),
//!   then its arguments. It returns a value, `()`, or a `Result` whose error is any `Display`;
//!   an `Err` fails the transaction with that text.
//! - **Arguments and results** travel as Fabric's contract APIs encode them: a string as its
//!   text, anything else as JSON. An argument implements serde's `Deserialize` and [`JsonSchema`];
//!   a result `Serialize` and [`JsonSchema`]. A type that does not is a compile error at that
//!   type in the method's signature.
//!
//!   ```compile_fail,E0277
//!   # use ccvm_guest_sdk::contract::contract;
//!   # use ccvm_guest_sdk::Stub;
//!   struct NotAnArgument;
//!   struct Shelf;
//!
//!   #[contract]
//!   impl Shelf {
//!       // error[E0277]: `NotAnArgument` cannot be a transaction argument
//!       #[transaction]
//!       fn store(&self, stub: &mut Stub<'_>, item: NotAnArgument) {}
//!   }
//!   ```
//! - **Transient data.** An argument marked `#[transient]` is read from the proposal's transient
//!   data under its own name (`#[transient("key")]` for another key), decoded the same way; it is
//!   not a positional argument and is not in the metadata.
//! - **Hooks.** One method each may be marked `#[before]` (`fn(&self, &mut Stub, function: &str)
//!   -> Result<(), E>`), run before every transaction of the contract; `#[after]` (the same plus
//!   `payload: &[u8]`, the encoded result), run after each one that succeeded; and `#[unknown]`
//!   (like `#[before]` but returning a result), which answers names the contract does not have.
//! - **Metadata.** `org.hyperledger.fabric:GetMetadata` returns Fabric's contract metadata JSON,
//!   generated from the Rust types.

mod codec;
mod metadata;

use crate::chaincode::{Chaincode, Response};
use crate::stub::Stub;

///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contracts, contract};
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// struct Greeter;
///
/// #[contract]
/// impl Greeter {
///     #[transaction(evaluate)]
///     fn greet(&self, _stub: &mut Stub<'_>, name: String) -> String {
///         format!("hello {name}")
///     }
/// }
///
/// let chaincode = Contracts::new().with(Greeter);
/// let outcome = MockLedger::new("greeter").invoke(&chaincode, &["Greet", "ada"]);
/// assert_eq!(outcome.response.payload, b"hello ada");
/// ```
pub use ccvm_guest_sdk_macros::contract;
pub use metadata::{ParameterMetadata, TransactionMetadata};
pub use schemars::{self, JsonSchema, SchemaGenerator};

/// The contract Fabric's contract APIs add to every chaincode.
///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contracts, contract};
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// struct Greeter;
///
/// #[contract]
/// impl Greeter {
///     #[transaction(evaluate)]
///     fn greet(&self, _stub: &mut Stub<'_>, name: String) -> String {
///         format!("hello {name}")
///     }
/// }
///
/// use ccvm_guest_sdk::contract::SYSTEM_CONTRACT;
///
/// let chaincode = Contracts::new().with(Greeter);
/// let call = format!("{SYSTEM_CONTRACT}:GetMetadata");
/// let metadata = MockLedger::new("greeter").invoke(&chaincode, &[call]).response.payload;
/// let metadata: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
/// assert!(metadata["contracts"]["Greeter"]["transactions"].is_array());
/// ```
pub const SYSTEM_CONTRACT: &str = "org.hyperledger.fabric";

/// The system contract's transaction that returns the metadata.
const GET_METADATA: &str = "GetMetadata";

/// A contract: a named set of transactions. `#[contract]` implements it; the hooks have
/// defaults that do nothing (and refuse unknown names).
///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contracts, contract};
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// struct Greeter;
///
/// #[contract]
/// impl Greeter {
///     #[transaction(evaluate)]
///     fn greet(&self, _stub: &mut Stub<'_>, name: String) -> String {
///         format!("hello {name}")
///     }
/// }
///
/// use ccvm_guest_sdk::contract::Contract;
///
/// assert_eq!(Greeter.name(), "Greeter");
/// let mut stub_free = MockLedger::new("greeter");
/// let outcome = stub_free.run(|stub| {
///     let answer = Greeter.call(stub, "Greet", &[b"bob".to_vec()]);
///     assert_eq!(answer, Some(Ok(b"hello bob".to_vec())));
///     assert_eq!(Greeter.call(stub, "Wave", &[]), None);
///     Ok(())
/// });
/// assert!(outcome.committed);
/// ```
pub trait Contract: Send + Sync {
    /// The contract's name in `Contract:Transaction`.
    ///
    /// ```
    /// use ccvm_guest_sdk::contract::{Contract, contract};
    ///
    /// struct Assets;
    ///
    /// #[contract(name = "AssetContract")]
    /// impl Assets {}
    ///
    /// assert_eq!(Assets.name(), "AssetContract");
    /// ```
    fn name(&self) -> &str;

    /// Runs transaction `function` with `args` (the call's arguments after its name), or `None`
    /// if the contract has no such transaction.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Greeter;
    ///
    /// #[contract]
    /// impl Greeter {
    ///     #[transaction(evaluate)]
    ///     fn greet(&self, _stub: &mut Stub<'_>, name: String) -> String {
    ///         format!("hello {name}")
    ///     }
    /// }
    ///
    /// use ccvm_guest_sdk::contract::Contract;
    ///
    /// let outcome = MockLedger::new("greeter").run(|stub| {
    ///     assert_eq!(Greeter.call(stub, "Greet", &[b"eve".to_vec()]), Some(Ok(b"hello eve".to_vec())));
    ///     Ok(())
    /// });
    /// assert!(outcome.committed);
    /// ```
    fn call(
        &self,
        stub: &mut Stub<'_>,
        function: &str,
        args: &[Vec<u8>],
    ) -> Option<Result<Vec<u8>, String>>;

    /// The contract's transactions, their schemas generated with `schemas`.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Greeter;
    ///
    /// #[contract]
    /// impl Greeter {
    ///     #[transaction(evaluate)]
    ///     fn greet(&self, _stub: &mut Stub<'_>, name: String) -> String {
    ///         format!("hello {name}")
    ///     }
    /// }
    ///
    /// use ccvm_guest_sdk::contract::{Contract, SchemaGenerator};
    ///
    /// let transactions = Greeter.transactions(&mut SchemaGenerator::default());
    /// assert_eq!(transactions[0].name, "Greet");
    /// assert!(transactions[0].evaluate);
    /// ```
    fn transactions(&self, schemas: &mut SchemaGenerator) -> Vec<TransactionMetadata>;

    /// Runs before every transaction of this contract; an `Err` fails the transaction.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Vault;
    ///
    /// #[contract]
    /// impl Vault {
    ///     #[transaction]
    ///     fn open(&self, _stub: &mut Stub<'_>) -> String {
    ///         "opened".to_owned()
    ///     }
    ///
    ///     /// Becomes `before_transaction`.
    ///     #[before]
    ///     fn closed_at_night(&self, stub: &mut Stub<'_>, function: &str) -> Result<(), String> {
    ///         match stub.tx_timestamp() {
    ///             Some(t) if t.seconds % 86_400 < 6 * 3_600 => Err(format!("{function}: closed")),
    ///             _ => Ok(()),
    ///         }
    ///     }
    /// }
    ///
    /// let chaincode = Contracts::new().with(Vault);
    /// let at_noon = MockCall::new(&["Open"]).at(Timestamp { seconds: 12 * 3_600, nanos: 0 });
    /// assert!(MockLedger::new("vault").call(&chaincode, at_noon).committed);
    /// let at_two = MockCall::new(&["Open"]).at(Timestamp { seconds: 2 * 3_600, nanos: 0 });
    /// let refused = MockLedger::new("vault").call(&chaincode, at_two);
    /// assert_eq!(refused.response.message, "Open: closed");
    /// # use ccvm_guest_sdk::mock::MockCall;
    /// # use ccvm_guest_sdk::proto::Timestamp;
    /// ```
    ///
    /// # Errors
    /// Why the transaction may not run.
    fn before_transaction(&self, stub: &mut Stub<'_>, function: &str) -> Result<(), String> {
        let _ = (stub, function);
        Ok(())
    }

    /// Runs after every transaction of this contract that succeeded, with its encoded result;
    /// an `Err` fails the transaction.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Vault;
    ///
    /// #[contract]
    /// impl Vault {
    ///     #[transaction]
    ///     fn deposit(&self, stub: &mut Stub<'_>, amount: u64) -> Result<u64, String> {
    ///         stub.put_state("balance", amount.to_string()).map_err(|e| e.to_string())?;
    ///         Ok(amount)
    ///     }
    ///
    ///     /// Becomes `after_transaction`: sees the encoded result.
    ///     #[after]
    ///     fn announce(&self, stub: &mut Stub<'_>, function: &str, payload: &[u8]) -> Result<(), String> {
    ///         stub.set_event(function, payload.to_vec()).map_err(|e| e.to_string())
    ///     }
    /// }
    ///
    /// let chaincode = Contracts::new().with(Vault);
    /// let outcome = MockLedger::new("vault").invoke(&chaincode, &["Deposit", "10"]);
    /// let event = outcome.event.expect("the after hook set an event");
    /// assert_eq!((event.event_name.as_str(), event.payload.as_slice()), ("Deposit", &b"10"[..]));
    /// ```
    ///
    /// # Errors
    /// Why the transaction must fail after all.
    fn after_transaction(
        &self,
        stub: &mut Stub<'_>,
        function: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        let _ = (stub, function, payload);
        Ok(())
    }

    /// Answers a name this contract has no transaction for.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Vault;
    ///
    /// #[contract]
    /// impl Vault {
    ///     /// Becomes `unknown_transaction`.
    ///     #[unknown]
    ///     fn anything_else(&self, _stub: &mut Stub<'_>, function: &str) -> Result<String, String> {
    ///         Err(format!("the vault has no {function}; try Open"))
    ///     }
    /// }
    ///
    /// let chaincode = Contracts::new().with(Vault);
    /// let outcome = MockLedger::new("vault").invoke(&chaincode, &["Rob"]);
    /// assert_eq!(outcome.response.message, "the vault has no Rob; try Open");
    /// ```
    ///
    /// # Errors
    /// By default, that the function does not exist, in Fabric's words.
    fn unknown_transaction(&self, stub: &mut Stub<'_>, function: &str) -> Result<Vec<u8>, String> {
        let _ = stub;
        Err(format!(
            "You've asked to invoke a function that does not exist: {function}"
        ))
    }
}

/// A chaincode made of contracts: routes `Contract:Transaction` to its contract, the first one
/// added being the default, and answers `org.hyperledger.fabric:GetMetadata`.
///
/// ```
/// use ccvm_guest_sdk::Stub;
/// use ccvm_guest_sdk::contract::{Contracts, contract};
/// use ccvm_guest_sdk::mock::MockLedger;
///
/// struct Assets;
/// #[contract]
/// impl Assets {
///     #[transaction(evaluate)]
///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
///         3
///     }
/// }
///
/// struct Audit;
/// #[contract]
/// impl Audit {
///     #[transaction(evaluate)]
///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
///         12
///     }
/// }
///
/// let chaincode = Contracts::new().with(Assets).with(Audit);
/// let mut ledger = MockLedger::new("assets");
/// assert_eq!(ledger.invoke(&chaincode, &["Count"]).response.payload, b"3", "the default contract");
/// assert_eq!(ledger.invoke(&chaincode, &["Audit:Count"]).response.payload, b"12");
/// ```
pub struct Contracts {
    contracts: Vec<Box<dyn Contract>>,
    title: String,
    version: String,
}

impl Default for Contracts {
    fn default() -> Self {
        Self::new()
    }
}

impl Contracts {
    /// No contracts yet; the metadata's title and version are the SDK's until set.
    ///
    /// ```
    /// use ccvm_guest_sdk::contract::Contracts;
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// let empty = Contracts::new();
    /// let outcome = MockLedger::new("nothing").invoke(&empty, &["Anything"]);
    /// assert!(!outcome.response.is_success());
    /// ```
    pub fn new() -> Self {
        Self {
            contracts: Vec::new(),
            title: String::new(),
            version: "latest".to_owned(),
        }
    }

    /// Adds `contract`; the first one added is the default.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Assets;
    /// #[contract]
    /// impl Assets {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         3
    ///     }
    /// }
    ///
    /// struct Audit;
    /// #[contract]
    /// impl Audit {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         12
    ///     }
    /// }
    ///
    /// let chaincode = Contracts::new().with(Assets).with(Audit);
    /// let metadata = chaincode.metadata();
    /// assert_eq!(metadata["contracts"].as_object().map(|c| c.len()), Some(2));
    /// ```
    ///
    /// # Panics
    /// If a contract of the same name was added, or the name is the system contract's.
    #[must_use]
    pub fn with(mut self, contract: impl Contract + 'static) -> Self {
        let name = contract.name();
        assert!(
            name != SYSTEM_CONTRACT && !self.contracts.iter().any(|c| c.name() == name),
            "contract name {name:?} is taken"
        );
        if self.title.is_empty() {
            self.title = name.to_owned();
        }
        self.contracts.push(Box::new(contract));
        self
    }

    /// Sets the chaincode's title and version in the metadata.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Assets;
    /// #[contract]
    /// impl Assets {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         3
    ///     }
    /// }
    ///
    /// struct Audit;
    /// #[contract]
    /// impl Audit {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         12
    ///     }
    /// }
    ///
    /// let chaincode = Contracts::new().with(Assets).info("Asset registry", "1.4.0");
    /// assert_eq!(chaincode.metadata()["info"]["title"], "Asset registry");
    /// assert_eq!(chaincode.metadata()["info"]["version"], "1.4.0");
    /// ```
    #[must_use]
    pub fn info(mut self, title: impl Into<String>, version: impl Into<String>) -> Self {
        self.title = title.into();
        self.version = version.into();
        self
    }

    /// Fabric's contract metadata of these contracts, as `GetMetadata` returns it.
    ///
    /// ```
    /// use ccvm_guest_sdk::Stub;
    /// use ccvm_guest_sdk::contract::{Contracts, contract};
    /// use ccvm_guest_sdk::mock::MockLedger;
    ///
    /// struct Assets;
    /// #[contract]
    /// impl Assets {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         3
    ///     }
    /// }
    ///
    /// struct Audit;
    /// #[contract]
    /// impl Audit {
    ///     #[transaction(evaluate)]
    ///     fn count(&self, _stub: &mut Stub<'_>) -> u32 {
    ///         12
    ///     }
    /// }
    ///
    /// let metadata = Contracts::new().with(Assets).metadata();
    /// let count = &metadata["contracts"]["Assets"]["transactions"][0];
    /// assert_eq!(count["name"], "Count");
    /// assert_eq!(count["tags"][0], "EVALUATE");
    /// ```
    pub fn metadata(&self) -> serde_json::Value {
        metadata::describe(&self.contracts, &self.title, &self.version)
    }

    fn run(&self, stub: &mut Stub<'_>) -> Result<Vec<u8>, String> {
        let mut args = stub.args().to_vec();
        if args.is_empty() {
            return Err("no transaction name was given".to_owned());
        }
        let called = String::from_utf8_lossy(&args.remove(0)).into_owned();
        let (contract_name, function) = match called.rsplit_once(':') {
            Some((contract, function)) => (Some(contract), function),
            None => (None, called.as_str()),
        };
        if contract_name == Some(SYSTEM_CONTRACT) {
            return match function {
                GET_METADATA => codec::encode(&self.metadata()),
                _ => Err(format!(
                    "You've asked to invoke a function that does not exist: {function}"
                )),
            };
        }
        let contract = match contract_name {
            Some(name) => self.contracts.iter().find(|c| c.name() == name),
            None => self.contracts.first(),
        };
        let Some(contract) = contract else {
            return Err(match contract_name {
                Some(name) => format!("Contract name is not known to the chaincode: {name}"),
                None => "the chaincode has no contracts".to_owned(),
            });
        };
        contract.before_transaction(stub, function)?;
        let payload = match contract.call(stub, function, &args) {
            Some(result) => result?,
            None => return contract.unknown_transaction(stub, function),
        };
        contract.after_transaction(stub, function, &payload)?;
        Ok(payload)
    }
}

impl Chaincode for Contracts {
    fn init(&self, stub: &mut Stub<'_>) -> Response {
        self.invoke(stub)
    }

    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        match self.run(stub) {
            Ok(payload) => Response::success(payload),
            Err(message) => Response::error(message),
        }
    }
}

/// What the code `#[contract]` generates calls; not for use by hand.
#[doc(hidden)]
pub mod __private {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{JsonSchema, codec};
    use crate::stub::Stub;

    /// A type that can be a transaction argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a transaction argument",
        label = "not a transaction argument",
        note = "an argument implements serde's `Deserialize` and `JsonSchema`: derive both"
    )]
    pub trait Argument: DeserializeOwned + JsonSchema {}
    impl<T: DeserializeOwned + JsonSchema> Argument for T {}

    /// A type that can be a transaction's result.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a transaction result",
        label = "not a transaction result",
        note = "a result implements serde's `Serialize` and `JsonSchema`: derive both"
    )]
    pub trait Returned: Serialize + JsonSchema {}
    impl<T: Serialize + JsonSchema> Returned for T {}

    /// Compiles only for a type that can be an argument.
    pub fn is_argument<T: Argument>() {}

    /// Compiles only for a type that can be a result.
    pub fn is_returned<T: Returned>() {}

    /// Refuses a call with the wrong number of positional arguments.
    ///
    /// # Errors
    /// How many were expected and given.
    pub fn argument_count(given: usize, expected: usize) -> Result<(), String> {
        if given == expected {
            Ok(())
        } else {
            Err(format!(
                "Expected {expected} parameters, but {given} have been supplied"
            ))
        }
    }

    /// Decodes the positional argument `name`.
    ///
    /// # Errors
    /// As the codec refuses it.
    pub fn argument<T: Argument>(bytes: &[u8], name: &str) -> Result<T, String> {
        codec::decode(bytes, name)
    }

    /// Decodes the transient argument stored under `key`.
    ///
    /// # Errors
    /// No such key in the transient data, or a value the codec refuses.
    pub fn transient_argument<T: Argument>(stub: &Stub<'_>, key: &str) -> Result<T, String> {
        let value = stub
            .transient()
            .get(key)
            .ok_or_else(|| format!("the transient data has no {key:?}"))?;
        codec::decode(value, key)
    }

    /// Encodes a method's result, or passes on its error's text.
    ///
    /// # Errors
    /// The method's error, or a result that cannot be encoded.
    pub fn payload<T: Serialize, E: std::fmt::Display>(
        result: Result<T, E>,
    ) -> Result<Vec<u8>, String> {
        codec::encode(&result.map_err(|e| e.to_string())?)
    }
}
