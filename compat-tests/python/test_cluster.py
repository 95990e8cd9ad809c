"""A three-node cluster (phxq_cluster.Cluster: three `phxq serve --config` processes, 3
store groups of 3 voters, Raft heartbeat 250 ms) under kill -9, driven by real clients.

What a user checks: every record a producer had acknowledged is stored exactly at its
acknowledged offset and offsets are dense (records whose delivery failed may or may not be
there: at-least-once); an idempotent producer stores nothing twice; a consumer group
resumes from its committed offsets on a new coordinator; a full stop loses nothing; a
minority acknowledges nothing; a restarted node takes its share of leaders back.

Failover times (kill -9 of the partition's leader -> first acknowledged produce of a
record handed to the client after the kill) are printed and listed at the end of the
pytest run; they are only bounded loosely (FAILOVER_BOUND_S).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from collections import Counter

import pytest

from conftest import PHXQ_BIN
from phxq_cluster import FAILOVER_TIMES, AckingProducer, Cluster
from phxq_clients import assert_acked_present, assert_same_records, confluent_consume, confluent_produce, make_records
from phxq_wire import wait_for
from test_groups import PARTITIONS as GROUP_PARTITIONS
from test_groups import Member, all_consumed, balanced, check_delivery, produce

FAILOVER_BOUND_S = 30
KILL_ROUNDS = 3
# Entries a stopped node misses in each store group: more than a leader keeps after a
# snapshot (a snapshot every 512 entries, 128 kept), so catching up takes a snapshot.
FAR_BEHIND = 1200
PARTITIONS = 3


def record_failover(label: str, seconds: float):
    FAILOVER_TIMES.append((label, seconds))
    print(f"\nFAILOVER {label}: {seconds:.2f} s")


@pytest.mark.parametrize("idempotent", [False, True], ids=["acks-all", "idempotent"])
def test_produce_through_repeated_leader_kill9(cluster, topic, idempotent):
    """acks=all from confluent-kafka while the leader of partition 0 (its store group's
    leader) is killed with kill -9, KILL_ROUNDS times: kill, wait for the first
    acknowledgement after it, restart the node and let it catch up, repeat."""
    cluster.create_topic(topic, PARTITIONS)
    conf = {"enable.idempotence": True} if idempotent else {}
    label = "idempotent" if idempotent else "acks=all"
    prod = AckingProducer(cluster.bootstrap, topic, PARTITIONS, "i" if idempotent else "a", **conf).start()
    times = []
    try:
        prod.wait_acks(300, 30)
        for round_ in range(1, KILL_ROUNDS + 1):
            victim = cluster.wait_leader(topic, 0)
            killed = cluster.kill9(victim)
            new = cluster.wait_leader(topic, 0, FAILOVER_BOUND_S, not_on=victim)
            elected = time.monotonic() - killed
            ack = cluster.wait_for(lambda: prod.first_ack_after(killed, 0), FAILOVER_BOUND_S, interval=0.02,
                                   what=f"an acknowledged produce to partition 0 after killing its leader {victim}")
            times.append(ack.acked - killed)
            record_failover(f"{label} round {round_}: killed node {victim}, new leader {new} "
                            f"in Metadata after {elected:.2f} s", times[-1])
            cluster.start(victim)
            cluster.wait_for(cluster.caught_up, 30, interval=0.2, what=f"node {victim} back in every group")
            prod.wait_acks(300, 30)
    finally:
        prod.stop()
    print(f"\n[{label}] failover median {statistics.median(times):.2f} s over {len(times)} kills; "
          f"{len(prod.acks())} acknowledged, {len(prod.failed)} failed, {prod.unflushed} undelivered")
    acked = prod.acked()
    stored = assert_acked_present(cluster.bootstrap, topic, range(PARTITIONS), acked)
    if idempotent:
        dups = [v for v, n in Counter(stored.values()).items() if n > 1]
        assert not dups, f"{len(dups)} records stored more than once, e.g. {sorted(dups)[:5]}"
        assert not prod.failed, f"idempotent deliveries failed: {prod.failed[:5]}"
    cluster.assert_alive()


def test_consumer_group_resumes_after_coordinator_kill9(cluster, topic, tmp_path):
    """Two confluent-kafka consumers in a group; the broker FindCoordinator names is killed
    with kill -9 while more records are produced. The group carries on with a new
    coordinator from its committed offsets: nothing skipped, nothing committed consumed
    again."""
    group = "failover"
    cluster.create_topic(topic, GROUP_PARTITIONS)
    produce(cluster.bootstrap, topic, GROUP_PARTITIONS, 0, 20)
    members = [Member("confluent", cluster.bootstrap, topic, group, "range", tmp_path) for _ in range(2)]
    try:
        cluster.wait_for(lambda: balanced(members, 3), 60, what="3 partitions each")
        cluster.wait_for(lambda: all_consumed(members, 20), 30, what="the first records")
        first = {p: 20 for p in range(GROUP_PARTITIONS)}
        cluster.wait_for(lambda: cluster.committed(group, topic, range(GROUP_PARTITIONS)) == first, 30,
                         what="commits at 20")
        seen = [len(m.records()) for m in members]
        victim = cluster.coordinator(group)
        assert victim is not None
        killed = cluster.kill9(victim)
        produce(cluster.bootstrap, topic, GROUP_PARTITIONS, 20, 20)
        cluster.wait_for(lambda: all_consumed(members, 40), 60, what="records produced after the coordinator died")
        resumed = time.monotonic() - killed
        new = cluster.wait_for(lambda: cluster.coordinator(group), 30, what="a new coordinator")
        record_failover(f"group coordinator: killed node {victim}, new coordinator {new}, all consumed", resumed)
        again = [(p, o) for m, n in zip(members, seen) for p, o, _ in m.records()[n:] if o < 20]
        assert not again, f"committed records consumed again after the failover: {sorted(again)[:10]}"
        for m in members:
            m.stop()
        check_delivery(members, 40)
        done = {p: 40 for p in range(GROUP_PARTITIONS)}
        cluster.wait_for(lambda: cluster.committed(group, topic, range(GROUP_PARTITIONS)) == done, 30,
                         what="commits at 40 on the new coordinator")
    finally:
        for m in members:
            if m.alive():
                m.kill9()


def test_full_stop_and_restart_keeps_records_and_offsets(cluster, topic):
    """All three nodes killed with kill -9, restarted; then all stopped with SIGTERM,
    restarted: every record and committed offset is there, new records continue the
    offsets."""
    cluster.create_topic(topic, PARTITIONS)
    recs = confluent_produce(cluster.bootstrap, topic, make_records(300, PARTITIONS), **{"enable.idempotence": True})
    group = "full-stop"
    offsets = {p: 40 + 10 * p for p in range(PARTITIONS)}
    cluster.commit(group, {(topic, p): o for p, o in offsets.items()})
    for how in ("kill -9", "SIGTERM"):
        for n in cluster.nodes.values():
            n.kill9() if how == "kill -9" else n.stop()
        t0 = time.monotonic()
        cluster.start()
        for p in range(PARTITIONS):
            cluster.wait_leader(topic, p)
        print(f"\n[full stop, {how}] leaders of every partition {time.monotonic() - t0:.2f} s after the restart")
        got = confluent_consume(cluster.bootstrap, topic, partitions=range(PARTITIONS), timeout=60)
        assert_same_records(recs, got, f"after {how} of all three nodes")
        assert cluster.wait_for(lambda: cluster.committed(group, topic, range(PARTITIONS)), 30,
                                what="committed offsets") == offsets, f"committed offsets after {how}"
    more = confluent_produce(cluster.bootstrap, topic, make_records(30, PARTITIONS, big=False))
    for p in range(PARTITIONS):
        assert sorted(r.offset for r in more if r.partition == p) == list(range(100, 110)), f"partition {p}"


def test_minority_never_acknowledges(cluster, topic):
    """Two of three nodes stopped: a produce with acks=all to the remaining one (the
    partition's last leader) is never acknowledged, it fails within message.timeout.ms.
    With the others back the cluster serves again."""
    cluster.create_topic(topic, 1)
    before = confluent_produce(cluster.bootstrap, topic, make_records(20, 1, text=True))
    alone = cluster.wait_leader(topic, 0)
    for n in cluster.nodes.values():
        if n.node_id != alone:
            n.kill9()
    prod = AckingProducer(cluster.nodes[alone].bootstrap, topic, 1, "minority", interval=0.2,
                          **{"message.timeout.ms": 5000}).start()
    try:
        time.sleep(3)
    finally:
        prod.stop()
    assert not prod.acks(), f"a minority acknowledged {len(prod.acks())} records: {prod.acks()[:5]}"
    assert prod.failed, "no delivery report within message.timeout.ms"
    print(f"\n[minority] {len(prod.failed)} produces failed as they should: {prod.failed[0][1]}")
    cluster.start()
    again = confluent_produce(cluster.bootstrap, topic, make_records(20, 1, text=True))
    assert_acked_present(cluster.bootstrap, topic, [0],
                         [(r.partition, r.offset, r.value.decode()) for r in before + again])


def test_restarted_node_catches_up_and_takes_back_leaders(cluster, topic):
    """A node that led a store group is killed with kill -9 and stays down while every store
    group's log grows by FAR_BEHIND entries (past the leaders' snapshot and log purge, so
    it needs a snapshot). Restarted, it catches up, and within ~20 s every broker leads at
    least one of the 3 store groups again."""
    cluster.create_topic(topic, PARTITIONS)
    confluent_produce(cluster.bootstrap, topic, make_records(300, PARTITIONS, big=False))
    store = lambda: {g: n for g, n in cluster.group_leaders().items() if g != 0}  # noqa: E731
    cluster.wait_for(lambda: set(store().values()) == set(cluster.nodes), 30, interval=0.2,
                     what=f"leaders spread over the brokers: {store()}")
    victim = store()[1]
    cluster.kill9(victim)
    cluster.wait_for(lambda: len(store()) == 3 and victim not in store().values(), FAILOVER_BOUND_S,
                     interval=0.2, what="new leaders of every store group")
    last_log = lambda: {g: v["last_log"] or 0 for g, v in cluster._leader_views(cluster.status()).items() if g}  # noqa: E731
    start = last_log()
    prod = AckingProducer(cluster.bootstrap, topic, PARTITIONS, "behind", interval=0, **{"linger.ms": 0}).start()
    try:
        cluster.wait_for(lambda: all(n - start.get(g, 0) >= FAR_BEHIND for g, n in last_log().items()), 90,
                         interval=0.5, what=f"{FAR_BEHIND} more entries in every store group")
    finally:
        prod.stop()
    t0 = time.monotonic()
    cluster.start(victim)
    cluster.wait_for(lambda: cluster.caught_up(max_lag=0), 30, interval=0.2, what=f"node {victim} caught up")
    caught_up = time.monotonic() - t0
    cluster.wait_for(lambda: set(store().values()) == set(cluster.nodes), 30, interval=0.2,
                     what=f"every broker leading a store group again: {store()}")
    print(f"\n[rebalance] node {victim} ({FAR_BEHIND}+ entries behind) caught up in {caught_up:.2f} s, "
          f"leaders spread again {time.monotonic() - t0:.2f} s after its restart: {store()}")
    assert time.monotonic() - t0 < 30
    assert_acked_present(cluster.bootstrap, topic, range(PARTITIONS), prod.acked())


def test_topic_with_replication_factor_3_has_three_replicas_in_sync(cluster, topic):
    """CreateTopics with replication factor 3 (kafka-topics --replication-factor 3) works
    on three brokers, and Metadata reports each partition's 3 replicas, all in sync."""
    cluster.create_topic(topic, PARTITIONS, replication_factor=3)

    def replicas():
        _, _, topics = cluster.metadata([topic])
        parts = topics[topic][1]
        return all(len(parts[p][3]) == 3 and sorted(parts[p][4]) == sorted(parts[p][3]) for p in range(PARTITIONS))
    cluster.wait_for(replicas, 30, interval=0.2, what=f"3 replicas in sync: {cluster.metadata([topic])[2]}")


def test_topic_auto_created_through_every_broker_at_once_is_one_topic(cluster):
    """Clients that list all three brokers may ask each of them for a new topic at the same
    moment; each broker auto-creates it. Exactly one creation must win, or records
    acknowledged on the loser's partitions would vanish: every acknowledged record is read
    back."""
    from phxq_wire import Conn
    topics = [f"auto-race-{i}" for i in range(8)]
    for t in topics:
        start = threading.Barrier(3)

        def ask(node):
            with Conn.to(node.bootstrap, timeout=15) as c:
                start.wait()
                c.metadata_v4([t], allow_auto_create=True)

        threads = [threading.Thread(target=ask, args=(n,)) for n in cluster.nodes.values()]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
    for t in topics:
        recs = confluent_produce(cluster.bootstrap, t, make_records(20, 1, big=False))
        assert_same_records(recs, confluent_consume(cluster.bootstrap, t))
    cluster.assert_alive()


def test_cluster_status_shows_every_group_with_a_leader(cluster):
    r = wait_for(lambda: (lambda r: r if r.returncode == 0 and "every one with a leader" in r.stdout else None)(
        cluster.status_command()), 30, interval=0.3, what="phxq cluster status with every group led")
    out = r.stdout
    print("\n" + out)
    for n in cluster.nodes.values():
        assert re.search(rf"^{n.node_id}\s+{re.escape(n.bootstrap)}\s.*\sup ", out, re.M), out
    for g in range(4):
        name = " (metadata)" if g == 0 else ""
        assert re.search(rf"^group {g}{re.escape(name)}  leader [123]  term \d+  voters 1,2,3$", out, re.M), out


def test_cluster_up_starts_and_stops_three_nodes(tmp_path):
    """`phxq cluster up` on generated node configs: the three nodes serve a client; kill -9
    of one is reported and the others keep running; SIGTERM stops the rest, it exits 0 and
    no node is left behind."""
    configs = Cluster(tmp_path)  # writes node1..3.toml; its nodes are not started
    up = subprocess.Popen([PHXQ_BIN, "cluster", "up", "--config-dir", str(tmp_path),
                           "--data-dir-base", str(tmp_path / "up")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True)
    reader.start()
    out = lambda: "".join(lines)  # noqa: E731
    try:
        pids = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(
            [int(m) for m in re.findall(r"started node\d \(pid (\d+)\)", out())]), 30,
            what="three nodes started")
        recs = confluent_produce(configs.bootstrap, "cluster-up", make_records(10, 1, big=False))
        assert_same_records(recs, confluent_consume(configs.bootstrap, "cluster-up"))
        subprocess.run(["kill", "-9", str(pids[1])], check=True)
        wait_for(lambda: "node2 (pid" in out() and "was killed (SIGKILL)" in out(), 10,
                 what="cluster up reporting the kill")
        assert up.poll() is None, f"cluster up exited when one node died:\n{out()[-3000:]}"
        up.terminate()
        assert up.wait(30) == 0, out()[-3000:]
        reader.join(5)
        for expected in ("node1 stopped", "node3 stopped", "all nodes stopped"):
            assert expected in out(), out()[-3000:]
        for pid in pids:
            assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0, \
                f"node pid {pid} still running after cluster up stopped"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
