//! Fabric's MSP directory layout, read as `cryptogen` and Fabric CA write it: `cacerts/`,
//! `intermediatecerts/`, `crls/`, `admincerts/`, `signcerts/`, `keystore/` and `config.yaml`
//! (NodeOU classification).

use std::fs;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Yaml};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde::Deserialize;

use super::error::MspError;

/// The verification half of an MSP directory: what decides whether an identity belongs to the
/// organization, and in which role.
#[derive(Debug, Clone)]
pub struct MspMaterial {
    /// The MSP id this material is trusted under.
    pub msp_id: String,
    /// Root CA certificates, DER.
    pub root_certs: Vec<Vec<u8>>,
    /// Intermediate CA certificates, DER.
    pub intermediate_certs: Vec<Vec<u8>>,
    /// Certificate revocation lists, DER.
    pub crls: Vec<Vec<u8>>,
    /// Certificates of identities that are admins whatever their OU, DER.
    pub admin_certs: Vec<Vec<u8>>,
    /// The NodeOU classification, when `config.yaml` enables it.
    pub node_ous: Option<NodeOus>,
    /// When set, only identities carrying one of these OUs are members.
    pub member_ous: Vec<OuIdentifier>,
    /// Root CA certificates of the organization's TLS certificates (`tlscacerts/`), DER.
    pub tls_root_certs: Vec<Vec<u8>>,
    /// Intermediate CA certificates of its TLS certificates (`tlsintermediatecerts/`), DER.
    pub tls_intermediate_certs: Vec<Vec<u8>>,
}

/// An organizational unit, optionally tied to the CA that must certify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuIdentifier {
    /// The OU value in the certificate's subject.
    pub ou: String,
    /// The CA certificate (DER) the identity must chain through, if any.
    pub certificate: Option<Vec<u8>>,
}

/// The OUs that mark an identity as a client, a peer, an admin or an orderer.
#[derive(Debug, Clone, Default)]
pub struct NodeOus {
    /// The client OU.
    pub client: Option<OuIdentifier>,
    /// The peer OU.
    pub peer: Option<OuIdentifier>,
    /// The admin OU.
    pub admin: Option<OuIdentifier>,
    /// The orderer OU.
    pub orderer: Option<OuIdentifier>,
}

impl MspMaterial {
    /// Reads the verification material of the MSP directory `dir`, trusted as `msp_id`.
    ///
    /// # Errors
    /// A missing or empty `cacerts/`, an unreadable file, a file that holds no PEM object of the
    /// kind its folder needs, or a `config.yaml` that does not parse.
    pub fn load(dir: &Path, msp_id: &str) -> Result<Self, MspError> {
        let root_certs = read_pem_dir(&dir.join("cacerts"), SectionKind::Certificate)?;
        if root_certs.is_empty() {
            return Err(MspError::Material {
                path: dir.join("cacerts"),
                reason: "holds no CA certificate".to_owned(),
            });
        }
        let config = read_config(&dir.join("config.yaml"))?;
        let ou = |identifier: Option<OuYaml>| -> Result<Option<OuIdentifier>, MspError> {
            identifier
                .map(|identifier| identifier.resolve(dir))
                .transpose()
        };
        let node_ous = match config.node_ous {
            Some(node_ous) if node_ous.enable => Some(NodeOus {
                client: ou(node_ous.client_ou_identifier)?,
                peer: ou(node_ous.peer_ou_identifier)?,
                admin: ou(node_ous.admin_ou_identifier)?,
                orderer: ou(node_ous.orderer_ou_identifier)?,
            }),
            _ => None,
        };
        let member_ous = config
            .organizational_unit_identifiers
            .into_iter()
            .map(|identifier| identifier.resolve(dir))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            msp_id: msp_id.to_owned(),
            root_certs,
            intermediate_certs: read_pem_dir(
                &dir.join("intermediatecerts"),
                SectionKind::Certificate,
            )?,
            crls: read_pem_dir(&dir.join("crls"), SectionKind::Crl)?,
            admin_certs: read_pem_dir(&dir.join("admincerts"), SectionKind::Certificate)?,
            node_ous,
            member_ous,
            tls_root_certs: read_pem_dir(&dir.join("tlscacerts"), SectionKind::Certificate)?,
            tls_intermediate_certs: read_pem_dir(
                &dir.join("tlsintermediatecerts"),
                SectionKind::Certificate,
            )?,
        })
    }
}

/// `config.yaml` of an MSP directory, as Fabric writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConfigYaml {
    #[serde(rename = "NodeOUs")]
    node_ous: Option<NodeOusYaml>,
    #[serde(rename = "OrganizationalUnitIdentifiers")]
    organizational_unit_identifiers: Vec<OuYaml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NodeOusYaml {
    enable: bool,
    #[serde(rename = "ClientOUIdentifier")]
    client_ou_identifier: Option<OuYaml>,
    #[serde(rename = "PeerOUIdentifier")]
    peer_ou_identifier: Option<OuYaml>,
    #[serde(rename = "AdminOUIdentifier")]
    admin_ou_identifier: Option<OuYaml>,
    #[serde(rename = "OrdererOUIdentifier")]
    orderer_ou_identifier: Option<OuYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OuYaml {
    #[serde(default)]
    certificate: Option<String>,
    organizational_unit_identifier: String,
}

impl OuYaml {
    /// The identifier with its certificate read, relative to the MSP directory.
    fn resolve(self, dir: &Path) -> Result<OuIdentifier, MspError> {
        let certificate = match self.certificate.filter(|path| !path.is_empty()) {
            Some(path) => {
                let path = dir.join(path);
                let mut certs = read_pem_file(&path, SectionKind::Certificate)?;
                if certs.is_empty() {
                    return Err(MspError::Material {
                        path,
                        reason: "holds no certificate".to_owned(),
                    });
                }
                Some(certs.swap_remove(0))
            }
            None => None,
        };
        Ok(OuIdentifier {
            ou: self.organizational_unit_identifier,
            certificate,
        })
    }
}

fn read_config(path: &Path) -> Result<ConfigYaml, MspError> {
    if !path.exists() {
        return Ok(ConfigYaml::default());
    }
    Figment::from(Yaml::file_exact(path))
        .extract()
        .map_err(|e| MspError::Material {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// The PEM objects of `kind` in every file of `dir`, in file-name order; an absent directory
/// holds none.
pub(super) fn read_pem_dir(dir: &Path, kind: SectionKind) -> Result<Vec<Vec<u8>>, MspError> {
    let mut objects = Vec::new();
    for path in files_in(dir)? {
        let found = read_pem_file(&path, kind)?;
        if found.is_empty() {
            return Err(MspError::Material {
                path,
                reason: format!("holds no PEM {}", kind_name(kind)),
            });
        }
        objects.extend(found);
    }
    Ok(objects)
}

/// The regular files in `dir`, sorted by name; none when `dir` does not exist.
pub(super) fn files_in(dir: &Path) -> Result<Vec<PathBuf>, MspError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MspError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| MspError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_pem_file(path: &Path, kind: SectionKind) -> Result<Vec<Vec<u8>>, MspError> {
    let bytes = fs::read(path).map_err(|source| MspError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut objects = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (found, der) = section.map_err(|e| MspError::Material {
            path: path.to_owned(),
            reason: format!("not PEM: {e}"),
        })?;
        if found == kind {
            objects.push(der);
        }
    }
    Ok(objects)
}

fn kind_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "certificate",
        SectionKind::Crl => "X509 CRL",
        _ => "object",
    }
}
