//! A signature policy written in Fabric's policy language, so that a definition's policy, which
//! Fabric's arguments carry as a `common.SignaturePolicyEnvelope`, is kept as text the node
//! evaluates.

use ccvm_proto::Message;
use ccvm_proto::common::msp_principal::Classification;
use ccvm_proto::common::msp_role::MspRoleType;
use ccvm_proto::common::signature_policy::Type as RuleType;
use ccvm_proto::common::{MspPrincipal, MspRole, SignaturePolicy, SignaturePolicyEnvelope};

/// Deepest nesting written, as deep as the node evaluates.
const MAX_DEPTH: usize = 16;

/// The policy in Fabric's language: `'Org1MSP.peer'`, `AND(...)`, `OR(...)` or
/// `OutOf(n, ...)`.
///
/// # Errors
/// Why it cannot be written: a principal other than an MSP role, a rule naming a principal the
/// envelope does not have, or nesting deeper than the node evaluates.
pub fn signature_policy_text(envelope: &SignaturePolicyEnvelope) -> Result<String, String> {
    let principals = envelope
        .identities
        .iter()
        .map(principal_text)
        .collect::<Result<Vec<_>, _>>()?;
    let rule = envelope
        .rule
        .as_ref()
        .ok_or_else(|| "has no rule".to_owned())?;
    rule_text(rule, &principals, 0)
}

fn principal_text(principal: &MspPrincipal) -> Result<String, String> {
    if principal.principal_classification != Classification::Role as i32 {
        return Err(format!(
            "names a principal of classification {}; ccvm evaluates MSP roles",
            principal.principal_classification
        ));
    }
    let role = MspRole::decode(principal.principal.as_slice())
        .map_err(|e| format!("has a principal that is not an MSP role: {e}"))?;
    let name = match MspRoleType::try_from(role.role) {
        Ok(MspRoleType::Member) => "member",
        Ok(MspRoleType::Admin) => "admin",
        Ok(MspRoleType::Client) => "client",
        Ok(MspRoleType::Peer) => "peer",
        Ok(MspRoleType::Orderer) => "orderer",
        Err(_) => return Err(format!("names an unknown role {}", role.role)),
    };
    if role.msp_identifier.is_empty() || role.msp_identifier.contains(['\'', '"']) {
        return Err(format!("names the MSP {:?}", role.msp_identifier));
    }
    Ok(format!("'{}.{name}'", role.msp_identifier))
}

fn rule_text(
    rule: &SignaturePolicy,
    principals: &[String],
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nests deeper than {MAX_DEPTH}"));
    }
    match &rule.r#type {
        Some(RuleType::SignedBy(index)) => usize::try_from(*index)
            .ok()
            .and_then(|index| principals.get(index))
            .cloned()
            .ok_or_else(|| format!("signs by principal {index}, which it does not have")),
        Some(RuleType::NOutOf(n_out_of)) => {
            let rules = n_out_of
                .rules
                .iter()
                .map(|rule| rule_text(rule, principals, depth + 1))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ");
            let n = usize::try_from(n_out_of.n).map_err(|_| format!("needs {} of", n_out_of.n))?;
            Ok(match n {
                1 => format!("OR({rules})"),
                n if n == n_out_of.rules.len() => format!("AND({rules})"),
                n => format!("OutOf({n}, {rules})"),
            })
        }
        None => Err("has an empty rule".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use ccvm_proto::common::signature_policy::NOutOf;

    use super::*;

    fn role(msp_id: &str, role: MspRoleType) -> MspPrincipal {
        MspPrincipal {
            principal_classification: Classification::Role as i32,
            principal: MspRole {
                msp_identifier: msp_id.to_owned(),
                role: role as i32,
            }
            .encode_to_vec(),
        }
    }

    fn signed_by(index: i32) -> SignaturePolicy {
        SignaturePolicy {
            r#type: Some(RuleType::SignedBy(index)),
        }
    }

    fn out_of(n: i32, rules: Vec<SignaturePolicy>) -> SignaturePolicy {
        SignaturePolicy {
            r#type: Some(RuleType::NOutOf(NOutOf { n, rules })),
        }
    }

    #[test]
    fn envelopes_are_written_in_fabrics_language() {
        let envelope = SignaturePolicyEnvelope {
            version: 0,
            rule: Some(out_of(
                2,
                vec![
                    out_of(1, vec![signed_by(0), signed_by(1)]),
                    signed_by(2),
                    out_of(2, vec![signed_by(0), signed_by(2)]),
                ],
            )),
            identities: vec![
                role("Org1MSP", MspRoleType::Peer),
                role("Org2MSP", MspRoleType::Member),
                role("Org3MSP", MspRoleType::Admin),
            ],
        };
        assert_eq!(
            signature_policy_text(&envelope).unwrap(),
            "OutOf(2, OR('Org1MSP.peer', 'Org2MSP.member'), 'Org3MSP.admin', AND('Org1MSP.peer', 'Org3MSP.admin'))"
        );
    }

    #[test]
    fn what_the_node_cannot_evaluate_is_refused() {
        let missing = SignaturePolicyEnvelope {
            version: 0,
            rule: Some(signed_by(3)),
            identities: vec![role("Org1MSP", MspRoleType::Peer)],
        };
        assert_eq!(
            signature_policy_text(&missing).unwrap_err(),
            "signs by principal 3, which it does not have"
        );
        let by_identity = SignaturePolicyEnvelope {
            version: 0,
            rule: Some(signed_by(0)),
            identities: vec![MspPrincipal {
                principal_classification: Classification::Identity as i32,
                principal: Vec::new(),
            }],
        };
        assert!(
            signature_policy_text(&by_identity)
                .unwrap_err()
                .contains("ccvm evaluates MSP roles")
        );
    }
}
