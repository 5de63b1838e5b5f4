//! The asset-transfer chaincode of Fabric's samples, written with ccvm's guest SDK.
//!
//! Build and run against a node in dev mode:
//!
//! ```text
//! cargo build -p asset-transfer
//! CORE_CHAINCODE_ID_NAME=basic:1.0 target/debug/asset-transfer --peer.address 127.0.0.1:7052
//! ```

use ccvm_guest_sdk::{Chaincode, Response, ShimError, Stub};
use serde::{Deserialize, Serialize};

/// An asset as the Fabric samples define it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Asset {
    #[serde(rename = "ID")]
    id: String,
    color: String,
    size: u32,
    owner: String,
    appraised_value: u32,
}

struct AssetTransfer;

impl Chaincode for AssetTransfer {
    fn invoke(&self, stub: &mut Stub<'_>) -> Response {
        let (function, params) = stub.function_and_parameters();
        let result = match function.as_str() {
            "InitLedger" => init_ledger(stub).map(|()| Vec::new()),
            "CreateAsset" => parse_asset(&params)
                .and_then(|asset| create(stub, &asset))
                .map(|()| Vec::new()),
            "ReadAsset" => one(&params)
                .and_then(|id| read(stub, id))
                .and_then(|asset| to_json(&asset)),
            "UpdateAsset" => parse_asset(&params)
                .and_then(|asset| update(stub, &asset))
                .map(|()| Vec::new()),
            "DeleteAsset" => one(&params)
                .and_then(|id| delete(stub, id))
                .map(|()| Vec::new()),
            "AssetExists" => one(&params)
                .and_then(|id| exists(stub, id))
                .map(|e| e.to_string().into_bytes()),
            "TransferAsset" => transfer(stub, &params).map(String::into_bytes),
            "GetAllAssets" => all(stub).and_then(|assets| to_json(&assets)),
            other => Err(format!("unknown function {other}")),
        };
        match result {
            Ok(payload) => Response::success(payload),
            Err(message) => Response::error(message),
        }
    }
}

fn text(e: ShimError) -> String {
    e.to_string()
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| e.to_string())
}

fn one(params: &[String]) -> Result<&str, String> {
    params
        .first()
        .map(String::as_str)
        .ok_or_else(|| "expected an asset id".to_owned())
}

fn parse_asset(params: &[String]) -> Result<Asset, String> {
    let [id, color, size, owner, value] = params else {
        return Err("expected ID, Color, Size, Owner, AppraisedValue".to_owned());
    };
    let number = |s: &str, what: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{what} must be a whole number"))
    };
    Ok(Asset {
        id: id.clone(),
        color: color.clone(),
        size: number(size, "Size")?,
        owner: owner.clone(),
        appraised_value: number(value, "AppraisedValue")?,
    })
}

fn init_ledger(stub: &Stub<'_>) -> Result<(), String> {
    let samples = [
        ("asset1", "blue", 5, "Tomoko", 300),
        ("asset2", "red", 5, "Brad", 400),
        ("asset3", "green", 10, "Jin Soo", 500),
        ("asset4", "yellow", 10, "Max", 600),
        ("asset5", "black", 15, "Adriana", 700),
        ("asset6", "white", 15, "Michel", 800),
    ];
    for (id, color, size, owner, appraised_value) in samples {
        let asset = Asset {
            id: id.to_owned(),
            color: color.to_owned(),
            size,
            owner: owner.to_owned(),
            appraised_value,
        };
        stub.put_state(id, to_json(&asset)?).map_err(text)?;
    }
    Ok(())
}

fn exists(stub: &Stub<'_>, id: &str) -> Result<bool, String> {
    Ok(stub.get_state(id).map_err(text)?.is_some())
}

fn create(stub: &Stub<'_>, asset: &Asset) -> Result<(), String> {
    if exists(stub, &asset.id)? {
        return Err(format!("the asset {} already exists", asset.id));
    }
    stub.put_state(&asset.id, to_json(asset)?).map_err(text)
}

fn read(stub: &Stub<'_>, id: &str) -> Result<Asset, String> {
    let raw = stub
        .get_state(id)
        .map_err(text)?
        .ok_or_else(|| format!("the asset {id} does not exist"))?;
    serde_json::from_slice(&raw).map_err(|e| e.to_string())
}

fn update(stub: &Stub<'_>, asset: &Asset) -> Result<(), String> {
    if !exists(stub, &asset.id)? {
        return Err(format!("the asset {} does not exist", asset.id));
    }
    stub.put_state(&asset.id, to_json(asset)?).map_err(text)
}

fn delete(stub: &Stub<'_>, id: &str) -> Result<(), String> {
    if !exists(stub, id)? {
        return Err(format!("the asset {id} does not exist"));
    }
    stub.del_state(id).map_err(text)
}

fn transfer(stub: &Stub<'_>, params: &[String]) -> Result<String, String> {
    let [id, new_owner] = params else {
        return Err("expected ID and new owner".to_owned());
    };
    let mut asset = read(stub, id)?;
    let old_owner = std::mem::replace(&mut asset.owner, new_owner.clone());
    stub.put_state(id, to_json(&asset)?).map_err(text)?;
    Ok(old_owner)
}

fn all(stub: &Stub<'_>) -> Result<Vec<Asset>, String> {
    stub.get_state_by_range("", "")
        .map_err(text)?
        .map(|kv| {
            let kv = kv.map_err(text)?;
            serde_json::from_slice(&kv.value).map_err(|e| e.to_string())
        })
        .collect()
}

fn main() -> Result<(), ShimError> {
    ccvm_guest_sdk::start(AssetTransfer)
}
