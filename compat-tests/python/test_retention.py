"""Retention by time and size (retention.ms, retention.bytes, segment.bytes) with real
clients: old segments go (ListOffsets earliest moves, the segment files shrink), consumers
that were below the new log start restart there through auto.offset.reset, a config
altered on a live topic takes effect, and in a three-node cluster every replica drops the
same records, also one that was down while they went.

The brokers check every 300 ms (log.retention.check.interval.ms) and roll their segment
files at 64 KiB (log.segment.bytes); topics use 16 KiB segments. Records are produced one
per request (batch.num.messages=1), so that there are enough Raft log entries for the log
to be purged past the dropped batches (every 512 entries): only then no row refers to
their segment files any more."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from phxq_clients import (
    Rec, confluent_consume, confluent_consumer, confluent_produce, kafka_python_consume, now_ms,
)
from phxq_wire import wait_for

SEGMENT_FILE_BYTES = 65536
CHECK_MS = 300
ARGS = ("--log-segment-bytes", str(SEGMENT_FILE_BYTES), "--log-retention-check-interval-ms", str(CHECK_MS))
LOG_TOML = f"[log]\nsegment_bytes = {SEGMENT_FILE_BYTES}\nretention_check_interval_ms = {CHECK_MS}\n"
# A record of 1000 bytes is a batch of ~1070 bytes: 15 batches to a 16 KiB segment.
VALUE = 1000
SEGMENT = 16384
PER_SEGMENT = SEGMENT // (VALUE + 60) + 1
ONE_PER_REQUEST = {"linger.ms": 0, "batch.num.messages": 1}
HOUR_MS = 3_600_000


def admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def create(bootstrap: str, topic: str, configs: dict[str, str]):
    from confluent_kafka.admin import NewTopic
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, 1, -1, config=configs)])[topic].result(timeout=30)


def records(first: int, n: int, ts: int) -> list[Rec]:
    return [Rec(0, -1, None, f"{i:06d}".encode().ljust(VALUE, b"."), (), ts + i) for i in range(first, first + n)]


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    """(log start, log end) of partition 0 by ListOffsets earliest and latest."""
    from confluent_kafka import TopicPartition
    c = confluent_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def log_start_above(bootstrap: str, topic: str, floor: int, timeout: float = 20) -> int:
    def moved():
        try:
            low, _ = watermarks(bootstrap, topic)
        except Exception:  # a leader moving: ask again
            return None
        return low if low > floor else None
    return wait_for(moved, timeout, interval=0.2, what=f"the log start of {topic} to pass {floor}")


def segment_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in (data_dir / "segments").glob("*.seg"))


def shrinks(data_dir: Path, stored: int, freed: int, timeout: float = 30) -> int:
    """Waits until the node's segment files, which received `stored` record bytes, hold
    `freed` bytes less (the node's collector looks every 10 s); returns their size."""
    return wait_for(lambda: (lambda n: n if n <= stored - freed else None)(segment_bytes(data_dir)),
                    timeout, interval=0.2,
                    what=f"{data_dir}/segments to shrink by {freed} bytes from the {stored} stored")


def stored(recs: list[Rec]) -> int:
    """Bytes at least stored for records sent one per batch (61 bytes of batch header)."""
    return sum(61 + len(r.value) for r in recs)


def describe(bootstrap: str, topic: str) -> dict:
    from confluent_kafka.admin import ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(bootstrap)  # kept until the result is in: a destroyed client fails it
    return a.describe_configs([res])[res].result(timeout=10)


def test_time_retention_drops_old_segments_and_consumers_restart_at_the_new_start(broker_factory, topic):
    """Records an hour old, then fresh ones, on a topic with retention.ms of a minute:
    the old records' segments go, the one holding fresh records stays; ListOffsets
    earliest (confluent-kafka and kafka-python) moves to the new start and the segment
    files shrink; consumers asking for offset 0 get OFFSET_OUT_OF_RANGE, and restart at
    the new start with auto.offset.reset=earliest or report it with 'error'."""
    from confluent_kafka import KafkaError, TopicPartition
    from kafka import KafkaConsumer, TopicPartition as KTP
    b = broker_factory(*ARGS)
    create(b.bootstrap, topic, {"retention.ms": "60000", "segment.bytes": str(SEGMENT)})
    old, fresh = 450, 150
    sent = records(0, old, now_ms() - HOUR_MS) + records(old, fresh, now_ms())
    confluent_produce(b.bootstrap, topic, sent, **ONE_PER_REQUEST)

    # A check may run while the records are still coming and cut only part of the old
    # ones: wait for the cut of all of them.
    low = log_start_above(b.bootstrap, topic, old - PER_SEGMENT - 1)
    # Whole segments: every old record's segment but one that also holds fresh records.
    assert old - PER_SEGMENT <= low <= old, (low, PER_SEGMENT)
    time.sleep(5 * CHECK_MS / 1000)
    assert watermarks(b.bootstrap, topic) == (low, old + fresh), "fresh records must stay"
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None)
    try:
        assert kc.beginning_offsets([KTP(topic, 0)]) == {KTP(topic, 0): low}
    finally:
        kc.close()
    # The dropped batches' segment files are deleted: at least 4 of the ~6 they filled.
    shrinks(b.data_dir, stored(sent), 4 * SEGMENT_FILE_BYTES)

    want = [r.value for r in sent[low:]]
    got = confluent_consume(b.bootstrap, topic, start=0, **{"auto.offset.reset": "earliest"})
    assert [r.offset for r in got] == list(range(low, old + fresh))
    assert [r.value for r in got] == want
    got = kafka_python_consume(b.bootstrap, topic, start=0, auto_offset_reset="earliest")
    assert [r.offset for r in got] == list(range(low, old + fresh))
    assert [r.value for r in got] == want

    c = confluent_consumer(b.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "no out-of-range error for offset 0"
            m = c.poll(0.2)
            if m is not None and m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
                assert m.error().code() == KafkaError._AUTO_OFFSET_RESET, m.error()
                break
            assert m is None or m.error() is not None, f"record at {m.offset()} below the log start"
    finally:
        c.close()


def test_retention_bytes_and_retention_ms_altered_on_a_live_topic(broker_factory, topic):
    """A topic keeps everything until IncrementalAlterConfigs (confluent-kafka) sets
    retention.bytes: then it keeps the newest segments that hold at least that many
    bytes. DescribeConfigs shows each config's source, and the broker's log.* defaults.
    AlterConfigs (kafka-python) of
    retention.ms to one second drops every segment, the active one included; out-of-range
    values are INVALID_CONFIG."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient
    b = broker_factory(*ARGS)
    create(b.bootstrap, topic, {"segment.bytes": str(SEGMENT)})
    n = 300
    confluent_produce(b.bootstrap, topic, records(0, n, now_ms()), **ONE_PER_REQUEST)
    cfg = describe(b.bootstrap, topic)
    assert cfg["retention.ms"].value == str(7 * 24 * HOUR_MS)
    assert cfg["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert cfg["retention.bytes"].value == "-1"
    assert cfg["segment.bytes"].value == str(SEGMENT)
    assert cfg["segment.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    time.sleep(5 * CHECK_MS / 1000)
    assert watermarks(b.bootstrap, topic) == (0, n), "nothing is past the default retention"

    a = admin(b.bootstrap)
    bres = ConfigResource(ResourceType.BROKER, "1")
    bcfg = a.describe_configs([bres])[bres].result(timeout=10)
    assert bcfg["log.retention.hours"].value == "168"
    assert bcfg["log.retention.minutes"].value is None
    assert bcfg["log.retention.ms"].value == str(7 * 24 * HOUR_MS)
    assert bcfg["log.retention.bytes"].value == "-1"
    assert bcfg["log.segment.bytes"].value == str(SEGMENT_FILE_BYTES)
    assert bcfg["log.retention.check.interval.ms"].value == str(CHECK_MS)

    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "100000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=10)
    low = log_start_above(b.bootstrap, topic, 0)
    kept = n - low
    # At least 100000 bytes stay (94 batches of ~1070), and not a whole segment more.
    assert 100000 // (VALUE + 70) <= kept <= 100000 // VALUE + PER_SEGMENT, kept
    cfg = describe(b.bootstrap, topic)
    assert cfg["retention.bytes"].value == "100000"
    assert cfg["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "-7", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(timeout=10)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value

    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        # AlterConfigs (not the incremental API kafka-python 3 prefers), which the client
        # fills with the topic's other dynamic configs, since omitted ones are reset.
        ka.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000"})],
                         incremental=False)
    finally:
        ka.close()
    wait_for(lambda: watermarks(b.bootstrap, topic) == (n, n), 20, interval=0.2,
             what="every segment to expire")
    cfg = describe(b.bootstrap, topic)
    assert cfg["retention.ms"].value == "1000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.bytes"].value == "100000"


@pytest.mark.parametrize("cluster", [LOG_TOML], indirect=True, ids=["small-segments"])
def test_cluster_replicas_drop_the_same_records_and_a_node_down_meanwhile_catches_up(cluster, topic):
    """Three nodes, the partition's leader stopped: the new leader applies retention and
    every replica frees the segment files; the stopped node, restarted, catches up past
    the retention boundary, takes its leadership back and answers ListOffsets earliest
    with the same log start; a consumer from 0 restarts there."""
    # Store group g's preferred leader is node g: once every group is led from there, a
    # leader stopped and restarted gets its groups back when it has caught up.
    cluster.wait_for(lambda: all(cluster.group_leaders().get(g) == g for g in (1, 2, 3)), 30,
                     what="every store group led by its preferred leader")
    create(cluster.bootstrap, topic, {"retention.ms": "60000", "segment.bytes": str(SEGMENT)})
    first = cluster.wait_leader(topic, 0)
    cluster.nodes[first].stop()
    old, fresh = 600, 100
    sent = records(0, old, now_ms() - HOUR_MS) + records(old, fresh, now_ms())
    confluent_produce(cluster.bootstrap, topic, sent, **ONE_PER_REQUEST)
    low = log_start_above(cluster.bootstrap, topic, old - PER_SEGMENT - 1)  # all old ones cut
    assert old - PER_SEGMENT <= low <= old, (low, PER_SEGMENT)
    up = [n for n in cluster.nodes.values() if n.node_id != first]
    for n in up:
        shrinks(n.data_dir, stored(sent), 4 * SEGMENT_FILE_BYTES)

    cluster.start(first)
    cluster.wait_for(cluster.caught_up, 30, what="the restarted node to catch up")
    # It held none of the dropped records; it has what the others kept, no more.
    kept = max(segment_bytes(n.data_dir) for n in up)
    restarted = cluster.nodes[first]
    cluster.wait_for(lambda: segment_bytes(restarted.data_dir) <= kept + 2 * SEGMENT_FILE_BYTES, 30,
                     what="the restarted node to hold only what the others keep")
    # The preferred leader gets its partitions back once caught up: now it answers.
    cluster.wait_for(lambda: cluster.leader(topic, 0) == first, 30, what=f"node {first} to lead again")
    assert watermarks(restarted.bootstrap, topic) == (low, old + fresh)
    got = confluent_consume(cluster.bootstrap, topic, start=0, **{"auto.offset.reset": "earliest"})
    assert [r.offset for r in got] == list(range(low, old + fresh))
    assert [r.value for r in got] == [r.value for r in sent[low:]]
