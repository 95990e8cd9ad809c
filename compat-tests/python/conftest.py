"""Fixtures: every test gets its own `phxq serve` process on a free port with a fresh
data directory. On failure the broker's stderr tail is attached to the report; a
broker that died on its own (not killed by the test) fails the test."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHXQ_BIN = os.environ.get("PHXQ_BIN", str(REPO / "target" / "release" / "phxq"))
LOG_TAIL_LINES = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A `phxq serve` child process. kill9() + start() restarts on the same data dir
    and the same port."""

    def __init__(self, data_dir: Path, args: list[str], name: str = "broker"):
        self.data_dir = data_dir
        self.args = list(args)
        self.port = free_port()
        self.name = name
        self.log_path = data_dir.parent / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [PHXQ_BIN, "serve", "--listen", self.bootstrap, "--data-dir", str(self.data_dir), *self.args]

    def start(self, timeout: float = 30.0):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        env = dict(os.environ)
        # openraft's INFO chatter drowns the broker's own lines in the failure tails
        env.setdefault("RUST_LOG", "info,openraft=warn")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phxq exited with {self.proc.returncode} during startup:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"phxq did not accept on {self.bootstrap} within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), f"phxq died (exit {self.proc.returncode}):\n{self.log_tail()}"

    def kill9(self):
        """SIGKILL, like a crash: no chance to flush or clean up."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        self.kill9()
        return self.start()

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.rep_call_failed = True
        for b in getattr(item, "phxq_brokers", []):
            rep.sections.append((f"{b.name} stderr (last {LOG_TAIL_LINES} lines, {b.log_path})", b.log_tail()))


def _finish(request, brokers: list[Broker], tmp: Path):
    """Kill what is left; fail the test if a broker died on its own (not by kill -9 or a
    stop the test asked for); keep the data dirs of failed tests."""
    died = []
    for b in brokers:
        if (b.proc is not None and b.proc.poll() is not None and b.proc.returncode != -signal.SIGKILL
                and not getattr(b, "stopped_by_test", False)):
            died.append(f"{b.name} exited on its own with code {b.proc.returncode}:\n{b.log_tail()}")
        b.kill9()
    failed = getattr(request.node, "rep_call_failed", False)
    if not died and not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    if died:
        pytest.fail("\n".join(died))


@pytest.fixture
def broker_factory(request):
    """start_broker(*args, name=...) -> running Broker with its own temp data dir."""
    tmp = Path(tempfile.mkdtemp(prefix="phxq-test-"))
    brokers: list[Broker] = []
    request.node.phxq_brokers = brokers

    def start_broker(*args: str, name: str | None = None) -> Broker:
        name = name or f"broker{len(brokers)}"
        data = tmp / f"{name}-data"
        data.mkdir()
        b = Broker(data, list(args), name)
        brokers.append(b)
        return b.start()

    yield start_broker
    _finish(request, brokers, tmp)


@pytest.fixture
def cluster(request):
    """A running three-node cluster (phxq_cluster.Cluster): generated configs on free
    ports, a data dir per node; any node can be killed with kill -9 and restarted. A test
    adds TOML to every node's config with
    ``@pytest.mark.parametrize("cluster", ["[log]\\n..."], indirect=True)``, or passes
    Cluster's arguments as a dict (``[{"size": 4}]``)."""
    from phxq_cluster import Cluster
    tmp = Path(tempfile.mkdtemp(prefix="phxq-cluster-"))
    param = getattr(request, "param", "")
    c = Cluster(tmp, **(param if isinstance(param, dict) else {"extra_toml": param}))
    request.node.phxq_brokers = list(c.nodes.values())
    try:
        c.start()
    except BaseException:
        for n in c.nodes.values():
            n.kill9()
        raise
    yield c
    _finish(request, list(c.nodes.values()), tmp)


@pytest.fixture
def broker(broker_factory) -> Broker:
    """A single broker with default settings."""
    return broker_factory()


@pytest.fixture
def topic(request) -> str:
    """A topic name derived from the test name (valid Kafka characters only)."""
    name = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)
    return f"t-{name}"[:200]


def pytest_terminal_summary(terminalreporter):
    """Failover times measured by test_cluster.py (kill -9 -> first acknowledged produce)."""
    import statistics
    import sys
    mod = sys.modules.get("phxq_cluster")
    times = getattr(mod, "FAILOVER_TIMES", None)
    if not times:
        return
    terminalreporter.section("failover times (kill -9 -> service again)")
    for label, seconds in times:
        terminalreporter.write_line(f"{seconds:6.2f} s  {label}")
    produce = sorted(s for label, s in times if "round" in label)
    if produce:
        terminalreporter.write_line(f"median of {len(produce)} partition-leader failovers: "
                                    f"{statistics.median(produce):.2f} s")
