"""Does retention hold up produce? Produce latency (acks=all, one record at a time, from
librdkafka) on one topic, first with nothing else going on, then while retention drops a
large backlog of another topic on the same broker (same store group), same run.

A fresh single broker (1 MiB segment files, retention checked every second); topic `old`
filled with --batches one-record batches stamped a day ago and no retention; then, while
a producer measures its latency on topic `live`, retention.ms of `old` is set to an hour
with IncrementalAlterConfigs: the next check drops the whole backlog, in DeleteRecords
steps of 4096 batches through the Raft log, and the segment collector deletes the files.

    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/retention_latency.py [--batches 200000]

Prints p50/p99/max produce latency for both windows and the broker's retention log line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, NewTopic, ResourceType)

from conftest import Broker  # noqa: E402


def latencies(p: Producer, topic: str, seconds: float) -> list[float]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        p.produce(topic, value=b"x" * 100, partition=0)
        assert p.flush(10) == 0
        out.append((time.monotonic() - t) * 1000)
    return out


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"n={len(ms):5d}  p50={q[49]:6.2f} ms  p99={q[98]:6.2f} ms  max={max(ms):7.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200_000)
    ap.add_argument("--window", type=float, default=8.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phxq-retention-bench-"))
    data = tmp / "data"
    data.mkdir()
    b = Broker(data, ["--log-segment-bytes", str(1 << 20), "--log-retention-check-interval-ms", "1000"])
    b.start()
    try:
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        for t, cfg in (("old", {"retention.ms": "-1", "segment.bytes": str(1 << 20)}), ("live", {})):
            a.create_topics([NewTopic(t, 1, -1, config=cfg)])[t].result(30)
        fill = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "batch.num.messages": 1,
                         "queue.buffering.max.messages": 1_000_000})
        day_ago = int(time.time() * 1000) - 86_400_000
        t0 = time.monotonic()
        for i in range(args.batches):
            while True:
                try:
                    fill.produce("old", value=b"o" * 100, partition=0, timestamp=day_ago + i)
                    break
                except BufferError:
                    fill.poll(0.05)
        assert fill.flush(300) == 0
        segs = sum(f.stat().st_size for f in (data / "segments").glob("*.seg"))
        print(f"filled `old` with {args.batches} batches in {time.monotonic() - t0:.1f} s; "
              f"segment files {segs / 1e6:.1f} MB")
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "acks": "all"})
        latencies(p, "live", 1.0)  # warm up
        idle = latencies(p, "live", args.window)
        res = ConfigResource(ResourceType.TOPIC, "old", incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
        a.incremental_alter_configs([res])[res].result(30)
        busy = latencies(p, "live", args.window)
        segs_after = sum(f.stat().st_size for f in (data / "segments").glob("*.seg"))
        print(f"idle:              {summary(idle)}")
        print(f"during retention:  {summary(busy)}")
        print(f"segment files {segs / 1e6:.1f} MB -> {segs_after / 1e6:.1f} MB")
        for line in b.log_path.read_text().splitlines():
            if "retention dropped" in line or "deleted segment files" in line:
                print(line[line.index("INFO"):][:260])
    finally:
        b.kill9()


if __name__ == "__main__":
    main()
