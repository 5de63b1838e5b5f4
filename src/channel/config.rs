//! A channel's configuration as Fabric's configuration blocks carry it: the `common.Config`
//! tree of groups, values and policies that `configtxgen` writes and `configtxlator` reads,
//! and the typed view of it the node works with.
//!
//! The tree a node writes is the one `configtxgen` writes for an application channel with
//! Fabric 2.5 capabilities: `/Channel` (hashing, capabilities, `ANY Readers`, `ANY Writers`,
//! `MAJORITY Admins`), `/Channel/Application` (one group per organization with its `MSP` and
//! signature policies, the channel's implicit-meta policies, `ACLs`, capabilities) and
//! `/Channel/Orderer` (the ordering organizations with their endpoints, `ConsensusType`,
//! `BatchSize`, `BatchTimeout`, capabilities). Every item's `mod_policy` is `Admins`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use ccvm_proto::Message;
use ccvm_proto::common::implicit_meta_policy::Rule;
use ccvm_proto::common::policy::PolicyType;
use ccvm_proto::common::{
    BlockDataHashingStructure, Capabilities, Capability, ChannelHeader, Config, ConfigEnvelope,
    ConfigGroup, ConfigPolicy, ConfigValue, Envelope, HashingAlgorithm, Header, HeaderType,
    ImplicitMetaPolicy, OrdererAddresses, Payload, Policy, SignatureHeader,
};
use ccvm_proto::msp::{FabricMspConfig, MspConfig};
use ccvm_proto::orderer::{BatchSize, BatchTimeout, ConsensusType};
use ccvm_proto::protos::{AcLs as AclTable, ApiResource};
use rand::RngCore;

use crate::fabric::compute_tx_id;
use crate::msp::{FABRIC_MSP_TYPE, MspError, MspMaterial};
use crate::policy::{
    Acls, ChannelPolicies, ImplicitMeta, ImplicitRule, OrgPolicies, PolicyError, SignaturePolicy,
};

/// The group of the application's organizations and policies.
pub const APPLICATION_GROUP: &str = "Application";
/// The group of the ordering service's organizations and settings.
pub const ORDERER_GROUP: &str = "Orderer";
/// The consensus type a node's channels name: the node orders them alone.
pub const CONSENSUS_TYPE: &str = "solo";
/// The capabilities a new channel requires, by level, as Fabric 2.5's sample profiles set them.
const CHANNEL_CAPABILITY: &str = "V2_0";
const ORDERER_CAPABILITY: &str = "V2_0";
const APPLICATION_CAPABILITY: &str = "V2_5";
/// The policy that may modify every item, as `configtxgen` sets it.
const ADMINS: &str = "Admins";
/// `BlockDataHashingStructure.width` of a flat hash.
const FLAT_HASH_WIDTH: u32 = u32::MAX;
/// The only hashing algorithm Fabric supports.
const SHA256: &str = "SHA256";

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The envelope does not carry a channel configuration.
    #[error("not a configuration transaction: {0}")]
    NotConfig(String),
    /// An item is absent.
    #[error("the channel configuration has no {0}")]
    Missing(String),
    /// An item is there but cannot be used.
    #[error("the channel configuration's {item} {reason}")]
    Malformed {
        /// Which item.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An organization's MSP cannot be used.
    #[error(transparent)]
    Msp(#[from] MspError),
}

impl ConfigError {
    fn malformed(item: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Malformed {
            item: item.into(),
            reason: reason.to_string(),
        }
    }
}

/// An organization of the ordering service: its MSP, policies and where it takes
/// transactions.
#[derive(Debug, Clone)]
pub struct OrdererOrg {
    /// Its MSP.
    pub material: MspMaterial,
    /// Its `Readers`, `Writers` and `Admins`.
    pub policies: OrgPolicies,
    /// `host:port` of its ordering nodes.
    pub endpoints: Vec<String>,
}

/// How the ordering service cuts the channel's blocks, as Fabric's `BatchSize` and
/// `BatchTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most transactions in a block.
    pub max_message_count: u32,
    /// Most bytes of transactions in a block.
    pub absolute_max_bytes: u32,
    /// Bytes of transactions after which a block is cut.
    pub preferred_max_bytes: u32,
    /// How long the first transaction of a block waits for more.
    pub timeout: Duration,
}

/// The configuration of one channel.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// How many times the configuration was updated; 0 in the genesis block.
    pub sequence: u64,
    /// The application's organizations, in the order of `policies`' organizations.
    pub organizations: Vec<MspMaterial>,
    /// The application's policies: each organization's and the channel's.
    pub policies: ChannelPolicies,
    /// Which policy guards which resource (resource → policy path).
    pub acls: BTreeMap<String, String>,
    /// The ordering service's organizations.
    pub orderers: Vec<OrdererOrg>,
    /// Block cutting.
    pub batching: Batching,
}

impl ChannelConfig {
    /// A new channel of `organizations` (the node's own first) with Fabric's sample policies,
    /// Fabric's default ACLs with `acl_overrides` on top, and the node's organization as the
    /// ordering service, reached at `orderer_endpoint` and cutting blocks by `batching`.
    pub fn new_channel(
        organizations: Vec<MspMaterial>,
        acl_overrides: &BTreeMap<String, String>,
        orderer_endpoint: String,
        batching: Batching,
    ) -> Self {
        let org_policies: Vec<OrgPolicies> = organizations
            .iter()
            .map(|material| {
                OrgPolicies::fabric_defaults(&material.msp_id, material.node_ous.is_some())
            })
            .collect();
        let orderers = organizations
            .first()
            .zip(org_policies.first())
            .map(|(material, policies)| {
                let mut policies = policies.clone();
                policies.policies.retain(|name, _| name != "Endorsement");
                OrdererOrg {
                    material: material.clone(),
                    policies,
                    endpoints: vec![orderer_endpoint],
                }
            })
            .into_iter()
            .collect();
        Self {
            sequence: 0,
            policies: ChannelPolicies::fabric_defaults(org_policies),
            organizations,
            acls: Acls::channel_defaults(acl_overrides),
            orderers,
            batching,
        }
    }

    /// The configuration as a configuration block carries it.
    pub fn to_proto(&self) -> Config {
        let materials: HashMap<&str, &MspMaterial> = self
            .organizations
            .iter()
            .map(|material| (material.msp_id.as_str(), material))
            .collect();
        let application_orgs = self
            .policies
            .organizations()
            .iter()
            .filter_map(|org| {
                let material = materials.get(org.msp_id.as_str())?;
                Some((
                    org.msp_id.clone(),
                    org_group(material, org, BTreeMap::new()),
                ))
            })
            .collect();
        let application = ConfigGroup {
            groups: application_orgs,
            values: BTreeMap::from([
                item(
                    "ACLs",
                    AclTable {
                        acls: self
                            .acls
                            .iter()
                            .map(|(resource, policy)| {
                                (
                                    resource.clone(),
                                    ApiResource {
                                        policy_ref: policy.clone(),
                                    },
                                )
                            })
                            .collect(),
                    },
                ),
                capabilities(APPLICATION_CAPABILITY),
            ])
            .into_iter()
            .collect(),
            policies: self
                .policies
                .channel_policies()
                .iter()
                .map(|(name, meta)| (name.clone(), implicit_meta(meta)))
                .collect(),
            mod_policy: ADMINS.to_owned(),
            version: 0,
        };
        let orderer = ConfigGroup {
            groups: self
                .orderers
                .iter()
                .map(|org| {
                    let endpoints = BTreeMap::from([item(
                        "Endpoints",
                        OrdererAddresses {
                            addresses: org.endpoints.clone(),
                        },
                    )]);
                    (
                        org.material.msp_id.clone(),
                        org_group(&org.material, &org.policies, endpoints),
                    )
                })
                .collect(),
            values: BTreeMap::from([
                item(
                    "ConsensusType",
                    ConsensusType {
                        r#type: CONSENSUS_TYPE.to_owned(),
                        ..Default::default()
                    },
                ),
                item(
                    "BatchSize",
                    BatchSize {
                        max_message_count: self.batching.max_message_count,
                        absolute_max_bytes: self.batching.absolute_max_bytes,
                        preferred_max_bytes: self.batching.preferred_max_bytes,
                    },
                ),
                item(
                    "BatchTimeout",
                    BatchTimeout {
                        timeout: go_duration(self.batching.timeout),
                    },
                ),
                capabilities(ORDERER_CAPABILITY),
            ])
            .into_iter()
            .collect(),
            policies: implicit_metas(CHANNEL_POLICIES.iter().chain([&(
                "BlockValidation",
                ImplicitRule::Any,
                "Writers",
            )])),
            mod_policy: ADMINS.to_owned(),
            version: 0,
        };
        let channel = ConfigGroup {
            groups: [
                (APPLICATION_GROUP.to_owned(), application),
                (ORDERER_GROUP.to_owned(), orderer),
            ]
            .into_iter()
            .collect(),
            values: [
                item(
                    "HashingAlgorithm",
                    HashingAlgorithm {
                        name: SHA256.to_owned(),
                    },
                ),
                item(
                    "BlockDataHashingStructure",
                    BlockDataHashingStructure {
                        width: FLAT_HASH_WIDTH,
                    },
                ),
                capabilities(CHANNEL_CAPABILITY),
            ]
            .into_iter()
            .collect(),
            policies: implicit_metas(CHANNEL_POLICIES.iter()),
            mod_policy: ADMINS.to_owned(),
            version: 0,
        };
        Config {
            sequence: self.sequence,
            channel_group: Some(channel),
        }
    }

    /// Reads a configuration as a configuration block carries it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first item that is missing or cannot be used: a group, an
    /// organization's MSP, a policy of a kind the node does not evaluate (an organization's
    /// must be a signature policy, the application's implicit-meta), or undecodable values.
    pub fn from_proto(config: &Config) -> Result<Self, ConfigError> {
        let channel = config
            .channel_group
            .as_ref()
            .ok_or_else(|| ConfigError::Missing("channel group".to_owned()))?;
        let group = |name: &str| {
            channel
                .groups
                .get(name)
                .ok_or_else(|| ConfigError::Missing(format!("/Channel/{name} group")))
        };
        let application = group(APPLICATION_GROUP)?;
        let mut organizations = Vec::new();
        let mut org_policies = Vec::new();
        for (name, org) in &application.groups {
            let path = format!("/Channel/{APPLICATION_GROUP}/{name}");
            let (material, policies) = read_org(&path, org)?;
            organizations.push(material);
            org_policies.push(policies);
        }
        let mut channel_policies = BTreeMap::new();
        for (name, policy) in &application.policies {
            let path = format!("/Channel/{APPLICATION_GROUP}/{name} policy");
            channel_policies.insert(name.clone(), read_implicit_meta(&path, policy)?);
        }
        let acls = match application.values.get("ACLs") {
            None => BTreeMap::new(),
            Some(value) => {
                decode::<AclTable>(&format!("/Channel/{APPLICATION_GROUP}/ACLs"), value)?
                    .acls
                    .into_iter()
                    .map(|(resource, api)| (resource, api.policy_ref))
                    .collect()
            }
        };
        let orderer = group(ORDERER_GROUP)?;
        let mut orderers = Vec::new();
        for (name, org) in &orderer.groups {
            let path = format!("/Channel/{ORDERER_GROUP}/{name}");
            let (material, policies) = read_org(&path, org)?;
            let endpoints = match org.values.get("Endpoints") {
                None => Vec::new(),
                Some(value) => {
                    decode::<OrdererAddresses>(&format!("{path}/Endpoints"), value)?.addresses
                }
            };
            orderers.push(OrdererOrg {
                material,
                policies,
                endpoints,
            });
        }
        let value = |name: &str| {
            orderer
                .values
                .get(name)
                .ok_or_else(|| ConfigError::Missing(format!("/Channel/{ORDERER_GROUP}/{name}")))
        };
        let batch_size: BatchSize = decode(
            &format!("/Channel/{ORDERER_GROUP}/BatchSize"),
            value("BatchSize")?,
        )?;
        let timeout_path = format!("/Channel/{ORDERER_GROUP}/BatchTimeout");
        let timeout: BatchTimeout = decode(&timeout_path, value("BatchTimeout")?)?;
        let timeout = parse_go_duration(&timeout.timeout)
            .map_err(|reason| ConfigError::malformed(timeout_path, reason))?;
        Ok(Self {
            sequence: config.sequence,
            organizations,
            policies: ChannelPolicies::new(org_policies, channel_policies),
            acls,
            orderers,
            batching: Batching {
                max_message_count: batch_size.max_message_count,
                absolute_max_bytes: batch_size.absolute_max_bytes,
                preferred_max_bytes: batch_size.preferred_max_bytes,
                timeout,
            },
        })
    }
}

/// The configuration transaction of a new channel's block 0, as `configtxgen` makes it:
/// unsigned, with a fresh nonce and the transaction id derived from it.
pub fn genesis_envelope(channel: &str, config: &Config) -> Envelope {
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let channel_header = ChannelHeader {
        r#type: HeaderType::Config as i32,
        version: 1,
        timestamp: Some(SystemTime::now().into()),
        channel_id: channel.to_owned(),
        tx_id: compute_tx_id(&nonce, &[]),
        ..Default::default()
    };
    let signature_header = SignatureHeader {
        creator: Vec::new(),
        nonce: nonce.to_vec(),
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: signature_header.encode_to_vec(),
        }),
        data: ConfigEnvelope {
            config: Some(config.clone()),
            last_update: None,
        }
        .encode_to_vec(),
    };
    Envelope {
        payload: payload.encode_to_vec(),
        signature: Vec::new(),
    }
}

/// The configuration a configuration transaction carries.
///
/// # Errors
/// [`ConfigError::NotConfig`] for an envelope of another kind or one that does not decode.
pub fn config_of_envelope(envelope: &Envelope) -> Result<Config, ConfigError> {
    let not_config = |reason: &str| ConfigError::NotConfig(reason.to_owned());
    let payload = Payload::decode(envelope.payload.as_slice())
        .map_err(|_| not_config("the payload does not decode"))?;
    let header = payload
        .header
        .ok_or_else(|| not_config("the payload has no header"))?;
    let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
        .map_err(|_| not_config("the channel header does not decode"))?;
    if channel_header.r#type != HeaderType::Config as i32 {
        return Err(ConfigError::NotConfig(format!(
            "the header type is {}, not CONFIG",
            channel_header.r#type
        )));
    }
    ConfigEnvelope::decode(payload.data.as_slice())
        .map_err(|_| not_config("the config envelope does not decode"))?
        .config
        .ok_or_else(|| not_config("the config envelope holds no config"))
}

/// An organization's group: its MSP, its signature policies and `extra` values.
fn org_group(
    material: &MspMaterial,
    policies: &OrgPolicies,
    mut values: BTreeMap<String, ConfigValue>,
) -> ConfigGroup {
    values.extend([item(
        "MSP",
        MspConfig {
            r#type: FABRIC_MSP_TYPE,
            config: material.to_fabric_config().encode_to_vec(),
        },
    )]);
    ConfigGroup {
        groups: Default::default(),
        values: values.into_iter().collect(),
        policies: policies
            .policies
            .iter()
            .map(|(name, policy)| {
                (
                    name.clone(),
                    config_policy(PolicyType::Signature, policy.to_envelope()),
                )
            })
            .collect(),
        mod_policy: ADMINS.to_owned(),
        version: 0,
    }
}

/// An organization's MSP and signature policies from its group at `path`.
fn read_org(path: &str, group: &ConfigGroup) -> Result<(MspMaterial, OrgPolicies), ConfigError> {
    let msp_path = format!("{path}/MSP");
    let msp_value = group
        .values
        .get("MSP")
        .ok_or_else(|| ConfigError::Missing(msp_path.clone()))?;
    let msp: MspConfig = decode(&msp_path, msp_value)?;
    if msp.r#type != FABRIC_MSP_TYPE {
        return Err(ConfigError::malformed(
            msp_path,
            format!("is of MSP type {}, not Fabric's X.509 MSP", msp.r#type),
        ));
    }
    let fabric = FabricMspConfig::decode(msp.config.as_slice())
        .map_err(|e| ConfigError::malformed(&msp_path, e))?;
    let material = MspMaterial::from_fabric_config(&fabric)?;
    let mut policies = BTreeMap::new();
    for (name, policy) in &group.policies {
        let item = format!("{path}/{name} policy");
        let policy = policy
            .policy
            .as_ref()
            .ok_or_else(|| ConfigError::Missing(item.clone()))?;
        if policy.r#type != PolicyType::Signature as i32 {
            return Err(ConfigError::malformed(
                item,
                format!(
                    "is of type {}; an organization's must be a signature policy",
                    policy.r#type
                ),
            ));
        }
        let signature = SignaturePolicy::from_envelope(&policy.value)
            .map_err(|e: PolicyError| ConfigError::malformed(&item, e))?;
        policies.insert(name.clone(), signature);
    }
    Ok((
        material,
        OrgPolicies {
            msp_id: fabric.name,
            policies,
        },
    ))
}

fn read_implicit_meta(item: &str, policy: &ConfigPolicy) -> Result<ImplicitMeta, ConfigError> {
    let policy = policy
        .policy
        .as_ref()
        .ok_or_else(|| ConfigError::Missing(item.to_owned()))?;
    if policy.r#type != PolicyType::ImplicitMeta as i32 {
        return Err(ConfigError::malformed(
            item,
            format!(
                "is of type {}; ccvm evaluates implicit-meta policies at this level",
                policy.r#type
            ),
        ));
    }
    let meta = ImplicitMetaPolicy::decode(policy.value.as_slice())
        .map_err(|e| ConfigError::malformed(item, e))?;
    let rule = match Rule::try_from(meta.rule) {
        Ok(Rule::Any) => ImplicitRule::Any,
        Ok(Rule::All) => ImplicitRule::All,
        Ok(Rule::Majority) => ImplicitRule::Majority,
        Err(_) => {
            return Err(ConfigError::malformed(
                item,
                format!("has rule {}", meta.rule),
            ));
        }
    };
    Ok(ImplicitMeta {
        rule,
        sub_policy: meta.sub_policy,
    })
}

/// Policies of the channel and ordering groups, as `configtxgen`'s sample profiles set them:
/// name, rule, and the organizations' policy the rule combines.
const CHANNEL_POLICIES: [(&str, ImplicitRule, &str); 3] = [
    ("Readers", ImplicitRule::Any, "Readers"),
    ("Writers", ImplicitRule::Any, "Writers"),
    ("Admins", ImplicitRule::Majority, "Admins"),
];

/// A group's policies, each an implicit-meta policy (name, rule, sub-policy).
fn implicit_metas<'p>(
    policies: impl Iterator<Item = &'p (&'p str, ImplicitRule, &'p str)>,
) -> HashMap<String, ConfigPolicy> {
    policies
        .map(|&(name, rule, sub_policy)| {
            let meta = ImplicitMeta {
                rule,
                sub_policy: sub_policy.to_owned(),
            };
            (name.to_owned(), implicit_meta(&meta))
        })
        .collect()
}

fn implicit_meta(meta: &ImplicitMeta) -> ConfigPolicy {
    let rule = match meta.rule {
        ImplicitRule::Any => Rule::Any,
        ImplicitRule::All => Rule::All,
        ImplicitRule::Majority => Rule::Majority,
    };
    config_policy(
        PolicyType::ImplicitMeta,
        ImplicitMetaPolicy {
            sub_policy: meta.sub_policy.clone(),
            rule: rule as i32,
        }
        .encode_to_vec(),
    )
}

fn config_policy(kind: PolicyType, value: Vec<u8>) -> ConfigPolicy {
    ConfigPolicy {
        version: 0,
        policy: Some(Policy {
            r#type: kind as i32,
            value,
        }),
        mod_policy: ADMINS.to_owned(),
    }
}

/// A value named `name` holding `message`.
fn item(name: &str, message: impl Message) -> (String, ConfigValue) {
    (
        name.to_owned(),
        ConfigValue {
            version: 0,
            value: message.encode_to_vec(),
            mod_policy: ADMINS.to_owned(),
        },
    )
}

fn capabilities(name: &str) -> (String, ConfigValue) {
    item(
        "Capabilities",
        Capabilities {
            capabilities: [(name.to_owned(), Capability {})].into_iter().collect(),
        },
    )
}

fn decode<M: Message + Default>(item: &str, value: &ConfigValue) -> Result<M, ConfigError> {
    M::decode(value.value.as_slice()).map_err(|e| ConfigError::malformed(item, e))
}

/// A duration as Go writes it for Fabric's `BatchTimeout`: whole seconds as `2s`, else
/// milliseconds.
fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Reads a Go duration (`250ms`, `2s`, `1m30s`, `1.5h`): numbers, each with a unit of `ns`,
/// `us` (or `µs`), `ms`, `s`, `m` or `h`.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 250ms or 2s");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| invalid())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::dev_org::DevOrganization;

    fn new_channel() -> ChannelConfig {
        let dir = tempfile::tempdir().unwrap();
        let org = DevOrganization::at(dir.path());
        org.create_if_absent("DevMSP").unwrap();
        let material = MspMaterial::load(&org.msp_dir(), "DevMSP").unwrap();
        ChannelConfig::new_channel(
            vec![material],
            &BTreeMap::from([(
                "qscc/GetChainInfo".to_owned(),
                "/Channel/Application/Admins".to_owned(),
            )]),
            "127.0.0.1:7051".to_owned(),
            Batching {
                max_message_count: 500,
                absolute_max_bytes: 100 << 20,
                preferred_max_bytes: 16 << 20,
                timeout: Duration::from_millis(250),
            },
        )
    }

    #[test]
    fn a_new_channel_survives_the_round_trip_through_its_configuration_block() {
        let config = new_channel();
        let read = ChannelConfig::from_proto(&config.to_proto()).unwrap();
        assert_eq!(read.sequence, 0);
        assert_eq!(
            read.organizations[0].root_certs,
            config.organizations[0].root_certs
        );
        assert_eq!(
            read.policies.channel_policies(),
            config.policies.channel_policies()
        );
        let org = &read.policies.organizations()[0];
        assert_eq!(org.msp_id, "DevMSP");
        assert_eq!(org.policies, config.policies.organizations()[0].policies);
        assert_eq!(
            read.acls.get("qscc/GetChainInfo").map(String::as_str),
            Some("/Channel/Application/Admins"),
            "the node's overrides are written into the channel"
        );
        assert_eq!(
            read.acls.get("peer/Propose").map(String::as_str),
            Some("/Channel/Application/Writers")
        );
        assert_eq!(read.orderers[0].endpoints, ["127.0.0.1:7051"]);
        assert!(
            !read.orderers[0]
                .policies
                .policies
                .contains_key("Endorsement")
        );
        assert_eq!(read.batching, config.batching);
    }

    #[test]
    fn a_configuration_the_node_cannot_serve_is_refused_with_the_item_named() {
        let mut no_application = new_channel().to_proto();
        if let Some(group) = no_application.channel_group.as_mut() {
            group.groups.remove(APPLICATION_GROUP);
        }
        let refused = ChannelConfig::from_proto(&no_application).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the channel configuration has no /Channel/Application group"
        );

        let mut signature_at_channel_level = new_channel().to_proto();
        let application = signature_at_channel_level
            .channel_group
            .as_mut()
            .and_then(|group| group.groups.get_mut(APPLICATION_GROUP))
            .unwrap();
        let signature = application.groups["DevMSP"].policies["Readers"].clone();
        application.policies.insert("Readers".to_owned(), signature);
        let refused = ChannelConfig::from_proto(&signature_at_channel_level).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the channel configuration's /Channel/Application/Readers policy is of type 1; ccvm evaluates implicit-meta policies at this level"
        );

        let mut garbled_batch = new_channel().to_proto();
        let orderer = garbled_batch
            .channel_group
            .as_mut()
            .and_then(|group| group.groups.get_mut(ORDERER_GROUP))
            .unwrap();
        orderer.values.insert(
            "BatchTimeout".to_owned(),
            item(
                "BatchTimeout",
                BatchTimeout {
                    timeout: "soon".to_owned(),
                },
            )
            .1,
        );
        let refused = ChannelConfig::from_proto(&garbled_batch).unwrap_err();
        assert_eq!(
            refused.to_string(),
            r#"the channel configuration's /Channel/Orderer/BatchTimeout "soon" is not a duration such as 250ms or 2s"#
        );
    }

    #[test]
    fn the_genesis_transaction_carries_the_configuration_and_nothing_else_does() {
        let config = new_channel().to_proto();
        let envelope = genesis_envelope("mychannel", &config);
        assert_eq!(config_of_envelope(&envelope).unwrap(), config);
        let refused = config_of_envelope(&Envelope::default()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not a configuration transaction: the payload has no header"
        );
    }

    #[test]
    fn go_durations_read_as_fabric_writes_them() {
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("2 seconds"),
            Err(r#""2 seconds" is not a duration such as 250ms or 2s"#.to_owned())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5").is_err());
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
    }
}
