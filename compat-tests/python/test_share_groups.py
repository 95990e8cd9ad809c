"""Share groups (KIP-932, "queues for Kafka") with confluent-kafka's ShareConsumer
(librdkafka 2.16): records are acquired by one member at a time, acknowledged one by one
(ACCEPT, RELEASE, REJECT), redelivered when released or when their holder dies, archived
after the delivery-count limit, and what was accepted survives kill -9 of the broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import AcknowledgeType, Consumer, KafkaError, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from conftest import PHXQ_BIN

# Short locks so that expiry can be seen in a test (Kafka's bounds allow 1000 ms upwards).
SHARE_TOML = """
[groups.share]
min_record_lock_duration_ms = 1000
record_lock_duration_ms = 4000
"""


@pytest.fixture
def share_broker(broker_factory, tmp_path):
    cfg = tmp_path / "share.toml"
    cfg.write_text(SHARE_TOML)
    return broker_factory("--config", str(cfg))


def create(bootstrap: str, topic: str, partitions: int = 1):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def group_configs(bootstrap: str, group: str, **configs: str):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource("GROUP", group, incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET)
        for k, v in configs.items()])
    a.incremental_alter_configs([res])[res].result(30)


def produce(bootstrap: str, topic: str, n: int, start: int = 0, partitions: int = 1, each_flushed: bool = False):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0 if each_flushed else 5})
    for i in range(start, start + n):
        p.produce(topic, value=f"v{i}".encode(), partition=i % partitions)
        if each_flushed:
            p.flush(10)
    assert p.flush(30) == 0


def share_consumer(bootstrap: str, group: str, topic: str, **conf) -> ShareConsumer:
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})
    c.subscribe([topic])
    return c


def drain(c: ShareConsumer, until, timeout: float = 30.0, on_message=None) -> list:
    """Polls until `until(messages)`; returns every message seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"timed out with {len(seen)} messages: {[m.offset() for m in seen]}"
        for m in c.poll(0.5):
            assert m.error() is None, m.error()
            seen.append(m)
            if on_message:
                on_message(m)
    return seen


def test_three_share_consumers_split_one_partition_each_record_once(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "split", share_auto_offset_reset="earliest")
    total = 300
    got: dict[str, list[int]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def run(name: str):
        c = share_consumer(bs, "split", topic)
        mine = got.setdefault(name, [])
        try:
            while not stop.is_set():
                for m in c.poll(0.3):
                    assert m.error() is None, m.error()
                    with lock:
                        mine.append(m.offset())
                    time.sleep(0.002)  # some work per record
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(f"c{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)  # all three have joined
    produce(bs, topic, total, each_flushed=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            n = sum(len(v) for v in got.values())
        if n >= total:
            break
        time.sleep(0.2)
    time.sleep(1)  # anything delivered twice would show up now
    stop.set()
    for t in threads:
        t.join(30)
    counts = Counter(o for v in got.values() for o in v)
    assert sorted(counts) == list(range(total)), f"missing: {set(range(total)) - set(counts)}"
    assert all(n == 1 for n in counts.values()), f"delivered twice: {[o for o, n in counts.items() if n > 1]}"
    busy = [name for name, v in got.items() if v]
    assert len(busy) >= 2, f"one consumer took everything: { {k: len(v) for k, v in got.items()} }"


def test_release_redelivers_and_reject_archives(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "explicit", share_auto_offset_reset="earliest")
    produce(bs, topic, 10)
    c = share_consumer(bs, "explicit", topic, **{"share.acknowledgement.mode": "explicit"})
    first = drain(c, lambda s: len(s) >= 10)
    assert [m.offset() for m in first] == list(range(10))
    assert all(m.delivery_count() == 1 for m in first)
    for m in first:
        kind = {3: AcknowledgeType.RELEASE, 4: AcknowledgeType.REJECT}.get(m.offset(), AcknowledgeType.ACCEPT)
        c.acknowledge(m, kind)
    c.commit_sync()
    again = drain(c, lambda s: len(s) >= 1, timeout=20)
    assert [(m.offset(), m.delivery_count()) for m in again] == [(3, 2)], "only the released record comes back, delivered twice"
    for m in again:
        c.acknowledge(m, AcknowledgeType.ACCEPT)
    c.commit_sync()
    # Nothing else comes: 4 was rejected (archived), the rest accepted.
    later = [m for m in c.poll(2.0) if m.error() is None]
    assert later == [], [m.offset() for m in later]
    c.close()


def test_delivery_count_limit_archives_a_poison_record(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "poison", share_auto_offset_reset="earliest", share_delivery_count_limit="2")
    produce(bs, topic, 5)
    c = share_consumer(bs, "poison", topic, **{"share.acknowledgement.mode": "explicit"})
    deliveries = Counter()
    accepted = set()
    deadline = time.monotonic() + 30
    while len(accepted) < 4 and time.monotonic() < deadline:
        for m in c.poll(0.5):
            assert m.error() is None
            deliveries[m.offset()] += 1
            if m.offset() == 2:
                c.acknowledge(m, AcknowledgeType.RELEASE)  # the consumer fails on it, every time
            else:
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                accepted.add(m.offset())
        c.commit_sync()
    # After the limit the record is archived: it never comes back.
    for _ in range(4):
        for m in c.poll(0.5):
            deliveries[m.offset()] += 1
            c.acknowledge(m, AcknowledgeType.ACCEPT)
    c.close()
    assert accepted == {0, 1, 3, 4}
    assert deliveries[2] == 2, deliveries


CHILD = r"""
import json, sys, time
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit"})
c.subscribe([sys.argv[3]])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    ms = [m for m in c.poll(0.5) if m.error() is None]
    if ms:
        print(json.dumps([m.offset() for m in ms]), flush=True)
        time.sleep(600)  # holds them, never acknowledges
"""


def test_consumer_killed_holding_records_they_go_to_the_others(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "crash", share_auto_offset_reset="earliest")
    produce(bs, topic, 20)
    child = subprocess.Popen([sys.executable, "-c", CHILD, bs, "crash", topic], stdout=subprocess.PIPE, text=True)
    try:
        held = json.loads(child.stdout.readline())
        assert held, "the doomed consumer got records"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    c = share_consumer(bs, "crash", topic)
    got = drain(c, lambda s: len({m.offset() for m in s}) >= 20)
    c.close()
    assert sorted({m.offset() for m in got}) == list(range(20))
    redelivered = {m.offset(): m.delivery_count() for m in got if m.offset() in held}
    assert redelivered == {o: 2 for o in held}, "what the dead consumer held comes back, second delivery"


def test_stuck_consumer_loses_its_records_when_the_lock_expires(share_broker, topic):
    """A consumer that hangs (SIGSTOP: its connection stays open, it never acknowledges)
    keeps its records only for the lock duration (4 s here); then they go to the others."""
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "stuck", share_auto_offset_reset="earliest")
    produce(bs, topic, 20)
    child = subprocess.Popen([sys.executable, "-c", CHILD, bs, "stuck", topic], stdout=subprocess.PIPE, text=True)
    try:
        held = json.loads(child.stdout.readline())
        child.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        c = share_consumer(bs, "stuck", topic)
        got = drain(c, lambda s: len({m.offset() for m in s}) >= 20)
        waited = time.monotonic() - stopped
        c.close()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert sorted({m.offset() for m in got}) == list(range(20))
    assert {m.offset(): m.delivery_count() for m in got if m.offset() in held} == {o: 2 for o in held}
    assert waited >= 3.0, f"the held records came back after {waited:.1f}s, before their 4 s lock expired"


def test_broker_kill9_keeps_acknowledgements_and_loses_nothing(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "durable", share_auto_offset_reset="earliest")
    produce(bs, topic, 100)
    c = share_consumer(bs, "durable", topic, **{"share.acknowledgement.mode": "explicit"})
    first = drain(c, lambda s: len(s) >= 1)
    accepted = set()
    for m in first:
        c.acknowledge(m, AcknowledgeType.ACCEPT)
        accepted.add(m.offset())
    c.commit_sync()  # answered: durable
    share_broker.kill9()
    share_broker.start()
    c2 = share_consumer(bs, "durable", topic)
    rest = drain(c2, lambda s: len(accepted | {m.offset() for m in s}) >= 100, timeout=60)
    c2.close()
    try:
        c.close()
    except Exception:
        pass
    again = {m.offset() for m in rest} & accepted
    assert not again, f"accepted before the crash, delivered again: {sorted(again)}"
    assert accepted | {m.offset() for m in rest} == set(range(100))


def test_share_group_and_classic_group_on_the_same_topic(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic, partitions=2)
    group_configs(bs, "q", share_auto_offset_reset="earliest")
    produce(bs, topic, 40, partitions=2)
    sc = share_consumer(bs, "q", topic)
    shared = drain(sc, lambda s: len(s) >= 40)
    sc.close()
    assert sorted((m.partition(), m.offset()) for m in shared) == sorted((i % 2, i // 2) for i in range(40))
    cc = Consumer({"bootstrap.servers": bs, "group.id": "classic", "auto.offset.reset": "earliest"})
    cc.subscribe([topic])
    classic = []
    deadline = time.monotonic() + 30
    while len(classic) < 40 and time.monotonic() < deadline:
        m = cc.poll(0.5)
        if m is not None and m.error() is None:
            classic.append((m.partition(), m.offset()))
    cc.close()
    assert sorted(classic) == sorted((i % 2, i // 2) for i in range(40))
    # And a KIP-848 consumer group on the same topic.
    kc = Consumer({"bootstrap.servers": bs, "group.id": "kip848", "group.protocol": "consumer",
                   "auto.offset.reset": "earliest"})
    kc.subscribe([topic])
    modern = []
    deadline = time.monotonic() + 30
    while len(modern) < 40 and time.monotonic() < deadline:
        m = kc.poll(0.5)
        if m is not None and m.error() is None:
            modern.append((m.partition(), m.offset()))
    kc.close()
    assert sorted(modern) == sorted((i % 2, i // 2) for i in range(40))
    # ListGroups shows each group with its type; Kafka's AdminClient lists only consumer
    # and classic groups, so `phxq group list` is asked.
    out = subprocess.run([PHXQ_BIN, "group", "list", "--bootstrap", bs], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:] if line.strip()}
    assert rows["q"][:2] == ["share", "Empty"], rows
    assert rows["classic"][0] == "classic", rows
    # The types stay apart: a classic consumer cannot join the share group.
    cq = Consumer({"bootstrap.servers": bs, "group.id": "q", "auto.offset.reset": "earliest"})
    cq.subscribe([topic])
    err = None
    deadline = time.monotonic() + 20
    while err is None and time.monotonic() < deadline:
        m = cq.poll(0.5)
        if m is not None and m.error() is not None:
            err = m.error()
    cq.close()
    assert err is not None and err.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL, err


@pytest.mark.parametrize("cluster", [SHARE_TOML], indirect=True, ids=["short-locks"])
def test_partition_leader_kill9_in_a_cluster_loses_no_acknowledgement(cluster, topic):
    """Share-partition state fails over with the partition: kill -9 of its leader in the
    middle of consumption; what was acknowledged (commit_sync answered without error) is
    never delivered again, and every record is accepted in the end."""
    bs = cluster.bootstrap
    cluster.create_topic(topic, 1)
    wait_ok = time.monotonic() + 30
    while True:
        try:
            group_configs(bs, "failover", share_auto_offset_reset="earliest")
            break
        except Exception:
            assert time.monotonic() < wait_ok
            time.sleep(0.5)
    total = 300
    produce(bs, topic, total, each_flushed=True)
    c = share_consumer(bs, "failover", topic, **{"share.acknowledgement.mode": "explicit", "max.poll.records": 10})
    confirmed: dict[int, int] = {}  # offset -> delivery number at which its ACCEPT was confirmed
    after_confirm: list[int] = []  # offsets delivered again after a confirmed ACCEPT
    seen: set[int] = set()
    deliveries = 0
    killed = None
    deadline = time.monotonic() + 90
    while len(confirmed) < total and time.monotonic() < deadline:
        batch = [m for m in c.poll(0.5) if m.error() is None]
        for m in batch:
            deliveries += 1
            seen.add(m.offset())
            if m.offset() in confirmed:
                after_confirm.append(m.offset())
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        if not batch:
            continue
        try:
            ok = all(err is None for err in c.commit_sync(15).values())
        except Exception:
            ok = False
        if ok:
            for m in batch:
                confirmed.setdefault(m.offset(), deliveries)
        if killed is None and len(confirmed) >= 60:
            killed = cluster.wait_leader(topic, 0)
            confirmed_before_kill = set(confirmed)
            cluster.kill9(killed)
            cluster.wait_leader(topic, 0, not_on=killed)
    c.close()
    assert killed is not None and len(confirmed_before_kill) < total, "the leader was killed mid-consumption"
    assert seen == set(range(total)), f"never delivered: {sorted(set(range(total)) - seen)[:20]}"
    assert len(confirmed) == total, f"never accepted: {sorted(set(range(total)) - set(confirmed))[:20]}"
    assert not after_confirm, f"accepted (confirmed), then delivered again: {after_confirm[:20]}"


def phxq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PHXQ_BIN, *args], capture_output=True, text=True, timeout=60)


def test_describe_reset_and_delete_a_share_group_with_the_cli(share_broker, topic):
    """`phxq group describe|reset|delete` on a share group, through ShareGroupDescribe and
    Describe/AlterShareGroupOffsets and DeleteGroups."""
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "ops", share_auto_offset_reset="earliest")
    produce(bs, topic, 30)
    c = share_consumer(bs, "ops", topic, **{"share.acknowledgement.mode": "explicit", "max.poll.records": 10})
    got = drain(c, lambda s: len(s) >= 10)
    for m in got[:10]:
        c.acknowledge(m, AcknowledgeType.ACCEPT)
    c.commit_sync()
    # While a member runs: it is shown, and a reset is refused.
    out = phxq("group", "describe", "ops", "--bootstrap", bs)
    assert out.returncode == 0, out.stderr
    assert "share group (KIP-932), state Stable" in out.stdout, out.stdout
    rows = [l.split() for l in out.stdout.splitlines() if l.startswith(topic)]
    assert len(rows) == 1, out.stdout
    start, end = int(rows[0][2]), int(rows[0][3])
    assert (start, end) == (10, 30), out.stdout
    refused = phxq("group", "reset", "ops", "--topic", topic, "--to-earliest", "--bootstrap", bs)
    assert refused.returncode != 0 and "NON_EMPTY_GROUP" in refused.stderr, refused
    c.close()
    # Empty: reset to the start, and everything comes again (second delivery for none:
    # the state starts over).
    wait_until = time.monotonic() + 20
    while True:
        # `seek` is `reset` under rpk's name.
        r = phxq("group", "seek", "ops", "--topic", topic, "--to-earliest", "--bootstrap", bs)
        if r.returncode == 0 or time.monotonic() > wait_until:
            break
        time.sleep(0.5)  # the member's leave is seen by the coordinator
    assert r.returncode == 0, r.stderr
    c = share_consumer(bs, "ops", topic)
    again = drain(c, lambda s: len({m.offset() for m in s}) >= 30)
    c.close()
    assert sorted({m.offset() for m in again}) == list(range(30))
    assert all(m.delivery_count() == 1 for m in again)
    # Delete: the group and its share-partition state go.
    deadline = time.monotonic() + 20
    while True:
        d = phxq("group", "delete", "ops", "--bootstrap", bs)
        if d.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert d.returncode == 0, d.stderr
    listed = phxq("group", "list", "--bootstrap", bs)
    assert "ops" not in listed.stdout.split(), listed.stdout


def test_dead_letter_topic_gets_rejected_and_poison_records(share_broker, topic):
    bs = share_broker.bootstrap
    create(bs, topic, partitions=2)
    dlq = f"dlq.{topic}"
    create(bs, dlq)
    # The dead-letter topic must carry the broker's prefix ("dlq.").
    with pytest.raises(Exception) as refused:
        group_configs(bs, "dead", errors_deadletterqueue_topic_name=topic)
    assert "dlq." in str(refused.value)
    group_configs(bs, "dead", share_auto_offset_reset="earliest", share_delivery_count_limit="2",
                  errors_deadletterqueue_topic_name=dlq)
    p = Producer({"bootstrap.servers": bs})
    for i in range(6):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2,
                  headers=[("trace", f"t{i}".encode())])
    assert p.flush(30) == 0
    c = share_consumer(bs, "dead", topic, **{"share.acknowledgement.mode": "explicit"})
    done = set()
    deadline = time.monotonic() + 30
    while len(done) < 6 and time.monotonic() < deadline:
        for m in c.poll(0.5):
            assert m.error() is None
            v = m.value().decode()
            if v == "v1":
                c.acknowledge(m, AcknowledgeType.REJECT)  # partition 1, offset 0
                done.add(v)
            elif v == "v4":
                c.acknowledge(m, AcknowledgeType.RELEASE)  # poison: partition 0, offset 2
                if m.delivery_count() >= 2:
                    done.add(v)
            else:
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                done.add(v)
        c.commit_sync()
    c.close()
    assert len(done) == 6
    dead = Consumer({"bootstrap.servers": bs, "group.id": "dlq-reader", "auto.offset.reset": "earliest"})
    dead.subscribe([dlq])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 2 and time.monotonic() < deadline:
        m = dead.poll(0.5)
        if m is not None and m.error() is None:
            letters.append(m)
    dead.close()
    got = {}
    for m in letters:
        h = {k: v.decode() for k, v in m.headers()}
        got[m.value().decode()] = (m.key(), h)
    assert set(got) == {"v1", "v4"}, got
    key, h = got["v1"]
    assert key == b"k1" and h["trace"] == "t1"
    assert (h["__dlq.errors.group.id"], h["__dlq.errors.topic"], h["__dlq.errors.partition"],
            h["__dlq.errors.offset"], h["__dlq.errors.delivery.count"], h["__dlq.errors.reason"]) == (
        "dead", topic, "1", "0", "1", "rejected")
    _, h = got["v4"]
    assert (h["__dlq.errors.partition"], h["__dlq.errors.offset"], h["__dlq.errors.delivery.count"],
            h["__dlq.errors.reason"]) == ("0", "2", "2", "delivery_count_limit")


def test_dequeue_speed_limit_holds_for_a_share_group(share_broker, topic):
    """PhxQueue's per-group dequeue speed limit applies to share groups: 200 records/s
    for 800 records cannot take less than (800 - 200 burst) / 200 = 3 s."""
    bs = share_broker.bootstrap
    create(bs, topic)
    group_configs(bs, "slow", share_auto_offset_reset="earliest", phxq_consumer_records_per_sec="200")
    produce(bs, topic, 800, each_flushed=False)
    c = share_consumer(bs, "slow", topic, **{"max.poll.records": 50})
    t0 = time.monotonic()
    got = drain(c, lambda s: len({m.offset() for m in s}) >= 800, timeout=60)
    elapsed = time.monotonic() - t0
    c.close()
    assert sorted({m.offset() for m in got}) == list(range(800))
    assert elapsed >= 2.5, f"800 records at 200/s took only {elapsed:.2f} s"
