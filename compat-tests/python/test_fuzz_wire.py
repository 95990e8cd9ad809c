"""Mutated Kafka frames against a running broker. The fuzz harness writes mutants of its
kafka-request seeds (every API and version the broker advertises, randomized fields,
then byte-level mutations: `phxq-fuzz --target kafka-request --emit N`); each goes to the
broker on its own connection, several connections at a time, and the client then closes
its sending side. Every connection must end with the broker closing it, after whatever
answers were due: a socket timeout means the broker hung on it. Afterwards the broker is
alive, logged no panic, and a real client (confluent-kafka) produces after and consumes
exactly the records produced before."""

import os
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import PHXQ_BIN
from test_bad_input import baseline, healthy

FUZZ_BIN = os.environ.get("PHXQ_FUZZ_BIN", str(Path(PHXQ_BIN).parent / "phxq-fuzz"))
SEED = "0x66757a7a77697265"
MUTANTS = 5000
MAX_LEN = 4096
WORKERS = 12
# A connection the broker neither answers to the end nor closes within this long hangs.
# (Long polls are capped at 60 s by the broker, but only requests for existing topics wait;
# mutants name topics that do not exist.)
HANG_SECS = 15


def emit_mutants(tmp: Path) -> list[bytes]:
    out = tmp / "mutants.bin"
    assert Path(FUZZ_BIN).exists(), f"no fuzz harness at {FUZZ_BIN} (cargo build --release -p phxq-fuzz)"
    subprocess.run([FUZZ_BIN, "--target", "kafka-request", "--seed", SEED, "--emit", str(MUTANTS),
                    "--max-len", str(MAX_LEN), "--out", str(out)], check=True, capture_output=True, timeout=60)
    data = out.read_bytes()
    mutants, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        mutants.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    assert len(mutants) == MUTANTS
    return mutants


def send(addr: tuple[str, int], data: bytes) -> tuple[str, int]:
    """Sends one mutant and half-closes; returns ("closed" | "hang", bytes answered)."""
    with socket.create_connection(addr, timeout=5) as s:
        s.settimeout(HANG_SECS)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return "closed", 0  # the broker closed before taking it all
        got = 0
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return "hang", got
            except ConnectionResetError:
                return "closed", got
            if not chunk:
                return "closed", got
            got += len(chunk)


def test_mutated_frames_get_answers_or_a_close(broker, topic, tmp_path):
    before = baseline(broker, topic)
    mutants = emit_mutants(tmp_path)
    addr = ("127.0.0.1", broker.port)
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda m: send(addr, m), mutants))
    took = time.monotonic() - started
    hung = [i for i, (outcome, _) in enumerate(results) if outcome == "hang"]
    if hung:
        for i in hung[:20]:
            (tmp_path.parent / f"hung-mutant-{i}.bin").write_bytes(mutants[i])
    assert not hung, f"{len(hung)} of {MUTANTS} connections neither finished nor closed in {HANG_SECS}s " \
                     f"(first mutants written beside {tmp_path})"
    answered = sum(1 for _, got in results if got > 0)
    # Both ends of the decoder were reached: mutants that decode and get answers, and
    # mutants that are refused with a close.
    assert answered > MUTANTS // 20, f"only {answered} connections got an answer"
    assert MUTANTS - answered > MUTANTS // 20, f"only {MUTANTS - answered} connections were refused"
    print(f"{MUTANTS} mutants in {took:.1f}s: {answered} answered, {MUTANTS - answered} closed without an answer")
    healthy(broker, topic, before)
    log = broker.log_path.read_text(errors="replace")
    assert "panicked" not in log, broker.log_tail()
