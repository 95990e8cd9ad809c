"""Share-group consumption (KIP-932) against a classic group on the same data, same run.

A fresh single-node broker; topics with 1 and with 6 partitions, each holding N records
of 100 B. For 1, 3 and 6 consumer processes (confluent-kafka 2.16.1):
  - share: ShareConsumer in explicit mode, every record acknowledged ACCEPT (the
    acknowledgements ride on the next poll), a new share group from the earliest offset;
  - classic: Consumer in a new classic group, auto-commit every 100 ms (phxq's default
    consumer-group lock), from the earliest offset.
Timed from the first record received to the moment all N records were received (so the
classic group's rebalance as its members join is not counted against it; a record
delivered twice to the share group is counted and reported). Each
combination is run --reps times in alternating order; medians are reported, and the
ratio share/classic of medians measured in this run. The cost of the share-partition
state is read from the broker's metrics: bytes and entries of the Raft log written, and
fsyncs, per record, during share consumption alone.

    .venv/bin/python compat-tests/bench/share_groups.py [--reps 3] [--records 500000]

Writes docs/share-groups.md. Hold the machine for it (no builds alongside):
    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/share_groups.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))

from conftest import Broker, free_port  # noqa: E402


def produce(bs: str, topic: str, partitions: int, n: int):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "batch.num.messages": 1000})
    value = b"x" * 100
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


def share_worker(bs, group, topic, total, seen, first, last, start, stop):
    from confluent_kafka import AcknowledgeType, ShareConsumer
    c = ShareConsumer({"bootstrap.servers": bs, "group.id": group, "share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    start.wait()
    while not stop.is_set():
        batch = c.poll(0.2)
        n = 0
        for m in batch:
            if m.error() is None:
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                n += 1
        if n:
            with seen.get_lock():
                if seen.value == 0:
                    first.value = time.monotonic()
                seen.value += n
                if seen.value >= total:
                    last.value = time.monotonic()
                    stop.set()
    c.close()


def classic_worker(bs, group, topic, total, seen, first, last, start, stop):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "auto.commit.interval.ms": 100})
    c.subscribe([topic])
    start.wait()
    while not stop.is_set():
        ms = c.consume(1000, 0.2)
        n = sum(1 for m in ms if m.error() is None)
        if n:
            with seen.get_lock():
                if seen.value == 0:
                    first.value = time.monotonic()
                seen.value += n
                if seen.value >= total:
                    last.value = time.monotonic()
                    stop.set()
    c.close()


def run_group(kind: str, bs: str, group: str, topic: str, consumers: int, total: int) -> tuple[float, int]:
    seen = mp.Value("q", 0)
    first, last = mp.Value("d", 0.0), mp.Value("d", 0.0)
    start, stop = mp.Event(), mp.Event()
    target = share_worker if kind == "share" else classic_worker
    procs = [mp.Process(target=target, args=(bs, group, topic, total, seen, first, last, start, stop))
             for _ in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # the consumers connect and subscribe
    start.set()
    if not stop.wait(300):
        stop.set()
        last.value = time.monotonic()
    for p in procs:
        p.join(60)
    return last.value - first.value, seen.value


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "share-groups.md"))
    a = ap.parse_args()
    mp.set_start_method("fork")
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    base = Path(tempfile.mkdtemp(prefix="phxq-share-bench-"))
    mport = free_port()
    b = Broker(base / "data", ["--metrics-listen", f"127.0.0.1:{mport}"], "share-bench")
    b.start()
    bs = b.bootstrap
    n = a.records
    try:
        for parts in (1, 6):
            produce(bs, f"bench-{parts}", parts, n)
        admin = AdminClient({"bootstrap.servers": bs})
        results: dict[tuple[str, int, int], list[float]] = {}
        dupes = 0
        cost = {"log_bytes": 0.0, "entries": 0.0, "syncs": 0.0, "records": 0}
        for rep in range(a.reps):
            for parts in (1, 6):
                for consumers in (1, 3, 6):
                    kinds = ["share", "classic"] if rep % 2 == 0 else ["classic", "share"]
                    for kind in kinds:
                        group = f"{kind}-{parts}-{consumers}-{rep}"
                        if kind == "share":
                            res = ConfigResource("GROUP", group, incremental_configs=[ConfigEntry(
                                "share.auto.offset.reset", "earliest",
                                incremental_operation=AlterConfigOpType.SET)])
                            admin.incremental_alter_configs([res])[res].result(30)
                            before = [metric(mport, "phxq_storage_log_bytes_total"),
                                      metric(mport, "phxq_storage_log_entries_total"),
                                      metric(mport, "phxq_storage_syncs_total")]
                        elapsed, seen = run_group(kind, bs, group, f"bench-{parts}", consumers, n)
                        if kind == "share":
                            after = [metric(mport, "phxq_storage_log_bytes_total"),
                                     metric(mport, "phxq_storage_log_entries_total"),
                                     metric(mport, "phxq_storage_syncs_total")]
                            cost["log_bytes"] += after[0] - before[0]
                            cost["entries"] += after[1] - before[1]
                            cost["syncs"] += after[2] - before[2]
                            cost["records"] += seen
                            dupes += max(0, seen - n)
                        rate = n / elapsed
                        results.setdefault((kind, parts, consumers), []).append(rate)
                        print(f"rep {rep} {kind:7} partitions={parts} consumers={consumers}: "
                              f"{rate:9.0f} records/s ({seen} received in {elapsed:.2f} s)", flush=True)
    finally:
        b.kill9()

    med = {k: statistics.median(v) for k, v in results.items()}
    rows = []
    for parts in (1, 6):
        for consumers in (1, 3, 6):
            s, c = med[("share", parts, consumers)], med[("classic", parts, consumers)]
            rows.append(f"| {parts} | {consumers} | {s:,.0f} | {c:,.0f} | {s / c:.2f} |")
    per = lambda k: cost[k] / max(cost["records"], 1)  # noqa: E731
    text = f"""# Share groups: consumption rate against a classic group

Measured by `compat-tests/bench/share_groups.py` on {platform.machine()}, {mp.cpu_count()} cores,
{time.strftime('%Y-%m-%d')}: a single-node broker, {n:,} records of 100 B per topic, {a.reps}
repetitions in alternating order, medians. Consumers are confluent-kafka 2.16.1 processes
(Python: the client side costs much of each figure, the same for both kinds).

- **share**: ShareConsumer, explicit acknowledgement of every record (ACCEPT), the
  acknowledgements riding on the next ShareFetch; each record's acquisition and
  acknowledgement made durable through the store group's Raft log before the answer.
- **classic**: Consumer in a classic group, auto-commit every 100 ms.

| partitions | consumers | share records/s | classic records/s | share / classic |
|---|---|---|---|---|
{chr(10).join(rows)}

Records delivered more than once to a share group over all runs: {dupes}.

## The cost of the acknowledgement state

During share consumption alone, per record consumed: {per('log_bytes'):.1f} bytes of Raft log
written, {per('entries'):.4f} log entries and {per('syncs'):.4f} fsyncs. The state of a
share-partition is written whole after each ShareFetch that acquired or acknowledged (its
in-flight window as ranges of equal state: tens of bytes while acknowledgements keep up),
so the cost per record falls as fetches grow; the store group's group commit gathers the
writes of concurrent fetches into one fsync.
"""
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
