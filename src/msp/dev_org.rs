//! A development organization, laid out as `cryptogen` lays out a peer organization: a CA, the
//! organization's MSP directory with NodeOUs, and one MSP directory each for a peer, an admin
//! and a user. The node creates one on first start when no MSP is configured, so the quick start
//! needs no set-up; tests use the same CA to make identities of their own.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use super::NodeRole;
use super::error::MspError;
use crate::fs_private::write_private;

/// How long the development organization's certificates are valid, as `cryptogen` makes them.
pub const DEV_CERT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How far back a new certificate's validity starts, for clocks that differ a little.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The `config.yaml` that turns on NodeOUs, each OU certified by the root CA.
const NODE_OUS_CONFIG: &str = "NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: orderer
";

/// Where the parts of a development organization are, under its root directory.
#[derive(Debug, Clone)]
pub struct DevOrganization {
    /// The organization's root directory.
    pub root: PathBuf,
}

impl DevOrganization {
    /// The organization under `root`.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The organization's MSP directory: what others trust it by.
    pub fn msp_dir(&self) -> PathBuf {
        self.root.join("msp")
    }

    /// The peer's MSP directory.
    pub fn peer_msp_dir(&self) -> PathBuf {
        self.root.join("peers/peer0/msp")
    }

    /// The admin's MSP directory.
    pub fn admin_msp_dir(&self) -> PathBuf {
        self.root.join("users/Admin/msp")
    }

    /// The user's MSP directory.
    pub fn user_msp_dir(&self) -> PathBuf {
        self.root.join("users/User1/msp")
    }

    /// The certificate of the organization's TLS CA.
    pub fn tls_ca_cert(&self) -> PathBuf {
        self.root.join("tlsca/tlsca-cert.pem")
    }

    /// The peer's TLS files: `server.crt`, `server.key` and `ca.crt`.
    pub fn peer_tls_dir(&self) -> PathBuf {
        self.root.join("peers/peer0/tls")
    }

    /// The admin's TLS client files: `client.crt`, `client.key` and `ca.crt`.
    pub fn admin_tls_dir(&self) -> PathBuf {
        self.root.join("users/Admin/tls")
    }

    /// Creates the organization unless its MSP directory exists.
    ///
    /// # Errors
    /// Keys or certificates that cannot be made, or files that cannot be written.
    pub fn create_if_absent(&self, org_name: &str) -> Result<(), MspError> {
        if self.msp_dir().join("cacerts").exists() {
            return Ok(());
        }
        self.create_with(&DevCa::create(org_name)?)
    }

    /// Creates the organization with `ca` as its CA.
    ///
    /// # Errors
    /// Keys or certificates that cannot be made, or files that cannot be written.
    pub fn create_with(&self, ca: &DevCa) -> Result<(), MspError> {
        let tls_ca = DevCa::create_named(&ca.org_name, &format!("tlsca.{}", ca.org_name))?;
        ca.write(&self.root.join("ca"))?;
        write_file(&self.tls_ca_cert(), tls_ca.cert_pem())?;
        write_key(
            &self.root.join("tlsca/priv_sk"),
            &tls_ca.key.serialize_pem(),
        )?;
        ca.write_org_msp(&self.msp_dir())?;
        write_file(
            &self.msp_dir().join("tlscacerts/tlsca-cert.pem"),
            tls_ca.cert_pem(),
        )?;
        let validity = Validity::from_now(DEV_CERT_VALIDITY);
        for (dir, name, role) in [
            (self.peer_msp_dir(), "peer0", NodeRole::Peer),
            (self.admin_msp_dir(), "Admin", NodeRole::Admin),
            (self.user_msp_dir(), "User1", NodeRole::Client),
        ] {
            let issued = ca.issue(name, &[role.ou()], validity)?;
            ca.write_member_msp(&dir, &issued)?;
            write_file(&dir.join("tlscacerts/tlsca-cert.pem"), tls_ca.cert_pem())?;
            let tls_dir = dir.with_file_name("tls");
            let (file, host_names) = if role == NodeRole::Peer {
                ("server", PEER_TLS_NAMES.map(str::to_owned).to_vec())
            } else {
                ("client", Vec::new())
            };
            let tls = tls_ca.issue_tls(name, host_names, validity)?;
            write_file(&tls_dir.join(format!("{file}.crt")), &tls.cert_pem)?;
            write_key(&tls_dir.join(format!("{file}.key")), &tls.key_pem)?;
            write_file(&tls_dir.join("ca.crt"), tls_ca.cert_pem())?;
        }
        Ok(())
    }
}

/// The names the development peer's TLS certificate is valid for: a node on loopback.
pub const PEER_TLS_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a few minutes ago for `length`.
    pub fn from_now(length: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - BACKDATE,
            not_after: now + length,
        }
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
    /// The certificate's serial number.
    pub serial: Vec<u8>,
}

/// A certificate authority that issues identities with organizational units.
pub struct DevCa {
    org_name: String,
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl DevCa {
    /// A new self-signed root CA for the organization `org_name`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn create(org_name: &str) -> Result<Self, MspError> {
        Self::create_named(org_name, &format!("ca.{org_name}"))
    }

    /// A new self-signed root CA of the organization `org_name`, named `common_name`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn create_named(org_name: &str, common_name: &str) -> Result<Self, MspError> {
        let generate = |e: rcgen::Error| MspError::Generate {
            what: format!("the CA {common_name}"),
            reason: e.to_string(),
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, org_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.serial_number = Some(random_serial());
        let validity = Validity::from_now(DEV_CERT_VALIDITY);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert_pem = params.self_signed(&key).map_err(generate)?.pem();
        Ok(Self {
            org_name: org_name.to_owned(),
            params,
            key,
            cert_pem,
        })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues an identity certificate for `common_name` carrying the OUs `ous`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn issue(
        &self,
        common_name: &str,
        ous: &[&str],
        validity: Validity,
    ) -> Result<Issued, MspError> {
        let generate = |e: rcgen::Error| MspError::Generate {
            what: format!("the certificate of {common_name}"),
            reason: e.to_string(),
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, &self.org_name, ous);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.as_ref().to_vec(),
        })
    }

    /// Issues a TLS certificate for `common_name`, usable by a server for `host_names` (IP
    /// addresses or DNS names) and by a client, as `cryptogen`'s TLS certificates are.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn issue_tls(
        &self,
        common_name: &str,
        host_names: Vec<String>,
        validity: Validity,
    ) -> Result<Issued, MspError> {
        let generate = |e: rcgen::Error| MspError::Generate {
            what: format!("the TLS certificate of {common_name}"),
            reason: e.to_string(),
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::new(host_names).map_err(generate)?;
        params.distinguished_name = name(common_name, &self.org_name, &[]);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.as_ref().to_vec(),
        })
    }

    /// A CRL, signed by this CA, that revokes the certificates with serial numbers `serials`.
    ///
    /// # Errors
    /// Signing failed.
    pub fn revoke(&self, serials: &[&[u8]]) -> Result<String, MspError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + Duration::from_secs(24 * 3600),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - BACKDATE,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        params
            .signed_by(&issuer)
            .and_then(|crl| crl.pem())
            .map_err(|e| MspError::Generate {
                what: "a CRL".to_owned(),
                reason: e.to_string(),
            })
    }

    /// Writes the CA's certificate and key into `dir`.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), MspError> {
        write_file(&dir.join("ca-cert.pem"), &self.cert_pem)?;
        write_key(&dir.join("priv_sk"), &self.key.serialize_pem())
    }

    /// Writes an organization MSP directory (what others verify this organization by).
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_org_msp(&self, dir: &Path) -> Result<(), MspError> {
        write_file(&dir.join("cacerts/ca-cert.pem"), &self.cert_pem)?;
        write_file(&dir.join("config.yaml"), NODE_OUS_CONFIG)?;
        create_dir(&dir.join("admincerts"))
    }

    /// Writes the MSP directory of a member: the organization's material plus the member's
    /// certificate and key.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_member_msp(&self, dir: &Path, issued: &Issued) -> Result<(), MspError> {
        self.write_org_msp(dir)?;
        write_file(&dir.join("signcerts/cert.pem"), &issued.cert_pem)?;
        write_key(&dir.join("keystore/priv_sk"), &issued.key_pem)
    }
}

fn name(common_name: &str, org: &str, ous: &[&str]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, org);
    for ou in ous {
        name.push(DnType::OrganizationalUnitName, *ou);
    }
    name.push(DnType::CommonName, common_name);
    name
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn create_dir(dir: &Path) -> Result<(), MspError> {
    fs::create_dir_all(dir).map_err(|source| MspError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), MspError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    fs::write(path, text).map_err(|source| MspError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_key(path: &Path, text: &str) -> Result<(), MspError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    write_private(path, text).map_err(|source| MspError::Io {
        path: path.to_owned(),
        source,
    })
}
