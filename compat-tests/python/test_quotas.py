"""Client quotas (issue 12, part 1): Kafka's DescribeClientQuotas (48) and AlterClientQuotas
(49) from kafka-python's own protocol classes, `phxq quota`, and enforcement seen by
unmodified librdkafka clients.

Enforcement is checked only from below: a client held to N bytes/s cannot move M bytes in
much less than M/N seconds (the first second's worth comes at once), however fast the
machine. Nothing asserts an upper bound on time; the accuracy figures belong to a
benchmark, not to a test.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

from conftest import PHXQ_BIN

INVALID_REQUEST = 42
RATE = 200_000  # bytes/s
RECORD = 1000
RECORDS = 1500  # 1.5 MB


def admin_call(bootstrap: str, request):
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async def go():
            return await a._manager.send(request)
        return a._manager.run(go)
    finally:
        a.close()


def entity(**parts):
    E = AlterClientQuotasRequest.EntryData.EntityData
    return [E(entity_type=k.replace("_", "-"), entity_name=v) for k, v in parts.items()]


def alter(bootstrap: str, ents, ops, validate_only=False):
    Entry = AlterClientQuotasRequest.EntryData
    Op = Entry.OpData
    req = AlterClientQuotasRequest(
        entries=[Entry(entity=ents, ops=[Op(key=k, value=float(v or 0), remove=v is None) for k, v in ops])],
        validate_only=validate_only)
    r = admin_call(bootstrap, req)
    return [(e.error_code, e.error_message or None) for e in r.entries]


def describe(bootstrap: str, components=(), strict=False) -> dict:
    C = DescribeClientQuotasRequest.ComponentData
    req = DescribeClientQuotasRequest(
        components=[C(entity_type=t, match_type=m, match=n) for t, m, n in components], strict=strict)
    r = admin_call(bootstrap, req)
    assert r.error_code == 0, r
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
            for entry in r.entries}


def test_quota_apis_with_kafka_python(broker):
    b = broker.bootstrap
    assert alter(b, entity(client_id="slow"), [("consumer_byte_rate", RATE)]) == [(0, None)]
    assert alter(b, entity(client_id=None), [("producer_byte_rate", 5e6)]) == [(0, None)]
    assert alter(b, entity(user="alice", client_id="app"), [("consumer_byte_rate", 1000)]) == [(0, None)]
    # validate_only writes nothing.
    assert alter(b, entity(client_id="dry"), [("consumer_byte_rate", 1)], validate_only=True) == [(0, None)]

    everything = describe(b)
    assert everything == {
        (("client-id", "slow"),): {"consumer_byte_rate": RATE},
        (("client-id", None),): {"producer_byte_rate": 5e6},
        (("user", "alice"), ("client-id", "app")): {"consumer_byte_rate": 1000},
    }
    # Match types: exact (0), default (1), any specified name (2); strict excludes entities
    # with other entity types.
    assert list(describe(b, [("client-id", 0, "app")], strict=True)) == []
    assert list(describe(b, [("client-id", 0, "app")])) == [(("user", "alice"), ("client-id", "app"))]
    assert list(describe(b, [("client-id", 1, None)])) == [(("client-id", None),)]
    assert len(describe(b, [("client-id", 2, None)])) == 2

    # What phxq does not enforce it refuses, with a message; nothing changes.
    code, msg = alter(b, entity(client_id="slow"), [("request_percentage", 50)])[0]
    assert code == INVALID_REQUEST and "request_percentage" in msg
    code, msg = alter(b, entity(ip="10.0.0.1"), [("consumer_byte_rate", 1)])[0]
    assert code == INVALID_REQUEST and "ip" in msg
    code, _ = alter(b, entity(client_id="slow"), [("consumer_byte_rate", -5)])[0]
    assert code == INVALID_REQUEST
    # Removing the last value removes the entity.
    assert alter(b, entity(user="alice", client_id="app"), [("consumer_byte_rate", None)]) == [(0, None)]
    assert describe(b) == {
        (("client-id", "slow"),): {"consumer_byte_rate": RATE},
        (("client-id", None),): {"producer_byte_rate": 5e6},
    }

    out = subprocess.run([PHXQ_BIN, "quota", "list", "--bootstrap", b], capture_output=True, text=True,
                         check=True).stdout
    assert "client-id=slow  consumer_byte_rate=200000" in out, out
    assert "client-id=<default>  producer_byte_rate=5000000" in out, out
    out = subprocess.run([PHXQ_BIN, "quota", "list", "--json", "--bootstrap", b], capture_output=True,
                         text=True, check=True).stdout
    listed = json.loads(out)
    assert {"entity": {"client-id": "slow"}, "values": {"consumer_byte_rate": RATE}} in listed, listed
    assert {"entity": {"client-id": None}, "values": {"producer_byte_rate": 5e6}} in listed, listed
    # Quotas live in the metadata Raft group: they survive a restart.
    broker.restart()
    assert describe(b)[(("client-id", "slow"),)] == {"consumer_byte_rate": RATE}


def produce(bootstrap: str, topic: str, client_id: str) -> float:
    # Small batches: a throttle is served after the response that incurred it (KIP-219),
    # so the last request's debt is never waited off; keep it small against the total.
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                  "compression.type": "none", "batch.size": 16384})
    start = time.monotonic()
    for i in range(RECORDS):
        p.produce(topic, value=b"%06d" % i + b"x" * (RECORD - 6), partition=0)
        p.poll(0)
    assert p.flush(60) == 0
    return time.monotonic() - start


def consume(bootstrap: str, topic: str, client_id: str) -> tuple[float, list[int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": f"g-{client_id}",
                  "enable.auto.commit": False, "fetch.max.bytes": 65536,
                  "message.max.bytes": 65536, "max.partition.fetch.bytes": 65536})
    c.assign([TopicPartition(topic, 0, 0)])
    offsets = []
    start = time.monotonic()
    deadline = start + 60
    while len(offsets) < RECORDS and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            assert m.value()[:6] == b"%06d" % m.offset()
            offsets.append(m.offset())
    elapsed = time.monotonic() - start
    c.close()
    return elapsed, offsets


def test_byte_rate_quotas_hold_librdkafka_clients_back(broker, topic):
    b = broker.bootstrap
    subprocess.run([PHXQ_BIN, "quota", "set", "--bootstrap", b, "--client-id", "slow-consumer",
                    "--consumer-byte-rate", str(RATE)], check=True, capture_output=True)
    subprocess.run([PHXQ_BIN, "quota", "set", "--bootstrap", b, "--client-id", "slow-producer",
                    "--producer-byte-rate", str(RATE)], check=True, capture_output=True)

    # 1.5 MB at 200 KB/s, the first second's worth free (and the last request's debt not
    # waited off, <= 64 KB): at least 6.2 s; allow 20% slack.
    floor = (RECORDS * RECORD / RATE - 1) * 0.8
    took = produce(b, topic, "slow-producer")
    assert took >= floor, f"a producer held to {RATE} B/s sent {RECORDS * RECORD} B in {took:.1f}s"

    took, offsets = consume(b, topic, "slow-consumer")
    assert offsets == list(range(RECORDS)), "every record, in order, none lost"
    assert took >= floor, f"a consumer held to {RATE} B/s fetched {RECORDS * RECORD} B in {took:.1f}s"

    # Another client id is not held back by their quotas (no timing asserted: it gets
    # every record, and the broker never throttled it).
    _, offsets = consume(b, topic, "unlimited")
    assert offsets == list(range(RECORDS))


def set_group_config(bootstrap: str, group: str, name: str, value: str | None):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    res = ConfigResource(ResourceType.GROUP, group,
                         incremental_configs=[ConfigEntry(name, value or "", incremental_operation=op)])
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result is in
    admin.incremental_alter_configs([res])[res].result()


def test_group_dequeue_limit_holds_the_whole_group_and_lifts_without_restart(broker, topic):
    """PhxQueue's dequeue speed limit: two members of a group limited to 1000 records/s
    together get no more than that (plus one second's burst and a batch per partition),
    while another group on the same topic is not held back; deleting the limit lets the
    same, still running, members catch up."""
    from confluent_kafka.admin import AdminClient, NewTopic
    b = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
    total = 30_000
    p = Producer({"bootstrap.servers": b, "linger.ms": 5, "batch.size": 16384})
    for i in range(total):
        p.produce(topic, value=b"%06d" % i, partition=i % 3)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    limit = 1000
    set_group_config(b, "limited", "phxq.consumer.records.per.sec", str(limit))
    # `phxq group config` shows it (and changes configs the same way).
    out = subprocess.run([PHXQ_BIN, "group", "config", "limited", "--bootstrap", b,
                          "--set", "phxq.consumer.bytes.per.sec=100000000"],
                         capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows["phxq.consumer.records.per.sec"] == [str(limit), "group"], out
    assert rows["phxq.consumer.bytes.per.sec"] == ["100000000", "group"], out
    as_json = json.loads(subprocess.run([PHXQ_BIN, "group", "config", "limited", "--json", "--bootstrap", b],
                                        capture_output=True, text=True, check=True).stdout)
    assert as_json["group"] == "limited"
    assert {"name": "phxq.consumer.records.per.sec", "value": str(limit), "source": "group"} in as_json["configs"]
    bad = subprocess.run([PHXQ_BIN, "group", "config", "limited", "--bootstrap", b,
                          "--set", "phxq.consumer.records.per.sec=fast"], capture_output=True, text=True)
    assert bad.returncode != 0 and "40" in bad.stderr, bad.stderr

    def consumers(group: str, n: int):
        cs = [Consumer({"bootstrap.servers": b, "group.id": group, "client.id": f"{group}-app",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False}) for _ in range(n)]
        for c in cs:
            c.subscribe([topic])
        return cs

    def drain(cs, seen: dict, seconds: float, until: int | None = None):
        end = time.monotonic() + seconds
        while time.monotonic() < end and (until is None or sum(len(v) for v in seen.values()) < until):
            for c in cs:
                for m in c.consume(500, 0.02):
                    if m.error() is None:
                        seen.setdefault(m.partition(), []).append(m.offset())

    limited, free = consumers("limited", 2), consumers("free", 1)
    got_limited, got_free = {}, {}
    start = time.monotonic()
    drain(limited + free, {}, 0)  # join both groups
    window = 10.0
    end = start + window
    while time.monotonic() < end:
        drain(limited, got_limited, 0.05)
        drain(free, got_free, 0.05)
    elapsed = time.monotonic() - start
    n_limited = sum(len(v) for v in got_limited.values())
    # Upper bound only: a slow machine can only make this smaller.
    assert 0 < n_limited <= limit * (elapsed + 1) + 3 * 500, \
        f"group limited to {limit}/s got {n_limited} records in {elapsed:.1f}s"
    # The other group is not held to it: it gets everything.
    drain(free, got_free, 20, until=total)
    assert sum(len(v) for v in got_free.values()) == total

    # Lift the limit: the same members (no restart) get the rest, in order per partition.
    set_group_config(b, "limited", "phxq.consumer.records.per.sec", None)
    drain(limited, got_limited, 30, until=total)
    for part, offsets in got_limited.items():
        assert offsets == list(range(len(offsets))), f"partition {part}: out of order or gaps"
    assert sum(len(v) for v in got_limited.values()) == total
    for c in limited + free:
        c.close()


def test_fetch_lock_gives_a_non_owner_member_nothing(broker, topic):
    """`phxq.consumer.fetch.lock.enable`: PhxQueue's consumer-group lock on dequeue. With two
    librdkafka members of distinct client ids each holding one partition, a fetch made with
    member B's identity (client id and host) of the partition A holds gets no records (a
    zombie or a confused member reads nothing it could not commit), B's own partition and
    a non-member are served, and switching the setting off serves it again."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from phxq_wire import Conn
    b = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    p = Producer({"bootstrap.servers": b})
    for i in range(200):
        p.produce(topic, value=b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    set_group_config(b, "locked", "phxq.consumer.fetch.lock.enable", "true")
    members = {cid: Consumer({"bootstrap.servers": b, "group.id": "locked", "client.id": cid,
                              "auto.offset.reset": "earliest"}) for cid in ("app-a", "app-b")}
    for c in members.values():
        c.subscribe([topic])
    owner: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while len(owner) < 2 and time.monotonic() < deadline:
        owner.clear()
        for cid, c in members.items():
            c.poll(0.1)
            for tp in c.assignment():
                owner[tp.partition] = cid
    assert len(owner) == 2 and set(owner.values()) == {"app-a", "app-b"}, owner
    held_by_a = next(part for part, cid in owner.items() if cid == "app-a")
    held_by_b = 1 - held_by_a
    host, port = b.split(":")

    def fetch_as(cid: str, part: int) -> bytes:
        with Conn(host, int(port), client_id=cid) as conn:
            return conn.fetch_v4(topic, part, 0)["records"]

    def eventually(cond, what):
        end = time.monotonic() + 15
        while not cond():
            assert time.monotonic() < end, what
            for c in members.values():
                c.poll(0.05)

    eventually(lambda: fetch_as("app-b", held_by_a) == b"", "B still reads A's partition")
    assert fetch_as("app-a", held_by_a) != b"", "the holder is served"
    assert fetch_as("app-b", held_by_b) != b"", "B is served its own partition"
    assert fetch_as("outsider", held_by_a) != b"", "a non-member is not this group's business"
    set_group_config(b, "locked", "phxq.consumer.fetch.lock.enable", "false")
    eventually(lambda: fetch_as("app-b", held_by_a) != b"", "switching the lock off serves B again")
    for c in members.values():
        c.close()


def test_topic_limit_within_a_group_holds_that_topic_only(broker, topic):
    """A group reading two topics with a limit on one of them
    (`phxq.consumer.topic.records.per.sec=<slow>:500`): the group gets no more than that of
    the slow topic (plus one second's burst and a batch per partition) while it drains the
    other topic completely in the same time; deleting the limit lets the same consumer get
    the rest, in order."""
    from confluent_kafka.admin import AdminClient, NewTopic
    b = broker.bootstrap
    slow, fast = f"{topic}-slow", f"{topic}-fast"
    admin = AdminClient({"bootstrap.servers": b})
    for f in admin.create_topics([NewTopic(slow, 2, 1), NewTopic(fast, 2, 1)]).values():
        f.result()
    per_topic = 10_000
    # Batches of at most ~250 records: a batch is delivered whole, so the bound below
    # allows two of them (one per partition) on top of the limit.
    p = Producer({"bootstrap.servers": b, "linger.ms": 5, "batch.size": 4096})
    for i in range(per_topic):
        for t in (slow, fast):
            p.produce(t, value=b"%06d" % i, partition=i % 2)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    limit = 500
    set_group_config(b, "per-topic", "phxq.consumer.topic.records.per.sec", f"{slow}:{limit}")
    c = Consumer({"bootstrap.servers": b, "group.id": "per-topic", "client.id": "per-topic-app",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([slow, fast])
    got: dict[tuple[str, int], list[int]] = {}

    def drain(seconds: float, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            for m in c.consume(500, 0.05):
                if m.error() is None:
                    got.setdefault((m.topic(), m.partition()), []).append(m.offset())

    def count(t: str) -> int:
        return sum(len(v) for (tp, _), v in got.items() if tp == t)

    start = time.monotonic()
    drain(60, until=lambda: count(fast) == per_topic)
    assert count(fast) == per_topic, f"the unlimited topic was held back: {count(fast)} of {per_topic}"
    drain(3)  # unlimited, this would drain the slow topic many times over
    elapsed = time.monotonic() - start
    # Upper bound only: a slow machine can only make this smaller.
    assert count(slow) <= limit * (elapsed + 1) + 2 * 500, \
        f"topic limited to {limit}/s gave {count(slow)} records in {elapsed:.1f}s"
    assert count(slow) < per_topic
    set_group_config(b, "per-topic", "phxq.consumer.topic.records.per.sec", None)
    drain(30, until=lambda: count(slow) == per_topic)
    for (t, part), offsets in got.items():
        assert offsets == list(range(len(offsets))), f"{t}-{part}: out of order or gaps"
    assert count(slow) == per_topic
    c.close()
