"""A three-node phxq cluster for tests, and what failover tests need around it.

``Cluster`` writes one TOML file per node with the structure of config/cluster/nodeN.toml
(node id, Kafka listener, ``[cluster]`` internal listener, replication factor and every
broker with its rack) on free ports, with ``raft_heartbeat_ms = 250`` and
``store_groups = 3``, and runs each node as a conftest ``Broker``
(``phxq serve --config FILE --data-dir DIR``) that can be killed with kill -9 and
restarted on its data dir. Leaders are read as clients read them (Metadata,
FindCoordinator) or from ``phxq cluster status --json``.

``AckingProducer`` produces from a real client (confluent-kafka) on a thread and keeps
every delivery report with its time: which records were acknowledged where, and how long
producing stalled after a kill.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from conftest import PHXQ_BIN, Broker, free_port
from group_wire import GroupConn
from phxq_wire import TOPIC_ALREADY_EXISTS, Conn, ConnectionClosed, wait_for

# (label, seconds) of every failover a test measured; listed at the end of the run.
FAILOVER_TIMES: list[tuple[str, float]] = []

HEARTBEAT_MS = 250
STORE_GROUPS = 3
SIZE = 3
# Errors a client retries while leadership moves: LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
# REQUEST_TIMED_OUT, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
# NOT_CONTROLLER.
RETRIABLE = {5, 6, 7, 14, 15, 16, 41}


def node_toml(node_id: int, kafka: dict[int, int], internal: dict[int, int],
              store_groups: int = STORE_GROUPS, heartbeat_ms: int = HEARTBEAT_MS, extra: str = "",
              metrics: dict[int, int] | None = None) -> str:
    """config/cluster/nodeN.toml with these ports (data_dir comes from --data-dir), and
    `extra` TOML tables (e.g. a ``[log]`` table) at the end."""
    lines = [
        f"# node {node_id} of a test cluster: the layout of config/cluster/node{node_id}.toml",
        f"node_id = {node_id}",
        f'listeners = ["127.0.0.1:{kafka[node_id]}"]',
        f'metrics_listen = "127.0.0.1:{metrics[node_id]}"' if metrics else 'metrics_listen = ""',
        f"store_groups = {store_groups}",
        f"raft_heartbeat_ms = {heartbeat_ms}",
        "",
        "[cluster]",
        f'internal_listener = "127.0.0.1:{internal[node_id]}"',
        "replication_factor = 3",
    ]
    for i in sorted(kafka):
        lines += ["", "[[cluster.brokers]]", f"id = {i}", f'kafka = "127.0.0.1:{kafka[i]}"',
                  f'internal = "127.0.0.1:{internal[i]}"', f'rack = "r{i}"']
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines) + "\n"


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


class ClusterNode(Broker):
    """One node: conftest.Broker started with its config file instead of flags."""

    def __init__(self, node_id: int, base: Path, kafka_port: int, config_path: Path):
        data = base / f"node{node_id}-data"
        data.mkdir(parents=True, exist_ok=True)
        super().__init__(data, [], name=f"node{node_id}")
        self.node_id = node_id
        self.port = kafka_port
        self.config_path = config_path
        self.stopped_by_test = False

    def command(self) -> list[str]:
        return [PHXQ_BIN, "serve", "--config", str(self.config_path), "--data-dir", str(self.data_dir)]

    def start(self, timeout: float = 30.0):
        self.stopped_by_test = False
        return super().start(timeout)

    def stop(self, timeout: float = 20.0):
        """SIGTERM, as an operator stops a node; it must exit cleanly."""
        if not self.alive():
            return
        self.stopped_by_test = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM:\n{self.log_tail()}")
        assert self.proc.returncode == 0, f"{self.name} exited with {self.proc.returncode} on SIGTERM:\n{self.log_tail()}"


class Cluster:
    """`extra_toml`: TOML added to every node's file, or a function of the node id giving
    each node its own (its certificate, say)."""

    def __init__(self, base: Path, size: int = SIZE, store_groups: int = STORE_GROUPS,
                 heartbeat_ms: int = HEARTBEAT_MS, extra_toml: str | Callable[[int], str] = ""):
        self.base = base
        ports = free_ports(3 * size)
        kafka = {i + 1: ports[i] for i in range(size)}
        internal = {i + 1: ports[size + i] for i in range(size)}
        self.metrics_ports = {i + 1: ports[2 * size + i] for i in range(size)}
        self.internal_ports = internal
        self.nodes: dict[int, ClusterNode] = {}
        self._leader_seen: list[str] = []  # wait_leader's last observations, for its failure
        for i in kafka:
            path = base / f"node{i}.toml"
            extra = extra_toml(i) if callable(extra_toml) else extra_toml
            path.write_text(node_toml(i, kafka, internal, store_groups, heartbeat_ms, extra,
                                      self.metrics_ports))
            self.nodes[i] = ClusterNode(i, base, kafka[i], path)

    # ------------------------------------------------------------------ processes

    @property
    def bootstrap(self) -> str:
        """What a client sets: every node's Kafka address."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def alive(self) -> list[ClusterNode]:
        return [n for n in self.nodes.values() if n.alive()]

    def start(self, *ids: int):
        """Start these nodes (default: every stopped one) together: a node's groups need
        the others to elect leaders."""
        todo = [self.nodes[i] for i in ids] if ids else [n for n in self.nodes.values() if not n.alive()]
        if todo:
            with ThreadPoolExecutor(len(todo)) as ex:
                list(ex.map(lambda n: n.start(), todo))

    def kill9(self, node_id: int) -> float:
        """kill -9 a node; returns the time (monotonic) it was dead."""
        self.nodes[node_id].kill9()
        return time.monotonic()

    def wait_for(self, cond, timeout: float, what: str, interval: float = 0.1, seen=None):
        """phxq_wire.wait_for; on a timeout the failure carries `phxq cluster status` and,
        when given, `seen()`: what the last attempts observed."""
        try:
            return wait_for(cond, timeout, interval=interval, what=what)
        except AssertionError as e:
            r = self.status_command("--timeout-ms", "1000")
            last = f"\n\nlast attempts:\n{seen()}" if seen else ""
            raise AssertionError(f"{e}{last}\n\nphxq cluster status (exit {r.returncode}):\n{r.stdout}{r.stderr}") from None

    def assert_alive(self):
        for n in self.nodes.values():
            n.assert_alive()

    # ------------------------------------------------------------------ what clients see

    def _ask(self, fn, via: int | None = None):
        """fn(conn) on node `via`, or on the first live node that answers; None if none did."""
        nodes = [self.nodes[via]] if via is not None else self.alive()
        for n in nodes:
            try:
                with GroupConn.to(n.bootstrap, timeout=10) as c:
                    return fn(c)
            except (OSError, ConnectionClosed):
                continue
        return None

    def metadata(self, topics: list[str] | None, via: int | None = None):
        """Metadata v4 (brokers, controller, {topic: (error, {partition: (error, id, leader,
        replicas, isr)})}) from node `via` or any live node."""
        return self._ask(lambda c: c.metadata_v4(topics, allow_auto_create=False), via)

    def _partition(self, topic: str, partition: int, via: int | None = None):
        md = self.metadata([topic], via)
        if md is None:
            return None
        err, parts = md[2].get(topic, (-1, {}))
        p = parts.get(partition)
        return p if err == 0 and p is not None and p[0] == 0 and p[2] >= 0 else None

    def leader(self, topic: str, partition: int) -> int | None:
        """The partition's leader, when a live node names a live leader and that leader's own
        Metadata agrees."""
        started = time.monotonic()
        p = self._partition(topic, partition)
        own = None
        if p is not None and p[2] in self.nodes and self.nodes[p[2]].alive():
            own = self._partition(topic, partition, via=p[2])
        self._leader_seen.append(f"{time.monotonic() - started:6.2f} s: any node said {p}, "
                                 f"that leader said {own}")
        del self._leader_seen[:-5]
        return p[2] if p is not None and own is not None and own[2] == p[2] else None

    def wait_leader(self, topic: str, partition: int, timeout: float = 30, not_on: int | None = None) -> int:
        self._leader_seen = []
        return self.wait_for(lambda: (lambda n: n if n is not None and n != not_on else None)(
            self.leader(topic, partition)), timeout,
            what=f"a leader of {topic}[{partition}]" + (f" other than {not_on}" if not_on else ""),
            seen=lambda: "\n".join(self._leader_seen))

    def create_topic(self, topic: str, partitions: int, timeout: float = 30, replication_factor: int = -1):
        """CreateTopics (default replication factor, as admin clients send it) through any
        live node, retried while the metadata group elects a leader; then waits for a
        leader of every partition."""
        def attempt():
            for n in self.alive():
                try:
                    with Conn.to(n.bootstrap, timeout=15) as c:
                        err, msg = c.create_topics_v2([(topic, partitions)], replication_factor=replication_factor)[topic]
                except (OSError, ConnectionClosed):
                    continue
                if err in (0, TOPIC_ALREADY_EXISTS):
                    return True
                assert err in RETRIABLE, f"CreateTopics {topic}: error {err} {msg}"
            return False
        wait_for(attempt, timeout, interval=0.2, what=f"CreateTopics {topic}")
        for p in range(partitions):
            self.wait_leader(topic, p, timeout)

    def coordinator(self, group: str) -> int | None:
        """The live broker FindCoordinator names for a group."""
        def find(c):
            err, node = c.find_coordinator_v1(group)
            return node if err == 0 and node in self.nodes and self.nodes[node].alive() else None
        for n in self.alive():
            node = self._ask(find, via=n.node_id)
            if node is not None:
                return node
        return None

    def committed(self, group: str, topic: str, partitions) -> dict[int, int] | None:
        """Committed offsets, asked of the group's coordinator; None while there is none."""
        coord = self.coordinator(group)
        if coord is None:
            return None
        res = self._ask(lambda c: c.fetch_v5(group, {topic: list(partitions)}), via=coord)
        if res is None or res[0] != 0 or any(v[3] != 0 for v in res[1].values()):
            return None
        return {p: res[1][(topic, p)][0] for p in partitions}

    def commit(self, group: str, offsets: dict[tuple[str, int], int], timeout: float = 30):
        """A simple (memberless) commit through the coordinator, retried until it takes."""
        def attempt():
            coord = self.coordinator(group)
            if coord is None:
                return False
            res = self._ask(lambda c: c.commit_v7(group, -1, "", offsets), via=coord)
            if res is None or any(e in RETRIABLE for e in res.values()):
                return False
            assert all(e == 0 for e in res.values()), f"commit refused: {res}"
            return True
        wait_for(attempt, timeout, interval=0.2, what=f"a commit of group {group}")

    # ------------------------------------------------------------------ phxq cluster status

    def status_command(self, *args: str, via: int = 1) -> subprocess.CompletedProcess:
        return subprocess.run([PHXQ_BIN, "cluster", "status", "--config", str(self.nodes[via].config_path), *args],
                              capture_output=True, text=True, timeout=30)

    def status(self) -> list[dict]:
        """`phxq cluster status --json`: one entry per broker with its groups' Raft state."""
        r = self.status_command("--json", "--timeout-ms", "1000")
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"phxq cluster status --json: exit {r.returncode}\n{r.stdout}\n{r.stderr}")

    @staticmethod
    def _leader_views(reports: list[dict]) -> dict[int, dict]:
        """{group: the report of the node leading it in the highest term seen}."""
        best: dict[int, dict] = {}
        for r in reports:
            for g in r["groups"]:
                if g["state"] == "Leader" and (g["group"] not in best or g["term"] > best[g["group"]]["term"]):
                    best[g["group"]] = g
        return best

    def group_leaders(self) -> dict[int, int]:
        """{group id (0 = metadata): leader node}."""
        return {gid: v["node"] for gid, v in self._leader_views(self.status()).items()}

    def caught_up(self, max_lag: int = 50, groups: int = STORE_GROUPS + 1) -> bool:
        """Every node answers; every group has a leader that heard from each other voter in
        the last 2 s, each at most max_lag entries behind it."""
        reports = self.status()
        if any(r["error"] for r in reports):
            return False
        leaders = self._leader_views(reports)
        if len(leaders) < groups:
            return False
        for v in leaders.values():
            if len(v["replication"]) != len(v["voters"]) - 1:
                return False
            for p in v["replication"]:
                if p["matched"] is None or p["last_ack_ms"] is None or p["last_ack_ms"] > 2000:
                    return False
                if (v["last_log"] or 0) - p["matched"] > max_lag:
                    return False
        return True


# ---------------------------------------------------------------------- producing


@dataclass(frozen=True)
class Ack:
    partition: int
    offset: int
    value: str
    produced: float  # time.monotonic() when handed to the client
    acked: float  # when its delivery report said success


class AckingProducer:
    """confluent-kafka on its own thread: value "<prefix>-<i>" (key i) to partition
    i % partitions, about one every `interval` seconds, until stop(). Every delivery report
    is kept: `acks()` for the acknowledged ones, `failed` for the others (not acknowledged,
    but possibly stored: at-least-once)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, prefix: str, interval: float = 0.003,
                 **conf):
        self.conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 60000, "reconnect.backoff.ms": 20,
                     "reconnect.backoff.max.ms": 500, **conf}
        self.topic, self.partitions, self.prefix, self.interval = topic, partitions, prefix, interval
        self.lock = threading.Lock()
        self._acked: list[Ack] = []
        self.failed: list[tuple[str, str]] = []
        self.error: BaseException | None = None
        self.unflushed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "AckingProducer":
        self.thread.start()
        return self

    def _run(self):
        from confluent_kafka import Producer
        try:
            p = Producer(self.conf)
            i = 0
            while not self._stop.is_set():
                produced = time.monotonic()
                try:
                    p.produce(self.topic, value=f"{self.prefix}-{i}".encode(), key=str(i).encode(),
                              partition=i % self.partitions,
                              on_delivery=lambda err, msg, t=produced: self._report(t, err, msg))
                    i += 1
                except BufferError:
                    p.poll(0.05)
                    continue
                p.poll(0)
                time.sleep(self.interval)
            self.unflushed = p.flush(90)
        except BaseException as e:  # noqa: BLE001 - surfaced by stop()
            self.error = e

    def _report(self, produced: float, err, msg):
        now = time.monotonic()
        with self.lock:
            if err is None:
                self._acked.append(Ack(msg.partition(), msg.offset(), msg.value().decode(), produced, now))
            else:
                self.failed.append((msg.value().decode(), str(err)))

    def acks(self) -> list[Ack]:
        with self.lock:
            return list(self._acked)

    def acked(self) -> list[tuple[int, int, str]]:
        """(partition, offset, value) of every acknowledged record."""
        return [(a.partition, a.offset, a.value) for a in self.acks()]

    def wait_acks(self, more: int, timeout: float = 60) -> None:
        target = len(self.acks()) + more
        wait_for(lambda: self._check() or len(self.acks()) >= target, timeout, interval=0.05,
                 what=f"{more} more acknowledged records (have {len(self.acks())})")

    def first_ack_after(self, t: float, partition: int) -> Ack | None:
        """The first acknowledged record of `partition` handed to the client after time t."""
        self._check()
        acks = [a for a in self.acks() if a.partition == partition and a.produced > t]
        return min(acks, key=lambda a: a.acked) if acks else None

    def _check(self) -> bool:
        assert self.error is None, f"producer thread failed: {self.error!r}"
        assert self.thread.is_alive(), "producer thread exited"
        return False

    def stop(self):
        self._stop.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "producer did not flush within 120 s"
        assert self.error is None, f"producer thread failed: {self.error!r}"

