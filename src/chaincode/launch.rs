//! Launching a chaincode on demand, as Fabric's runtime launcher does: pick the VM that has the
//! chaincode, build its launch configuration (the container runtime step), start it and wait
//! for whichever comes first, its registration, its end, or the startup timeout. One launch runs
//! per name; callers arriving meanwhile wait for its outcome. The first caller drives the launch
//! on its own task, and a caller that gives up (a client's deadline passed) hands it to a task of
//! the launcher, so the launch goes on and whoever asks next finds its outcome.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::error::{ChaincodeError, LaunchFailure, Result};
use super::growth::{Growth, GrowthOrder};
use super::registry::{HandlerHandle, HandlerRegistry};
use crate::container::{
    ContainerRuntime, Exit, ExitReport, LaunchConfig, LaunchProgress, LaunchStage, Started, Target,
    Vm,
};
use crate::sync::lock;

/// How a launch ended, once it has: `Ok` once the chaincode registered.
type Told = Option<Result<(), LaunchError>>;

/// A launch failure, shared by every caller that waited on it.
#[derive(Debug, Clone)]
enum LaunchError {
    Failed(LaunchFailure),
    TimedOut(Duration),
}

/// How many times a launch starts the chaincode again when its code was replaced (a hot swap)
/// while the instance started, before it gives up.
const STARTS_AFTER_REPLACEMENT: usize = 2;

/// The VMs, in the order they are asked, the container runtime that configures what they start,
/// the launches under way (at most one per name: that is the per-chaincode lock), how each
/// launched chaincode ended, and the tasks that run launches.
pub(crate) struct Launcher {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stopping: CancellationToken,
}

/// What a launch task shares with the launcher that spawned it.
struct Shared {
    vms: Box<[Arc<dyn Vm>]>,
    runtime: ContainerRuntime,
    progress: LaunchProgress,
    under_way: Mutex<HashMap<String, watch::Receiver<Told>>>,
    exits: Mutex<HashMap<String, ExitReport>>,
    growth: Arc<Growth>,
}

impl Launcher {
    /// A launcher that asks `vms` in order for a chaincode, configures what they start with
    /// `runtime` (where chaincodes that dial the peer find it, and who issues their
    /// certificates), and reports each launch's steps to `progress`.
    pub fn new(vms: Vec<Arc<dyn Vm>>, runtime: ContainerRuntime, progress: LaunchProgress) -> Self {
        Self {
            shared: Arc::new(Shared {
                vms: vms.into_boxed_slice(),
                runtime,
                progress,
                under_way: Mutex::default(),
                exits: Mutex::default(),
                growth: Arc::default(),
            }),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }
    }

    /// Where launches report their steps.
    pub fn progress(&self) -> &LaunchProgress {
        &self.shared.progress
    }

    /// Ends the launches under way and waits for their tasks.
    pub async fn stop(&self) {
        self.stopping.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Why the chaincode launched as `name` ended, waiting up to `patience` for its VM to say:
    /// a connection that drops usually does so a moment before the VM sees the exit.
    pub async fn exit_reason(&self, name: &str, patience: Duration) -> Option<Exit> {
        let mut report = lock(&self.shared.exits).get(name).cloned()?;
        tokio::time::timeout(patience, report.ended()).await.ok()
    }

    /// Whether a VM of this launcher has the chaincode `name`.
    pub fn can_launch(&self, name: &str) -> bool {
        self.shared.vms.iter().any(|vm| vm.target(name).is_some())
    }

    /// Starts one more instance of the running chaincode `name`, whose `instances` serving
    /// instances are all busy, if its VM runs more than that and no such start is under way.
    /// The start goes on in a task of its own, taking at most `timeout` to register; what is
    /// returned resolves when it is over.
    pub fn grow(
        &self,
        name: &str,
        instances: usize,
        registry: &HandlerRegistry,
        timeout: Duration,
    ) -> Option<oneshot::Receiver<()>> {
        self.shared.growth.grow(
            name,
            instances,
            &GrowthOrder {
                vms: &self.shared.vms,
                runtime: &self.shared.runtime,
                registry,
                tasks: &self.tasks,
                stopping: &self.stopping,
                timeout,
            },
        )
    }

    /// Launches `name` unless a launch of it is under way, and waits for that launch to end.
    /// The launch goes on when the caller gives up.
    ///
    /// # Errors
    /// [`ChaincodeError::NotRunning`] when no VM has the chaincode,
    /// [`ChaincodeError::LaunchFailed`] or [`ChaincodeError::StartupTimeout`].
    pub async fn launch(
        &self,
        name: &str,
        registry: &HandlerRegistry,
        timeout: Duration,
    ) -> Result<HandlerHandle> {
        let Some((vm, target)) = vm_for(&self.shared.vms, name) else {
            return Err(ChaincodeError::NotRunning {
                name: name.to_owned(),
            });
        };
        let (mut outcome, leader) = {
            let mut under_way = lock(&self.shared.under_way);
            match under_way.get(name) {
                Some(waiting) => (waiting.clone(), None),
                None => {
                    // A launch frees its name only once its chaincode is registered, so one
                    // that ended since the caller looked at the registry is found there now.
                    if let Some(handle) = registry.get(name) {
                        return Ok(handle);
                    }
                    let (done, waiting) = watch::channel(None);
                    under_way.insert(name.to_owned(), waiting.clone());
                    let launch = run_launch(
                        Arc::clone(&self.shared),
                        LaunchOrder {
                            name: name.to_owned(),
                            vm,
                            target,
                            registry: registry.clone(),
                            timeout,
                        },
                        self.stopping.clone(),
                        done,
                    );
                    (waiting, Some(launch))
                }
            }
        };
        if let Some(launch) = leader {
            DriveOrDetach {
                launch: Some(Box::pin(launch)),
                tasks: self.tasks.clone(),
            }
            .await;
        }
        let result = outcome
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone().unwrap_or(Ok(())))
            .unwrap_or(Err(LaunchError::Failed(LaunchFailure::Abandoned)));
        match result {
            Ok(()) => registry
                .get(name)
                .ok_or_else(|| ChaincodeError::LaunchFailed {
                    name: name.to_owned(),
                    cause: LaunchFailure::NoHandler,
                }),
            Err(LaunchError::Failed(cause)) => Err(ChaincodeError::LaunchFailed {
                name: name.to_owned(),
                cause,
            }),
            Err(LaunchError::TimedOut(timeout)) => Err(ChaincodeError::StartupTimeout {
                name: name.to_owned(),
                timeout,
            }),
        }
    }
}

/// The first of `vms` that has the chaincode `name`, and what it found for it.
pub(super) fn vm_for(vms: &[Arc<dyn Vm>], name: &str) -> Option<(Arc<dyn Vm>, Target)> {
    vms.iter()
        .find_map(|vm| vm.target(name).map(|target| (Arc::clone(vm), target)))
}

/// A launch driven by its first caller, on the caller's own task, so that a launch costs no hop
/// through the scheduler to a task of its own and back (the launch bench's relaunch row doubles
/// with one). A caller that goes away before the launch is over hands the rest of it to a
/// tracked task, where it runs to its end: the launch is never lost with its caller.
struct DriveOrDetach {
    launch: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    tasks: TaskTracker,
}

impl Future for DriveOrDetach {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let Some(launch) = self.launch.as_mut() else {
            return Poll::Ready(());
        };
        ready!(launch.as_mut().poll(context));
        self.launch = None;
        Poll::Ready(())
    }
}

impl Drop for DriveOrDetach {
    fn drop(&mut self) {
        if let Some(launch) = self.launch.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            self.tasks.spawn(launch);
        }
    }
}

/// One launch to run: the chaincode, the VM that has it and what that VM found, where it
/// registers, and how long it may take to.
struct LaunchOrder {
    name: String,
    vm: Arc<dyn Vm>,
    target: Target,
    registry: HandlerRegistry,
    timeout: Duration,
}

/// One launch from start to outcome, told to its waiters however it ends; the peer stopping
/// abandons it.
async fn run_launch(
    shared: Arc<Shared>,
    order: LaunchOrder,
    stopping: CancellationToken,
    done: watch::Sender<Told>,
) {
    tokio::select! {
        () = launch(shared, order, done) => {}
        () = stopping.cancelled() => {}
    }
}

/// Launches as `order` says and tells its waiters the outcome (or, dropped before the end, that
/// it was abandoned). An instance that registers running code replaced since it started is
/// followed by a start of what replaced it.
async fn launch(shared: Arc<Shared>, mut order: LaunchOrder, done: watch::Sender<Told>) {
    let outcome = Outcome::of(Arc::clone(&shared), order.name.clone(), done);
    shared.progress.report(
        &order.name,
        LaunchStage::Starting,
        order.target.registers_as.as_str(),
    );
    let mut result = start_once(&shared, &order).await;
    let mut starts = 1;
    while starts <= STARTS_AFTER_REPLACEMENT
        && matches!(result, Err(LaunchError::Failed(LaunchFailure::Replaced(_))))
    {
        let Some((vm, target)) = vm_for(&shared.vms, &order.name) else {
            break;
        };
        info!(chaincode = %order.name, "its code was replaced while it started; starting the new code");
        (order.vm, order.target) = (vm, target);
        starts += 1;
        result = start_once(&shared, &order).await;
    }
    if let Err(LaunchError::Failed(LaunchFailure::Replaced(times))) = &mut result {
        *times = starts;
    }
    outcome.tell(result);
}

/// One start of what `order` says, up to its registration.
async fn start_once(shared: &Shared, order: &LaunchOrder) -> Result<(), LaunchError> {
    match shared.runtime.launch_config(&order.target) {
        Ok(config) => start_and_wait(order, &config).await.map(|exited| {
            lock(&shared.exits).insert(order.name.clone(), exited);
        }),
        Err(reason) => Err(LaunchError::Failed(LaunchFailure::Config(reason))),
    }
}

/// Where a launch tells its waiters its outcome. A launch dropped before it could tell (the peer
/// stopped it) tells them it was abandoned, and no launch leaves its name under way.
struct Outcome {
    shared: Arc<Shared>,
    name: String,
    done: Option<watch::Sender<Told>>,
}

impl Outcome {
    fn of(shared: Arc<Shared>, name: String, done: watch::Sender<Told>) -> Self {
        Self {
            shared,
            name,
            done: Some(done),
        }
    }

    fn tell(mut self, result: Result<(), LaunchError>) {
        self.finish(result);
    }

    /// Frees the name for the next launch and tells the waiters, the first time only.
    fn finish(&mut self, result: Result<(), LaunchError>) {
        if let Some(done) = self.done.take() {
            lock(&self.shared.under_way).remove(&self.name);
            done.send_replace(Some(result));
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish(Err(LaunchError::Failed(LaunchFailure::Abandoned)));
    }
}

/// Starts `name` and waits for its registration, its end, or the timeout (which stops it). The
/// timeout counts from the start, as Fabric's does.
///
/// The timer is armed only when needed: arming it wakes the worker thread parked on the
/// runtime's driver. A start that finishes at once needs none, and neither does a chaincode
/// registered by the time its start returns (an inproc guest registers in the run its start
/// gives it).
async fn start_and_wait(
    order: &LaunchOrder,
    config: &LaunchConfig,
) -> Result<ExitReport, LaunchError> {
    let LaunchOrder {
        name,
        vm,
        target,
        registry,
        timeout,
    } = order;
    let (name, timeout) = (name.as_str(), *timeout);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let first_id = HandlerHandle::next_id();
    let started = tokio::select! {
        biased;
        started = vm.start(name, target, config) => started
            .map_err(|e| LaunchError::Failed(LaunchFailure::Start(Arc::new(e))))?,
        () = &mut deadline => {
            warn!(chaincode = name, ?timeout, "chaincode did not start in time");
            return Err(LaunchError::TimedOut(timeout));
        }
    };
    let Started { stop, mut exited } = started;
    tokio::select! {
        biased;
        _ = registry.registered(name) => {
            info!(chaincode = name, "launched");
            Ok(exited)
        }
        serves = registry.registered_since(&target.registers_as, first_id) => {
            if serves {
                info!(chaincode = name, "launched");
                Ok(exited)
            } else {
                stop();
                Err(LaunchError::Failed(LaunchFailure::Replaced(1)))
            }
        }
        exit = exited.ended() => match exit.registration_overdue() {
            Some(within) => {
                warn!(chaincode = name, ?within, "chaincode did not register in time; its VM stopped it");
                Err(LaunchError::TimedOut(within))
            }
            None => Err(LaunchError::Failed(LaunchFailure::EndedBeforeRegistering(exit))),
        },
        () = &mut deadline => {
            warn!(chaincode = name, ?timeout, "chaincode did not register in time; stopping it");
            stop();
            Err(LaunchError::TimedOut(timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::container::{Connection, ExitReport, StartFuture};

    /// A launcher with `vm` as its only VM.
    fn launcher_of(vm: Arc<GatedVm>) -> Launcher {
        let vms: Vec<Arc<dyn Vm>> = vec![vm];
        Launcher::new(vms, ContainerRuntime::default(), LaunchProgress::default())
    }

    /// A VM whose starts wait for a permit, then register the chaincode at once; the first
    /// `replaced` of them register an instance of code replaced meanwhile, as a hot swap during
    /// a start leaves it.
    struct GatedVm {
        registry: HandlerRegistry,
        gate: Semaphore,
        starts: AtomicUsize,
        replaced: usize,
    }

    impl GatedVm {
        /// A VM whose starts register in `registry`, `permits` of them without waiting.
        fn opened(registry: &HandlerRegistry, permits: usize) -> Arc<Self> {
            Arc::new(Self {
                registry: registry.clone(),
                gate: Semaphore::new(permits),
                starts: AtomicUsize::new(0),
                replaced: 0,
            })
        }

        /// A VM whose starts do not wait, the first `replaced` of them running replaced code.
        fn replacing(registry: &HandlerRegistry, replaced: usize) -> Arc<Self> {
            Arc::new(Self {
                registry: registry.clone(),
                gate: Semaphore::new(Semaphore::MAX_PERMITS),
                starts: AtomicUsize::new(0),
                replaced,
            })
        }
    }

    impl Vm for GatedVm {
        fn target(&self, name: &str) -> Option<Target> {
            Some(Target {
                registers_as: name.to_owned(),
                connection: Connection::InProcess,
                package: None,
            })
        }

        fn start<'a>(
            &'a self,
            name: &'a str,
            _target: &'a Target,
            _config: &'a LaunchConfig,
        ) -> StartFuture<'a> {
            Box::pin(async move {
                let start = self.starts.fetch_add(1, Ordering::Relaxed);
                let _permit = self.gate.acquire().await.expect("the gate stays open");
                let (outbound, _) = tokio::sync::mpsc::channel(1);
                let retired = CancellationToken::new();
                if start < self.replaced {
                    retired.cancel();
                }
                let handle = HandlerHandle::new(name.to_owned(), outbound, Arc::default())
                    .retired_through(retired);
                self.registry
                    .register(handle.clone())
                    .expect("one launch registers the name");
                self.registry.ready(&handle);
                let (notice, exited) = ExitReport::new();
                std::mem::forget(notice);
                Ok(Started {
                    stop: Box::new(|| {}),
                    exited,
                })
            })
        }
    }

    #[tokio::test]
    async fn a_start_whose_code_was_replaced_meanwhile_is_followed_by_one_of_the_new_code()
    -> Result<()> {
        let registry = HandlerRegistry::default();
        let vm = GatedVm::replacing(&registry, 1);
        let launcher = launcher_of(Arc::clone(&vm));
        let handle = launcher
            .launch("cc", &registry, Duration::from_secs(60))
            .await?;
        assert_eq!(vm.starts.load(Ordering::Relaxed), 2);
        assert_eq!(handle.name(), "cc");
        assert_eq!(
            registry.instances("cc"),
            1,
            "the instance of the new code serves; the replaced one does not"
        );
        launcher.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_launch_whose_code_keeps_being_replaced_gives_up_and_says_why() {
        let registry = HandlerRegistry::default();
        let vm = GatedVm::replacing(&registry, usize::MAX);
        let launcher = launcher_of(Arc::clone(&vm));
        let refused = launcher
            .launch("cc", &registry, Duration::from_secs(60))
            .await
            .map(|handle| handle.name().to_owned());
        assert!(
            matches!(
                refused,
                Err(ChaincodeError::LaunchFailed {
                    cause: LaunchFailure::Replaced(3),
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(
            vm.starts.load(Ordering::Relaxed),
            STARTS_AFTER_REPLACEMENT + 1
        );
        launcher.stop().await;
    }

    #[tokio::test]
    async fn a_launch_whose_first_caller_gave_up_serves_the_next_caller() -> Result<()> {
        let registry = HandlerRegistry::default();
        let vm = GatedVm::opened(&registry, 0);
        let launcher = launcher_of(Arc::clone(&vm));
        let timeout = Duration::from_secs(60);

        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            launcher.launch("cc", &registry, timeout),
        )
        .await;
        assert!(gave_up.is_err(), "the start was still waiting for its gate");
        vm.gate.add_permits(1);
        let handle = launcher.launch("cc", &registry, timeout).await?;
        assert_eq!(handle.name(), "cc");
        assert_eq!(
            vm.starts.load(Ordering::Relaxed),
            1,
            "the second caller waited on the first launch instead of starting another"
        );
        launcher.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_caller_that_finds_no_launch_under_way_starts_none_for_a_registered_chaincode()
    -> Result<()> {
        let registry = HandlerRegistry::default();
        let vm = GatedVm::opened(&registry, 1);
        let launcher = launcher_of(Arc::clone(&vm));
        let timeout = Duration::from_secs(60);
        let first = launcher.launch("cc", &registry, timeout).await?;

        // As a caller that saw no handler just before the first launch ended and freed the
        // name: the launcher has nothing under way, and the chaincode is registered.
        let second = launcher.launch("cc", &registry, timeout).await?;
        assert_eq!(second.name(), first.name());
        assert_eq!(
            vm.starts.load(Ordering::Relaxed),
            1,
            "the registered chaincode was not started again"
        );
        launcher.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_launch_under_way_when_the_peer_stops_tells_its_callers_why() {
        let registry = HandlerRegistry::default();
        let vm = GatedVm::opened(&registry, 0);
        let launcher = Arc::new(launcher_of(vm));
        let waiting = {
            let launcher = Arc::clone(&launcher);
            tokio::spawn(async move {
                launcher
                    .launch("cc", &registry, Duration::from_secs(60))
                    .await
            })
        };
        tokio::task::yield_now().await;
        launcher.stop().await;
        match waiting.await {
            Ok(Err(ChaincodeError::LaunchFailed {
                cause: LaunchFailure::Abandoned,
                ..
            })) => {}
            other => panic!(
                "expected the launch to be abandoned, got {:?}",
                other.map(|r| r.map(|h| h.name().to_owned()))
            ),
        }
    }
}
