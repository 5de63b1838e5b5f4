//! The container runtime step of a launch: what a chaincode is started with (its arguments,
//! environment and files), built once by the launch pipeline for whichever VM runs it, as
//! Fabric's container runtime builds a `LaunchConfig`. A VM only applies it: the Docker VM as
//! the container's command, environment and uploaded files, the inproc VM as the guest's WASI
//! environment.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::package::{CodeFile, Package};

/// The variable that names the chaincode to its shim.
pub const CHAINCODE_ID_ENV: &str = "CORE_CHAINCODE_ID_NAME";
/// Where Fabric's convention puts a chaincode's TLS files.
pub const TLS_DIR: &str = "/etc/hyperledger/fabric";

/// How a chaincode reaches the peer, which decides what it must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// It runs inside the peer and is handed its channel; it needs only its name.
    InProcess,
    /// It runs in a process of its own and dials the peer's chaincode listener: it needs the
    /// address and, when the listener requires it, a client certificate.
    DialsPeer,
    /// It serves elsewhere and the peer dials it; its name is all the peer gives it.
    Served,
}

/// What a VM would run for a chaincode name, as found once per launch and handed back to the VM
/// that starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name the chaincode registers with.
    pub registers_as: String,
    /// How it reaches the peer.
    pub connection: Connection,
    /// The installed package a user chaincode runs; none for one the peer carries itself.
    pub package: Option<Package>,
}

/// What to run for a chaincode name: its package and the name it registers as.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The name the chaincode registers with (`CORE_CHAINCODE_ID_NAME`).
    pub registers_as: String,
    /// The installed package.
    pub package: Package,
}

impl Resolved {
    /// The launch target of this chaincode, reaching the peer by `connection`.
    pub fn into_target(self, connection: Connection) -> Target {
        Target {
            registers_as: self.registers_as,
            connection,
            package: Some(self.package),
        }
    }
}

/// Looks up the user chaincodes the Docker and ccaas VMs run: a committed definition whose
/// package is installed on this peer.
pub trait ChaincodeResolver: Send + Sync {
    /// The package to run as `name`, if `name` is such a chaincode.
    fn resolve(&self, name: &str) -> Option<Resolved>;
}

/// What a chaincode is started with.
#[derive(Debug, Clone, Default)]
pub struct LaunchConfig {
    /// The name it registers with.
    pub registers_as: String,
    /// Its command-line arguments.
    pub args: Vec<String>,
    /// Its environment, in order.
    pub env: Vec<(String, String)>,
    /// Files placed in its file system before it starts, at absolute paths.
    pub files: Vec<CodeFile>,
}

impl LaunchConfig {
    /// The environment as `NAME=value` strings.
    pub fn env_strings(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect()
    }
}

/// What a launched chaincode needs for mutual TLS with the peer, all PEM.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// Its client certificate, whose common name is the name it registers with.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// The CA certificate the peer's listener is signed by.
    pub root_pem: String,
}

/// Why a chaincode's client certificate could not be issued.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot issue a certificate to {chaincode}: {source}")]
pub struct IssueError {
    /// The chaincode.
    pub chaincode: String,
    /// The issuer's error.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

/// Issues a client certificate to each chaincode that dials the peer.
pub trait CertIssuer: Send + Sync {
    /// Credentials for a chaincode registering as `name`.
    ///
    /// # Errors
    /// [`IssueError`], saying why none could be issued.
    fn issue(&self, name: &str) -> Result<ClientCredentials, IssueError>;
}

/// Builds launch configurations: where the peer's chaincode listener is, and who issues client
/// certificates when it requires them.
#[derive(Default)]
pub struct ContainerRuntime {
    peer_address: String,
    tls: Option<Arc<dyn CertIssuer>>,
}

impl ContainerRuntime {
    /// Chaincodes that dial the peer are told `peer_address`; with `tls`, each gets a client
    /// certificate of its own.
    pub fn new(peer_address: String, tls: Option<Arc<dyn CertIssuer>>) -> Self {
        Self { peer_address, tls }
    }

    /// What `target` is started with.
    ///
    /// # Errors
    /// [`IssueError`] when the chaincode's client certificate could not be issued.
    pub fn launch_config(&self, target: &Target) -> Result<LaunchConfig, IssueError> {
        let mut config = LaunchConfig {
            registers_as: target.registers_as.clone(),
            env: vec![(CHAINCODE_ID_ENV.to_owned(), target.registers_as.clone())],
            ..LaunchConfig::default()
        };
        if target.connection != Connection::DialsPeer {
            return Ok(config);
        }
        config.args = vec!["--peer.address".to_owned(), self.peer_address.clone()];
        config
            .env
            .push(("CORE_PEER_ADDRESS".to_owned(), self.peer_address.clone()));
        let Some(issuer) = &self.tls else {
            config
                .env
                .push(("CORE_PEER_TLS_ENABLED".to_owned(), "false".to_owned()));
            return Ok(config);
        };
        let credentials = issuer.issue(&target.registers_as)?;
        let base64 = |pem: &str| STANDARD.encode(pem).into_bytes();
        config.files = vec![
            CodeFile::new(
                format!("{TLS_DIR}/client.key"),
                base64(&credentials.key_pem),
                0o600,
            ),
            CodeFile::new(
                format!("{TLS_DIR}/client.crt"),
                base64(&credentials.cert_pem),
                0o644,
            ),
            CodeFile::new(
                format!("{TLS_DIR}/peer.crt"),
                credentials.root_pem.into_bytes(),
                0o644,
            ),
        ];
        config.env.extend(
            [
                ("CORE_PEER_TLS_ENABLED", "true".to_owned()),
                ("CORE_TLS_CLIENT_KEY_PATH", format!("{TLS_DIR}/client.key")),
                ("CORE_TLS_CLIENT_CERT_PATH", format!("{TLS_DIR}/client.crt")),
                ("CORE_PEER_TLS_ROOTCERT_FILE", format!("{TLS_DIR}/peer.crt")),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedIssuer;

    impl CertIssuer for FixedIssuer {
        fn issue(&self, name: &str) -> Result<ClientCredentials, IssueError> {
            Ok(ClientCredentials {
                cert_pem: format!("cert of {name}"),
                key_pem: format!("key of {name}"),
                root_pem: "root".to_owned(),
            })
        }
    }

    fn target(connection: Connection) -> Target {
        Target {
            registers_as: "basic:1.0".to_owned(),
            connection,
            package: None,
        }
    }

    fn value<'a>(config: &'a LaunchConfig, name: &str) -> Option<&'a str> {
        config
            .env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_chaincode_in_the_peer_is_told_only_its_name() -> Result<(), IssueError> {
        let runtime =
            ContainerRuntime::new("127.0.0.1:7052".to_owned(), Some(Arc::new(FixedIssuer)));
        for connection in [Connection::InProcess, Connection::Served] {
            let config = runtime.launch_config(&target(connection))?;
            assert_eq!(config.env_strings(), ["CORE_CHAINCODE_ID_NAME=basic:1.0"]);
            assert!(config.args.is_empty() && config.files.is_empty());
        }
        Ok(())
    }

    #[test]
    fn a_chaincode_that_dials_gets_the_address_and_its_own_certificate()
    -> Result<(), Box<dyn std::error::Error>> {
        let runtime =
            ContainerRuntime::new("10.0.0.1:7052".to_owned(), Some(Arc::new(FixedIssuer)));
        let config = runtime.launch_config(&target(Connection::DialsPeer))?;
        assert_eq!(config.args, ["--peer.address", "10.0.0.1:7052"]);
        assert_eq!(value(&config, "CORE_PEER_ADDRESS"), Some("10.0.0.1:7052"));
        assert_eq!(value(&config, "CORE_PEER_TLS_ENABLED"), Some("true"));
        let key = config
            .files
            .iter()
            .find(|file| file.path == "/etc/hyperledger/fabric/client.key")
            .ok_or("no client key")?;
        assert_eq!(key.bytes, STANDARD.encode("key of basic:1.0").into_bytes());
        assert_eq!(
            value(&config, "CORE_TLS_CLIENT_KEY_PATH"),
            Some("/etc/hyperledger/fabric/client.key")
        );
        Ok(())
    }

    #[test]
    fn without_an_issuer_a_chaincode_dials_in_the_clear() -> Result<(), IssueError> {
        let runtime = ContainerRuntime::new("127.0.0.1:7052".to_owned(), None);
        let config = runtime.launch_config(&target(Connection::DialsPeer))?;
        assert_eq!(value(&config, "CORE_PEER_TLS_ENABLED"), Some("false"));
        assert!(config.files.is_empty());
        Ok(())
    }
}
