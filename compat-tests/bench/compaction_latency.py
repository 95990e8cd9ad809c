"""Does compaction hold up produce and consume? Produce latency (acks=all, one record at
a time, from librdkafka) and end-to-end latency (produce start -> the record reaches a
consumer that is long-polling the topic) on topic `live`, first with nothing else going
on, then while the log cleaner rewrites a large topic `big` on the same broker (same store
group, same disk), same run.

A fresh single broker (64 MiB segment files, the cleaner looks every second, default
`log.cleaner_io_max_bytes_per_second`); `big` is filled with --mb MB of 1 KiB records
over --keys keys under cleanup.policy=delete (nothing compacts yet); after the idle
window `big` is switched to cleanup.policy=compact (IncrementalAlterConfigs, dirty ratio
0.01): the next cleaner pass reads the whole log to build its key map, then rewrites it,
in 4 MiB steps, each swapped in with one durable writer transaction. The busy window
lasts until the cleaner logs the pass (at least --window s).

    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/compaction_latency.py [--mb 1024]

Prints p50/p99/max of both latencies for both windows, their ratios, and the cleaner's
log line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, NewTopic, ResourceType)

from conftest import Broker  # noqa: E402

DONE = "log cleaner compacted a partition"


def window(p: Producer, c: Consumer, seconds: float, until=None) -> tuple[list[float], list[float]]:
    """Produces one record at a time on `live` and waits for the consumer to get it:
    (produce latencies, end-to-end latencies) in ms, for `seconds` at least, and until
    `until()` when given."""
    prod, e2e = [], []
    start = time.monotonic()
    window.at = []  # (seconds into the window, produce ms), for the per-5 s breakdown
    while time.monotonic() - start < seconds or (until is not None and not until()):
        if time.monotonic() - start > 600:
            raise SystemExit("the cleaner did not finish within 10 minutes")
        t = time.monotonic()
        p.produce("live", value=b"x" * 100, partition=0)
        assert p.flush(10) == 0
        prod.append((time.monotonic() - t) * 1000)
        window.at.append((t - start, prod[-1]))
        while True:
            m = c.poll(5)
            assert m is not None, "the consumer got nothing within 5 s"
            if not m.error():
                break
        e2e.append((time.monotonic() - t) * 1000)
    return prod, e2e


def q(ms: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(ms, n=100)
    return qs[49], qs[98], max(ms)


def line(name: str, ms: list[float]) -> str:
    p50, p99, mx = q(ms)
    return f"{name:28s} n={len(ms):5d}  p50={p50:6.2f} ms  p99={p99:6.2f} ms  max={mx:7.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024, help="size of the compacted topic")
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--window", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phxq-compaction-bench-"))
    data = tmp / "data"
    data.mkdir()
    b = Broker(data, ["--log-segment-bytes", str(64 << 20), "--log-cleaner-backoff-ms", "1000"])
    b.start()
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for t, cfg in (("big", {"segment.bytes": str(16 << 20), "min.cleanable.dirty.ratio": "0.01"}),
                       ("live", {})):
            a.create_topics([NewTopic(t, 1, -1, config=cfg)])[t].result(30)
        fill = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 256 << 10,
                         "queue.buffering.max.kbytes": 256 << 10})
        n = args.mb * 1024
        payload = os.urandom(1000)
        t0 = time.monotonic()
        for i in range(n):
            while True:
                try:
                    fill.produce("big", key=b"key-%06d" % (i % args.keys), value=payload, partition=0)
                    break
                except BufferError:
                    fill.poll(0.05)
        assert fill.flush(600) == 0
        segs = sum(f.stat().st_size for f in (data / "segments").glob("*.seg"))
        print(f"filled `big` with {n} records of 1 KiB over {args.keys} keys in "
              f"{time.monotonic() - t0:.1f} s; segment files {segs / 1e6:.0f} MB")
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "acks": "all"})
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "bench", "enable.auto.commit": False,
                      "fetch.wait.max.ms": 500, "fetch.min.bytes": 1})
        c.assign([TopicPartition("live", 0, 0)])
        window(p, c, 2.0)  # warm up
        idle = window(p, c, args.window)
        res = ConfigResource(ResourceType.TOPIC, "big", incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
        a.incremental_alter_configs([res])[res].result(30)
        t1 = time.monotonic()
        busy = window(p, c, args.window, until=lambda: DONE in b.log_path.read_text())
        busy_s = time.monotonic() - t1
        buckets: dict[int, list[float]] = {}
        for at, ms in window.at:
            buckets.setdefault(int(at // 5), []).append(ms)
        print("produce p99 per 5 s of the compaction window: " + "  ".join(
            f"{k * 5}s:{q(v)[1]:.2f}" for k, v in sorted(buckets.items()) if len(v) > 100))
        c.close()
        print(f"idle window {args.window:.0f} s, compaction window {busy_s:.0f} s")
        print(line("produce idle:", idle[0]))
        print(line("produce while compacting:", busy[0]))
        print(line("e2e idle:", idle[1]))
        print(line("e2e while compacting:", busy[1]))
        for name, i, bz in (("produce", idle[0], busy[0]), ("e2e", idle[1], busy[1])):
            (i50, i99, _), (b50, b99, _) = q(i), q(bz)
            print(f"{name}: p50 ratio {b50 / i50:.2f}, p99 ratio {b99 / i99:.2f}")
        for ln in b.log_path.read_text().splitlines():
            if DONE in ln:
                print(ln[ln.index("INFO"):][:400])
    finally:
        b.kill9()


if __name__ == "__main__":
    main()
