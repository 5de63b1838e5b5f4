//! Cargo in a build container, so that a `rust` package's build scripts and procedural macros
//! run sandboxed instead of on the node's host: no network, no capabilities, no new
//! privileges, a read-only root, bounded memory, processes and time, and nothing writable but
//! the unpacked project and the shared target directory. By default the container's image is
//! empty and the engine's host lends it, read-only and at their own paths, its system
//! directories, the node's Rust toolchain and cargo's downloaded crates; an operator may name
//! an image that brings its own.
//! Either way the build is offline: dependencies come from the crates already downloaded, or
//! from the package itself (vendored, or path dependencies in `mounts`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::process::Command;

use super::error::{DockerError, api_error};
use super::image;
use super::rust_build::{CargoOutput, cargo_build_args};
use super::static_cc::STATIC_TARGET_CC;

/// The empty image cargo runs in when the operator names none.
pub const EMPTY_BUILDER_IMAGE: &str = "ccvm-rust-builder:empty";

/// Host directories the empty image borrows, read-only, when they exist: the system's
/// programs and libraries (the toolchain's dynamic loader, and `cc`, which links), and the
/// alternatives `cc` resolves through.
const HOST_SYSTEM_DIRS: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/etc/alternatives"];

/// The label every build container carries, with the value [`BUILD_ROLE`].
const ROLE_LABEL: &str = "ccvm.role";
/// What a build container is, as its [`ROLE_LABEL`] says.
const BUILD_ROLE: &str = "rust-build";

/// The container's scratch directory (`HOME`, `TMPDIR`).
const CONTAINER_TMP: &str = "/build-tmp";

/// How a build container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustBuilder {
    /// The image cargo runs in, with `cargo` on its `PATH` and the musl target installed;
    /// `None` for an empty image with the host's toolchain mounted.
    pub image: Option<String>,
    /// The Rust toolchain the empty image gets (a directory with `bin/cargo`); `None` for the
    /// one `rustc --print sysroot` names.
    pub toolchain: Option<PathBuf>,
    /// Host directories mounted read-only at their own path: path dependencies, vendored
    /// sources.
    pub mounts: Vec<PathBuf>,
    /// Where cargo builds, shared between builds; mounted writable at its own path. The build
    /// runs as its owner.
    pub target_dir: PathBuf,
    /// Most memory of the build, in bytes.
    pub memory_bytes: i64,
    /// Most processes and threads of the build.
    pub pids_limit: i64,
    /// Longest a build may take before it is killed.
    pub timeout: Duration,
}

/// Why a build container could not run a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildContainerError {
    /// No toolchain to lend the empty image.
    #[error("no Rust toolchain for the build container: {0}")]
    Toolchain(String),
    /// The engine refused a step.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The build ran past its limit and was killed.
    #[error("the build took longer than {0:?} and was stopped")]
    TimedOut(Duration),
    /// The target directory cannot be prepared.
    #[error("cannot prepare the target directory {path}: {reason}")]
    TargetDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Runs cargo for the project in `project` in a build container of `builder` called `name`,
/// removed once the build ends; an old container of that name is removed first.
pub(super) async fn run(
    docker: &Docker,
    builder: &RustBuilder,
    project: &Path,
    name: &str,
) -> Result<CargoOutput, BuildContainerError> {
    std::fs::create_dir_all(&builder.target_dir).map_err(|e| BuildContainerError::TargetDir {
        path: builder.target_dir.clone(),
        reason: e.to_string(),
    })?;
    let owner =
        std::fs::metadata(&builder.target_dir).map_err(|e| BuildContainerError::TargetDir {
            path: builder.target_dir.clone(),
            reason: e.to_string(),
        })?;
    let user = format!("{}:{}", owner.uid(), owner.gid());
    let (image, config) = match &builder.image {
        Some(image) => (
            image.as_str(),
            container_config(builder, project, &user, image, None),
        ),
        None => {
            let toolchain = match &builder.toolchain {
                Some(dir) => dir.clone(),
                None => host_sysroot().await?,
            };
            let toolchain = checked_toolchain(&toolchain)?;
            ensure_empty_image(docker).await?;
            let config = container_config(
                builder,
                project,
                &user,
                EMPTY_BUILDER_IMAGE,
                Some(&toolchain),
            );
            (EMPTY_BUILDER_IMAGE, config)
        }
    };
    let remove = || RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(name, Some(remove())).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(api_error("remove container", name, e).into()),
    }
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(options), config)
        .await
        .map_err(|e| api_error("create container", image, e))?;
    let outcome = tokio::time::timeout(builder.timeout, run_to_end(docker, name)).await;
    if let Err(e) = docker.remove_container(name, Some(remove())).await {
        tracing::warn!(container = name, "cannot remove the build container: {e}");
    }
    outcome.map_err(|_| BuildContainerError::TimedOut(builder.timeout))?
}

/// Starts the container and collects its output until it ends.
async fn run_to_end(docker: &Docker, container: &str) -> Result<CargoOutput, BuildContainerError> {
    docker
        .start_container(container, None)
        .await
        .map_err(|e| api_error("start container", container, e))?;
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(container, Some(options));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(output) = logs.next().await {
        match output.map_err(|e| api_error("read logs", container, e))? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message);
            }
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    let mut wait = docker.wait_container(container, None::<WaitContainerOptions>);
    let code = match wait.next().await {
        Some(Ok(exit)) => exit.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(api_error("wait for container", container, e).into()),
        None => -1,
    };
    Ok(CargoOutput {
        success: code == 0,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The build container: cargo in `project` as `user`, offline, sandboxed, with the host's
/// system and `toolchain` lent read-only when the image is the empty one.
fn container_config(
    builder: &RustBuilder,
    project: &Path,
    user: &str,
    image: &str,
    toolchain: Option<&Path>,
) -> ContainerCreateBody {
    let read_only = |path: &Path| format!("{0}:{0}:ro", path.display());
    let writable = |path: &Path| format!("{0}:{0}:rw", path.display());
    let mut binds = vec![writable(project), writable(&builder.target_dir)];
    binds.extend(builder.mounts.iter().map(|path| read_only(path)));
    let owned_tmpfs = |size: &str| {
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        format!("rw,nosuid,nodev,size={size},mode=0755,uid={uid},gid={gid}")
    };
    let mut tmpfs = HashMap::from([(CONTAINER_TMP.to_owned(), owned_tmpfs("1g"))]);
    let mut env = vec![
        format!("HOME={CONTAINER_TMP}"),
        format!("TMPDIR={CONTAINER_TMP}"),
        "CARGO_NET_OFFLINE=true".to_owned(),
        "CARGO_TERM_COLOR=never".to_owned(),
    ];
    let mut cmd = vec!["cargo".to_owned()];
    if let Some(toolchain) = toolchain {
        binds.extend(
            HOST_SYSTEM_DIRS
                .iter()
                .map(Path::new)
                .filter(|dir| dir.exists())
                .map(read_only),
        );
        binds.push(read_only(toolchain));
        // Cargo's home is writable but empty, at the host's path so that the artifacts of the
        // host's crates, which cargo tells by their sources' paths, are shared with builds on
        // the host; only the downloaded crates come from the host, unpacked afresh.
        let cargo_home = host_cargo_home();
        let registry = cargo_home.join("registry");
        binds.extend(
            ["index", "cache"]
                .iter()
                .map(|part| registry.join(part))
                .filter(|dir| dir.is_dir())
                .map(|dir| read_only(&dir)),
        );
        tmpfs.insert(cargo_home.display().to_string(), owned_tmpfs("64m"));
        tmpfs.insert(
            registry.join("src").display().to_string(),
            owned_tmpfs("2g"),
        );
        env.push(format!("CARGO_HOME={}", cargo_home.display()));
        env.push(format!(
            "PATH={}:/usr/bin:/bin",
            toolchain.join("bin").display()
        ));
        env.push(format!("{STATIC_TARGET_CC}=cc"));
        cmd = vec![toolchain.join("bin/cargo").display().to_string()];
    }
    cmd.extend(cargo_build_args(&builder.target_dir));
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(cmd),
        env: Some(env),
        user: Some(user.to_owned()),
        working_dir: Some(project.display().to_string()),
        labels: Some(HashMap::from([(
            ROLE_LABEL.to_owned(),
            BUILD_ROLE.to_owned(),
        )])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(binds),
            tmpfs: Some(tmpfs),
            network_mode: Some("none".to_owned()),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            readonly_rootfs: Some(true),
            memory: (builder.memory_bytes > 0).then_some(builder.memory_bytes),
            pids_limit: (builder.pids_limit > 0).then_some(builder.pids_limit),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The sysroot of the host's `rustc`: the toolchain the node itself would build with.
async fn host_sysroot() -> Result<PathBuf, BuildContainerError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .await
        .map_err(|e| BuildContainerError::Toolchain(format!("cannot run rustc: {e}")))?;
    if !output.status.success() {
        return Err(BuildContainerError::Toolchain(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// `toolchain` with symbolic links resolved (a bind mount needs the real directory), once it
/// is known to hold cargo and the musl target's standard library.
fn checked_toolchain(toolchain: &Path) -> Result<PathBuf, BuildContainerError> {
    let real = toolchain
        .canonicalize()
        .map_err(|e| BuildContainerError::Toolchain(format!("{}: {e}", toolchain.display())))?;
    if !real.join("bin/cargo").is_file() {
        return Err(BuildContainerError::Toolchain(format!(
            "{} has no bin/cargo",
            real.display()
        )));
    }
    let target = super::rust_build::STATIC_TARGET;
    if !real.join("lib/rustlib").join(target).is_dir() {
        return Err(BuildContainerError::Toolchain(format!(
            "{} lacks the {target} target (rustup target add {target})",
            real.display()
        )));
    }
    Ok(real)
}

/// Cargo's home on the host: `CARGO_HOME`, else `~/.cargo`.
fn host_cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cargo")
        },
        PathBuf::from,
    )
}

/// Builds the empty image unless the engine has it.
async fn ensure_empty_image(docker: &Docker) -> Result<(), DockerError> {
    if docker.inspect_image(EMPTY_BUILDER_IMAGE).await.is_ok() {
        return Ok(());
    }
    image::build_from(
        docker,
        EMPTY_BUILDER_IMAGE,
        &format!("FROM scratch\nLABEL {ROLE_LABEL}=rust-builder\n"),
        Vec::new(),
        &|_| {},
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> RustBuilder {
        RustBuilder {
            image: None,
            toolchain: None,
            mounts: vec![PathBuf::from("/srv/vendor")],
            target_dir: PathBuf::from("/var/ccvm/rust-build"),
            memory_bytes: 1 << 30,
            pids_limit: 512,
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_build_container_is_offline_unprivileged_and_writes_only_project_and_target() {
        let project = Path::new("/tmp/project");
        let toolchain = Path::new("/opt/rust");
        let config = container_config(
            &builder(),
            project,
            "1000:1000",
            EMPTY_BUILDER_IMAGE,
            Some(toolchain),
        );
        let host = config.host_config.expect("host config");
        assert_eq!(config.network_disabled, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!((host.memory, host.pids_limit), (Some(1 << 30), Some(512)));
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
        let binds = host.binds.expect("binds");
        let writable: Vec<&String> = binds.iter().filter(|b| !b.ends_with(":ro")).collect();
        assert_eq!(
            writable,
            [
                "/tmp/project:/tmp/project:rw",
                "/var/ccvm/rust-build:/var/ccvm/rust-build:rw"
            ]
        );
        assert!(binds.contains(&"/opt/rust:/opt/rust:ro".to_owned()));
        assert!(binds.contains(&"/srv/vendor:/srv/vendor:ro".to_owned()));
        let env = config.env.expect("env");
        assert!(env.contains(&"CARGO_NET_OFFLINE=true".to_owned()));
        assert_eq!(
            config.cmd.expect("cmd").first().map(String::as_str),
            Some("/opt/rust/bin/cargo")
        );
    }

    #[test]
    fn an_image_of_the_operators_brings_its_own_cargo_and_borrows_nothing_else() {
        let config = container_config(
            &builder(),
            Path::new("/tmp/project"),
            "0:0",
            "registry.example/rust:1",
            None,
        );
        let binds = config.host_config.and_then(|h| h.binds).expect("binds");
        assert_eq!(
            binds,
            [
                "/tmp/project:/tmp/project:rw",
                "/var/ccvm/rust-build:/var/ccvm/rust-build:rw",
                "/srv/vendor:/srv/vendor:ro"
            ]
        );
        assert_eq!(
            config.cmd.expect("cmd").first().map(String::as_str),
            Some("cargo")
        );
    }
}
