//! Why a VM could not start a chaincode: one variant per VM, each wrapping that VM's own error.

use super::ccaas::CcaasError;
use super::docker::DockerError;
use super::inproc::InprocError;

/// Why a VM could not start a chaincode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// The inproc VM's.
    #[error(transparent)]
    Inproc(#[from] InprocError),
    /// The Docker VM's.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The chaincode-as-a-service VM's.
    #[error(transparent)]
    Ccaas(#[from] CcaasError),
}
