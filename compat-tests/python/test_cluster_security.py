"""Inter-broker mutual TLS (`[security.inter_broker]`): a three-node cluster whose brokers
each have their own certificate from a throw-away brokers' CA (trustme), with every
broker's subject in `allowed_principals`.

What a user checks: the cluster works as a plaintext one does (leaders, failover under
kill -9 with every acknowledged record read back once, in order, at its offset;
`phxq cluster status` over TLS), and someone who is not a broker gets nothing from an
internal port: plain TCP, TLS with a certificate from another CA, and TLS with a
certificate from the brokers' CA whose subject is not allowed are each closed without an
answer, logged with their address, and the cluster carries on; and a server posing as a
broker with a subject not allowed is not trusted by a connecting one. One cluster serves both
tests (they run in this order)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from conftest import PHXQ_BIN
from phxq_cluster import AckingProducer, Cluster
from phxq_clients import assert_acked_present, assert_same_records, confluent_consume, confluent_produce, make_records

PARTITIONS = 3
# The status request of the inter-broker protocol in a frame (length 2; postcard: variant
# 1 = Status, id 1), as replication/tests/tcp_cluster.rs checks a plaintext node answers it.
STATUS_FRAME = bytes([0, 0, 0, 2, 1, 1])


class Certs:
    """The brokers' CA and one certificate per broker (valid for 127.0.0.1 and localhost,
    subject CN=brokerN,OU=brokers,O=phxq-tests), plus what rogues hold."""

    def __init__(self, d: Path):
        self.dir = d
        self.ca = trustme.CA()
        self.ca_file = d / "brokers-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def issue(self, name: str, ca: trustme.CA | None = None) -> tuple[Path, Path, str]:
        """(cert file, key file, subject as RFC 4514/2253 writes it)."""
        leaf = (ca or self.ca).issue_cert("127.0.0.1", "localhost", common_name=name,
                                          organization_name="phxq-tests", organization_unit_name="brokers")
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        subject = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).subject.rfc4514_string()
        return cert, key, subject


@pytest.fixture(scope="module")
def tls_cluster():
    tmp = Path(tempfile.mkdtemp(prefix="phxq-cluster-tls-"))
    certs = Certs(tmp)
    brokers = {i: certs.issue(f"broker{i}") for i in (1, 2, 3)}
    allowed = ", ".join(f'"{subject}"' for _, _, subject in brokers.values())

    def extra(i: int) -> str:
        cert, key, _ = brokers[i]
        return (f"[security.inter_broker]\ntls = true\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"
                f"ca_file = \"{certs.ca_file}\"\nallowed_principals = [{allowed}]\n")

    c = Cluster(tmp, extra_toml=extra)
    c.certs, c.broker_certs = certs, brokers
    try:
        c.start()
        yield c
    finally:
        for n in c.nodes.values():
            n.kill9()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def cluster(tls_cluster, request):
    """The module's cluster, with its nodes' logs attached to a failure report."""
    request.node.phxq_brokers = list(tls_cluster.nodes.values())
    tls_cluster.start()  # any node a failed test left dead
    return tls_cluster


def ask_internal(port: int, tls: ssl.SSLContext | None = None) -> tuple[int, bytes | Exception]:
    """Connects to an internal port (over TLS with `tls`), sends STATUS_FRAME and reads until
    a whole answer frame came, the connection closed or 8 s passed: (our local port, the
    bytes read or the error)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=8)
    local = sock.getsockname()[1]
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(STATUS_FRAME)
        got = b""
        while len(got) < 4 or len(got) < 4 + int.from_bytes(got[:4], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return local, got
    except (ssl.SSLError, OSError) as e:
        return local, e
    finally:
        sock.close()


def tls_context(certs: Certs, cert: Path, key: Path, tls12: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certs.ca_file))
    ctx.load_cert_chain(str(cert), str(key))
    if tls12:  # the client certificate is checked before the handshake ends
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def rogue_server(certs: Certs, cert: Path, key: Path) -> tuple[list, int]:
    """A TLS server on a free port that accepts connections for 30 s and keeps whatever
    application data it is sent: (that list, its port)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(str(certs.ca_file))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    received: list[bytes] = []

    def run():
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                try:
                    with ctx.wrap_socket(conn, server_side=True) as s:
                        s.settimeout(5)
                        if data := s.recv(65536):
                            received.append(data)
                except (ssl.SSLError, OSError):
                    pass

    threading.Thread(target=run, daemon=True).start()
    return received, listener.getsockname()[1]


def wait_refusal_logged(node, local_port: int, reason: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in node.log_tail(2000).splitlines()
                 if "inter-broker connection refused" in ln and f"peer=127.0.0.1:{local_port}" in ln]
        if lines:
            assert reason in lines[-1], lines[-1]
            return lines[-1]
        assert time.monotonic() < deadline, \
            f"{node.name} logged no refusal of 127.0.0.1:{local_port}:\n{node.log_tail(30)}"
        time.sleep(0.1)


def test_strangers_get_nothing_from_the_internal_port(cluster):
    node = cluster.nodes[1]
    port = cluster.internal_ports[1]
    certs = cluster.certs
    # The same frame from a broker's certificate is answered: the frame is a real request
    # and the port speaks TLS with a client that verifies it as brokers do.
    cert2, key2, _ = cluster.broker_certs[2]
    _, answer = ask_internal(port, tls_context(certs, cert2, key2))
    assert isinstance(answer, bytes) and len(answer) > 4, f"a broker's status request got {answer!r}"
    assert int.from_bytes(answer[:4], "big") == len(answer) - 4, "one whole answer frame"

    # (a) plain TCP: closed without a byte (a reset: the frame was never read).
    local, got = ask_internal(port)
    assert got == b"" or isinstance(got, ConnectionResetError), f"plaintext got {got!r}"
    print("\n" + wait_refusal_logged(node, local, "not a TLS handshake"))

    # (b) TLS with a certificate from another CA: the handshake fails.
    other_cert, other_key, _ = certs.issue("stranger", ca=trustme.CA())
    local, got = ask_internal(port, tls_context(certs, other_cert, other_key, tls12=True))
    assert isinstance(got, ssl.SSLError), f"a certificate from another CA got {got!r}"
    print(wait_refusal_logged(node, local, "TLS handshake failed"))

    # (c) TLS with a certificate from the brokers' CA whose subject is not allowed.
    rogue_cert, rogue_key, rogue_subject = certs.issue("rogue")
    local, got = ask_internal(port, tls_context(certs, rogue_cert, rogue_key, tls12=True))
    assert isinstance(got, ssl.SSLError), f"a subject not in allowed_principals got {got!r}"
    print(wait_refusal_logged(node, local, "not in [security.inter_broker] allowed_principals"))
    assert rogue_subject in node.log_tail(2000)
    # Over TLS 1.3 (the client's handshake ends before the server checks its certificate)
    # it gets no answer either.
    local, got = ask_internal(port, tls_context(certs, rogue_cert, rogue_key))
    assert not (isinstance(got, bytes) and got), f"TLS 1.3 with a rogue subject got {got!r}"
    wait_refusal_logged(node, local, "allowed_principals")

    # (d) the other way: a server posing as broker 3 with a certificate from the brokers'
    # CA but a subject not allowed is not trusted by a connecting broker (`phxq cluster
    # status` connects as brokers do), and is sent nothing.
    received, rogue_port = rogue_server(certs, rogue_cert, rogue_key)
    conf = cluster.nodes[1].config_path.read_text().replace(
        f'internal = "127.0.0.1:{cluster.internal_ports[3]}"', f'internal = "127.0.0.1:{rogue_port}"')
    (certs.dir / "rogue-view.toml").write_text(conf)
    r = subprocess.run([PHXQ_BIN, "cluster", "status", "--config", str(certs.dir / "rogue-view.toml"), "--json"],
                       capture_output=True, text=True, timeout=30)
    reports = {b["id"]: b for b in json.loads(r.stdout)}
    assert reports[1]["error"] is None and reports[2]["error"] is None, r.stdout
    assert "allowed_principals" in (reports[3]["error"] or ""), reports[3]
    print(f"phxq cluster status, broker 3 posed by a rogue: {reports[3]['error']}")
    assert received == [], f"the rogue server was sent {received!r}"

    # The cluster still serves: every group led and replicated, a topic round trip.
    cluster.wait_for(cluster.caught_up, 30, interval=0.2, what="every group led and caught up")
    cluster.create_topic("after-rogues", 1)
    recs = confluent_produce(cluster.bootstrap, "after-rogues", make_records(20, 1, big=False))
    assert_same_records(recs, confluent_consume(cluster.bootstrap, "after-rogues"))
    cluster.assert_alive()


def test_failover_over_mutual_tls(cluster, topic):
    """Idempotent acks=all produce from confluent-kafka while the leader of partition 0 is
    killed with kill -9 and later restarted (catching up over TLS); every acknowledged
    record is read back once, in order, at its acknowledged offset."""
    cluster.create_topic(topic, PARTITIONS)
    prod = AckingProducer(cluster.bootstrap, topic, PARTITIONS, "tls", **{"enable.idempotence": True}).start()
    try:
        prod.wait_acks(300, 30)
        victim = cluster.wait_leader(topic, 0)
        killed = cluster.kill9(victim)
        cluster.wait_leader(topic, 0, 30, not_on=victim)
        ack = cluster.wait_for(lambda: prod.first_ack_after(killed, 0), 30, interval=0.02,
                               what=f"an acknowledged produce to partition 0 after killing {victim}")
        print(f"\n[mTLS] killed node {victim}: produce acknowledged again after {ack.acked - killed:.2f} s")
        prod.wait_acks(300, 30)
        cluster.start(victim)
        cluster.wait_for(cluster.caught_up, 30, interval=0.2, what=f"node {victim} back in every group over TLS")
        prod.wait_acks(300, 30)
    finally:
        prod.stop()
    assert not prod.failed, f"idempotent deliveries failed: {prod.failed[:5]}"
    acked = prod.acked()
    stored = assert_acked_present(cluster.bootstrap, topic, range(PARTITIONS), acked)
    dups = [v for v, n in Counter(stored.values()).items() if n > 1]
    assert not dups, f"{len(dups)} records stored more than once, e.g. {sorted(dups)[:5]}"
    for p in range(PARTITIONS):
        seq = [int(stored[(p, o)].rsplit("-", 1)[1]) for o in range(len([k for k in stored if k[0] == p]))]
        assert seq == sorted(seq), f"partition {p}: records out of order"
    assert len(stored) == len(acked), f"{len(stored)} stored, {len(acked)} acknowledged"
    cluster.assert_alive()
