//! Who may do what on the node or on one of its channels: the organizations (MSPs), policies
//! and ACLs, applied to a signed request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::channel::ChannelConfig;
use crate::msp::{IdentityError, MspError, MspMaterial, Trust, ValidatedIdentity};
use crate::policy::{Acls, ChannelPolicies, PolicyError};

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessDenied {
    /// The signer is not a valid identity, or did not sign.
    #[error("access denied: {0}")]
    Identity(#[from] IdentityError),
    /// The message is not bound to the client's TLS certificate.
    #[error(
        "access denied: the TLS certificate hash in the channel header does not match the client's TLS certificate"
    )]
    TlsBinding,
    /// The signer does not satisfy the policy guarding the resource.
    #[error("access denied for {resource}: {reason}")]
    Policy {
        /// The resource.
        resource: String,
        /// Which policy failed.
        reason: PolicyError,
    },
}

/// The channel's organizations, policies and ACLs.
pub(crate) struct Access {
    pub trust: Arc<Trust>,
    pub policies: Arc<ChannelPolicies>,
    acls: Acls,
    /// Messages must carry the hash of the client's TLS certificate (client authentication is
    /// required on the client port).
    tls_binding: bool,
}

impl Access {
    /// Reads the material of the organizations a node trusts: its own (`local_msp_id`, from its
    /// MSP directory `local_dir`) first, then the further `organizations` (MSP id → MSP
    /// directory).
    ///
    /// # Errors
    /// An MSP directory that cannot be read.
    pub fn read_organizations(
        local_dir: &Path,
        local_msp_id: &str,
        organizations: &BTreeMap<String, PathBuf>,
    ) -> Result<Vec<MspMaterial>, MspError> {
        std::iter::once((local_msp_id, local_dir))
            .chain(
                organizations
                    .iter()
                    .map(|(msp_id, dir)| (msp_id.as_str(), dir.as_path())),
            )
            .map(|(msp_id, dir)| MspMaterial::load(dir, msp_id))
            .collect()
    }

    /// The organizations, policies and ACLs of a channel configured by `config`, on a node of
    /// `local_msp_id`.
    ///
    /// # Errors
    /// An organization whose material does not parse, or two with one MSP id.
    pub fn of_channel(
        config: &ChannelConfig,
        local_msp_id: &str,
        tls_binding: bool,
    ) -> Result<Self, MspError> {
        Ok(Self {
            trust: Arc::new(Trust::new(&config.organizations)?),
            policies: Arc::new(config.policies.clone()),
            acls: Acls::new(local_msp_id, &config.acls),
            tls_binding,
        })
    }

    /// Checks that a message whose channel header carries `header_hash` came over the TLS
    /// connection of the client certificate hashed `client_hash`, when binding is required.
    ///
    /// # Errors
    /// [`AccessDenied::TlsBinding`].
    pub fn check_tls_binding(
        &self,
        client_hash: Option<&[u8]>,
        header_hash: &[u8],
    ) -> Result<(), AccessDenied> {
        match client_hash {
            Some(expected) if self.tls_binding && expected != header_hash => {
                Err(AccessDenied::TlsBinding)
            }
            _ => Ok(()),
        }
    }

    /// The ACLs.
    pub fn acls(&self) -> &Acls {
        &self.acls
    }

    /// Checks that `signature` over `message` is by `creator`, a valid identity that satisfies
    /// the policy guarding `resource`.
    ///
    /// # Errors
    /// [`AccessDenied`] saying which check failed.
    pub fn authorize(
        &self,
        resource: &str,
        creator: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<Arc<ValidatedIdentity>, AccessDenied> {
        let identity = self.trust.verify(creator, message, signature)?;
        self.policies
            .check(
                &self.acls.policy_for(resource),
                std::slice::from_ref(&identity),
            )
            .map_err(|reason| AccessDenied::Policy {
                resource: resource.to_owned(),
                reason,
            })?;
        Ok(identity)
    }
}
