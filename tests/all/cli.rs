//! The `ccvm` binary against a running node: system chaincodes listed, reloaded and queried by
//! name like any other chaincode.

use std::process::Output;

use anyhow::Result;
use base64::Engine;
use ccvm::msp::dev_org::DevOrganization;
use ccvm::node::{LIFECYCLE, QSCC, dev_organization};
use ccvm::policy::SignaturePolicy;
use ccvm::proto::Message;
use ccvm::proto::common::{Block, BlockchainInfo};
use ccvm::proto::protos::{ApplicationPolicy, application_policy};

use crate::harness::{CHANNEL, TestNode, run_ccvm as ccvm, rust_chaincode, wasm_example};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scc_list_reload_and_query_through_the_command_line() -> Result<()> {
    let node = TestNode::start().await?;
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();

    let listed = ccvm(&["scc", "list", "--peer", &peer, "--data-dir", &data_dir]).await?;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    for name in [LIFECYCLE, QSCC] {
        let line = text
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed in {text}"));
        assert!(line.contains("idle") && line.contains("built-in"), "{line}");
    }

    let args = r#"{"Args":["QueryChaincodeDefinitions"]}"#;
    let query = ccvm(&[
        "chaincode",
        "query",
        "--peer",
        &peer,
        "--data-dir",
        &data_dir,
        "-C",
        CHANNEL,
        "-n",
        LIFECYCLE,
        "-c",
        args,
    ])
    .await?;
    assert!(query.status.success(), "{}", stderr(&query));
    assert_eq!(
        stdout(&query).trim(),
        "",
        "no definitions: an empty QueryChaincodeDefinitionsResult"
    );

    let listed = stdout(&ccvm(&["scc", "list", "--peer", &peer, "--data-dir", &data_dir]).await?);
    assert!(
        listed
            .lines()
            .any(|line| line.starts_with(LIFECYCLE) && line.contains("running")),
        "{listed}"
    );

    let reloaded = ccvm(&[
        "scc",
        "reload",
        LIFECYCLE,
        "--peer",
        &peer,
        "--data-dir",
        &data_dir,
    ])
    .await?;
    assert!(reloaded.status.success(), "{}", stderr(&reloaded));
    assert_eq!(stdout(&reloaded).trim(), format!("reloaded {LIFECYCLE}"));
    assert_eq!(node.inner().inproc().instances_started(), 2);

    let unknown = ccvm(&[
        "scc",
        "reload",
        "nothing",
        "--peer",
        &peer,
        "--data-dir",
        &data_dir,
    ])
    .await?;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no system chaincode nothing"),
        "{}",
        stderr(&unknown)
    );
    Ok(())
}

/// The operator commands sign as an admin of the node's organization: the admin of another
/// organization, even one that calls itself by the node's MSP id, is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_of_an_outsider_are_refused() -> Result<()> {
    let node = TestNode::start().await?;
    let peer = node.inner().peer_addr().to_string();
    let outsider = tempfile::tempdir()?;
    let org = ccvm::msp::dev_org::DevOrganization::at(outsider.path());
    org.create_if_absent("DevMSP")?;
    let msp_dir = org.admin_msp_dir().display().to_string();

    let refused = ccvm(&[
        "scc",
        "reload",
        LIFECYCLE,
        "--peer",
        &peer,
        "--mspconfigpath",
        &msp_dir,
    ])
    .await?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("access denied: the certificate of this DevMSP identity is not signed by a CA of the MSP"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        node.inner().inproc().instances_started(),
        0,
        "nothing reloaded"
    );
    Ok(())
}

/// A node whose process may not reserve the address space of its instance pool (here under
/// `ulimit -v`) stops at once with an error that says how much it needed and what to lower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_address_space_for_its_pool_says_what_to_lower() -> Result<()> {
    let data = tempfile::tempdir()?;
    let start = format!(
        "ulimit -v 8388608 && exec {} node start --dev --data-dir {} --listen 127.0.0.1:0 \
         --chaincode-listen 127.0.0.1:0",
        env!("CARGO_BIN_EXE_ccvm"),
        data.path().display()
    );
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .args(["-c", &start])
            .env("CCVM_LOG", "warn")
            .env("CCVM_INPROC__MAX_INSTANCES", "100")
            .output(),
    )
    .await??;
    assert!(!output.status.success(), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(
        error.contains("the pool for 100 instances reserves 800 GiB of address space")
            && error.contains("lower inproc.max_instances"),
        "{error}"
    );
    Ok(())
}

/// An admin service moved to a listener of its own answers there, for the CLI too, and no longer
/// on the client port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_service_can_have_a_listener_of_its_own() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.admin_listen = Some("127.0.0.1:0".to_owned());
    })
    .await?;
    let peer = node.inner().peer_addr().to_string();
    let admin = node.inner().admin_addr().to_string();
    assert_ne!(peer, admin);
    let data_dir = node.config().data_dir.display().to_string();

    let on_peer = ccvm(&["scc", "list", "--peer", &peer, "--data-dir", &data_dir]).await?;
    assert!(!on_peer.status.success());
    assert!(
        stderr(&on_peer).contains("Operation is not implemented or not supported"),
        "the client port no longer serves the admin service: {}",
        stderr(&on_peer)
    );
    let on_admin = ccvm(&[
        "scc",
        "list",
        "--peer",
        &peer,
        "--admin-address",
        &admin,
        "--data-dir",
        &data_dir,
    ])
    .await?;
    assert!(on_admin.status.success(), "{}", stderr(&on_admin));
    assert!(stdout(&on_admin).contains(QSCC), "{}", stdout(&on_admin));
    node.invoke(LIFECYCLE, &["QueryChaincodeDefinitions"])
        .await?;
    Ok(())
}

/// Runs the `ccvm` binary with `args` and Fabric's `CORE_PEER_ADDRESS` set to `peer`.
async fn ccvm_at(peer: &str, args: &[&str]) -> Result<Output> {
    Ok(tokio::process::Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(args)
        .env("CCVM_LOG", "warn")
        .env("CORE_PEER_ADDRESS", peer)
        .output()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_and_query_take_fabrics_flags_and_environment() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();
    let call = |verb: &'static str, ctor: &'static str| {
        vec![
            "chaincode",
            verb,
            "-C",
            CHANNEL,
            "-n",
            "kv",
            "-c",
            ctor,
            "--data-dir",
            data_dir.as_str(),
        ]
    };

    let mut invoke = call("invoke", r#"{"Args":["put","color","teal"]}"#);
    invoke.extend(["-o", peer.as_str(), "--waitForEvent"]);
    let invoked = ccvm_at(&peer, &invoke).await?;
    assert!(invoked.status.success(), "{}", stderr(&invoked));
    assert!(
        stderr(&invoked).contains("committed transaction"),
        "{}",
        stderr(&invoked)
    );

    let mut hex = call("query", r#"{"Args":["get","color"]}"#);
    hex.push("-x");
    let queried = ccvm_at(&peer, &hex).await?;
    assert!(queried.status.success(), "{}", stderr(&queried));
    assert_eq!(stdout(&queried), "7465616c\n");

    let mut raw = call("query", r#"{"Args":["get","color"]}"#);
    raw.push("-r");
    assert_eq!(stdout(&ccvm_at(&peer, &raw).await?), "[116 101 97 108]\n");

    let mut transient = call("query", r#"{"Args":["transient","secret"]}"#);
    transient.extend(["--transient", r#"{"secret":"aGlkZGVu"}"#]);
    let revealed = ccvm_at(&peer, &transient).await?;
    assert!(revealed.status.success(), "{}", stderr(&revealed));
    assert_eq!(stdout(&revealed), "hidden\n");

    let mut garbled = call("query", r#"{"Args":["transient","secret"]}"#);
    garbled.extend(["--transient", r#"{"secret":"not base64!"}"#]);
    let refused = ccvm_at(&peer, &garbled).await?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--transient value of secret is not base64"),
        "{}",
        stderr(&refused)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_queries_print_what_fabrics_peer_cli_prints() -> Result<()> {
    let node = TestNode::start().await?;
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();
    let msp = node.config().msp_id.clone();
    let work = tempfile::tempdir()?;
    let component = work.path().join("kv.wasm");
    std::fs::write(&component, wasm_example("kv")?)?;
    let package = work.path().join("kv.tar.gz").display().to_string();
    let package_id = stdout(
        &ccvm_at(
            &peer,
            &[
                "chaincode",
                "package",
                "--label",
                "kv_1.0",
                "--lang",
                "wasm",
                "--path",
                &component.display().to_string(),
                "-o",
                &package,
            ],
        )
        .await?,
    )
    .trim()
    .to_owned();
    ccvm_ok(&peer, &data_dir, vec!["chaincode", "install", &package]).await?;
    assert_eq!(
        ccvm_ok(&peer, &data_dir, vec!["chaincode", "queryinstalled"]).await?,
        format!("Installed chaincodes on peer:\nPackage ID: {package_id}, Label: kv_1.0\n")
    );

    let policy = format!("OR('{msp}.peer')");
    let params = ["-n", "cli-kv", "-v", "1.0", "--sequence", "1"];
    let with_policy = [&params[..], &["--signature-policy", policy.as_str()]].concat();
    let approve = [
        &["chaincode", "approveformyorg", "--package-id", &package_id][..],
        &with_policy,
    ]
    .concat();
    ccvm_ok(&peer, &data_dir, approve).await?;
    let readiness = [&["chaincode", "checkcommitreadiness"][..], &with_policy].concat();
    assert_eq!(
        ccvm_ok(&peer, &data_dir, readiness).await?,
        format!(
            "Chaincode definition for chaincode 'cli-kv', version '1.0', sequence '1' on \
             channel '{CHANNEL}' approval status by org:\n{msp}: true\n"
        ),
        "readiness compares the parameters, not the package each org chose"
    );
    let stricter = format!("AND('{msp}.peer','{msp}.admin')");
    let other_policy = [
        &["chaincode", "checkcommitreadiness"][..],
        &params,
        &["--signature-policy", &stricter, "-O", "json"],
    ]
    .concat();
    assert_eq!(
        ccvm_ok(&peer, &data_dir, other_policy).await?,
        format!("{{\n\t\"approvals\": {{\n\t\t\"{msp}\": false\n\t}}\n}}\n")
    );

    let commit = [
        &["chaincode", "commit", "--package-id", &package_id][..],
        &with_policy,
    ]
    .concat();
    ccvm_ok(&peer, &data_dir, commit).await?;
    assert_eq!(
        ccvm_ok(
            &peer,
            &data_dir,
            vec!["chaincode", "querycommitted", "-C", CHANNEL, "-n", "cli-kv"]
        )
        .await?,
        format!(
            "Committed chaincode definition for chaincode 'cli-kv' on channel '{CHANNEL}':\n\
             Version: 1.0, Sequence: 1, Endorsement Plugin: escc, Validation Plugin: vscc, \
             Approvals: [{msp}: true]\n"
        )
    );
    assert_eq!(
        ccvm_ok(
            &peer,
            &data_dir,
            vec!["chaincode", "querycommitted", "-C", CHANNEL]
        )
        .await?,
        format!(
            "Committed chaincode definitions on channel '{CHANNEL}':\nName: cli-kv, Version: \
             1.0, Sequence: 1, Endorsement Plugin: escc, Validation Plugin: vscc\n"
        )
    );
    let committed: serde_json::Value = serde_json::from_str(
        &ccvm_ok(
            &peer,
            &data_dir,
            vec!["chaincode", "querycommitted", "-n", "cli-kv", "-O", "json"],
        )
        .await?,
    )?;
    assert_eq!(committed["sequence"], 1);
    assert_eq!(committed["version"], "1.0");
    assert_eq!(committed["collections"], serde_json::json!({}));
    assert_eq!(
        committed["approvals"],
        serde_json::json!({ msp.clone(): true })
    );
    assert!(
        committed.get("init_required").is_none(),
        "false is left out"
    );
    let parameter = base64::engine::general_purpose::STANDARD.decode(
        committed["validation_parameter"]
            .as_str()
            .unwrap_or_default(),
    )?;
    let Some(application_policy::Type::SignaturePolicy(envelope)) =
        ApplicationPolicy::decode(parameter.as_slice())?.r#type
    else {
        panic!("the validation parameter is not a signature policy: {committed}");
    };
    assert_eq!(
        SignaturePolicy::from_envelope(&envelope.encode_to_vec())?,
        SignaturePolicy::parse(&policy)?
    );
    let installed: serde_json::Value = serde_json::from_str(
        &ccvm_ok(
            &peer,
            &data_dir,
            vec!["chaincode", "queryinstalled", "--output", "JSON"],
        )
        .await?,
    )?;
    assert_eq!(
        installed["installed_chaincodes"][0]["references"][CHANNEL]["chaincodes"],
        serde_json::json!([{"name": "cli-kv", "version": "1.0"}])
    );

    let missing = ccvm_at(
        &peer,
        &[
            "chaincode",
            "querycommitted",
            "-n",
            "nothing",
            "--data-dir",
            &data_dir,
        ],
    )
    .await?;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("namespace nothing is not defined"),
        "{}",
        stderr(&missing)
    );
    for (flag, policy, reason) in [
        ("--signature-policy", "AND('a.peer'", "--signature-policy"),
        (
            "--channel-config-policy",
            "Channel/Application/Admins",
            "is not a policy path",
        ),
    ] {
        let mut refused = vec!["chaincode", "approve", "--package-id", &package_id];
        refused.extend(["-n", "cli-kv", "-v", "2.0", "--sequence", "2", flag, policy]);
        refused.extend(["--data-dir", &data_dir]);
        let output = ccvm_at(&peer, &refused).await?;
        assert!(!output.status.success());
        assert!(stderr(&output).contains(reason), "{}", stderr(&output));
    }
    let unchanged = ccvm_at(
        &peer,
        &[
            "chaincode",
            "checkcommitreadiness",
            "-n",
            "cli-kv",
            "-v",
            "2.0",
            "--sequence",
            "2",
            "-O",
            "json",
            "--data-dir",
            &data_dir,
        ],
    )
    .await?;
    assert_eq!(
        stdout(&unchanged),
        "{}\n",
        "the refused approvals submitted nothing"
    );
    Ok(())
}

/// Runs the `ccvm` binary against `peer` as the development admin of `data_dir`; its stdout, or
/// an error with its stderr.
async fn ccvm_ok(peer: &str, data_dir: &str, mut args: Vec<&str>) -> Result<String> {
    args.extend(["--data-dir", data_dir]);
    let output = ccvm_at(peer, &args).await?;
    anyhow::ensure!(
        output.status.success(),
        "ccvm {args:?}: {}",
        stderr(&output)
    );
    Ok(stdout(&output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_getinfo_and_fetch_read_the_chain_as_fabrics_peer_cli_does() -> Result<()> {
    let node = TestNode::start().await?;
    let peer = node.inner().peer_addr().to_string();
    let data_dir = node.config().data_dir.display().to_string();
    for _ in 0..2 {
        node.invoke(LIFECYCLE, &["QueryChaincodeDefinitions"])
            .await?;
    }
    let info = node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    let info = BlockchainInfo::decode(info.payload.as_slice())?;
    anyhow::ensure!(info.height >= 2, "two blocks committed: {info:?}");

    let printed = ccvm_ok(&peer, &data_dir, vec!["channel", "getinfo", "-c", CHANNEL]).await?;
    let json = printed
        .strip_prefix("Blockchain info: ")
        .ok_or_else(|| anyhow::anyhow!("{printed}"))?;
    let json: serde_json::Value = serde_json::from_str(json)?;
    assert_eq!(json["height"], info.height);
    let base64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        base64.decode(json["currentBlockHash"].as_str().unwrap_or_default())?,
        info.current_block_hash
    );
    assert_eq!(
        base64.decode(json["previousBlockHash"].as_str().unwrap_or_default())?,
        info.previous_block_hash
    );

    let work = tempfile::tempdir()?;
    let newest = work.path().join("newest.block");
    let newest_path = newest.display().to_string();
    ccvm_ok(
        &peer,
        &data_dir,
        vec!["channel", "fetch", "newest", &newest_path, "-c", CHANNEL],
    )
    .await?;
    let block = Block::decode(std::fs::read(&newest)?.as_slice())?;
    assert_eq!(
        block.header.map(|header| header.number),
        Some(info.height - 1)
    );

    let oldest = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["channel", "fetch", "oldest", "-c", CHANNEL])
        .args(["--peer", &peer, "--data-dir", &data_dir])
        .current_dir(work.path())
        .env("CCVM_LOG", "warn")
        .output()
        .await?;
    assert!(oldest.status.success(), "{}", stderr(&oldest));
    assert!(
        stderr(&oldest).contains("Received block: 0"),
        "{}",
        stderr(&oldest)
    );
    let first =
        Block::decode(std::fs::read(work.path().join("mychannel_oldest.block"))?.as_slice())?;
    assert_eq!(first.header.map(|header| header.number), Some(0));

    let config = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccvm"))
        .args(["channel", "fetch", "config", "-c", CHANNEL])
        .args(["--peer", &peer, "--data-dir", &data_dir])
        .current_dir(work.path())
        .env("CCVM_LOG", "warn")
        .output()
        .await?;
    assert!(config.status.success(), "{}", stderr(&config));
    let config_block =
        Block::decode(std::fs::read(work.path().join("mychannel_config.block"))?.as_slice())?;
    assert_eq!(
        config_block.header.map(|header| header.number),
        Some(0),
        "block 0 is the configuration"
    );

    for (which, reason) in [
        ("banana", "is not newest, oldest, config or a block number"),
        ("999", "no block 999"),
    ] {
        let refused = ccvm_at(
            &peer,
            &[
                "channel",
                "fetch",
                which,
                "-c",
                CHANNEL,
                "--data-dir",
                &data_dir,
            ],
        )
        .await?;
        assert!(!refused.status.success());
        assert!(
            stderr(&refused).contains(reason),
            "{which}: {}",
            stderr(&refused)
        );
    }
    Ok(())
}

/// `--peerAddresses` given twice: the invoke carries an endorsement of each node, which a
/// channel of two organizations needs under its default `MAJORITY Endorsement`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_collects_an_endorsement_from_each_peer_address() -> Result<()> {
    let org2_dir = tempfile::tempdir()?;
    let org2 = DevOrganization::at(org2_dir.path());
    org2.create_if_absent("Org2MSP")?;
    let first = TestNode::start_with(|config| {
        config
            .organizations
            .insert("Org2MSP".to_owned(), org2.msp_dir());
    })
    .await?;
    let dev_msp = dev_organization(&first.config().data_dir).msp_dir();
    let second = TestNode::start_for(&org2, "Org2MSP", |config| {
        config.organizations.insert("DevMSP".to_owned(), dev_msp);
    })
    .await?;
    let _first_kv = rust_chaincode(&first, "kv", "kv")?;
    let _second_kv = rust_chaincode(&second, "kv", "kv")?;
    first.wait_registered("kv").await?;
    second.wait_registered("kv").await?;
    let (a, b) = (
        first.inner().peer_addr().to_string(),
        second.inner().peer_addr().to_string(),
    );
    let data_dir = first.config().data_dir.display().to_string();
    let invoke = |ctor: &'static str| {
        vec![
            "chaincode",
            "invoke",
            "-C",
            CHANNEL,
            "-n",
            "kv",
            "-c",
            ctor,
            "--data-dir",
            data_dir.as_str(),
        ]
    };

    let refused = ccvm_at(&a, &invoke(r#"{"Args":["put","k","alone"]}"#)).await?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("ENDORSEMENT_POLICY_FAILURE"),
        "one endorsement of two organizations: {}",
        stderr(&refused)
    );

    let mut both = invoke(r#"{"Args":["put","k","both"]}"#);
    both.extend(["--peerAddresses", &a, "--peerAddresses", &b]);
    let invoked = ccvm_at(&a, &both).await?;
    assert!(invoked.status.success(), "{}", stderr(&invoked));
    assert_eq!(first.query_text("kv", &["get", "k"]).await?, "both");

    // Only the first node committed that transaction, so the two read k at different versions.
    let mut differing = invoke(r#"{"Args":["bump","k"]}"#);
    differing.extend(["--peerAddresses", &a, "--peerAddresses", &b]);
    let refused = ccvm_at(&a, &differing).await?;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("ProposalResponsePayloads do not match"),
        "{}",
        stderr(&refused)
    );
    Ok(())
}
