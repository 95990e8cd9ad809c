"""Produce and consume over TLS (SSL and SASL_SSL with SCRAM-SHA-256) against plaintext,
same broker, same run.

One single-node broker with a PLAINTEXT, an SSL and a SASL_SSL listener (a throw-away CA,
ECDSA P-256 server certificate, rustls with its default cipher suites). For each listener,
one confluent-kafka 2.16.1 producer writes N records of 1 KiB (acks=all, linger.ms=5) to
a topic of 6 partitions and one consumer reads them all back. Listeners take turns, --reps
times in alternating order; medians in MB/s and the ratio to plaintext of medians.

    .venv/bin/python compat-tests/bench/tls_overhead.py [--reps 5] [--records 300000]

Writes docs/tls-overhead.md. Hold the machine for it (no builds alongside):
    flock /tmp/phxq-cargo.lock .venv/bin/python compat-tests/bench/tls_overhead.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat-tests" / "python"))

from conftest import PHXQ_BIN, Broker, free_port  # noqa: E402

VALUE = b"x" * 1024


def conf(addr: str, listener: str, ca: str) -> dict:
    c = {"bootstrap.servers": addr}
    if listener == "SSL":
        c.update({"security.protocol": "SSL", "ssl.ca.location": ca})
    elif listener == "SASL_SSL":
        c.update({"security.protocol": "SASL_SSL", "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-256",
                  "sasl.username": "bench", "sasl.password": "bench-secret"})
    return c


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run(c: dict, topic: str, n: int, pid: int) -> tuple[float, float, float, float]:
    """(produce MB/s, consume MB/s, broker CPU s per GB, client CPU s per GB) of produce."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(c)
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    p = Producer({**c, "linger.ms": 5, "acks": "all", "batch.num.messages": 10000})
    broker0, client0 = cpu_seconds(pid), own_cpu()
    start = time.monotonic()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=VALUE, partition=i % 6)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0
    produce_s = time.monotonic() - start
    gb = n * len(VALUE) / 1e9
    broker_cpu = (cpu_seconds(pid) - broker0) / gb
    client_cpu = (own_cpu() - client0) / gb
    cons = Consumer({**c, "group.id": f"g-{topic}", "enable.partition.eof": True,
                     "fetch.max.bytes": 52428800, "enable.auto.commit": False})
    cons.assign([TopicPartition(topic, p, 0) for p in range(6)])
    got, eof = 0, set()
    start = time.monotonic()
    while len(eof) < 6:
        for m in cons.consume(10000, 1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            got += 1
    consume_s = time.monotonic() - start
    cons.close()
    assert got == n, (got, n)
    mb = n * len(VALUE) / 1e6
    return mb / produce_s, mb / consume_s, broker_cpu, client_cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "tls-overhead.md"))
    a = ap.parse_args()
    import trustme
    base = Path(tempfile.mkdtemp(prefix="phxq-tls-bench-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(base / "server.pem"))
    (base / "tls.toml").write_text(f"""
[security.tls]
cert_file = "{base / 'server.pem'}"
key_file = "{base / 'server.pem'}"
""")
    ports = {"SSL": free_port(), "SASL_SSL": free_port()}
    listen = ",".join(f"{k}://127.0.0.1:{v}" for k, v in ports.items())
    b = Broker(base / "data", ["--config", str(base / "tls.toml"), "--listen", listen], "tls-bench")
    b.start()
    subprocess.run([PHXQ_BIN, "user", "create", "bench", "--password", "bench-secret",
                    "--mechanism", "SCRAM-SHA-256", "--bootstrap", b.bootstrap], check=True, capture_output=True)
    addrs = {"PLAINTEXT": b.bootstrap, **{k: f"127.0.0.1:{v}" for k, v in ports.items()}}
    kinds = ["PLAINTEXT", "SSL", "SASL_SSL"]
    res: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in kinds}
    try:
        for rep in range(a.reps):
            for k in (kinds if rep % 2 == 0 else list(reversed(kinds))):
                r = run(conf(addrs[k], k, str(base / "ca.pem")), f"bench-{k.lower()}-{rep}", a.records,
                        b.proc.pid)
                res[k].append(r)
                print(f"rep {rep} {k}: produce {r[0]:.0f} MB/s, consume {r[1]:.0f} MB/s, "
                      f"broker {r[2]:.2f} CPU s/GB, client {r[3]:.2f} CPU s/GB", flush=True)
    finally:
        b.kill9()
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in res.items()}
    lines = [
        "# TLS overhead: produce and consume over SSL and SASL_SSL against plaintext",
        "",
        f"Measured by `compat-tests/bench/tls_overhead.py --reps {a.reps} --records {a.records}` on "
        f"{platform.node()} ({platform.machine()}, 2 cores), {time.strftime('%Y-%m-%d')}: one single-node broker "
        "with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-256) listeners at once (rustls, ring, ECDSA P-256 "
        "certificate), 6 partitions, 1 KiB records, one confluent-kafka 2.16.1 producer (acks=all, "
        "linger.ms=5) then one consumer per run. Client and broker share the 2 cores, so the client's "
        "own TLS work counts against the broker too.",
        "",
        "| listener | produce MB/s | ratio | consume MB/s | ratio | broker CPU s/GB produced | ratio | client CPU s/GB produced |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in kinds:
        lines.append(f"| {k} | {med[k][0]:.0f} | {med[k][0] / med['PLAINTEXT'][0]:.2f} | "
                     f"{med[k][1]:.0f} | {med[k][1] / med['PLAINTEXT'][1]:.2f} | "
                     f"{med[k][2]:.2f} | {med[k][2] / med['PLAINTEXT'][2]:.2f} | {med[k][3]:.2f} |")
    lines += [
        "",
        "Medians of the runs below. While producing, the client process (librdkafka encrypts in "
        "its broker thread) is the busiest of the two on these 2 cores; the broker's own cost of "
        "TLS is the CPU column.",
        "",
        "Runs (produce MB/s, consume MB/s, broker CPU s/GB, client CPU s/GB):",
        "",
    ]
    for k in kinds:
        lines.append(f"- {k}: " + ", ".join(f"({p:.0f}, {c:.0f}, {bc:.2f}, {cc:.2f})" for p, c, bc, cc in res[k]))
    lines.append("")
    Path(a.out).write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
