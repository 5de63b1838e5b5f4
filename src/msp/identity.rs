//! A validated identity: which organization it belongs to, which roles it holds, and the key
//! that checks its signatures.

use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};

use super::error::IdentityError;

/// The role an identity's NodeOU gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// An application.
    Client,
    /// A peer: may endorse.
    Peer,
    /// An administrator of its organization.
    Admin,
    /// An ordering node.
    Orderer,
}

/// A role a policy can ask of an identity: the values of Fabric's `MSPRole.MSPRoleType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MspRole {
    /// Any valid identity of the organization.
    Member,
    /// An administrator.
    Admin,
    /// A client.
    Client,
    /// A peer.
    Peer,
    /// An orderer.
    Orderer,
}

impl MspRole {
    /// The role named as in Fabric's policy language (`member`, `admin`, `client`, `peer`,
    /// `orderer`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "member" => Self::Member,
            "admin" => Self::Admin,
            "client" => Self::Client,
            "peer" => Self::Peer,
            "orderer" => Self::Orderer,
            _ => return None,
        })
    }

    /// The role's name in Fabric's policy language.
    pub fn name(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Client => "client",
            Self::Peer => "peer",
            Self::Orderer => "orderer",
        }
    }
}

/// An ECDSA public key of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    curve: Curve,
    point: Vec<u8>,
}

/// The elliptic curve of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl PublicKey {
    /// The key of an uncompressed EC point, its curve told by its length.
    pub fn from_point(point: &[u8]) -> Option<Self> {
        let curve = match point.len() {
            65 => Curve::P256,
            97 => Curve::P384,
            _ => return None,
        };
        (point.first() == Some(&4)).then(|| Self {
            curve,
            point: point.to_vec(),
        })
    }

    /// Whether `signature` (ASN.1 DER) is in Fabric's low-S form.
    pub fn is_low_s(&self, signature: &[u8]) -> bool {
        super::low_s::is_low_s(signature, self.curve)
    }

    /// Whether `signature` (ASN.1 DER) signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm = match self.curve {
            Curve::P256 => &ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &ECDSA_P384_SHA384_ASN1,
        };
        UnparsedPublicKey::new(algorithm, &self.point)
            .verify(message, signature)
            .is_ok()
    }
}

/// An identity whose certificate validated against a trusted organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedIdentity {
    /// The organization.
    pub msp_id: String,
    /// The role its NodeOU gives it, when the organization classifies identities.
    pub node_role: Option<NodeRole>,
    /// Whether its certificate is one of the organization's admin certificates.
    pub listed_admin: bool,
    /// Whether the organization classifies identities by NodeOU.
    pub node_ous: bool,
    /// Its key.
    pub public_key: PublicKey,
    /// Start of its certificate's validity, seconds since the epoch.
    pub not_before: u64,
    /// End of its certificate's validity, seconds since the epoch.
    pub not_after: u64,
}

impl ValidatedIdentity {
    /// Whether it holds `role` in its organization, by Fabric's rules: every valid identity is
    /// a member; admins carry the admin OU or are listed; client, peer and orderer need NodeOUs.
    pub fn has_role(&self, role: MspRole) -> bool {
        match role {
            MspRole::Member => true,
            MspRole::Admin => self.listed_admin || self.node_role == Some(NodeRole::Admin),
            MspRole::Client => self.node_role == Some(NodeRole::Client),
            MspRole::Peer => self.node_role == Some(NodeRole::Peer),
            MspRole::Orderer => self.node_role == Some(NodeRole::Orderer),
        }
    }

    /// Whether it is `role` of organization `msp_id`.
    pub fn is(&self, msp_id: &str, role: MspRole) -> bool {
        self.msp_id == msp_id && self.has_role(role)
    }

    /// Checks that `signature` signs `message` with this identity's key, in Fabric's low-S form.
    ///
    /// # Errors
    /// [`IdentityError::HighS`] for a signature not in low-S form,
    /// [`IdentityError::BadSignature`] when it does not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        if !self.public_key.is_low_s(signature) {
            return Err(IdentityError::HighS {
                msp_id: self.msp_id.clone(),
            });
        }
        if self.public_key.verifies(message, signature) {
            Ok(())
        } else {
            Err(IdentityError::BadSignature {
                msp_id: self.msp_id.clone(),
            })
        }
    }

    /// Whether its certificate is within its validity period at `now` (seconds since the
    /// epoch).
    pub fn valid_at(&self, now: u64) -> bool {
        (self.not_before..=self.not_after).contains(&now)
    }
}
