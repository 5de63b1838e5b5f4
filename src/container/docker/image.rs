//! Images built `FROM scratch` around a chaincode's static files, from a Dockerfile and build
//! context generated in memory (no registry is needed, nothing is pulled).

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use ccvm_sandbox::WasmLimits;
use futures_util::StreamExt;
use tracing::debug;

use super::error::DockerError;
use super::rust_build::{self, RustBuilds};
use crate::container::wasm_runner;
use crate::package::{CodeFile, Package, Platform, write_tar};

/// The executable's path inside the image.
const ENTRYPOINT: &str = "chaincode";

/// The files of a package's image, with its executable as `chaincode`: a `binary` package's
/// own, a `rust` package's built first as `rust_builds` says (in the build container
/// `build_container`), or for a `wasm` package the wasm runner beside the component and the
/// component's code, precompiled for the runner's engine under `wasm_limits`, so that a
/// container starts without compiling it.
///
/// # Errors
/// [`DockerError::Unrunnable`] for a package this VM cannot run, [`DockerError::BuildFailed`]
/// with cargo's output for a project that does not build.
pub(super) async fn image_files(
    docker: &Docker,
    name: &str,
    package: &Package,
    rust_builds: &RustBuilds,
    build_container: &str,
    wasm_limits: &WasmLimits,
) -> Result<Vec<CodeFile>, DockerError> {
    let unrunnable = |reason: String| DockerError::Unrunnable {
        name: name.to_owned(),
        reason,
    };
    match package.platform {
        Platform::Binary => {
            let executable = package
                .code_file(ENTRYPOINT)
                .map_err(|e| unrunnable(e.to_string()))?;
            Ok(vec![CodeFile::new(ENTRYPOINT, executable, 0o755)])
        }
        Platform::Rust => {
            let executable =
                rust_build::build(docker, name, package, rust_builds, build_container).await?;
            Ok(vec![CodeFile::new(ENTRYPOINT, executable, 0o755)])
        }
        Platform::Wasm => {
            let component = package
                .code_file(wasm_runner::COMPONENT_PATH)
                .map_err(|e| unrunnable(e.to_string()))?;
            wasm_runner::check_component(&component).map_err(unrunnable)?;
            let (component, precompiled) = tokio::task::spawn_blocking({
                let limits = wasm_limits.clone();
                move || {
                    let precompiled = ccvm_wasm_runner::precompile(&component, &limits);
                    (component, precompiled)
                }
            })
            .await
            .map_err(|e| unrunnable(format!("precompiling the component failed: {e}")))?;
            Ok(vec![
                CodeFile::new(ENTRYPOINT, wasm_runner::EXECUTABLE.to_vec(), 0o755),
                CodeFile::new(wasm_runner::COMPONENT_PATH, component, 0o644),
                CodeFile::new(
                    wasm_runner::PRECOMPILED_PATH,
                    precompiled.map_err(unrunnable)?,
                    0o644,
                ),
            ])
        }
        Platform::Ccaas => Err(unrunnable(
            "a ccaas package is served elsewhere, not run in a container".to_owned(),
        )),
    }
}

/// The Dockerfile of an image holding `files` and running `/chaincode`.
fn dockerfile(files: &[CodeFile]) -> String {
    let mut text = String::from("FROM scratch\n");
    for file in files {
        text.push_str(&format!("COPY {0} /{0}\n", file.path));
    }
    text.push_str(&format!("ENTRYPOINT [\"/{ENTRYPOINT}\"]\n"));
    text
}

/// Builds `image` from `files`, handing each line of the build's output to `on_line`; the error
/// carries the build's log.
pub(super) async fn build(
    docker: &Docker,
    image: &str,
    files: Vec<CodeFile>,
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<(), DockerError> {
    let dockerfile = dockerfile(&files);
    build_from(docker, image, &dockerfile, files, on_line).await
}

/// Builds `image` from `dockerfile` with `files` as its context, handing each line of the
/// build's output to `on_line`; the error carries the build's log.
pub(super) async fn build_from(
    docker: &Docker,
    image: &str,
    dockerfile: &str,
    files: Vec<CodeFile>,
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<(), DockerError> {
    let mut context = vec![CodeFile::new(
        "Dockerfile",
        dockerfile.as_bytes().to_vec(),
        0o644,
    )];
    context.extend(files);
    let tar = write_tar(&context).map_err(|e| DockerError::BuildFailed {
        image: image.to_owned(),
        log: e.to_string(),
    })?;
    let options = BuildImageOptionsBuilder::default()
        .t(image)
        .rm(true)
        .forcerm(true)
        .build();
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut log = String::new();
    while let Some(step) = progress.next().await {
        let failed = |reason: String, log: &str| DockerError::BuildFailed {
            image: image.to_owned(),
            log: format!("{log}{reason}"),
        };
        let info = step.map_err(|e| failed(e.to_string(), &log))?;
        if let Some(line) = info.stream {
            let trimmed = line.trim_end();
            debug!(image, "{trimmed}");
            if !trimmed.is_empty() {
                on_line(trimmed);
            }
            log.push_str(&line);
        }
        if let Some(error) = info.error_detail {
            let message = error
                .message
                .unwrap_or_else(|| "the build failed".to_owned());
            return Err(failed(message, &log));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_copies_every_file_and_runs_the_chaincode() {
        let files = [CodeFile::new("chaincode", Vec::new(), 0o755)];
        assert_eq!(
            dockerfile(&files),
            "FROM scratch\nCOPY chaincode /chaincode\nENTRYPOINT [\"/chaincode\"]\n"
        );
    }
}
