//! phxq driven by the Rust rdkafka crate (bundled librdkafka 2.12): produce and read
//! back in every compression, idempotent producer, admin operations, ListOffsets by
//! time, DeleteRecords, Fetch long poll. Each test starts its own broker.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Records with null/binary keys, empty/null/binary/100 KB values, none/one/
/// duplicate/null headers and explicit, non-monotonic timestamps.
fn make_records(n: usize, partitions: i32) -> Vec<Rec> {
    let base = now_ms() - 3_600_000;
    (0..n)
        .map(|i| {
            let key = if i % 7 == 3 {
                None
            } else {
                Some(format!("key-{i}").into_bytes())
            };
            let value = if i == n / 2 {
                Some(format!("big value {i} ").repeat(8000).into_bytes())
            } else if i % 13 == 6 {
                Some(vec![])
            } else if i % 11 == 5 && key.is_some() {
                None
            } else {
                Some(
                    (0..1 + (i * 37) % 400)
                        .map(|j| ((i * 31 + j * 7) % 256) as u8)
                        .collect(),
                )
            };
            let headers = match i % 4 {
                0 => vec![],
                1 => vec![("h1".to_string(), Some(format!("a{i}").into_bytes()))],
                2 => vec![
                    ("dup".to_string(), Some(b"1".to_vec())),
                    ("dup".to_string(), Some(b"2".to_vec())),
                    ("empty".to_string(), Some(vec![])),
                ],
                _ => vec![("n".to_string(), None)],
            };
            let timestamp = base + (i as i64) * 10 - if i % 3 == 0 { 5 } else { 0 };
            Rec {
                partition: i as i32 % partitions,
                offset: -1,
                key,
                value,
                headers,
                timestamp,
            }
        })
        .collect()
}

fn producer(b: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", b.bootstrap())
        .set("linger.ms", "5")
        .set("acks", "all");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

/// Enqueues all records (so they batch), then awaits each delivery; returns the
/// records with their delivered partition and offset.
async fn produce(p: &FutureProducer, topic: &str, recs: &[Rec]) -> Vec<Rec> {
    let mut pending = Vec::with_capacity(recs.len());
    for r in recs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(r.partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match p.send_result(rec) {
                Ok(fut) => break pending.push(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
    }
    let mut out = Vec::with_capacity(recs.len());
    for (r, fut) in recs.iter().zip(pending) {
        let d = tokio::time::timeout(TIMEOUT, fut)
            .await
            .expect("delivery report timed out")
            .expect("delivery future canceled")
            .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
        out.push(Rec {
            partition: d.partition,
            offset: d.offset,
            ..r.clone()
        });
    }
    out
}

fn consumer(b: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", b.bootstrap())
        // a group.id is required by the config, but with assign() and no commits no
        // group coordinator is ever used
        .set("group.id", "phxq-compat-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

/// Everything from `start` until every partition reports EOF.
fn consume(b: &Broker, topic: &str, partitions: &[i32], start: i64) -> Vec<Rec> {
    let c = consumer(b, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Offset(start))
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = vec![];
    let mut eof: HashMap<i32, ()> = HashMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while eof.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "consume timed out with {} records",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p, ());
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Rec {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| k.to_vec()),
                    value: m.payload().map(|v| v.to_vec()),
                    headers,
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                });
            }
        }
    }
    out
}

fn assert_same(expected: &[Rec], got: &[Rec], what: &str) {
    let by_partition = |rs: &[Rec]| {
        let mut m: HashMap<i32, Vec<Rec>> = HashMap::new();
        for r in rs {
            m.entry(r.partition).or_default().push(r.clone());
        }
        m
    };
    let (e, g) = (by_partition(expected), by_partition(got));
    let mut keys: Vec<_> = e.keys().chain(g.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    for p in keys {
        let (ev, gv) = (
            e.get(&p).cloned().unwrap_or_default(),
            g.get(&p).cloned().unwrap_or_default(),
        );
        for (i, (a, b)) in ev.iter().zip(gv.iter()).enumerate() {
            assert_eq!(a, b, "{what}: partition {p} record #{i} differs");
        }
        assert_eq!(ev.len(), gv.len(), "{what}: partition {p} record count");
    }
}

fn assert_dense(recs: &[Rec]) {
    let mut by_p: HashMap<i32, Vec<i64>> = HashMap::new();
    for r in recs {
        by_p.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offs) in by_p {
        let want: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(offs, want, "partition {p}: offsets not dense from 0");
    }
}

fn admin(b: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_every_compression() {
    let b = Broker::start(&["--num-partitions", "2"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rs-roundtrip-{codec}");
        let p = producer(&b, &[("compression.type", codec)]);
        let sent = produce(&p, &topic, &make_records(300, 2)).await;
        assert_dense(&sent);
        let got = consume(&b, &topic, &[0, 1], 0);
        assert_same(&sent, &got, codec);
        // reading from the middle of a batch gives exactly the records from there on
        let tail: Vec<Rec> = sent.iter().filter(|r| r.offset >= 77).cloned().collect();
        assert_same(
            &tail,
            &consume(&b, &topic, &[0, 1], 77),
            &format!("{codec} from offset 77"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_no_duplicates_dense_offsets() {
    let b = Broker::start(&[]);
    let topic = "rs-idempotent";
    let p = producer(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "1"),
            ("batch.num.messages", "100"),
            ("compression.type", "zstd"),
        ],
    );
    let ts = now_ms();
    let recs: Vec<Rec> = (0..5000)
        .map(|i| Rec {
            partition: 0,
            offset: -1,
            key: None,
            value: Some(format!("idem-{i}").into_bytes()),
            headers: vec![],
            timestamp: ts + i,
        })
        .collect();
    let sent = produce(&p, topic, &recs).await;
    assert_dense(&sent);
    let got = consume(&b, topic, &[0], 0);
    assert_same(&sent, &got, "idempotent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_topics_partitions_configs_metadata() {
    let b = Broker::start(&["--message-max-bytes", "250000"]);
    let a = admin(&b);
    let topic = "rs-admin";
    let res = a
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))
                .set("max.message.bytes", "50000")],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(res, vec![Ok(topic.to_string())]);
    let res = a
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            topic.to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );

    let md = a.inner().fetch_metadata(Some(topic), TIMEOUT).unwrap();
    let t = &md.topics()[0];
    assert_eq!(t.name(), topic);
    assert!(t.error().is_none());
    let broker_id = md.brokers()[0].id();
    let mut parts: Vec<(i32, i32)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader()))
        .collect();
    parts.sort();
    assert_eq!(parts, vec![(0, broker_id), (1, broker_id), (2, broker_id)]);

    let res = a
        .create_partitions(&[NewPartitions::new(topic, 5)], &opts())
        .await
        .unwrap();
    assert_eq!(res, vec![Ok(topic.to_string())]);
    let md = a.inner().fetch_metadata(Some(topic), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    let cfgs = a
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts())
        .await
        .unwrap();
    let cfg = cfgs
        .into_iter()
        .next()
        .unwrap()
        .expect("describe topic configs");
    assert_eq!(
        cfg.get("max.message.bytes")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("50000")
    );
    assert_eq!(
        cfg.get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("delete")
    );
    let cfgs = a
        .describe_configs(&[ResourceSpecifier::Broker(broker_id)], &opts())
        .await
        .unwrap();
    let cfg = cfgs
        .into_iter()
        .next()
        .unwrap()
        .expect("describe broker configs");
    assert_eq!(
        cfg.get("message.max.bytes")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("250000")
    );

    let res = a.delete_topics(&[topic], &opts()).await.unwrap();
    assert_eq!(res, vec![Ok(topic.to_string())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let md = a.inner().fetch_metadata(None, TIMEOUT).unwrap();
        if md.topics().iter().all(|t| t.name() != topic) {
            break;
        }
        assert!(Instant::now() < deadline, "deleted topic still in Metadata");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_time_and_delete_records() {
    let b = Broker::start(&[]);
    let topic = "rs-offsets";
    let ts0 = now_ms() - 600_000;
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec {
            partition: 0,
            offset: -1,
            key: None,
            value: Some(format!("v{i}").into_bytes()),
            headers: vec![],
            timestamp: ts0 + i * 1000,
        })
        .collect();
    let p = producer(&b, &[]);
    produce(&p, topic, &recs).await;

    let c = consumer(&b, &[]);
    assert_eq!(c.fetch_watermarks(topic, 0, TIMEOUT).unwrap(), (0, 10));
    for (ts, want) in [
        (ts0 - 1, Offset::Offset(0)),
        (ts0 + 1500, Offset::Offset(2)),
        (ts0 + 9000, Offset::Offset(9)),
        (ts0 + 9001, Offset::End),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
            .unwrap();
        let res = c.offsets_for_times(tpl, TIMEOUT).unwrap();
        let e = res.find_partition(topic, 0).unwrap();
        assert_eq!(e.offset(), want, "offset for timestamp ts0{:+}", ts - ts0);
    }

    let a = admin(&b);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(4))
        .unwrap();
    let res = a.delete_records(&tpl, &opts()).await.unwrap();
    let e = res.find_partition(topic, 0).unwrap();
    assert_eq!(
        e.offset(),
        Offset::Offset(4),
        "low watermark after DeleteRecords"
    );
    assert_eq!(c.fetch_watermarks(topic, 0, TIMEOUT).unwrap(), (4, 10));
    // earliest reset lands on the new log start
    let c2 = consumer(&b, &[("auto.offset.reset", "earliest")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(1))
        .unwrap();
    c2.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let first = loop {
        assert!(Instant::now() < deadline, "no record after reset");
        match c2.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => break (m.offset(), m.payload().unwrap().to_vec()),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("{e}"),
        }
    };
    assert_eq!(first, (4, b"v4".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_poll_delivers_promptly() {
    let b = Broker::start(&[]);
    let topic = "rs-longpoll";
    let p = producer(&b, &[("linger.ms", "0")]);
    p.send(
        FutureRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(b"warm".as_slice()),
        TIMEOUT,
    )
    .await
    .unwrap();
    let c = consumer(&b, &[("fetch.wait.max.ms", "2000")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(1))
        .unwrap();
    c.assign(&tpl).unwrap();
    // reach the end first, so the next fetch waits
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "never reached EOF");
        if let Some(Err(KafkaError::PartitionEOF(_))) = c.poll(Duration::from_millis(200)) {
            break;
        }
    }
    for i in 0..5 {
        let sent_at = Instant::now();
        let v = format!("r{i}");
        p.send(
            FutureRecord::<(), str>::to(topic).partition(0).payload(&v),
            TIMEOUT,
        )
        .await
        .unwrap();
        let m = loop {
            assert!(
                sent_at.elapsed() < Duration::from_secs(5),
                "record {v} not consumed in 5s"
            );
            match c.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => break m,
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => panic!("{e}"),
            }
        };
        let latency = sent_at.elapsed();
        assert_eq!((m.offset(), m.payload()), (i + 1, Some(v.as_bytes())));
        assert!(
            latency < Duration::from_secs(1),
            "record {v} took {latency:?} with fetch.wait.max.ms=2000"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_kill9() {
    let mut b = Broker::start(&[]);
    let topic = "rs-durable";
    let p = producer(&b, &[("linger.ms", "2"), ("message.timeout.ms", "5000")]);
    let recs: Vec<Rec> = (0..2000)
        .map(|i| Rec {
            partition: 0,
            offset: -1,
            key: None,
            value: Some(format!("d{i}").into_bytes()),
            headers: vec![],
            timestamp: now_ms(),
        })
        .collect();
    let sent = produce(&p, topic, &recs).await;
    drop(p);
    b.restart();
    b.assert_alive();
    let got = consume(&b, topic, &[0], 0);
    assert_same(&sent, &got, "after kill -9 and restart");
    // new records continue at the next offset
    let p = producer(&b, &[]);
    let more = produce(&p, topic, &recs[..1]).await;
    assert_eq!(more[0].offset, 2000);
}
