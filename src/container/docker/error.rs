//! Errors of the Docker VM, with Docker API failures mapped to names.

/// What can go wrong launching chaincode in Docker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    /// The engine cannot be reached.
    #[error("cannot reach the Docker engine at {endpoint}: {reason}")]
    Unreachable {
        /// The engine address.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The image does not exist (HTTP 404).
    #[error("no such image {0}")]
    NoSuchImage(String),
    /// A container of that name exists (HTTP 409, or 400 with "Conflict.").
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// Building the image failed; the text is the build's log.
    #[error("building image {image} failed: {log}")]
    BuildFailed {
        /// The image.
        image: String,
        /// The build output, ending with the error.
        log: String,
    },
    /// The package cannot be run by this VM.
    #[error("chaincode {name}: {reason}")]
    Unrunnable {
        /// The chaincode.
        name: String,
        /// Why.
        reason: String,
    },
    /// Any other API failure.
    #[error("docker {action}: {reason}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The engine's answer.
        reason: String,
    },
}

/// Names a Docker API error from `action` on `subject` (an image or container name).
pub(super) fn api_error(
    action: &'static str,
    subject: &str,
    error: bollard::errors::Error,
) -> DockerError {
    use bollard::errors::Error;
    match error {
        Error::DockerResponseServerError {
            status_code: 404, ..
        } if action == "create container" => DockerError::NoSuchImage(subject.to_owned()),
        Error::DockerResponseServerError {
            status_code: 409, ..
        } => DockerError::AlreadyExists(subject.to_owned()),
        Error::DockerResponseServerError {
            status_code: 400,
            ref message,
        } if message.contains("Conflict.") => DockerError::AlreadyExists(subject.to_owned()),
        other => DockerError::Api {
            action,
            reason: other.to_string(),
        },
    }
}
