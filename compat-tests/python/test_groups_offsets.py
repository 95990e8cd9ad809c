"""Consumer-group offsets and the consumer-group lock: independent groups on one topic,
committed offsets (with metadata) surviving kill -9 of the broker, generations never
reused after a restart, commits refused from members that do not own a partition
(stale generation, zombie, non-owner -- stronger than Kafka), simple-consumer commits,
DeleteGroups, OffsetDelete, static membership and the `phxq group` admin view."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from conftest import PHXQ_BIN
from group_wire import (
    FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION,
    NON_EMPTY_GROUP, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, GroupConn, assignment,
    decode_assignment, form_group,
)
from test_groups import create_topic, produce, wait_until


def conns(broker, n):
    return [GroupConn.to(broker.bootstrap) for _ in range(n)]


def confluent_group_consume(bootstrap, topic, group, want, **conf):
    """Subscribes with a fresh consumer, reads `want` records, commits, leaves."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **conf})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < want:
        assert time.monotonic() < deadline, f"{group}: {len(got)} of {want} records"
        for m in c.consume(100, 0.2):
            assert not m.error(), m.error()
            got.append((m.partition(), m.offset(), m.value()))
    c.commit(asynchronous=False)
    c.close()
    return got


def test_two_groups_each_see_everything_and_offsets_survive_kill9(broker, topic):
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, 3, 0, 10)
    a = confluent_group_consume(broker.bootstrap, topic, "ga", 30)
    b = confluent_group_consume(broker.bootstrap, topic, "gb", 30)
    assert sorted(x[:2] for x in a) == sorted(x[:2] for x in b) == [(p, o) for p in range(3) for o in range(10)]
    with GroupConn.to(broker.bootstrap) as c:
        # A simple consumer's commit with metadata, in a group of its own.
        assert c.commit_v7("gs", -1, "", {(topic, 1): 7}, metadata="cursor:7", leader_epoch=5) == {(topic, 1): 0}
        assert c.commit_v7("gs", -1, "", {(topic, 2): 8}, metadata=None) == {(topic, 2): 0}

    broker.restart()  # kill -9 and start on the same data directory

    with GroupConn.to(broker.bootstrap) as c:
        for g in ("ga", "gb"):
            err, offs = c.fetch_v5(g, None)  # null topics: every committed partition
            assert err == 0
            assert {k: v[0] for k, v in offs.items()} == {(topic, p): 10 for p in range(3)}, g
        err, offs = c.fetch_v5("gs", {topic: [0, 1, 2]})
        assert offs[(topic, 1)] == (7, 5, "cursor:7", 0), "metadata and leader epoch round-trip"
        assert offs[(topic, 2)] == (8, -1, "", 0), "null metadata reads back as empty"
        assert offs[(topic, 0)] == (-1, -1, "", 0), "no commit: -1, empty metadata, no error"
        err, offs = c.fetch_v5("never-seen", {topic: [0]})
        assert (err, offs[(topic, 0)]) == (0, (-1, -1, "", 0))
    produce(broker.bootstrap, topic, 3, 10, 1)
    again = confluent_group_consume(broker.bootstrap, topic, "ga", 3)
    assert sorted(x[:2] for x in again) == [(p, 10) for p in range(3)], "resumed at the committed offsets"


def test_generation_is_never_reused_after_restart(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    with GroupConn.to(broker.bootstrap) as c:
        r = c.join("gen", topics=[topic])
        assert r["error"] == 0
        first = r["generation"]
    broker.restart()
    with GroupConn.to(broker.bootstrap) as c:
        assert c.heartbeat_v3("gen", first, r["member_id"]) == UNKNOWN_MEMBER_ID, "members rejoin"
        r2 = c.join("gen", topics=[topic])
        assert r2["error"] == 0
        assert r2["generation"] > first, f"generation {r2['generation']} reused after restart ({first})"


def test_only_the_owner_may_commit_a_partition(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    ca, cb = conns(broker, 2)
    gen, (a, b) = form_group([ca, cb], "lock", topic, [[0], [1]], session_ms=1500)
    p0, p1 = (topic, 0), (topic, 1)
    assert ca.commit_v7("lock", gen, a, {p0: 5}) == {p0: 0}
    assert cb.commit_v7("lock", gen, b, {p1: 6}) == {p1: 0}
    # Kafka would accept this (right member, right generation): phxq's lock refuses it.
    assert ca.commit_v7("lock", gen, a, {p0: 7, p1: 99}) == {p0: 0, p1: ILLEGAL_GENERATION}
    assert ca.commit_v7("lock", gen - 1, a, {p0: 8}) == {p0: ILLEGAL_GENERATION}, "stale generation"
    assert ca.commit_v7("lock", gen, "intruder", {p0: 8}) == {p0: UNKNOWN_MEMBER_ID}
    assert ca.commit_v7("lock", -1, "", {p0: 8}) == {p0: UNKNOWN_MEMBER_ID}, "simple commit while members exist"
    err, offs = ca.fetch_v5("lock", {topic: [0, 1]})
    assert (offs[p0][0], offs[p1][0]) == (7, 6), "refused commits moved nothing"

    # b turns zombie (stops heartbeating); a keeps heartbeating until b is expired.
    wait_until(lambda: ca.heartbeat_v3("lock", gen, a) == REBALANCE_IN_PROGRESS, 10,
               "b's session to expire", interval=0.3)
    assert cb.commit_v7("lock", gen, b, {p1: 100}) == {p1: UNKNOWN_MEMBER_ID}, "zombie refused"
    r = ca.join("lock", member_id=a, topics=[topic], session_ms=1500)
    assert r["generation"] == gen + 1 and r["leader"] == a
    err, got = ca.sync_v3("lock", gen + 1, a, {a: assignment({topic: [0, 1]})})
    assert err == 0 and decode_assignment(got) == {topic: [0, 1]}
    assert ca.commit_v7("lock", gen + 1, a, {p1: 9}) == {p1: 0}, "p1 handed over after b left"
    assert ca.commit_v7("lock", gen, a, {p1: 10}) == {p1: ILLEGAL_GENERATION}
    err, codes = ca.leave_v3("lock", [a])
    assert (err, codes) == (0, [0])
    assert ca.commit_v7("lock", -1, "", {p0: 11}) == {p0: 0}, "simple commits once the group is empty"
    err, offs = ca.fetch_v5("lock", {topic: [0, 1]})
    assert (offs[p0][0], offs[p1][0]) == (11, 9)


def test_real_client_cannot_commit_a_partition_it_does_not_own(broker, topic):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, 2, 0, 5)

    def consumer():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "owner", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        c.subscribe([topic])
        return c

    c1, c2 = consumer(), consumer()
    try:
        def one_each():
            for c in (c1, c2):
                c.poll(0.1)
            return len(c1.assignment()) == 1 and len(c2.assignment()) == 1
        wait_until(one_each, 30, "one partition per consumer")
        mine = c1.assignment()[0].partition
        theirs = 1 - mine
        c1.commit(offsets=[TopicPartition(topic, mine, 3)], asynchronous=False)
        with pytest.raises(KafkaException) as ei:
            c1.commit(offsets=[TopicPartition(topic, theirs, 4)], asynchronous=False)
        assert ei.value.args[0].code() == KafkaError.ILLEGAL_GENERATION, ei.value
        with GroupConn.to(broker.bootstrap) as raw:
            _, offs = raw.fetch_v5("owner", {topic: [0, 1]})
        assert offs[(topic, mine)][0] == 3 and offs[(topic, theirs)][0] == -1
    finally:
        c1.close()
        c2.close()


def test_delete_groups_and_offset_delete(broker, topic):
    from confluent_kafka.admin import AdminClient
    create_topic(broker.bootstrap, topic, 2)
    other = topic + "-other"
    create_topic(broker.bootstrap, other, 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with GroupConn.to(broker.bootstrap) as c, GroupConn.to(broker.bootstrap) as m:
        r = m.join("del", topics=[topic])
        assert m.sync_v3("del", r["generation"], r["member_id"], {r["member_id"]: assignment({topic: [0, 1]})})[0] == 0
        assert m.commit_v7("del", r["generation"], r["member_id"], {(topic, 0): 3, (topic, 1): 4}) == \
            {(topic, 0): 0, (topic, 1): 0}
        # OffsetDelete: refused for a topic a live member subscribes to.
        err, res = c.offset_delete_v0("del", {topic: [0]})
        assert (err, res) == (0, {(topic, 0): GROUP_SUBSCRIBED_TO_TOPIC})
        # DeleteGroups: refused while the group has members.
        res = admin.delete_consumer_groups(["del"], request_timeout=10)
        with pytest.raises(Exception) as ei:
            res["del"].result()
        assert "NON_EMPTY_GROUP" in str(ei.value) or str(NON_EMPTY_GROUP) in str(ei.value)
        m.leave_v3("del", [r["member_id"]])
        assert c.commit_v7("del", -1, "", {(other, 0): 1}) == {(other, 0): 0}
        err, res = c.offset_delete_v0("del", {topic: [0], other: [0, 5]})
        assert err == 0 and res == {(topic, 0): 0, (other, 0): 0, (other, 5): 3}
        _, offs = c.fetch_v5("del", None)
        assert {k: v[0] for k, v in offs.items()} == {(topic, 1): 4}
        assert c.offset_delete_v0("nope", {topic: [0]})[0] == GROUP_ID_NOT_FOUND
    admin.delete_consumer_groups(["del"], request_timeout=10)["del"].result()
    with GroupConn.to(broker.bootstrap) as c:
        _, offs = c.fetch_v5("del", None)
        assert offs == {}, "offsets deleted with the group"
        assert c.delete_groups_v1(["del"]) == {"del": GROUP_ID_NOT_FOUND}
    broker.restart()
    with GroupConn.to(broker.bootstrap) as c:
        assert c.fetch_v5("del", None)[1] == {}, "deletion is durable"


def test_kafka_python_admin_lists_describes_and_deletes_offsets(broker, topic):
    from kafka.admin import KafkaAdminClient
    from kafka.structs import TopicPartition
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, 2, 0, 5)
    confluent_group_consume(broker.bootstrap, topic, "kp", 10)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        groups = a.list_groups()
        print(groups)
        assert any(g["group_id"] == "kp" and g["protocol_type"] == "consumer" for g in groups), groups
        (desc,) = a.describe_groups(["kp"])
        print(desc)

        def offsets():
            res = a.list_group_offsets({"kp": None})
            return {tp.partition: om.offset for tp, om in res["kp"].items()}

        assert offsets() == {0: 5, 1: 5}
        res = a.delete_group_offsets("kp", [TopicPartition(topic, 0)])
        print(res)
        assert offsets() == {1: 5}
    finally:
        a.close()


def test_static_member_restarts_without_rebalance(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    with GroupConn.to(broker.bootstrap) as s, GroupConn.to(broker.bootstrap) as d:
        results = {}
        t = threading.Thread(target=lambda: results.setdefault(
            "s", s.join("static", topics=[topic], instance_id="host-1", session_ms=6000)))
        t.start()
        results["d"] = d.join("static", topics=[topic], session_ms=6000)
        t.join(20)
        rs, rd = results["s"], results["d"]
        gen = rs["generation"]
        leader = rs["leader"]
        plan = {rs["member_id"]: assignment({topic: [0]}), rd["member_id"]: assignment({topic: [1]})}
        t = threading.Thread(target=lambda: results.setdefault(
            "ss", s.sync_v3("static", gen, rs["member_id"], plan if leader == rs["member_id"] else None,
                            instance_id="host-1")))
        t.start()
        results["ds"] = d.sync_v3("static", gen, rd["member_id"], plan if leader == rd["member_id"] else None)
        t.join(20)
        assert results["ss"][0] == 0 and results["ds"][0] == 0
        # The static member's process restarts: same instance id, no member id.
        with GroupConn.to(broker.bootstrap) as s2:
            r2 = s2.join_v5("static", topics=[topic], instance_id="host-1", session_ms=6000)
            assert r2["error"] == 0 and r2["generation"] == gen and r2["member_id"] != rs["member_id"]
            err, got = s2.sync_v3("static", gen, r2["member_id"], instance_id="host-1")
            assert err == 0 and decode_assignment(got) == {topic: [0]}, "same partitions back"
            assert d.heartbeat_v3("static", gen, rd["member_id"]) == 0, "the other member saw no rebalance"
            assert s.heartbeat_v3("static", gen, rs["member_id"], instance_id="host-1") == FENCED_INSTANCE_ID
            assert s2.commit_v7("static", gen, r2["member_id"], {(topic, 0): 1}, instance_id="host-1") == \
                {(topic, 0): 0}, "the lock followed the instance to its new member id"


def test_phxq_group_admin_view(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, 2, 0, 10)
    with GroupConn.to(broker.bootstrap) as c, GroupConn.to(broker.bootstrap) as m:
        assert c.commit_v7("viewed", -1, "", {(topic, 0): 4, (topic, 1): 10}) == {(topic, 0): 0, (topic, 1): 0}
        r = m.join("live", topics=[topic])
        m.sync_v3("live", r["generation"], r["member_id"], {r["member_id"]: assignment({topic: [0, 1]})})

        def run(*args):
            p = subprocess.run([PHXQ_BIN, "group", *args, "--bootstrap", broker.bootstrap],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
            return p.stdout

        listed = run("list")
        assert "viewed" in listed and "Empty" in listed
        assert "live" in listed and "Stable" in listed
        out = run("describe", "viewed")
        rows = {tuple(line.split()[:5]) for line in out.splitlines()}
        assert (topic, "0", "4", "10", "6") in rows, out
        assert (topic, "1", "10", "10", "0") in rows, out
        out = run("describe", "live")
        assert r["member_id"] in out and f"{topic}: 0,1" in out and "Stable" in out, out
        p = subprocess.run([PHXQ_BIN, "group", "describe", "missing", "--bootstrap", broker.bootstrap],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "not found" in p.stderr


def test_rebalance_triggers(broker, topic):
    """Each of join, subscription change, partition count change, leave and session
    expiry makes a Stable group rebalance: the other members' heartbeats answer
    REBALANCE_IN_PROGRESS and everyone lands in the next generation."""
    from confluent_kafka.admin import AdminClient, NewPartitions
    create_topic(broker.bootstrap, topic, 2)
    other = topic + "-b"
    create_topic(broker.bootstrap, other, 1)
    a_conn, b_conn, c_conn = conns(broker, 3)
    gen, (a, b) = form_group([a_conn, b_conn], "trig", topic, [[0], [1]], session_ms=2000)
    state = {"gen": gen}

    def in_threads(fns):
        threads = [threading.Thread(target=f) for f in fns]
        for t in threads:
            t.start()
        return threads

    def rebalance(trigger, rejoiners, watcher=(a_conn, a)):
        """`trigger` (conn, member id, topics) joins or rejoins, which must make the
        watcher's heartbeat say REBALANCE_IN_PROGRESS; then `rejoiners` rejoin and all
        sync in the next generation. Returns the member ids by conn."""
        results = {}

        def join(c, m, t):
            return lambda: results.__setitem__(c, c.join("trig", member_id=m, topics=t, session_ms=2000))

        threads = in_threads([join(*trigger)]) if trigger else []
        wait_until(lambda: watcher[0].heartbeat_v3("trig", state["gen"], watcher[1]) == REBALANCE_IN_PROGRESS,
                   5, "REBALANCE_IN_PROGRESS")
        threads += in_threads([join(*r) for r in rejoiners])
        for t in threads:
            t.join(20)
        gens = {r["generation"] for r in results.values()}
        assert gens == {state["gen"] + 1}, results
        state["gen"] += 1
        ids = {c: r["member_id"] for c, r in results.items()}
        leader = next(iter(results.values()))["leader"]
        plan = {m: assignment({}) for m in ids.values()}
        for t in in_threads([lambda c=c, m=m: c.sync_v3("trig", state["gen"], m, plan if m == leader else None)
                             for c, m in ids.items()]):
            t.join(20)
        assert watcher[0].heartbeat_v3("trig", state["gen"], watcher[1]) == 0
        return ids

    # 1. a third member joins.
    c = rebalance((c_conn, "", [topic]), [(a_conn, a, [topic]), (b_conn, b, [topic])])[c_conn]
    # 2. c changes its subscription.
    rebalance((c_conn, c, [topic, other]), [(a_conn, a, [topic]), (b_conn, b, [topic])])
    # 3. a subscribed topic grows (noticed by the coordinator at the next heartbeat).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(10)
    rebalance(None, [(a_conn, a, [topic]), (b_conn, b, [topic]), (c_conn, c, [topic, other])])
    # 4. c leaves.
    assert c_conn.leave_v3("trig", [c]) == (0, [0])
    rebalance(None, [(a_conn, a, [topic]), (b_conn, b, [topic])])
    # 5. b dies silently: after its session timeout a's heartbeat says rebalance.
    start = time.monotonic()
    rebalance(None, [(a_conn, a, [topic])])
    assert time.monotonic() - start >= 1.5, "b was dropped before its session timeout"
    assert b_conn.heartbeat_v3("trig", state["gen"], b) == UNKNOWN_MEMBER_ID


def test_many_groups_across_store_groups_survive_restart(broker_factory, topic):
    """Groups are spread over the store groups by a hash of their id; each keeps its own
    offsets; there is no fixed limit on their number."""
    from kafka.admin import KafkaAdminClient
    b = broker_factory("--store-groups", "4")
    create_topic(b.bootstrap, topic, 3)
    n = 300
    with GroupConn.to(b.bootstrap) as c:
        for i in range(n):
            assert c.commit_v7(f"many-{i}", -1, "", {(topic, i % 3): i}) == {(topic, i % 3): 0}
    b.restart()
    with GroupConn.to(b.bootstrap) as c:
        for i in range(n):
            err, offs = c.fetch_v5(f"many-{i}", None)
            assert (err, offs) == (0, {(topic, i % 3): (i, -1, "", 0)}), i
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        assert {g["group_id"] for g in a.list_groups()} == {f"many-{i}" for i in range(n)}
    finally:
        a.close()


def test_offsets_expire_for_empty_groups_and_with_deleted_topics(broker_factory, topic):
    """Kafka's offsets.retention.minutes: a group that has had no members for the
    retention (here 3 s) loses offsets committed longer ago than that and, with nothing
    left, leaves ListGroups; a group with a running member keeps its offsets however old;
    deleting a topic removes its offsets from every group."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
    b = broker_factory("--group-offsets-retention-ms", "3000",
                       "--group-offsets-retention-check-interval-ms", "200")
    create_topic(b.bootstrap, topic, 2)
    other = f"{topic}-other"
    create_topic(b.bootstrap, other, 1)
    produce(b.bootstrap, topic, 2, 0, 10)
    produce(b.bootstrap, other, 1, 0, 10)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})

    def consumer(group: str, topics: list[str]) -> Consumer:
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        c.subscribe(topics)
        got = 0
        deadline = time.monotonic() + 30
        while got < 10 * len(topics) + (10 if topic in topics else 0) and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got += 1
        c.commit(asynchronous=False)
        return c

    def committed(group: str, tps: list[tuple[str, int]]) -> list[int]:
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
        try:
            return [tp.offset for tp in c.committed([TopicPartition(t, p) for t, p in tps], 10)]
        finally:
            c.close()

    def listed() -> set[str]:
        return {g.group_id for g in admin.list_consumer_groups().result(10).valid}

    gone = consumer("expiring", [topic])
    gone.close()  # empty from now on
    kept = consumer("kept", [topic, other])  # keeps running, commits nothing more
    assert committed("expiring", [(topic, 0), (topic, 1)]) == [10, 10]
    wait_until(lambda: "expiring" not in listed(), 30, "the empty group's offsets to expire")
    assert committed("expiring", [(topic, 0), (topic, 1)]) == [-1001, -1001]
    assert "kept" in listed()
    assert committed("kept", [(topic, 0), (topic, 1), (other, 0)]) == [10, 10, 10]
    # Deleting a topic removes its offsets, from a group with a member too.
    admin.delete_topics([other])[other].result(30)
    wait_until(lambda: committed("kept", [(other, 0)]) == [-1001], 30, "offsets of the deleted topic to go")
    assert committed("kept", [(topic, 0), (topic, 1)]) == [10, 10]
    kept.close()
