//! The asset-transfer chaincode of Fabric's samples, written with ccvm's contract API: the same
//! transactions, arguments and results as the samples' Go and Node contracts, so their client
//! applications call it unchanged.
//!
//! Build and run against a node in dev mode, or test it without one:
//!
//! ```text
//! cargo build -p asset-transfer
//! CORE_CHAINCODE_ID_NAME=basic:1.0 target/debug/asset-transfer --peer.address 127.0.0.1:7052
//! cargo test -p asset-transfer
//! ```

use ccvm_guest_sdk::contract::{Contracts, JsonSchema, contract};
use ccvm_guest_sdk::{ShimError, Stub};
use serde::{Deserialize, Serialize};

/// An asset as the Fabric samples define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "ccvm_guest_sdk::contract::schemars")]
#[serde(rename_all = "PascalCase")]
struct Asset {
    #[serde(rename = "ID")]
    id: String,
    color: String,
    size: u32,
    owner: String,
    appraised_value: u32,
}

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
enum AssetError {
    #[error("the asset {0} already exists")]
    Exists(String),
    #[error("the asset {0} does not exist")]
    Missing(String),
    #[error(transparent)]
    Ledger(#[from] ShimError),
    #[error("the stored asset is not valid JSON: {0}")]
    Stored(#[from] serde_json::Error),
}

type Result<T> = std::result::Result<T, AssetError>;

/// The samples' `basic` contract.
struct AssetTransfer;

#[contract]
impl AssetTransfer {
    /// Puts the samples' six assets on the ledger.
    #[transaction]
    fn init_ledger(&self, stub: &mut Stub<'_>) -> Result<()> {
        let samples = [
            ("asset1", "blue", 5, "Tomoko", 300),
            ("asset2", "red", 5, "Brad", 400),
            ("asset3", "green", 10, "Jin Soo", 500),
            ("asset4", "yellow", 10, "Max", 600),
            ("asset5", "black", 15, "Adriana", 700),
            ("asset6", "white", 15, "Michel", 800),
        ];
        // The six writes reach the peer in one request where it takes batches (Fabric 3.1, ccvm).
        stub.start_write_batch();
        for (id, color, size, owner, appraised_value) in samples {
            let asset = Asset {
                id: id.to_owned(),
                color: color.to_owned(),
                size,
                owner: owner.to_owned(),
                appraised_value,
            };
            stub.put_state(id, serde_json::to_vec(&asset)?)?;
        }
        Ok(())
    }

    #[transaction]
    fn create_asset(
        &self,
        stub: &mut Stub<'_>,
        id: String,
        color: String,
        size: u32,
        owner: String,
        appraised_value: u32,
    ) -> Result<()> {
        if self.asset_exists(stub, id.clone())? {
            return Err(AssetError::Exists(id));
        }
        let asset = Asset {
            id,
            color,
            size,
            owner,
            appraised_value,
        };
        store(stub, &asset)
    }

    #[transaction(evaluate)]
    fn read_asset(&self, stub: &mut Stub<'_>, id: String) -> Result<Asset> {
        let stored = stub.get_state(&id)?.ok_or(AssetError::Missing(id))?;
        Ok(serde_json::from_slice(&stored)?)
    }

    #[transaction]
    fn update_asset(
        &self,
        stub: &mut Stub<'_>,
        id: String,
        color: String,
        size: u32,
        owner: String,
        appraised_value: u32,
    ) -> Result<()> {
        if !self.asset_exists(stub, id.clone())? {
            return Err(AssetError::Missing(id));
        }
        let asset = Asset {
            id,
            color,
            size,
            owner,
            appraised_value,
        };
        store(stub, &asset)
    }

    #[transaction]
    fn delete_asset(&self, stub: &mut Stub<'_>, id: String) -> Result<()> {
        if !self.asset_exists(stub, id.clone())? {
            return Err(AssetError::Missing(id));
        }
        Ok(stub.del_state(&id)?)
    }

    #[transaction(evaluate)]
    fn asset_exists(&self, stub: &mut Stub<'_>, id: String) -> Result<bool> {
        Ok(stub.get_state(&id)?.is_some())
    }

    /// Gives the asset to `new_owner`; returns the previous owner.
    #[transaction]
    fn transfer_asset(&self, stub: &mut Stub<'_>, id: String, new_owner: String) -> Result<String> {
        let mut asset = self.read_asset(stub, id)?;
        let old_owner = std::mem::replace(&mut asset.owner, new_owner);
        store(stub, &asset)?;
        Ok(old_owner)
    }

    #[transaction(evaluate)]
    fn get_all_assets(&self, stub: &mut Stub<'_>) -> Result<Vec<Asset>> {
        stub.get_state_by_range("", "")?
            .map(|entry| Ok(serde_json::from_slice(&entry?.value)?))
            .collect()
    }
}

/// Writes `asset` under its id, as JSON.
fn store(stub: &Stub<'_>, asset: &Asset) -> Result<()> {
    stub.put_state(&asset.id, serde_json::to_vec(asset)?)?;
    Ok(())
}

fn chaincode() -> Contracts {
    Contracts::new()
        .with(AssetTransfer)
        .info("asset-transfer-basic", "1.0.0")
}

fn main() -> std::result::Result<(), ShimError> {
    ccvm_guest_sdk::start(chaincode())
}

#[cfg(test)]
mod tests {
    use ccvm_guest_sdk::mock::MockLedger;

    use super::*;

    fn asset(ledger: &MockLedger, id: &str) -> Option<Asset> {
        ledger
            .state(id)
            .map(|bytes| serde_json::from_slice(&bytes).expect("stored as JSON"))
    }

    #[test]
    fn an_asset_is_created_transferred_and_read_back() {
        let chaincode = chaincode();
        let mut ledger = MockLedger::new("basic");
        let created = ledger.invoke(
            &chaincode,
            &["CreateAsset", "asset7", "purple", "3", "Ana", "900"],
        );
        assert!(created.committed, "{:?}", created.response);
        let transferred = ledger.invoke(&chaincode, &["TransferAsset", "asset7", "Bo"]);
        assert_eq!(
            transferred.response.payload, b"Ana",
            "the previous owner, as text"
        );
        assert_eq!(
            asset(&ledger, "asset7").map(|a| a.owner),
            Some("Bo".to_owned())
        );
        let read = ledger.invoke(&chaincode, &["AssetTransfer:ReadAsset", "asset7"]);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&read.response.payload).ok(),
            Some(serde_json::json!({
                "ID": "asset7", "Color": "purple", "Size": 3, "Owner": "Bo", "AppraisedValue": 900
            }))
        );
        assert_eq!(
            ledger.history("asset7").len(),
            2,
            "created, then transferred"
        );
    }

    #[test]
    fn a_refused_transaction_writes_nothing() {
        let chaincode = chaincode();
        let mut ledger = MockLedger::new("basic");
        assert!(ledger.invoke(&chaincode, &["InitLedger"]).committed);
        let again = ledger.invoke(
            &chaincode,
            &["CreateAsset", "asset1", "grey", "1", "Eve", "1"],
        );
        assert!(!again.committed);
        assert_eq!(again.response.message, "the asset asset1 already exists");
        assert_eq!(
            asset(&ledger, "asset1").map(|a| a.owner),
            Some("Tomoko".to_owned())
        );
        let bad_size = ledger.invoke(
            &chaincode,
            &["CreateAsset", "asset9", "grey", "big", "Eve", "1"],
        );
        assert!(
            bad_size
                .response
                .message
                .starts_with("parameter size is not valid for its type"),
            "{}",
            bad_size.response.message
        );
        assert_eq!(asset(&ledger, "asset9"), None);
    }

    #[test]
    fn all_assets_are_listed_and_a_deleted_one_is_gone() {
        let chaincode = chaincode();
        let mut ledger = MockLedger::new("basic");
        ledger.invoke(&chaincode, &["InitLedger"]);
        assert!(
            ledger
                .invoke(&chaincode, &["DeleteAsset", "asset2"])
                .committed
        );
        let all = ledger.invoke(&chaincode, &["GetAllAssets"]);
        let assets: Vec<Asset> =
            serde_json::from_slice(&all.response.payload).expect("a JSON list");
        let ids: Vec<&str> = assets.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["asset1", "asset3", "asset4", "asset5", "asset6"]);
        let exists = ledger.invoke(&chaincode, &["AssetExists", "asset2"]);
        assert_eq!(exists.response.payload, b"false");
    }
}
