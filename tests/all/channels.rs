//! Channels: each created with a genesis configuration block (`common.Config` with the node's
//! organizations, policies and ACLs), listed and read through `cscc`, and served by what its
//! own configuration block says, also after a restart.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use ccvm::channel::{ChannelConfig, config_of_envelope};
use ccvm::client::{Client, ClientError};
use ccvm::msp::Identity;
use ccvm::msp::dev_org::DevOrganization;
use ccvm::node::{CSCC, LIFECYCLE, QSCC};
use ccvm::proto::Message;
use ccvm::proto::common::{
    Block, BlockMetadataIndex, Config, Envelope, Metadata, OrdererBlockMetadata,
};
use ccvm::proto::protos::ChannelQueryResponse;
use tonic::Code;

use crate::harness::{
    CHANNEL, LifecycleDefinition, TestNode, ccaas_package, node_chaincode_server, rust_chaincode,
    to_args, user_identity,
};

/// The configuration in a channel's genesis block.
fn config_in(block: &Block) -> Result<Config> {
    let envelope = block
        .data
        .as_ref()
        .and_then(|data| data.data.first())
        .context("the block holds a transaction")?;
    Ok(config_of_envelope(&Envelope::decode(envelope.as_slice())?)?)
}

/// The number of the latest configuration block that `block`'s metadata names.
fn last_config_of(block: &Block) -> Result<u64> {
    let signatures = &block.metadata.as_ref().context("metadata")?.metadata
        [BlockMetadataIndex::Signatures as usize];
    let orderer =
        OrdererBlockMetadata::decode(Metadata::decode(signatures.as_slice())?.value.as_slice())?;
    Ok(orderer.last_config.context("a last config")?.index)
}

async fn channels_of(client: &Client) -> Result<Vec<String>> {
    let answer = client
        .query("", CSCC, to_args(&["GetChannels"]), HashMap::new())
        .await?;
    Ok(ChannelQueryResponse::decode(answer.payload.as_slice())?
        .channels
        .into_iter()
        .map(|channel| channel.channel_id)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_starts_mychannel_with_its_configuration_block() -> Result<()> {
    let node = TestNode::start().await?;
    let genesis = Block::decode(
        node.query_bytes(QSCC, to_args(&["GetBlockByNumber", CHANNEL, "0"]))
            .await?
            .payload
            .as_slice(),
    )?;
    let config = ChannelConfig::from_proto(&config_in(&genesis)?)?;
    let msp_ids: Vec<&str> = config
        .organizations
        .iter()
        .map(|org| org.msp_id.as_str())
        .collect();
    assert_eq!(msp_ids, [node.config().msp_id.as_str()]);
    assert_eq!(
        config.acls.get("qscc/GetChainInfo").map(String::as_str),
        Some("/Channel/Application/Readers")
    );
    assert_eq!(
        config.orderers[0].endpoints,
        [node.inner().peer_addr().to_string()]
    );
    assert_eq!(last_config_of(&genesis)?, 0);

    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let committed = node.invoke("kv", &["put", "k", "v"]).await?;
    assert_eq!(committed.block, 1, "block 0 is the configuration");
    let block = Block::decode(
        node.query_bytes(QSCC, to_args(&["GetBlockByNumber", CHANNEL, "1"]))
            .await?
            .payload
            .as_slice(),
    )?;
    assert_eq!(
        last_config_of(&block)?,
        0,
        "every block names its configuration"
    );

    let config_block = node
        .query_bytes(CSCC, to_args(&["GetConfigBlock", CHANNEL]))
        .await?;
    assert_eq!(Block::decode(config_block.payload.as_slice())?, genesis);
    let channel_config = node
        .query_bytes(CSCC, to_args(&["GetChannelConfig", CHANNEL]))
        .await?;
    assert_eq!(
        Config::decode(channel_config.payload.as_slice())?,
        config_in(&genesis)?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_channels_that_keep_their_state_apart() -> Result<()> {
    let mut node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;

    let genesis = Block::decode(
        node.admin()
            .await?
            .create_channel("second")
            .await?
            .as_slice(),
    )?;
    assert_eq!(genesis.header.as_ref().context("a header")?.number, 0);
    assert_eq!(
        config_in(&genesis)?
            .channel_group
            .context("a channel group")?
            .groups
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["Application", "Orderer"].into()
    );

    node.invoke("kv", &["put", "color", "blue"]).await?;
    let on_second = node
        .client
        .invoke(
            "second",
            "kv",
            to_args(&["put", "color", "green"]),
            HashMap::new(),
        )
        .await?;
    assert_eq!(on_second.block, 1);
    let read = |channel: &'static str| {
        let client = &node.client;
        async move {
            let answer = client
                .query(channel, "kv", to_args(&["get", "color"]), HashMap::new())
                .await?;
            anyhow::Ok(String::from_utf8(answer.payload)?)
        }
    };
    assert_eq!(read(CHANNEL).await?, "blue");
    assert_eq!(read("second").await?, "green");
    assert_eq!(channels_of(&node.client).await?, [CHANNEL, "second"]);

    node.restart().await?;
    assert_eq!(channels_of(&node.client).await?, [CHANNEL, "second"]);
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let client = &node.client;
    let answer = client
        .query("second", "kv", to_args(&["get", "color"]), HashMap::new())
        .await?;
    assert_eq!(answer.payload, b"green");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_channel_needs_an_admin_a_valid_name_and_a_new_one() -> Result<()> {
    let node = TestNode::start().await?;
    let addr = node.inner().peer_addr().to_string();

    let mut as_user = ccvm::client::Admin::connect(&addr, user_identity(node.config())?).await?;
    let refused = as_user
        .create_channel("usermade")
        .await
        .expect_err("a client is not an admin");
    let ClientError::Rpc(status) = refused else {
        bail!("refused without an RPC status: {refused}");
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("access denied for ccvm/Admin"),
        "{status:?}"
    );

    let mut admin = node.admin().await?;
    for (name, code) in [
        ("Bad_Name", Code::InvalidArgument),
        (CHANNEL, Code::AlreadyExists),
    ] {
        let refused = admin.create_channel(name).await.expect_err(name);
        let ClientError::Rpc(status) = refused else {
            bail!("{name} refused without an RPC status: {refused}");
        };
        assert_eq!(status.code(), code, "{name}: {status:?}");
    }
    assert_eq!(channels_of(&node.client).await?, [CHANNEL]);

    let elsewhere = tempfile::tempdir()?;
    let other_org = DevOrganization::at(elsewhere.path());
    other_org.create_if_absent("Org9MSP")?;
    let outsider =
        Client::connect(&addr, Identity::load(&other_org.user_msp_dir(), "Org9MSP")?).await?;
    let refused = channels_of(&outsider)
        .await
        .expect_err("an outsider may not list the node's channels");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("access denied: MSP Org9MSP is not an organization of this channel"),
        "{refused}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_is_guarded_by_the_acls_of_its_own_configuration() -> Result<()> {
    let mut node = TestNode::start().await?;
    node.admin().await?.create_channel("before").await?;
    node.restart_with(|config| {
        config.acls.insert(
            "qscc/GetChainInfo".to_owned(),
            "/Channel/Application/Admins".to_owned(),
        );
    })
    .await?;
    node.admin().await?.create_channel("after").await?;

    let user = Client::connect(
        &node.inner().peer_addr().to_string(),
        user_identity(node.config())?,
    )
    .await?;
    let chain_info = |channel: &'static str| {
        user.query(
            channel,
            QSCC,
            to_args(&["GetChainInfo", channel]),
            HashMap::new(),
        )
    };
    for channel in [CHANNEL, "before"] {
        chain_info(channel)
            .await
            .with_context(|| format!("a client reads the chain of {channel}"))?;
    }
    let refused = chain_info("after")
        .await
        .expect_err("the new channel's ACL keeps clients out");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("access denied for qscc/GetChainInfo")
            && refused.contains("/Channel/Application/Admins"),
        "{refused}"
    );
    assert_eq!(channels_of(&user).await?, ["after", "before", CHANNEL]);
    Ok(())
}

/// Submits three transactions putting `key`0..2 on `channel`: one, then two more 300 ms later;
/// the block each was committed in.
async fn blocks_of_staggered_puts(node: &TestNode, channel: &str) -> Result<Vec<u64>> {
    let client = &node.client;
    let mut endorsed = Vec::new();
    for n in 0..3 {
        let proposal = client.proposal(
            channel,
            "kv",
            to_args(&["put", &format!("k{n}"), "v"]),
            HashMap::new(),
        );
        let response = client.endorse(&proposal).await?;
        endorsed.push((proposal, response));
    }
    let (first, rest) = endorsed.split_first().context("three endorsements")?;
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        futures_util::future::join_all(rest.iter().map(|(p, r)| client.submit(p, r))).await
    };
    let (first, rest) = tokio::join!(client.submit(&first.0, &first.1), later);
    let mut blocks = vec![first?.block_number];
    for submitted in rest {
        blocks.push(submitted?.block_number);
    }
    Ok(blocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_cuts_its_blocks_as_its_own_configuration_says() -> Result<()> {
    let mut node = TestNode::start().await?;
    node.restart_with(|config| {
        config.commit.batch_timeout_ms = 2000;
        config.commit.max_block_txs = 3;
    })
    .await?;
    let genesis = Block::decode(
        node.admin()
            .await?
            .create_channel("batched")
            .await?
            .as_slice(),
    )?;
    let batching = ChannelConfig::from_proto(&config_in(&genesis)?)?.batching;
    assert_eq!(
        (batching.max_message_count, batching.timeout),
        (3, std::time::Duration::from_secs(2))
    );
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;

    let batched = blocks_of_staggered_puts(&node, "batched").await?;
    assert_eq!(
        batched,
        [1, 1, 1],
        "the first transaction waited for the two sent 300 ms later"
    );
    let unbatched = blocks_of_staggered_puts(&node, CHANNEL).await?;
    assert!(
        unbatched[0] < unbatched[1],
        "mychannel cuts at once, as it was configured: {unbatched:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_larger_than_its_channels_absolute_max_bytes_is_refused() -> Result<()> {
    let mut node = TestNode::start_with(|config| config.max_recv_message_bytes = 64 * 1024).await?;
    node.restart_with(|config| config.max_recv_message_bytes = 4 * 1024 * 1024)
        .await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let big = "x".repeat(128 * 1024);
    let refused = node
        .invoke("kv", &["put", "big", &big])
        .await
        .expect_err("larger than the channel's AbsoluteMaxBytes");
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("exceeds maximum allowed 65536 bytes"),
        "{refused}"
    );
    assert!(
        node.query("kv", &["get", "big"]).await?.payload.is_empty(),
        "nothing was written"
    );
    node.invoke("kv", &["put", "small", "fits"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_defined_only_on_a_new_channel_runs_there() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    node.admin().await?.create_channel("second").await?;
    let address = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let connection = serde_json::json!({"address": address, "dial_timeout": "10s"});
    let package = ccaas_package("secondkv_1.0", &connection)?;
    let package_id = node.inner().packages().install(&package)?.id;
    let _server = node_chaincode_server(&address, &package_id)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the chaincode server never listened on {address}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let definition = LifecycleDefinition::first("secondkv", &package_id);
    for args in [definition.approve(), definition.commit()] {
        node.client
            .invoke("second", LIFECYCLE, args, HashMap::new())
            .await?;
    }
    node.client
        .invoke(
            "second",
            "secondkv",
            to_args(&["put", "k", "on second"]),
            HashMap::new(),
        )
        .await?;
    let read = node
        .client
        .query("second", "secondkv", to_args(&["get", "k"]), HashMap::new())
        .await?;
    assert_eq!(read.payload, b"on second");
    Ok(())
}
