"""Kafka transactions (KIP-98) with real, unmodified clients: kafka-python, aiokafka and
kafkajs (rdkafka: compat-tests/tests/rdkafka_transactions.rs).

Each test starts a broker with 3 store groups, so the 6 partitions of a topic (and the
transaction and group coordinators' state) spread over several Raft groups. What a user
checks:
- a transactional producer commits a transaction over all 6 partitions, then sends one it
  flushes and aborts, then commits another;
- a read_committed consumer gets exactly the committed records, in order per partition;
- a read_uncommitted consumer gets all of them, committed and aborted, and never a
  control record (transaction marker) as a record;
- consume-transform-produce: the output and the consumer group's offsets are committed in
  one transaction (send_offsets_to_transaction / transaction.sendOffsets); afterwards the
  group's committed offsets are the input's end offsets and the output, read_committed,
  holds each input record once.

As in Kafka, EndTxn answers once the decision is durable and the markers follow right
after: before reading, a test waits (with a deadline) until the last stable offsets
(ListOffsets read_committed, through the client under test) reach the end of the log.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from phxq_clients import node

PARTS = 6
PER_PARTITION = 5  # records per partition per transaction
STORE_GROUPS_TOML = "store_groups = 3\n"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def txn_broker(broker_factory, tmp_path):
    cfg = tmp_path / "phxq.toml"
    cfg.write_text(STORE_GROUPS_TOML)
    return broker_factory("--config", str(cfg))


def create_topics(bootstrap: str, *topics: str, partitions: int = PARTS):
    """Topic setup only (with confluent-kafka's admin client)."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    for t, f in a.create_topics([NewTopic(t, partitions, 1) for t in topics]).items():
        f.result(30)


def txn_values(tag: str, per_partition: int = PER_PARTITION) -> list[tuple[int, str]]:
    """(partition, value) of one transaction: `per_partition` records on every partition."""
    return [(i % PARTS, f"{tag}-{i}") for i in range(per_partition * PARTS)]


def by_partition(pairs) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for p, v in pairs:
        out.setdefault(p, []).append(v)
    return out


COMMITTED_1 = txn_values("c1")
ABORTED = txn_values("aborted")
COMMITTED_2 = txn_values("c2")
# each partition: 5 + 5 + 5 records and 3 markers
LOG_END = 3 * PER_PARTITION + 3


def check_read_committed(got: list[tuple[int, int, str]]):
    """Exactly the committed records, in order per partition, none missing, none aborted."""
    values = [v for _, _, v in got]
    assert not [v for v in values if v.startswith("aborted")], "read_committed delivered aborted records"
    assert by_partition((p, v) for p, _, v in got) == by_partition(COMMITTED_1 + COMMITTED_2), \
        "read_committed records per partition"
    assert_offsets_increase(got)


def check_read_uncommitted(got: list[tuple[int, int, str]]):
    """All records, committed and aborted, in produce order per partition; nothing else
    (a control record would show up as an extra record, or with a foreign value)."""
    assert by_partition((p, v) for p, _, v in got) == by_partition(COMMITTED_1 + ABORTED + COMMITTED_2), \
        "read_uncommitted records per partition"
    assert len(got) == 3 * PER_PARTITION * PARTS
    assert_offsets_increase(got)
    # the markers take an offset each: the records the consumer sees skip them
    for p in range(PARTS):
        offs = [o for pp, o, _ in got if pp == p]
        assert offs == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16], f"partition {p} offsets {offs}"


def assert_offsets_increase(got):
    for p in range(PARTS):
        offs = [o for pp, o, _ in got if pp == p]
        assert offs == sorted(set(offs)), f"partition {p}: offsets not increasing: {offs}"


def wait_for(cond, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        ok, last = cond()
        if ok:
            return last
        assert time.monotonic() < deadline, f"{what}: still {last} after {timeout}s"
        time.sleep(0.05)


def group_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets (kafka-python admin, OffsetFetch)."""
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp.partition: om.offset for tp, om in admin.list_group_offsets({group: None})[group].items()}
    finally:
        admin.close()


# --------------------------------------------------------------------------- kafka-python

def kp_txn_producer(bootstrap: str, txn_id: str):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id, enable_idempotence=True,
                      acks="all", linger_ms=5)
    p.init_transactions()
    return p


def kp_send_all(p, topic: str, recs: list[tuple[int, str]]):
    return [p.send(topic, key=v.encode(), value=v.encode(), partition=part) for part, v in recs]


def kp_end_offsets(bootstrap: str, topic: str, isolation: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level=isolation)
    try:
        end = c.end_offsets([TopicPartition(topic, p) for p in range(PARTS)])
        return {tp.partition: o for tp, o in end.items()}
    finally:
        c.close()


def kp_wait_lso(bootstrap: str, topic: str, want: int):
    wait_for(lambda: (lambda e: (set(e.values()) == {want}, e))(kp_end_offsets(bootstrap, topic, "read_committed")),
             f"{topic}: read_committed end offsets (last stable offsets) should all be {want}")


def kp_consume(bootstrap: str, topic: str, isolation: str, timeout: float = 20.0) -> list[tuple[int, int, str]]:
    """Everything from the beginning up to the end offsets (for read_committed: the last
    stable offsets), as (partition, offset, value)."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation, auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, \
                f"{isolation} consume timed out: {len(out)} records, positions " \
                f"{ {tp.partition: c.position(tp) for tp in tps} }, end {end}"
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    out.append((m.partition, m.offset, m.value.decode()))
        return out
    finally:
        c.close()


def test_kafka_python_commit_abort_commit(txn_broker, topic):
    bs = txn_broker.bootstrap
    create_topics(bs, topic)
    p = kp_txn_producer(bs, "kp-txn")
    try:
        p.begin_transaction()
        futs = kp_send_all(p, topic, COMMITTED_1)
        p.commit_transaction()
        assert all(f.get(timeout=10).offset >= 0 for f in futs)

        p.begin_transaction()
        kp_send_all(p, topic, ABORTED)
        p.flush(timeout=20)  # an abort drops unsent records: these must reach the log
        p.abort_transaction()

        p.begin_transaction()
        futs = kp_send_all(p, topic, COMMITTED_2)
        p.commit_transaction()
        assert all(f.get(timeout=10).offset >= 0 for f in futs)
    finally:
        p.close(timeout=10)

    kp_wait_lso(bs, topic, LOG_END)
    assert kp_end_offsets(bs, topic, "read_uncommitted") == {p: LOG_END for p in range(PARTS)}
    check_read_committed(kp_consume(bs, topic, "read_committed"))
    check_read_uncommitted(kp_consume(bs, topic, "read_uncommitted"))


def test_kafka_python_consume_transform_produce(txn_broker, topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    bs = txn_broker.bootstrap
    src, dst, group = f"{topic}-in", f"{topic}-out", f"{topic}-group"
    create_topics(bs, src, dst)
    n = 60
    plain = KafkaProducer(bootstrap_servers=bs, acks="all")
    for i in range(n):
        plain.send(src, key=f"k{i}".encode(), value=f"in-{i}".encode(), partition=i % PARTS)
    plain.flush(20)
    plain.close()

    c = KafkaConsumer(src, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", isolation_level="read_committed")
    p = kp_txn_producer(bs, "kp-ctp")
    try:
        p.begin_transaction()
        nxt: dict[int, int] = {}
        inputs: dict[int, list[str]] = {}
        deadline = time.monotonic() + 20
        while sum(len(v) for v in inputs.values()) < n:
            assert time.monotonic() < deadline, f"consumed only {inputs}"
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    v = m.value.decode()
                    inputs.setdefault(m.partition, []).append(v)
                    p.send(dst, key=m.key, value=v.upper().encode(), partition=m.partition)
                    nxt[m.partition] = m.offset + 1
        offsets = {TopicPartition(src, part): OffsetAndMetadata(o, "", -1) for part, o in nxt.items()}
        p.send_offsets_to_transaction(offsets, c.group_metadata())
        p.commit_transaction()
    finally:
        p.close(timeout=10)
        c.close(autocommit=False)

    end = kp_end_offsets(bs, src, "read_uncommitted")
    assert end == {part: n // PARTS for part in range(PARTS)}
    wait_for(lambda: (lambda o: (o == end, o))(group_offsets(bs, group)),
             f"committed offsets of {group} should be the input end offsets {end}")

    kp_wait_lso(bs, dst, n // PARTS + 1)  # the records and one marker per partition
    out = kp_consume(bs, dst, "read_committed")
    assert by_partition((part, v) for part, _, v in out) == \
        {part: [v.upper() for v in vs] for part, vs in inputs.items()}
    assert sorted(v for _, _, v in out) == sorted(f"IN-{i}" for i in range(n)), "each input exactly once"


# --------------------------------------------------------------------------- aiokafka

async def ak_end_offsets(bootstrap: str, topic: str, isolation: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level=isolation)
    await c.start()
    try:
        end = await c.end_offsets([TopicPartition(topic, p) for p in range(PARTS)])
        return {tp.partition: o for tp, o in end.items()}
    finally:
        await c.stop()


async def ak_wait_lso(bootstrap: str, topic: str, want: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        e = await ak_end_offsets(bootstrap, topic, "read_committed")
        if set(e.values()) == {want}:
            return
        assert time.monotonic() < deadline, f"{topic}: last stable offsets {e}, want {want} everywhere"
        await asyncio.sleep(0.05)


async def ak_consume(bootstrap: str, topic: str, isolation: str, timeout: float = 20.0):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         isolation_level=isolation, auto_offset_reset="earliest")
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout

        async def positions():
            return {tp: await c.position(tp) for tp in tps}

        while any(pos < end[tp] for tp, pos in (await positions()).items()):
            assert time.monotonic() < deadline, \
                f"{isolation} consume timed out: {len(out)} records, positions {await positions()}, end {end}"
            for tp, msgs in (await c.getmany(*tps, timeout_ms=200)).items():
                for m in msgs:
                    out.append((m.partition, m.offset, m.value.decode()))
        return out
    finally:
        await c.stop()


def test_aiokafka_commit_abort_commit(txn_broker, topic):
    from aiokafka import AIOKafkaProducer
    bs = txn_broker.bootstrap
    create_topics(bs, topic)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id="ak-txn", enable_idempotence=True,
                             acks="all", linger_ms=5)
        await p.start()  # InitProducerId with the transactional id
        try:
            async def send_all(recs):
                futs = [await p.send(topic, key=v.encode(), value=v.encode(), partition=part)
                        for part, v in recs]
                return await asyncio.wait_for(asyncio.gather(*futs), 20)

            async with p.transaction():
                await send_all(COMMITTED_1)
            await p.begin_transaction()
            await send_all(ABORTED)  # acknowledged: in the log before the abort
            await p.abort_transaction()
            async with p.transaction():
                await send_all(COMMITTED_2)
        finally:
            await p.stop()

        await ak_wait_lso(bs, topic, LOG_END)
        assert await ak_end_offsets(bs, topic, "read_uncommitted") == {p: LOG_END for p in range(PARTS)}
        check_read_committed(await ak_consume(bs, topic, "read_committed"))
        check_read_uncommitted(await ak_consume(bs, topic, "read_uncommitted"))

    asyncio.run(run())


def test_aiokafka_consume_transform_produce(txn_broker, topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    bs = txn_broker.bootstrap
    src, dst, group = f"{topic}-in", f"{topic}-out", f"{topic}-group"
    create_topics(bs, src, dst)
    n = 60

    async def run():
        plain = AIOKafkaProducer(bootstrap_servers=bs, acks="all")
        await plain.start()
        try:
            for i in range(n):
                await plain.send_and_wait(src, key=f"k{i}".encode(), value=f"in-{i}".encode(), partition=i % PARTS)
        finally:
            await plain.stop()

        c = AIOKafkaConsumer(src, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed")
        p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id="ak-ctp", enable_idempotence=True, acks="all")
        await c.start()
        await p.start()
        inputs: dict[int, list[str]] = {}
        try:
            async with p.transaction():
                nxt: dict[TopicPartition, int] = {}
                deadline = time.monotonic() + 20
                while sum(len(v) for v in inputs.values()) < n:
                    assert time.monotonic() < deadline, f"consumed only {inputs}"
                    for tp, msgs in (await c.getmany(timeout_ms=200)).items():
                        for m in msgs:
                            v = m.value.decode()
                            inputs.setdefault(m.partition, []).append(v)
                            await p.send(dst, key=m.key, value=v.upper().encode(), partition=m.partition)
                            nxt[tp] = m.offset + 1
                await p.send_offsets_to_transaction(nxt, group)
        finally:
            await p.stop()
            await c.stop()

        end = await ak_end_offsets(bs, src, "read_uncommitted")
        assert end == {part: n // PARTS for part in range(PARTS)}
        await ak_wait_lso(bs, dst, n // PARTS + 1)
        out = await ak_consume(bs, dst, "read_committed")
        return end, inputs, out

    end, inputs, out = asyncio.run(run())
    wait_for(lambda: (lambda o: (o == end, o))(group_offsets(bs, group)),
             f"committed offsets of {group} should be the input end offsets {end}")
    assert by_partition((part, v) for part, _, v in out) == \
        {part: [v.upper() for v in vs] for part, vs in inputs.items()}
    assert sorted(v for _, _, v in out) == sorted(f"IN-{i}" for i in range(n)), "each input exactly once"


# --------------------------------------------------------------------------- kafkajs

def test_kafkajs_commit_abort_commit(txn_broker, topic):
    """kafkajs 2.2.4 (compat-tests/js/transactions.js, op txn): its consumers read each
    partition up to a non-transactional sentinel appended after the three transactions."""
    bs = txn_broker.bootstrap
    create_topics(bs, topic)
    res = node("transactions.js", {"brokers": [bs], "op": "txn", "topic": topic, "partitions": PARTS,
                                   "perPartition": PER_PARTITION, "transactionalId": "js-txn"}, timeout=60)
    for name, check in (("committed", check_read_committed), ("uncommitted", check_read_uncommitted)):
        got = [tuple(r) for r in res[name]]
        for part in range(PARTS):
            mine = [r for r in got if r[0] == part]
            assert mine and mine[-1][2] == "END", f"{name}: partition {part} does not end with the sentinel"
            # the sentinel follows the third transaction's records (and usually its marker,
            # which the coordinator writes right after EndTxn answered)
            assert mine[-1][1] in (LOG_END - 1, LOG_END), f"{name}: sentinel of partition {part} at {mine[-1][1]}"
        check([r for r in got if r[2] != "END"])


def test_kafkajs_consume_transform_produce(txn_broker, topic):
    """kafkajs transaction.sendOffsets: one transaction per fetched batch, each with the
    output records and the group's offsets."""
    from kafka import KafkaProducer
    bs = txn_broker.bootstrap
    src, dst, group = f"{topic}-in", f"{topic}-out", f"{topic}-group"
    create_topics(bs, src, dst)
    n = 60
    plain = KafkaProducer(bootstrap_servers=bs, acks="all")
    for i in range(n):
        plain.send(src, key=f"k{i}".encode(), value=f"in-{i}".encode(), partition=i % PARTS)
    plain.flush(20)
    plain.close()

    res = node("transactions.js", {"brokers": [bs], "op": "ctp", "input": src, "output": dst, "group": group,
                                   "transactionalId": "js-ctp", "count": n}, timeout=60)
    assert res["processed"] == n

    end = kp_end_offsets(bs, src, "read_uncommitted")
    assert end == {part: n // PARTS for part in range(PARTS)}
    wait_for(lambda: (lambda o: (o == end, o))(group_offsets(bs, group)),
             f"committed offsets of {group} should be the input end offsets {end}")
    # the output's log end: its records plus one marker per transaction; wait until no
    # transaction is open (LSO == log end), then read it committed
    wait_for(lambda: (lambda rc, ru: (rc == ru, (rc, ru)))(
        kp_end_offsets(bs, dst, "read_committed"), kp_end_offsets(bs, dst, "read_uncommitted")),
        f"{dst}: last stable offsets should reach the log end")
    out = kp_consume(bs, dst, "read_committed")
    assert sorted(v for _, _, v in out) == sorted(f"IN-{i}" for i in range(n)), "each input exactly once"
    for part in range(PARTS):
        assert [v for pp, _, v in out if pp == part] == [f"IN-{i}" for i in range(part, n, PARTS)], \
            f"output partition {part}"
