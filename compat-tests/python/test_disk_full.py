"""Disk full (README: Disk full): a broker on a small filesystem made for the test (a
size-limited tmpfs) stops taking records when its free space falls below the floor, keeps
serving everything it acknowledged, and takes records again by itself once space is freed.
A real ENOSPC (floor off, the disk filled behind phxq's back) breaks the node's writer; the
broker then restarts itself in place once space is back, and every acknowledged record is
still there, at its offset.

Needs root (mount -t tmpfs); skipped with the reason otherwise."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Broker
from phxq_wire import Conn, Record, build_batch, parse_batches, wait_for

KAFKA_STORAGE_ERROR = 56
MIB = 1 << 20
BATCH_VALUE = 60 * 1024  # one record of 60 KiB per batch


@contextmanager
def tmpfs(where: Path, size_mib: int):
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the test (needs root): {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> Path:
    """A filler file that leaves `leave` bytes free (another process filling the disk)."""
    filler = path / "filler"
    n = max(0, free_bytes(path) - leave)
    with open(filler, "wb") as f:
        chunk = b"\0" * MIB
        while n > 0:
            k = min(n, len(chunk))
            f.write(chunk[:k])
            n -= k
    return filler


def value(i: int) -> bytes:
    return f"{i:08d}".encode().ljust(BATCH_VALUE, b"x")


def batch(i: int) -> bytes:
    return build_batch([Record(key=None, value=value(i), timestamp=int(time.time() * 1000))])


def produce_until_refused(bootstrap: str, topic: str, first: int, limit: int = 2000):
    """Produces one batch at a time until one is refused; returns ({offset: i} of the
    acknowledged ones, the error code of the refusal)."""
    acked: dict[int, int] = {}
    with Conn.to(bootstrap, timeout=30) as c:
        for i in range(first, first + limit):
            err, base = c.produce_v3(topic, 0, batch(i))
            if err != 0:
                return acked, err
            acked[base] = i
    raise AssertionError(f"{limit} batches of {BATCH_VALUE} bytes were all accepted: the disk never filled")


def read_all(bootstrap: str, topic: str, end: int) -> dict[int, bytes]:
    """Every record from offset 0 to `end`, by offset."""
    got: dict[int, bytes] = {}
    offset = 0
    deadline = time.monotonic() + 15
    with Conn.to(bootstrap, timeout=30) as c:
        while offset < end:
            p = c.fetch_v4(topic, 0, offset, max_bytes=4 * MIB)
            if p["error"] in (5, 6) and time.monotonic() < deadline:
                # A new leader named in Metadata before it serves (its term's first entry
                # not applied yet): clients retry, and so does this.
                time.sleep(0.1)
                continue
            assert p["error"] == 0, p
            batches = parse_batches(p["records"])
            assert batches, f"no records at offset {offset} (high watermark {p['high_watermark']})"
            for b in batches:
                for r in b.records:
                    got[r.offset] = r.value
                offset = b.base_offset + b.last_offset_delta + 1
    return got


def assert_intact(bootstrap: str, topic: str, acked: dict[int, int]):
    end = max(acked) + 1
    got = read_all(bootstrap, topic, end)
    missing = [o for o in acked if got.get(o) != value(acked[o])]
    assert not missing, f"{len(missing)} acknowledged records lost or changed, first at offsets {missing[:5]}"


def create_topic(bootstrap: str, topic: str):
    with Conn.to(bootstrap) as c:
        assert c.create_topics_v2([(topic, 1)])[topic][0] == 0


def start_on(disk: Path, tmp: Path, request, *args: str) -> Broker:
    data = disk / "data"
    data.mkdir()
    config = tmp / "broker.toml"
    config.write_text("[storage]\ncheck_interval_ms = 100\n[log]\nsegment_bytes = 1048576\n")
    b = Broker(data, ["--config", str(config), *args], "broker")
    b.log_path = tmp / "broker.stderr.log"  # not on the small disk
    request.node.phxq_brokers = [b]
    return b.start()


def test_produce_refused_below_the_floor_then_taken_again_when_space_is_freed(tmp_path, request, topic):
    with tmpfs(tmp_path / "disk", 96) as disk:
        b = start_on(disk, tmp_path, request, "--storage-min-free-bytes", str(16 * MIB))
        try:
            create_topic(b.bootstrap, topic)
            # 10 MiB above the floor: the producer fills them, then is refused.
            filler = fill(disk, 26 * MIB)
            time.sleep(0.3)
            acked, err = produce_until_refused(b.bootstrap, topic, 0)
            assert err == KAFKA_STORAGE_ERROR, f"refused with {err}, not KAFKA_STORAGE_ERROR"
            assert len(acked) >= 50, f"only {len(acked)} batches before the refusal"
            b.assert_alive()
            # Everything acknowledged is served while the disk is low, and the refusal
            # holds (no record slips in).
            assert_intact(b.bootstrap, topic, acked)
            with Conn.to(b.bootstrap) as c:
                assert c.produce_v3(topic, 0, batch(10**6))[0] == KAFKA_STORAGE_ERROR
            assert "below the floor" in b.log_path.read_text()
            # Space is freed outside phxq: produce resumes by itself.
            filler.unlink()
            with Conn.to(b.bootstrap) as c:
                def accepted():
                    err, base = c.produce_v3(topic, 0, batch(10**6 + 1))
                    assert err in (0, KAFKA_STORAGE_ERROR), err
                    return base if err == 0 else None
                base = wait_for(accepted, 10, interval=0.1, what="produce to be taken again")
            assert base == max(acked) + 1, f"resumed at offset {base}, log end was {max(acked) + 1}"
            acked[base] = 10**6 + 1
            assert_intact(b.bootstrap, topic, acked)
            assert "produce is accepted again" in b.log_path.read_text()
        finally:
            b.kill9()


def test_real_enospc_restarts_the_broker_in_place_with_every_acknowledged_record(tmp_path, request, topic):
    with tmpfs(tmp_path / "disk", 96) as disk:
        b = start_on(disk, tmp_path, request, "--storage-min-free-bytes", "0")
        try:
            create_topic(b.bootstrap, topic)
            filler = fill(disk, 6 * MIB)
            acked, err = produce_until_refused(b.bootstrap, topic, 0)
            assert err != 0 and acked, (err, len(acked))
            # The writer failed; the process lives on and keeps refusing writes.
            b.assert_alive()
            pid = b.proc.pid
            log = lambda: b.log_path.read_text()  # noqa: E731
            wait_for(lambda: "storage write failed" in log(), 10, what="the writer failure in the log")
            with Conn.to(b.bootstrap) as c:
                assert c.produce_v3(topic, 0, batch(10**6))[0] == KAFKA_STORAGE_ERROR
            filler.unlink()
            wait_for(lambda: "restarting this broker in place" in log(), 10, what="the restart in place")
            b.assert_alive()
            assert b.proc.pid == pid

            def produced():
                try:
                    with Conn.to(b.bootstrap, timeout=5) as c:
                        err, base = c.produce_v3(topic, 0, batch(10**6 + 1))
                except OSError:
                    return None
                return base if err == 0 else None
            base = wait_for(produced, 30, interval=0.2, what="produce after the restart")
            # A batch refused while the writer failed may still have been committed (an
            # error is no promise of absence, as in Kafka): the log end is past the last ack.
            assert base > max(acked), (base, max(acked))
            acked[base] = 10**6 + 1
            assert_intact(b.bootstrap, topic, acked)
        finally:
            b.kill9()


def test_a_follower_whose_disk_fills_restarts_itself_and_catches_up(tmp_path, request, topic):
    """Three nodes; node 3's data dir is a small tmpfs that another process fills. Its
    writer fails (a follower cannot refuse what its leader accepted); the other two go on
    acknowledging; once the space is freed node 3 restarts itself in place, catches up,
    and every acknowledged record is there, also after the leader is killed."""
    from phxq_cluster import Cluster
    c = Cluster(tmp_path, extra_toml="[storage]\ncheck_interval_ms = 100\n")
    request.node.phxq_brokers = list(c.nodes.values())
    with tmpfs(c.nodes[3].data_dir, 96) as disk:
        try:
            c.start()
            c.create_topic(topic, 1)
            acked: dict[int, int] = {}
            n3_log = lambda: c.nodes[3].log_path.read_text()  # noqa: E731

            def produce(count: int, timeout: float = 60):
                """`count` more acknowledged batches through whichever node leads."""
                deadline = time.monotonic() + timeout
                target = len(acked) + count
                while len(acked) < target:
                    assert time.monotonic() < deadline, f"only {len(acked)} of {target} acknowledged"
                    leader = c.leader(topic, 0)
                    if leader is None:
                        time.sleep(0.1)
                        continue
                    try:
                        with Conn.to(c.nodes[leader].bootstrap, timeout=10) as conn:
                            while len(acked) < target:
                                i = len(acked) + 10**7
                                err, base = conn.produce_v3(topic, 0, batch(i))
                                if err != 0:
                                    break
                                acked[base] = i
                    except OSError:
                        pass
                    time.sleep(0.05)

            produce(20)
            filler = fill(disk, 2 * MIB)
            while "storage write failed" not in n3_log():
                produce(5)
                assert len(acked) < 2000, "node 3's disk never filled"
            # Node 3 is out; the majority acknowledges on.
            produce(30)
            assert c.nodes[3].alive(), "node 3 exited instead of waiting for space"
            pid = c.nodes[3].proc.pid
            filler.unlink()
            wait_for(lambda: "restarting this broker in place" in n3_log(), 15, what="node 3's restart in place")
            assert c.nodes[3].alive() and c.nodes[3].proc.pid == pid
            produce(20)
            c.wait_for(lambda: c.caught_up(max_lag=0), 60, what="node 3 to catch up")
            leader = c.wait_leader(topic, 0)
            assert_intact(c.nodes[leader].bootstrap, topic, acked)
            # Every acknowledged record survives the leader's loss too.
            c.kill9(leader)
            leader = c.wait_leader(topic, 0, not_on=leader)
            assert_intact(c.nodes[leader].bootstrap, topic, acked)
        finally:
            for n in c.nodes.values():
                n.kill9()
