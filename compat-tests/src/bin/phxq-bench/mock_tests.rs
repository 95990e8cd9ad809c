//! The workloads end to end against librdkafka's in-process mock cluster
//! (real TCP, real Kafka protocol; no CreateTopics, so topics are made on the
//! mock directly and the workloads run with `--no-create`).

use indicatif::ProgressBar;
use rdkafka::mocking::MockCluster;

use crate::consume::ConsumeParams;
use crate::e2e::E2eParams;
use crate::kafka::ClientOpts;
use crate::produce::ProduceParams;

fn produce_params(topic: &str, records: u64, producers: usize) -> ProduceParams {
    ProduceParams {
        topic: Some(topic.into()),
        records,
        record_size: 100,
        partitions: 3,
        replication_factor: 1,
        producers,
        acks: "all".into(),
        linger_ms: Some(1),
        batch_size: None,
        compression: "none".into(),
        idempotence: false,
        max_seconds: 30.0,
        flush_seconds: 30.0,
        no_create: true,
    }
}

#[test]
fn produce_then_consume_verifies_counts() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 3, 1).unwrap();
    let opts = ClientOpts {
        bootstrap: mock.bootstrap_servers(),
        extra: vec![],
    };
    let pb = ProgressBar::hidden();
    let produced = crate::produce::run(&opts, &produce_params("t", 20_001, 2), "p", &pb).unwrap();
    assert!(produced.ok, "{:?}", produced.errors);
    assert_eq!(produced.records, 20_001);
    assert_eq!(produced.bytes, 2_000_100);
    assert_eq!(produced.extra["sent"], 20_001);
    assert!(produced.latency.unwrap().count == 20_001);
    assert!(!produced.timeline.is_empty());

    let dir = std::env::temp_dir().join(format!("phxq-bench-mock-{}", std::process::id()));
    let paths = produced.write(&dir).unwrap();
    if let Some(keep) = std::env::var_os("PHXQ_BENCH_TEST_OUT") {
        produced.write(std::path::Path::new(&keep)).unwrap();
    }
    let consume = ConsumeParams {
        topic: "t".into(),
        expect: None,
        expect_from: Some(paths[0].clone()),
        max_seconds: 30.0,
    };
    let consumed = crate::consume::run(&opts, &consume, "c", &pb).unwrap();
    assert!(consumed.ok, "{:?}", consumed.errors);
    assert_eq!(consumed.records, 20_001);
    assert_eq!(consumed.bytes, 2_000_100);
    assert_eq!(consumed.extra["offset_gaps"], 0);

    // A wrong expectation fails the run (but still reads everything).
    let wrong = ConsumeParams {
        expect: Some(5),
        expect_from: None,
        ..consume
    };
    let consumed = crate::consume::run(&opts, &wrong, "c", &pb).unwrap();
    assert!(!consumed.ok);
    assert!(
        consumed.errors[0].contains("5 were expected"),
        "{:?}",
        consumed.errors
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn max_seconds_stops_sending_without_failing() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("slow", 1, 1).unwrap();
    let opts = ClientOpts {
        bootstrap: mock.bootstrap_servers(),
        extra: vec![],
    };
    let mut p = produce_params("slow", 100_000_000, 1);
    p.max_seconds = 1.0;
    let r = crate::produce::run(&opts, &p, "p", &ProgressBar::hidden()).unwrap();
    assert!(r.ok, "{:?}", r.errors);
    assert!(r.records > 0 && r.records < 100_000_000);
    assert!(
        r.notes.iter().any(|n| n.contains("--max-seconds")),
        "{:?}",
        r.notes
    );
}

#[test]
fn e2e_measures_latency_and_loses_nothing() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("e2e", 1, 1).unwrap();
    let opts = ClientOpts {
        bootstrap: mock.bootstrap_servers(),
        extra: vec![],
    };
    let p = E2eParams {
        topic: Some("e2e".into()),
        rate: 500,
        duration_secs: 2.0,
        record_size: 100,
        partitions: 1,
        replication_factor: 1,
        warmup_secs: 0.5,
        drain_secs: 10.0,
        no_create: true,
    };
    let r = crate::e2e::run(&opts, &p, "e2e", &ProgressBar::hidden()).unwrap();
    assert!(r.ok, "{:?} {:?}", r.errors, r.notes);
    assert_eq!(r.records, 1000);
    assert_eq!(r.extra["lost"], 0);
    let l = r.latency.unwrap();
    assert_eq!(l.count, 750, "warm-up records are excluded");
    assert!(l.p50_ms > 0.0 && l.p50_ms < 1000.0, "{l:?}");
    if let Some(dir) = std::env::var_os("PHXQ_BENCH_TEST_OUT") {
        r.write(std::path::Path::new(&dir)).unwrap();
    }
}

#[test]
fn unreachable_broker_fails_setup_in_bounded_time() {
    let opts = ClientOpts {
        bootstrap: "127.0.0.1:1".into(),
        extra: vec![],
    };
    let started = std::time::Instant::now();
    let err =
        crate::kafka::wait_for_partitions(&opts, "x", None, std::time::Duration::from_secs(2));
    assert!(err.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
