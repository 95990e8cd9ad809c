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
        records = c.fetch_v4(topic, 0, 0)["records"]
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
    new = cluster.wait_leader(topic, 0, not_on=leader)
    addr2 = cluster.nodes[new].bootstrap
    produce(cluster.bootstrap, topic, [f"b{i}" for i in range(5)])
    read(10, 60)
    c.close()
    assert got == [(i, f"a{i}") for i in range(5)] + [(5 + i, f"b{i}") for i in range(5)]

    _, e2 = metadata_v7(addr2, topic)
    assert e2 > e1, (e1, e2)
    epochs = batch_epochs(addr2, topic)
    assert [e for base, e in epochs if base < 5] == [e1] * sum(1 for base, _ in epochs if base < 5)
    assert {e for base, e in epochs if base >= 5} == {e2}
    # e1 ends where e2's first batch starts; e2 runs to the end.
    assert offset_for_leader_epoch(addr2, topic, e1, current=e2) == (0, e1, 5)
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

    cluster.wait_for(lambda: reported() == (new, e2), 30,
                     "the restarted node to report the new leader and epoch")
