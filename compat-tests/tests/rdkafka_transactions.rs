//! Kafka transactions (KIP-98) driven by the Rust rdkafka crate (bundled librdkafka
//! 2.12): a transactional producer commits, aborts and commits again across the 6
//! partitions of a topic spread over 3 Raft store groups; read_committed consumers see
//! exactly the committed records, read_uncommitted consumers see everything and never a
//! control record; consume-transform-produce commits the group's offsets atomically with
//! its output. Each test starts its own broker.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 6;

/// A broker whose partitions spread over 3 store groups (Raft groups), so that one
/// transaction spans several of them.
fn start_broker() -> (Broker, tempfile::TempDir) {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("phxq.toml");
    std::fs::write(&cfg, "store_groups = 3\n").unwrap();
    let b = Broker::start(&["--config", cfg.to_str().unwrap()]);
    (b, cfg_dir)
}

fn create_topic(b: &Broker, topic: &str, partitions: i32) {
    let a: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let res = rt
        .block_on(a.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
}

fn txn_producer(b: &Broker, txn_id: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("transactional.id", txn_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, partition: i32, key: &str, value: &str) {
    let mut rec = BaseRecord::to(topic)
        .partition(partition)
        .key(key)
        .payload(value);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send failed: {e}"),
        }
    }
}

/// Values of one transaction: `per_partition` records on each partition.
fn txn_values(tag: &str, per_partition: usize) -> Vec<(i32, String)> {
    (0..per_partition * PARTITIONS as usize)
        .map(|i| (i as i32 % PARTITIONS, format!("{tag}-{i}")))
        .collect()
}

fn send_all(p: &BaseProducer, topic: &str, recs: &[(i32, String)]) {
    for (part, v) in recs {
        send(p, topic, *part, v, v);
    }
}

#[derive(Debug)]
struct Got {
    partition: i32,
    offset: i64,
    value: String,
}

/// Everything from the beginning until every partition reports EOF (for read_committed:
/// the last stable offset), with the given isolation level.
fn consume_all(b: &Broker, topic: &str, isolation: &str) -> Vec<Got> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "phxq-compat-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = vec![];
    let mut eof: HashMap<i32, ()> = HashMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while eof.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "{isolation} consume timed out with {} records, eof on {:?}",
            out.len(),
            eof.keys().collect::<Vec<_>>()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p, ());
            }
            Some(Err(e)) => panic!("{isolation} consumer error: {e}"),
            Some(Ok(m)) => {
                eof.remove(&m.partition());
                out.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap(),
                });
            }
        }
    }
    out
}

fn by_partition(recs: impl IntoIterator<Item = (i32, String)>) -> BTreeMap<i32, Vec<String>> {
    let mut m: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, v) in recs {
        m.entry(p).or_default().push(v);
    }
    m
}

fn watermarks(b: &Broker, topic: &str, isolation: &str) -> Vec<(i64, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "phxq-compat-unused")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, TIMEOUT)
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{p} ({isolation}): {e}"))
        })
        .collect()
}

/// Waits until the read_committed end offsets (last stable offsets) of all partitions are
/// `want`. As in Kafka, EndTxn answers once the commit decision is durable; the markers
/// that make the records readable under read_committed are written right after it.
fn wait_lso(b: &Broker, topic: &str, want: i64) {
    let start = Instant::now();
    loop {
        let got = watermarks(b, topic, "read_committed");
        if got.iter().all(|(_, hi)| *hi == want) {
            eprintln!(
                "{topic}: last stable offsets reached {want} after {:?}",
                start.elapsed()
            );
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{topic}: last stable offsets {got:?}, want {want} on every partition"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn commit_abort_commit_across_store_groups() {
    let (b, _cfg) = start_broker();
    let topic = "rs-txn";
    create_topic(&b, topic, PARTITIONS);
    let p = txn_producer(&b, "rs-txn-producer");

    let committed1 = txn_values("c1", 5);
    let aborted = txn_values("aborted", 5);
    let committed2 = txn_values("c2", 5);

    p.begin_transaction().expect("begin 1");
    send_all(&p, topic, &committed1);
    p.commit_transaction(TIMEOUT).expect("commit 1");

    p.begin_transaction().expect("begin 2");
    send_all(&p, topic, &aborted);
    // an abort purges what is not sent yet: flush so the aborted records reach the log
    p.flush(TIMEOUT).expect("flush before abort");
    p.abort_transaction(TIMEOUT).expect("abort 2");

    p.begin_transaction().expect("begin 3");
    send_all(&p, topic, &committed2);
    p.commit_transaction(TIMEOUT).expect("commit 3");
    // 3 x 5 records + 3 markers per partition
    wait_lso(&b, topic, 18);

    // read_committed: exactly the committed records, in order per partition
    let rc = consume_all(&b, topic, "read_committed");
    let want_rc = by_partition(committed1.iter().chain(&committed2).cloned());
    let got_rc = by_partition(rc.iter().map(|g| (g.partition, g.value.clone())));
    assert_eq!(got_rc, want_rc, "read_committed records per partition");
    assert!(
        rc.iter().all(|g| !g.value.starts_with("aborted")),
        "read_committed saw aborted records"
    );

    // read_uncommitted: committed and aborted, in produce order, and no control records
    let ru = consume_all(&b, topic, "read_uncommitted");
    let want_ru = by_partition(
        committed1
            .iter()
            .chain(&aborted)
            .chain(&committed2)
            .cloned(),
    );
    let got_ru = by_partition(ru.iter().map(|g| (g.partition, g.value.clone())));
    assert_eq!(got_ru, want_ru, "read_uncommitted records per partition");
    assert_eq!(
        ru.len(),
        90,
        "read_uncommitted record count (a marker delivered as a record?)"
    );

    // each partition's log: 3 x 5 records + 3 transaction markers, which take an offset
    // each and are skipped by consumers (the offsets they see jump over them)
    for (i, (lo, hi)) in watermarks(&b, topic, "read_uncommitted")
        .into_iter()
        .enumerate()
    {
        assert_eq!((lo, hi), (0, 18), "partition {i} watermarks");
        let offs: Vec<i64> = ru
            .iter()
            .filter(|g| g.partition == i as i32)
            .map(|g| g.offset)
            .collect();
        let want: Vec<i64> = (0..5).chain(6..11).chain(12..17).collect();
        assert_eq!(
            offs, want,
            "partition {i}: offsets the read_uncommitted consumer saw"
        );
    }
    // no open transaction: the last stable offset is the high watermark
    assert_eq!(
        watermarks(&b, topic, "read_committed"),
        vec![(0, 18); PARTITIONS as usize]
    );
}

#[test]
fn open_transaction_holds_back_read_committed() {
    let (b, _cfg) = start_broker();
    let topic = "rs-txn-open";
    create_topic(&b, topic, PARTITIONS);
    let p = txn_producer(&b, "rs-txn-open-producer");
    let committed = txn_values("c", 2);
    p.begin_transaction().unwrap();
    send_all(&p, topic, &committed);
    p.commit_transaction(TIMEOUT).unwrap();
    wait_lso(&b, topic, 3);

    p.begin_transaction().unwrap();
    send_all(&p, topic, &txn_values("open", 3));
    p.flush(TIMEOUT).unwrap();
    // committed: 2 records + marker = LSO 3; the open transaction's 3 records follow
    assert_eq!(
        watermarks(&b, topic, "read_uncommitted"),
        vec![(0, 6); PARTITIONS as usize],
        "high watermarks with the transaction open"
    );
    assert_eq!(
        watermarks(&b, topic, "read_committed"),
        vec![(0, 3); PARTITIONS as usize],
        "last stable offsets with the transaction open"
    );
    let rc = consume_all(&b, topic, "read_committed");
    assert_eq!(
        by_partition(rc.iter().map(|g| (g.partition, g.value.clone()))),
        by_partition(committed.iter().cloned()),
        "read_committed with a transaction open"
    );

    p.commit_transaction(TIMEOUT).unwrap();
    // the open transaction's 3 records + marker
    wait_lso(&b, topic, 7);
    assert_eq!(
        watermarks(&b, topic, "read_uncommitted"),
        vec![(0, 7); PARTITIONS as usize],
        "high watermarks after the commit"
    );
}

#[test]
fn consume_transform_produce_commits_offsets_with_output() {
    let (b, _cfg) = start_broker();
    let (input, output, group) = ("rs-ctp-in", "rs-ctp-out", "rs-ctp-group");
    create_topic(&b, input, PARTITIONS);
    create_topic(&b, output, PARTITIONS);
    // the input, written non-transactionally
    let n = 60;
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .unwrap();
    for i in 0..n {
        send(
            &plain,
            input,
            i % PARTITIONS,
            &format!("k{i}"),
            &format!("in-{i}"),
        );
    }
    plain.flush(TIMEOUT).unwrap();

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    c.subscribe(&[input]).unwrap();
    let p = txn_producer(&b, "rs-ctp-producer");
    p.begin_transaction().unwrap();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + TIMEOUT;
    while seen < n {
        assert!(Instant::now() < deadline, "consumed only {seen} of {n}");
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => {
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                send(&p, output, m.partition(), &v, &v.to_uppercase());
                next.insert(m.partition(), m.offset() + 1);
                seen += 1;
            }
        }
    }
    let mut offsets = TopicPartitionList::new();
    for (part, o) in &next {
        offsets
            .add_partition_offset(input, *part, Offset::Offset(*o))
            .unwrap();
    }
    p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), TIMEOUT)
        .expect("send_offsets_to_transaction");
    p.commit_transaction(TIMEOUT).expect("commit");
    // each output partition: its 10 records + marker
    wait_lso(&b, output, (n / PARTITIONS) as i64 + 1);

    // the group's committed offsets are the input's end offsets
    let mut tpl = TopicPartitionList::new();
    for part in 0..PARTITIONS {
        tpl.add_partition(input, part);
    }
    let committed = c.committed_offsets(tpl, TIMEOUT).unwrap();
    for part in 0..PARTITIONS {
        let (_, hi) = c.fetch_watermarks(input, part, TIMEOUT).unwrap();
        assert_eq!(
            committed.find_partition(input, part).unwrap().offset(),
            Offset::Offset(hi),
            "committed offset of {input}/{part}"
        );
        assert_eq!(hi, (n / PARTITIONS) as i64);
    }
    drop(c);

    // the output, read_committed, holds each input record once, transformed
    let out = consume_all(&b, output, "read_committed");
    let mut got: Vec<String> = out.iter().map(|g| g.value.clone()).collect();
    got.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("IN-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "output under read_committed");
}
