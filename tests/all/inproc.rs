//! The inproc VM: the very `kv` example, compiled to a `wasm32-wasip2` component, runs inside
//! the node and serves transactions through the same Handler as a gRPC chaincode.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ccvm::container::inproc::{
    BlockStore, GuestExit, InprocError, InprocLimits, InprocVm, InstanceHandle,
};
use serde_json::json;

use crate::harness::{TestNode, rust_chaincode, wasm_example};

/// A node (not in dev mode) running the `kv` example in wasm as the chaincode `name`, and the
/// instance, which runs as long as it is held.
async fn node_running_kv(name: &str) -> Result<(TestNode, InstanceHandle)> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let vm = node.inner().inproc();
    let component = vm.compile(name, &wasm_example("kv")?)?;
    let instance = vm.start(&format!("{name}:1.0"), &component).await?;
    node.wait_registered(name).await?;
    Ok((node, instance))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_chaincode_serves_every_stub_call_inside_the_peer() -> Result<()> {
    let (node, _instance) = node_running_kv("wasmkv").await?;

    node.invoke("wasmkv", &["put", "color", "blue"]).await?;
    assert_eq!(node.query_text("wasmkv", &["get", "color"]).await?, "blue");
    node.invoke("wasmkv", &["putmany", "key", "230"]).await?;
    assert_eq!(
        node.query_json("wasmkv", &["range", "key", ""])
            .await?
            .as_array()
            .map(Vec::len),
        Some(230)
    );
    let page = node
        .query_json("wasmkv", &["page", "key", "", "100", "key00100"])
        .await?;
    assert_eq!(
        (page["count"].clone(), page["bookmark"].clone()),
        (json!(100), json!("key00200"))
    );
    let history = node.query_json("wasmkv", &["history", "color"]).await?;
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    node.invoke("wasmkv", &["pput", "secrets", "pin", "42"])
        .await?;
    assert_eq!(
        node.query_text("wasmkv", &["pget", "secrets", "pin"])
            .await?,
        "42"
    );
    node.invoke("wasmkv", &["cput", "owner", "ann", "car", "red"])
        .await?;
    assert_eq!(
        node.query_json("wasmkv", &["cquery", "owner", "ann"])
            .await?,
        json!(["red"])
    );
    let info = node.query_json("wasmkv", &["txinfo"]).await?;
    assert_eq!(info["signed"], true);
    let failed = node
        .query("wasmkv", &["fail", "wasm says no"])
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("wasm says no"), "{failed}");
    Ok(())
}

/// The count of the node's `chaincode_shim_requests_received` of `kind` from `chaincode`.
fn shim_requests(chaincode: &str, kind: &str) -> f64 {
    let series = format!(
        r#"chaincode_shim_requests_received{{chaincode="{chaincode}",channel="mychannel",type="{kind}"}} "#
    );
    ccvm::metrics::metrics()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_batch_reaches_the_ledger_in_requests_of_up_to_a_thousand_records() -> Result<()> {
    let (node, _instance) = node_running_kv("batchkv").await?;

    node.invoke("batchkv", &["putbatch", "key", "2500"]).await?;
    assert_eq!(
        (
            shim_requests("batchkv", "WRITE_BATCH_STATE"),
            shim_requests("batchkv", "PUT_STATE")
        ),
        (3.0, 0.0),
        "2,500 writes in requests of 1,000, 1,000 and 500 records"
    );
    let keys = node.query_json("batchkv", &["range", "key", ""]).await?;
    assert_eq!(keys.as_array().map(Vec::len), Some(2500));
    assert_eq!(
        node.query_text("batchkv", &["get", "key02499"]).await?,
        "v2499"
    );

    node.invoke("batchkv", &["putmany", "other", "3"]).await?;
    assert_eq!(
        shim_requests("batchkv", "PUT_STATE"),
        3.0,
        "without a batch each write is a request of its own"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_chaincodes_invoke_wasm_and_native_chaincodes() -> Result<()> {
    let node = TestNode::start().await?;
    let vm = node.inner().inproc();
    let component = vm.compile("wasmkv", &wasm_example("kv")?)?;
    let _wasm = vm.start("wasmkv:1.0", &component).await?;
    let _other_wasm = vm.start("otherkv:1.0", &component).await?;
    let _native = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("wasmkv").await?;
    node.wait_registered("otherkv").await?;
    node.wait_registered("kv").await?;

    node.invoke("wasmkv", &["call", "otherkv", "put", "k", "wasm-to-wasm"])
        .await?;
    assert_eq!(
        node.query_text("otherkv", &["get", "k"]).await?,
        "wasm-to-wasm"
    );
    node.invoke("wasmkv", &["call", "kv", "put", "k", "from-wasm"])
        .await?;
    assert_eq!(node.query_text("kv", &["get", "k"]).await?, "from-wasm");
    node.invoke("kv", &["call", "wasmkv", "put", "k", "from-native"])
        .await?;
    assert_eq!(
        node.query_text("wasmkv", &["get", "k"]).await?,
        "from-native"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_trap_fails_its_transaction_and_the_peer_keeps_serving() -> Result<()> {
    let node = TestNode::start().await?;
    let vm = node.inner().inproc();
    let component = vm.compile("wasmkv", &wasm_example("kv")?)?;
    let instance = vm.start("wasmkv:1.0", &component).await?;
    let _native = rust_chaincode(&node, "kv", "kv:1.0")?;
    node.wait_registered("wasmkv").await?;
    node.wait_registered("kv").await?;

    let trapped = node.query("wasmkv", &["panic"]).await.unwrap_err();
    assert!(
        trapped.to_string().contains(
            "wasm chaincode wasmkv:1.0 trapped: wasm trap: wasm `unreachable` instruction executed"
        ),
        "{trapped}"
    );
    assert!(matches!(instance.wait().await, GuestExit::Trapped(_)));
    node.wait_deregistered("wasmkv").await?;

    node.invoke("kv", &["put", "native", "unaffected"]).await?;
    let _again = vm.start("wasmkv:1.0", &component).await?;
    node.wait_registered("wasmkv").await?;
    node.invoke("wasmkv", &["put", "after", "trap"]).await?;
    assert_eq!(node.query_text("wasmkv", &["get", "after"]).await?, "trap");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_component_are_refused() -> Result<()> {
    let node = TestNode::start().await?;
    let error = node
        .inner()
        .inproc()
        .compile("junk", b"\0asm not really")
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("chaincode junk: invalid wasm component"),
        "{error}"
    );
    Ok(())
}

/// Starts the hostile example as `name` on a node whose transactions may run `timeout_ms`.
async fn hostile_node(
    timeout_ms: u64,
) -> Result<(TestNode, ccvm::container::inproc::InstanceHandle)> {
    let node =
        TestNode::start_with(|config| config.chaincode.execute_timeout_ms = timeout_ms).await?;
    let vm = node.inner().inproc();
    let component = vm.compile("hostile", &wasm_example("hostile")?)?;
    let instance = vm.start("hostile:1.0", &component).await?;
    node.wait_registered("hostile").await?;
    assert_eq!(
        node.query_text("hostile", &["hello"]).await?,
        "well behaved"
    );
    Ok((node, instance))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_the_deadline() -> Result<()> {
    let (node, instance) = hostile_node(500).await?;
    let stopped = node
        .query("hostile", &["spin"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        stopped.contains("timed out") || stopped.contains("transaction deadline exceeded"),
        "the peer's timeout or the guest's deadline, whichever fires first: {stopped}"
    );
    assert_eq!(instance.wait().await, GuestExit::Timeout);
    node.wait_deregistered("hostile").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_cap() -> Result<()> {
    let (node, instance) = hostile_node(30_000).await?;
    let peaks = &ccvm::metrics::metrics().guest_memory_peak;
    let sum_before = peaks.get_sample_sum();
    let stopped = node.query("hostile", &["hoard"]).await.unwrap_err();
    assert!(
        stopped.to_string().contains("memory limit exceeded"),
        "{stopped}"
    );
    assert_eq!(instance.wait().await, GuestExit::MemoryLimit);
    #[expect(clippy::cast_precision_loss, reason = "a memory size in a histogram")]
    let half_the_cap = node.config().inproc.max_memory_bytes as f64 / 2.0;
    assert!(
        peaks.get_sample_sum() - sum_before >= half_the_cap,
        "the guest's memory high-water mark is recorded when it ends"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_guest_fails_its_transaction_and_closes_only_its_channel() -> Result<()> {
    let (node, instance) = hostile_node(30_000).await?;
    let vm = node.inner().inproc();
    let _neighbour = vm
        .start("wasmkv:1.0", &vm.compile("wasmkv", &wasm_example("kv")?)?)
        .await?;
    node.wait_registered("wasmkv").await?;

    let refused = node.query("hostile", &["babble"]).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("undecodable message from chaincode hostile:1.0"),
        "{refused}"
    );
    assert_eq!(instance.wait().await, GuestExit::Finished);
    node.wait_deregistered("hostile").await?;
    node.invoke("wasmkv", &["put", "k", "still serving"])
        .await?;
    assert_eq!(
        node.query_text("wasmkv", &["get", "k"]).await?,
        "still serving"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_exist_for_a_guest_only_in_the_directory_granted_to_it() -> Result<()> {
    let granted = tempfile::tempdir()?;
    std::fs::write(granted.path().join("note.txt"), "granted")?;
    let secret = granted
        .path()
        .parent()
        .expect("a parent")
        .join("secret.txt");
    let dir = granted.path().to_owned();
    let node = TestNode::start_with(|config| {
        config.inproc.data_dirs.insert("reader".to_owned(), dir);
    })
    .await?;
    let vm = node.inner().inproc();
    let component = vm.compile("hostile", &wasm_example("hostile")?)?;
    vm.install("reader", component.clone());
    vm.install("hostile", component);

    assert_eq!(
        node.query_text("reader", &["read", "note.txt"]).await?,
        "granted"
    );
    let escape = node
        .query("reader", &["read", "../secret.txt"])
        .await
        .unwrap_err();
    assert!(
        escape
            .to_string()
            .contains("cannot read /data/../secret.txt"),
        "{escape}"
    );
    let ungranted = node
        .query("hostile", &["read", "note.txt"])
        .await
        .unwrap_err();
    assert!(
        ungranted.to_string().contains("cannot read /data/note.txt"),
        "{ungranted}"
    );
    assert!(!secret.exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_recursion_is_a_stack_overflow() -> Result<()> {
    let (node, instance) = hostile_node(30_000).await?;
    let stopped = node.query("hostile", &["recurse"]).await.unwrap_err();
    assert!(stopped.to_string().contains("stack overflow"), "{stopped}");
    assert_eq!(instance.wait().await, GuestExit::StackOverflow);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_starts_every_component_of_its_system_chaincode_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("scc.wasm"), wasm_example("kv")?)?;
    std::fs::write(dir.path().join("notes.txt"), "not a chaincode")?;
    let chaincode_dir = dir.path().to_owned();
    let node = TestNode::start_with(|config| {
        config.dev_mode = false;
        config.inproc.chaincode_dir = Some(chaincode_dir);
    })
    .await?;
    node.wait_registered("scc").await?;
    node.invoke("scc", &["put", "k", "system"]).await?;
    assert_eq!(node.query_text("scc", &["get", "k"]).await?, "system");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sees_a_frozen_clock() -> Result<()> {
    let (node, _instance) = hostile_node(30_000).await?;
    assert_eq!(
        node.query_text("hostile", &["clock"]).await?,
        "0",
        "the Unix epoch, on every peer"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_system_chaincode_is_relaunched_on_the_next_call() -> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let vm = node.inner().inproc();
    vm.install("scc", vm.compile("scc", &wasm_example("kv")?)?);

    node.invoke("scc", &["put", "k", "before"]).await?;
    assert_eq!(vm.instances_started(), 1, "the first call launched it");
    let trapped = node.query("scc", &["panic"]).await.unwrap_err();
    assert!(trapped.to_string().contains("trapped"), "{trapped}");
    node.wait_deregistered("scc").await?;
    assert_eq!(node.query_text("scc", &["get", "k"]).await?, "before");
    assert_eq!(
        vm.instances_started(),
        2,
        "the call after the trap launched a new instance"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_stuck_in_a_host_call_is_ended_when_its_transaction_times_out() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.execute_timeout_ms = 500).await?;
    let vm = node.inner().inproc();
    vm.install("hostile", vm.compile("hostile", &wasm_example("hostile")?)?);
    assert_eq!(
        node.query_text("hostile", &["hello"]).await?,
        "well behaved"
    );
    for stuck in ["hang", "sleep"] {
        let timed_out = node.query("hostile", &[stuck]).await.unwrap_err();
        assert!(
            timed_out
                .to_string()
                .contains("chaincode hostile timed out after 500ms"),
            "{stuck}: {timed_out}"
        );
        assert_eq!(
            node.query_text("hostile", &["hello"]).await?,
            "well behaved",
            "the call after `{stuck}` timed out is served by a new instance"
        );
    }
    assert_eq!(
        vm.instances_started(),
        3,
        "each timed-out transaction ended its instance"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while vm.instances_live() > 1 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} instances still live",
            vm.instances_live()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_message_over_the_size_limit_ends_only_its_connection() -> Result<()> {
    let node = TestNode::start_with(|config| config.chaincode.max_message_bytes = 4096).await?;
    let vm = node.inner().inproc();
    let component = vm.compile("wasmkv", &wasm_example("kv")?)?;
    let instance = vm.start("wasmkv:1.0", &component).await?;
    node.wait_registered("wasmkv").await?;

    let refused = node
        .invoke("wasmkv", &["put", "big", &"x".repeat(5000)])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("chaincode wasmkv:1.0: message of ")
            && refused.contains(" bytes is over the limit of 4096 bytes"),
        "{refused}"
    );
    tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .context("the guest whose message was refused kept running")?;
    node.wait_deregistered("wasmkv").await?;

    let _again = vm.start("wasmkv:1.0", &component).await?;
    node.wait_registered("wasmkv").await?;
    node.invoke("wasmkv", &["put", "small", "ok"]).await?;
    assert_eq!(node.query_text("wasmkv", &["get", "small"]).await?, "ok");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_launch_one_instance() -> Result<()> {
    // One instance at most, so that no call finding it busy starts a second.
    let node = TestNode::start_with(|config| config.inproc.instances_per_chaincode = 1).await?;
    let vm = node.inner().inproc();
    vm.install("scc", vm.compile("scc", &wasm_example("kv")?)?);

    let (a, b, c, d) = tokio::join!(
        node.query_text("scc", &["get", "a"]),
        node.query_text("scc", &["get", "b"]),
        node.query_text("scc", &["get", "c"]),
        node.query_text("scc", &["get", "d"]),
    );
    for answer in [a, b, c, d] {
        assert_eq!(answer?, "");
    }
    assert_eq!(vm.instances_started(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_the_peer_starts_under_a_running_name_serves_beside_the_first()
-> Result<()> {
    let node = TestNode::start_with(|config| config.dev_mode = false).await?;
    let vm = node.inner().inproc();
    let component = vm.compile("wasmkv", &wasm_example("kv")?)?;
    let _first = vm.start("twice:1.0", &component).await?;
    node.wait_registered("twice").await?;

    let _second = vm.start("twice:1.0", &component).await?;
    let registry = node.inner().support().registry();
    // A guest registers in its first run unless the machine is so busy that its first run
    // yields before it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while registry.instances("twice:1.0") < 2 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the second instance never came to serve"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(registry.instances("twice:1.0"), 2);
    node.invoke("twice", &["put", "color", "green"]).await?;
    assert_eq!(node.query_text("twice", &["get", "color"]).await?, "green");
    Ok(())
}

/// Queries `hostile` with `sleep` on a task: the instance it lands on is busy for an hour.
fn put_to_sleep(node: &Arc<TestNode>) -> tokio::task::JoinHandle<Result<()>> {
    let node = Arc::clone(node);
    tokio::spawn(async move { node.query("hostile", &["sleep"]).await.map(drop) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_chaincode_gets_one_more_instance_up_to_its_limit() -> Result<()> {
    let node =
        Arc::new(TestNode::start_with(|config| config.inproc.instances_per_chaincode = 3).await?);
    let vm = node.inner().inproc();
    vm.install("hostile", vm.compile("hostile", &wasm_example("hostile")?)?);
    let registry = node.inner().support().registry();

    let mut sleepers = Vec::new();
    for busy in 1..=3 {
        sleepers.push(put_to_sleep(&node));
        node.wait_until_running("hostile", busy).await?;
        assert_eq!(
            registry.instances("hostile"),
            busy,
            "each sleeper has an instance of its own"
        );
        if busy < 3 {
            assert_eq!(
                node.query_text("hostile", &["hello"]).await?,
                "well behaved",
                "with {busy} instances asleep, a transaction is answered by one more"
            );
        }
    }
    let queued = {
        let node = Arc::clone(&node);
        tokio::spawn(async move { node.query_text("hostile", &["hello"]).await })
    };
    node.wait_until_running("hostile", 4).await?;
    assert_eq!(
        (vm.instances_started(), registry.instances("hostile")),
        (3, 3),
        "at the limit, a transaction waits for a busy instance instead of starting a fourth"
    );

    assert!(node.inner().support().retire("hostile"));
    assert_eq!(
        registry.instances("hostile"),
        0,
        "a retired name keeps no instance"
    );
    assert_eq!(
        node.query_text("hostile", &["hello"]).await?,
        "well behaved"
    );
    assert_eq!(
        vm.instances_started(),
        4,
        "the next call launched a new one"
    );
    queued.abort();
    for sleeper in sleepers {
        sleeper.abort();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_more_instance_that_cannot_start_leaves_the_busy_one_serving_and_is_not_retried_at_once()
-> Result<()> {
    let node = Arc::new(
        TestNode::start_with(|config| {
            config.inproc.max_instances = 1;
            config.inproc.instances_per_chaincode = 4;
        })
        .await?,
    );
    node.inner().system_chaincodes_prepared().await;
    let vm = node.inner().inproc();
    vm.install("cramped", vm.compile("cramped", &wasm_example("hostile")?)?);
    let sleeper = {
        let node = Arc::clone(&node);
        tokio::spawn(async move { node.query("cramped", &["sleep"]).await.map(drop) })
    };
    node.wait_until_running("cramped", 1).await?;

    // One after another, each once the one before is queued (its start of one more instance,
    // if it tried one, is over by then).
    let mut queued = Vec::new();
    for running in 2..=4 {
        let node_for_query = Arc::clone(&node);
        queued.push(tokio::spawn(async move {
            node_for_query.query_text("cramped", &["hello"]).await
        }));
        node.wait_until_running("cramped", running).await?;
    }
    let added = |success: &str| {
        ccvm::metrics::metrics()
            .instances_added
            .with_label_values(&["cramped", success])
            .get()
    };
    assert_eq!(
        (added("false"), added("true")),
        (1, 0),
        "the pool's one slot is taken: one start failed, and none was tried again within {:?}",
        ccvm::chaincode::PAUSE_AFTER_FAILED_GROWTH
    );
    assert_eq!(node.inner().support().registry().instances("cramped"), 1);
    for query in queued {
        query.abort();
    }
    sleeper.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaincode_limited_to_one_instance_queues_behind_its_busy_one() -> Result<()> {
    let node =
        Arc::new(TestNode::start_with(|config| config.inproc.instances_per_chaincode = 1).await?);
    let vm = node.inner().inproc();
    vm.install("hostile", vm.compile("hostile", &wasm_example("hostile")?)?);

    let sleeper = put_to_sleep(&node);
    node.wait_until_running("hostile", 1).await?;
    let queued = {
        let node = Arc::clone(&node);
        tokio::spawn(async move { node.query_text("hostile", &["hello"]).await })
    };
    node.wait_until_running("hostile", 2).await?;
    assert_eq!(vm.instances_started(), 1);
    assert_eq!(node.inner().support().registry().instances("hostile"), 1);
    queued.abort();
    sleeper.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_never_registers_fails_its_launch() -> Result<()> {
    let node = TestNode::start_with(|config| config.inproc.register_timeout_ms = 300).await?;
    let vm = node.inner().inproc();
    let component = vm.compile("hostile", &wasm_example("hostile")?)?;
    vm.install("quitter", component.clone());
    vm.install("silent", component);

    let quit = node.query("quitter", &["hello"]).await.unwrap_err();
    assert!(
        quit.to_string().contains(
            "chaincode quitter could not be launched: ended before registering: finished"
        ),
        "{quit}"
    );
    let silent = node.query("silent", &["hello"]).await.unwrap_err();
    assert!(
        silent
            .to_string()
            .contains("chaincode silent did not register within 300ms"),
        "{silent}"
    );
    let metrics = ccvm::metrics::metrics();
    let timeouts = |name: &str| metrics.launch_timeouts.with_label_values(&[name]).get();
    assert!(
        timeouts("silent") >= 1,
        "chaincode_launch_timeouts counts it"
    );
    assert_eq!(
        timeouts("quitter"),
        0,
        "an ended guest is a failure, not a timeout"
    );
    assert!(
        metrics
            .launch_failures
            .with_label_values(&["quitter"])
            .get()
            >= 1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_rehearses_a_launch_and_names_why_a_guest_was_not_ready() -> Result<()> {
    let node = TestNode::start().await?;
    node.inner().system_chaincodes_prepared().await;
    let vm = node.inner().inproc();
    let component = vm.compile("hostile", &wasm_example("hostile")?)?;
    for name in ["hostile", "quitter", "silent"] {
        vm.install(name, component.clone());
    }

    vm.prepare("hostile").await.map_err(anyhow::Error::msg)?;
    let quit = vm.prepare("quitter").await.unwrap_err().to_string();
    assert!(
        quit.contains("rehearsing the launch of quitter failed: it ended: finished"),
        "{quit}"
    );
    let silent = vm.prepare("silent").await.unwrap_err().to_string();
    assert!(silent.contains("it was not ready within 5s"), "{silent}");
    let unknown = vm.prepare("nothing").await.unwrap_err();
    assert!(
        matches!(&unknown, InprocError::NotInstalled { chaincode } if chaincode == "nothing"),
        "{unknown}"
    );
    assert_eq!(vm.instances_started(), 0, "rehearsals are not launches");
    assert_eq!(vm.instances_live(), 0, "no rehearsal outlives its call");

    assert_eq!(
        node.query_text("hostile", &["hello"]).await?,
        "well behaved"
    );
    assert_eq!(vm.instances_started(), 1);
    Ok(())
}

/// A block store for a VM whose guests never read it.
struct NoBlocks;

impl BlockStore for NoBlocks {
    fn chain_info(&self, _: &str) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }

    fn block_by_number(&self, _: &str, _: u64) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }

    fn block_by_hash(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }

    fn block_by_tx_id(&self, _: &str, _: &str) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }

    fn transaction_by_id(&self, _: &str, _: &str) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }

    fn channels(&self) -> Result<Vec<String>, String> {
        Err("no blocks".to_owned())
    }

    fn config_block(&self, _: &str) -> Result<Vec<u8>, String> {
        Err("no blocks".to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_computing_after_its_vm_is_gone_still_stops() -> Result<()> {
    let node = TestNode::start().await?;
    let vm = InprocVm::new(
        node.inner().support().connector(),
        InprocLimits::default(),
        None,
        Arc::new(NoBlocks),
    )?;
    let component = vm.compile("hostile", &wasm_example("hostile")?)?;
    let instance = vm.start("silent", &component).await?;
    drop((vm, component));

    instance.stop();
    let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait())
        .await
        .context("the guest kept computing: its epoch no longer advanced")?;
    assert_eq!(exit, GuestExit::Stopped);
    Ok(())
}
