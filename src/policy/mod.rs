//! Policies the way a Fabric channel defines them: each organization's `Readers`, `Writers`,
//! `Admins` and `Endorsement` signature policies, the channel's implicit-meta policies over them
//! (`ANY Readers`, `MAJORITY Endorsement`, ...), and the ACLs that name which policy guards
//! which resource. Evaluation is data in, verdict out.

mod acl;
mod signature;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use acl::{
    ADMIN_SERVICE, Acls, EVENT_BLOCK, EVENT_FILTERED_BLOCK, GATEWAY_CHAINCODE_EVENTS,
    GATEWAY_COMMIT_STATUS, PROPOSE, resource_of,
};
pub use signature::{MAX_POLICY_DEPTH, Principal, SignaturePolicy, SignatureRule};

use crate::msp::{MspRole, ValidatedIdentity};

/// Where channel-level application policies live in Fabric's policy paths.
pub const APPLICATION_PREFIX: &str = "/Channel/Application/";

/// Why a policy could not be read or was not satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not a policy.
    #[error("policy {text:?} does not parse: {reason}")]
    Parse {
        /// The text.
        text: String,
        /// Where and why.
        reason: String,
    },
    /// No such policy on the channel.
    #[error("no policy {0} on this channel")]
    Unknown(String),
    /// The signers do not satisfy it.
    #[error("the signature set does not satisfy policy {0}")]
    NotSatisfied(String),
}

/// How an implicit-meta policy combines the organizations' sub-policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImplicitRule {
    /// At least one organization.
    Any,
    /// Every organization.
    All,
    /// More than half of the organizations.
    Majority,
}

impl ImplicitRule {
    /// Whether `satisfied` of `total` organizations' sub-policies are enough.
    fn holds(self, satisfied: usize, total: usize) -> bool {
        match self {
            Self::Any => satisfied >= 1,
            Self::All => satisfied == total,
            Self::Majority => satisfied > total / 2,
        }
    }
}

/// An implicit-meta policy such as `MAJORITY Endorsement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplicitMeta {
    /// The rule.
    pub rule: ImplicitRule,
    /// The name of the organizations' policy it combines.
    pub sub_policy: String,
}

impl ImplicitMeta {
    /// Parses `ANY|ALL|MAJORITY Name`.
    ///
    /// # Errors
    /// [`PolicyError::Parse`].
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let parse_error = |reason: &str| PolicyError::Parse {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (rule, sub_policy) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| parse_error("expected ANY, ALL or MAJORITY and a policy name"))?;
        let rule = match rule {
            "ANY" => ImplicitRule::Any,
            "ALL" => ImplicitRule::All,
            "MAJORITY" => ImplicitRule::Majority,
            _ => return Err(parse_error("expected ANY, ALL or MAJORITY")),
        };
        let sub_policy = sub_policy.trim();
        if sub_policy.is_empty() || sub_policy.contains(char::is_whitespace) {
            return Err(parse_error("expected one policy name"));
        }
        Ok(Self {
            rule,
            sub_policy: sub_policy.to_owned(),
        })
    }
}

/// An organization as a channel member: its MSP id and its policies by name.
#[derive(Debug, Clone)]
pub struct OrgPolicies {
    /// The MSP id.
    pub msp_id: String,
    /// `Readers`, `Writers`, `Admins`, `Endorsement`, ...
    pub policies: BTreeMap<String, SignaturePolicy>,
}

impl OrgPolicies {
    /// Fabric's sample policies for an organization: with NodeOUs, readers are its admins, peers
    /// and clients, writers its admins and clients, endorsers its peers; without, any member.
    pub fn fabric_defaults(msp_id: &str, node_ous: bool) -> Self {
        let principals = |roles: &[MspRole]| {
            SignaturePolicy::any_of(
                roles
                    .iter()
                    .map(|role| Principal {
                        msp_id: msp_id.to_owned(),
                        role: *role,
                    })
                    .collect(),
            )
        };
        let (readers, writers, endorsement) = if node_ous {
            (
                principals(&[MspRole::Admin, MspRole::Peer, MspRole::Client]),
                principals(&[MspRole::Admin, MspRole::Client]),
                principals(&[MspRole::Peer]),
            )
        } else {
            let member = principals(&[MspRole::Member]);
            (member.clone(), member.clone(), member)
        };
        Self {
            msp_id: msp_id.to_owned(),
            policies: BTreeMap::from([
                ("Readers".to_owned(), readers),
                ("Writers".to_owned(), writers),
                ("Admins".to_owned(), principals(&[MspRole::Admin])),
                ("Endorsement".to_owned(), endorsement),
            ]),
        }
    }
}

/// The policies of one channel's application: its organizations' and its own.
#[derive(Debug, Clone)]
pub struct ChannelPolicies {
    orgs: Vec<OrgPolicies>,
    channel: BTreeMap<String, ImplicitMeta>,
}

impl ChannelPolicies {
    /// A channel of `orgs` with Fabric's default application policies: `ANY Readers`,
    /// `ANY Writers`, `MAJORITY Admins`, `MAJORITY Endorsement` and `LifecycleEndorsement`
    /// as `MAJORITY Endorsement`.
    pub fn fabric_defaults(orgs: Vec<OrgPolicies>) -> Self {
        let meta = |rule, sub: &str| ImplicitMeta {
            rule,
            sub_policy: sub.to_owned(),
        };
        Self::new(
            orgs,
            BTreeMap::from([
                ("Readers".to_owned(), meta(ImplicitRule::Any, "Readers")),
                ("Writers".to_owned(), meta(ImplicitRule::Any, "Writers")),
                ("Admins".to_owned(), meta(ImplicitRule::Majority, "Admins")),
                (
                    "Endorsement".to_owned(),
                    meta(ImplicitRule::Majority, "Endorsement"),
                ),
                (
                    "LifecycleEndorsement".to_owned(),
                    meta(ImplicitRule::Majority, "Endorsement"),
                ),
            ]),
        )
    }

    /// A channel of `orgs` whose own policies, by name, are `channel`.
    pub fn new(orgs: Vec<OrgPolicies>, channel: BTreeMap<String, ImplicitMeta>) -> Self {
        Self { orgs, channel }
    }

    /// The organizations' policies.
    pub fn organizations(&self) -> &[OrgPolicies] {
        &self.orgs
    }

    /// The channel's own policies by name.
    pub fn channel_policies(&self) -> &BTreeMap<String, ImplicitMeta> {
        &self.channel
    }

    /// The MSP ids of the channel's organizations.
    pub fn msp_ids(&self) -> impl Iterator<Item = &str> {
        self.orgs.iter().map(|org| org.msp_id.as_str())
    }

    /// Checks that `signers` (distinct identities) satisfy the policy at `path`:
    /// `/Channel/Application/NAME` for a channel policy, `/Channel/Application/MSPID/NAME` for an
    /// organization's.
    ///
    /// # Errors
    /// [`PolicyError::Unknown`] for a path the channel has no policy at,
    /// [`PolicyError::NotSatisfied`] otherwise.
    pub fn check(&self, path: &str, signers: &[Arc<ValidatedIdentity>]) -> Result<(), PolicyError> {
        let satisfied = match self.find(path)? {
            Found::Channel(meta) => self.meta_satisfied(meta, signers),
            Found::Organization(policy) => policy.is_satisfied_by(signers),
        };
        if satisfied {
            Ok(())
        } else {
            Err(PolicyError::NotSatisfied(path.to_owned()))
        }
    }

    /// The policy at `path`.
    fn find(&self, path: &str) -> Result<Found<'_>, PolicyError> {
        let unknown = || PolicyError::Unknown(path.to_owned());
        let relative = path.strip_prefix(APPLICATION_PREFIX).ok_or_else(unknown)?;
        match relative.split_once('/') {
            None => self
                .channel
                .get(relative)
                .map(Found::Channel)
                .ok_or_else(unknown),
            Some((msp_id, name)) => self
                .orgs
                .iter()
                .find(|org| org.msp_id == msp_id)
                .and_then(|org| org.policies.get(name))
                .map(Found::Organization)
                .ok_or_else(unknown),
        }
    }

    /// Checks that an endorsement policy given as text can be evaluated on this channel: a
    /// signature policy that parses, or a path (the channel's `Endorsement` policy for empty
    /// text) the channel has a policy at.
    ///
    /// # Errors
    /// [`PolicyError::Parse`] or [`PolicyError::Unknown`].
    pub fn check_endorsement_text(&self, policy: &str) -> Result<(), PolicyError> {
        match EndorsementPolicy::parse(policy)? {
            EndorsementPolicy::Channel(path) => self.find(&path).map(|_| ()),
            EndorsementPolicy::Signature(_) => Ok(()),
        }
    }

    /// Checks an endorsement policy given as text (see [`EndorsementPolicy::parse`]).
    ///
    /// # Errors
    /// As [`ChannelPolicies::check`], or [`PolicyError::Parse`].
    pub fn check_endorsement(
        &self,
        policy: &str,
        signers: &[Arc<ValidatedIdentity>],
    ) -> Result<(), PolicyError> {
        match EndorsementPolicy::parse(policy)? {
            EndorsementPolicy::Channel(path) => self.check(&path, signers),
            EndorsementPolicy::Signature(signature) if signature.is_satisfied_by(signers) => Ok(()),
            EndorsementPolicy::Signature(_) => {
                Err(PolicyError::NotSatisfied(policy.trim().to_owned()))
            }
        }
    }

    fn meta_satisfied(&self, meta: &ImplicitMeta, signers: &[Arc<ValidatedIdentity>]) -> bool {
        let subs: Vec<&SignaturePolicy> = self
            .orgs
            .iter()
            .filter_map(|org| org.policies.get(&meta.sub_policy))
            .collect();
        let satisfied = subs
            .iter()
            .filter(|policy| policy.is_satisfied_by(signers))
            .count();
        meta.rule.holds(satisfied, subs.len())
    }

    /// Checks the policy at `path` counting each organization of `agreeing` as satisfying its
    /// own policies and every other organization as not: how organizations' approvals of a
    /// chaincode definition count toward `LifecycleEndorsement`, whose endorsements each come
    /// from a peer of an approving organization.
    ///
    /// # Errors
    /// As [`ChannelPolicies::check`].
    pub fn check_organizations(
        &self,
        path: &str,
        agreeing: &BTreeSet<String>,
    ) -> Result<(), PolicyError> {
        let satisfied = match self.find(path)? {
            Found::Channel(meta) => {
                let (total, satisfied) = self
                    .orgs
                    .iter()
                    .filter(|org| org.policies.contains_key(&meta.sub_policy))
                    .fold((0, 0), |(total, satisfied), org| {
                        (
                            total + 1,
                            satisfied + usize::from(agreeing.contains(&org.msp_id)),
                        )
                    });
                meta.rule.holds(satisfied, total)
            }
            Found::Organization(_) => path
                .strip_prefix(APPLICATION_PREFIX)
                .and_then(|relative| relative.split_once('/'))
                .is_some_and(|(msp_id, _)| agreeing.contains(msp_id)),
        };
        if satisfied {
            Ok(())
        } else {
            Err(PolicyError::NotSatisfied(path.to_owned()))
        }
    }
}

/// An endorsement policy as a chaincode definition keeps it, in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndorsementPolicy {
    /// A policy of the channel, by path.
    Channel(String),
    /// A signature policy in Fabric's language.
    Signature(SignaturePolicy),
}

impl EndorsementPolicy {
    /// Reads the text: empty is the channel's `Endorsement` policy, a path starting with `/`
    /// is a channel policy, anything else a signature policy.
    ///
    /// # Errors
    /// [`PolicyError::Parse`] for a signature policy that does not parse.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        if text.is_empty() {
            Ok(Self::Channel(format!("{APPLICATION_PREFIX}Endorsement")))
        } else if text.starts_with('/') {
            Ok(Self::Channel(text.to_owned()))
        } else {
            SignaturePolicy::parse(text).map(Self::Signature)
        }
    }
}

/// A policy found at a path: a channel-wide implicit-meta policy or an organization's.
enum Found<'p> {
    Channel(&'p ImplicitMeta),
    Organization(&'p SignaturePolicy),
}

/// Drops repeated identities from `signers`, keeping the first of each: one identity counts
/// once however many times it signed.
pub fn distinct(signers: Vec<Arc<ValidatedIdentity>>) -> Vec<Arc<ValidatedIdentity>> {
    let mut kept: Vec<Arc<ValidatedIdentity>> = Vec::with_capacity(signers.len());
    for signer in signers {
        if !kept.iter().any(|seen| **seen == *signer) {
            kept.push(signer);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::{NodeRole, PublicKey};

    /// A validated identity of `msp_id` in `role`, told apart from others by `tag`.
    pub(crate) fn signer(msp_id: &str, role: NodeRole, tag: u8) -> Arc<ValidatedIdentity> {
        let mut point = vec![4u8; 65];
        point[1] = tag;
        Arc::new(ValidatedIdentity {
            msp_id: msp_id.to_owned(),
            node_role: Some(role),
            listed_admin: false,
            node_ous: true,
            public_key: PublicKey::from_point(&point).expect("a P-256 point"),
            not_before: 0,
            not_after: u64::MAX,
        })
    }

    fn channel(orgs: &[&str]) -> ChannelPolicies {
        ChannelPolicies::fabric_defaults(
            orgs.iter()
                .map(|msp_id| OrgPolicies::fabric_defaults(msp_id, true))
                .collect(),
        )
    }

    #[test]
    fn majority_endorsement_needs_more_than_half_of_the_organizations() {
        let policies = channel(&["Org1MSP", "Org2MSP", "Org3MSP"]);
        let endorsement = "/Channel/Application/Endorsement";
        let one = [signer("Org1MSP", NodeRole::Peer, 1)];
        assert_eq!(
            policies.check(endorsement, &one),
            Err(PolicyError::NotSatisfied(endorsement.to_owned()))
        );
        let two = [
            signer("Org1MSP", NodeRole::Peer, 1),
            signer("Org3MSP", NodeRole::Peer, 2),
        ];
        assert_eq!(policies.check(endorsement, &two), Ok(()));
        let clients = [
            signer("Org1MSP", NodeRole::Client, 1),
            signer("Org2MSP", NodeRole::Client, 2),
        ];
        assert!(
            policies.check(endorsement, &clients).is_err(),
            "clients do not endorse"
        );
    }

    #[test]
    fn approving_organizations_count_toward_an_implicit_meta_policy() {
        let policies = channel(&["Org1MSP", "Org2MSP", "Org3MSP"]);
        let orgs = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        let lifecycle = "/Channel/Application/LifecycleEndorsement";
        assert_eq!(
            policies.check_organizations(lifecycle, &orgs(&["Org1MSP"])),
            Err(PolicyError::NotSatisfied(lifecycle.to_owned()))
        );
        assert_eq!(
            policies.check_organizations(lifecycle, &orgs(&["Org1MSP", "Org3MSP"])),
            Ok(())
        );
        assert_eq!(
            policies.check_organizations(lifecycle, &orgs(&["Org1MSP", "Org9MSP"])),
            Err(PolicyError::NotSatisfied(lifecycle.to_owned())),
            "an organization outside the channel does not count"
        );
        assert!(
            policies
                .check_organizations(
                    "/Channel/Application/Org2MSP/Endorsement",
                    &orgs(&["Org2MSP"])
                )
                .is_ok()
        );
        assert!(
            policies
                .check_organizations(
                    "/Channel/Application/Org2MSP/Endorsement",
                    &orgs(&["Org1MSP"])
                )
                .is_err()
        );
        assert!(matches!(
            policies.check_organizations("/Channel/Application/Nothing", &orgs(&["Org1MSP"])),
            Err(PolicyError::Unknown(_))
        ));
    }

    #[test]
    fn writers_are_admins_and_clients_and_readers_also_peers() {
        let policies = channel(&["Org1MSP"]);
        let peer = [signer("Org1MSP", NodeRole::Peer, 1)];
        assert!(
            policies
                .check("/Channel/Application/Writers", &peer)
                .is_err()
        );
        assert_eq!(
            policies.check("/Channel/Application/Readers", &peer),
            Ok(())
        );
        let admin = [signer("Org1MSP", NodeRole::Admin, 2)];
        assert_eq!(
            policies.check("/Channel/Application/Writers", &admin),
            Ok(())
        );
        assert_eq!(
            policies.check("/Channel/Application/Org1MSP/Admins", &admin),
            Ok(())
        );
        assert_eq!(
            policies.check("/Channel/Application/Org9MSP/Admins", &admin),
            Err(PolicyError::Unknown(
                "/Channel/Application/Org9MSP/Admins".to_owned()
            ))
        );
    }

    #[test]
    fn an_endorsement_policy_is_a_signature_policy_a_path_or_the_channel_default() {
        let policies = channel(&["Org1MSP", "Org2MSP"]);
        let one = [signer("Org1MSP", NodeRole::Peer, 1)];
        assert!(
            policies.check_endorsement("", &one).is_err(),
            "MAJORITY of 2"
        );
        assert_eq!(
            policies.check_endorsement("OR('Org1MSP.peer','Org2MSP.peer')", &one),
            Ok(())
        );
        assert!(
            policies
                .check_endorsement("/Channel/Application/LifecycleEndorsement", &one)
                .is_err()
        );
        assert!(matches!(
            policies.check_endorsement("AND('Org1MSP.peer'", &one),
            Err(PolicyError::Parse { .. })
        ));
    }

    #[test]
    fn an_endorsement_policy_text_is_checked_against_the_channel() {
        let policies = channel(&["Org1MSP"]);
        assert_eq!(policies.check_endorsement_text(""), Ok(()));
        assert_eq!(
            policies.check_endorsement_text("/Channel/Application/Org1MSP/Endorsement"),
            Ok(())
        );
        assert_eq!(
            policies.check_endorsement_text("OR('Org1MSP.peer')"),
            Ok(())
        );
        assert_eq!(
            policies.check_endorsement_text("/Channel/Application/Nowhere"),
            Err(PolicyError::Unknown(
                "/Channel/Application/Nowhere".to_owned()
            ))
        );
        assert!(matches!(
            policies.check_endorsement_text("AND('Org1MSP.peer'"),
            Err(PolicyError::Parse { .. })
        ));
    }

    #[test]
    fn implicit_meta_rules_parse_as_fabric_writes_them() {
        assert_eq!(
            ImplicitMeta::parse("MAJORITY Endorsement"),
            Ok(ImplicitMeta {
                rule: ImplicitRule::Majority,
                sub_policy: "Endorsement".to_owned()
            })
        );
        assert!(ImplicitMeta::parse("SOME Readers").is_err());
        assert!(ImplicitMeta::parse("ANY").is_err());
    }
}
