//! Fabric's discovery service on the client port: what it tells a channel's members (the
//! organizations, the node as orderer and peer, the endorsers of a chaincode), what it refuses
//! to anyone else, and Fabric's older Node SDK submitting with discovery on.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ccvm::msp::Identity;
use ccvm::msp::dev_org::{DevCa, Validity};
use ccvm::node::{MAX_DISCOVERY_QUERIES, dev_organization};
use ccvm::proto::Message;
use ccvm::proto::common::BlockchainInfo;
use ccvm::proto::discovery::discovery_client::DiscoveryClient;
use ccvm::proto::discovery::query::Query as QueryKind;
use ccvm::proto::discovery::query_result::Result as QueryAnswer;
use ccvm::proto::discovery::{
    AuthInfo, ChaincodeCall, ChaincodeInterest, ChaincodeQuery, ConfigQuery, LocalPeerQuery,
    PeerMembershipQuery, Query, Request as DiscoveryRequest, SignedRequest,
};
use ccvm::proto::gossip::GossipMessage;
use ccvm::proto::gossip::gossip_message::Content;
use ccvm::proto::msp::SerializedIdentity;
use tempfile::TempDir;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{
    CHANNEL, TestNode, admin_identity, node_chaincode, node_client, user_identity,
};

fn query(channel: &str, kind: QueryKind) -> Query {
    Query {
        channel: channel.to_owned(),
        query: Some(kind),
    }
}

fn chaincode_query(names: &[&str]) -> QueryKind {
    QueryKind::CcQuery(ChaincodeQuery {
        interests: vec![ChaincodeInterest {
            chaincodes: names
                .iter()
                .map(|name| ChaincodeCall {
                    name: (*name).to_owned(),
                    ..Default::default()
                })
                .collect(),
        }],
    })
}

/// `queries` signed by `identity`, as Fabric's SDKs send them.
fn signed(identity: &Identity, queries: Vec<Query>) -> SignedRequest {
    let payload = DiscoveryRequest {
        authentication: Some(AuthInfo {
            client_identity: identity.serialized(),
            client_tls_cert_hash: Vec::new(),
        }),
        queries,
    }
    .encode_to_vec();
    SignedRequest {
        signature: identity.sign(&payload),
        payload,
    }
}

async fn discover(node: &TestNode, request: SignedRequest) -> Result<Vec<QueryAnswer>> {
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let response = DiscoveryClient::new(channel).discover(request).await?;
    response
        .into_inner()
        .results
        .into_iter()
        .map(|result| result.result.context("a query result holds an answer"))
        .collect()
}

fn refusal(answer: &QueryAnswer) -> Option<&str> {
    match answer {
        QueryAnswer::Error(error) => Some(&error.content),
        _ => None,
    }
}

/// A member of an organization of the node's MSP id that the node does not trust: its own CA.
fn outsider(msp_id: &str) -> Result<(TempDir, Identity)> {
    let dir = tempfile::tempdir()?;
    let ca = DevCa::create(msp_id)?;
    let issued = ca.issue(
        "mallory",
        &["client"],
        Validity::from_now(Duration::from_secs(3600)),
    )?;
    ca.write_member_msp(dir.path(), &issued)?;
    let identity = Identity::load(dir.path(), msp_id)?;
    Ok((dir, identity))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_tells_a_member_the_organizations_the_orderer_and_the_endorsers() -> Result<()> {
    let node = TestNode::start().await?;
    let _chaincode = node_chaincode(&node, "shim-kv.js", "disckv")?;
    node.wait_registered("disckv").await?;
    node.invoke("disckv", &["put", "k", "v"]).await?;
    let msp_id = node.config().msp_id.clone();
    let port = node.inner().peer_addr().port();

    let answers = discover(
        &node,
        signed(
            &user_identity(node.config())?,
            vec![
                query(CHANNEL, QueryKind::ConfigQuery(ConfigQuery {})),
                query(
                    CHANNEL,
                    QueryKind::PeerQuery(PeerMembershipQuery::default()),
                ),
                query(CHANNEL, chaincode_query(&["disckv"])),
                query(CHANNEL, chaincode_query(&["nowhere"])),
            ],
        ),
    )
    .await?;
    let [config, members, endorsers, unknown] = answers.as_slice() else {
        bail!("one answer per query: {answers:?}");
    };

    let QueryAnswer::ConfigResult(config) = config else {
        bail!("a config result: {config:?}");
    };
    let org = config
        .msps
        .get(&msp_id)
        .context("the node's organization")?;
    assert!(
        org.root_certs[0].starts_with(b"-----BEGIN CERTIFICATE-----"),
        "root certificates in PEM"
    );
    assert!(!org.tls_root_certs.is_empty(), "TLS roots from tlscacerts/");
    assert!(org.fabric_node_ous.as_ref().is_some_and(|ous| ous.enable));
    let orderer = &config.orderers.get(&msp_id).context("an orderer")?.endpoint;
    assert_eq!(
        (orderer[0].host.as_str(), orderer[0].port),
        ("127.0.0.1", u32::from(port)),
        "the node orders on its client port"
    );

    let QueryAnswer::Members(members) = members else {
        bail!("a membership result: {members:?}");
    };
    let peer = &members.peers_by_org[&msp_id].peers[0];
    let identity = SerializedIdentity::decode(peer.identity.as_slice())?;
    assert_eq!(identity.mspid, msp_id);
    let alive = GossipMessage::decode(
        peer.membership_info
            .as_ref()
            .context("membership info")?
            .payload
            .as_slice(),
    )?;
    let Some(Content::AliveMsg(alive)) = alive.content else {
        bail!("an alive message: {alive:?}");
    };
    assert_eq!(
        alive.membership.context("a member")?.endpoint,
        format!("127.0.0.1:{port}")
    );
    let state = GossipMessage::decode(
        peer.state_info
            .as_ref()
            .context("state info")?
            .payload
            .as_slice(),
    )?;
    let Some(Content::StateInfo(state)) = state.content else {
        bail!("a state info message: {state:?}");
    };
    let properties = state.properties.context("properties")?;
    let chain = node.query("qscc", &["GetChainInfo", CHANNEL]).await?;
    assert_eq!(
        properties.ledger_height,
        BlockchainInfo::decode(chain.payload.as_slice())?.height
    );
    assert!(
        properties.chaincodes.iter().any(|cc| cc.name == "disckv"),
        "the peer serves the chaincode: {properties:?}"
    );

    let QueryAnswer::CcQueryRes(endorsers) = endorsers else {
        bail!("an endorsement plan: {endorsers:?}");
    };
    let plan = &endorsers.content[0];
    assert_eq!(plan.chaincode, "disckv");
    assert_eq!(plan.layouts[0].quantities_by_group["G0"], 1);
    assert_eq!(plan.endorsers_by_groups["G0"].peers.len(), 1);
    assert!(
        refusal(unknown).is_some_and(
            |text| text.contains("chaincode nowhere") && text.contains("does not serve it")
        ),
        "{unknown:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_outsiders_unknown_channels_and_unsigned_requests() -> Result<()> {
    let node = TestNode::start().await?;
    let msp_id = node.config().msp_id.clone();
    let config_query = || query(CHANNEL, QueryKind::ConfigQuery(ConfigQuery {}));

    let (_dir, mallory) = outsider(&msp_id)?;
    let answers = discover(&node, signed(&mallory, vec![config_query()])).await?;
    assert_eq!(refusal(&answers[0]), Some("access denied"), "{answers:?}");

    let user = user_identity(node.config())?;
    let mut forged = signed(&user, vec![config_query()]);
    forged.signature = signed(&user, Vec::new()).signature;
    let answers = discover(&node, forged).await?;
    assert_eq!(
        refusal(&answers[0]),
        Some("access denied"),
        "a bad signature"
    );

    let answers = discover(
        &node,
        signed(
            &user,
            vec![query("nochannel", QueryKind::ConfigQuery(ConfigQuery {}))],
        ),
    )
    .await?;
    assert_eq!(refusal(&answers[0]), Some("access denied"), "{answers:?}");

    let local = || query("", QueryKind::LocalPeers(LocalPeerQuery {}));
    let answers = discover(&node, signed(&user, vec![local()])).await?;
    assert_eq!(
        refusal(&answers[0]),
        Some("access denied"),
        "only an admin asks about the peer itself"
    );
    let answers = discover(
        &node,
        signed(&admin_identity(node.config())?, vec![local()]),
    )
    .await?;
    let QueryAnswer::Members(members) = &answers[0] else {
        bail!("the admin is told the local peer: {answers:?}");
    };
    assert!(members.peers_by_org[&msp_id].peers[0].state_info.is_none());

    let anonymous = SignedRequest {
        payload: DiscoveryRequest {
            authentication: None,
            queries: vec![config_query()],
        }
        .encode_to_vec(),
        signature: Vec::new(),
    };
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let refused = DiscoveryClient::new(channel.clone())
        .discover(anonymous)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("no authentication info"),
        "{refused}"
    );
    let garbage = SignedRequest {
        payload: vec![0xff, 0xff],
        signature: Vec::new(),
    };
    let refused = DiscoveryClient::new(channel.clone())
        .discover(garbage)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    let flood = signed(&user, vec![config_query(); MAX_DISCOVERY_QUERIES + 1]);
    let refused = DiscoveryClient::new(channel)
        .discover(flood)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
    assert!(
        refused.message().contains("queries in one request"),
        "{refused}"
    );

    let answers = discover(&node, signed(&user, vec![config_query()])).await?;
    assert!(
        matches!(answers[0], QueryAnswer::ConfigResult(_)),
        "the node keeps serving: {answers:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_older_node_sdk_submits_with_discovery_on() -> Result<()> {
    let node = TestNode::start().await?;
    submits_with_discovery_on(&node, &[]).await
}

/// Over TLS the SDK dials each discovered peer and orderer with the TLS roots discovery gave
/// for its organization, checking the certificate against the advertised host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_older_node_sdk_submits_with_discovery_on_over_tls() -> Result<()> {
    let node = TestNode::start_with(|config| config.tls.enabled = Some(true)).await?;
    let tls_ca = dev_organization(&node.config().data_dir).tls_ca_cert();
    let tls_ca = tls_ca.to_str().context("a UTF-8 path")?;
    submits_with_discovery_on(&node, &[("TLS_CA", tls_ca)]).await
}

async fn submits_with_discovery_on(node: &TestNode, env: &[(&str, &str)]) -> Result<()> {
    let _chaincode = node_chaincode(node, "shim-kv.js", "sdkdisc")?;
    node.wait_registered("sdkdisc").await?;
    node.invoke("sdkdisc", &["put", "first", "block"]).await?;
    let user = dev_organization(&node.config().data_dir).user_msp_dir();
    let seen = node_client(
        "sdk-discovery.js",
        node,
        &user,
        &node.config().msp_id,
        "sdkdisc",
        env,
    )
    .await?;
    assert_eq!(seen["submit"]["ok"], true, "{seen}");
    assert_eq!(seen["evaluate"]["value"], "by discovery", "{seen}");
    let port = node.inner().peer_addr().port();
    assert_eq!(
        seen["committers"][0],
        format!("127.0.0.1:{port}"),
        "the orderer came from discovery: {seen}"
    );
    assert_eq!(seen["unknown"]["ok"], false, "{seen}");
    assert_eq!(
        node.query_text("sdkdisc", &["get", "found"]).await?,
        "by discovery"
    );
    Ok(())
}
