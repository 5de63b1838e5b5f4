//! The organizations a node trusts, and the identities it has already validated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ccvm_proto::Message;
use ccvm_proto::msp::SerializedIdentity;
use rustls_pki_types::UnixTime;
use rustls_pki_types::pem::{PemObject, SectionKind};

use super::error::{IdentityError, MspError};
use super::identity::ValidatedIdentity;
use super::organization::Organization;
use super::{MspMaterial, NodeRole};
use crate::sync::lock;

/// Most validated identities kept; a full cache is emptied, which bounds the memory a client
/// cycling through certificates can take while a steady set of clients and peers is validated
/// once each.
pub const MAX_CACHED_IDENTITIES: usize = 4096;

/// The organizations of a channel, each an MSP, and a cache of identities they validated.
pub struct Trust {
    organizations: HashMap<String, Organization>,
    validated: Mutex<HashMap<Vec<u8>, Arc<ValidatedIdentity>>>,
}

impl Trust {
    /// Trusts the organizations of `materials`.
    ///
    /// # Errors
    /// Material that does not parse, or two organizations with the same MSP id.
    pub fn new(materials: &[MspMaterial]) -> Result<Self, MspError> {
        let mut organizations = HashMap::new();
        for material in materials {
            let organization = Organization::new(material)?;
            if organizations
                .insert(material.msp_id.clone(), organization)
                .is_some()
            {
                return Err(MspError::Material {
                    path: format!("MSP {}", material.msp_id).into(),
                    reason: "is configured twice".to_owned(),
                });
            }
        }
        Ok(Self {
            organizations,
            validated: Mutex::default(),
        })
    }

    /// The MSP ids of the trusted organizations, sorted.
    pub fn msp_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.organizations.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// The organization with MSP id `msp_id`.
    pub fn organization(&self, msp_id: &str) -> Option<&Organization> {
        self.organizations.get(msp_id)
    }

    /// Validates an encoded `msp.SerializedIdentity` now. A certificate is validated once;
    /// later calls only check that it is still within its validity period.
    ///
    /// # Errors
    /// Why the identity is not a valid member of a trusted organization.
    pub fn validate(&self, serialized: &[u8]) -> Result<Arc<ValidatedIdentity>, IdentityError> {
        let now = UnixTime::now();
        {
            let mut validated = lock(&self.validated);
            if let Some(identity) = validated.get(serialized) {
                if identity.valid_at(now.as_secs()) {
                    return Ok(Arc::clone(identity));
                }
                validated.remove(serialized);
            }
        }
        let identity = Arc::new(self.validate_uncached(serialized, now)?);
        let mut validated = lock(&self.validated);
        if validated.len() >= MAX_CACHED_IDENTITIES {
            validated.clear();
        }
        validated.insert(serialized.to_vec(), Arc::clone(&identity));
        Ok(identity)
    }

    /// Validates `serialized` and checks that it signed `message` with `signature`.
    ///
    /// # Errors
    /// Why the identity is not valid, or [`IdentityError::BadSignature`].
    pub fn verify(
        &self,
        serialized: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<Arc<ValidatedIdentity>, IdentityError> {
        let identity = self.validate(serialized)?;
        identity.verify(message, signature)?;
        Ok(identity)
    }

    fn validate_uncached(
        &self,
        serialized: &[u8],
        now: UnixTime,
    ) -> Result<ValidatedIdentity, IdentityError> {
        let identity = SerializedIdentity::decode(serialized)
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let organization = self
            .organizations
            .get(&identity.mspid)
            .ok_or_else(|| IdentityError::UnknownMsp(identity.mspid.clone()))?;
        let der = CertificateDerOfPem::parse(&identity.id_bytes)?;
        organization.validate(&der.0, now)
    }
}

/// The DER certificate in the PEM `id_bytes` of a serialized identity.
struct CertificateDerOfPem(Vec<u8>);

impl CertificateDerOfPem {
    fn parse(pem: &[u8]) -> Result<Self, IdentityError> {
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            match section {
                Ok((SectionKind::Certificate, der)) => return Ok(Self(der)),
                Ok(_) => {}
                Err(e) => return Err(IdentityError::Malformed(format!("not PEM: {e}"))),
            }
        }
        Err(IdentityError::Malformed(
            "holds no PEM certificate".to_owned(),
        ))
    }
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("organizations", &self.msp_ids())
            .finish_non_exhaustive()
    }
}

impl NodeRole {
    /// The role's OU name in the development organization the node creates.
    pub fn ou(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Peer => "peer",
            Self::Admin => "admin",
            Self::Orderer => "orderer",
        }
    }
}
