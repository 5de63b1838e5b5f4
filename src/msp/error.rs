//! Why MSP material could not be loaded, and why an identity was refused.

use std::path::PathBuf;

/// Why an MSP directory or a signing identity could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MspError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not hold what its place in the layout needs.
    #[error("{path}: {reason}")]
    Material {
        /// The file or directory.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An organization in a channel's configuration is not a usable MSP.
    #[error("MSP {msp_id} in the channel configuration: {reason}")]
    Config {
        /// The MSP id.
        msp_id: String,
        /// What was wrong.
        reason: String,
    },
    /// Key or certificate generation failed.
    #[error("cannot create {what}: {reason}")]
    Generate {
        /// What was being created.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// Why an identity is not accepted as a member of an organization the node trusts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not an `msp.SerializedIdentity` holding a PEM X.509 certificate.
    #[error("malformed identity: {0}")]
    Malformed(String),
    /// The identity names an MSP the node does not trust.
    #[error("MSP {0} is not an organization of this channel")]
    UnknownMsp(String),
    /// The certificate does not validate against the MSP's CAs.
    #[error("the certificate of this {msp_id} identity {reason}")]
    Certificate {
        /// The claimed MSP.
        msp_id: String,
        /// What failed.
        reason: CertificateRefusal,
    },
    /// The certificate validates but its organizational units do not fit the MSP's rules.
    #[error("this {msp_id} identity {reason}")]
    OrganizationalUnit {
        /// The claimed MSP.
        msp_id: String,
        /// What failed.
        reason: String,
    },
    /// The signature's S is in the upper half of the curve's order, which Fabric refuses.
    #[error("the signature of this {msp_id} identity is not in low-S form, which Fabric requires")]
    HighS {
        /// The claimed MSP.
        msp_id: String,
    },
    /// The signature does not verify with the identity's key.
    #[error("the signature does not verify with the key of this {msp_id} identity")]
    BadSignature {
        /// The claimed MSP.
        msp_id: String,
    },
}

/// Why a certificate failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRefusal {
    /// It is not signed by the MSP's root or intermediate CAs.
    #[error("is not signed by a CA of the MSP")]
    UnknownIssuer,
    /// Its validity ended.
    #[error("expired at {not_after} (unix time)")]
    Expired {
        /// Seconds since the epoch when it stopped being valid.
        not_after: u64,
    },
    /// Its validity has not begun.
    #[error("is not valid before {not_before} (unix time)")]
    NotYetValid {
        /// Seconds since the epoch when it becomes valid.
        not_before: u64,
    },
    /// A CRL of the MSP revokes it.
    #[error("is revoked")]
    Revoked,
    /// It is a CA certificate, which Fabric never accepts as an identity.
    #[error("is a CA certificate, which cannot be used as an identity")]
    CaCertificate,
    /// Any other failure of path validation.
    #[error("is not valid: {0}")]
    Invalid(String),
}
