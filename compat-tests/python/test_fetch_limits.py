"""Fetch response size limits (KIP-74), as consumers rely on them.

A Fetch response carries at most the request's max_bytes of record batches in total and
at most each partition's partition_max_bytes per partition, whole batches only; the one
exception is the first batch of the first non-empty partition, returned whole even when
it alone is larger, so a consumer always makes progress. Partitions left out because the
budget ran out are still in the response, with their high watermark. Across fetches on
one connection, partitions take turns at the budget, so none starves.

The real-client tests check what a user sees (librdkafka closes the connection on a
response larger than receive.message.max.bytes and then never consumes anything); the
raw-protocol tests check the bounds byte for byte.
"""

from __future__ import annotations

import logging
import math
import random
import re
import string
import struct
import time

import pytest

from phxq_clients import (
    Rec, assert_same_records, confluent_consumer, confluent_produce, node, now_ms,
)
from phxq_wire import Conn, Record, batch_spans, build_batch

_PATTERN = (string.ascii_letters * 4000).encode()


def value_for(p: int, i: int, size: int) -> bytes:
    """A `size`-byte ASCII value that names its partition and index."""
    head = f"p{p}-{i:07d}-".encode()
    start = (p * 7 + i) % 52
    return head + _PATTERN[start:start + size - len(head)]


def create_topic(bootstrap: str, topic: str, partitions: int):
    with Conn.to(bootstrap) as c:
        err, msg = c.create_topics_v2([(topic, partitions)])[topic]
    assert err == 0, f"CreateTopics {topic} ({partitions} partitions): error {err} {msg}"


def produce_small_records(bootstrap: str, topic: str, partitions: int, bytes_per_partition: int,
                          value_size: int = 100, **producer_conf) -> list[Rec]:
    """About bytes_per_partition of value_size-byte values in every partition, produced
    round-robin with confluent-kafka; returns the records with their offsets."""
    per_partition = bytes_per_partition // value_size
    ts = now_ms() - 60_000
    recs = [Rec(p, -1, None, value_for(p, i, value_size), (), ts + i)
            for i in range(per_partition) for p in range(partitions)]
    return confluent_produce(bootstrap, topic, recs, **producer_conf)


def end_offsets(sent: list[Rec]) -> dict[int, int]:
    end: dict[int, int] = {}
    for r in sent:
        end[r.partition] = max(end.get(r.partition, 0), r.offset + 1)
    return end


def counts(recs) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in recs:
        out[r.partition] = out.get(r.partition, 0) + 1
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- confluent-kafka

class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def confluent_read(bootstrap: str, topic: str, end: dict[int, int], conf: dict, timeout: float,
                   stop=None) -> tuple[list[Rec], list[str]]:
    """Assign every partition of `end` from offset 0 and read until each reaches its end
    offset, `stop(records)` says so, or the timeout passes. Returns the records in the
    order received and what librdkafka reported on the way (errors and log lines), for
    failure messages."""
    from confluent_kafka import KafkaError, TopicPartition
    log = logging.getLogger(f"librdkafka.{topic}")
    log.propagate = False
    collect = _Collect()
    log.addHandler(collect)
    errors: list[str] = []
    c = confluent_consumer(bootstrap, **{
        "auto.offset.reset": "earliest",
        "logger": log,
        "error_cb": lambda e: errors.append(f"error_cb: {e}"),
        **conf,
    })
    out: list[Rec] = []
    nxt = {p: 0 for p in end}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in end])
        deadline = time.monotonic() + timeout
        while any(nxt[p] < end[p] for p in end) and time.monotonic() < deadline:
            if stop is not None and stop(out):
                break
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(f"consumer error: {m.error()}")
                    continue
                out.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                               tuple(m.headers() or ()), m.timestamp()[1]))
                nxt[m.partition()] = m.offset() + 1
    finally:
        c.close()
        log.removeHandler(collect)
    return out, errors + collect.lines


def librdkafka_report(got: list[Rec], end: dict[int, int], notes: list[str]) -> str:
    seen = counts(got)
    text = f"consumed {sum(seen.values())} of {sum(end.values())} records (per partition {seen}, produced {end})"
    if notes:
        repeats: dict[str, int] = {}
        for n in notes:
            n = re.sub(r"\(after \d+ms in state \w+\)", "(after ..ms)", n)
            repeats[n] = repeats.get(n, 0) + 1
        text += "\nlibrdkafka said (last 6 distinct):\n  " + "\n  ".join(
            f"{n}  (x{k})" if k > 1 else n for n, k in list(repeats.items())[-6:])
    return text


def test_confluent_fetch_max_bytes_below_partition_max(broker, topic):
    """The reported case (issue 10): a librdkafka consumer with fetch.max.bytes=1000000,
    max.partition.fetch.bytes=20000000 and receive.message.max.bytes=1000512 reads three
    partitions of ~600 KB of small records each (default producer batching, so each
    partition is a few large batches). It must consume every record once, in order, intact;
    a response over 1000512 bytes makes librdkafka drop the connection and retry forever."""
    create_topic(broker.bootstrap, topic, 3)
    sent = produce_small_records(broker.bootstrap, topic, 3, 600_000)
    end = end_offsets(sent)
    got, notes = confluent_read(broker.bootstrap, topic, end, {
        "fetch.max.bytes": 1_000_000,
        "max.partition.fetch.bytes": 20_000_000,
        "receive.message.max.bytes": 1_000_512,
    }, timeout=15)
    assert counts(got) == counts(sent), librdkafka_report(got, end, notes)
    assert_same_records(sent, got, "librdkafka with fetch.max.bytes=1000000")


def test_confluent_no_partition_starves(broker, topic):
    """20 partitions of 400 KB each, fetch.max.bytes=100000 (a response holds one or two
    partitions' share): the consumer receives records from every partition well before it
    has read half of the data, rather than draining the first partitions first."""
    parts = 20
    create_topic(broker.bootstrap, topic, parts)
    sent = produce_small_records(broker.bootstrap, topic, parts, 400_000, value_size=1000,
                                 **{"batch.size": 16384})
    end = end_offsets(sent)
    half = len(sent) // 2
    fetch_max = 100_000
    got, notes = confluent_read(broker.bootstrap, topic, end, {
        "fetch.max.bytes": fetch_max,
        "message.max.bytes": fetch_max,  # librdkafka wants fetch.max.bytes >= message.max.bytes
        "receive.message.max.bytes": fetch_max + 100_000,
    }, timeout=15, stop=lambda recs: len(recs) >= half or len({r.partition for r in recs}) == parts)
    first_seen: dict[int, int] = {}
    for i, r in enumerate(got):
        first_seen.setdefault(r.partition, i)
    late = sorted(p for p in range(parts) if first_seen.get(p, half) >= half)
    assert not late, (f"partitions {late} delivered nothing in the first {half} records (half the data); "
                      f"index of the first record per partition: {dict(sorted(first_seen.items()))}\n"
                      + librdkafka_report(got, end, notes))
    by_p: dict[int, list[Rec]] = {}
    for r in got:
        by_p.setdefault(r.partition, []).append(r)
    sent_by = {(r.partition, r.offset): r for r in sent}
    for p, recs in by_p.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {p}: offsets not dense from 0"
        assert all(sent_by[(p, r.offset)] == r for r in recs), f"partition {p}: a record differs from what was sent"


# --------------------------------------------------------------------------- kafka-python

def kafka_python_read(bootstrap: str, topic: str, end: dict[int, int], timeout: float,
                      **conf) -> tuple[list[Rec], list[int]]:
    """Assign and read every partition of `end` from 0 to its end offset. Also returns the
    record bytes (sum of every partition's records field) of each Fetch response the
    consumer got, seen by wrapping kafka-python 3.0.12's (private)
    Fetcher._handle_fetch_response: kafka-python has no public per-response size."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **conf)
    sizes: list[int] = []
    fetcher = c._fetcher
    original = fetcher._handle_fetch_response

    def measuring(node_id, fetch_offsets, send_time, response):
        total = 0
        for t in response.responses:
            for pd in t.partitions:
                recs = pd.records
                total += len(recs) if recs is not None else 0
        sizes.append(total)
        return original(node_id, fetch_offsets, send_time, response)

    fetcher._handle_fetch_response = measuring
    try:
        tps = {p: TopicPartition(topic, p) for p in end}
        c.assign(list(tps.values()))
        for tp in tps.values():
            c.seek(tp, 0)
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tps[p]) < end[p] for p in end):
            if time.monotonic() > deadline:
                raise AssertionError(f"kafka-python timed out after {timeout}s: consumed {counts(out)}, "
                                     f"produced {end}; fetch response record bytes: {sizes[-10:]}")
            for _tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    out.append(Rec(m.partition, m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp))
        return out, sizes
    finally:
        c.close()


def test_kafka_python_fetch_max_bytes_below_partition_max(broker, topic):
    """kafka-python with fetch_max_bytes=100000 and max_partition_fetch_bytes=20000000
    reads three partitions of 300 KB (16 KB batches) completely, and no Fetch response
    it gets carries more than 100000 bytes of records."""
    create_topic(broker.bootstrap, topic, 3)
    sent = produce_small_records(broker.bootstrap, topic, 3, 300_000, **{"batch.size": 16384})
    end = end_offsets(sent)
    got, sizes = kafka_python_read(broker.bootstrap, topic, end, timeout=15,
                                   fetch_max_bytes=100_000, max_partition_fetch_bytes=20_000_000)
    assert sizes, "no Fetch response observed (kafka-python internals changed?)"
    assert max(sizes) <= 100_000, \
        f"Fetch responses over fetch_max_bytes=100000 (batches are <= 16 KB): largest {max(sizes)}, " \
        f"sizes {sorted(sizes, reverse=True)[:10]}"
    assert_same_records(sent, got, "kafka-python with fetch_max_bytes=100000")


# --------------------------------------------------------------------------- kafkajs

def test_kafkajs_max_bytes_below_partition_max(broker, topic):
    """A kafkajs group consumer with maxBytes=100000 and maxBytesPerPartition=20000000
    reads three partitions of 300 KB (16 KB batches) completely, in order, and no Fetch
    response frame it receives is larger than maxBytes plus protocol overhead."""
    create_topic(broker.bootstrap, topic, 3)
    sent = produce_small_records(broker.bootstrap, topic, 3, 300_000, **{"batch.size": 16384})
    end = end_offsets(sent)
    res = node("consume.js", {
        "brokers": [broker.bootstrap], "topic": topic, "groupId": f"{topic}-g",
        "end": {str(p): e for p, e in end.items()}, "timeoutMs": 15_000,
        "consumer": {"maxBytes": 100_000, "maxBytesPerPartition": 20_000_000},
    }, timeout=60)
    got = [Rec(p, o, None, None if v is None else v.encode(), (), 0) for p, o, v in res["records"]]
    sizes = res["fetchResponseSizes"]
    assert not res["timedOut"], (f"kafkajs timed out: consumed {counts(got)} of {end}; crashes {res['crashes']}; "
                                 f"largest Fetch responses {sorted(sizes, reverse=True)[:5]}")
    overhead = 2048  # headers and per-partition fields of a 3-partition response
    assert max(sizes) <= 100_000 + overhead, \
        f"Fetch response frames over maxBytes=100000 (+{overhead}): {sorted(sizes, reverse=True)[:10]}"
    assert_same_records([Rec(r.partition, r.offset, None, r.value, (), 0) for r in sent], got,
                        "kafkajs with maxBytes=100000")


# --------------------------------------------------------------------------- one batch > fetch max

@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_batch_larger_than_fetch_max_bytes_comes_whole(broker, topic, client):
    """A 300 KB record between two small ones, each its own batch, read with a fetch max
    of 100000 bytes: the big batch comes whole (alone in its response), so the consumer
    gets all three records intact instead of stalling."""
    from confluent_kafka import Producer
    create_topic(broker.bootstrap, topic, 1)
    big = random.Random(10).randbytes(300_000)
    values = [b"small-before", big, b"small-after"]
    ts = now_ms() - 1000
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=0, timestamp=ts + i)
        assert p.flush(30) == 0  # one batch each
    sent = [Rec(0, i, None, v, (), ts + i) for i, v in enumerate(values)]
    end = {0: 3}
    if client == "confluent-kafka":
        got, notes = confluent_read(broker.bootstrap, topic, end, {
            "fetch.max.bytes": 100_000,
            "message.max.bytes": 100_000,
            "receive.message.max.bytes": 1_000_000,
        }, timeout=15)
        assert counts(got) == {0: 3}, librdkafka_report(got, end, notes)
    else:
        got, _sizes = kafka_python_read(broker.bootstrap, topic, end, timeout=15,
                                        fetch_max_bytes=100_000, max_partition_fetch_bytes=100_000)
    assert_same_records(sent, got, f"{client} with a 300 KB record and fetch max 100000")


# --------------------------------------------------------------------------- raw protocol

def raw_batch(n: int, value_size: int, tag: int = 0) -> bytes:
    ts = now_ms()
    return build_batch([Record(None, value_for(tag, i, value_size), [], ts) for i in range(n)])


def raw_fill(c: Conn, topic: str, per_partition: dict[int, list[bytes]]) -> dict[int, int]:
    """Append the given batches (in order) to each partition, one Produce request per
    round with one batch per partition. Returns the high watermark per partition."""
    hw = {p: 0 for p in per_partition}
    rounds = max(len(b) for b in per_partition.values())
    for i in range(rounds):
        batches = {p: bs[i] for p, bs in per_partition.items() if i < len(bs)}
        res = c.produce_v3_many(topic, batches)
        for p, (err, base) in res.items():
            assert err == 0, f"produce to partition {p}: error {err}"
            hw[p] = base + build_count(batches[p])
    return hw


def build_count(batch: bytes) -> int:
    """recordCount of a magic-2 batch (the i32 at byte 57)."""
    (count,) = struct.unpack_from(">i", batch, 57)
    return count


def fetch_checked(c: Conn, topic: str, offsets: dict[int, int], max_bytes: int, part_max: int | dict,
                  hw: dict[int, int]) -> dict[int, list]:
    """Fetch v4 for `offsets` (partition -> fetch offset, in request order) and check the
    response against the KIP-74 rules; returns partition -> whole batches (Spans)."""
    pmax = part_max if isinstance(part_max, dict) else {p: part_max for p in offsets}
    req = [(topic, p, o, pmax[p]) for p, o in offsets.items()]
    resp = c.fetch_v4_many(req, max_bytes=max_bytes)
    got: dict[int, list] = {}
    table = []
    for r in resp:
        spans, trailing = batch_spans(r["records"])
        got[r["partition"]] = spans
        table.append(f"p{r['partition']}@{offsets.get(r['partition'])}: error {r['error']} hw {r['high_watermark']} "
                     f"{len(spans)} batches {sum(s.size for s in spans)} B "
                     f"({[s.size for s in spans][:8]}) trailing {trailing} B")
        r["trailing"] = trailing
    where = (f"Fetch max_bytes={max_bytes} partition_max_bytes={part_max}:\n  " + "\n  ".join(table))

    assert sorted((r["topic"], r["partition"]) for r in resp) == sorted((topic, p) for p in offsets), \
        f"the response does not list each requested partition {list(offsets)} once\n{where}"
    for r in resp:
        p = r["partition"]
        assert r["error"] == 0, f"partition {p}: error {r['error']}\n{where}"
        assert r["high_watermark"] == hw[p], f"partition {p}: high watermark {r['high_watermark']}, want {hw[p]}\n{where}"
        assert r["trailing"] == 0, f"partition {p}: records end in a partial batch\n{where}"
        spans = got[p]
        if spans:
            assert spans[0].base_offset <= offsets[p] <= spans[0].last_offset, \
                f"partition {p}: first batch does not hold the fetch offset {offsets[p]}\n{where}"
            for a, b in zip(spans, spans[1:]):
                assert b.base_offset == a.last_offset + 1, f"partition {p}: batches not contiguous\n{where}"
    sizes = {p: sum(s.size for s in spans) for p, spans in got.items()}
    n_batches = sum(len(s) for s in got.values())
    over_part = [p for p in sizes if sizes[p] > pmax[p]]
    assert len(over_part) <= 1 and all(len(got[p]) == 1 for p in over_part), \
        f"partitions {over_part} over partition_max_bytes (only one lone first batch may be)\n{where}"
    assert sum(sizes.values()) <= max_bytes or n_batches == 1, \
        f"response holds {sum(sizes.values())} B of batches > max_bytes={max_bytes} in {n_batches} batches\n{where}"
    return got


def next_offsets(offsets: dict[int, int], got: dict[int, list]) -> dict[int, int]:
    return {p: (got[p][-1].last_offset + 1 if got[p] else o) for p, o in offsets.items()}


def test_raw_fetch_bounds(broker, topic):
    """Fetch v4 on four partitions of five ~10 KB batches each: the total and per-partition
    limits hold with whole batches, every partition is listed with its high watermark, and
    the response is filled (no room left for another whole batch)."""
    create_topic(broker.bootstrap, topic, 4)
    with Conn.to(broker.bootstrap) as c:
        hw = raw_fill(c, topic, {p: [raw_batch(10, 1000, p) for _ in range(5)] for p in range(4)})
    b = len(raw_batch(10, 1000))
    start = {p: 0 for p in range(4)}

    # both limits bind: 2 batches per partition, 6 in all; half a batch of budget is left
    # over, which must not let a fourth partition's batch in
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, start, max_bytes=int(6.5 * b), part_max=int(2.5 * b), hw=hw)
    total = sum(s.size for spans in got.values() for s in spans)
    assert total > int(6.5 * b) - b, f"only {total} B of {int(6.5 * b)} used, batches are {b} B"
    assert all(len(got[p]) <= 2 for p in got)

    # only the partition limit binds: each partition returns exactly what fits
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, start, max_bytes=10 << 20, part_max=int(2.5 * b), hw=hw)
    assert {p: len(s) for p, s in got.items()} == {p: 2 for p in range(4)}

    # a tight total with a partition already half read
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {0: 3, 1: 0, 2: 0, 3: 0}, max_bytes=3 * b, part_max=10 << 20, hw=hw)
    assert sum(len(s) for s in got.values()) == 3


def test_raw_fetch_first_batch_whole_and_no_partial_fit(broker, topic):
    """The first-batch exception and its limits, on raw Fetch v4:
    - a 300 KB batch first in the response comes whole under max_bytes=100000 (alone: the
      next partition gets nothing, but is listed with its high watermark);
    - the same for partition_max_bytes, as the only partition;
    - a later partition's batch that does not fit in what is left of max_bytes, or in its
      partition_max_bytes, is not returned at all."""
    create_topic(broker.bootstrap, topic, 3)
    small = raw_batch(1, 900)
    mid = raw_batch(6, 10_000, 2)  # ~60 KB
    with Conn.to(broker.bootstrap) as c:
        hw = raw_fill(c, topic, {0: [raw_batch(30, 10_000, 1), small], 1: [small] * 3, 2: [mid]})
    s, m = len(small), len(mid)

    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {0: 0, 1: 0}, max_bytes=100_000, part_max=10 << 20, hw=hw)
    assert len(got[0]) == 1 and got[0][0].size > 300_000 and got[1] == [], \
        "the oversized first batch must come whole and alone"

    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {2: 0}, max_bytes=10 << 20, part_max=10_000, hw=hw)
    assert [x.size for x in got[2]] == [m], "a lone partition's first batch must come whole past partition_max_bytes"

    # p1's three small batches leave max_bytes - 3s < m for p2
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {1: 0, 2: 0}, max_bytes=3 * s + m - 1, part_max=10 << 20, hw=hw)
    assert len(got[1]) == 3 and got[2] == [], "p2's batch does not fit in what p1 left and must not be sent"

    # p2 first: its batch fits, and p1 gets what is left, in whole batches
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {2: 0, 1: 0}, max_bytes=m + 2 * s, part_max=10 << 20, hw=hw)
    assert [x.size for x in got[2]] == [m] and len(got[1]) == 2

    # budget left, but p2's first batch is over its partition_max_bytes and p1 came first
    with Conn.to(broker.bootstrap) as c:
        got = fetch_checked(c, topic, {1: 0, 2: 0}, max_bytes=10 << 20, part_max=10_000, hw=hw)
    assert len(got[1]) == 3 and got[2] == [], "p2's batch exceeds partition_max_bytes and p1 already returned data"


def test_raw_fetch_partitions_take_turns(broker, topic):
    """On one connection, repeated Fetch v4 for 20 partitions that all keep having data,
    with a max_bytes that fits three partitions' share: every partition gets data within
    ceil(20 / 3) + 1 fetches (a broker that always fills in request order serves only the
    first three)."""
    parts = 20
    create_topic(broker.bootstrap, topic, parts)
    batch = raw_batch(4, 240)
    b = len(batch)
    with Conn.to(broker.bootstrap) as c:
        hw = raw_fill(c, topic, {p: [batch] * 20 for p in range(parts)})
    part_max = 2 * b + b // 2  # two batches per partition
    max_bytes = 6 * b + b // 2  # three partitions' share
    rounds = math.ceil(parts / 3) + 1
    offsets = {p: 0 for p in range(parts)}
    served_in: list[list[int]] = []
    with Conn.to(broker.bootstrap) as c:
        for _ in range(rounds):
            got = fetch_checked(c, topic, offsets, max_bytes=max_bytes, part_max=part_max, hw=hw)
            served_in.append([p for p in range(parts) if got[p]])
            offsets = next_offsets(offsets, got)
    served = {p for s in served_in for p in s}
    history = "\n  ".join(f"fetch {i + 1}: partitions {s}" for i, s in enumerate(served_in))
    assert served == set(range(parts)), \
        f"partitions {sorted(set(range(parts)) - served)} got nothing in {rounds} fetches:\n  {history}"
