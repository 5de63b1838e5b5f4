//! Fabric's own `peer` command (the 2.5.9 release in `../shared/fabric/`) as a client of a node:
//! the node is its endorsing peer, its orderer (`-o`), its event source (`--waitForEvent`) and
//! its source of blocks, configuration blocks included, which Fabric's `configtxgen` decodes.
//! `peer lifecycle chaincode` installs, approves and commits a chaincode that the node then
//! dials as a service.

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result};
use ccvm::node::dev_organization;
use ccvm::proto::Message;
use ccvm::proto::common::Block;
use tokio::process::Command;

use ccvm::package::Package;

use crate::harness::{
    CHANNEL, TestNode, ccaas_package, fabric_bin, node_chaincode_server, rust_chaincode,
};

/// Runs `peer` from `bin` with `args` as the node's development user, TLS off.
async fn peer(bin: &Path, node: &TestNode, args: &[&str]) -> Result<Output> {
    let user = dev_organization(&node.config().data_dir).user_msp_dir();
    peer_as(bin, node, &user, args).await
}

/// Runs `peer` from `bin` with `args` as the identity of the MSP directory `msp_dir`, TLS off.
async fn peer_as(bin: &Path, node: &TestNode, msp_dir: &Path, args: &[&str]) -> Result<Output> {
    let config = bin
        .parent()
        .context("the release directory")?
        .join("config");
    let user = msp_dir;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_lifecycle_commands_install_approve_and_commit_a_chaincode() -> Result<()> {
    let Some(bin) = fabric_bin()? else {
        return Ok(());
    };
    let node = TestNode::start_with(|config| {
        config.dev_mode = false;
        config.tls.enabled = Some(false);
    })
    .await?;
    let admin = dev_organization(&node.config().data_dir).admin_msp_dir();
    let orderer = node.inner().peer_addr().to_string();
    let work = tempfile::tempdir()?;
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.to_string()
    };
    let connection =
        serde_json::json!({"address": address, "dial_timeout": "10s", "tls_required": false});
    let bytes = ccaas_package("fabkv_1.0", &connection)?;
    let package_file = work.path().join("fabkv.tar.gz");
    std::fs::write(&package_file, &bytes)?;
    let package_id = Package::parse(&bytes)?.id;

    let lifecycle = |args: &[&str]| {
        let mut all = vec!["lifecycle", "chaincode"];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let (bin, node, admin) = (&bin, &node, &admin);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let output = peer_as(bin, node, admin, &args).await?;
            anyhow::ensure!(
                output.status.success(),
                "peer {args:?}: {}",
                text(&output.stderr)
            );
            anyhow::Ok(output)
        }
    };

    let by_user = peer(&bin, &node, &["lifecycle", "chaincode", "queryinstalled"]).await?;
    assert!(
        !by_user.status.success(),
        "a client may not list the node's packages"
    );
    assert!(
        text(&by_user.stderr).contains("access denied for _lifecycle/QueryInstalledChaincodes"),
        "{}",
        text(&by_user.stderr)
    );

    let installed = run(lifecycle(&["install", &package_file.display().to_string()])).await?;
    assert!(
        text(&installed.stderr)
            .contains(&format!("Chaincode code package identifier: {package_id}")),
        "{}",
        text(&installed.stderr)
    );
    let listed = run(lifecycle(&["queryinstalled"])).await?;
    assert_eq!(
        text(&listed.stdout),
        format!("Installed chaincodes on peer:\nPackage ID: {package_id}, Label: fabkv_1.0\n")
    );
    let _server = node_chaincode_server(&address, &package_id)?;

    let definition = ["-C", CHANNEL, "-n", "fabkv", "-v", "1.0", "--sequence", "1"];
    let mut approve = lifecycle(&[
        "approveformyorg",
        "-o",
        &orderer,
        "--package-id",
        &package_id,
    ]);
    approve.extend(definition.map(str::to_owned));
    run(approve).await?;
    let mut readiness = lifecycle(&["checkcommitreadiness", "-O", "json"]);
    readiness.extend(definition.map(str::to_owned));
    let ready: serde_json::Value = serde_json::from_slice(&run(readiness).await?.stdout)?;
    assert_eq!(ready["approvals"][&node.config().msp_id], true, "{ready}");
    let mut commit = lifecycle(&["commit", "-o", &orderer, "--peerAddresses", &orderer]);
    commit.extend(definition.map(str::to_owned));
    run(commit).await?;
    let committed = run(lifecycle(&["querycommitted", "-C", CHANNEL, "-n", "fabkv"])).await?;
    assert_eq!(
        text(&committed.stdout),
        format!(
            "Committed chaincode definition for chaincode 'fabkv' on channel '{CHANNEL}':\n\
             Version: 1.0, Sequence: 1, Endorsement Plugin: escc, Validation Plugin: vscc, \
             Approvals: [{}: true]\n",
            node.config().msp_id
        )
    );
    let listed = run(lifecycle(&["queryinstalled", "-O", "json"])).await?;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(
        listed["installed_chaincodes"][0]["references"][CHANNEL]["chaincodes"][0]["name"], "fabkv",
        "{listed}"
    );

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
            "fabkv",
            "-c",
            r#"{"Args":["put","served","by fabric's lifecycle"]}"#,
            "--waitForEvent",
        ],
    )
    .await?;
    assert!(invoked.status.success(), "{}", text(&invoked.stderr));
    assert_eq!(
        node.query_text("fabkv", &["get", "served"]).await?,
        "by fabric's lifecycle"
    );
    Ok(())
}
