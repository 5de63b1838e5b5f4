//! The one map from what the node's gRPC services refuse to a gRPC status. A refusal the caller
//! can act on keeps its text; a failure inside the node (its store, a crashed task) is logged in
//! full and answered with a fixed text, so that no host path or store detail leaves the node.

use tonic::Status;
use tracing::error;

use super::NodeError;
use super::access::AccessDenied;
use super::channels::ChannelError;
use crate::ledger::LedgerError;
use crate::package::PackageError;
use crate::signed_call::SignedCallError;

/// Why a gRPC call of the node's own services failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ServiceError {
    /// The request does not hold what it must.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Its signer may not make it.
    #[error(transparent)]
    AccessDenied(#[from] AccessDenied),
    /// It is not signed as the service needs.
    #[error(transparent)]
    Unsigned(#[from] SignedCallError),
    /// It names a channel this node does not have.
    #[error("channel {0} does not exist")]
    NoChannel(String),
    /// The part of the node that would serve it has stopped (the node is shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// A package that cannot be installed, or the package store failing.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A system chaincode that cannot be reloaded, or the node failing.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The ledger failed underneath.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A channel that cannot be created, or the node failing to create it.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The task serving the request ended unexpectedly.
    #[error("the task serving the request failed: {0}")]
    TaskFailed(String),
}

/// The fixed text of a failure inside the node.
const INTERNAL: &str = "internal error; the node's log has the details";

impl ServiceError {
    /// Whether the failure is inside the node, not in the request.
    fn is_internal(&self) -> bool {
        match self {
            Self::Package(
                PackageError::Malformed(_) | PackageError::Label(_) | PackageError::Platform(_),
            )
            | Self::Node(
                NodeError::UnknownSystemChaincode(_)
                | NodeError::Inproc(_)
                | NodeError::ChaincodeDir { .. }
                | NodeError::Reload { .. },
            )
            | Self::Channel(
                ChannelError::InvalidName(_) | ChannelError::Ledger(LedgerError::ChannelExists(_)),
            ) => false,
            Self::Package(_)
            | Self::Node(_)
            | Self::Ledger(_)
            | Self::Channel(_)
            | Self::TaskFailed(_) => true,
            Self::Malformed(_)
            | Self::AccessDenied(_)
            | Self::Unsigned(_)
            | Self::NoChannel(_)
            | Self::Unavailable(_) => false,
        }
    }

    /// The text a client may read: the refusal itself, or a fixed text for a failure inside
    /// the node, whose details go to the log.
    pub fn client_text(&self) -> String {
        if self.is_internal() {
            error!(error = %self, "request failed inside the node");
            INTERNAL.to_owned()
        } else {
            self.to_string()
        }
    }
}

impl From<ServiceError> for Status {
    fn from(refusal: ServiceError) -> Self {
        let text = refusal.client_text();
        match refusal {
            ServiceError::Malformed(_)
            | ServiceError::Package(
                PackageError::Malformed(_) | PackageError::Label(_) | PackageError::Platform(_),
            )
            | ServiceError::Channel(ChannelError::InvalidName(_)) => Status::invalid_argument(text),
            ServiceError::Channel(ChannelError::Ledger(LedgerError::ChannelExists(_))) => {
                Status::already_exists(text)
            }
            ServiceError::AccessDenied(_) => Status::permission_denied(text),
            ServiceError::Unsigned(_) => Status::unauthenticated(text),
            ServiceError::NoChannel(_)
            | ServiceError::Node(NodeError::UnknownSystemChaincode(_)) => Status::not_found(text),
            ServiceError::Node(
                NodeError::Inproc(_) | NodeError::ChaincodeDir { .. } | NodeError::Reload { .. },
            ) => Status::failed_precondition(text),
            ServiceError::Unavailable(_) => Status::unavailable(text),
            ServiceError::Package(_)
            | ServiceError::Node(_)
            | ServiceError::Ledger(_)
            | ServiceError::Channel(_)
            | ServiceError::TaskFailed(_) => Status::internal(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tonic::Code;

    use super::*;

    fn status(refusal: ServiceError) -> (Code, String) {
        let status = Status::from(refusal);
        (status.code(), status.message().to_owned())
    }

    #[test]
    fn a_malformed_request_or_package_is_an_invalid_argument() {
        assert_eq!(
            status(ServiceError::Malformed("envelope has no header".to_owned())),
            (
                Code::InvalidArgument,
                "malformed request: envelope has no header".to_owned()
            )
        );
        assert_eq!(
            status(ServiceError::Package(PackageError::Platform(
                "cobol".to_owned()
            ))),
            (
                Code::InvalidArgument,
                "package type \"cobol\" is not one of rust, binary, wasm, ccaas".to_owned()
            )
        );
    }

    #[test]
    fn a_refused_signer_is_denied_and_an_unsigned_call_unauthenticated() {
        let refused =
            AccessDenied::Identity(crate::msp::IdentityError::UnknownMsp("EvilMSP".to_owned()));
        assert_eq!(
            status(ServiceError::AccessDenied(refused)),
            (
                Code::PermissionDenied,
                "access denied: MSP EvilMSP is not an organization of this channel".to_owned()
            )
        );
        assert_eq!(
            status(ServiceError::Unsigned(SignedCallError::Missing)),
            (
                Code::Unauthenticated,
                "the call is not signed: metadata ccvm-admin-request-bin is missing".to_owned()
            )
        );
    }

    #[test]
    fn an_unknown_channel_or_system_chaincode_is_not_found() {
        assert_eq!(
            status(ServiceError::NoChannel("other".to_owned())),
            (Code::NotFound, "channel other does not exist".to_owned())
        );
        assert_eq!(
            status(ServiceError::Node(NodeError::UnknownSystemChaincode(
                "nope".to_owned()
            )))
            .0,
            Code::NotFound
        );
    }

    #[test]
    fn a_bad_channel_name_is_an_invalid_argument_and_a_taken_one_already_exists() {
        assert_eq!(
            status(ServiceError::Channel(ChannelError::InvalidName(
                "My_Channel".to_owned()
            )))
            .0,
            Code::InvalidArgument
        );
        assert_eq!(
            status(ServiceError::Channel(ChannelError::Ledger(
                LedgerError::ChannelExists("mychannel".to_owned())
            ))),
            (
                Code::AlreadyExists,
                "channel mychannel exists already".to_owned()
            )
        );
    }

    #[test]
    fn a_reload_that_cannot_be_done_is_a_failed_precondition() {
        let refusal = ServiceError::Node(NodeError::Reload {
            name: "scc".to_owned(),
            reason: "it trapped".to_owned(),
        });
        assert_eq!(
            status(refusal),
            (
                Code::FailedPrecondition,
                "system chaincode scc was reloaded but did not start: it trapped".to_owned()
            )
        );
    }

    #[test]
    fn a_stopped_service_is_unavailable() {
        assert_eq!(
            status(ServiceError::Unavailable(
                "the block cutter has stopped".to_owned()
            ))
            .0,
            Code::Unavailable
        );
    }

    #[test]
    fn a_failure_inside_the_node_keeps_its_details_to_the_log() {
        let store = ServiceError::Package(PackageError::Store {
            path: PathBuf::from("/srv/secret/packages"),
            source: std::io::Error::other("disk full"),
        });
        let crashed = ServiceError::TaskFailed("panicked at src/x.rs:1".to_owned());
        for refusal in [store, crashed] {
            assert_eq!(status(refusal), (Code::Internal, INTERNAL.to_owned()));
        }
    }
}
