"""Log compaction (cleanup.policy=compact) with real clients: 100 k updates of 1 k keys are
compacted down to the latest value of each key at the offsets the producer's delivery
reports gave (compacted partitions have gaps, as in Kafka); tombstones go after
delete.retention.ms; ListOffsets earliest/latest do not move; a consumer group whose
committed offset is in a gap resumes at the next kept record; keyless records are refused
with INVALID_RECORD (the whole batch, as Kafka's LogValidator does). In a three-node
cluster every replica compacts its own copy: after the leader is killed, the new leader
serves the same compacted log.

The brokers look for dirty partitions every 200 ms (log.cleaner.backoff.ms); topics use
16 KiB segments (the active one is never compacted) and a dirty ratio of 0.01, so a pass
runs as soon as a segment is closed."""

from __future__ import annotations

import os
import time

import pytest

from phxq_wire import wait_for

BACKOFF_MS = 200
ARGS = ("--log-segment-bytes", "65536", "--log-cleaner-backoff-ms", str(BACKOFF_MS))
LOG_TOML = f"[log]\nsegment_bytes = 65536\ncleaner_backoff_ms = {BACKOFF_MS}\n"
KEYS = 1000
DELETE_RETENTION_MS = 3000
TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.bytes": "16384",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": str(DELETE_RETENTION_MS),
}


def create(bootstrap: str, topic: str, configs: dict[str, str], replication: int = -1):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, 1, replication, config=configs)])[topic].result(timeout=30)


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]], **conf):
    """Produces (key, value) pairs in order; returns [(offset, key, value)] from the
    delivery reports, and the errors."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 500,
                  "enable.idempotence": True, **conf})
    done: list[tuple[int, bytes | None, bytes | None]] = []
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            done.append((msg.offset(), msg.key(), msg.value()))
    for k, v in items:
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    return done, errors


def latest(acked: list[tuple[int, bytes | None, bytes | None]]) -> dict[bytes, tuple[int, bytes | None]]:
    out: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, k, v in sorted(acked, key=lambda a: a[0]):
        out[k] = (offset, v)
    return out


def consume_all(bootstrap: str, topic: str, start: int = 0) -> list[tuple[int, bytes, bytes | None]]:
    from confluent_kafka import KafkaError, TopicPartition
    from phxq_clients import confluent_consumer
    c = confluent_consumer(bootstrap, **{"fetch.max.bytes": 4 << 20})
    try:
        c.assign([TopicPartition(topic, 0, start)])
        out = []
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, f"consume timed out after {len(out)} records"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(f"consumer error: {m.error()}")
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    from confluent_kafka import TopicPartition
    from phxq_clients import confluent_consumer
    c = confluent_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def workload(bootstrap: str, topic: str, n: int, tombstoned: range, **conf):
    """n updates round-robin over KEYS keys and tombstones for `tombstoned`, then 300
    records of fresh keys in small batches that fill the active segment (never compacted)
    past the rest; returns the delivery reports."""
    items: list[tuple[bytes | None, bytes | None]] = [
        (b"key-%04d" % (i % KEYS), b"value-%06d-" % i + b"x" * 40) for i in range(n)]
    items += [(b"key-%04d" % k, None) for k in tombstoned]
    acked, errors = produce(bootstrap, topic, items, **conf)
    assert not errors, errors[:3]
    # Incompressible, so that they fill more than a segment whatever the codec.
    tail = [(b"tail-%04d" % i, os.urandom(200)) for i in range(300)]
    more, errors = produce(bootstrap, topic, tail, **{**conf, "batch.num.messages": 20})
    assert not errors, errors[:3]
    return acked + more


def wait_compacted(bootstrap: str, topic: str, *expected: dict, timeout: float = 40):
    """Waits until a consumer from offset 0 sees exactly one of `expected` (key ->
    (offset, value)), in offset order; returns the index of the one it saw."""
    wants = [sorted((o, k, v) for k, (o, v) in e.items()) for e in expected]
    seen = {}

    def done():
        got = consume_all(bootstrap, topic)
        seen["last"] = (len(got), got[:3])
        return next((i + 1 for i, w in enumerate(wants) if got == w), None)
    try:
        return wait_for(done, timeout, interval=0.5, what=f"{topic} compacted") - 1
    except AssertionError as e:
        raise AssertionError(f"{e}; last saw {seen.get('last')}; want {[len(w) for w in wants]}: "
                             f"{wants[0][:3]}") from None


def test_compaction_keeps_the_latest_value_per_key_at_its_offset(broker_factory, topic):
    """100 k updates of 1 k keys (lz4 batches): once compacted, a consumer from 0 gets
    exactly the latest value of each key at the offset its delivery report gave, and the
    tombstoned keys disappear after delete.retention.ms; earliest and latest offsets stay;
    a group committed in a gap resumes at the next kept record."""
    b = broker_factory(*ARGS)
    create(b.bootstrap, topic, TOPIC_CONFIGS)
    acked = workload(b.bootstrap, topic, 100_000, range(0, 50), **{"compression.type": "lz4"})
    total = len(acked)
    assert total == 100_000 + 50 + 300
    assert watermarks(b.bootstrap, topic) == (0, total)
    last = latest(acked)
    # First the tombstones are kept (younger than delete.retention.ms), then they go.
    without = {k: ov for k, ov in last.items() if ov[1] is not None}
    assert len(without) == KEYS - 50 + 300
    saw = wait_compacted(b.bootstrap, topic, last, without)
    if saw == 0:
        wait_compacted(b.bootstrap, topic, without)
    assert watermarks(b.bootstrap, topic) == (0, total), "compaction must not move earliest/latest"

    # A group whose committed offset was removed by compaction resumes at the next kept one.
    from confluent_kafka import Consumer, TopicPartition
    kept = sorted(o for o, _ in without.values())
    gap = next(o for o in range(1, total) if o not in set(kept))
    group = f"{topic}-g"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "error"})
    c.commit(offsets=[TopicPartition(topic, 0, gap)], asynchronous=False)
    c.subscribe([topic])
    resumed = []
    deadline = time.monotonic() + 30
    while len(resumed) < len([o for o in kept if o >= gap]):
        assert time.monotonic() < deadline, f"group stuck after {len(resumed)} records"
        m = c.poll(0.5)
        if m is not None and not m.error():
            resumed.append(m.offset())
        elif m is not None:
            raise AssertionError(f"consumer error: {m.error()}")
    c.close()
    assert resumed == [o for o in kept if o >= gap]

    # The data on disk shrank: the segment collector freed what the rewrite replaced is
    # not asserted (the raft log still refers to the old files until it is purged).


def test_keyless_records_on_a_compacted_topic_are_refused_as_kafka_does(broker_factory, topic):
    """Kafka's LogValidator refuses a compacted topic's batch holding a record without key:
    INVALID_RECORD for the partition's whole batch (record_errors name the keyless
    records, KIP-467); none of its records is written, keyed ones included."""
    from confluent_kafka import KafkaError
    b = broker_factory(*ARGS)
    create(b.bootstrap, topic, TOPIC_CONFIGS)
    ok, errors = produce(b.bootstrap, topic, [(b"k", b"v")])
    assert not errors and [o for o, _, _ in ok] == [0]
    # One batch (linger) with a keyless record among keyed ones: all three refused.
    ok, errors = produce(b.bootstrap, topic, [(b"a", b"1"), (None, b"2"), (b"b", b"3")],
                         **{"linger.ms": 200, "enable.idempotence": False, "retries": 0})
    assert ok == []
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD] * 3, errors
    assert watermarks(b.bootstrap, topic) == (0, 1)
    # A delete-policy topic takes keyless records.
    other = topic + "-delete"
    create(b.bootstrap, other, {"cleanup.policy": "delete"})
    ok, errors = produce(b.bootstrap, other, [(None, b"x")])
    assert not errors and len(ok) == 1


@pytest.mark.parametrize("cluster", [LOG_TOML], indirect=True, ids=["cleaner-200ms"])
def test_cluster_every_replica_compacts_and_a_new_leader_serves_the_same(cluster, topic):
    """Three replicas: each compacts its own copy (each node logs a pass); after the
    leader is killed, the new leader serves the same compacted log."""
    cluster.wait_for(lambda: all(cluster.group_leaders().get(g) is not None for g in (1, 2, 3)), 30,
                     what="every store group to have a leader")
    create(cluster.bootstrap, topic, {**TOPIC_CONFIGS, "delete.retention.ms": "600000"})
    first = cluster.wait_leader(topic, 0)
    acked = workload(cluster.bootstrap, topic, 20_000, range(0, 10))
    expected = latest(acked)
    assert wait_compacted(cluster.bootstrap, topic, expected) == 0
    cluster.wait_for(lambda: all("log cleaner compacted a partition" in n.log_path.read_text()
                                 for n in cluster.nodes.values()), 20,
                     what="every replica to compact its copy")
    before = watermarks(cluster.bootstrap, topic)
    cluster.kill9(first)
    cluster.wait_leader(topic, 0, not_on=first)
    got = consume_all(cluster.bootstrap, topic)
    assert got == sorted((o, k, v) for k, (o, v) in expected.items())
    assert watermarks(cluster.bootstrap, topic) == before
