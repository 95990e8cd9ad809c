"""kill -9 the broker while a client produces with acks=all; after a restart on the
same data dir every acknowledged record is at its acknowledged offset."""

import subprocess
import sys
from pathlib import Path

from phxq_clients import assert_acked_present
from phxq_wire import wait_for

HERE = Path(__file__).resolve().parent
PARTITIONS = 2


def acked_lines(path: Path):
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")[:-1]  # a line without its newline was not finished
    out = []
    for line in lines:
        p, off, val = line.split(" ")
        out.append((int(p), int(off), val))
    return out


def run_round(broker, topic, acked_path, prefix, at_least, idempotent=False):
    """Start a producer subprocess, let at_least more acks arrive, kill -9 the broker
    (mid-stream: the producer has thousands of records in flight), then the producer."""
    start = len(acked_lines(acked_path))
    args = [sys.executable, str(HERE / "durable_producer.py"), broker.bootstrap, topic, str(acked_path), prefix]
    if idempotent:
        args.append("idempotent")
    log = open(acked_path.with_suffix(".producer.log"), "ab")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        wait_for(lambda: proc.poll() is not None or len(acked_lines(acked_path)) >= start + at_least, 120,
                 what=f"{at_least} acknowledged records")
        assert proc.poll() is None, f"producer exited with {proc.returncode}"
        broker.kill9()
    finally:
        proc.kill()
        proc.wait()
        log.close()
    broker.start()


def check_acked_present(broker, topic, acked):
    return assert_acked_present(broker.bootstrap, topic, range(PARTITIONS), acked)


def test_acked_records_survive_kill9(broker_factory, topic, tmp_path):
    b = broker_factory("--num-partitions", str(PARTITIONS))
    acked_path = tmp_path / "acked.txt"
    run_round(b, topic, acked_path, "a", 5000)
    acked = acked_lines(acked_path)
    assert len({(p, o) for p, o, _ in acked}) == len(acked), "two acks for one offset"
    stored = check_acked_present(b, topic, acked)

    # a second crash after the restart: new records get new offsets, old ones stay
    run_round(b, topic, acked_path, "b", 5000)
    acked2 = acked_lines(acked_path)
    new = acked2[len(acked):]
    assert new, "no records acknowledged after the restart"
    for p, o, v in new:
        assert (p, o) not in stored, f"offset p{p}@{o} reused after restart (was {stored[(p, o)]!r}, now {v!r})"
    check_acked_present(b, topic, acked2)


def test_idempotent_producer_rides_through_kill9(broker_factory, topic, tmp_path):
    """An idempotent producer keeps producing while the broker is killed and restarted:
    it retries its in-flight batches, every acknowledged record is present, and none
    is stored twice (the broker dedupes retries of batches it had already written)."""
    from collections import Counter
    b = broker_factory("--num-partitions", str(PARTITIONS))
    acked_path = tmp_path / "acked.txt"
    args = [sys.executable, str(HERE / "durable_producer.py"), b.bootstrap, topic, str(acked_path), "i", "idempotent"]
    log = open(tmp_path / "producer.log", "ab")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        for target in (2000, 4000):
            wait_for(lambda: proc.poll() is not None or len(acked_lines(acked_path)) >= target, 120,
                     what=f"{target} acknowledged records")
            assert proc.poll() is None, f"producer exited with {proc.returncode}"
            b.kill9()
            b.start()
        wait_for(lambda: proc.poll() is not None or len(acked_lines(acked_path)) >= 6000, 120,
                 what="6000 acknowledged records after two restarts")
        assert proc.poll() is None, f"producer exited with {proc.returncode}"
    finally:
        proc.kill()
        proc.wait()
        log.close()
    acked = acked_lines(acked_path)
    stored = check_acked_present(b, topic, acked)
    dups = [v for v, n in Counter(stored.values()).items() if n > 1]
    assert not dups, f"{len(dups)} records stored more than once, e.g. {sorted(dups)[:5]}"
