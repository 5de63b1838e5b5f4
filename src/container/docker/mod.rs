//! The Docker VM: user chaincode in its own container, built from its installed package into an
//! image `FROM scratch`, dialing the peer's `ChaincodeSupport.Register` stream over gRPC.
//!
//! A start follows Fabric's Docker VM: remove any old container of the name, create the new one
//! (host networking, so it reaches the peer on loopback; memory and log limits), build the image
//! first when the engine has none, start it, copy its output into the peer's log, and report its
//! exit code when it ends. `names` forms container and image names, `image` builds images
//! (`rust_build` compiles a `rust` package first, in a `build_container` unless the operator
//! chose the host), `error` names the engine's failures.

mod build_container;
mod error;
mod image;
pub mod names;
mod rust_build;
pub mod static_cc;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptions,
};
use ccvm_sandbox::{WasmLimits, runner_env};
use futures_util::StreamExt;
use tokio::sync::OnceCell;
use tracing::{info, warn};

pub use build_container::{BuildContainerError, EMPTY_BUILDER_IMAGE, RustBuilder};
pub use error::DockerError;
pub use rust_build::RustBuilds;

use super::{
    ChaincodeResolver, Connection, Exit, ExitReport, LaunchConfig, LaunchProgress, LaunchStage,
    Registrations, StartFuture, Started, Target, Vm, VmError,
};
use crate::package::{CodeFile, Package, Platform, write_tar_gz};

/// Seconds bollard waits for an answer from the engine.
const ENGINE_TIMEOUT_SECS: u64 = 120;

/// How the Docker VM names, limits and connects its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The engine: `unix:///var/run/docker.sock`, or `tcp://HOST:PORT`.
    pub endpoint: String,
    /// For a `tcp://` engine: the directory of `ca.pem`, `cert.pem` and `key.pem` to reach it
    /// over mutual TLS.
    pub cert_path: Option<std::path::PathBuf>,
    /// First part of container and image names.
    pub network_id: String,
    /// Second part of container and image names.
    pub peer_id: String,
    /// Memory limit of a container, in bytes; 0 for none.
    pub memory_bytes: i64,
    /// The containers' log driver and its options.
    pub log_driver: String,
    /// Options of the log driver (`max-size`, `max-file` for `json-file`).
    pub log_options: HashMap<String, String>,
    /// Where `rust` packages are built.
    pub rust_builds: RustBuilds,
    /// The sandbox limits of `wasm` packages, the same as the inproc VM's guests have.
    pub wasm_limits: WasmLimits,
    /// The most instances of a `wasm` package's guest that share its conversation with the
    /// node.
    pub wasm_instances: NonZeroUsize,
}

/// Runs user chaincode in Docker containers. It connects to the engine on its first start, so a
/// node without an engine runs everything else and names the engine when a start needs it.
pub struct DockerVm {
    engine: OnceCell<Docker>,
    settings: DockerSettings,
    resolver: Arc<dyn ChaincodeResolver>,
    registrations: Arc<dyn Registrations>,
    progress: LaunchProgress,
    images_built: AtomicUsize,
    containers_started: AtomicUsize,
}

/// Connects to the engine at `endpoint` (over mutual TLS with the files in `cert_path`, for a
/// `tcp://` engine) and agrees on an API version with it.
async fn connect(endpoint: &str, cert_path: Option<&Path>) -> Result<Docker, DockerError> {
    let unreachable = |reason: String| DockerError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, ENGINE_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if let (Some(dir), true) = (cert_path, endpoint.starts_with("tcp://")) {
        Docker::connect_with_ssl(
            endpoint,
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            &dir.join("ca.pem"),
            ENGINE_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, ENGINE_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(unreachable(
            "the address must start with unix:// or tcp://".to_owned(),
        ));
    }
    .map_err(|e| unreachable(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

impl DockerVm {
    /// A VM on the engine of `settings`, running what `resolver` finds; it tells
    /// `registrations` which names its containers will register as, and reports the steps of
    /// its launches (image builds included) to `progress`.
    pub fn new(
        settings: DockerSettings,
        resolver: Arc<dyn ChaincodeResolver>,
        registrations: Arc<dyn Registrations>,
        progress: LaunchProgress,
    ) -> Self {
        Self {
            engine: OnceCell::new(),
            settings,
            resolver,
            registrations,
            progress,
            images_built: AtomicUsize::new(0),
            containers_started: AtomicUsize::new(0),
        }
    }

    /// How many images this VM has built.
    pub fn images_built(&self) -> usize {
        self.images_built.load(Ordering::Relaxed)
    }

    /// How many containers this VM has started.
    pub fn containers_started(&self) -> usize {
        self.containers_started.load(Ordering::Relaxed)
    }

    /// The container and image names of the package with id `package_id`.
    pub fn names_of(&self, package_id: &str) -> (String, String) {
        let settings = &self.settings;
        (
            names::container_name(&settings.network_id, &settings.peer_id, package_id),
            names::image_name(&settings.network_id, &settings.peer_id, package_id),
        )
    }

    /// The container a `rust` package with id `package_id` is built in.
    pub fn build_container_of(&self, package_id: &str) -> String {
        format!("{}-build", self.names_of(package_id).0)
    }

    /// Whether the engine this VM has used still answers: `None` until the VM has connected to
    /// one (no user chaincode has run in Docker), else the outcome of a ping.
    pub async fn check_engine(&self) -> Option<Result<(), String>> {
        let docker = self.engine.get()?;
        Some(docker.ping().await.map(drop).map_err(|e| {
            format!(
                "the Docker engine at {} does not answer: {e}",
                self.settings.endpoint
            )
        }))
    }

    /// The engine, connected on first use.
    async fn docker(&self) -> Result<&Docker, DockerError> {
        self.engine
            .get_or_try_init(|| async {
                let settings = &self.settings;
                let docker = connect(&settings.endpoint, settings.cert_path.as_deref()).await?;
                info!(endpoint = %self.settings.endpoint, "connected to the Docker engine");
                Ok(docker)
            })
            .await
    }

    /// The container: `config`'s command and environment (and a `wasm` package's sandbox
    /// limits), host networking, and the memory and log settings.
    fn container_config(
        &self,
        image: &str,
        package: &Package,
        config: &LaunchConfig,
    ) -> ContainerCreateBody {
        let settings = &self.settings;
        let mut env = config.env_strings();
        if package.platform == Platform::Wasm {
            env.extend(settings.wasm_limits.to_env());
            env.push(format!(
                "{}={}",
                runner_env::INSTANCES,
                settings.wasm_instances
            ));
        }
        ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(config.args.clone()),
            env: Some(env),
            host_config: Some(HostConfig {
                network_mode: Some("host".to_owned()),
                memory: (settings.memory_bytes > 0).then_some(settings.memory_bytes),
                log_config: Some(HostConfigLogConfig {
                    typ: Some(settings.log_driver.clone()),
                    config: Some(settings.log_options.clone()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates the container, building its image first if the engine has none.
    async fn create(
        &self,
        docker: &Docker,
        name: &str,
        package: &Package,
        launch: &LaunchConfig,
    ) -> Result<String, DockerError> {
        let (container, image) = self.names_of(&package.id);
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(&container, Some(remove)).await {
            Ok(()) => info!(chaincode = name, %container, "removed an old container"),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(error::api_error("remove container", &container, e)),
        }
        let options = CreateContainerOptionsBuilder::default()
            .name(&container)
            .build();
        let config = self.container_config(&image, package, launch);
        self.progress
            .report(name, LaunchStage::Creating, container.clone());
        match docker
            .create_container(Some(options.clone()), config.clone())
            .await
            .map_err(|e| error::api_error("create container", &image, e))
        {
            Ok(_) => {}
            Err(DockerError::NoSuchImage(_)) => {
                info!(chaincode = name, %image, "building the chaincode image");
                self.progress
                    .report(name, LaunchStage::Building, image.clone());
                let files = image::image_files(
                    docker,
                    name,
                    package,
                    &self.settings.rust_builds,
                    &self.build_container_of(&package.id),
                    &self.settings.wasm_limits,
                )
                .await?;
                image::build(docker, &image, files, &|line| {
                    self.progress.report(name, LaunchStage::BuildOutput, line);
                })
                .await?;
                self.images_built.fetch_add(1, Ordering::Relaxed);
                docker
                    .create_container(Some(options), config)
                    .await
                    .map_err(|e| error::api_error("create container", &container, e))?;
            }
            Err(e) => return Err(e),
        }
        Ok(container)
    }

    /// Copies the launch configuration's files (its TLS credentials) into the container.
    async fn upload_files(
        &self,
        docker: &Docker,
        container: &str,
        files: &[CodeFile],
    ) -> Result<(), DockerError> {
        let relative: Vec<CodeFile> = files
            .iter()
            .map(|file| {
                CodeFile::new(
                    file.path.trim_start_matches('/'),
                    file.bytes.clone(),
                    file.mode,
                )
            })
            .collect();
        let tar = write_tar_gz(&relative).map_err(|e| DockerError::Api {
            action: "upload files",
            reason: e.to_string(),
        })?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| error::api_error("upload files", container, e))
    }

    async fn start_container(
        &self,
        name: &str,
        target: &Target,
        launch: &LaunchConfig,
    ) -> Result<Started, DockerError> {
        let package = target
            .package
            .as_ref()
            .ok_or_else(|| DockerError::Unrunnable {
                name: name.to_owned(),
                reason: "no committed definition with an installed package".to_owned(),
            })?;
        let docker = self.docker().await?;
        let container = self.create(docker, name, package, launch).await?;
        if !launch.files.is_empty() {
            self.upload_files(docker, &container, &launch.files).await?;
        }
        let expected = ExpectedRegistration::new(&self.registrations, &launch.registers_as);
        docker
            .start_container(&container, None)
            .await
            .map_err(|e| error::api_error("start container", &container, e))?;
        self.containers_started.fetch_add(1, Ordering::Relaxed);
        self.progress
            .report(name, LaunchStage::Started, container.clone());
        info!(chaincode = name, %container, "container started");
        follow_logs(docker, name, &container);
        let exited = {
            let docker = docker.clone();
            let container = container.clone();
            ExitReport::watching(async move {
                let why = exit_reason(&docker, &container).await;
                drop(expected);
                why
            })
        };
        let stop = {
            let docker = docker.clone();
            Box::new(move || {
                let docker = docker.clone();
                let container = container.clone();
                tokio::spawn(async move {
                    let kill = KillContainerOptionsBuilder::default()
                        .signal("KILL")
                        .build();
                    if let Err(e) = docker.kill_container(&container, Some(kill)).await {
                        warn!(%container, "cannot kill the container: {e}");
                    }
                });
            })
        };
        Ok(Started { stop, exited })
    }
}

/// Copies the container's output, line by line, into the peer's log.
fn follow_logs(docker: &Docker, name: &str, container: &str) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(container, Some(options));
    let chaincode = name.to_owned();
    tokio::spawn(async move {
        while let Some(Ok(output)) = logs.next().await {
            let (stream, message) = match output {
                LogOutput::StdErr { message } => ("stderr", message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    ("stdout", message)
                }
                LogOutput::StdIn { .. } => continue,
            };
            for line in String::from_utf8_lossy(&message).lines() {
                info!(chaincode = %chaincode, stream, "{line}");
            }
        }
    });
}

/// Waits for the container to end and says how: "container exited with N".
async fn exit_reason(docker: &Docker, container: &str) -> Exit {
    let mut wait = docker.wait_container(container, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(exit)) => Exit::Container {
            code: exit.status_code,
            error: None,
        },
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
            Exit::Container {
                code,
                error: (!error.is_empty()).then_some(error),
            }
        }
        Some(Err(e)) => Exit::ContainerLost(Some(e.to_string())),
        None => Exit::ContainerLost(None),
    }
}

impl Vm for DockerVm {
    fn target(&self, name: &str) -> Option<Target> {
        self.resolver
            .resolve(name)
            .filter(|resolved| resolved.package.platform != Platform::Ccaas)
            .map(|resolved| resolved.into_target(Connection::DialsPeer))
    }

    fn start<'a>(
        &'a self,
        name: &'a str,
        target: &'a Target,
        config: &'a LaunchConfig,
    ) -> StartFuture<'a> {
        Box::pin(async move {
            self.start_container(name, target, config)
                .await
                .map_err(VmError::from)
        })
    }
}

/// A registration the peer expects from a container being started, until the container ends.
/// Dropped earlier (the start failed, or the launch was given up while it waited for the
/// engine) it is forgotten all the same, so no count is left behind.
struct ExpectedRegistration {
    registrations: Arc<dyn Registrations>,
    name: String,
}

impl ExpectedRegistration {
    fn new(registrations: &Arc<dyn Registrations>, name: &str) -> Self {
        registrations.expect(name);
        Self {
            registrations: Arc::clone(registrations),
            name: name.to_owned(),
        }
    }
}

impl Drop for ExpectedRegistration {
    fn drop(&mut self) {
        self.registrations.forget(&self.name);
    }
}
