//! Who the node lets in, tried as an outsider would over real gRPC: identities validated against
//! the channel's MSPs, transactions validated against endorsement policies before commit, the
//! admin service for admins only, and system chaincode names kept from hand-started streams.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ccvm::client::{Admin, Client, ClientError};
use ccvm::msp::Identity;
use ccvm::msp::dev_org::{DevCa, DevOrganization, Issued, Validity};
use ccvm::node::{LIFECYCLE, dev_organization};
use ccvm::package::{CodeFile, Package, Platform};
use ccvm::proto::Message;
use ccvm::proto::MessageType;
use ccvm::proto::ccvm::ListSystemChaincodesRequest;
use ccvm::proto::ccvm::admin_client::AdminClient;
use ccvm::proto::lifecycle::{
    QueryChaincodeDefinitionsResult, QueryInstalledChaincodesArgs, QueryInstalledChaincodesResult,
};
use ccvm::proto::protos::chaincode_support_client::ChaincodeSupportClient;
use ccvm::proto::protos::{
    ChaincodeId, ChaincodeMessage, Endorsement, ProposalResponse, TxValidationCode,
};
use tempfile::TempDir;
use time::OffsetDateTime;
use tonic::transport::Endpoint;

use crate::harness::{
    CHANNEL, LifecycleDefinition, TestNode, fabric_bin, node_sdk_evaluate, rust_chaincode, to_args,
    user_identity,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// An organization of the tests' own, in the development layout, with its CA at hand.
struct TestOrg {
    dir: TempDir,
    org: DevOrganization,
    ca: DevCa,
    msp_id: String,
}

impl TestOrg {
    fn new(msp_id: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let org = DevOrganization::at(dir.path());
        let ca = DevCa::create(msp_id)?;
        org.create_with(&ca)?;
        Ok(Self {
            dir,
            org,
            ca,
            msp_id: msp_id.to_owned(),
        })
    }

    /// An identity of this CA with `ous`, valid over `validity`, signing as a member of
    /// `msp_id`.
    fn identity(&self, name: &str, ous: &[&str], validity: Validity) -> Result<(Identity, Issued)> {
        let issued = self.ca.issue(name, ous, validity)?;
        let identity = self.write(name, &issued, &self.msp_id)?;
        Ok((identity, issued))
    }

    fn write(&self, name: &str, issued: &Issued, msp_id: &str) -> Result<Identity> {
        let dir = self.dir.path().join("extra").join(name);
        self.ca.write_member_msp(&dir, issued)?;
        Ok(Identity::load(&dir, msp_id)?)
    }

    fn peer(&self) -> Result<Identity> {
        Ok(Identity::load(&self.org.peer_msp_dir(), &self.msp_id)?)
    }
}

fn shifted(from_now: i64, length: Duration) -> Validity {
    let start = OffsetDateTime::now_utc() + time::Duration::seconds(from_now);
    Validity {
        not_before: start,
        not_after: start + length,
    }
}

async fn client_as(node: &TestNode, identity: Identity) -> Result<Client> {
    Ok(Client::connect(&node.inner().peer_addr().to_string(), identity).await?)
}

/// Whether a call failed in the transport, before any service saw it: the client's status then
/// carries the transport error as its source, which a status sent by a server never does.
fn failed_in_transport(error: &ClientError) -> bool {
    matches!(error, ClientError::Rpc(status)
        if std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>()))
}

fn refusal(result: Result<ccvm::client::Committed, ClientError>) -> Result<String> {
    match result {
        Ok(_) => bail!("the call was accepted"),
        Err(ClientError::Chaincode { status, message }) => {
            assert_eq!(status, 500, "{message}");
            Ok(message)
        }
        Err(other) => bail!("unexpected failure: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_of_identities_the_channel_does_not_trust_are_refused_with_the_reason()
-> Result<()> {
    let org = TestOrg::new("Org1MSP")?;
    let (revoked, revoked_cert) = org.identity("gone", &["client"], Validity::from_now(DAY))?;
    let crl = org.ca.revoke(&[&revoked_cert.serial])?;
    let crls = org.org.peer_msp_dir().join("crls");
    std::fs::create_dir_all(&crls)?;
    std::fs::write(crls.join("crl.pem"), crl)?;
    let node = TestNode::start_for(&org.org, "Org1MSP", |_| {}).await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;

    let impostor_ca = TestOrg::new("Org1MSP")?;
    let (impostor, _) = impostor_ca.identity("mallory", &["client"], Validity::from_now(DAY))?;
    let (expired, _) = org.identity("old", &["client"], shifted(-2 * 86400, DAY))?;
    let (early, _) = org.identity("early", &["client"], shifted(86400, DAY))?;
    let (stranger, stranger_cert) =
        org.identity("stranger", &["client"], Validity::from_now(DAY))?;
    drop(stranger);
    let unknown_msp = org.write("evil", &stranger_cert, "EvilMSP")?;
    let (no_role, _) = org.identity("sales", &["sales"], Validity::from_now(DAY))?;
    let cases = [
        (impostor, "is not signed by a CA of the MSP"),
        (expired, "expired at"),
        (early, "is not valid before"),
        (revoked, "is revoked"),
        (
            unknown_msp,
            "MSP EvilMSP is not an organization of this channel",
        ),
        (no_role, "is not a client, peer, admin or orderer"),
        (
            org.peer()?,
            "does not satisfy policy /Channel/Application/Writers",
        ),
    ];
    for (identity, reason) in cases {
        let client = client_as(&node, identity).await?;
        let message = refusal(
            client
                .invoke(
                    CHANNEL,
                    "kv",
                    to_args(&["put", "k", "intruder"]),
                    HashMap::new(),
                )
                .await,
        )
        .with_context(|| format!("an identity that {reason}"))?;
        assert!(
            message.starts_with("access denied") && message.contains(reason),
            "expected {reason:?} in {message:?}"
        );
    }
    assert_eq!(
        node.query_text("kv", &["get", "k"]).await?,
        "",
        "nothing written"
    );

    let (user, _) = org.identity("user2", &["client"], Validity::from_now(DAY))?;
    client_as(&node, user)
        .await?
        .invoke(
            CHANNEL,
            "kv",
            to_args(&["put", "k", "member"]),
            HashMap::new(),
        )
        .await?;
    assert_eq!(node.query_text("kv", &["get", "k"]).await?, "member");
    Ok(())
}

/// Submits `response`'s payload with `endorsements` for `proposal`, signed by `client`, and
/// returns the validation code the node gave it.
async fn submit_with(
    client: &Client,
    proposal: &ccvm::client::TxProposal,
    response: &ProposalResponse,
    endorsements: Vec<Endorsement>,
) -> Result<TxValidationCode> {
    let mut envelope = client.transaction_envelope(proposal, response);
    rewrite_endorsements(&mut envelope, endorsements)?;
    envelope.signature = client.identity().sign(&envelope.payload);
    let submitted = client.submit_envelope(envelope).await?;
    Ok(TxValidationCode::try_from(submitted.validation_code)?)
}

/// Replaces the endorsements of the envelope's one action.
fn rewrite_endorsements(
    envelope: &mut ccvm::proto::common::Envelope,
    endorsements: Vec<Endorsement>,
) -> Result<()> {
    use ccvm::proto::common::Payload;
    use ccvm::proto::protos::{ChaincodeActionPayload, Transaction};
    let mut payload = Payload::decode(envelope.payload.as_slice())?;
    let mut transaction = Transaction::decode(payload.data.as_slice())?;
    let action = &mut transaction.actions[0];
    let mut action_payload = ChaincodeActionPayload::decode(action.payload.as_slice())?;
    if let Some(endorsed) = action_payload.action.as_mut() {
        endorsed.endorsements = endorsements;
    }
    action.payload = action_payload.encode_to_vec();
    payload.data = transaction.encode_to_vec();
    envelope.payload = payload.encode_to_vec();
    Ok(())
}

/// An endorsement of `payload` signed by `identity`.
fn endorsement_by(identity: &Identity, payload: &[u8]) -> Endorsement {
    let endorser = identity.serialized();
    let signature = identity.sign(&[payload, endorser.as_slice()].concat());
    Endorsement {
        endorser,
        signature,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_transactions_are_committed_invalid_with_fabrics_codes_and_change_nothing()
-> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    let client = &node.client;
    let user = user_identity(node.config())?;
    let endorse = |value: &'static str| async move {
        let proposal =
            client.proposal(CHANNEL, "kv", to_args(&["put", "k", value]), HashMap::new());
        let response = client.endorse(&proposal).await?;
        anyhow::Ok((proposal, response))
    };

    let (proposal, response) = endorse("unendorsed").await?;
    assert_eq!(
        submit_with(client, &proposal, &response, Vec::new()).await?,
        TxValidationCode::EndorsementPolicyFailure,
        "no endorsement at all"
    );

    let (proposal, response) = endorse("tampered").await?;
    let mut tampered = response.endorsement.clone().unwrap_or_default();
    let last = tampered.signature.len() - 1;
    tampered.signature[last] ^= 1;
    assert_eq!(
        submit_with(client, &proposal, &response, vec![tampered]).await?,
        TxValidationCode::EndorsementPolicyFailure,
        "an endorsement whose signature does not verify"
    );

    let (proposal, response) = endorse("by a client").await?;
    let by_client = endorsement_by(&user, &response.payload);
    assert_eq!(
        submit_with(client, &proposal, &response, vec![by_client]).await?,
        TxValidationCode::EndorsementPolicyFailure,
        "an endorsement by a client, not a peer"
    );

    let (proposal, _) = endorse("other proposal").await?;
    let (_, other_response) = endorse("answer of another").await?;
    let endorsement = other_response.endorsement.clone().into_iter().collect();
    assert_eq!(
        submit_with(client, &proposal, &other_response, endorsement).await?,
        TxValidationCode::InvalidEndorserTransaction,
        "endorsements that answer a different proposal"
    );

    let (proposal, response) = endorse("bad creator signature").await?;
    let mut envelope = client.transaction_envelope(&proposal, &response);
    envelope.signature = user.sign(&envelope.payload);
    match client.submit_envelope(envelope).await {
        Err(ClientError::Rpc(status)) => {
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
            assert!(
                status
                    .message()
                    .contains("the signature does not verify with the key of this DevMSP identity"),
                "an envelope not signed by its creator is not ordered: {status:?}"
            );
        }
        other => bail!("an envelope not signed by its creator was ordered: {other:?}"),
    }

    assert_eq!(
        node.query_text("kv", &["get", "k"]).await?,
        "",
        "state unchanged"
    );
    let (proposal, response) = endorse("honest").await?;
    let committed = client.submit(&proposal, &response).await?;
    assert_eq!(committed.validation_code, TxValidationCode::Valid as i32);
    assert_eq!(node.query_text("kv", &["get", "k"]).await?, "honest");

    let again = client.endorse(&proposal).await?;
    let message = again.response.unwrap_or_default().message;
    assert!(
        message.contains(&format!("duplicate transaction found [{}]", proposal.tx_id)),
        "a committed transaction is not endorsed again: {message}"
    );
    Ok(())
}

/// A node of `DevMSP` whose channel also has `Org2MSP`, with kv started by hand, and a node of
/// `Org2MSP` whose channel also has `DevMSP`. Each `_lifecycle` transaction is ordered by both,
/// so that their ledgers agree on `_lifecycle`'s state as two peers of one channel would; each
/// organization approves on its own node.
struct TwoOrgs {
    node: TestNode,
    org2: TestOrg,
    org2_node: TestNode,
    _kv: crate::harness::ChaincodeProcess,
}

impl TwoOrgs {
    async fn new() -> Result<Self> {
        let org2 = TestOrg::new("Org2MSP")?;
        let msp_dir = org2.org.msp_dir();
        let node = TestNode::start_with(|config| {
            config.organizations.insert("Org2MSP".to_owned(), msp_dir);
        })
        .await?;
        let dev_msp = dev_organization(&node.config().data_dir).msp_dir();
        let org2_node = TestNode::start_for(&org2.org, "Org2MSP", |config| {
            config.organizations.insert("DevMSP".to_owned(), dev_msp);
        })
        .await?;
        let kv = rust_chaincode(&node, "kv", "kv:1.0")?;
        node.wait_registered("kv").await?;
        Ok(Self {
            node,
            org2,
            org2_node,
            _kv: kv,
        })
    }

    /// Both organizations' nodes with kv defined by `policy`: approved by each organization on
    /// its own node, committed with both nodes' endorsements.
    async fn start(policy: &str) -> Result<Self> {
        let two = Self::new().await?;
        let definition = LifecycleDefinition {
            policy,
            ..LifecycleDefinition::first("kv", "")
        };
        for node in [&two.node, &two.org2_node] {
            let (proposal, responses) = two.propose(node, &[node], definition.approve()).await?;
            assert_eq!(
                two.order_on_both(node, &proposal, &responses).await?,
                TxValidationCode::Valid
            );
        }
        let endorsers = [&two.node, &two.org2_node];
        let (proposal, responses) = two
            .propose(&two.node, &endorsers, definition.commit())
            .await?;
        assert_eq!(
            two.order_on_both(&two.node, &proposal, &responses).await?,
            TxValidationCode::Valid
        );
        Ok(two)
    }

    /// A `_lifecycle` proposal of `args` by `from`'s client, with each of `endorsers`' answers.
    async fn propose(
        &self,
        from: &TestNode,
        endorsers: &[&TestNode],
        args: Vec<Vec<u8>>,
    ) -> Result<(ccvm::client::TxProposal, Vec<ProposalResponse>)> {
        let proposal = from
            .client
            .proposal(CHANNEL, LIFECYCLE, args, HashMap::new());
        let mut responses = Vec::new();
        for endorser in endorsers {
            responses.push(endorser.client.endorse(&proposal).await?);
        }
        Ok((proposal, responses))
    }

    /// Orders the transaction of `proposal` (by `from`'s client) carrying the endorsements of
    /// `responses` on both nodes, which must agree on its validation code.
    async fn order_on_both(
        &self,
        from: &TestNode,
        proposal: &ccvm::client::TxProposal,
        responses: &[ProposalResponse],
    ) -> Result<TxValidationCode> {
        let endorsements = responses
            .iter()
            .map(|response| {
                assert_eq!(
                    response.response.as_ref().map(|r| r.status),
                    Some(200),
                    "{response:?}"
                );
                assert_eq!(
                    response.payload, responses[0].payload,
                    "the endorsers agree"
                );
                response.endorsement.clone().unwrap_or_default()
            })
            .collect();
        self.order_endorsed_by(from, proposal, &responses[0], endorsements)
            .await
    }

    /// Orders the transaction of `proposal` (by `from`'s client) answered by `response`, carrying
    /// `endorsements`, on both nodes, which must agree on its validation code.
    async fn order_endorsed_by(
        &self,
        from: &TestNode,
        proposal: &ccvm::client::TxProposal,
        response: &ProposalResponse,
        endorsements: Vec<Endorsement>,
    ) -> Result<TxValidationCode> {
        let client = &from.client;
        let mut envelope = client.transaction_envelope(proposal, response);
        rewrite_endorsements(&mut envelope, endorsements)?;
        envelope.signature = client.identity().sign(&envelope.payload);
        let ours = self.node.client.submit_envelope(envelope.clone()).await?;
        let theirs = self.org2_node.client.submit_envelope(envelope).await?;
        assert_eq!(
            ours.validation_code, theirs.validation_code,
            "both nodes validate alike"
        );
        Ok(TxValidationCode::try_from(ours.validation_code)?)
    }

    async fn endorse(
        &self,
        chaincode: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<(ccvm::client::TxProposal, ProposalResponse)> {
        let client = &self.node.client;
        let proposal = client.proposal(CHANNEL, chaincode, args, HashMap::new());
        let response = client.endorse(&proposal).await?;
        Ok((proposal, response))
    }

    /// Calls kv endorsed by the node's peer only.
    async fn submit_by_ours(&self, args: &[&str]) -> Result<TxValidationCode> {
        let (proposal, response) = self.endorse("kv", to_args(args)).await?;
        let ours = response.endorsement.clone().unwrap_or_default();
        submit_with(&self.node.client, &proposal, &response, vec![ours]).await
    }

    /// Calls kv (or `_lifecycle`) endorsed by both organizations' peers.
    async fn submit_by_both(
        &self,
        chaincode: &str,
        args: Vec<Vec<u8>>,
    ) -> Result<TxValidationCode> {
        let (proposal, response) = self.endorse(chaincode, args).await?;
        let ours = response.endorsement.clone().unwrap_or_default();
        let theirs = endorsement_by(&self.org2.peer()?, &response.payload);
        submit_with(&self.node.client, &proposal, &response, vec![ours, theirs]).await
    }
}

/// As in Fabric, an organization approves a definition for itself, endorsed by its own peer,
/// and a definition is committed only once a majority of the channel's organizations approved
/// it: each node endorses a commit only with its own organization's approval and enough others
/// for `LifecycleEndorsement`, which the commit's endorsements must also satisfy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_is_committed_only_once_a_majority_of_organizations_approved_it() -> Result<()>
{
    let two = TwoOrgs::new().await?;
    let package = Package::build(
        "kv_1.0",
        Platform::Binary,
        &[CodeFile::new("chaincode", b"kv".to_vec(), 0o755)],
    )?;
    let installed = two.node.inner().packages().install(&package)?;
    let definition = LifecycleDefinition::first("kv", &installed.id);
    let org2_definition = LifecycleDefinition::first("kv", "org2kv_1.0:0123");
    let (ours, org2) = (&two.node, &two.org2_node);

    let (proposal, responses) = two.propose(ours, &[ours], definition.approve()).await?;
    let by_org2_peer = endorsement_by(&two.org2.peer()?, &responses[0].payload);
    assert_eq!(
        two.order_endorsed_by(ours, &proposal, &responses[0], vec![by_org2_peer])
            .await?,
        TxValidationCode::EndorsementPolicyFailure,
        "another organization's peer cannot approve for DevMSP"
    );
    let (proposal, responses) = two.propose(ours, &[ours], definition.approve()).await?;
    assert_eq!(
        two.order_on_both(ours, &proposal, &responses).await?,
        TxValidationCode::Valid,
        "DevMSP's approval needs only its own peer"
    );

    let (_, refusals) = two
        .propose(ours, &[ours, org2], definition.commit())
        .await?;
    let messages: Vec<String> = refusals
        .into_iter()
        .map(|refusal| refusal.response.unwrap_or_default().message)
        .collect();
    assert!(
        messages[0].contains("approved by DevMSP, not by Org2MSP")
            && messages[0].contains("/Channel/Application/LifecycleEndorsement"),
        "one approval of two organizations is not a majority: {}",
        messages[0]
    );
    assert!(
        messages[1].contains("chaincode definition not agreed to by this org (Org2MSP)"),
        "a node endorses a commit only with its own organization's approval: {}",
        messages[1]
    );

    let (proposal, responses) = two
        .propose(org2, &[org2], org2_definition.approve())
        .await?;
    assert_eq!(
        two.order_on_both(org2, &proposal, &responses).await?,
        TxValidationCode::Valid,
        "Org2MSP approves on its own node, choosing its own package"
    );
    let (proposal, responses) = two.propose(ours, &[ours], definition.commit()).await?;
    assert_eq!(
        two.order_on_both(ours, &proposal, &responses).await?,
        TxValidationCode::EndorsementPolicyFailure,
        "one organization's peer is not a majority for LifecycleEndorsement"
    );
    let (proposal, responses) = two
        .propose(org2, &[ours, org2], definition.commit())
        .await?;
    assert_eq!(
        two.order_on_both(org2, &proposal, &responses).await?,
        TxValidationCode::Valid,
        "committed by Org2MSP with both organizations' approvals and endorsements"
    );
    let listed = two
        .node
        .client
        .query(
            CHANNEL,
            LIFECYCLE,
            vec![b"QueryChaincodeDefinitions".to_vec()],
            HashMap::new(),
        )
        .await?;
    let names: Vec<String> = QueryChaincodeDefinitionsResult::decode(listed.payload.as_slice())?
        .chaincode_definitions
        .into_iter()
        .map(|definition| definition.name)
        .collect();
    assert_eq!(names, ["kv"]);

    let installed_here = two
        .node
        .client
        .query(
            "",
            LIFECYCLE,
            vec![
                b"QueryInstalledChaincodes".to_vec(),
                QueryInstalledChaincodesArgs {}.encode_to_vec(),
            ],
            HashMap::new(),
        )
        .await?;
    let references: Vec<(String, Vec<String>)> =
        QueryInstalledChaincodesResult::decode(installed_here.payload.as_slice())?
            .installed_chaincodes
            .into_iter()
            .filter(|package| package.package_id == installed.id)
            .flat_map(|package| package.references)
            .map(|(channel, references)| {
                let names = references.chaincodes.into_iter().map(|c| c.name).collect();
                (channel, names)
            })
            .collect();
    assert_eq!(
        references,
        [(CHANNEL.to_owned(), vec!["kv".to_owned()])],
        "DevMSP's node runs the package DevMSP approved, whoever committed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_and_policy_of_two_organizations_needs_both_peers() -> Result<()> {
    let two = TwoOrgs::start("AND('DevMSP.peer', 'Org2MSP.peer')").await?;
    let (proposal, response) = two.endorse("kv", to_args(&["put", "k", "one"])).await?;
    let ours = response.endorsement.clone().unwrap_or_default();
    assert_eq!(
        submit_with(
            &two.node.client,
            &proposal,
            &response,
            vec![ours.clone(), ours]
        )
        .await?,
        TxValidationCode::EndorsementPolicyFailure,
        "the same peer twice counts once"
    );
    assert_eq!(
        two.submit_by_both("kv", to_args(&["put", "k", "two"]))
            .await?,
        TxValidationCode::Valid
    );
    assert_eq!(two.node.query_text("kv", &["get", "k"]).await?, "two");
    Ok(())
}

/// A key's own endorsement policy, set by the chaincode as its `VALIDATION_PARAMETER`, governs
/// later writes of that key instead of the chaincode's policy; other keys keep the chaincode's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_level_policy_governs_writes_of_its_key() -> Result<()> {
    let two = TwoOrgs::start("OR('DevMSP.peer', 'Org2MSP.peer')").await?;
    assert_eq!(
        two.submit_by_ours(&["put", "guarded", "one"]).await?,
        TxValidationCode::Valid
    );
    let both = ccvm::policy::SignaturePolicy::parse("AND('DevMSP.peer', 'Org2MSP.peer')")?;
    let policy = hex::encode(both.to_envelope());
    assert_eq!(
        two.submit_by_ours(&["setpolicy", "guarded", &policy])
            .await?,
        TxValidationCode::Valid,
        "setting the first key-level policy takes the chaincode's policy"
    );
    assert_eq!(
        two.submit_by_ours(&["put", "guarded", "two"]).await?,
        TxValidationCode::EndorsementPolicyFailure,
        "one organization no longer writes the guarded key"
    );
    assert_eq!(two.node.query_text("kv", &["get", "guarded"]).await?, "one");
    assert_eq!(
        two.submit_by_both("kv", to_args(&["put", "guarded", "three"]))
            .await?,
        TxValidationCode::Valid
    );
    assert_eq!(
        two.submit_by_ours(&["put", "open", "x"]).await?,
        TxValidationCode::Valid,
        "other keys keep the chaincode's policy"
    );
    assert_eq!(
        two.node.query_text("kv", &["get", "guarded"]).await?,
        "three"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_service_answers_only_signed_calls_of_the_nodes_admins() -> Result<()> {
    let node = TestNode::start().await?;
    let addr = node.inner().peer_addr().to_string();

    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut unsigned = AdminClient::new(channel);
    let status = unsigned
        .list_system_chaincodes(ListSystemChaincodesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("the call is not signed"),
        "{status:?}"
    );

    let user = user_identity(node.config())?;
    let status = match Admin::connect(&addr, user)
        .await?
        .reload_system_chaincode("qscc")
        .await
    {
        Err(ClientError::Rpc(status)) => status,
        other => bail!("a user reloaded a system chaincode: {:?}", other.err()),
    };
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("does not satisfy policy /Channel/Application/DevMSP/Admins"),
        "{status:?}"
    );
    assert_eq!(
        node.inner().inproc().instances_started(),
        0,
        "nothing reloaded"
    );

    let admin = crate::harness::admin_identity(node.config())?;
    let envelope = ccvm::signed_call::sign(
        &admin,
        "/ccvm.Admin/ListPackages",
        &ccvm::proto::ccvm::ListPackagesRequest {},
    );
    let mut replayed = tonic::Request::new(ccvm::proto::ccvm::ReloadSystemChaincodeRequest {
        name: "qscc".to_owned(),
    });
    replayed.metadata_mut().insert_bin(
        ccvm::signed_call::ADMIN_REQUEST_METADATA,
        tonic::metadata::MetadataValue::from_bytes(&envelope.encode_to_vec()),
    );
    let status = unsigned
        .reload_system_chaincode(replayed)
        .await
        .unwrap_err();
    assert!(
        status
            .message()
            .contains("the signature is for /ccvm.Admin/ListPackages"),
        "a signature for one call does not authorize another: {status:?}"
    );

    let listed = Admin::connect(&addr, admin)
        .await?
        .system_chaincodes()
        .await?;
    assert!(listed.iter().any(|scc| scc.name == "qscc"), "{listed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_started_stream_cannot_take_a_system_chaincodes_name_in_dev_mode() -> Result<()> {
    let node = TestNode::start().await?;
    let channel = Endpoint::from_shared(format!("http://{}", node.chaincode_addr()))?
        .connect()
        .await?;
    let mut chaincode = ChaincodeSupportClient::new(channel);
    let register = ChaincodeMessage {
        r#type: MessageType::Register as i32,
        payload: ChaincodeId {
            name: "_lifecycle".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        ..Default::default()
    };
    let mut answers = chaincode
        .register(tokio_stream::iter([register]))
        .await?
        .into_inner();
    let answer = answers.message().await?.unwrap_or_default();
    assert_eq!(answer.r#type, MessageType::Error as i32);
    assert!(
        String::from_utf8_lossy(&answer.payload)
            .contains("chaincode _lifecycle is run by this peer itself"),
        "{answer:?}"
    );
    let definitions = node
        .query(LIFECYCLE, &["QueryChaincodeDefinitions"])
        .await?;
    assert_eq!(
        QueryChaincodeDefinitionsResult::decode(definitions.payload.as_slice())?,
        QueryChaincodeDefinitionsResult::default(),
        "the node's own _lifecycle still answers"
    );
    Ok(())
}

/// `cryptogen` from Fabric's release makes an organization; its peer's MSP directory is the
/// node's identity, its admin administers the node and its user transacts, all unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_made_by_cryptogen_loads_as_the_nodes_organization_unchanged() -> Result<()> {
    let Some(bin) = fabric_bin()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("crypto-config.yaml");
    std::fs::write(
        &config,
        "PeerOrgs:\n  - Name: Org1\n    Domain: org1.example.com\n    EnableNodeOUs: true\n    \
         Template:\n      Count: 1\n    Users:\n      Count: 1\n",
    )?;
    let output = std::process::Command::new(bin.join("cryptogen"))
        .args(["generate", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let org = dir.path().join("out/peerOrganizations/org1.example.com");
    let peer_msp = org.join("peers/peer0.org1.example.com/msp");
    let admin_msp = org.join("users/Admin@org1.example.com/msp");
    let user_msp = org.join("users/User1@org1.example.com/msp");

    let data = tempfile::tempdir()?;
    let node_config = ccvm::config::Config {
        data_dir: data.path().to_owned(),
        listen: "127.0.0.1:0".to_owned(),
        chaincode_listen: "127.0.0.1:0".to_owned(),
        dev_mode: true,
        msp_id: "Org1MSP".to_owned(),
        msp_dir: Some(peer_msp),
        operations: ccvm::config::OperationsSettings {
            listen_address: None,
            ..Default::default()
        },
        ..ccvm::config::Config::default()
    };
    let node = ccvm::node::Node::start(&node_config).await?;
    let addr = node.peer_addr().to_string();
    let user = Client::connect(&addr, Identity::load(&user_msp, "Org1MSP")?).await?;
    let definitions = user
        .query(
            CHANNEL,
            "_lifecycle",
            to_args(&["QueryChaincodeDefinitions"]),
            HashMap::new(),
        )
        .await?;
    assert_eq!(
        QueryChaincodeDefinitionsResult::decode(definitions.payload.as_slice())?,
        QueryChaincodeDefinitionsResult::default()
    );
    let endorsed = user
        .endorse(&user.proposal(
            CHANNEL,
            "qscc",
            to_args(&["GetChainInfo", CHANNEL]),
            HashMap::new(),
        ))
        .await?;
    let endorser = ccvm::proto::msp::SerializedIdentity::decode(
        endorsed.endorsement.unwrap_or_default().endorser.as_slice(),
    )?;
    assert_eq!(endorser.mspid, "Org1MSP");
    assert!(
        String::from_utf8_lossy(&endorser.id_bytes)
            == std::fs::read_to_string(org.join(
                "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem"
            ))?,
        "the node endorses as cryptogen's peer"
    );

    let refused = Admin::connect(&addr, Identity::load(&user_msp, "Org1MSP")?)
        .await?
        .system_chaincodes()
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Rpc(status)) if status.code() == tonic::Code::PermissionDenied),
        "a user of the organization is not its admin: {:?}",
        refused.err()
    );
    let listed = Admin::connect(&addr, Identity::load(&admin_msp, "Org1MSP")?)
        .await?
        .system_chaincodes()
        .await?;
    assert!(!listed.is_empty());
    node.shutdown().await?;
    Ok(())
}

/// With TLS and client authentication on the client port, plaintext and certificate-less
/// clients cannot connect, and a proposal must carry the hash of the TLS certificate of the
/// connection it comes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_port_serves_tls_and_binds_proposals_to_the_client_certificate() -> Result<()> {
    let node = TestNode::start_with(|config| {
        config.tls.enabled = Some(true);
        config.tls.client_auth_required = true;
    })
    .await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "k", "over tls"]).await?;
    let addr = node.inner().peer_addr().to_string();
    let org = ccvm::node::dev_organization(&node.config().data_dir);

    let plaintext = client_as(&node, user_identity(node.config())?).await?;
    let failed = plaintext
        .query(CHANNEL, "kv", to_args(&["get", "k"]), HashMap::new())
        .await
        .unwrap_err();
    assert!(
        failed_in_transport(&failed),
        "a plaintext client gets nothing: {failed}"
    );
    let ca_pem = std::fs::read(org.tls_ca_cert())?;
    let anonymous = ccvm::client::ClientTls {
        ca_pem: ca_pem.clone(),
        client: None,
    };
    let failed = Client::connect_with(&addr, user_identity(node.config())?, Some(&anonymous))
        .await?
        .query(CHANNEL, "kv", to_args(&["get", "k"]), HashMap::new())
        .await
        .unwrap_err();
    assert!(
        failed_in_transport(&failed),
        "a client without a certificate gets nothing: {failed}"
    );

    let user_tls = org.user_msp_dir().with_file_name("tls");
    let as_user = ccvm::client::ClientTls {
        ca_pem,
        client: Some((
            std::fs::read(user_tls.join("client.crt"))?,
            std::fs::read(user_tls.join("client.key"))?,
        )),
    };
    let user = Client::connect_with(&addr, user_identity(node.config())?, Some(&as_user)).await?;
    let answer = user
        .query(CHANNEL, "kv", to_args(&["get", "k"]), HashMap::new())
        .await?;
    assert_eq!(answer.payload, b"over tls");

    let bound_to_user = user.proposal(CHANNEL, "kv", to_args(&["get", "k"]), HashMap::new());
    let response = node.client.endorse(&bound_to_user).await?;
    let message = response.response.unwrap_or_default().message;
    assert!(
        message.contains("does not match the client's TLS certificate"),
        "a proposal bound to another connection is refused: {message}"
    );
    Ok(())
}

/// Transactions submitted together are validated together, across threads for a large block;
/// each still gets its own verdict, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_validated_together_each_get_their_own_verdict() -> Result<()> {
    let node = TestNode::start().await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    let client = &node.client;
    let mut envelopes = Vec::new();
    for n in 0..48 {
        let key = format!("k{n}");
        let proposal = client.proposal(CHANNEL, "kv", to_args(&["put", &key, "v"]), HashMap::new());
        let mut response = client.endorse(&proposal).await?;
        if n % 3 == 0 {
            response.endorsement = None;
        }
        envelopes.push(client.transaction_envelope(&proposal, &response));
    }
    let outcomes = futures_util::future::join_all(
        envelopes
            .into_iter()
            .map(|envelope| client.submit_envelope(envelope)),
    )
    .await;
    let mut blocks: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome?;
        *blocks.entry(outcome.block_number).or_default() += 1;
        let expected = if n % 3 == 0 {
            TxValidationCode::EndorsementPolicyFailure
        } else {
            TxValidationCode::Valid
        };
        assert_eq!(
            TxValidationCode::try_from(outcome.validation_code)?,
            expected,
            "transaction {n}"
        );
        let value = node.query_text("kv", &["get", &format!("k{n}")]).await?;
        assert_eq!(value.is_empty(), n % 3 == 0, "k{n} = {value:?}");
    }
    assert!(
        blocks.values().max() >= Some(&ccvm::validation::PARALLEL_VALIDATION_MIN_TXS),
        "a block large enough to be validated in parallel: {blocks:?}"
    );
    Ok(())
}

/// Fabric's own Node SDK (`fabric-network`) as a client: a member's evaluation works; an
/// impostor CA's, an expired and a revoked identity's are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabrics_node_sdk_is_let_in_only_with_a_valid_identity() -> Result<()> {
    let org = TestOrg::new("Org1MSP")?;
    let (_, revoked) = org.identity("gone", &["client"], Validity::from_now(DAY))?;
    let crls = org.org.peer_msp_dir().join("crls");
    std::fs::create_dir_all(&crls)?;
    std::fs::write(crls.join("crl.pem"), org.ca.revoke(&[&revoked.serial])?)?;
    let node = TestNode::start_for(&org.org, "Org1MSP", |_| {}).await?;
    let _kv = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("kv").await?;
    node.invoke("kv", &["put", "k", "for members"]).await?;

    let member = org.org.user_msp_dir();
    let answer = node_sdk_evaluate(&node, &member, "Org1MSP", "kv", &["get", "k"]).await?;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["payload"], "for members");

    let impostor_org = TestOrg::new("Org1MSP")?;
    impostor_org.identity("mallory", &["client"], Validity::from_now(DAY))?;
    org.identity("old", &["client"], shifted(-2 * 86400, DAY))?;
    let cases = [
        (
            impostor_org.dir.path().join("extra/mallory"),
            "is not signed by a CA of the MSP",
        ),
        (org.dir.path().join("extra/old"), "expired at"),
        (org.dir.path().join("extra/gone"), "is revoked"),
    ];
    for (msp_dir, reason) in cases {
        let answer = node_sdk_evaluate(&node, &msp_dir, "Org1MSP", "kv", &["get", "k"]).await?;
        assert_eq!(answer["ok"], false, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("access denied") && error.contains(reason),
            "expected {reason:?} in {error:?}"
        );
    }
    Ok(())
}
