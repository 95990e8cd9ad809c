"""More brokers than the replication factor: four brokers, store groups of three, so each
broker hosts only some of them. Every broker still tells clients the right leader and
leader epoch of every partition (from the leaders the store groups record in the metadata
group) and the right coordinator of every consumer group, so a client that only knows a
broker outside a partition's store group produces, consumes and commits; after a leader
is killed, that broker reports the new leader and a higher epoch."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

pytestmark = pytest.mark.parametrize("cluster", [{"size": 4}], indirect=True)


def leaders_seen(addr: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """{partition: (leader, epoch)} in the Metadata of broker `addr`."""
    from phxq_wire import Conn, Enc
    with Conn.to(addr) as c:
        d = c.call(3, 7, Enc().array([topic], lambda e, t: e.string(t)).i8(0).build())
    d.i32()
    d.array(lambda x: (x.i32(), x.string(), x.i32(), x.string()))
    d.string(), d.i32()

    def part(y):
        err, index, leader, epoch = y.i16(), y.i32(), y.i32(), y.i32()
        y.array(lambda z: z.i32()), y.array(lambda z: z.i32()), y.array(lambda z: z.i32())
        return index, (leader if err == 0 else -1, epoch)

    (_, _, _, parts), = d.array(lambda x: (x.i16(), x.string(), x.i8(), x.array(part)))
    got = dict(parts)
    assert len(got) == partitions
    return got


def agreed(cluster, topic: str, partitions: int):
    """The leaders and epochs every live broker reports, when they all report the same
    known leaders; else None."""
    views = [leaders_seen(n.bootstrap, topic, partitions) for n in cluster.alive()]
    first = views[0]
    ok = all(v == first for v in views) and all(l >= 0 and e >= 1 for l, e in first.values())
    return first if ok else None


def test_every_broker_answers_for_every_store_group(cluster):
    topic, n = "wide", 6
    cluster.create_topic(topic, n)
    view = cluster.wait_for(lambda: agreed(cluster, topic, n), 30, "every broker to agree on the leaders")
    # A broker outside some store group: clients that only know it still get everywhere.
    # Store group g is on three brokers starting at broker g: broker 4 is not in group 1.
    outsider = 4
    addr = cluster.nodes[outsider].bootstrap
    p = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 5})
    for i in range(60):
        p.produce(topic, value=f"v{i}".encode(), partition=i % n)
    assert p.flush(60) == 0
    c = Consumer({"bootstrap.servers": addr, "group.id": "wide-readers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 60:
        assert time.monotonic() < deadline, f"read {len(got)} of 60"
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        got.append(m.value())
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, i) for i in range(n)], timeout=20)
    c.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(60))
    assert sum(tp.offset for tp in committed) == 60

    # Kill the leader of a partition: every broker, the outsider too, reports the new
    # leader with a higher epoch.
    leader, epoch = view[0]
    if leader == outsider:
        leader, epoch = next(v for v in view.values() if v[0] != outsider)
    cluster.kill9(leader)
    after = cluster.wait_for(
        lambda: (lambda v: v if v and all(l != leader for l, _ in v.values()) else None)(
            agreed(cluster, topic, n)), 30, "the brokers to agree on new leaders")
    moved = [p for p, (l, _) in view.items() if l == leader]
    assert moved and all(after[p][1] > view[p][1] for p in moved), (view, after)
