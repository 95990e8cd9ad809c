"""Produce and consume with each real client, in one common record shape, so a test
can say: these records went in through client A, the same came out through client B.

Rec = (partition, offset, key, value, headers, timestamp), compared exactly.
All consumers here use assign() with explicit offsets and never commit: no group
coordinator is needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from phxq_wire import Conn, parse_batches

JS_DIR = Path(__file__).resolve().parents[1] / "js"
COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = field(default_factory=tuple)  # ((str, bytes|None), ...)
    timestamp: int = 0

    def short(self) -> str:
        def b(x):
            if x is None:
                return "None"
            return repr(x[:24]) + (f"..({len(x)}B)" if len(x) > 24 else "")
        return (f"p{self.partition}@{self.offset} key={b(self.key)} value={b(self.value)} "
                f"headers={[(k, b(v)) for k, v in self.headers]} ts={self.timestamp}")


def now_ms() -> int:
    return int(time.time() * 1000)


def make_records(n: int, partitions: int = 1, *, null_header_values: bool = True,
                 text: bool = False, big: bool = True, tombstones: bool = True) -> list[Rec]:
    """n records spread round-robin over partitions, with null and binary keys, empty,
    null (tombstone), binary and one 100 KB value, no/one/duplicate/empty/null headers,
    and explicit CreateTime timestamps (an hour ago, not monotonic)."""
    base = now_ms() - 3_600_000
    out = []
    for i in range(n):
        p = i % partitions
        key = None if i % 7 == 3 else (f"key-{i}".encode() if text or i % 5 else bytes([0, i % 256, 255, 10]))
        if text:
            value = f"value-{i}-" + "x" * (i % 40)
        elif i % 13 == 6:
            value = b""
        elif tombstones and i % 11 == 5 and key is not None:
            value = None
        else:
            value = bytes((i * 31 + j * 7) % 256 for j in range(1 + (i * 37) % 400))
        if big and i == n // 2 and not text:
            value = (b"phxq big value %d " % i) * 6000  # ~100 KB, compressible
        if isinstance(value, str):
            value = value.encode()
        hk = i % 4
        if hk == 0:
            headers = ()
        elif hk == 1:
            headers = (("h1", f"a{i}".encode()),)
        elif hk == 2:
            headers = (("dup", b"1"), ("dup", b"2"), ("empty", b""))
        else:
            headers = (("n", None),) if null_header_values else (("bin", bytes([0, 255, 10, i % 256])),)
        ts = base + i * 10 - (5 if i % 3 == 0 else 0)
        out.append(Rec(p, -1, key, value, headers, ts))
    return out


def assert_same_records(expected: list[Rec], got: list[Rec], what: str = ""):
    """Same records in the same per-partition order, exactly; reports the first difference."""
    exp_by_p: dict[int, list[Rec]] = {}
    got_by_p: dict[int, list[Rec]] = {}
    for r in expected:
        exp_by_p.setdefault(r.partition, []).append(r)
    for r in got:
        got_by_p.setdefault(r.partition, []).append(r)
    problems = []
    for p in sorted(set(exp_by_p) | set(got_by_p)):
        e, g = exp_by_p.get(p, []), got_by_p.get(p, [])
        if len(e) != len(g):
            problems.append(f"partition {p}: expected {len(e)} records, got {len(g)}")
        for i, (a, b) in enumerate(zip(e, g)):
            if a != b:
                problems.append(f"partition {p} record #{i} differs:\n  expected {a.short()}\n  got      {b.short()}")
                break
    assert not problems, (what + ": " if what else "") + "\n".join(problems)


def assert_dense(recs: list[Rec], start: int = 0):
    by_p: dict[int, list[int]] = {}
    for r in recs:
        by_p.setdefault(r.partition, []).append(r.offset)
    for p, offs in by_p.items():
        assert offs == list(range(start, start + len(offs))), \
            f"partition {p}: offsets not dense from {start}: {offs[:10]}...{offs[-10:]}"


def stored_codecs(bootstrap: str, topic: str, partition: int = 0) -> dict[int, int]:
    """{compression codec (attributes & 7): record count} over every batch the broker
    returns for the partition, read with raw Fetch v4 from offset 0 to the end."""
    codecs: dict[int, int] = {}
    with Conn.to(bootstrap) as c:
        offset = 0
        while True:
            r = c.fetch_v4(topic, partition, offset, max_wait_ms=0)
            assert r["error"] == 0, f"fetch error {r['error']}"
            batches = parse_batches(r["records"])
            if not batches:
                assert offset >= r["high_watermark"], \
                    f"no batch returned at offset {offset} below high watermark {r['high_watermark']}"
                return codecs
            for b in batches:
                assert b.crc_ok, f"batch at {b.base_offset} has a bad CRC"
                codecs[b.compression] = codecs.get(b.compression, 0) + b.record_count
            offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1


def assert_compressed(bootstrap: str, topic: str, compression: str, partitions=(0,)):
    """The broker keeps batches in the codec the producer chose. librdkafka sends a
    batch uncompressed when compressing does not make it smaller (tiny batches), so
    uncompressed batches are allowed, but at least 90% of the records must be in
    batches of the chosen codec."""
    from phxq_wire import COMPRESSION_CODECS
    want = COMPRESSION_CODECS[compression]
    for p in partitions:
        got = stored_codecs(bootstrap, topic, p)
        total = sum(got.values())
        assert total > 0, f"partition {p} is empty"
        assert set(got) <= {0, want}, f"partition {p}: codecs {got} (records per codec), producer used {compression}"
        assert got.get(want, 0) >= 0.9 * total, \
            f"partition {p}: only {got.get(want, 0)} of {total} records stored {compression}-compressed: {got}"


# --------------------------------------------------------------------------- confluent-kafka

def confluent_produce(bootstrap: str, topic: str, recs: list[Rec], **conf) -> list[Rec]:
    """Produce all records asynchronously (so they batch), flush, and return them with
    the partition/offset each delivery report gave. Raises on any delivery error."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", **conf})
    results: dict[int, tuple] = {}
    errors = []

    def cb(i):
        def on_delivery(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.partition(), msg.offset())
        return on_delivery

    for i, r in enumerate(recs):
        kw = dict(value=r.value, key=r.key, partition=r.partition, on_delivery=cb(i))
        if r.timestamp:
            kw["timestamp"] = r.timestamp
        if r.headers:
            kw["headers"] = list(r.headers)
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} messages not delivered after 60s"
    assert not errors, f"delivery errors: {errors[:5]}"
    return [replace(r, partition=results[i][0], offset=results[i][1]) for i, r in enumerate(recs)]


def confluent_consumer(bootstrap: str, **conf):
    from confluent_kafka import Consumer
    return Consumer({
        "bootstrap.servers": bootstrap,
        # librdkafka wants a group.id for a Consumer; with assign() and no commits it
        # never talks to a group coordinator.
        "group.id": "phxq-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        **conf,
    })


def confluent_consume(bootstrap: str, topic: str, partitions=(0,), start: int = 0,
                      timeout: float = 30.0, **conf) -> list[Rec]:
    """Everything from `start` to the end of each partition (until every partition
    reports EOF), in the order received."""
    from confluent_kafka import KafkaError, TopicPartition
    c = confluent_consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        out: list[Rec] = []
        eof: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        # EOF is reported each time a partition's end is reached; a record received
        # after it clears it again, so we stop only when every partition sits at its end.
        while len(eof) < len(partitions):
            assert time.monotonic() < deadline, \
                f"consume timed out: {len(out)} records, eof at {eof}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof[m.partition()] = m.offset()
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            eof.pop(m.partition(), None)
            out.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                           tuple(m.headers() or ()), m.timestamp()[1]))
        return out
    finally:
        c.close()


def assert_acked_present(bootstrap: str, topic: str, partitions, acked: list[tuple[int, int, str]],
                         timeout: float = 120.0) -> dict[tuple[int, int], str]:
    """Read every partition back with confluent-kafka: offsets dense from 0, no offset
    acknowledged twice, and every acknowledged (partition, offset, value) stored there with
    that value. Returns {(partition, offset): value}."""
    assert len({(p, o) for p, o, _ in acked}) == len(acked), "two acks for one offset"
    partitions = list(partitions)
    stored = {}
    for r in confluent_consume(bootstrap, topic, partitions=partitions, timeout=timeout):
        stored[(r.partition, r.offset)] = None if r.value is None else r.value.decode(errors="replace")
    for p in partitions:
        offs = sorted(o for (pp, o) in stored if pp == p)
        assert offs == list(range(len(offs))), f"partition {p}: offsets not dense"
    missing = [(p, o, v) for p, o, v in acked if stored.get((p, o)) != v]
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged records lost or changed, e.g. "
                         + ", ".join(f"p{p}@{o} want {v!r} got {stored.get((p, o))!r}" for p, o, v in missing[:5]))
    return stored


# --------------------------------------------------------------------------- kafka-python

def kafka_python_produce(bootstrap: str, topic: str, recs: list[Rec], **conf) -> list[Rec]:
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **conf)
    try:
        futs = [p.send(topic, value=r.value, key=r.key, partition=r.partition,
                       timestamp_ms=r.timestamp or None, headers=list(r.headers)) for r in recs]
        p.flush(60)
        out = []
        for r, f in zip(recs, futs):
            md = f.get(timeout=60)
            out.append(replace(r, partition=md.partition, offset=md.offset))
        return out
    finally:
        p.close(timeout=10)


def kafka_python_consume(bootstrap: str, topic: str, partitions=(0,), start: int = 0,
                         timeout: float = 30.0, **conf) -> list[Rec]:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **conf)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start)
        end = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"consume timed out: {len(out)} records, end {end}"
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    out.append(Rec(m.partition, m.offset, m.key, m.value,
                                   tuple(m.headers or ()), m.timestamp))
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------- aiokafka

def aiokafka_produce(bootstrap: str, topic: str, recs: list[Rec], **conf) -> list[Rec]:
    from aiokafka import AIOKafkaProducer

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **conf)
        await p.start()
        try:
            futs = [await p.send(topic, value=r.value, key=r.key, partition=r.partition,
                                 timestamp_ms=r.timestamp or None, headers=list(r.headers))
                    for r in recs]
            mds = await asyncio.wait_for(asyncio.gather(*futs), 60)
        finally:
            await p.stop()
        return [replace(r, partition=md.partition, offset=md.offset) for r, md in zip(recs, mds)]

    return asyncio.run(run())


def aiokafka_consume(bootstrap: str, topic: str, partitions=(0,), start: int = 0,
                     timeout: float = 30.0, **conf) -> list[Rec]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **conf)
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, start)
            end = await c.end_offsets(tps)
            out = []
            deadline = time.monotonic() + timeout

            async def behind():
                for tp in tps:
                    if await c.position(tp) < end[tp]:
                        return True
                return False

            while await behind():
                assert time.monotonic() < deadline, f"consume timed out: {len(out)} records, end {end}"
                batch = await c.getmany(*tps, timeout_ms=200)
                for tp, msgs in batch.items():
                    for m in msgs:
                        out.append(Rec(m.partition, m.offset, m.key, m.value,
                                       tuple(m.headers or ()), m.timestamp))
            return out
        finally:
            await c.stop()

    return asyncio.run(run())


# --------------------------------------------------------------------------- kcat

def kcat(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    r = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"kcat {' '.join(args)} exited {r.returncode}:\n{r.stderr.decode(errors='replace')}"
    return r


def kcat_consume(bootstrap: str, topic: str, partition: int = 0, start: str = "beginning") -> list[Rec]:
    """kcat -C -J from `start` to the end of the partition (-e)."""
    r = kcat("-b", bootstrap, "-C", "-t", topic, "-p", str(partition), "-o", start, "-e", "-J", "-q")
    out = []
    for line in r.stdout.decode().splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        h = j.get("headers") or []
        headers = tuple((h[i], None if h[i + 1] is None else h[i + 1].encode()) for i in range(0, len(h), 2))
        out.append(Rec(j["partition"], j["offset"],
                       None if j["key"] is None else j["key"].encode(),
                       None if j["payload"] is None else j["payload"].encode(),
                       headers, j["ts"]))
    return out


# --------------------------------------------------------------------------- kafkajs

def _b64(b):
    return None if b is None else base64.b64encode(b).decode()


def node(script: str, spec: dict, timeout: float = 120) -> object:
    """Run compat-tests/js/<script> with the JSON spec on stdin; it prints one JSON value."""
    r = subprocess.run(["node", str(JS_DIR / script)], input=json.dumps(spec).encode(),
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"node {script} exited {r.returncode}:\n{r.stderr.decode(errors='replace')[-4000:]}"
    return json.loads(r.stdout)


def kafkajs_produce(bootstrap: str, topic: str, recs: list[Rec], compression: str = "none",
                    chunk: int = 50, **extra) -> list[Rec]:
    msgs = [{"partition": r.partition, "key": _b64(r.key), "value": _b64(r.value),
             "headers": [[k, _b64(v)] for k, v in r.headers],
             "timestamp": r.timestamp or None} for r in recs]
    res = node("produce.js", {"brokers": [bootstrap], "topic": topic, "compression": compression,
                              "chunk": chunk, "messages": msgs, **extra})
    return [replace(r, offset=o["offset"], partition=o["partition"]) for r, o in zip(recs, res)]


def kafkajs_admin(bootstrap: str, op: str, **args) -> object:
    return node("admin.js", {"brokers": [bootstrap], "op": op, "args": args})
