//! The node's metrics, with Fabric's names, labels and buckets where Fabric has them, served in
//! Prometheus' text format by the operations endpoint. One set per process, as Fabric's.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    /// `chaincode_execute_timeouts{chaincode}`.
    pub execute_timeouts: IntCounterVec,
    /// `ccvm_wasm_guest_exits{kind}`: wasm guests in the node that ended, by why.
    pub guest_exits: IntCounterVec,
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
            registry,
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

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
