//! `discovery.Discovery`: what Fabric's SDKs ask a peer before they endorse and submit with
//! discovery on — a channel's organizations and orderers, its peers, and the peers whose
//! endorsements a chaincode's policy needs. The node is its channels' only peer and their
//! orderer, so each answer names the node itself, as Fabric's peer describes itself: its
//! identity, its alive message and its signed state on the channel.

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
use ccvm_proto::msp::{FabricMspConfig, FabricNodeOUs, FabricOuIdentifier};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::access::Access;
use super::status::ServiceError;
use super::system_chaincodes::built_in;
use super::user_chaincodes::DefinedChaincodes;
use crate::chaincode::ChaincodeSupport;
use crate::ledger::Ledger;
use crate::msp::{Identity, MspMaterial, MspRole, NodeOus, OuIdentifier, ValidatedIdentity};
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
    access: Arc<Access>,
    definitions: Arc<DefinedChaincodes>,
    /// Chaincodes running without a definition (started by hand in dev mode) are served too.
    support: ChaincodeSupport,
    node: OwnPeer,
    /// Each trusted organization as the channel's configuration describes it.
    msps: HashMap<String, FabricMspConfig>,
}

impl DiscoveryService {
    /// The service of a node that signs as `identity` (validated as `validated`), is reached
    /// at `endpoint` (`host:port`) and trusts the organizations of `materials`.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a separate part of the node the answers describe"
    )]
    pub(crate) fn server(
        ledger: Ledger,
        access: Arc<Access>,
        definitions: Arc<DefinedChaincodes>,
        support: ChaincodeSupport,
        identity: Arc<Identity>,
        validated: Arc<ValidatedIdentity>,
        endpoint: &str,
        materials: &[MspMaterial],
    ) -> DiscoveryServer<Self> {
        let msps = materials
            .iter()
            .map(|material| (material.msp_id.clone(), msp_config(material)))
            .collect();
        DiscoveryServer::new(Self {
            ledger,
            access,
            definitions,
            support,
            node: OwnPeer::new(identity, validated, endpoint),
            msps,
        })
    }

    /// Answers one query of `asker`.
    fn answer(&self, query: &Query, asker: &Asker) -> QueryAnswer {
        let Some(kind) = &query.query else {
            return refusal("the query asks nothing");
        };
        let channel = query.channel.as_str();
        match kind {
            QueryKind::LocalPeers(_) if asker.local_admin(self.node.msp_id()) => {
                QueryAnswer::Members(self.node.local_membership())
            }
            QueryKind::LocalPeers(_) => refusal(ACCESS_DENIED),
            _ if !self.may_ask_about(channel, asker) => {
                debug!(%channel, "discovery query refused");
                refusal(ACCESS_DENIED)
            }
            QueryKind::ConfigQuery(_) => QueryAnswer::ConfigResult(self.config()),
            QueryKind::PeerQuery(membership) => match &membership.filter {
                Some(filter) if !self.serves_all(channel, filter) => {
                    QueryAnswer::Members(PeerMembershipResult::default())
                }
                _ => QueryAnswer::Members(self.channel_membership(channel)),
            },
            QueryKind::CcQuery(chaincodes) => {
                let peer = self.node.on_channel(channel, self.state(channel));
                chaincodes
                    .interests
                    .iter()
                    .map(|interest| self.endorsers(channel, interest, &peer))
                    .collect::<Result<Vec<_>, _>>()
                    .map_or_else(
                        |refused| refusal(&refused),
                        |content| QueryAnswer::CcQueryRes(ChaincodeQueryResult { content }),
                    )
            }
        }
    }

    /// Whether `asker` may ask about `channel`: the node has it and the asker is one of its
    /// writers.
    fn may_ask_about(&self, channel: &str, asker: &Asker) -> bool {
        let has_channel = self
            .ledger
            .has_channel(channel)
            .inspect_err(|e| warn!(%channel, "cannot tell whether the channel exists: {e}"))
            .unwrap_or(false);
        has_channel && asker.channel_writer(&self.access)
    }

    /// The channel's organizations, and the node as the orderer of its own organization.
    fn config(&self) -> ConfigResult {
        let (host, port) = self.node.host_and_port();
        ConfigResult {
            msps: self.msps.clone(),
            orderers: HashMap::from([(
                self.node.msp_id().to_owned(),
                Endpoints {
                    endpoint: vec![Endpoint {
                        host: host.to_owned(),
                        port,
                    }],
                },
            )]),
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
            self.access
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
        let asker = Asker::of(&self.access, &client_identity, &signed);
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

/// Who asks: the signer of the request, when it is a valid identity that signed it.
struct Asker(Option<Arc<ValidatedIdentity>>);

impl Asker {
    /// The signer of `request`, verified against the node's trusted organizations.
    fn of(access: &Access, identity: &[u8], request: &SignedRequest) -> Self {
        Self(
            access
                .trust
                .verify(identity, &request.payload, &request.signature)
                .inspect_err(|e| debug!("discovery request from an unverified signer: {e}"))
                .ok(),
        )
    }

    /// Whether the asker may ask about a channel: a channel writer, as Fabric's discovery
    /// service requires.
    fn channel_writer(&self, access: &Access) -> bool {
        self.0.as_ref().is_some_and(|identity| {
            access
                .policies
                .check(
                    &format!("{APPLICATION_PREFIX}Writers"),
                    std::slice::from_ref(identity),
                )
                .is_ok()
        })
    }

    /// Whether the asker may ask about the node itself: an admin of its organization.
    fn local_admin(&self, msp_id: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|identity| identity.is(msp_id, MspRole::Admin))
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

    /// The host and port of the node's endpoint.
    fn host_and_port(&self) -> (&str, u32) {
        let (host, port) = self
            .endpoint
            .rsplit_once(':')
            .unwrap_or((self.endpoint.as_str(), ""));
        (host.trim_matches(['[', ']']), port.parse().unwrap_or(0))
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

/// An organization as a channel's configuration carries it: certificates in PEM.
fn msp_config(material: &MspMaterial) -> FabricMspConfig {
    FabricMspConfig {
        name: material.msp_id.clone(),
        root_certs: pem_all("CERTIFICATE", &material.root_certs),
        intermediate_certs: pem_all("CERTIFICATE", &material.intermediate_certs),
        admins: pem_all("CERTIFICATE", &material.admin_certs),
        revocation_list: pem_all("X509 CRL", &material.crls),
        organizational_unit_identifiers: material.member_ous.iter().map(ou_identifier).collect(),
        tls_root_certs: pem_all("CERTIFICATE", &material.tls_root_certs),
        tls_intermediate_certs: pem_all("CERTIFICATE", &material.tls_intermediate_certs),
        fabric_node_ous: material.node_ous.as_ref().map(node_ous),
        ..Default::default()
    }
}

fn node_ous(ous: &NodeOus) -> FabricNodeOUs {
    FabricNodeOUs {
        enable: true,
        client_ou_identifier: ous.client.as_ref().map(ou_identifier),
        peer_ou_identifier: ous.peer.as_ref().map(ou_identifier),
        admin_ou_identifier: ous.admin.as_ref().map(ou_identifier),
        orderer_ou_identifier: ous.orderer.as_ref().map(ou_identifier),
    }
}

fn ou_identifier(ou: &OuIdentifier) -> FabricOuIdentifier {
    FabricOuIdentifier {
        certificate: ou
            .certificate
            .as_ref()
            .map(|der| pem_of("CERTIFICATE", der))
            .unwrap_or_default(),
        organizational_unit_identifier: ou.ou.clone(),
    }
}

fn pem_all(tag: &str, ders: &[Vec<u8>]) -> Vec<Vec<u8>> {
    ders.iter().map(|der| pem_of(tag, der)).collect()
}

fn pem_of(tag: &str, der: &[u8]) -> Vec<u8> {
    pem::encode(&pem::Pem::new(tag, der)).into_bytes()
}
