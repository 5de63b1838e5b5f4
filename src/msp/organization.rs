//! One trusted organization: decides whether a certificate is a valid identity of its MSP and
//! which roles it holds. Path validation is rustls-webpki's; the MSP rules on top (NodeOUs,
//! admin certificates, member OUs) follow Fabric's X.509 MSP.

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator,
    KeyPurposeIdIter, OwnedCertRevocationList, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};

use super::dir::{MspMaterial, OuIdentifier};
use super::error::{CertificateRefusal, IdentityError, MspError};
use super::identity::{NodeRole, PublicKey, ValidatedIdentity};

/// Signature algorithms accepted in certificate chains: ECDSA on P-256 and P-384, as Fabric's
/// default BCCSP, plus RSA and Ed25519 for CAs outside Fabric's tools.
static CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    webpki::ALL_VERIFICATION_ALGS;

/// A certificate that must be in an identity's chain, kept as what a verified path exposes.
#[derive(Debug)]
struct ChainMember {
    der: Vec<u8>,
    subject: Vec<u8>,
    spki: Vec<u8>,
}

#[derive(Debug)]
struct RoleOus {
    client: Option<(String, Option<ChainMember>)>,
    peer: Option<(String, Option<ChainMember>)>,
    admin: Option<(String, Option<ChainMember>)>,
    orderer: Option<(String, Option<ChainMember>)>,
}

/// An organization the node trusts, ready to validate identities.
#[derive(Debug)]
pub struct Organization {
    msp_id: String,
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    admin_certs: Vec<Vec<u8>>,
    node_ous: Option<RoleOus>,
    member_ous: Vec<(String, Option<ChainMember>)>,
}

impl Organization {
    /// Prepares `material` for validation.
    ///
    /// # Errors
    /// A CA certificate or CRL that does not parse.
    pub fn new(material: &MspMaterial) -> Result<Self, MspError> {
        let invalid = |what: &str, e: &dyn std::fmt::Display| MspError::Material {
            path: format!("MSP {}", material.msp_id).into(),
            reason: format!("{what}: {e}"),
        };
        let anchors = material
            .root_certs
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                    .map(|anchor| anchor.to_owned())
                    .map_err(|e| invalid("root CA certificate", &e))
            })
            .collect::<Result<_, _>>()?;
        let crls = material
            .crls
            .iter()
            .map(|der| {
                OwnedCertRevocationList::from_der(
                    CertificateRevocationListDer::from(der.as_slice()).as_ref(),
                )
                .map(CertRevocationList::from)
                .map_err(|e| invalid("CRL", &e))
            })
            .collect::<Result<_, _>>()?;
        let member =
            |identifier: &OuIdentifier| -> Result<(String, Option<ChainMember>), MspError> {
                let certificate = identifier
                    .certificate
                    .as_deref()
                    .map(|der| chain_member(der).map_err(|e| invalid("OU certificate", &e)))
                    .transpose()?;
                Ok((identifier.ou.clone(), certificate))
            };
        let node_ous = match &material.node_ous {
            Some(ous) => Some(RoleOus {
                client: ous.client.as_ref().map(member).transpose()?,
                peer: ous.peer.as_ref().map(member).transpose()?,
                admin: ous.admin.as_ref().map(member).transpose()?,
                orderer: ous.orderer.as_ref().map(member).transpose()?,
            }),
            None => None,
        };
        Ok(Self {
            msp_id: material.msp_id.clone(),
            anchors,
            intermediates: material
                .intermediate_certs
                .iter()
                .map(|der| CertificateDer::from(der.clone()))
                .collect(),
            crls,
            admin_certs: material.admin_certs.clone(),
            node_ous,
            member_ous: material
                .member_ous
                .iter()
                .map(member)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The MSP id.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// Whether NodeOUs classify this organization's identities into clients, peers, admins
    /// and orderers.
    pub fn has_node_ous(&self) -> bool {
        self.node_ous.is_some()
    }

    /// Validates the DER certificate `der` as an identity of this organization at `now`.
    ///
    /// # Errors
    /// Why it is not one: a chain that does not reach a root of the MSP, a certificate out of
    /// its validity period, revoked or a CA's, or organizational units that break the MSP's
    /// rules.
    pub fn validate(&self, der: &[u8], now: UnixTime) -> Result<ValidatedIdentity, IdentityError> {
        let refuse = |reason| IdentityError::Certificate {
            msp_id: self.msp_id.clone(),
            reason,
        };
        let cert_der = CertificateDer::from(der);
        let end_entity = EndEntityCert::try_from(&cert_der)
            .map_err(|e| IdentityError::Malformed(format!("certificate: {e}")))?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|builder| {
                builder
                    .with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Allow)
                    .with_expiration_policy(ExpirationPolicy::Ignore)
                    .build()
            });
        let path = end_entity
            .verify_for_usage(
                CHAIN_ALGORITHMS,
                &self.anchors,
                &self.intermediates,
                now,
                AnyExtendedKeyUsage,
                revocation,
                None,
            )
            .map_err(|e| refuse(refusal(e)))?;
        let chain: Vec<ChainMember> = path
            .intermediate_certificates()
            .map(|cert| ChainMember {
                der: cert.der().to_vec(),
                subject: Vec::new(),
                spki: Vec::new(),
            })
            .chain(std::iter::once(ChainMember {
                der: Vec::new(),
                subject: path.anchor().subject.to_vec(),
                spki: path.anchor().subject_public_key_info.to_vec(),
            }))
            .collect();
        let parsed = parse_certificate(der)?;
        let has = |(ou, certifier): &(String, Option<ChainMember>)| {
            parsed.ous.iter().any(|found| found == ou)
                && certifier
                    .as_ref()
                    .is_none_or(|certifier| chain.iter().any(|member| member.is(certifier)))
        };
        if !self.member_ous.is_empty() && !self.member_ous.iter().any(has) {
            return Err(IdentityError::OrganizationalUnit {
                msp_id: self.msp_id.clone(),
                reason: format!(
                    "carries none of the MSP's organizational units (it has {:?})",
                    parsed.ous
                ),
            });
        }
        let node_role = match &self.node_ous {
            None => None,
            Some(ous) => {
                let roles: Vec<NodeRole> = [
                    (&ous.client, NodeRole::Client),
                    (&ous.peer, NodeRole::Peer),
                    (&ous.admin, NodeRole::Admin),
                    (&ous.orderer, NodeRole::Orderer),
                ]
                .into_iter()
                .filter_map(|(ou, role)| ou.as_ref().filter(|ou| has(ou)).map(|_| role))
                .collect();
                match roles.as_slice() {
                    [role] => Some(*role),
                    [] => {
                        return Err(IdentityError::OrganizationalUnit {
                            msp_id: self.msp_id.clone(),
                            reason: format!(
                                "is not a client, peer, admin or orderer (its OUs are {:?})",
                                parsed.ous
                            ),
                        });
                    }
                    _ => {
                        return Err(IdentityError::OrganizationalUnit {
                            msp_id: self.msp_id.clone(),
                            reason: format!(
                                "must be one of client, peer, admin or orderer, not {roles:?}"
                            ),
                        });
                    }
                }
            }
        };
        Ok(ValidatedIdentity {
            msp_id: self.msp_id.clone(),
            node_role,
            listed_admin: self.admin_certs.iter().any(|admin| admin.as_slice() == der),
            node_ous: self.node_ous.is_some(),
            public_key: parsed.public_key,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
        })
    }
}

impl ChainMember {
    /// Whether this chain element is the certificate `wanted`.
    fn is(&self, wanted: &ChainMember) -> bool {
        if self.der.is_empty() {
            self.subject == wanted.subject && self.spki == wanted.spki
        } else {
            self.der == wanted.der
        }
    }
}

fn chain_member(der: &[u8]) -> Result<ChainMember, webpki::Error> {
    let cert = CertificateDer::from(der);
    let anchor = webpki::anchor_from_trusted_cert(&cert)?;
    Ok(ChainMember {
        der: der.to_vec(),
        subject: anchor.subject.to_vec(),
        spki: anchor.subject_public_key_info.to_vec(),
    })
}

/// Accepts any extended key usage, as Fabric's MSP does (Go's `ExtKeyUsageAny`): identities
/// sign transactions, not TLS handshakes.
struct AnyExtendedKeyUsage;

impl ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, usages: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for usage in usages {
            usage?;
        }
        Ok(())
    }
}

fn refusal(error: webpki::Error) -> CertificateRefusal {
    match error {
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            CertificateRefusal::UnknownIssuer
        }
        webpki::Error::CertExpired { not_after, .. } => CertificateRefusal::Expired {
            not_after: not_after.as_secs(),
        },
        webpki::Error::CertNotValidYet { not_before, .. } => CertificateRefusal::NotYetValid {
            not_before: not_before.as_secs(),
        },
        webpki::Error::CertRevoked => CertificateRefusal::Revoked,
        webpki::Error::CaUsedAsEndEntity => CertificateRefusal::CaCertificate,
        other => CertificateRefusal::Invalid(other.to_string()),
    }
}

/// What the MSP reads from an identity certificate beyond its chain.
struct ParsedCertificate {
    ous: Vec<String>,
    public_key: PublicKey,
    not_before: u64,
    not_after: u64,
}

fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| IdentityError::Malformed(format!("certificate: {e}")))?;
    let ous = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|attribute| attribute.as_str().ok().map(str::to_owned))
        .collect();
    let public_key =
        PublicKey::from_point(&cert.public_key().subject_public_key.data).ok_or_else(|| {
            IdentityError::Malformed("the certificate's key is not ECDSA P-256 or P-384".to_owned())
        })?;
    let seconds = |time: x509_parser::time::ASN1Time| u64::try_from(time.timestamp()).unwrap_or(0);
    Ok(ParsedCertificate {
        ous,
        public_key,
        not_before: seconds(cert.validity().not_before),
        not_after: seconds(cert.validity().not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::dev_org::{DevCa, Validity};
    use crate::msp::{MspRole, NodeOus};

    const DAY: std::time::Duration = std::time::Duration::from_secs(86400);

    fn der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|der| der.to_vec())
            .unwrap_or_default()
    }

    fn material(ca: &DevCa, node_ous: Option<NodeOus>) -> MspMaterial {
        MspMaterial {
            msp_id: "Org1MSP".to_owned(),
            root_certs: vec![der(ca.cert_pem())],
            intermediate_certs: Vec::new(),
            crls: Vec::new(),
            admin_certs: Vec::new(),
            node_ous,
            member_ous: Vec::new(),
            tls_root_certs: Vec::new(),
            tls_intermediate_certs: Vec::new(),
        }
    }

    fn ou(name: &str, certificate: Option<Vec<u8>>) -> Option<OuIdentifier> {
        Some(OuIdentifier {
            ou: name.to_owned(),
            certificate,
        })
    }

    #[test]
    fn an_identity_matching_two_node_ous_is_refused() -> anyhow::Result<()> {
        let ca = DevCa::create("Org1MSP")?;
        let node_ous = NodeOus {
            client: ou("member", None),
            peer: ou("member", None),
            admin: ou("admin", None),
            orderer: None,
        };
        let org = Organization::new(&material(&ca, Some(node_ous)))?;
        let issued = ca.issue("both", &["member"], Validity::from_now(DAY))?;
        let refused = org
            .validate(&der(&issued.cert_pem), UnixTime::now())
            .unwrap_err();
        assert!(
            refused.to_string().contains("not [Client, Peer]"),
            "{refused}"
        );
        Ok(())
    }

    #[test]
    fn a_node_ou_counts_only_when_certified_by_the_ca_it_names() -> anyhow::Result<()> {
        let ca = DevCa::create("Org1MSP")?;
        let other = DevCa::create("Org1MSP")?;
        let node_ous = NodeOus {
            client: ou("client", Some(der(other.cert_pem()))),
            peer: ou("peer", Some(der(ca.cert_pem()))),
            admin: None,
            orderer: None,
        };
        let org = Organization::new(&material(&ca, Some(node_ous)))?;
        let client = ca.issue("user", &["client"], Validity::from_now(DAY))?;
        let refused = org
            .validate(&der(&client.cert_pem), UnixTime::now())
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("is not a client, peer, admin or orderer"),
            "{refused}"
        );
        let peer = ca.issue("peer0", &["peer"], Validity::from_now(DAY))?;
        let validated = org.validate(&der(&peer.cert_pem), UnixTime::now())?;
        assert!(validated.has_role(MspRole::Peer) && !validated.has_role(MspRole::Client));
        Ok(())
    }

    #[test]
    fn without_node_ous_admins_are_the_listed_certificates_and_roles_cannot_be_told_apart()
    -> anyhow::Result<()> {
        let ca = DevCa::create("Org1MSP")?;
        let admin = ca.issue("admin", &[], Validity::from_now(DAY))?;
        let user = ca.issue("user", &[], Validity::from_now(DAY))?;
        let mut material = material(&ca, None);
        material.admin_certs = vec![der(&admin.cert_pem)];
        let org = Organization::new(&material)?;
        let admin = org.validate(&der(&admin.cert_pem), UnixTime::now())?;
        let user = org.validate(&der(&user.cert_pem), UnixTime::now())?;
        assert!(admin.has_role(MspRole::Admin) && admin.has_role(MspRole::Member));
        assert!(!user.has_role(MspRole::Admin) && user.has_role(MspRole::Member));
        assert!(!user.has_role(MspRole::Client) && !user.has_role(MspRole::Peer));
        Ok(())
    }

    #[test]
    fn a_ca_certificate_is_not_an_identity() -> anyhow::Result<()> {
        let ca = DevCa::create("Org1MSP")?;
        let org = Organization::new(&material(&ca, None))?;
        let refused = org
            .validate(&der(ca.cert_pem()), UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                refused,
                IdentityError::Certificate {
                    reason: CertificateRefusal::CaCertificate,
                    ..
                }
            ),
            "{refused}"
        );
        Ok(())
    }
}
