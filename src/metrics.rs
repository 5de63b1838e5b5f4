//! The node's metrics, with Fabric's names, labels and buckets where Fabric has them, served in
//! Prometheus' text format by the operations endpoint. One set per process, as Fabric's.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets of the guest memory histogram: 64 KiB (one wasm page) to 1 GiB, by factors of 4.
const MEMORY_BUCKETS: [f64; 8] = [
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
];

/// Buckets of Fabric's ledger histograms, in seconds.
const LEDGER_BUCKETS: [f64; 7] = [0.005, 0.01, 0.015, 0.05, 0.1, 1.0, 10.0];

/// Every metric the node records.
pub struct Metrics {
    registry: Registry,
    /// `endorser_proposals_received`: proposals received.
    pub proposals_received: IntCounter,
    /// `endorser_successful_proposals`: proposals endorsed.
    pub successful_proposals: IntCounter,
    /// `endorser_proposal_duration{channel, chaincode, success}`, seconds.
    pub proposal_duration: HistogramVec,
    /// `ledger_blockchain_height{channel}`.
    pub blockchain_height: IntGaugeVec,
    /// `ledger_transaction_count{channel, transaction_type, chaincode, validation_code}`.
    pub transaction_count: IntCounterVec,
    /// `ledger_block_processing_time{channel}`: validating and committing a block, seconds.
    pub block_processing_time: HistogramVec,
    /// `chaincode_launch_duration{chaincode, success}`, seconds.
    pub launch_duration: HistogramVec,
    /// `chaincode_launch_failures{chaincode}`.
    pub launch_failures: IntCounterVec,
    /// `chaincode_launch_timeouts{chaincode}`: launches that did not register in time.
    pub launch_timeouts: IntCounterVec,
    /// `chaincode_execute_timeouts{chaincode}`.
    pub execute_timeouts: IntCounterVec,
    /// `chaincode_shim_requests_received{type, channel, chaincode}`.
    shim_requests_received: IntCounterVec,
    /// `chaincode_shim_requests_completed{type, channel, chaincode, success}`.
    shim_requests_completed: IntCounterVec,
    /// `chaincode_shim_request_duration{type, channel, chaincode, success}`, seconds.
    shim_request_duration: HistogramVec,
    /// `ccvm_chaincode_instances_added{chaincode, success}`: instances started beside a
    /// chaincode's busy ones.
    pub instances_added: IntCounterVec,
    /// `ccvm_wasm_guest_exits{kind}`: wasm guests in the node that ended, by why.
    pub guest_exits: IntCounterVec,
    /// `ccvm_wasm_instances`: wasm guests resident in the node, each holding a pool slot.
    pub wasm_instances: IntGauge,
    /// `ccvm_wasm_pool_slots_in_use`: pool slots held, by resident guests and by launches
    /// being rehearsed.
    pub wasm_pool_slots_in_use: IntGauge,
    /// `ccvm_wasm_pool_capacity`: pool slots, the most guests that can be resident at once.
    pub wasm_pool_capacity: IntGauge,
    /// `ccvm_wasm_component_load_duration{source}`: readying a component's machine code,
    /// `compiled` from wasm or loaded from the `disk` cache, seconds.
    pub component_load_duration: HistogramVec,
    /// `ccvm_wasm_guest_memory_peak_bytes`: the most linear memory each ended guest held.
    pub guest_memory_peak: Histogram,
}

fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("a metric's name, help and labels are fixed and valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            proposals_received: registered(
                r,
                IntCounter::new(
                    "endorser_proposals_received",
                    "The number of proposals received.",
                ),
            ),
            successful_proposals: registered(
                r,
                IntCounter::new(
                    "endorser_successful_proposals",
                    "The number of successful proposals.",
                ),
            ),
            proposal_duration: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "endorser_proposal_duration",
                        "The time to complete a proposal.",
                    ),
                    &["channel", "chaincode", "success"],
                ),
            ),
            blockchain_height: registered(
                r,
                IntGaugeVec::new(
                    Opts::new("ledger_blockchain_height", "Height of the chain in blocks."),
                    &["channel"],
                ),
            ),
            transaction_count: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ledger_transaction_count",
                        "Number of transactions processed.",
                    ),
                    &[
                        "channel",
                        "transaction_type",
                        "chaincode",
                        "validation_code",
                    ],
                ),
            ),
            block_processing_time: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "ledger_block_processing_time",
                        "Time taken in seconds for ledger block processing.",
                    )
                    .buckets(LEDGER_BUCKETS.to_vec()),
                    &["channel"],
                ),
            ),
            launch_duration: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaincode_launch_duration",
                        "The time to launch a chaincode.",
                    ),
                    &["chaincode", "success"],
                ),
            ),
            launch_failures: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaincode_launch_failures",
                        "The number of chaincode launches that have failed.",
                    ),
                    &["chaincode"],
                ),
            ),
            launch_timeouts: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaincode_launch_timeouts",
                        "The number of chaincode launches that have timed out.",
                    ),
                    &["chaincode"],
                ),
            ),
            shim_requests_received: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaincode_shim_requests_received",
                        "The number of chaincode shim requests received.",
                    ),
                    &["type", "channel", "chaincode"],
                ),
            ),
            shim_requests_completed: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaincode_shim_requests_completed",
                        "The number of chaincode shim requests completed.",
                    ),
                    &["type", "channel", "chaincode", "success"],
                ),
            ),
            shim_request_duration: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaincode_shim_request_duration",
                        "The time to complete chaincode shim requests.",
                    ),
                    &["type", "channel", "chaincode", "success"],
                ),
            ),
            execute_timeouts: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaincode_execute_timeouts",
                        "The number of chaincode executions (Init or Invoke) that have timed out.",
                    ),
                    &["chaincode"],
                ),
            ),
            instances_added: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ccvm_chaincode_instances_added",
                        "Instances started beside a chaincode's instances because all were busy, \
                         by whether the instance came to serve.",
                    ),
                    &["chaincode", "success"],
                ),
            ),
            guest_exits: registered(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ccvm_wasm_guest_exits",
                        "Wasm guests in the node that ended, by why: finished, failed, deadline, \
                         memory, stack, stopped, trap.",
                    ),
                    &["kind"],
                ),
            ),
            wasm_instances: registered(
                r,
                IntGauge::new(
                    "ccvm_wasm_instances",
                    "Wasm guests resident in the node, each holding a slot of the instance pool.",
                ),
            ),
            wasm_pool_slots_in_use: registered(
                r,
                IntGauge::new(
                    "ccvm_wasm_pool_slots_in_use",
                    "Slots of the wasm instance pool held, by resident guests and by launches \
                     being rehearsed.",
                ),
            ),
            wasm_pool_capacity: registered(
                r,
                IntGauge::new(
                    "ccvm_wasm_pool_capacity",
                    "Slots of the wasm instance pool: the most guests resident at once.",
                ),
            ),
            component_load_duration: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "ccvm_wasm_component_load_duration",
                        "The time to ready a wasm component's machine code, compiled or loaded \
                         from the disk cache.",
                    ),
                    &["source"],
                ),
            ),
            guest_memory_peak: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ccvm_wasm_guest_memory_peak_bytes",
                        "The most linear memory a wasm guest held, observed when it ended.",
                    )
                    .buckets(MEMORY_BUCKETS.to_vec()),
                ),
            ),
            registry,
        }
    }

    /// The shim-request metrics of one request type, channel and chaincode, resolved once so
    /// that recording a request costs no label lookup.
    pub fn shim_request(&self, kind: &str, channel: &str, chaincode: &str) -> ShimRequestMetrics {
        let outcome = |success: &str| {
            let labels = [kind, channel, chaincode, success];
            (
                self.shim_requests_completed.with_label_values(&labels),
                self.shim_request_duration.with_label_values(&labels),
            )
        };
        ShimRequestMetrics {
            received: self
                .shim_requests_received
                .with_label_values(&[kind, channel, chaincode]),
            succeeded: outcome("true"),
            failed: outcome("false"),
        }
    }

    /// Every metric in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        // Encoding into memory cannot fail, and the metrics are well formed.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Fabric's shim-request metrics for one request type, channel and chaincode.
pub struct ShimRequestMetrics {
    received: IntCounter,
    succeeded: (IntCounter, Histogram),
    failed: (IntCounter, Histogram),
}

impl ShimRequestMetrics {
    /// Counts a request received.
    pub fn received(&self) {
        self.received.inc();
    }

    /// Counts a request answered, and how long it took.
    pub fn completed(&self, success: bool, took: Duration) {
        let (count, duration) = if success {
            &self.succeeded
        } else {
            &self.failed
        };
        count.inc();
        duration.observe(took.as_secs_f64());
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
