//! Fabric's client services on the node's client port: `gateway.Gateway` driven by Fabric's own
//! Gateway client (`@hyperledger/fabric-gateway`), `orderer.AtomicBroadcast`, and their refusals.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use ccvm::client::TxProposal;
use ccvm::msp::Identity;
use ccvm::msp::dev_org::DevOrganization;
use ccvm::node::{QSCC, dev_organization};
use ccvm::proto::Message;
use ccvm::proto::common::{
    ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader, Status as BlockStatus,
};
use ccvm::proto::gateway::gateway_client::GatewayClient;
use ccvm::proto::gateway::{
    ChaincodeEventsRequest, CommitStatusRequest, CommitStatusResponse, EvaluateRequest,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest,
};
use ccvm::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ccvm::proto::protos::TxValidationCode;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{
    CHANNEL, TestNode, deploy_wasm, docker_endpoint, docker_node_with, node_chaincode, node_client,
    rust_chaincode, to_args,
};

/// Runs `scenario` of `gateway.js` on `chaincode` as the node's development user.
async fn gateway_client(node: &TestNode, chaincode: &str, scenario: &str) -> Result<Value> {
    let user = dev_organization(&node.config().data_dir).user_msp_dir();
    node_client(
        "gateway.js",
        node,
        &user,
        &node.config().msp_id,
        chaincode,
        &[("SCENARIO", scenario)],
    )
    .await
}

async fn gateway(node: &TestNode) -> Result<GatewayClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    Ok(GatewayClient::new(channel))
}

/// The checks of the `flow` scenario, the same for every kind of chaincode.
fn assert_flow(flow: &Value, node: &TestNode) {
    assert_eq!(flow["submit"]["ok"], true, "{flow}");
    assert_eq!(flow["evaluate"]["value"], "v1", "{flow}");
    let submitted = &flow["async"]["value"];
    assert_eq!(submitted["code"], TxValidationCode::Valid as i32, "{flow}");
    assert_eq!(submitted["successful"], true, "{flow}");
    assert!(submitted["block"].as_u64() > Some(0), "{flow}");
    assert_eq!(flow["afterAsync"]["value"], "v2", "{flow}");

    let conflict = &flow["conflict"]["value"];
    assert_eq!(conflict[0]["successful"], true, "{flow}");
    assert_eq!(
        conflict[1]["code"],
        TxValidationCode::MvccReadConflict as i32,
        "the second of two endorsements read before the first committed: {flow}"
    );
    assert_eq!(conflict[1]["successful"], false, "{flow}");

    let evaluated = &flow["evaluateFailure"]["error"];
    assert_eq!(evaluated["code"], Code::Unknown as i32, "{flow}");
    let message = evaluated["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("evaluate call to endorser returned error: chaincode response 500")
            && message.contains("no such thing"),
        "{message}"
    );
    let detail = &evaluated["details"][0];
    assert_eq!(detail["mspId"], node.config().msp_id.as_str(), "{flow}");
    assert_eq!(
        detail["address"],
        node.inner().peer_addr().to_string(),
        "{flow}"
    );
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("chaincode response 500") && m.contains("no such thing")),
        "{flow}"
    );

    let endorsed = &flow["submitFailure"]["error"];
    assert_eq!(endorsed["name"], "EndorseError", "{flow}");
    assert_eq!(endorsed["code"], Code::Aborted as i32, "{flow}");
    assert_eq!(
        endorsed["message"],
        "10 ABORTED: failed to endorse transaction, see attached details for more info",
        "{flow}"
    );
    assert!(
        endorsed["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no such thing")),
        "{flow}"
    );

    let elsewhere = &flow["otherOrg"]["error"];
    assert_eq!(elsewhere["code"], Code::Unavailable as i32, "{flow}");
    assert!(
        elsewhere["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed to find any endorsing peers for org(s): OtherMSP")),
        "{flow}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_gateway_client_submits_evaluates_and_waits_for_commit_on_a_node_shim_chaincode()
-> Result<()> {
    let node = TestNode::start().await?;
    let _chaincode = node_chaincode(&node, "shim-kv.js", "gwkv")?;
    node.wait_registered("gwkv").await?;
    let flow = gateway_client(&node, "gwkv", "flow").await?;
    assert_flow(&flow, &node);
    assert_eq!(node.query_text("gwkv", &["get", "gw"]).await?, "v2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_gateway_client_runs_a_wasm_chaincode_in_a_container() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| config.tls.enabled = Some(false)).await?;
    deploy_wasm(&node, "kv", "gwwasm").await?;
    let flow = gateway_client(&node, "gwwasm", "flow").await?;
    assert_flow(&flow, &node);
    Ok(())
}

/// The checks of the `assets` scenario: the samples' application calls on the asset-transfer
/// contract, and its metadata valid by Fabric's schema.
fn assert_assets(assets: &Value) {
    for step in ["init", "create", "read", "exists"] {
        assert_eq!(assets[step]["ok"], true, "{step}: {assets}");
    }
    assert_eq!(
        assets["transfer"]["value"], "Ana",
        "the old owner as text: {assets}"
    );
    assert_eq!(
        assets["read"]["value"],
        serde_json::json!({"ID": "asset8", "Color": "teal", "Size": 4, "Owner": "Bo", "AppraisedValue": 950}),
    );
    assert_eq!(assets["exists"]["value"], "true");
    let duplicate = assets["duplicate"]["error"]["details"][0]["message"].as_str();
    assert!(
        duplicate.is_some_and(|m| m.contains("the asset asset8 already exists")),
        "{assets}"
    );
    let unknown = assets["unknown"]["error"]["details"][0]["message"].as_str();
    assert!(
        unknown.is_some_and(|m| {
            m.contains("You've asked to invoke a function that does not exist: NoSuchTransaction")
        }),
        "{assets}"
    );
    let metadata = &assets["metadata"]["value"];
    assert_eq!(metadata["check"]["valid"], true, "{}", metadata["check"]);
    let contract = &metadata["metadata"]["contracts"]["AssetTransfer"];
    let read = contract["transactions"]
        .as_array()
        .and_then(|all| all.iter().find(|t| t["name"] == "ReadAsset"))
        .expect("ReadAsset is described");
    assert_eq!(read["tags"], serde_json::json!(["EVALUATE"]));
    assert_eq!(read["returns"]["$ref"], "#/components/schemas/Asset");
    let asset = &metadata["metadata"]["components"]["schemas"]["Asset"];
    assert_eq!(asset["properties"]["AppraisedValue"]["type"], "integer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_gateway_client_calls_a_rust_contract_as_it_calls_the_samples() -> Result<()> {
    let node = TestNode::start().await?;
    let _basic = rust_chaincode(&node, "asset-transfer", "basic:1.0")?;
    node.wait_registered("basic").await?;
    assert_assets(&gateway_client(&node, "basic", "assets").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_gateway_client_calls_a_rust_contract_built_for_wasm() -> Result<()> {
    let Some(endpoint) = docker_endpoint()? else {
        return Ok(());
    };
    let node = docker_node_with(endpoint, |config| config.tls.enabled = Some(false)).await?;
    deploy_wasm(&node, "asset-transfer", "wasmbasic").await?;
    assert_assets(&gateway_client(&node, "wasmbasic", "assets").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_gateway_client_replays_and_resumes_chaincode_events() -> Result<()> {
    let node = TestNode::start().await?;
    let _chaincode = node_chaincode(&node, "shim-kv.js", "evkv")?;
    node.wait_registered("evkv").await?;
    node.invoke("evkv", &["put", "quiet", "no event"]).await?;
    let events = gateway_client(&node, "evkv", "events").await?;

    let replayed = events["replayed"]["value"]
        .as_array()
        .context(events.to_string())?;
    let payloads: Vec<&str> = replayed
        .iter()
        .map(|e| e["payload"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        payloads,
        ["payload 1", "payload 2", "payload 3"],
        "{events}"
    );
    assert!(
        replayed
            .iter()
            .all(|e| e["name"] == "tick" && e["chaincode"] == "evkv"),
        "{events}"
    );
    let blocks: Vec<u64> = replayed
        .iter()
        .filter_map(|e| e["block"].as_u64())
        .collect();
    assert!(blocks.windows(2).all(|w| w[0] < w[1]), "{events}");

    let resumed: Vec<&str> = events["resumed"]["value"]
        .as_array()
        .context(events.to_string())?
        .iter()
        .map(|e| e["payload"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        resumed,
        ["payload 2", "payload 3"],
        "a checkpoint after the first event resumes after it: {events}"
    );
    assert_eq!(
        events["live"]["value"][0]["payload"], "after the stream opened",
        "{events}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_system_chaincode_is_evaluated_through_the_gateway() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "k", "one block"]).await?;
    let proposal = node.client.proposal(
        CHANNEL,
        "qscc",
        to_args(&["GetChainInfo", CHANNEL]),
        HashMap::new(),
    );
    let answer = gateway(&node)
        .await?
        .evaluate(EvaluateRequest {
            transaction_id: proposal.tx_id.clone(),
            channel_id: CHANNEL.to_owned(),
            proposed_transaction: Some(proposal.signed),
            target_organizations: Vec::new(),
        })
        .await?
        .into_inner();
    let result = answer.result.context("a result")?;
    assert_eq!(result.status, 200, "{}", result.message);
    let info = ccvm::proto::common::BlockchainInfo::decode(result.payload.as_slice())?;
    assert_eq!(
        info.height, 2,
        "the configuration block and one more: {info:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_bad_requests_with_fabrics_codes_and_keeps_serving() -> Result<()> {
    let node = TestNode::start().await?;
    let mut gateway = gateway(&node).await?;

    let unsigned = gateway
        .submit(SubmitRequest {
            prepared_transaction: Some(Envelope {
                payload: b"anything".to_vec(),
                signature: Vec::new(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("an unsigned transaction is refused");
    assert_eq!(unsigned.code(), Code::InvalidArgument);
    assert_eq!(unsigned.message(), "prepared transaction must be signed");

    let proposal = node
        .client
        .proposal("nochannel", "kv", to_args(&["get", "k"]), HashMap::new());
    let unknown = gateway
        .evaluate(EvaluateRequest {
            proposed_transaction: Some(proposal.signed),
            ..Default::default()
        })
        .await
        .expect_err("an unknown channel is refused");
    assert_eq!(unknown.code(), Code::Unavailable);
    assert!(
        unknown
            .message()
            .contains("channel nochannel does not exist"),
        "{}",
        unknown.message()
    );

    let garbled = gateway
        .evaluate(EvaluateRequest {
            proposed_transaction: Some(ccvm::proto::protos::SignedProposal {
                proposal_bytes: vec![0xff; 8],
                signature: Vec::new(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("a malformed proposal is refused");
    assert_eq!(garbled.code(), Code::InvalidArgument);
    assert!(
        garbled
            .message()
            .starts_with("failed to unpack transaction proposal: malformed proposal"),
        "{}",
        garbled.message()
    );

    let identity = node.client.identity();
    let request = CommitStatusRequest {
        transaction_id: "t1".to_owned(),
        channel_id: CHANNEL.to_owned(),
        identity: identity.serialized(),
    }
    .encode_to_vec();
    let forged = gateway
        .commit_status(SignedCommitStatusRequest {
            signature: identity.sign(b"another request"),
            request: request.clone(),
        })
        .await
        .expect_err("a commit status request signed over other bytes is refused");
    assert_eq!(forged.code(), Code::PermissionDenied);
    assert!(
        forged.message().contains("access denied") && forged.message().contains("signature"),
        "{}",
        forged.message()
    );

    let events = gateway
        .chaincode_events(SignedChaincodeEventsRequest {
            request: b"\xff\xff".to_vec(),
            signature: Vec::new(),
        })
        .await
        .expect_err("a garbled events request is refused");
    assert_eq!(events.code(), Code::InvalidArgument);
    assert!(
        events
            .message()
            .starts_with("invalid chaincode events request"),
        "{}",
        events.message()
    );

    let elsewhere = tempfile::tempdir()?;
    let other_org = DevOrganization::at(elsewhere.path());
    other_org.create_if_absent("Org9MSP")?;
    let outsider = Identity::load(&other_org.user_msp_dir(), "Org9MSP")?;
    let request = ChaincodeEventsRequest {
        channel_id: CHANNEL.to_owned(),
        chaincode_id: "kv".to_owned(),
        identity: outsider.serialized(),
        ..Default::default()
    }
    .encode_to_vec();
    let outsiders = gateway
        .chaincode_events(SignedChaincodeEventsRequest {
            signature: outsider.sign(&request),
            request,
        })
        .await
        .expect_err("an identity of another organization's CA reads no events");
    assert_eq!(outsiders.code(), Code::PermissionDenied);
    assert!(
        outsiders
            .message()
            .contains("MSP Org9MSP is not an organization of this channel"),
        "{}",
        outsiders.message()
    );

    node.query("qscc", &["GetChainInfo", CHANNEL])
        .await
        .context("the node still serves")?;
    Ok(())
}

/// Signs a commit status request for `tx_id` as `identity`.
fn commit_status_request(identity: &Identity, tx_id: &str) -> SignedCommitStatusRequest {
    let request = CommitStatusRequest {
        transaction_id: tx_id.to_owned(),
        channel_id: CHANNEL.to_owned(),
        identity: identity.serialized(),
    }
    .encode_to_vec();
    SignedCommitStatusRequest {
        signature: identity.sign(&request),
        request,
    }
}

/// The commit status of `tx_id`, asked of `gateway` as the node's client.
async fn commit_status(
    gateway: &mut GatewayClient<Channel>,
    node: &TestNode,
    tx_id: &str,
) -> Result<CommitStatusResponse> {
    let request = commit_status_request(node.client.identity(), tx_id);
    Ok(gateway.commit_status(request).await?.into_inner())
}

/// A proposal to put `value` under key `k` of the `kv` chaincode.
fn put_proposal(node: &TestNode, value: &str) -> TxProposal {
    node.client
        .proposal(CHANNEL, "kv", to_args(&["put", "k", value]), HashMap::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_status_waits_for_a_transaction_committed_later() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let proposal = put_proposal(&node, "later");
    let mut waiting = gateway(&node).await?;
    let request = commit_status_request(node.client.identity(), &proposal.tx_id);
    let status = tokio::spawn(async move { waiting.commit_status(request).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!status.is_finished(), "no answer before the commit");
    let endorsed = node.client.endorse(&proposal).await?;
    let committed = node.client.submit(&proposal, &endorsed).await?;
    let answer = tokio::time::timeout(Duration::from_secs(30), status)
        .await???
        .into_inner();
    assert_eq!(answer.result, TxValidationCode::Valid as i32);
    assert_eq!(answer.block_number, committed.block_number);

    let mut impatient = gateway(&node).await?;
    let mut request = tonic::Request::new(commit_status_request(node.client.identity(), "never"));
    request.set_timeout(Duration::from_millis(300));
    let expired = impatient
        .commit_status(request)
        .await
        .expect_err("a transaction never submitted is waited for until the deadline");
    assert_eq!(expired.code(), Code::Cancelled, "{expired:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_submit_answers_once_queued_and_commit_status_once_committed() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.commit.batch_timeout_ms = 2000;
        config.commit.max_block_txs = 10;
    })
    .await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let proposal = put_proposal(&node, "queued");
    node.client
        .endorse_and_submit_through_gateway(&proposal)
        .await?;
    let height = || {
        node.inner()
            .support()
            .ledger()
            .chain_info(CHANNEL)
            .map(|info| info.height)
    };
    assert_eq!(
        height()?,
        1,
        "Submit answered while its block waited for the 2 s batch timeout"
    );
    let block = node
        .client
        .commit_status_through_gateway(&proposal)
        .await
        .context("CommitStatus answers VALID")?;
    assert_eq!(block, 1);
    assert_eq!(
        height()?,
        2,
        "CommitStatus answered once the block committed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_orders_an_endorsed_transaction_and_refuses_an_outsiders() -> Result<()> {
    let node = TestNode::start().await?;
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let mut orderer = AtomicBroadcastClient::new(channel);
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;

    let proposal = put_proposal(&node, "broadcast");
    let endorsed = node.client.endorse(&proposal).await?;
    let envelope = node.client.transaction_envelope(&proposal, &endorsed);
    let elsewhere = tempfile::tempdir()?;
    let other_org = DevOrganization::at(elsewhere.path());
    other_org.create_if_absent("Org9MSP")?;
    let outsider = Identity::load(&other_org.user_msp_dir(), "Org9MSP")?;
    let outsiders = outsider.sign(&envelope.payload);
    let forged = Envelope {
        payload: envelope.payload.clone(),
        signature: outsiders,
    };
    let mut answers = orderer
        .broadcast(tokio_stream::iter([envelope, forged]))
        .await?
        .into_inner();
    let first = answers.message().await?.context("an answer")?;
    assert_eq!(first.status, BlockStatus::Success as i32, "{}", first.info);
    let second = answers.message().await?.context("an answer")?;
    assert_eq!(second.status, BlockStatus::Forbidden as i32);
    assert!(second.info.starts_with("access denied"), "{}", second.info);
    assert!(
        answers.message().await?.is_none(),
        "a refusal ends the stream"
    );

    let mut gateway = gateway(&node).await?;
    let status = commit_status(&mut gateway, &node, &proposal.tx_id).await?;
    assert_eq!(status.result, TxValidationCode::Valid as i32);
    assert_eq!(node.query_text("kv", &["get", "k"]).await?, "broadcast");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_refuses_a_channel_configuration_update() -> Result<()> {
    let node = TestNode::start().await?;
    let channel = Channel::from_shared(format!("http://{}", node.inner().peer_addr()))?
        .connect()
        .await?;
    let mut orderer = AtomicBroadcastClient::new(channel);
    let admin = node.client.identity();
    let header = Header {
        channel_header: ChannelHeader {
            r#type: HeaderType::ConfigUpdate as i32,
            channel_id: CHANNEL.to_owned(),
            timestamp: Some(std::time::SystemTime::now().into()),
            ..Default::default()
        }
        .encode_to_vec(),
        signature_header: SignatureHeader {
            creator: admin.serialized(),
            nonce: vec![7; 24],
        }
        .encode_to_vec(),
    };
    let payload = Payload {
        header: Some(header),
        data: b"a config update envelope".to_vec(),
    }
    .encode_to_vec();
    let update = Envelope {
        signature: admin.sign(&payload),
        payload,
    };
    let height = node.query(QSCC, &["GetChainInfo", CHANNEL]).await?;
    let mut answers = orderer
        .broadcast(tokio_stream::iter([update]))
        .await?
        .into_inner();
    let answer = answers.message().await?.context("an answer")?;
    assert_eq!(
        answer.status,
        BlockStatus::BadRequest as i32,
        "{}",
        answer.info
    );
    assert!(
        answer
            .info
            .contains("orders endorser transactions, not header type CONFIG_UPDATE"),
        "{}",
        answer.info
    );
    assert_eq!(
        node.query(QSCC, &["GetChainInfo", CHANNEL]).await?.payload,
        height.payload,
        "nothing was ordered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_larger_than_grpcs_default_message_size_is_endorsed_and_committed() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let value = "x".repeat(6 * 1024 * 1024);
    node.invoke("kv", &["put", "big", &value]).await?;
    let read = node.query("kv", &["get", "big"]).await?;
    assert_eq!(read.payload.len(), value.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_submits_through_the_gateway() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv")?;
    node.wait_registered("kv").await?;
    let put = node
        .client
        .proposal(CHANNEL, "kv", to_args(&["put", "k", "gw"]), HashMap::new());
    let block = node.client.submit_through_gateway(&put).await?;
    assert_eq!(block, 1, "the first block after the configuration");
    assert_eq!(node.query_text("kv", &["get", "k"]).await?, "gw");
    Ok(())
}
