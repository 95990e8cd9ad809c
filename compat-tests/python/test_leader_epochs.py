"""Leader epochs (KIP-320) in a three-node cluster: the epoch in Metadata is the store
group's Raft term and grows across a failover, every batch a Fetch returns carries the
epoch it was appended in, OffsetForLeaderEpoch says where each epoch ends, stale and
future epochs are refused as Kafka refuses them, and a consumer that was reading before
the leader was killed goes on after it at the next offset, without a reset."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from phxq_wire import Conn, Dec, Enc, parse_batches

FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 74, 75


def metadata_v7(bootstrap: str, topic: str) -> tuple[int, int]:
    """(leader, leader epoch) of partition 0 of `topic`, as this broker answers."""
    with Conn.to(bootstrap) as c:
        d: Dec = c.call(3, 7, Enc().array([topic], lambda e, t: e.string(t)).i8(0).build())
        d.i32()
        d.array(lambda x: (x.i32(), x.string(), x.i32(), x.string()))
        d.string()
        d.i32()

        def part(y):
            err, index, leader, epoch = y.i16(), y.i32(), y.i32(), y.i32()
            y.array(lambda z: z.i32()), y.array(lambda z: z.i32()), y.array(lambda z: z.i32())
            return err, index, leader, epoch

        topics = d.array(lambda x: (x.i16(), x.string(), x.i8(), x.array(part)))
        (err, _, _, parts), = topics
        (perr, _, leader, epoch), = parts
        assert err == 0 and perr == 0, (err, perr)
        return leader, epoch


def offset_for_leader_epoch(bootstrap: str, topic: str, epoch: int, current: int = -1) -> tuple[int, int, int]:
    """OffsetForLeaderEpoch v2 for partition 0: (error, leader epoch, end offset)."""
    with Conn.to(bootstrap) as c:
        body = Enc().array([topic], lambda e, t: e.string(t).array(
            [0], lambda e2, p: e2.i32(p).i32(current).i32(epoch))).build()
        d = c.call(23, 2, body)
        d.i32()
        topics = d.array(lambda x: (x.string(), x.array(lambda y: (y.i16(), y.i32(), y.i32(), y.i64()))))
        (_, [(err, _, leader_epoch, end)]), = topics
        return err, leader_epoch, end


def batch_epochs(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(base offset, partition leader epoch) of every batch of partition 0."""
    with Conn.to(bootstrap) as c:
        answer = c.fetch_v4(topic, 0, 0)
    assert answer["error"] == 0, answer
    records = answer["records"]
    out, pos = [], 0
    for b in parse_batches(records):
        out.append((b.base_offset, int.from_bytes(records[pos + 12:pos + 16], "big", signed=True)))
        pos += 12 + int.from_bytes(records[pos + 8:pos + 12], "big")
    return out


def produce(bootstrap: str, topic: str, values: list[str]):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    errors = []
    for v in values:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=lambda e, m: errors.append(e))
        p.flush(60)
    assert errors == [None] * len(values), errors


def test_epochs_grow_across_a_failover_and_consumers_go_on(cluster):
    topic = "epochs"
    cluster.create_topic(topic, 1)
    leader = cluster.wait_leader(topic, 0)
    addr = cluster.nodes[leader].bootstrap
    produce(cluster.bootstrap, topic, [f"a{i}" for i in range(5)])
    _, e1 = metadata_v7(addr, topic)
    assert e1 >= 1
    assert {e for _, e in batch_epochs(addr, topic)} == {e1}
    assert offset_for_leader_epoch(addr, topic, e1) == (0, e1, 5)

    # A consumer reads the first five, then the leader dies.
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "epochs",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []

    def read(n: int, timeout: float):
        deadline = time.monotonic() + timeout
        while len(got) < n:
            assert time.monotonic() < deadline, f"read {got}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                # Transport errors while the leader is gone are retried; a reset is not allowed.
                assert m.error().code() != KafkaError._AUTO_OFFSET_RESET, m.error()
                continue
            got.append((m.offset(), m.value().decode()))

    read(5, 30)
    cluster.kill9(leader)
    cluster.wait_leader(topic, 0, not_on=leader)
    produce(cluster.bootstrap, topic, [f"b{i}" for i in range(5)])
    read(10, 60)
    c.close()
    assert got == [(i, f"a{i}") for i in range(5)] + [(5 + i, f"b{i}") for i in range(5)]

    # Under load the new leader may lose its leadership again: look once it has held a while.
    def settled():
        first = cluster.leader(topic, 0)
        time.sleep(1.0)
        if first is None or cluster.leader(topic, 0) != first:
            return None
        try:
            a = cluster.nodes[first].bootstrap
            return a, metadata_v7(a, topic)[1], batch_epochs(a, topic)
        except (AssertionError, OSError):
            return None

    addr2, e2, epochs = cluster.wait_for(settled, 60, "a leader that holds")
    assert e2 > e1, (e1, e2)
    assert [base for base, _ in epochs] == list(range(10))
    assert [e for base, e in epochs if base < 5] == [e1] * 5
    later = {e for base, e in epochs if base >= 5}
    assert len(later) == 1 and e1 < min(later) <= e2, (e1, later, e2)
    # e1 ends where e2's first batch starts; e2 runs to the end.
    assert offset_for_leader_epoch(addr2, topic, e1, current=e2) == (0, e1, 5)
    assert offset_for_leader_epoch(addr2, topic, min(later), current=e2)[2] >= 10
    assert offset_for_leader_epoch(addr2, topic, e2, current=e2) == (0, e2, 10)
    assert offset_for_leader_epoch(addr2, topic, e2 + 1, current=e2) == (0, -1, -1)
    # A client with a stale epoch is fenced; one ahead of the broker is told it is unknown.
    assert offset_for_leader_epoch(addr2, topic, e1, current=e1)[0] == FENCED_LEADER_EPOCH
    assert offset_for_leader_epoch(addr2, topic, e1, current=e2 + 5)[0] == UNKNOWN_LEADER_EPOCH

    # The killed node comes back as a follower and answers Metadata with the same leader
    # and epoch as the leader does.
    cluster.start(leader)
    back = cluster.nodes[leader].bootstrap

    def reported():
        try:
            return metadata_v7(back, topic)
        except (AssertionError, OSError):
            return None  # no leader known yet, or not listening yet

    def agree():
        # The preferred leader may take its leadership back meanwhile: compare with
        # whoever leads now.
        now = cluster.leader(topic, 0)
        if now is None:
            return False
        try:
            own = metadata_v7(cluster.nodes[now].bootstrap, topic)
        except (AssertionError, OSError):
            return False
        return own[0] == now and reported() == own

    cluster.wait_for(agree, 30, "the restarted node to report the leader and epoch the leader does")


def fetch_v13(bootstrap: str, topic_id: bytes, offset: int, current_epoch: int = -1) -> tuple[bytes, list]:
    """Fetch v13 (topics by id) of partition 0: (topic id answered, [(error, high
    watermark, records)])."""
    body = (Enc().i32(-1).i32(0).i32(1).i32(1 << 20).i8(0).i32(0).i32(-1)
            .carray([topic_id], lambda e, t: e.uuid(t).carray(
                [0], lambda e2, p: e2.i32(p).i32(current_epoch).i64(offset).i32(-1).i64(-1)
                .i32(1 << 20).tags()).tags())
            .carray([], lambda e, t: None).cstring("").tags().build())
    with Conn.to(bootstrap) as c:
        d = c.call_flex(1, 13, body)
    d.i32(), d.i16(), d.i32()

    def part(y):
        y.i32()
        err, hw = y.i16(), y.i64()
        y.i64(), y.i64()
        y.carray(lambda z: (z.i64(), z.i64(), z.tags()))
        y.i32()
        n = y.uvarint()
        records = b"" if n == 0 else y.raw(n - 1)
        y.tags()
        return err, hw, records

    topics = d.carray(lambda x: (x.uuid(), x.carray(part), x.tags()))
    (tid, parts, _), = topics
    return tid, parts


def topic_id_of(bootstrap: str, topic: str) -> bytes:
    """The topic's id, from Metadata v10."""
    with Conn.to(bootstrap) as c:
        d = c.call_flex(3, 10, Enc().carray([topic], lambda e, t: e.uuid(bytes(16)).cstring(t).tags())
                        .i8(0).i8(0).i8(0).tags().build())
    d.i32()
    d.carray(lambda x: (x.i32(), x.cstring(), x.i32(), x.cstring(), x.tags()))
    d.cstring(), d.i32()

    def part(y):
        y.i16(), y.i32(), y.i32(), y.i32()
        y.carray(lambda z: z.i32()), y.carray(lambda z: z.i32()), y.carray(lambda z: z.i32())
        y.tags()

    topics = d.carray(lambda x: (x.i16(), x.cstring(), x.uuid(), x.i8(), x.carray(part), x.i32(), x.tags()))
    (err, name, tid, *_), = topics
    assert err == 0 and name == topic, (err, name)
    return tid


def test_fetch_by_topic_id(cluster):
    """Fetch v13+ (what current clients use) names topics by id: records come back for
    a known id, UNKNOWN_TOPIC_ID for an unknown one, FENCED_LEADER_EPOCH for a stale
    epoch."""
    import uuid

    topic = "by-id"
    cluster.create_topic(topic, 1)
    leader = cluster.wait_leader(topic, 0)
    addr = cluster.nodes[leader].bootstrap
    produce(cluster.bootstrap, topic, ["x", "y", "z"])
    topic_id = topic_id_of(addr, topic)
    tid, [(err, hw, records)] = fetch_v13(addr, topic_id, 0)
    assert (tid, err, hw) == (topic_id, 0, 3)
    assert [b.base_offset for b in parse_batches(records)] == [0, 1, 2]
    _, [(err, _, _)] = fetch_v13(addr, uuid.uuid4().bytes, 0)
    assert err == 100  # UNKNOWN_TOPIC_ID
    _, e = metadata_v7(addr, topic)
    _, [(err, _, records)] = fetch_v13(addr, topic_id, 0, current_epoch=e - 1)
    assert err == FENCED_LEADER_EPOCH and not records
