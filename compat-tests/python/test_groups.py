"""Consumer groups with real clients over TCP: three high-level consumers share a
6-partition topic, one is killed with SIGKILL and its partitions move to the others
after the session timeout, and every record is consumed at least once, none skipped,
in order per partition -- for confluent-kafka (eager and cooperative-sticky),
kafka-python, aiokafka, kafkajs and kcat -G. Consumers run as their own processes
(group_consumer.py, js/group_consumer.js, kcat)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from group_wire import GroupConn

HERE = Path(__file__).resolve().parent
JS_DIR = HERE.parent / "js"
SESSION_MS = 3000
PARTITIONS = 6


def wait_until(cond, timeout: float, what: str, interval: float = 0.05):
    """phxq_wire.wait_for with the description as the third argument."""
    from phxq_wire import wait_for
    return wait_for(cond, timeout, interval=interval, what=what)


def create_topic(bootstrap: str, topic: str, partitions: int):
    with GroupConn.to(bootstrap) as c:
        res = c.create_topics_v2([(topic, partitions)])
    assert res[topic][0] == 0, res


def produce(bootstrap: str, topic: str, partitions: int, start: int, count: int):
    """`count` records per partition, value "v<p>-<offset>" (this producer is the topic's
    only writer, so it knows the offsets)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                  "enable.idempotence": True})
    errors = []
    for o in range(start, start + count):
        for part in range(partitions):
            p.produce(topic, value=f"v{part}-{o}".encode(), partition=part,
                      on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors


class Member:
    """A consumer process and what it printed: its assignment over time and its records."""

    def __init__(self, kind: str, bootstrap: str, topic: str, group: str, assignor: str, log_dir: Path,
                 extra: tuple[str, ...] = ()):
        self.kind = kind
        self.topic = topic
        if kind == "kafkajs":
            cmd = ["node", str(JS_DIR / "group_consumer.js"), bootstrap, topic, group, str(SESSION_MS)]
        elif kind == "kcat":
            cmd = ["kcat", "-b", bootstrap, "-G", group, topic, "-J", "-u",
                   "-X", f"session.timeout.ms={SESSION_MS}", "-X", "heartbeat.interval.ms=500",
                   "-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=200",
                   "-X", f"partition.assignment.strategy={assignor}"]
        else:
            cmd = [sys.executable, str(HERE / "group_consumer.py"), kind, bootstrap, topic, group,
                   "--assignor", assignor, "--session-ms", str(SESSION_MS), *extra]
        self.lock = threading.Lock()
        self.assigned: list[tuple[float, list[int]]] = []
        self.msgs: list[tuple[int, int, str]] = []
        self.commit_errors: list[str] = []
        self.stderr_path = log_dir / f"{kind}-{id(self)}.stderr"
        self.stderr_tail: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.threads = [threading.Thread(target=self._stdout, daemon=True),
                        threading.Thread(target=self._stderr, daemon=True)]
        for t in self.threads:
            t.start()

    def _stdout(self):
        for line in self.proc.stdout:
            line = line.decode(errors="replace").strip()
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            with self.lock:
                if self.kind == "kcat":
                    self.msgs.append((j["partition"], j["offset"], j["payload"]))
                elif j["ev"] == "msg":
                    self.msgs.append((j["p"], j["o"], j["v"]))
                elif j["ev"] == "assigned":
                    self.assigned.append((time.monotonic(), j["parts"]))
                elif j["ev"] == "commit_error":
                    self.commit_errors.append(j["error"])

    def _stderr(self):
        # kcat reports rebalances on stderr: "% Group g rebalanced (memberid ..): assigned: t [0], t [3]"
        current: set[int] = set()
        with open(self.stderr_path, "w") as log:
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                self.stderr_tail = (self.stderr_tail + [line])[-30:]
                if self.kind != "kcat" or "rebalanced" not in line:
                    continue
                parts = {int(p) for p in re.findall(re.escape(self.topic) + r" \[(\d+)\]", line)}
                if "assigned:" in line:
                    current = parts
                elif "revoked:" in line:
                    current = set()
                with self.lock:
                    self.assigned.append((time.monotonic(), sorted(current)))

    def assignment(self) -> list[int] | None:
        with self.lock:
            return self.assigned[-1][1] if self.assigned else None

    def records(self) -> list[tuple[int, int, str]]:
        with self.lock:
            return list(self.msgs)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError(f"{self.kind} consumer did not stop on SIGTERM:\n{''.join(self.stderr_tail)}")
        for t in self.threads:
            t.join(5)

    def describe(self) -> str:
        return f"{self.kind} pid {self.proc.pid} assignment {self.assignment()} records {len(self.msgs)}"


def consumed(members: list[Member]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    for m in members:
        for p, o, _ in m.records():
            out[p].add(o)
    return out


def all_consumed(members: list[Member], end: int) -> bool:
    return all(offs >= set(range(end)) for offs in consumed(members).values())


def check_delivery(members: list[Member], end: int):
    """At least once, none skipped, in order: every (partition, offset) below `end` was
    received; each member's records of a partition come in increasing, gap-free runs (a
    run may start over at an earlier offset after a rebalance: redelivery); values match."""
    for m in members:
        by_p: dict[int, list[int]] = {}
        for p, o, v in m.records():
            assert v == f"v{p}-{o}", f"{m.kind}: record p{p}@{o} has value {v!r}"
            by_p.setdefault(p, []).append(o)
        for p, offs in by_p.items():
            for a, b in zip(offs, offs[1:]):
                assert b == a + 1 or b <= a, f"{m.kind}: partition {p} skipped from {a} to {b}"
    missing = {p: sorted(set(range(end)) - offs)[:10] for p, offs in consumed(members).items()
               if not offs >= set(range(end))}
    assert not missing, f"records never consumed: {missing}"


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    with GroupConn.to(bootstrap) as c:
        err, offs = c.fetch_v5(group, {topic: list(range(PARTITIONS))})
    assert err == 0
    return {p: offs[(topic, p)][0] for p in range(PARTITIONS)}


def balanced(members: list[Member], per_member: int) -> bool:
    for m in members:
        assert m.alive(), f"{m.kind} consumer exited with {m.proc.returncode}:\n{''.join(m.stderr_tail)}"
    parts = [m.assignment() for m in members]
    if any(p is None or len(p) != per_member for p in parts):
        return False
    return sorted(x for p in parts for x in p) == list(range(PARTITIONS))


def assert_lock_never_refused(broker):
    """Well-behaved clients never trip the partition lock."""
    refused = [line for line in broker.log_path.read_text(errors="replace").splitlines()
               if "commit refused" in line or "still owns it" in line]
    assert not refused, "\n".join(refused[:5])


CASES = [
    ("confluent", "range"),
    ("confluent", "roundrobin"),
    ("confluent", "cooperative-sticky"),
    ("kafka-python", "range"),
    ("aiokafka", "range"),
    ("kafkajs", "range"),
    ("kcat", "range"),
]


@pytest.mark.parametrize("kind,assignor", CASES, ids=[f"{k}-{a}" for k, a in CASES])
def test_three_consumers_share_and_take_over_after_kill9(broker, topic, tmp_path, kind, assignor):
    group = f"g-{kind}-{assignor}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PARTITIONS, 0, 20)
    members: list[Member] = []
    try:
        t0 = time.monotonic()
        members = [Member(kind, broker.bootstrap, topic, group, assignor, tmp_path) for _ in range(3)]
        wait_until(lambda: balanced(members, 2), 60,
                   "3 consumers with 2 partitions each: " + "; ".join(m.describe() for m in members))
        formed = time.monotonic() - t0
        wait_until(lambda: all_consumed(members, 20), 30, "the first 120 records")

        victim, survivors = members[2], members[:2]
        victim.kill9()
        killed = time.monotonic()
        produce(broker.bootstrap, topic, PARTITIONS, 20, 20)
        wait_until(lambda: balanced(survivors, 3), 30,
                   "the survivors taking over: " + "; ".join(m.describe() for m in survivors))
        took_over = time.monotonic() - killed
        wait_until(lambda: all_consumed(members, 40), 30, "all 240 records")
        print(f"\n[{kind}/{assignor}] group formed in {formed:.2f}s (3 processes started); "
              f"partitions of the killed consumer moved in {took_over:.2f}s "
              f"(session timeout {SESSION_MS / 1000:.1f}s)")
        assert took_over >= SESSION_MS / 1000 - 0.5, "moved before the session timeout expired"
        for m in survivors:
            m.stop()
        check_delivery(members, 40)
        if kind != "kcat":  # kcat commits in the background; the others after each batch
            assert committed(broker.bootstrap, group, topic) == {p: 40 for p in range(PARTITIONS)}
        assert_lock_never_refused(broker)
    finally:
        for m in members:
            if m.alive():
                m.kill9()
        broker.assert_alive()


def test_static_member_restart_keeps_its_partitions_without_rebalance(broker, topic, tmp_path):
    """confluent-kafka with group.instance.id: a static member killed with SIGKILL and
    restarted within its session timeout gets its partitions back and the other member
    sees no rebalance at all."""
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PARTITIONS, 0, 5)
    group = "static-confluent"
    start = lambda: Member("confluent", broker.bootstrap, topic, group, "range", tmp_path,
                           ("--instance-id", "static-1"))
    static = start()
    other = Member("confluent", broker.bootstrap, topic, group, "range", tmp_path, ("--instance-id", "static-2"))
    members = [static, other]
    try:
        wait_until(lambda: balanced(members, 3), 30, "two static members, 3 partitions each")
        wait_until(lambda: all_consumed(members, 5), 30, "the first records")
        before = static.assignment()
        events_before = len(other.assigned)
        static.kill9()
        restarted = start()
        members.append(restarted)
        wait_until(lambda: restarted.assignment() is not None, 30, "the restarted static member's assignment")
        assert restarted.assignment() == before, "a static member gets its partitions back"
        produce(broker.bootstrap, topic, PARTITIONS, 5, 5)
        wait_until(lambda: all_consumed(members, 10), 30, "records after the restart")
        assert len(other.assigned) == events_before, f"the other member was rebalanced: {other.assigned}"
        for m in (restarted, other):
            m.stop()
        check_delivery(members, 10)
    finally:
        for m in members:
            if m.alive():
                m.kill9()


@pytest.mark.parametrize("assignor", ["cooperative-sticky", "range"])
def test_members_added_one_by_one_hand_partitions_over(broker, topic, tmp_path, assignor):
    """One consumer owns all 6 partitions; two more join. With cooperative-sticky the first
    keeps two partitions throughout and gives the others up in a second round (revoke,
    then the lock lets them go); with eager range everything is revoked and reassigned.
    Either way every record is consumed and no commit trips the lock."""
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PARTITIONS, 0, 10)
    group = f"handoff-{assignor}"
    first = Member("confluent", broker.bootstrap, topic, group, assignor, tmp_path)
    members = [first]
    try:
        wait_until(lambda: balanced(members, PARTITIONS), 30, "the first consumer owning everything")
        wait_until(lambda: all_consumed(members, 10), 30, "the first records")
        t0 = time.monotonic()
        members += [Member("confluent", broker.bootstrap, topic, group, assignor, tmp_path) for _ in range(2)]
        wait_until(lambda: balanced(members, 2), 30, "2 partitions each: " + "; ".join(m.describe() for m in members))
        print(f"\n[{assignor}] 2 consumers added to 1: balanced in {time.monotonic() - t0:.2f}s")
        produce(broker.bootstrap, topic, PARTITIONS, 10, 10)
        wait_until(lambda: all_consumed(members, 20), 30, "all records")
        if assignor == "cooperative-sticky":
            kept = [parts for _, parts in first.assigned]
            assert all(len(p) >= 2 for p in kept), f"cooperative: the first consumer never lost everything: {kept}"
        for m in members:
            m.stop()
        check_delivery(members, 20)
        assert committed(broker.bootstrap, group, topic) == {p: 20 for p in range(PARTITIONS)}
        assert_lock_never_refused(broker)
    finally:
        for m in members:
            if m.alive():
                m.kill9()


def test_live_group_survives_broker_kill9(broker, topic, tmp_path):
    """The broker is killed with SIGKILL and restarted under two running consumers: they
    rejoin (the restarted coordinator knows the group's generation and offsets, not its
    members), resume from their commits and consume everything produced afterwards."""
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, PARTITIONS, 0, 10)
    group = "survivors"
    members = [Member("confluent", broker.bootstrap, topic, group, "range", tmp_path) for _ in range(2)]
    try:
        wait_until(lambda: balanced(members, 3), 30, "3 partitions each")
        wait_until(lambda: all_consumed(members, 10), 30, "the first records")
        wait_until(lambda: committed(broker.bootstrap, group, topic) == {p: 10 for p in range(PARTITIONS)},
                   10, "the first commits")
        broker.restart()
        t0 = time.monotonic()
        produce(broker.bootstrap, topic, PARTITIONS, 10, 10)
        wait_until(lambda: all_consumed(members, 20), 60, "records produced after the restart")
        print(f"\n[broker kill -9] consumers caught up {time.monotonic() - t0:.2f}s after the restart")
        wait_until(lambda: balanced(members, 3), 30, "3 partitions each again")
        for m in members:
            m.stop()
        check_delivery(members, 20)
        assert committed(broker.bootstrap, group, topic) == {p: 20 for p in range(PARTITIONS)}
    finally:
        for m in members:
            if m.alive():
                m.kill9()
