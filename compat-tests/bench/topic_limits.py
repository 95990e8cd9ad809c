"""Accuracy of per-topic dequeue speed limits within a group
(`phxq.consumer.topic.records.per.sec=<topic>:N`): one group of librdkafka consumers
subscribed to two topics, one of them limited, on one node and on a three-node cluster.
The limited topic's rate is counted over a window after a warm-up; the other topic (same
backlog) must not be held back: its drain time is reported next to the same group's drain
of it with no limit set at all.

    .venv/bin/python compat-tests/bench/topic_limits.py [--window 20] [--limit 2000]

Writes docs/dequeue-limits-per-topic.md. Hold the machine for it (no builds alongside):
    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/topic_limits.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))
sys.path.insert(0, str(ROOT / "compat-tests" / "bench"))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, NewTopic, ResourceType)

from conftest import Broker  # noqa: E402
from phxq_cluster import Cluster  # noqa: E402

PARTITIONS = 6
SLOW, FAST = "slow", "fast"


def fill(bootstrap: str, records: int, rf: int):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(t, PARTITIONS, rf) for t in (SLOW, FAST)]).values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 16384})
    for i in range(records):
        for t in (SLOW, FAST):
            while True:
                try:
                    p.produce(t, value=b"x" * 100, partition=i % PARTITIONS)
                    break
                except BufferError:
                    p.poll(0.05)
    assert p.flush(60) == 0


def set_topic_limit(bootstrap: str, group: str, value: str):
    a = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("phxq.consumer.topic.records.per.sec", value, incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result()


def run(bootstrap: str, group: str, n: int, seconds: float, total: int):
    """n consumers of both topics for `seconds`; returns (times of slow records, time the
    fast topic was drained (None: not within the run), start)."""
    lock = threading.Lock()
    slow_times: list[float] = []
    fast_count = [0]
    fast_done: list[float] = []
    stop = threading.Event()

    def member():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": f"{group}-app",
                      "auto.offset.reset": "earliest", "enable.auto.commit": True})
        c.subscribe([SLOW, FAST])
        while not stop.is_set():
            msgs = [m for m in c.consume(1000, 0.1) if m.error() is None]
            now = time.monotonic()
            with lock:
                for m in msgs:
                    if m.topic() == SLOW:
                        slow_times.append(now)
                    else:
                        fast_count[0] += 1
                if fast_count[0] >= total and not fast_done:
                    fast_done.append(now)
        c.close()

    threads = [threading.Thread(target=member, daemon=True) for _ in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(10)
    return slow_times, (fast_done[0] if fast_done else None), start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "dequeue-limits-per-topic.md"))
    a = ap.parse_args()
    total = int(a.limit * (a.window + a.warmup + 5) * 1.2)
    rows = []
    for setup in ("single", "cluster"):
        for n in (1, 3):
            base = Path(tempfile.mkdtemp(prefix="phxq-topic-limits-"))
            if setup == "single":
                (base / "data").mkdir()
                b = Broker(base / "data", [], "bench")
                b.start()
                nodes, bootstrap, rf = [b], b.bootstrap, 1
            else:
                cl = Cluster(base)
                cl.start()
                nodes, bootstrap, rf = list(cl.nodes.values()), cl.bootstrap, 3
            try:
                fill(bootstrap, total, rf)
                # The same group shape with no limit: how fast it drains the fast topic.
                _, free_done, free_start = run(bootstrap, f"free-{n}", n, 15, total)
                group = f"lim-{n}"
                set_topic_limit(bootstrap, group, f"{SLOW}:{a.limit}")
                slow, done, start = run(bootstrap, group, n, a.warmup + a.window, total)
            finally:
                for node in nodes:
                    node.kill9()
            first = min(slow) if slow else start
            w0 = first + a.warmup
            rate = sum(1 for t in slow if w0 <= t < w0 + a.window) / a.window
            fast_s = (done - start) if done else float("nan")
            free_s = (free_done - free_start) if free_done else float("nan")
            row = (setup, n, rate, rate / a.limit, fast_s, free_s)
            print("%-7s %d consumers: slow topic %.0f records/s (%.3f of the limit); fast topic drained in %.1f s (%.1f s with no limit)" % row, flush=True)
            rows.append(row)
    lines = [
        "# Dequeue speed limits per topic: accuracy",
        "",
        f"Generated by `compat-tests/bench/topic_limits.py` on {time.strftime('%Y-%m-%d')} (2 cores; "
        f"consumers are threads of one Python process). One group of librdkafka consumers subscribed to "
        f"two topics of {PARTITIONS} partitions with {total} records of 100 B each; the group config "
        f"`phxq.consumer.topic.records.per.sec=slow:{a.limit}` limits one of them. The slow topic's rate is "
        f"counted over {a.window:.0f} s after {a.warmup:.0f} s of warm-up; the fast topic's drain time is "
        f"from the group's start, next to the same group shape draining it with no limit set.",
        "",
        "| setup | consumers | slow topic, records/s | ratio to limit | fast topic drained in, s | with no limit, s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for setup, n, rate, ratio, fast_s, free_s in rows:
        lines.append(f"| {setup} | {n} | {rate:.0f} | {ratio:.3f} | {fast_s:.1f} | {free_s:.1f} |")
    ratios = [r[3] for r in rows]
    lines += ["", f"Median ratio to the limit: {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f} – {max(ratios):.3f}).", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
