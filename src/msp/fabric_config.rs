//! An organization as a channel's configuration and the discovery service carry it: Fabric's
//! `msp.FabricMSPConfig`, every certificate and CRL in PEM.

use ccvm_proto::msp::{FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier};
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::dir::{MspMaterial, NodeOus, OuIdentifier};
use super::error::MspError;

/// `msp.MSPConfig.type` of Fabric's X.509 MSP.
pub const FABRIC_MSP_TYPE: i32 = 0;

impl MspMaterial {
    /// The material as a channel configuration's `MSP` value holds it.
    pub fn to_fabric_config(&self) -> FabricMspConfig {
        FabricMspConfig {
            name: self.msp_id.clone(),
            root_certs: pem_all("CERTIFICATE", &self.root_certs),
            intermediate_certs: pem_all("CERTIFICATE", &self.intermediate_certs),
            admins: pem_all("CERTIFICATE", &self.admin_certs),
            revocation_list: pem_all("X509 CRL", &self.crls),
            organizational_unit_identifiers: self.member_ous.iter().map(ou_identifier).collect(),
            crypto_config: Some(FabricCryptoConfig {
                signature_hash_family: "SHA2".to_owned(),
                identity_identifier_hash_function: "SHA256".to_owned(),
            }),
            tls_root_certs: pem_all("CERTIFICATE", &self.tls_root_certs),
            tls_intermediate_certs: pem_all("CERTIFICATE", &self.tls_intermediate_certs),
            fabric_node_ous: self.node_ous.as_ref().map(node_ous),
            signing_identity: None,
        }
    }

    /// The material a channel configuration's `MSP` value holds.
    ///
    /// # Errors
    /// [`MspError::Config`] for an MSP without root CAs or a certificate or CRL that is not a
    /// single PEM object of its kind.
    pub fn from_fabric_config(config: &FabricMspConfig) -> Result<Self, MspError> {
        let msp_id = &config.name;
        let invalid = |reason: String| MspError::Config {
            msp_id: msp_id.clone(),
            reason,
        };
        let certs = |field: &str, pems: &[Vec<u8>]| {
            pems.iter()
                .map(|pem| der_of(pem, SectionKind::Certificate))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| invalid(format!("{field}: {reason}")))
        };
        let root_certs = certs("root_certs", &config.root_certs)?;
        if root_certs.is_empty() {
            return Err(invalid("no root CA certificate".to_owned()));
        }
        let ou = |field: &str, identifier: &FabricOuIdentifier| {
            let certificate = match identifier.certificate.as_slice() {
                [] => None,
                pem => Some(
                    der_of(pem, SectionKind::Certificate)
                        .map_err(|reason| invalid(format!("{field}: {reason}")))?,
                ),
            };
            Ok(OuIdentifier {
                ou: identifier.organizational_unit_identifier.clone(),
                certificate,
            })
        };
        let node_ous = match &config.fabric_node_ous {
            Some(ous) if ous.enable => {
                let role = |field: &str, identifier: &Option<FabricOuIdentifier>| {
                    identifier.as_ref().map(|id| ou(field, id)).transpose()
                };
                Some(NodeOus {
                    client: role("client_ou_identifier", &ous.client_ou_identifier)?,
                    peer: role("peer_ou_identifier", &ous.peer_ou_identifier)?,
                    admin: role("admin_ou_identifier", &ous.admin_ou_identifier)?,
                    orderer: role("orderer_ou_identifier", &ous.orderer_ou_identifier)?,
                })
            }
            _ => None,
        };
        Ok(Self {
            msp_id: msp_id.clone(),
            root_certs,
            intermediate_certs: certs("intermediate_certs", &config.intermediate_certs)?,
            crls: config
                .revocation_list
                .iter()
                .map(|pem| der_of(pem, SectionKind::Crl))
                .collect::<Result<_, _>>()
                .map_err(|reason| invalid(format!("revocation_list: {reason}")))?,
            admin_certs: certs("admins", &config.admins)?,
            node_ous,
            member_ous: config
                .organizational_unit_identifiers
                .iter()
                .map(|id| ou("organizational_unit_identifiers", id))
                .collect::<Result<_, _>>()?,
            tls_root_certs: certs("tls_root_certs", &config.tls_root_certs)?,
            tls_intermediate_certs: certs(
                "tls_intermediate_certs",
                &config.tls_intermediate_certs,
            )?,
        })
    }
}

/// The DER of the one PEM object of `kind` in `pem`.
fn der_of(pem: &[u8], kind: SectionKind) -> Result<Vec<u8>, String> {
    let mut sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem);
    match (sections.next(), sections.next()) {
        (Some(Ok((found, der))), None) if found == kind => Ok(der),
        (Some(Ok((found, _))), None) => Err(format!("holds a PEM {found:?}, not a {kind:?}")),
        (Some(Err(e)), _) => Err(format!("not PEM: {e}")),
        (None, _) => Err("holds no PEM object".to_owned()),
        (Some(Ok(_)), Some(_)) => Err("holds more than one PEM object".to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msp::dev_org::DevOrganization;

    #[test]
    fn material_survives_the_round_trip_through_a_channel_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let org = DevOrganization::at(dir.path());
        org.create_if_absent("DevMSP").unwrap();
        let material = MspMaterial::load(&org.msp_dir(), "DevMSP").unwrap();
        let config = material.to_fabric_config();
        assert!(config.root_certs[0].starts_with(b"-----BEGIN CERTIFICATE-----"));
        let back = MspMaterial::from_fabric_config(&config).unwrap();
        assert_eq!(back.msp_id, material.msp_id);
        assert_eq!(back.root_certs, material.root_certs);
        assert_eq!(back.tls_root_certs, material.tls_root_certs);
        assert_eq!(
            back.node_ous.as_ref().and_then(|ous| ous.peer.as_ref()),
            material.node_ous.as_ref().and_then(|ous| ous.peer.as_ref())
        );
    }

    #[test]
    fn a_configuration_without_roots_or_with_a_bad_certificate_is_refused() {
        let no_roots = FabricMspConfig {
            name: "Org9MSP".to_owned(),
            ..Default::default()
        };
        let error = MspMaterial::from_fabric_config(&no_roots).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("MSP Org9MSP in the channel configuration: no root CA certificate"),
            "{error}"
        );
        let garbled = FabricMspConfig {
            name: "Org9MSP".to_owned(),
            root_certs: vec![b"not a certificate".to_vec()],
            ..Default::default()
        };
        let error = MspMaterial::from_fabric_config(&garbled).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("root_certs: holds no PEM object"),
            "{error}"
        );
    }
}
