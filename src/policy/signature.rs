//! Signature policies in Fabric's policy language (`AND('Org1MSP.peer', OR('Org2MSP.member',
//! 'Org3MSP.admin'))`, `OutOf(2, ...)`) and their evaluation over a set of validated signers,
//! with Fabric's rule that one signer satisfies at most one principal.

use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::common::msp_principal::Classification;
use ccvm_proto::common::msp_role::MspRoleType;
use ccvm_proto::common::signature_policy::{NOutOf, Type as ProtoType};
use ccvm_proto::common::{
    MspPrincipal, MspRole as MspRoleProto, SignaturePolicy as ProtoRule, SignaturePolicyEnvelope,
};

use super::PolicyError;
use crate::msp::{MspRole, ValidatedIdentity};

/// Deepest nesting of `AND`/`OR`/`OutOf` accepted, bounding the parser's recursion.
pub const MAX_POLICY_DEPTH: usize = 32;

/// An organization and the role asked of a signer from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The MSP id.
    pub msp_id: String,
    /// The role.
    pub role: MspRole,
}

/// The rule of a signature policy over its principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureRule {
    /// A signer that is the principal at this index.
    SignedBy(usize),
    /// At least `n` of the rules hold.
    OutOf {
        /// How many.
        n: usize,
        /// The rules.
        rules: Vec<SignatureRule>,
    },
}

/// A signature policy: a rule over a list of principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// The rule.
    pub rule: SignatureRule,
    /// The principals the rule's `SignedBy` refer to.
    pub principals: Vec<Principal>,
}

impl SignaturePolicy {
    /// Parses Fabric's policy language.
    ///
    /// # Errors
    /// [`PolicyError::Parse`] with where and why.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut parser = Parser {
            text,
            position: 0,
            principals: Vec::new(),
        };
        let rule = parser.rule(0)?;
        parser.skip_space();
        if parser.position != text.len() {
            return Err(parser.error("unexpected text after the policy"));
        }
        Ok(Self {
            rule,
            principals: parser.principals,
        })
    }

    /// The policy an encoded `common.SignaturePolicyEnvelope` holds, as chaincode sets it as a
    /// key's `VALIDATION_PARAMETER`. Only role principals are understood.
    ///
    /// # Errors
    /// [`PolicyError::Parse`] for bytes that are not such an envelope, a principal of another
    /// kind, or a rule that names a missing principal or nests too deep.
    pub fn from_envelope(bytes: &[u8]) -> Result<Self, PolicyError> {
        let invalid = |reason: String| PolicyError::Parse {
            text: "a SignaturePolicyEnvelope".to_owned(),
            reason,
        };
        let envelope =
            SignaturePolicyEnvelope::decode(bytes).map_err(|e| invalid(e.to_string()))?;
        let principals = envelope
            .identities
            .iter()
            .map(|principal| {
                if principal.principal_classification != Classification::Role as i32 {
                    return Err(invalid(format!(
                        "principal classification {} is not ROLE",
                        principal.principal_classification
                    )));
                }
                let role = MspRoleProto::decode(principal.principal.as_slice())
                    .map_err(|e| invalid(e.to_string()))?;
                let role = match MspRoleType::try_from(role.role) {
                    Ok(MspRoleType::Member) => (role.msp_identifier, MspRole::Member),
                    Ok(MspRoleType::Admin) => (role.msp_identifier, MspRole::Admin),
                    Ok(MspRoleType::Client) => (role.msp_identifier, MspRole::Client),
                    Ok(MspRoleType::Peer) => (role.msp_identifier, MspRole::Peer),
                    Ok(MspRoleType::Orderer) => (role.msp_identifier, MspRole::Orderer),
                    Err(_) => return Err(invalid(format!("unknown role {}", role.role))),
                };
                Ok(Principal {
                    msp_id: role.0,
                    role: role.1,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rule = envelope
            .rule
            .as_ref()
            .ok_or_else(|| invalid("no rule".to_owned()))
            .and_then(|rule| rule_of(rule, principals.len(), 0).map_err(invalid))?;
        Ok(Self { rule, principals })
    }

    /// The policy as an encoded `common.SignaturePolicyEnvelope`.
    pub fn to_envelope(&self) -> Vec<u8> {
        fn proto(rule: &SignatureRule) -> ProtoRule {
            ProtoRule {
                r#type: Some(match rule {
                    SignatureRule::SignedBy(index) => {
                        ProtoType::SignedBy(i32::try_from(*index).unwrap_or(i32::MAX))
                    }
                    SignatureRule::OutOf { n, rules } => ProtoType::NOutOf(NOutOf {
                        n: i32::try_from(*n).unwrap_or(i32::MAX),
                        rules: rules.iter().map(proto).collect(),
                    }),
                }),
            }
        }
        SignaturePolicyEnvelope {
            version: 0,
            rule: Some(proto(&self.rule)),
            identities: self
                .principals
                .iter()
                .map(|principal| MspPrincipal {
                    principal_classification: Classification::Role as i32,
                    principal: MspRoleProto {
                        msp_identifier: principal.msp_id.clone(),
                        role: match principal.role {
                            MspRole::Member => MspRoleType::Member,
                            MspRole::Admin => MspRoleType::Admin,
                            MspRole::Client => MspRoleType::Client,
                            MspRole::Peer => MspRoleType::Peer,
                            MspRole::Orderer => MspRoleType::Orderer,
                        } as i32,
                    }
                    .encode_to_vec(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// A policy any one of `principals` satisfies.
    pub fn any_of(principals: Vec<Principal>) -> Self {
        let rules = (0..principals.len()).map(SignatureRule::SignedBy).collect();
        Self {
            rule: SignatureRule::OutOf { n: 1, rules },
            principals,
        }
    }

    /// Whether `signers` (distinct identities) satisfy the policy.
    pub fn is_satisfied_by(&self, signers: &[Arc<ValidatedIdentity>]) -> bool {
        let mut used = vec![false; signers.len()];
        self.holds(&self.rule, signers, &mut used)
    }

    fn holds(
        &self,
        rule: &SignatureRule,
        signers: &[Arc<ValidatedIdentity>],
        used: &mut [bool],
    ) -> bool {
        match rule {
            SignatureRule::SignedBy(index) => {
                let Some(principal) = self.principals.get(*index) else {
                    return false;
                };
                let found = signers.iter().enumerate().find(|(at, signer)| {
                    !used[*at] && signer.is(&principal.msp_id, principal.role)
                });
                match found {
                    Some((at, _)) => {
                        used[at] = true;
                        true
                    }
                    None => false,
                }
            }
            SignatureRule::OutOf { n, rules } => {
                let mut satisfied = 0;
                for rule in rules {
                    let mut tentative = used.to_vec();
                    if self.holds(rule, signers, &mut tentative) {
                        satisfied += 1;
                        used.copy_from_slice(&tentative);
                    }
                }
                satisfied >= *n
            }
        }
    }
}

/// The rule of a decoded policy, checked to name only existing principals.
fn rule_of(rule: &ProtoRule, principals: usize, depth: usize) -> Result<SignatureRule, String> {
    if depth > MAX_POLICY_DEPTH {
        return Err(format!("nested deeper than {MAX_POLICY_DEPTH}"));
    }
    match &rule.r#type {
        Some(ProtoType::SignedBy(index)) => usize::try_from(*index)
            .ok()
            .filter(|index| *index < principals)
            .map(SignatureRule::SignedBy)
            .ok_or_else(|| format!("signed_by {index} names no principal")),
        Some(ProtoType::NOutOf(out_of)) => Ok(SignatureRule::OutOf {
            n: usize::try_from(out_of.n)
                .map_err(|_| format!("n_out_of {} is negative", out_of.n))?,
            rules: out_of
                .rules
                .iter()
                .map(|rule| rule_of(rule, principals, depth + 1))
                .collect::<Result<_, _>>()?,
        }),
        None => Err("a rule of no kind".to_owned()),
    }
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
    principals: Vec<Principal>,
}

impl Parser<'_> {
    fn rule(&mut self, depth: usize) -> Result<SignatureRule, PolicyError> {
        if depth > MAX_POLICY_DEPTH {
            return Err(self.error(&format!("nested deeper than {MAX_POLICY_DEPTH}")));
        }
        self.skip_space();
        if self.peek().is_some_and(|c| c == '\'' || c == '"') {
            return self.principal();
        }
        let word = self.word();
        self.skip_space();
        self.expect('(')?;
        let operator = word.to_ascii_lowercase();
        let n = if operator == "outof" {
            self.skip_space();
            let digits = self.word();
            let n: usize = digits
                .parse()
                .map_err(|_| self.error(&format!("OutOf needs a count first, not {digits:?}")))?;
            self.skip_space();
            self.expect(',')?;
            Some(n)
        } else if operator == "and" || operator == "or" {
            None
        } else {
            return Err(self.error(&format!(
                "unknown operator {word:?}: expected AND, OR, OutOf or a quoted 'MSP.role'"
            )));
        };
        let mut rules = vec![self.rule(depth + 1)?];
        loop {
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.position += 1;
                    rules.push(self.rule(depth + 1)?);
                }
                Some(')') => {
                    self.position += 1;
                    break;
                }
                _ => return Err(self.error("expected , or )")),
            }
        }
        let n = match n {
            Some(n) => n,
            None if operator == "and" => rules.len(),
            None => 1,
        };
        if n > rules.len() {
            return Err(self.error(&format!("OutOf({n}, ...) has only {} rules", rules.len())));
        }
        Ok(SignatureRule::OutOf { n, rules })
    }

    fn principal(&mut self) -> Result<SignatureRule, PolicyError> {
        let quote = self.peek().unwrap_or('\'');
        self.position += 1;
        let rest = &self.text[self.position..];
        let end = rest
            .find(quote)
            .ok_or_else(|| self.error("unterminated principal"))?;
        let inner = &rest[..end];
        let (msp_id, role_name) = inner
            .rsplit_once('.')
            .ok_or_else(|| self.error(&format!("principal {inner:?} is not 'MSP.role'")))?;
        let role = MspRole::from_name(role_name).ok_or_else(|| {
            self.error(&format!(
                "role {role_name:?} is not member, admin, client, peer or orderer"
            ))
        })?;
        let valid_id = !msp_id.is_empty()
            && msp_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !valid_id {
            return Err(self.error(&format!("{msp_id:?} is not an MSP id")));
        }
        self.position += end + 1;
        let principal = Principal {
            msp_id: msp_id.to_owned(),
            role,
        };
        let index = match self.principals.iter().position(|p| *p == principal) {
            Some(index) => index,
            None => {
                self.principals.push(principal);
                self.principals.len() - 1
            }
        };
        Ok(SignatureRule::SignedBy(index))
    }

    fn word(&mut self) -> String {
        let start = self.position;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.position += 1;
        }
        self.text[start..self.position].to_owned()
    }

    fn expect(&mut self, wanted: char) -> Result<(), PolicyError> {
        if self.peek() == Some(wanted) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {wanted:?}")))
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    fn error(&self, reason: &str) -> PolicyError {
        PolicyError::Parse {
            text: self.text.to_owned(),
            reason: format!("{reason} at offset {}", self.position),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::NodeRole;
    use crate::policy::tests::signer;

    #[test]
    fn policies_parse_as_fabrics_policy_language() -> Result<(), PolicyError> {
        let policy = SignaturePolicy::parse(
            "AND('Org1MSP.peer', OR(\"Org2.example.com.member\", 'Org3MSP.admin'))",
        )?;
        assert_eq!(
            policy.principals,
            [
                ("Org1MSP", MspRole::Peer),
                ("Org2.example.com", MspRole::Member),
                ("Org3MSP", MspRole::Admin)
            ]
            .map(|(msp_id, role)| Principal {
                msp_id: msp_id.to_owned(),
                role
            })
        );
        assert_eq!(
            policy.rule,
            SignatureRule::OutOf {
                n: 2,
                rules: vec![
                    SignatureRule::SignedBy(0),
                    SignatureRule::OutOf {
                        n: 1,
                        rules: vec![SignatureRule::SignedBy(1), SignatureRule::SignedBy(2)]
                    }
                ]
            }
        );
        let out_of = SignaturePolicy::parse("OutOf(2, 'A.peer', 'B.peer', 'C.peer')")?;
        assert!(
            matches!(out_of.rule, SignatureRule::OutOf { n: 2, ref rules } if rules.len() == 3)
        );
        Ok(())
    }

    #[test]
    fn malformed_policies_say_what_is_wrong() {
        let cases = [
            ("AND('Org1MSP.peer'", "expected , or )"),
            ("XOR('A.peer')", "unknown operator \"XOR\""),
            ("OR('Org1MSP.king')", "role \"king\""),
            ("OR('nodot')", "is not 'MSP.role'"),
            ("OutOf(3, 'A.peer', 'B.peer')", "has only 2 rules"),
            ("OR('A.peer') trailing", "unexpected text"),
        ];
        for (text, reason) in cases {
            match SignaturePolicy::parse(text) {
                Err(PolicyError::Parse { reason: found, .. }) => {
                    assert!(found.contains(reason), "{text}: {found}");
                }
                other => panic!("{text} parsed: {other:?}"),
            }
        }
        let deep = format!("{}'A.peer'{}", "OR(".repeat(40), ")".repeat(40));
        assert!(SignaturePolicy::parse(&deep).is_err(), "nesting is bounded");
    }

    #[test]
    fn a_policy_survives_fabrics_encoding() -> Result<(), PolicyError> {
        let policy = SignaturePolicy::parse(
            "OutOf(1, 'Org1MSP.peer', AND('Org2MSP.admin', 'Org3MSP.member'))",
        )?;
        assert_eq!(
            SignaturePolicy::from_envelope(&policy.to_envelope())?,
            policy
        );
        assert!(
            SignaturePolicy::from_envelope(b"\x12\x02\x08\x05").is_err(),
            "signed_by 5 of none"
        );
        Ok(())
    }

    #[test]
    fn one_signer_satisfies_one_principal_only() -> Result<(), PolicyError> {
        let policy = SignaturePolicy::parse("AND('Org1MSP.member', 'Org1MSP.member')")?;
        let one = [signer("Org1MSP", NodeRole::Peer, 1)];
        assert!(!policy.is_satisfied_by(&one));
        let two = [
            signer("Org1MSP", NodeRole::Peer, 1),
            signer("Org1MSP", NodeRole::Client, 2),
        ];
        assert!(policy.is_satisfied_by(&two));
        let and = SignaturePolicy::parse("AND('Org1MSP.peer', 'Org2MSP.peer')")?;
        assert!(!and.is_satisfied_by(&two), "Org2's peer is missing");
        Ok(())
    }
}
