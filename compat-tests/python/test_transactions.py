"""Transactions (KIP-98) with confluent-kafka (librdkafka 2.16): transactional produce
across partitions of several store groups, commit and abort, what read_committed and
read_uncommitted consumers see, zombie fencing, the transaction timeout, the admin view
(`phxq txn list|describe`), and exactly-once consume-transform-produce with the processor
killed with kill -9 and the broker killed once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import PHXQ_BIN, free_port

HERE = Path(__file__).resolve().parent

# Three store groups: a topic's partitions spread over three Raft groups, so one
# transaction's markers go to several of them. Timed-out transactions are looked for
# every 200 ms; producers may not ask for more than 60 s.
TXN_TOML = """
store_groups = 3
[transactions]
abort_check_interval_ms = 200
max_timeout_ms = 60000
"""


@pytest.fixture
def txn_broker(broker_factory, tmp_path):
    cfg = tmp_path / "txn.toml"
    metrics_port = free_port()
    cfg.write_text(f'metrics_listen = "127.0.0.1:{metrics_port}"\n' + TXN_TOML)
    broker = broker_factory("--config", str(cfg))
    broker.metrics_port = metrics_port
    return broker


def create(bootstrap: str, topic: str, partitions: int):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def txn_producer(bootstrap: str, txn_id: str, **conf) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5, **conf})
    p.init_transactions(30)
    return p


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str, timeout: float = 20.0):
    """Every record of `topic` a consumer with `isolation` reads from the start, until it
    reaches the end of each partition: {partition: [(offset, value)]}."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{isolation}-{time.monotonic_ns()}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(eof) < partitions:
            assert time.monotonic() < deadline, f"{isolation} read did not reach the end: eof={eof}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                eof.add(m.partition())
                continue
            eof.discard(m.partition())
            got[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return got


def values(got) -> list[bytes]:
    return [v for recs in got.values() for _, v in recs]


def phxq(*args: str) -> str:
    r = subprocess.run([PHXQ_BIN, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def describe(bootstrap: str, txn_id: str) -> dict:
    return json.loads(phxq("txn", "--bootstrap-server", bootstrap, "describe", txn_id, "--json"))


def wait_for(what: str, check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_commit_and_abort_across_store_groups(txn_broker, topic):
    b = txn_broker.bootstrap
    create(b, topic, 6)
    p = txn_producer(b, "tx-commit-abort")
    for round_, commit in enumerate([True, False, True]):
        p.begin_transaction()
        for i in range(60):
            p.produce(topic, value=f"r{round_}-{i}".encode(), partition=i % 6)
        if commit:
            p.commit_transaction(30)
        else:
            assert p.flush(30) == 0  # the aborted records reach the log
            p.abort_transaction(30)
    committed = read_all(b, topic, 6, "read_committed")
    uncommitted = read_all(b, topic, 6, "read_uncommitted")
    want = {f"r{r}-{i}".encode() for r in (0, 2) for i in range(60)}
    assert sorted(values(committed)) == sorted(want)
    assert sorted(values(uncommitted)) == sorted(want | {f"r1-{i}".encode() for i in range(60)})
    for part, recs in committed.items():
        # In order per partition, each record once; markers take offsets but are never
        # given to the application.
        assert [v for _, v in recs] == [f"r{r}-{i}".encode() for r in (0, 2) for i in range(part, 60, 6)]
        offsets = [o for o, _ in uncommitted[part]]
        assert offsets == sorted(set(offsets))
        # 10 records per transaction and one marker after each: the last committed record
        # of round 2 sits at 10 + 1 + 10 + 1 + 9.
        assert offsets[-1] == 31
    assert describe(b, "tx-commit-abort")["state"] == "CompleteCommit"


def test_read_committed_waits_for_the_decision(txn_broker, topic):
    b = txn_broker.bootstrap
    create(b, topic, 3)
    p = txn_producer(b, "tx-open")
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 3)
    assert p.flush(30) == 0
    d = describe(b, "tx-open")
    assert d["state"] == "Ongoing"
    assert sorted(d["partitions"]) == [f"{topic}-{i}" for i in range(3)]
    listed = json.loads(phxq("txn", "--bootstrap-server", b, "list", "--state", "Ongoing", "--json"))
    assert [t["transactional_id"] for t in listed["transactions"]] == ["tx-open"]
    # ListTransactions v2 (KIP-1152): the whole id must match the pattern.
    by_pattern = json.loads(phxq("txn", "--bootstrap-server", b, "list", "--pattern", "tx-o.*", "--json"))
    assert [t["transactional_id"] for t in by_pattern["transactions"]] == ["tx-open"]
    assert json.loads(phxq("txn", "--bootstrap-server", b, "list", "--pattern", "tx", "--json"))["transactions"] == []
    bad = subprocess.run([PHXQ_BIN, "txn", "--bootstrap-server", b, "list", "--pattern", "("],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "INVALID_REGULAR_EXPRESSION" in bad.stderr, bad.stderr
    # Open: read_uncommitted sees the records, read_committed stops before them.
    assert len(values(read_all(b, topic, 3, "read_uncommitted"))) == 30
    assert values(read_all(b, topic, 3, "read_committed")) == []
    p.commit_transaction(30)
    assert sorted(values(read_all(b, topic, 3, "read_committed"))) == sorted(f"v{i}".encode() for i in range(30))
    wait_for("CompleteCommit", lambda: describe(b, "tx-open")["state"] == "CompleteCommit")


def test_a_zombie_producer_is_fenced(txn_broker, topic):
    b = txn_broker.bootstrap
    create(b, topic, 2)
    zombie = txn_producer(b, "tx-zombie")
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie", partition=0)
    assert zombie.flush(30) == 0
    # A new instance with the same transactional id fences the old one and aborts its
    # open transaction.
    fresh = txn_producer(b, "tx-zombie")
    with pytest.raises(KafkaException) as e:
        zombie.produce(topic, value=b"zombie-2", partition=1)
        zombie.commit_transaction(30)
    assert e.value.args[0].fatal() or e.value.args[0].txn_requires_abort(), e.value
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh", partition=1)
    fresh.commit_transaction(30)
    assert values(read_all(b, topic, 2, "read_committed")) == [b"fresh"]
    assert b"zombie" in values(read_all(b, topic, 2, "read_uncommitted"))


def test_timeout_aborts_and_fences(txn_broker, topic):
    b = txn_broker.bootstrap
    create(b, topic, 2)
    p = txn_producer(b, "tx-slow", **{"transaction.timeout.ms": 1500})
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"late{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    wait_for("the coordinator to abort", lambda: describe(b, "tx-slow")["state"] == "CompleteAbort")
    with pytest.raises(KafkaException):
        p.commit_transaction(30)
    assert values(read_all(b, topic, 2, "read_committed")) == []
    assert len(values(read_all(b, topic, 2, "read_uncommitted"))) == 10
    metrics_line = [line for line in phxq_metrics(txn_broker) if line.startswith("phxq_transactions_timed_out_total")]
    assert metrics_line and float(metrics_line[0].split()[-1]) >= 1


def phxq_metrics(broker) -> list[str]:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=5) as r:
        return r.read().decode().splitlines()


def test_a_timeout_above_the_broker_max_is_refused(txn_broker):
    p = Producer({"bootstrap.servers": txn_broker.bootstrap, "transactional.id": "tx-long",
                  "transaction.timeout.ms": 120000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(30)
    assert e.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, e.value


def committed_total(admin: AdminClient, group: str, topic: str, partitions: int) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])]
    try:
        res = admin.list_consumer_group_offsets(req)[group].result(10)
    except (KafkaException, TimeoutError):
        # The group's coordinator is being killed or replaced: ask again next time.
        return -1
    return sum(max(tp.offset, 0) for tp in res.topic_partitions)


def produce_input(bootstrap: str, topic: str, n: int, partitions: int):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(n):
        p.produce(topic, value=f"rec{i:06d}".encode(), partition=i % partitions)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def run_processor(bootstrap: str, source: str, sink: str, group: str, n: int, partitions: int,
                  events: list[tuple[float, object]], timeout: float = 240) -> int:
    """Runs eos_processor.py until `group` has committed all `n` input records, starting it
    again whenever it dies; each event `(fraction, action)` runs once that fraction of
    the input is committed (action "kill" kills the processor with kill -9, a callable is
    called). Returns how many times the processor was started again."""
    def start():
        return subprocess.Popen([sys.executable, str(HERE / "eos_processor.py"), bootstrap, source, sink, group,
                                 f"{group}-txn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    proc = start()
    events = sorted(events, key=lambda e: e[0])
    restarts = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = committed_total(admin, group, source, partitions)
            assert time.monotonic() < deadline, f"processing did not finish: {done}/{n}"
            if done >= n:
                break
            if events and done >= events[0][0] * n:
                _, action = events.pop(0)
                if action == "kill":
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                else:
                    action()
                    admin = AdminClient({"bootstrap.servers": bootstrap})
            if proc.poll() is not None:
                restarts += 1
                proc = start()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not events, f"events left when processing finished: {events}"
    return restarts


def assert_exactly_once(bootstrap: str, sink: str, partitions: int, n: int):
    out = read_all(bootstrap, sink, partitions, "read_committed", timeout=60)
    seen: dict[bytes, int] = {}
    for recs in out.values():
        for _, v in recs:
            seen[v] = seen.get(v, 0) + 1
    dupes = {k: c for k, c in seen.items() if c > 1}
    assert not dupes, f"{len(dupes)} inputs written more than once, e.g. {list(dupes.items())[:5]}"
    missing = {f"REC{i:06d}".encode() for i in range(n)} - set(seen)
    assert not missing, f"{len(missing)} inputs missing, e.g. {sorted(missing)[:5]}"
    assert len(seen) == n


def test_exactly_once_processor_killed_and_broker_killed(txn_broker, topic):
    """100 k input records; the processor is killed with kill -9 three times and the
    broker once while it runs; the output under read_committed holds each input exactly
    once and the group's offsets cover the whole input."""
    b = txn_broker.bootstrap
    source, sink, parts, n = f"{topic}-in", f"{topic}-out", 6, 100_000
    create(b, source, parts)
    create(b, sink, parts)
    produce_input(b, source, n, parts)

    def restart_broker():
        txn_broker.kill9()
        txn_broker.start()

    restarts = run_processor(b, source, sink, "eos-group", n, parts,
                             [(0.1, "kill"), (0.25, "kill"), (0.4, "kill"), (0.6, restart_broker)])
    assert restarts >= 3
    assert_exactly_once(b, sink, parts, n)


@pytest.mark.parametrize("cluster", [TXN_TOML.replace("store_groups = 3\n", "")], indirect=True)
def test_exactly_once_with_the_coordinator_killed_in_a_cluster(cluster, topic):
    """Three nodes; 30 k input records; the node coordinating the processor's
    transactional id (and its group) is killed with kill -9 mid-way: the output under
    read_committed holds each input exactly once, also read through that node once it is
    back."""
    source, sink, parts, n = f"{topic}-in", f"{topic}-out", 6, 30_000
    cluster.create_topic(source, parts)
    cluster.create_topic(sink, parts)
    b = cluster.bootstrap
    produce_input(b, source, n, parts)
    group = "eos-cluster"
    killed = []

    def kill_coordinator():
        # The transactional id and the group live in store groups chosen by the same hash.
        victim = cluster.coordinator(f"{group}-txn")
        assert victim is not None
        cluster.kill9(victim)
        killed.append(victim)

    run_processor(b, source, sink, group, n, parts, [(0.3, kill_coordinator)])
    assert killed
    assert_exactly_once(b, sink, parts, n)
    # The killed node comes back and catches up; the output reads the same through it.
    cluster.start(*killed)
    cluster.wait_for(lambda: cluster.caught_up(), 60, what="the restarted node to catch up")
    assert_exactly_once(cluster.nodes[killed[0]].bootstrap, sink, parts, n)
