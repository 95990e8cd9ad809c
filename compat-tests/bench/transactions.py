"""Transactional produce against idempotent produce, and end-to-end latency under
read_committed, same run.

A fresh single-node broker (the defaults of `phxq serve`); a topic of 6 partitions per
run; N records of 100 B from one confluent-kafka 2.16.1 producer (acks=all, linger.ms=5):
  - idempotent: enable.idempotence, flushed at the end;
  - txn-100 / txn-1000: transactional, a commit every 100 / 1000 records (each commit
    waits for the transaction to be decided, as a consume-transform-produce loop does).
Each mode runs --reps times in alternating order; medians, and ratios to idempotent of
medians measured in this run.

Latency: a producer sends 20 000 records at about 2 000 records/s, either plain
(idempotent, read by a read_uncommitted consumer) or in transactions of 100 records
(read by a read_committed consumer); each record carries its send time, the consumer
takes receive - send. p50 / p99 per mode.

    .venv/bin/python compat-tests/bench/transactions.py [--reps 3] [--records 200000]

Writes docs/transactions.md. Hold the machine for it (no builds alongside):
    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/transactions.py
"""

from __future__ import annotations

import argparse
import platform
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))

from conftest import Broker  # noqa: E402

VALUE = b"x" * 92  # + 8 bytes of send time = 100 B


def create(bs: str, topic: str, partitions: int = 6):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def producer(bs: str, txn_id: str | None):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bs, "linger.ms": 5, "acks": "all", "enable.idempotence": True,
            "batch.num.messages": 1000}
    if txn_id:
        conf["transactional.id"] = txn_id
    p = Producer(conf)
    if txn_id:
        p.init_transactions(30)
    return p


def send(p, topic: str, i: int):
    value = struct.pack(">d", time.time()) + VALUE
    while True:
        try:
            p.produce(topic, value=value, partition=i % 6)
            return
        except BufferError:
            p.poll(0.05)


def throughput(bs: str, mode: str, n: int, rep: int) -> float:
    topic = f"tp-{mode}-{rep}"
    create(bs, topic)
    txn = {"idempotent": 0, "txn-100": 100, "txn-1000": 1000}[mode]
    p = producer(bs, f"bench-{mode}-{rep}" if txn else None)
    start = time.monotonic()
    if txn:
        for base in range(0, n, txn):
            p.begin_transaction()
            for i in range(base, min(base + txn, n)):
                send(p, topic, i)
            p.commit_transaction(60)
    else:
        for i in range(n):
            send(p, topic, i)
        assert p.flush(120) == 0
    return n / (time.monotonic() - start)


def latency(bs: str, mode: str, n: int = 20_000, rate: float = 2000.0) -> tuple[float, float]:
    from confluent_kafka import Consumer
    topic = f"lat-{mode}"
    create(bs, topic)
    iso = "read_committed" if mode == "txn-100" else "read_uncommitted"
    c = Consumer({"bootstrap.servers": bs, "group.id": f"lat-{mode}", "isolation.level": iso,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    c.subscribe([topic])
    lats: list[float] = []
    done = threading.Event()

    def consume():
        while len(lats) < n and not done.is_set():
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            lats.append(time.time() - struct.unpack(">d", m.value()[:8])[0])

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(3)  # the consumer joins its group first
    p = producer(bs, "lat-txn" if mode == "txn-100" else None)
    start = time.monotonic()
    for i in range(n):
        if mode == "txn-100" and i % 100 == 0:
            p.begin_transaction()
        send(p, topic, i)
        p.poll(0)
        if mode == "txn-100" and i % 100 == 99:
            p.commit_transaction(60)
        ahead = start + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    p.flush(60)
    t.join(60)
    done.set()
    c.close()
    lats.sort()
    ms = [x * 1000 for x in lats]
    return ms[len(ms) // 2], ms[int(len(ms) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "transactions.md"))
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="phxq-txn-bench-"))
    b = Broker(base / "data", [], "txn-bench")
    b.start()
    modes = ["idempotent", "txn-100", "txn-1000"]
    rates: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for rep in range(a.reps):
            order = modes if rep % 2 == 0 else list(reversed(modes))
            for m in order:
                r = throughput(b.bootstrap, m, a.records, rep)
                rates[m].append(r)
                print(f"rep {rep} {m}: {r:,.0f} records/s", flush=True)
        lat = {m: latency(b.bootstrap, m) for m in ("idempotent", "txn-100")}
        for m, (p50, p99) in lat.items():
            print(f"latency {m}: p50 {p50:.1f} ms p99 {p99:.1f} ms", flush=True)
    finally:
        b.kill9()
    med = {m: statistics.median(v) for m, v in rates.items()}
    lines = [
        "# Transactions: throughput and read_committed latency",
        "",
        f"Measured by `compat-tests/bench/transactions.py --reps {a.reps} --records {a.records}` on "
        f"{platform.node()} ({platform.machine()}, 2 cores), {time.strftime('%Y-%m-%d')}: one single-node "
        "broker with its defaults (one store group, fsync per commit), 6 partitions, 100 B records, "
        "one confluent-kafka 2.16.1 producer (acks=all, linger.ms=5).",
        "",
        "## Produce throughput",
        "",
        "| mode | median records/s | runs | ratio to idempotent |",
        "| --- | ---: | --- | ---: |",
    ]
    for m in modes:
        runs = ", ".join(f"{r:,.0f}" for r in rates[m])
        lines.append(f"| {m} | {med[m]:,.0f} | {runs} | {med[m] / med['idempotent']:.2f} |")
    lines += [
        "",
        "txn-N commits every N records and waits for each commit, as a consume-transform-produce "
        "loop does: a commit costs one round of EndTxn (the decision made durable in the "
        "coordinator's store group) and the next transaction's first AddPartitionsToTxn waits for "
        "the markers of the last one (one Raft entry per store group, then the completion record).",
        "",
        "## End-to-end latency (send to receive), 20 000 records at 2 000/s",
        "",
        "| mode | consumer | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: |",
        f"| idempotent | read_uncommitted | {lat['idempotent'][0]:.1f} | {lat['idempotent'][1]:.1f} |",
        f"| transactions of 100 | read_committed | {lat['txn-100'][0]:.1f} | {lat['txn-100'][1]:.1f} |",
        "",
        "Under read_committed a record becomes visible when its transaction's marker is written: "
        "at 2 000 records/s a transaction of 100 records spans 50 ms, so its first record waits "
        "about that long before any consumer may see it; the median includes half of it.",
        "",
    ]
    Path(a.out).write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
