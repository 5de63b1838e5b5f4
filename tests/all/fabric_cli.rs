//! Fabric's own `peer` command (the 2.5.9 release in `../shared/fabric/`) as a client of a node:
//! the node is its endorsing peer, its orderer (`-o`), its event source (`--waitForEvent`) and
//! its source of blocks, configuration blocks included, which Fabric's `configtxgen` decodes.
//! Not yet: `peer lifecycle chaincode query*` (the node's `_lifecycle` takes ccvm's own
//! arguments).

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result};
use ccvm::node::dev_organization;
use ccvm::proto::Message;
use ccvm::proto::common::Block;
use tokio::process::Command;

use crate::harness::{CHANNEL, TestNode, fabric_bin, rust_chaincode};

/// Runs `peer` from `bin` with `args` as the node's development user, TLS off.
async fn peer(bin: &Path, node: &TestNode, args: &[&str]) -> Result<Output> {
    let config = bin
        .parent()
        .context("the release directory")?
        .join("config");
    let user = dev_organization(&node.config().data_dir).user_msp_dir();
    let running = Command::new(bin.join("peer"))
        .args(args)
        .env_clear()
        .env("FABRIC_CFG_PATH", config)
        .env("CORE_PEER_ADDRESS", node.inner().peer_addr().to_string())
        .env("CORE_PEER_LOCALMSPID", &node.config().msp_id)
        .env("CORE_PEER_MSPCONFIGPATH", user)
        .env("CORE_PEER_TLS_ENABLED", "false")
        .env("FABRIC_LOGGING_SPEC", "info")
        .kill_on_drop(true)
        .output();
    Ok(
        tokio::time::timeout(std::time::Duration::from_secs(120), running)
            .await
            .context("peer did not finish within 120 s")??,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_peer_command_invokes_waits_for_the_event_queries_and_fetches_blocks() -> Result<()>
{
    let Some(bin) = fabric_bin()? else {
        return Ok(());
    };
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let orderer = node.inner().peer_addr().to_string();

    for value in ["first", "second"] {
        let args = format!(r#"{{"Args":["put","color","{value}"]}}"#);
        let invoked = peer(
            &bin,
            &node,
            &[
                "chaincode",
                "invoke",
                "-o",
                &orderer,
                "-C",
                CHANNEL,
                "-n",
                "kv",
                "-c",
                &args,
                "--waitForEvent",
            ],
        )
        .await?;
        let said = text(&invoked.stderr);
        assert!(invoked.status.success(), "{said}");
        assert!(
            said.contains("Chaincode invoke successful. result: status:200"),
            "{said}"
        );
    }

    let query = |ctor: &'static str| ["chaincode", "query", "-C", CHANNEL, "-n", "kv", "-c", ctor];
    let queried = peer(&bin, &node, &query(r#"{"Args":["get","color"]}"#)).await?;
    assert!(queried.status.success(), "{}", text(&queried.stderr));
    assert_eq!(text(&queried.stdout), "second\n");

    let failed = peer(&bin, &node, &query(r#"{"Args":["fail","on purpose"]}"#)).await?;
    let said = text(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        said.contains("endorsement failure during query") && said.contains("on purpose"),
        "{said}"
    );

    let info = peer(&bin, &node, &["channel", "getinfo", "-c", CHANNEL]).await?;
    assert!(info.status.success(), "{}", text(&info.stderr));
    assert!(
        text(&info.stdout).starts_with(r#"Blockchain info: {"height":3,"#),
        "{}",
        text(&info.stdout)
    );

    let blocks = tempfile::tempdir()?;
    for (which, number) in [("newest", 2), ("oldest", 0), ("1", 1), ("config", 0)] {
        let file = blocks.path().join(format!("{which}.block"));
        let fetched = peer(
            &bin,
            &node,
            &[
                "channel",
                "fetch",
                which,
                &file.display().to_string(),
                "-c",
                CHANNEL,
                "-o",
                &orderer,
            ],
        )
        .await?;
        assert!(fetched.status.success(), "{}", text(&fetched.stderr));
        let block = Block::decode(std::fs::read(&file)?.as_slice())?;
        assert_eq!(
            block.header.context("a header")?.number,
            number,
            "fetch {which}"
        );
    }

    let listed = peer(&bin, &node, &["channel", "list"]).await?;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(
        text(&listed.stdout),
        format!("Channels peers has joined: \n{CHANNEL}\n")
    );

    let inspected = Command::new(bin.join("configtxgen"))
        .arg("-inspectBlock")
        .arg(blocks.path().join("config.block"))
        .env_clear()
        .output()
        .await?;
    assert!(inspected.status.success(), "{}", text(&inspected.stderr));
    let decoded: serde_json::Value = serde_json::from_slice(&inspected.stdout)?;
    let channel_group = &decoded["data"]["data"][0]["payload"]["data"]["config"]["channel_group"];
    let msp_id = &node.config().msp_id;
    assert_eq!(
        channel_group["groups"]["Application"]["groups"][msp_id]["values"]["MSP"]["value"]["config"]
            ["name"],
        msp_id.as_str(),
        "{decoded}"
    );
    assert_eq!(
        channel_group["groups"]["Orderer"]["values"]["ConsensusType"]["value"]["type"],
        "solo"
    );
    assert_eq!(
        channel_group["groups"]["Application"]["values"]["Capabilities"]["value"]["capabilities"]["V2_5"],
        serde_json::json!({})
    );
    Ok(())
}
