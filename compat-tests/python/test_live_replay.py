"""Live replays (issue #12, part 2): moving a consumer group's committed offsets back while
its consumers keep running, which Kafka only allows on an empty group.

1. The real CLI, `phxq group reset G --to-datetime T`, on a group of two running consumer
   processes (confluent-kafka eager range, cooperative-sticky and group.protocol=consumer,
   kafka-python, kafkajs) that have consumed and committed everything: the reset offsets
   are the first records produced after T, and without restarting anything every record
   after them is delivered again on every partition, in order, none missing, and the
   commits end at the log end again. This is what an operator checks after a replay.
   Then the harder case (`--shift-by -200`) while a producer writes and the consumers
   commit every few records, so commits of pre-reset positions are in flight: they must
   not undo the reset (the clients see them refused and carry on).
2. On the raw wire (group_wire / phxq_wire), a member whose ownership began before the
   reset commits its old position afterwards -- as an auto-commit in flight or a
   commit-on-revoke would: refused (classic ILLEGAL_GENERATION, KIP-848
   STALE_MEMBER_EPOCH) and the reset offset stays. The member then gets the partition
   again (classic: withheld for one generation, then handed back) and may commit it.
3. The standard Admin API (confluent-kafka AdminClient.alter_consumer_group_offsets, an
   OffsetCommit without member) on a group with a running member fails as in Kafka and
   changes nothing; after the group config `phxq.offsets.live.reset.enable=true` it is a
   live replay the running member follows.
4. Group configs (Kafka's GROUP config resource): DescribeConfigs shows the three
   configs with the broker's defaults, IncrementalAlterConfigs changes them (through
   confluent-kafka and through the raw wire with Kafka's resource type 32), invalid
   names and values are INVALID_CONFIG and change nothing, and the KIP-848 heartbeat
   interval a member is told follows the group's config.

No timing is asserted: only generous deadlines for things to happen.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import PHXQ_BIN
from group_wire import (ILLEGAL_GENERATION, NONE, REBALANCE_IN_PROGRESS, GroupConn, assignment,
                        decode_assignment, form_group)
from phxq_wire import CONFIG_DELETE, CONFIG_SET, INVALID_CONFIG, RESOURCE_GROUP, wait_for
from test_consumer_protocol import FAST, HB_MS, SESSION_MS, STALE_MEMBER_EPOCH, KMember, new_member_id
from test_groups import Member, create_topic, produce

PARTS = 3
BATCH_A = 300  # records per partition before the reset time
BATCH_B = 300  # after it: what the replay must deliver again
END = BATCH_A + BATCH_B

LIVE_RESET = "phxq.offsets.live.reset.enable"
SESSION_CFG = "consumer.session.timeout.ms"
HEARTBEAT_CFG = "consumer.heartbeat.interval.ms"
STATIC_BROKER_CONFIG, GROUP_CONFIG_SOURCE, DEFAULT_CONFIG = 4, 8, 5


# --------------------------------------------------------------------------- helpers


def phxq_group(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PHXQ_BIN, "group", *args, "--bootstrap", bootstrap],
                          capture_output=True, text=True, timeout=60)


def reset(bootstrap: str, group: str, *args: str) -> str:
    """`phxq group reset` must succeed; returns its output."""
    p = phxq_group(bootstrap, "reset", group, *args)
    assert p.returncode == 0, f"phxq group reset exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def reset_rows(out: str, topic: str) -> dict[int, tuple[str, int]]:
    """The CLI's table: {partition: (CURRENT, NEW)}."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == topic:
            rows[int(f[1])] = (f[2], int(f[3]))
    return rows


def committed(bootstrap: str, group: str, topic: str, parts: int = PARTS) -> dict[int, int]:
    with GroupConn.to(bootstrap) as c:
        err, offs = c.fetch_v5(group, {topic: list(range(parts))})
    assert err == 0, err
    return {p: offs[(topic, p)][0] for p in range(parts)}


def alive(members: list[Member]) -> bool:
    for m in members:
        assert m.alive(), f"{m.kind} consumer exited with {m.proc.returncode}:\n{''.join(m.stderr_tail)}"
    return True


def consumed_since(members: list[Member], marks: list[int], parts: int = PARTS) -> dict[int, set[int]]:
    """Offsets received per partition after each member's mark (an index into its records)."""
    out: dict[int, set[int]] = {p: set() for p in range(parts)}
    for m, k in zip(members, marks):
        for p, o, _ in m.records()[k:]:
            out[p].add(o)
    return out


def missing_since(members, marks, start: int, end: int, parts: int = PARTS) -> dict[int, list[int]]:
    got = consumed_since(members, marks, parts)
    return {p: sorted(set(range(start, end)) - got[p])[:5] for p in range(parts)
            if not got[p] >= set(range(start, end))}


def check_replay(members: list[Member], marks: list[int], start: int, end: int, parts: int = PARTS):
    """After the marks: values match offsets; nothing before the reset point; per member and
    partition gap-free increasing runs (a run may start over lower: a redelivery); every
    offset in [start, end) received."""
    for m, k in zip(members, marks):
        by_p: dict[int, list[int]] = {}
        for p, o, v in m.records()[k:]:
            assert v == f"v{p}-{o}", f"{m.kind}: p{p}@{o} has value {v!r}"
            assert o >= start, f"{m.kind}: p{p}@{o} delivered after the reset, which was to {start}"
            by_p.setdefault(p, []).append(o)
        for p, offs in by_p.items():
            for a, b in zip(offs, offs[1:]):
                assert b == a + 1 or b <= a, f"{m.kind} pid {m.proc.pid}: partition {p} skipped from {a} to {b}"
    assert not missing_since(members, marks, start, end, parts), \
        f"not delivered again: {missing_since(members, marks, start, end, parts)}"


def covered(members: list[Member], parts: int = PARTS) -> bool:
    """Every member alive and holding at least one partition; together each exactly once."""
    alive(members)
    held = [m.assignment() or [] for m in members]
    return all(held) and sorted(p for h in held for p in h) == list(range(parts))


def stop_all(members):
    for m in members:
        if m.alive():
            m.kill9()


# --------------------------------------------------------------------------- 1. CLI reset, consumers running

LIVE_CASES = [
    ("confluent", "range"),
    ("confluent", "cooperative-sticky"),
    ("confluent", "consumer"),  # group.protocol=consumer (KIP-848)
    ("kafka-python", "range"),
    ("kafkajs", "range"),
]


@pytest.mark.parametrize("kind,assignor", LIVE_CASES, ids=[f"{k}-{a}" for k, a in LIVE_CASES])
def test_reset_to_datetime_replays_under_running_consumers(broker_factory, topic, tmp_path, kind, assignor):
    """Batch A, then (after a pause) the time T, then batch B; two consumers consume and
    commit everything. `phxq group reset --to-datetime T` while they run: the new offsets
    are the first of batch B, and the same consumer processes get all of batch B again."""
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    group = f"replay-{kind}-{assignor}"
    create_topic(b, topic, PARTS)
    produce(b, topic, PARTS, 0, BATCH_A)
    time.sleep(0.6)
    t_reset = int(time.time() * 1000)
    time.sleep(0.6)
    produce(b, topic, PARTS, BATCH_A, BATCH_B)
    with GroupConn.to(b) as c:
        by_time = {p: c.list_offsets_v1(topic, p, t_reset)[2] for p in range(PARTS)}
    assert by_time == {p: BATCH_A for p in range(PARTS)}, f"ListOffsets by time {t_reset}: {by_time}"

    members: list[Member] = []
    try:
        if assignor == "consumer":
            members = [KMember(b, topic, group, tmp_path) for _ in range(2)]
        else:
            members = [Member(kind, b, topic, group, assignor, tmp_path) for _ in range(2)]
        desc = lambda: "; ".join(m.describe() for m in members)  # noqa: E731
        wait_for(lambda: covered(members), 60, what=f"both consumers holding partitions ({desc()})")
        wait_for(lambda: not missing_since(members, [0, 0], 0, END), 60,
                 what=f"everything consumed once ({desc()})")
        want_end = {p: END for p in range(PARTS)}
        wait_for(lambda: committed(b, group, topic) == want_end, 30,
                 what=f"commits at the log end before the reset: {committed(b, group, topic)}")

        pids = [m.proc.pid for m in members]
        marks = [len(m.records()) for m in members]
        t0 = time.monotonic()
        out = reset(b, group, "--topic", topic, "--to-datetime", str(t_reset))
        rows = reset_rows(out, topic)
        assert rows == {p: (str(END), BATCH_A) for p in range(PARTS)}, f"reset table:\n{out}"

        wait_for(lambda: alive(members) and not missing_since(members, marks, BATCH_A, END), 30,
                 what=lambda: f"batch B delivered again: missing {missing_since(members, marks, BATCH_A, END)}; "
                 f"{desc()}")
        replayed = time.monotonic() - t0
        wait_for(lambda: committed(b, group, topic) == want_end, 30,
                 what=lambda: f"commits back at the log end: {committed(b, group, topic)}")
        alive(members)
        assert [m.proc.pid for m in members] == pids
        check_replay(members, marks, BATCH_A, END)
        errs = [e for m in members for e in m.commit_errors]
        print(f"\n[{kind}/{assignor}] batch B ({BATCH_B}/partition) replayed {replayed:.2f}s after the reset; "
              f"commit errors seen by the clients: {len(errs)} {errs[:2]}")
        for m in members:
            m.stop()
        assert committed(b, group, topic) == want_end
    finally:
        stop_all(members)
        broker.assert_alive()


BUSY_CASES = [("cooperative-sticky", "classic"), ("range", "consumer")]


@pytest.mark.parametrize("assignor,protocol", BUSY_CASES, ids=[f"{a}-{p}" for a, p in BUSY_CASES])
def test_reset_while_consuming_and_committing(broker_factory, topic, tmp_path, assignor, protocol):
    """The harder case: a producer keeps writing and two confluent-kafka consumers keep
    consuming and committing (after every few records) when `phxq group reset --shift-by
    -200` moves them back; commits of pre-reset positions are in flight. Every record from
    each partition's new offset to the end is delivered again, none skipped, and the
    commits reach the log end once the producer stops."""
    from test_consumer_protocol import Flow
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    group = f"busy-{assignor}-{protocol}"
    create_topic(b, topic, PARTS)
    flow = Flow(b, {(topic, p): 2 for p in range(PARTS)}, interval=0.02)
    members: list[Member] = []
    try:
        extra = ("--sleep-per-record-ms", "1", *(("--assignor", assignor) if protocol == "classic" else ()))
        members = [KMember(b, topic, group, tmp_path, protocol=protocol, extra=extra) for _ in range(2)]
        desc = lambda: "; ".join(m.describe() for m in members)  # noqa: E731
        wait_for(lambda: covered(members), 60, what=lambda: f"both consumers holding partitions ({desc()})")
        wait_for(lambda: min(committed(b, group, topic).values()) >= 300, 60,
                 what=lambda: f"300 records per partition committed: {committed(b, group, topic)}")
        marks = [len(m.records()) for m in members]
        pids = [m.proc.pid for m in members]
        out = reset(b, group, "--topic", topic, "--shift-by", "-200")
        rows = reset_rows(out, topic)
        assert sorted(rows) == list(range(PARTS)), out
        for p, (cur, new) in rows.items():
            assert new == int(cur) - 200, f"partition {p}: --shift-by -200 from {cur} gave {new}\n{out}"
        flow.wait_more(100)
        ends = flow.stop()
        end = {p: ends[(topic, p)] for p in range(PARTS)}

        def missing():
            got = consumed_since(members, marks)
            return {p: sorted(set(range(rows[p][1], end[p])) - got[p])[:5] for p in range(PARTS)
                    if not got[p] >= set(range(rows[p][1], end[p]))}

        wait_for(lambda: alive(members) and not missing(), 40,
                 what=lambda: f"everything from the reset offsets delivered: missing {missing()}; {desc()}")
        wait_for(lambda: committed(b, group, topic) == end, 30,
                 what=lambda: f"commits at the log end {end}: {committed(b, group, topic)}")
        assert [m.proc.pid for m in members] == pids
        for m, k in zip(members, marks):  # per partition: nothing before its reset offset, runs gap-free
            by_p: dict[int, list[int]] = {}
            for p, o, v in m.records()[k:]:
                assert v == f"v{p}-{o}", f"p{p}@{o} has value {v!r}"
                assert o >= rows[p][1], f"p{p}@{o} delivered after the reset, which was to {rows[p][1]}"
                by_p.setdefault(p, []).append(o)
            for p, offs in by_p.items():
                for x, y in zip(offs, offs[1:]):
                    assert y == x + 1 or y <= x, f"pid {m.proc.pid}: partition {p} skipped from {x} to {y}"
        errs = [e for m in members for e in m.commit_errors]
        print(f"\n[{assignor}/{protocol}] reset {rows}; commit errors seen by the clients: {len(errs)} {errs[:2]}")
        for m in members:
            m.stop()
    finally:
        flow.close()
        stop_all(members)
        broker.assert_alive()


# --------------------------------------------------------------------------- 2. old members' commits


def test_old_classic_member_cannot_undo_the_reset(broker_factory, topic):
    """A classic member owns partition 0 and commits 500; `phxq group reset --to-offset
    100`; the member commits 500 again at its generation: ILLEGAL_GENERATION, and the
    committed offset stays 100. It is told to rejoin; the next generation withholds the
    partition (its assignment comes back without it, and a commit is still refused), the
    one after hands it back and its commit is accepted."""
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    create_topic(b, topic, 1)
    produce(b, topic, 1, 0, 600)
    group = "fence-classic"
    tp = (topic, 0)
    with GroupConn.to(b) as m:
        gen, (mid,) = form_group([m], group, topic, [[0]], session_ms=10000)
        assert m.commit_v7(group, gen, mid, {tp: 500}) == {tp: NONE}
        out = reset(b, group, "--topic", f"{topic}:0", "--to-offset", "100")
        assert reset_rows(out, topic) == {0: ("500", 100)}, out
        assert committed(b, group, topic, 1) == {0: 100}

        assert m.commit_v7(group, gen, mid, {tp: 500}) == {tp: ILLEGAL_GENERATION}
        assert committed(b, group, topic, 1) == {0: 100}, "an old member's commit undid the reset"
        assert m.heartbeat_v3(group, gen, mid) == REBALANCE_IN_PROGRESS

        def rejoin(prev: int) -> tuple[int, dict]:
            r = m.join(group, member_id=mid, topics=[topic], session_ms=10000)
            assert r["error"] == NONE and r["generation"] > prev, r
            err, a = m.sync_v3(group, r["generation"], mid, {mid: assignment({topic: [0]})})
            assert err == NONE, err
            return r["generation"], decode_assignment(a)

        gen2, got = rejoin(gen)
        assert got.get(topic, []) == [], f"the reset partition was not withheld: {got}"
        assert m.commit_v7(group, gen2, mid, {tp: 500}) == {tp: ILLEGAL_GENERATION}
        assert m.commit_v7(group, gen, mid, {tp: 500}) == {tp: ILLEGAL_GENERATION}
        assert committed(b, group, topic, 1) == {0: 100}
        wait_for(lambda: m.heartbeat_v3(group, gen2, mid) == REBALANCE_IN_PROGRESS, 10,
                 what="the follow-up rebalance handing the partition out again")
        gen3, got = rejoin(gen2)
        assert got == {topic: [0]}, got
        assert m.commit_v7(group, gen3, mid, {tp: 150}) == {tp: NONE}
        assert committed(b, group, topic, 1) == {0: 150}
    broker.assert_alive()


def test_old_consumer_protocol_member_cannot_undo_the_reset(broker_factory, topic):
    """KIP-848: member A owns partition 0 at epoch E and commits 500; the CLI resets to 100;
    A commits 500 again at E: STALE_MEMBER_EPOCH, and the committed offset stays 100. A's
    next heartbeat revokes the partition; once A reports it gone it gets it back at a later
    epoch and its commit there is accepted."""
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    create_topic(b, topic, 1)
    produce(b, topic, 1, 0, 600)
    group = "fence848"
    tp = (topic, 0)
    a_id = new_member_id()
    with GroupConn.to(b) as a:
        r = a.consumer_group_heartbeat_v1(group, a_id, 0, topics=[topic], assignor="uniform", owned={},
                                          rebalance_timeout_ms=30000)
        assert r["error"] == 0, r
        ea = r["epoch"]
        (tid, parts), = r["assignment"].items()
        assert parts == [0]
        r = a.consumer_group_heartbeat_v1(group, a_id, ea, owned={tid: [0]})
        assert r["error"] == 0 and r["epoch"] == ea, r
        assert a.offset_commit_v9(group, ea, a_id, {tp: 500}) == {tp: 0}

        out = reset(b, group, "--topic", f"{topic}:0", "--to-offset", "100")
        assert reset_rows(out, topic) == {0: ("500", 100)}, out
        assert a.offset_commit_v9(group, ea, a_id, {tp: 500}) == {tp: STALE_MEMBER_EPOCH}
        assert committed(b, group, topic, 1) == {0: 100}, "an old member's commit undid the reset"

        r = a.consumer_group_heartbeat_v1(group, a_id, ea, owned={tid: [0]})
        assert r["error"] == 0, r
        assert r["assignment"] is not None and 0 not in r["assignment"].get(tid, []), \
            f"the reset partition was not revoked: {r}"
        epoch, held = r["epoch"], []

        def back():
            nonlocal epoch, held
            x = a.consumer_group_heartbeat_v1(group, a_id, epoch, owned={tid: held})
            assert x["error"] == 0, x
            epoch = x["epoch"]
            if x["assignment"] is not None:
                held = x["assignment"].get(tid, [])
            return held == [0] and epoch > ea

        wait_for(back, 10, interval=0.2, what=lambda: f"partition 0 back at a later epoch (epoch {epoch}, held {held})")
        assert a.offset_commit_v9(group, ea, a_id, {tp: 500}) == {tp: STALE_MEMBER_EPOCH}
        assert a.offset_commit_v9(group, epoch, a_id, {tp: 150}) == {tp: 0}
        assert committed(b, group, topic, 1) == {0: 150}
    broker.assert_alive()


# --------------------------------------------------------------------------- 3. the Admin API


def set_group_config(bootstrap: str, group: str, name: str, value: str | None):
    """confluent-kafka incremental_alter_configs on ConfigResource(GROUP, group)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    res = ConfigResource(ResourceType.GROUP, group,
                         incremental_configs=[ConfigEntry(name, value or "", incremental_operation=op)])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([res])[res].result(30)


def alter_offsets(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> list[str]:
    """confluent-kafka alter_consumer_group_offsets; the errors (request or per partition)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
    try:
        res = admin.alter_consumer_group_offsets([req], request_timeout=30)[group].result(60)
    except KafkaException as e:
        return [str(e.args[0])]
    errs = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in res.topic_partitions if tp.error]
    if not errs:
        got = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}
        assert got == offsets, got
    return errs


def test_admin_alter_offsets_on_a_live_group(broker_factory, topic, tmp_path):
    """AdminClient.alter_consumer_group_offsets with a running member: refused (Kafka's
    behaviour) and the commits stay. With phxq.offsets.live.reset.enable=true on the group
    the same call succeeds and the running member consumes again from the new offsets."""
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    n = 200
    create_topic(b, topic, PARTS)
    produce(b, topic, PARTS, 0, n)
    group = "admin-live"
    members: list[Member] = []
    try:
        members = [Member("confluent", b, topic, group, "range", tmp_path)]
        m = members[0]
        wait_for(lambda: covered(members) and not missing_since(members, [0], 0, n), 60,
                 what=lambda: f"everything consumed once ({m.describe()})")
        want_end = {p: n for p in range(PARTS)}
        wait_for(lambda: committed(b, group, topic) == want_end, 30, what="commits at the log end")

        target = {(topic, p): 50 for p in range(PARTS)}
        errs = alter_offsets(b, group, target)
        assert errs, "alter_consumer_group_offsets on a group with members succeeded without live resets enabled"
        assert all("UNKNOWN_MEMBER_ID" in e for e in errs), errs
        print(f"\nwithout {LIVE_RESET}: {errs}")
        time.sleep(1)
        assert committed(b, group, topic) == want_end, "a refused alter changed the commits"

        set_group_config(b, group, LIVE_RESET, "true")
        mark = len(m.records())
        t0 = time.monotonic()
        errs = alter_offsets(b, group, target)
        assert not errs, f"alter_consumer_group_offsets with {LIVE_RESET}=true: {errs}"
        wait_for(lambda: alive(members) and not missing_since(members, [mark], 50, n), 30,
                 what=lambda: f"records from 50 delivered again: missing {missing_since(members, [mark], 50, n)}; "
                 f"{m.describe()}")
        print(f"replayed {time.monotonic() - t0:.2f}s after the alter")
        wait_for(lambda: committed(b, group, topic) == want_end, 30,
                 what=lambda: f"commits back at the log end: {committed(b, group, topic)}")
        check_replay(members, [mark], 50, n)
        m.stop()
    finally:
        stop_all(members)
        broker.assert_alive()


# --------------------------------------------------------------------------- 4. group configs


def test_group_configs_describe_alter_and_heartbeat_interval(broker_factory, topic):
    """DescribeConfigs on the GROUP resource: the three configs with the broker's defaults
    (session 6000 ms and heartbeat 500 ms from the broker flags, live reset false).
    IncrementalAlterConfigs sets the heartbeat interval to 700: described as set on the
    group, and a KIP-848 member of that group is told 700 while another group's is told
    the broker's 500. Invalid values and unknown names are INVALID_CONFIG and change
    nothing; raw IncrementalAlterConfigs with Kafka's resource type 32 works the same."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    broker = broker_factory(*FAST)
    b = broker.bootstrap
    create_topic(b, topic, 1)
    group = "cfg-group"
    admin = AdminClient({"bootstrap.servers": b})

    def described() -> dict[str, str | None]:
        res = ConfigResource(ResourceType.GROUP, group)
        return {k: v.value for k, v in admin.describe_configs([res])[res].result(30).items()}

    d = described()
    assert d[SESSION_CFG] == str(SESSION_MS) and d[HEARTBEAT_CFG] == str(HB_MS) and d[LIVE_RESET] == "false", d
    with GroupConn.to(b) as c:
        err, msg, raw = c.describe_configs_v1(RESOURCE_GROUP, group)
        assert err == 0, (err, msg)
        assert {k: raw[k][0] for k in (SESSION_CFG, HEARTBEAT_CFG, LIVE_RESET)} == \
            {SESSION_CFG: str(SESSION_MS), HEARTBEAT_CFG: str(HB_MS), LIVE_RESET: "false"}, raw
        assert raw[SESSION_CFG][2] == STATIC_BROKER_CONFIG and raw[LIVE_RESET][2] == DEFAULT_CONFIG, raw

    set_group_config(b, group, HEARTBEAT_CFG, "700")
    d = described()
    assert d[HEARTBEAT_CFG] == "700" and d[SESSION_CFG] == str(SESSION_MS), d

    def refused(name: str, value: str) -> None:
        with pytest.raises(KafkaException) as e:
            set_group_config(b, group, name, value)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value

    refused(SESSION_CFG, "abc")
    refused("consumer.no.such.config", "1")
    refused(HEARTBEAT_CFG, str(SESSION_MS))  # must be below the session timeout
    refused(LIVE_RESET, "yes")
    assert described() == d, "a refused change changed something"

    with GroupConn.to(b) as c:
        assert c.incremental_alter_configs_v0(RESOURCE_GROUP, group, [(SESSION_CFG, CONFIG_SET, "abc")])[0] \
            == INVALID_CONFIG
        assert c.incremental_alter_configs_v0(RESOURCE_GROUP, group, [("nope", CONFIG_SET, "1")])[0] == INVALID_CONFIG
        assert c.incremental_alter_configs_v0(RESOURCE_GROUP, group, [(LIVE_RESET, CONFIG_SET, "true")]) == (0, None)
        err, _, raw = c.describe_configs_v1(RESOURCE_GROUP, group)
        assert err == 0 and raw[LIVE_RESET][:1] == ("true",) and raw[LIVE_RESET][2] == GROUP_CONFIG_SOURCE, raw
        assert raw[HEARTBEAT_CFG][0] == "700" and raw[HEARTBEAT_CFG][2] == GROUP_CONFIG_SOURCE, raw
        assert raw[SESSION_CFG][0] == str(SESSION_MS), raw

        # the KIP-848 heartbeat interval follows the group's config, per group
        mid = new_member_id()
        r = c.consumer_group_heartbeat_v1(group, mid, 0, topics=[topic], owned={}, rebalance_timeout_ms=30000)
        assert r["error"] == 0 and r["interval"] == 700, r
        other = c.consumer_group_heartbeat_v1("cfg-other", new_member_id(), 0, topics=[topic], owned={},
                                              rebalance_timeout_ms=30000)
        assert other["error"] == 0 and other["interval"] == HB_MS, other
        # a change reaches a running member at its next heartbeat; deleting goes back to the default
        assert c.incremental_alter_configs_v0(RESOURCE_GROUP, group, [(HEARTBEAT_CFG, CONFIG_SET, "900")]) == (0, None)
        r = c.consumer_group_heartbeat_v1(group, mid, r["epoch"], owned=r["assignment"])
        assert r["error"] == 0 and r["interval"] == 900, r
        assert c.incremental_alter_configs_v0(RESOURCE_GROUP, group, [(HEARTBEAT_CFG, CONFIG_DELETE, None)]) \
            == (0, None)
        r = c.consumer_group_heartbeat_v1(group, mid, r["epoch"], owned=None)
        assert r["error"] == 0 and r["interval"] == HB_MS, r
    assert described()[HEARTBEAT_CFG] == str(HB_MS)
    broker.assert_alive()
