//! Launching a chaincode on demand, as Fabric's runtime launcher does: the first caller picks
//! the VM that has it, builds its launch configuration (the container runtime step), starts it
//! and waits for whichever comes first, its registration, its end, or the startup timeout;
//! callers arriving meanwhile wait on that same launch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::error::{ChaincodeError, Result};
use super::registry::{HandlerHandle, HandlerRegistry};
use crate::container::{
    ContainerRuntime, ExitReport, LaunchConfig, LaunchProgress, LaunchStage, Started, Target, Vm,
};
use crate::sync::lock;

/// How a launch ended: `Ok` once the chaincode registered.
type Outcome = Option<Result<(), LaunchError>>;

/// A launch failure, shared by every caller that waited on it.
#[derive(Debug, Clone)]
enum LaunchError {
    Failed(String),
    TimedOut(Duration),
}

/// The VMs, in the order they are asked, the container runtime that configures what they start,
/// the launches under way (at most one per name: that is the per-chaincode lock), and how each
/// launched chaincode ended.
pub(crate) struct Launcher {
    /// Replaced, not changed, when a VM is added, so that a launch takes them with one count.
    vms: Mutex<Arc<[Arc<dyn Vm>]>>,
    runtime: Mutex<Arc<ContainerRuntime>>,
    progress: LaunchProgress,
    under_way: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    exits: Mutex<HashMap<String, ExitReport>>,
}

impl Default for Launcher {
    fn default() -> Self {
        Self {
            vms: Mutex::new(Arc::new([])),
            runtime: Mutex::default(),
            progress: LaunchProgress::default(),
            under_way: Mutex::default(),
            exits: Mutex::default(),
        }
    }
}

impl Launcher {
    /// Adds a VM, asked after those added before it.
    pub fn add_vm(&self, vm: Arc<dyn Vm>) {
        let mut vms = lock(&self.vms);
        *vms = vms.iter().cloned().chain([vm]).collect();
    }

    /// Sets where chaincodes that dial the peer find it, and who issues their certificates.
    pub fn set_runtime(&self, runtime: ContainerRuntime) {
        *lock(&self.runtime) = Arc::new(runtime);
    }

    /// Where launches report their steps.
    pub fn progress(&self) -> &LaunchProgress {
        &self.progress
    }

    /// Drops the VMs at shutdown, so that their engines and threads end with the node.
    pub fn forget_vms(&self) {
        *lock(&self.vms) = Arc::new([]);
    }

    /// Why the chaincode launched as `name` ended, waiting up to `patience` for its VM to say:
    /// a connection that drops usually does so a moment before the VM sees the exit.
    pub async fn exit_reason(&self, name: &str, patience: Duration) -> Option<String> {
        let mut report = lock(&self.exits).get(name).cloned()?;
        tokio::time::timeout(patience, report.ended()).await.ok()
    }

    pub async fn launch(
        &self,
        name: &str,
        registry: &HandlerRegistry,
        timeout: Duration,
    ) -> Result<HandlerHandle> {
        let vms = Arc::clone(&lock(&self.vms));
        let found = vms
            .iter()
            .find_map(|vm| vm.target(name).map(|target| (Arc::clone(vm), target)));
        let Some((vm, target)) = found else {
            return Err(ChaincodeError::NotRunning {
                name: name.to_owned(),
            });
        };
        let (mut outcome, leader) = {
            let mut under_way = lock(&self.under_way);
            match under_way.get(name) {
                Some(waiting) => (waiting.clone(), None),
                None => {
                    let (done, waiting) = watch::channel(None);
                    under_way.insert(name.to_owned(), waiting.clone());
                    (waiting, Some(done))
                }
            }
        };
        if let Some(done) = leader {
            self.progress
                .report(name, LaunchStage::Starting, target.registers_as.as_str());
            let runtime = Arc::clone(&lock(&self.runtime));
            let result = match runtime.launch_config(&target) {
                Ok(config) => {
                    start_and_wait(vm.as_ref(), name, &target, &config, registry, timeout)
                        .await
                        .map(|exited| {
                            lock(&self.exits).insert(name.to_owned(), exited);
                        })
                }
                Err(reason) => Err(LaunchError::Failed(reason)),
            };
            lock(&self.under_way).remove(name);
            done.send_replace(Some(result));
        }
        let result = outcome
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone().unwrap_or(Ok(())))
            .unwrap_or_else(|_| Err(LaunchError::Failed("the launch was abandoned".to_owned())));
        match result {
            Ok(()) => registry
                .get(name)
                .ok_or_else(|| ChaincodeError::LaunchFailed {
                    name: name.to_owned(),
                    reason: "claimed to start the chaincode but could not find its handler"
                        .to_owned(),
                }),
            Err(LaunchError::Failed(reason)) => Err(ChaincodeError::LaunchFailed {
                name: name.to_owned(),
                reason,
            }),
            Err(LaunchError::TimedOut(timeout)) => Err(ChaincodeError::StartupTimeout {
                name: name.to_owned(),
                timeout,
            }),
        }
    }
}

/// Starts `name` and waits for its registration, its end, or the timeout (which stops it). The
/// timeout counts from the start, as Fabric's does.
///
/// The timer is armed only when needed: arming it wakes the worker thread parked on the
/// runtime's driver. A start that finishes at once needs none, and neither does a chaincode
/// that registers within its first run, when its VM can tell when that ends (a wasm guest
/// registers inline in it).
async fn start_and_wait(
    vm: &dyn Vm,
    name: &str,
    target: &Target,
    config: &LaunchConfig,
    registry: &HandlerRegistry,
    timeout: Duration,
) -> Result<ExitReport, LaunchError> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let started = tokio::select! {
        biased;
        started = vm.start(name, target, config) => started.map_err(LaunchError::Failed)?,
        () = &mut deadline => {
            warn!(chaincode = name, ?timeout, "chaincode did not start in time");
            return Err(LaunchError::TimedOut(timeout));
        }
    };
    let Started {
        stop,
        mut exited,
        first_run,
    } = started;
    // The deadline is first polled, and so armed, once the first run is over.
    let timed_out = async {
        if let Some(ran) = first_run {
            let _ = ran.await;
        }
        (&mut deadline).await;
    };
    tokio::select! {
        biased;
        _ = registry.registered(name) => {
            info!(chaincode = name, "launched");
            Ok(exited)
        }
        why = exited.ended() => Err(LaunchError::Failed(format!("ended before registering: {why}"))),
        () = timed_out => {
            warn!(chaincode = name, ?timeout, "chaincode did not register in time; stopping it");
            stop();
            Err(LaunchError::TimedOut(timeout))
        }
    }
}
