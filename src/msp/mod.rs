//! Identities the way Fabric's X.509 MSP sees them: organizations read from MSP directories,
//! certificates validated against their CAs (rustls-webpki), CRLs and NodeOU roles, and the
//! signing identity a node or client acts as.
//!
//! Trust decisions are data in, verdict out: [`Trust::validate`] takes serialized identity
//! bytes and answers with a [`ValidatedIdentity`] or the reason it is refused.

pub mod dev_org;
mod dir;
mod error;
mod fabric_config;
mod identity;
mod low_s;
mod organization;
mod own_signatures;
mod signer;
mod trust;

pub use dir::{MspMaterial, NodeOus, OuIdentifier};
pub use error::{CertificateRefusal, IdentityError, MspError};
pub use fabric_config::FABRIC_MSP_TYPE;
pub use identity::{MspRole, NodeRole, PublicKey, ValidatedIdentity};
pub use organization::Organization;
pub use own_signatures::{MAX_OWN_SIGNATURES, OwnSignatures};
pub use signer::Identity;
pub use trust::{MAX_CACHED_IDENTITIES, Trust};

/// The MSP id of the development organization a node creates.
pub const DEFAULT_MSP_ID: &str = "DevMSP";
