//! More instances of a busy chaincode: when every instance of a chaincode is running a
//! transaction and its VM may run more of it, one more is started beside them, one start at a
//! time per chaincode, and none for a while after one failed; instances that have fallen idle
//! are retired again, while one stays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::launch::vm_for;
use super::registry::{HandlerHandle, HandlerRegistry};
use crate::container::{ContainerRuntime, Started, Vm};
use crate::metrics::metrics;
use crate::sync::lock;

/// How long an instance beyond a chaincode's first may run no transaction before it is retired.
/// Idle instances are looked for at this interval, so one ends between one and two periods
/// after its last transaction.
pub const RETIRE_AFTER_IDLE: Duration = Duration::from_secs(30);

/// How long after a failed start of one more instance (the instance pool is full, say) no other
/// is tried for the same chaincode: its transactions wait for a busy instance meanwhile instead
/// of each paying for a start that fails again.
pub const PAUSE_AFTER_FAILED_GROWTH: Duration = Duration::from_secs(5);

/// The growth of each chaincode that has been busy: how many instances its VM runs at most, and
/// whether a start of one more is under way.
#[derive(Default)]
pub(super) struct Growth {
    names: Mutex<HashMap<String, NameGrowth>>,
    sweeping: AtomicBool,
}

struct NameGrowth {
    most: usize,
    under_way: bool,
    failed_at: Option<Instant>,
}

/// How a start of one more instance ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GrowthOutcome {
    /// The instance registered and serves.
    Serves,
    /// It registered, but its code was replaced since it started (a hot swap): it serves
    /// nothing and ends once its connection closes.
    Replaced,
    /// It did not start, ended before registering, or did not register in time.
    Failed,
}

/// What a start of one more instance needs from the launcher.
pub(super) struct GrowthOrder<'a> {
    pub vms: &'a [Arc<dyn Vm>],
    pub runtime: &'a ContainerRuntime,
    pub registry: &'a HandlerRegistry,
    pub tasks: &'a TaskTracker,
    pub stopping: &'a CancellationToken,
    /// How long the instance may take to register.
    pub timeout: Duration,
}

impl Growth {
    /// Starts one more instance of `name`, which has `instances` serving and all of them busy,
    /// unless one is being started already or its VM runs no more of it. The start runs on a
    /// task of its own; what is returned resolves when it is over (the instance serves, or it
    /// failed). The first growth also starts the task that retires idle instances.
    pub fn grow(
        self: &Arc<Self>,
        name: &str,
        instances: usize,
        order: &GrowthOrder<'_>,
    ) -> Option<oneshot::Receiver<()>> {
        if !self.begin(name, instances, order.vms) {
            return None;
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            order
                .tasks
                .spawn(retire_idle(order.registry.clone(), order.stopping.clone()));
        }
        let Some((vm, target)) = vm_for(order.vms, name) else {
            self.end(name, false);
            return None;
        };
        let config = match order.runtime.launch_config(&target) {
            Ok(config) => config,
            Err(reason) => {
                warn!(chaincode = name, %reason, "cannot configure one more instance");
                self.end(name, false);
                return None;
            }
        };
        let (growth, registry, stopping) = (
            Arc::clone(self),
            order.registry.clone(),
            order.stopping.clone(),
        );
        let (name, timeout) = (name.to_owned(), order.timeout);
        let (over, grown) = oneshot::channel();
        order.tasks.spawn(async move {
            let first_id = HandlerHandle::next_id();
            let registers_as = target.registers_as.clone();
            let start = async {
                let Started { stop, mut exited } =
                    match vm.start(&name, &target, &config).await {
                        Ok(started) => started,
                        Err(e) => {
                            warn!(chaincode = %name, error = %e, "one more instance did not start");
                            return GrowthOutcome::Failed;
                        }
                    };
                tokio::select! {
                    biased;
                    serves = registry.registered_since(&registers_as, first_id) => {
                        if serves {
                            debug!(chaincode = %name, instances = instances + 1, "one more instance");
                            GrowthOutcome::Serves
                        } else {
                            debug!(chaincode = %name, "one more instance runs code replaced since it started; it serves nothing");
                            GrowthOutcome::Replaced
                        }
                    }
                    exit = exited.ended() => {
                        warn!(chaincode = %name, %exit, "one more instance ended before registering");
                        GrowthOutcome::Failed
                    }
                    () = tokio::time::sleep(timeout) => {
                        warn!(chaincode = %name, ?timeout, "one more instance did not register in time; stopping it");
                        stop();
                        GrowthOutcome::Failed
                    }
                }
            };
            let outcome = tokio::select! {
                outcome = start => outcome,
                () = stopping.cancelled() => return,
            };
            let success = if outcome == GrowthOutcome::Serves {
                "true"
            } else {
                "false"
            };
            metrics()
                .instances_added
                .with_label_values(&[name.as_str(), success])
                .inc();
            growth.end(&name, outcome != GrowthOutcome::Failed);
            let _ = over.send(());
        });
        Some(grown)
    }

    /// Marks a start of one more instance of `name` under way, if one may begin.
    fn begin(&self, name: &str, instances: usize, vms: &[Arc<dyn Vm>]) -> bool {
        let mut names = lock(&self.names);
        let growth = match names.get_mut(name) {
            Some(growth) => growth,
            None => {
                let most = vm_for(vms, name).map_or(1, |(vm, _)| vm.most_instances());
                names.entry(name.to_owned()).or_insert(NameGrowth {
                    most,
                    under_way: false,
                    failed_at: None,
                })
            }
        };
        let paused = growth
            .failed_at
            .is_some_and(|failed| failed.elapsed() < PAUSE_AFTER_FAILED_GROWTH);
        if growth.under_way || instances >= growth.most || paused {
            return false;
        }
        growth.under_way = true;
        true
    }

    /// Ends the start under way for `name`; one that failed pauses growth.
    fn end(&self, name: &str, started: bool) {
        if let Some(growth) = lock(&self.names).get_mut(name) {
            growth.under_way = false;
            growth.failed_at = (!started).then(Instant::now);
        }
    }
}

/// Retires idle instances every [`RETIRE_AFTER_IDLE`] until the peer stops.
async fn retire_idle(registry: HandlerRegistry, stopping: CancellationToken) {
    let mut ticks = tokio::time::interval(RETIRE_AFTER_IDLE);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let retired = registry.retire_idle_instances();
                if retired > 0 {
                    debug!(retired, "idle chaincode instances retired");
                }
            }
            () = stopping.cancelled() => return,
        }
    }
}
