//! `discovery.Discovery`: what Fabric's SDKs ask a peer before they endorse and submit with
//! discovery on — a channel's organizations and orderers, its peers, and the peers whose
//! endorsements a chaincode's policy needs. The node is its channels' only peer and their
//! orderer, so each answer names the node itself, as Fabric's peer describes itself: its
//! identity, its alive message and its signed state on the channel.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ccvm_proto::Message;
use ccvm_proto::discovery::discovery_server::{self, DiscoveryServer};
use ccvm_proto::discovery::query::Query as QueryKind;
use ccvm_proto::discovery::query_result::Result as QueryAnswer;
use ccvm_proto::discovery::{
    ChaincodeInterest, ChaincodeQueryResult, ConfigResult, EndorsementDescriptor, Endpoint,
    Endpoints, Error as QueryError, Layout, Peer, PeerMembershipResult, Peers, Query, QueryResult,
    Request as DiscoveryRequest, Response as DiscoveryResponse, SignedRequest,
};
use ccvm_proto::gossip::gossip_message::{Content, Tag};
use ccvm_proto::gossip::{
    AliveMessage, Chaincode, Envelope, GossipMessage, Member, PeerTime, Properties, StateInfo,
};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::debug;

use super::access::Access;
use super::channels::{Channel, Channels};
use super::status::ServiceError;
use super::system_chaincodes::built_in;
use super::user_chaincodes::DefinedChaincodes;
use crate::chaincode::ChaincodeSupport;
use crate::ledger::Ledger;
use crate::msp::{Identity, MspRole, ValidatedIdentity};
use crate::policy::APPLICATION_PREFIX;

/// What a query the client may not make, or one about a channel the node does not have, is
/// answered with (Fabric's text, which tells an outsider nothing about the channel).
const ACCESS_DENIED: &str = "access denied";
/// Most queries one request may make; more are refused as malformed.
pub const MAX_DISCOVERY_QUERIES: usize = 64;
/// The group of endorsers every endorsement layout names: the node.
const OWN_GROUP: &str = "G0";

/// The node's discovery service.
pub struct DiscoveryService {
    ledger: Ledger,
    channels: Arc<Channels>,
    /// Who may ask about the node itself.
    local: Arc<Access>,
    definitions: Arc<DefinedChaincodes>,
    /// Chaincodes running without a definition (started by hand in dev mode) are served too.
    support: ChaincodeSupport,
    node: OwnPeer,
}

impl DiscoveryService {
    /// The service of a node that signs as `identity` (validated as `validated`) and is
    /// reached at `endpoint` (`host:port`); `local` says who may ask about the node itself.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a separate part of the node the answers describe"
    )]
    pub(crate) fn server(
        ledger: Ledger,
        channels: Arc<Channels>,
        local: Arc<Access>,
        definitions: Arc<DefinedChaincodes>,
        support: ChaincodeSupport,
        identity: Arc<Identity>,
        validated: Arc<ValidatedIdentity>,
        endpoint: &str,
    ) -> DiscoveryServer<Self> {
        DiscoveryServer::new(Self {
            ledger,
            channels,
            local,
            definitions,
            support,
            node: OwnPeer::new(identity, validated, endpoint),
        })
    }

    /// Answers one query of `asker`.
    fn answer(&self, query: &Query, asker: &Asker<'_>) -> QueryAnswer {
        let Some(kind) = &query.query else {
            return refusal("the query asks nothing");
        };
        let channel_name = query.channel.as_str();
        if let QueryKind::LocalPeers(_) = kind {
            return if asker.local_admin(&self.local, self.node.msp_id()) {
                QueryAnswer::Members(self.node.local_membership())
            } else {
                refusal(ACCESS_DENIED)
            };
        }
        let Some(channel) = self
            .channels
            .get(channel_name)
            .filter(|channel| asker.channel_writer(channel_name, channel))
        else {
            debug!(channel = %channel_name, "discovery query refused");
            return refusal(ACCESS_DENIED);
        };
        let (channel, name) = (&*channel, channel_name);
        match kind {
            QueryKind::LocalPeers(_) => refusal(ACCESS_DENIED),
            QueryKind::ConfigQuery(_) => QueryAnswer::ConfigResult(self.config(channel)),
            QueryKind::PeerQuery(membership) => match &membership.filter {
                Some(filter) if !self.serves_all(name, filter) => {
                    QueryAnswer::Members(PeerMembershipResult::default())
                }
                _ => QueryAnswer::Members(self.channel_membership(name)),
            },
            QueryKind::CcQuery(chaincodes) => {
                let peer = self.node.on_channel(name, self.state(name));
                chaincodes
                    .interests
                    .iter()
                    .map(|interest| self.endorsers(channel, name, interest, &peer))
                    .collect::<Result<Vec<_>, _>>()
                    .map_or_else(
                        |refused| refusal(&refused),
                        |content| QueryAnswer::CcQueryRes(ChaincodeQueryResult { content }),
                    )
            }
        }
    }

    /// The channel's organizations and orderers, as its configuration names them; the node is
    /// the orderer of its own organization, at the address it is reached at now.
    fn config(&self, channel: &Channel) -> ConfigResult {
        let config = &channel.config;
        let orderers = config
            .orderers
            .iter()
            .map(|org| {
                let endpoint = if org.material.msp_id == self.node.msp_id() {
                    vec![endpoint_of(&self.node.endpoint)]
                } else {
                    org.endpoints
                        .iter()
                        .map(|address| endpoint_of(address))
                        .collect()
                };
                (org.material.msp_id.clone(), Endpoints { endpoint })
            })
            .collect();
        ConfigResult {
            msps: config
                .organizations
                .iter()
                .chain(config.orderers.iter().map(|org| &org.material))
                .map(|material| (material.msp_id.clone(), material.to_fabric_config()))
                .collect(),
            orderers,
        }
    }

    /// The channel's peers: the node, with its state on `channel`.
    fn channel_membership(&self, channel: &str) -> PeerMembershipResult {
        PeerMembershipResult {
            peers_by_org: HashMap::from([(
                self.node.msp_id().to_owned(),
                Peers {
                    peers: vec![self.node.on_channel(channel, self.state(channel))],
                },
            )]),
        }
    }

    /// The node's ledger height on `channel` and the chaincodes it serves there: those defined
    /// on the channel (their version is the definition's sequence, as Fabric's peer tells it),
    /// and those running without a definition.
    fn state(&self, channel: &str) -> Properties {
        let ledger_height = self
            .ledger
            .chain_info(channel)
            .map(|info| info.height)
            .unwrap_or_default();
        let mut chaincodes: Vec<Chaincode> = self
            .definitions
            .committed_on(channel)
            .into_iter()
            .map(|definition| Chaincode {
                name: definition.parameters.name,
                version: definition.parameters.sequence.to_string(),
                metadata: Vec::new(),
            })
            .collect();
        let mut undefined = self.running_user_chaincodes();
        undefined.retain(|name| chaincodes.iter().all(|defined| defined.name != *name));
        chaincodes.extend(undefined.into_iter().map(|name| Chaincode {
            name,
            ..Default::default()
        }));
        Properties {
            ledger_height,
            left_channel: false,
            chaincodes,
        }
    }

    /// Whether the node serves every chaincode `interest` names on `channel`.
    fn serves_all(&self, channel: &str, interest: &ChaincodeInterest) -> bool {
        interest
            .chaincodes
            .iter()
            .all(|call| self.endorsement_policy(channel, &call.name).is_some())
    }

    /// The names of the user chaincodes registered with the node, defined or not.
    fn running_user_chaincodes(&self) -> BTreeSet<String> {
        self.support
            .registry()
            .names()
            .iter()
            .map(|registered| registered.split(':').next().unwrap_or(registered))
            .filter(|name| built_in(name).is_none())
            .map(str::to_owned)
            .collect()
    }

    /// The endorsement policy of chaincode `name` on `channel`, if the node serves it: a
    /// definition's, the channel's default for a chaincode running without one, and none for
    /// a built-in system chaincode (the node alone answers for it).
    fn endorsement_policy(&self, channel: &str, name: &str) -> Option<Endorsing> {
        if built_in(name).is_some() {
            return Some(Endorsing::ByThisPeer);
        }
        if let Some(definition) = self.definitions.definition_on(channel, name) {
            return Some(Endorsing::Policy(definition.parameters.endorsement_policy));
        }
        self.running_user_chaincodes()
            .contains(name)
            .then(|| Endorsing::Policy(String::new()))
    }

    /// Who must endorse a transaction calling the chaincodes of `interest`: the node (`peer`,
    /// as a peer of `channel`), when its endorsement satisfies each of their policies.
    fn endorsers(
        &self,
        on: &Channel,
        channel: &str,
        interest: &ChaincodeInterest,
        peer: &Peer,
    ) -> Result<EndorsementDescriptor, String> {
        let Some(first) = interest.chaincodes.first() else {
            return Err("the chaincode interest names no chaincode".to_owned());
        };
        for call in &interest.chaincodes {
            let cannot = |why: &str| {
                format!(
                    "failed constructing descriptor for chaincode {}: {why}",
                    call.name
                )
            };
            let policy = match self.endorsement_policy(channel, &call.name) {
                None => return Err(cannot("this peer does not serve it on the channel")),
                Some(Endorsing::ByThisPeer) => continue,
                Some(Endorsing::Policy(policy)) => policy,
            };
            on.access
                .policies
                .check_endorsement(&policy, std::slice::from_ref(&self.node.validated))
                .map_err(|e| cannot(&format!("this peer alone cannot satisfy its policy: {e}")))?;
        }
        Ok(EndorsementDescriptor {
            chaincode: first.name.clone(),
            endorsers_by_groups: HashMap::from([(
                OWN_GROUP.to_owned(),
                Peers {
                    peers: vec![peer.clone()],
                },
            )]),
            layouts: vec![Layout {
                quantities_by_group: HashMap::from([(OWN_GROUP.to_owned(), 1)]),
            }],
        })
    }
}

#[tonic::async_trait]
impl discovery_server::Discovery for DiscoveryService {
    async fn discover(
        &self,
        request: Request<SignedRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let signed = request.into_inner();
        let request = DiscoveryRequest::decode(signed.payload.as_slice())
            .map_err(|e| ServiceError::Malformed(format!("undecodable discovery request: {e}")))?;
        let client_identity = request
            .authentication
            .map(|auth| auth.client_identity)
            .filter(|identity| !identity.is_empty())
            .ok_or_else(|| {
                Status::permission_denied("access denied, no authentication info in request")
            })?;
        if request.queries.len() > MAX_DISCOVERY_QUERIES {
            return Err(ServiceError::Malformed(format!(
                "{} queries in one request; at most {MAX_DISCOVERY_QUERIES} are answered",
                request.queries.len()
            ))
            .into());
        }
        let asker = Asker::new(&client_identity, &signed);
        let results = request
            .queries
            .iter()
            .map(|query| QueryResult {
                result: Some(self.answer(query, &asker)),
            })
            .collect();
        Ok(Response::new(DiscoveryResponse { results }))
    }
}

/// Whose endorsements a chaincode needs.
enum Endorsing {
    /// This peer's alone: a system chaincode built into the node.
    ByThisPeer,
    /// Those satisfying the policy in this text (empty for the channel's default).
    Policy(String),
}

/// Who asks: the signer of a request, verified against the organizations of what it asks
/// about.
struct Asker<'r> {
    identity: &'r [u8],
    request: &'r SignedRequest,
    /// Whether the asker is a writer of each channel asked about so far: the queries of one
    /// request often name the same channel, and its signature is verified once per channel.
    writer_of: RefCell<HashMap<String, bool>>,
}

impl<'r> Asker<'r> {
    fn new(identity: &'r [u8], request: &'r SignedRequest) -> Self {
        Self {
            identity,
            request,
            writer_of: RefCell::default(),
        }
    }

    /// The signer, when `access` trusts it and it signed the request.
    fn verified(&self, access: &Access) -> Option<Arc<ValidatedIdentity>> {
        access
            .trust
            .verify(
                self.identity,
                &self.request.payload,
                &self.request.signature,
            )
            .inspect_err(|e| debug!("discovery request from an unverified signer: {e}"))
            .ok()
    }

    /// Whether the asker may ask about `channel`, named `name`: one of its writers, as
    /// Fabric's discovery service requires.
    fn channel_writer(&self, name: &str, channel: &Channel) -> bool {
        if let Some(known) = self.writer_of.borrow().get(name) {
            return *known;
        }
        let writer = self.verified(&channel.access).is_some_and(|identity| {
            channel
                .access
                .policies
                .check(&format!("{APPLICATION_PREFIX}Writers"), &[identity])
                .is_ok()
        });
        self.writer_of.borrow_mut().insert(name.to_owned(), writer);
        writer
    }

    /// Whether the asker may ask about the node itself: an admin of its organization.
    fn local_admin(&self, local: &Access, msp_id: &str) -> bool {
        self.verified(local)
            .is_some_and(|identity| identity.is(msp_id, MspRole::Admin))
    }
}

/// An endpoint as a configuration names it, `host:port`.
fn endpoint_of(address: &str) -> Endpoint {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
    Endpoint {
        host: host.trim_matches(['[', ']']).to_owned(),
        port: port.parse().unwrap_or(0),
    }
}

fn refusal(content: &str) -> QueryAnswer {
    QueryAnswer::Error(QueryError {
        content: content.to_owned(),
    })
}

/// The node as discovery answers describe it.
struct OwnPeer {
    identity: Arc<Identity>,
    validated: Arc<ValidatedIdentity>,
    serialized: Vec<u8>,
    endpoint: String,
    /// Fabric's PKI id of the node: SHA-256 of its MSP id and certificate.
    pki_id: Vec<u8>,
    /// When the node started, in nanoseconds: the incarnation of its gossip timestamps.
    incarnation: u64,
    alive: Envelope,
}

impl OwnPeer {
    fn new(identity: Arc<Identity>, validated: Arc<ValidatedIdentity>, endpoint: &str) -> Self {
        let serialized = identity.serialized();
        let pki_id = Sha256::new()
            .chain_update(identity.msp_id())
            .chain_update(identity.cert_pem())
            .finalize()
            .to_vec();
        let incarnation = now_nanos();
        let alive = GossipMessage {
            tag: Tag::Empty as i32,
            content: Some(Content::AliveMsg(AliveMessage {
                membership: Some(Member {
                    endpoint: endpoint.to_owned(),
                    metadata: Vec::new(),
                    pki_id: pki_id.clone(),
                }),
                timestamp: Some(PeerTime {
                    inc_num: incarnation,
                    seq_num: 0,
                }),
                identity: Vec::new(),
            })),
            ..Default::default()
        };
        let alive = signed_envelope(&identity, &alive);
        Self {
            identity,
            validated,
            serialized,
            endpoint: endpoint.to_owned(),
            pki_id,
            incarnation,
            alive,
        }
    }

    fn msp_id(&self) -> &str {
        self.identity.msp_id()
    }

    /// The node as a member of no channel: its alive message and identity.
    fn local_membership(&self) -> PeerMembershipResult {
        PeerMembershipResult {
            peers_by_org: HashMap::from([(
                self.msp_id().to_owned(),
                Peers {
                    peers: vec![Peer {
                        state_info: None,
                        membership_info: Some(self.alive.clone()),
                        identity: self.serialized.clone(),
                    }],
                },
            )]),
        }
    }

    /// The node as a peer of `channel` in state `properties`.
    fn on_channel(&self, channel: &str, properties: Properties) -> Peer {
        let state = GossipMessage {
            tag: Tag::ChanOrOrg as i32,
            content: Some(Content::StateInfo(StateInfo {
                timestamp: Some(PeerTime {
                    inc_num: self.incarnation,
                    seq_num: now_nanos(),
                }),
                pki_id: self.pki_id.clone(),
                channel_mac: Sha256::new()
                    .chain_update(&self.pki_id)
                    .chain_update(channel)
                    .finalize()
                    .to_vec(),
                properties: Some(properties),
            })),
            ..Default::default()
        };
        Peer {
            state_info: Some(signed_envelope(&self.identity, &state)),
            membership_info: Some(self.alive.clone()),
            identity: self.serialized.clone(),
        }
    }
}

fn signed_envelope(identity: &Identity, message: &GossipMessage) -> Envelope {
    let payload = message.encode_to_vec();
    Envelope {
        signature: identity.sign(&payload),
        payload,
        secret_envelope: None,
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}
