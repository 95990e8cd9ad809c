"""Security with real clients: TLS (SSL), SASL/PLAIN and SASL/SCRAM-SHA-256/512 over
SASL_PLAINTEXT and SASL_SSL, mutual TLS, and the refusals a user expects (wrong password,
unknown user, no client certificate, an expired certificate, a request before logging
in). One broker serves every listener at once; users are made with `phxq user` over its
PLAINTEXT listener. Certificates come from a throw-away CA (trustme)."""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
import time
import urllib.request

import pytest
import trustme
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import PHXQ_BIN, free_port
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KPError


class Secure:
    """A broker with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners."""

    def __init__(self, broker, ports: dict[str, int], tmp, ca, metrics_port: int):
        self.broker = broker
        self.ports = ports
        self.tmp = tmp
        self.ca = ca
        self.ca_file = str(tmp / "ca.pem")
        self.metrics_port = metrics_port

    def addr(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def client_cert(self, name: str, **kw) -> tuple[str, str]:
        cert = self.ca.issue_cert(common_name=name, organization_name="phxq-tests", **kw)
        cert_file, key_file = self.tmp / f"{name}.crt", self.tmp / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        return str(cert_file), str(key_file)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0


@pytest.fixture
def secure(broker_factory, tmp_path):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ports = {name: free_port() for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL", "MTLS")}
    metrics_port = free_port()
    cfg = tmp_path / "secure.toml"
    cfg.write_text(f"""
metrics_listen = "127.0.0.1:{metrics_port}"
[security]
listener_security_protocol_map = {{ MTLS = "SSL" }}
failed_authentication_delay_ms = 50
[security.tls]
cert_file = "{tmp_path / 'server.pem'}"
key_file = "{tmp_path / 'server.pem'}"
ca_file = "{tmp_path / 'ca.pem'}"
client_auth = "requested"
client_auth_by_listener = {{ MTLS = "required" }}
""")
    listen = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    broker = broker_factory("--config", str(cfg), "--listen", listen)
    s = Secure(broker, ports, tmp_path, ca, metrics_port)
    user(s, "create", "alice", "--password", "alice-secret")
    user(s, "create", "bob", "--password", "bob-secret", "--mechanism", "SCRAM-SHA-512")
    return s


def wait_logged(s: Secure, text: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while text not in s.broker.log_tail(400):
        assert time.monotonic() < deadline, f"the broker did not log {text!r}"
        time.sleep(0.05)


def user(s: Secure, *args: str) -> str:
    r = subprocess.run([PHXQ_BIN, "user", *args, "--bootstrap", s.broker.bootstrap],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def confluent_conf(s: Secure, listener: str, mechanism: str | None = None, username: str = "alice",
                   password: str = "alice-secret", **extra) -> dict:
    protocol = {"MTLS": "SSL"}.get(listener, listener)
    conf = {"bootstrap.servers": s.addr(listener), "security.protocol": protocol}
    if "SSL" in protocol:
        conf["ssl.ca.location"] = s.ca_file
    if mechanism:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})
    conf.update(extra)
    return conf


def roundtrip(conf: dict, topic: str, n: int = 20) -> list[bytes]:
    """Creates `topic` (2 partitions), produces n records and reads them back through
    `conf`'s listener: the values, in order per partition."""
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    p = Producer({**conf, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(2)])
    got, eof, deadline = [], set(), time.monotonic() + 30
    try:
        while len(eof) < 2:
            assert time.monotonic() < deadline, f"read {len(got)} of {n}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                eof.add(m.partition())
                continue
            got.append(m.value())
    finally:
        c.close()
    return got


@pytest.mark.parametrize("listener,mechanism", [
    ("SSL", None),
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_SSL", "PLAIN"),
])
def test_confluent_kafka_over_every_protocol(secure, listener, mechanism):
    topic = f"sec-{listener}-{mechanism or 'none'}".lower()
    got = roundtrip(confluent_conf(secure, listener, mechanism), topic)
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))


def test_scram_sha_512_user_and_metadata_gives_the_listeners_address(secure):
    conf = confluent_conf(secure, "SASL_SSL", "SCRAM-SHA-512", "bob", "bob-secret")
    got = roundtrip(conf, "sec-bob")
    assert len(got) == 20
    # Metadata answers with the address of the listener the client came in on.
    md = AdminClient(conf).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", secure.ports["SASL_SSL"])]


@pytest.mark.parametrize("mechanism,username,password", [
    ("SCRAM-SHA-256", "alice", "wrong"),
    ("SCRAM-SHA-256", "mallory", "alice-secret"),
    ("PLAIN", "alice", "wrong"),
    ("SCRAM-SHA-256", "bob", "bob-secret"),  # bob has SCRAM-SHA-512 only
])
def test_bad_credentials_are_refused(secure, mechanism, username, password):
    before = secure.metric("phxq_authentication_failures_total")
    conf = confluent_conf(secure, "SASL_PLAINTEXT", mechanism, username, password)
    errors = []
    p = Producer({**conf, "message.timeout.ms": 5000, "error_cb": lambda e: errors.append(e)})
    p.produce("never", value=b"x")
    p.flush(8)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert secure.metric("phxq_authentication_failures_total") > before
    wait_logged(secure, f'user="{username}" reason=')


def test_requests_before_authentication_close_the_connection(secure):
    # A Metadata request (v1) straight away on the SASL listener: the broker closes.
    with socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5) as s:
        body = (3).to_bytes(2, "big") + (1).to_bytes(2, "big") + (7).to_bytes(4, "big") + (0).to_bytes(2, "big")
        body += (-1).to_bytes(4, "big", signed=True)
        s.sendall(len(body).to_bytes(4, "big") + body)
        assert s.recv(4) == b""
    wait_logged(secure, "request before SASL authentication")


def test_mutual_tls_and_certificate_refusals(secure, tmp_path):
    # MTLS requires a client certificate: none at all is refused.
    with pytest.raises(KafkaException):
        Producer(confluent_conf(secure, "MTLS")).list_topics(timeout=5)
    cert, key = secure.client_cert("app-1")
    got = roundtrip(confluent_conf(secure, "MTLS", **{"ssl.certificate.location": cert,
                                                      "ssl.key.location": key}), "sec-mtls")
    assert len(got) == 20
    # An expired client certificate fails the handshake.
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    old_cert, old_key = secure.client_cert("old-app", not_before=past - datetime.timedelta(days=1),
                                           not_after=past)
    with pytest.raises(KafkaException):
        Producer(confluent_conf(secure, "MTLS", **{"ssl.certificate.location": old_cert,
                                                   "ssl.key.location": old_key})).list_topics(timeout=5)
    wait_logged(secure, "TLS handshake failed")
    # A certificate from another CA is refused too.
    other = trustme.CA().issue_cert(common_name="stranger")
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "stranger.crt"))
    other.private_key_pem.write_to_path(str(tmp_path / "stranger.key"))
    with pytest.raises(KafkaException):
        Producer(confluent_conf(secure, "MTLS", **{"ssl.certificate.location": str(tmp_path / "stranger.crt"),
                                                   "ssl.key.location": str(tmp_path / "stranger.key")})
                 ).list_topics(timeout=5)


def test_kafka_python_scram_and_ssl(secure):
    common = dict(bootstrap_servers=secure.addr("SASL_SSL"), security_protocol="SASL_SSL",
                  ssl_cafile=secure.ca_file, sasl_mechanism="SCRAM-SHA-256",
                  sasl_plain_username="alice", sasl_plain_password="alice-secret")
    admin = AdminClient(confluent_conf(secure, "SASL_SSL", "SCRAM-SHA-256"))
    admin.create_topics([NewTopic("sec-kp", 1, 1)])["sec-kp"].result(30)
    p = KafkaProducer(**common)
    for i in range(10):
        p.send("sec-kp", f"k{i}".encode())
    p.flush(30)
    p.close()
    c = KafkaConsumer("sec-kp", auto_offset_reset="earliest", consumer_timeout_ms=5000, **common)
    assert [m.value for m in c] == [f"k{i}".encode() for i in range(10)]
    c.close()
    with pytest.raises(KPError):
        KafkaProducer(**{**common, "sasl_plain_password": "nope"}, api_version=(3, 6),
                      max_block_ms=3000).send("sec-kp", b"x").get(10)


def test_phxq_user_list_and_delete(secure):
    listed = json.loads(user(secure, "list", "--json"))["users"]
    assert {"user": "alice", "mechanism": "SCRAM-SHA-256", "iterations": 8192} in listed
    assert {"user": "bob", "mechanism": "SCRAM-SHA-512", "iterations": 8192} in listed
    assert all(u["user"] != "alice" or u["mechanism"] != "PLAIN" for u in listed)
    user(secure, "delete", "bob")
    assert all(u["user"] != "bob" for u in json.loads(user(secure, "list", "--json"))["users"])
    r = subprocess.run([PHXQ_BIN, "user", "delete", "bob", "--bootstrap", secure.broker.bootstrap],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "RESOURCE_NOT_FOUND" in r.stderr, r.stderr


@pytest.mark.parametrize("listener,mechanism", [("SASL_SSL", "scram-sha-512"), ("SASL_PLAINTEXT", "plain")])
def test_kafkajs_over_sasl(secure, listener, mechanism):
    from phxq_clients import node
    username, password = ("bob", "bob-secret") if mechanism == "scram-sha-512" else ("alice", "alice-secret")
    spec = {"brokers": [secure.addr(listener)], "topic": f"sec-js-{mechanism}", "n": 10,
            "ssl": {"ca": open(secure.ca_file).read()} if listener == "SASL_SSL" else None,
            "sasl": {"mechanism": mechanism, "username": username, "password": password}}
    assert node("secure.js", spec)["values"] == [f"js{i}" for i in range(10)]


def test_aiokafka_over_sasl_ssl(secure):
    import asyncio
    import ssl

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    admin = AdminClient(confluent_conf(secure, "SASL_SSL", "SCRAM-SHA-256"))
    admin.create_topics([NewTopic("sec-aio", 1, 1)])["sec-aio"].result(30)

    async def run():
        ctx = ssl.create_default_context(cafile=secure.ca_file)
        common = dict(bootstrap_servers=secure.addr("SASL_SSL"), security_protocol="SASL_SSL",
                      ssl_context=ctx, sasl_mechanism="SCRAM-SHA-256",
                      sasl_plain_username="alice", sasl_plain_password="alice-secret")
        p = AIOKafkaProducer(**common)
        await p.start()
        for i in range(10):
            await p.send_and_wait("sec-aio", f"a{i}".encode())
        await p.stop()
        c = AIOKafkaConsumer("sec-aio", auto_offset_reset="earliest", **common)
        await c.start()
        got = []
        try:
            while len(got) < 10:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 20)
                for msgs in batch.values():
                    got.extend(m.value for m in msgs)
        finally:
            await c.stop()
        return got

    assert asyncio.run(run()) == [f"a{i}".encode() for i in range(10)]


def test_kcat_over_sasl_ssl_and_ssl(secure):
    from phxq_clients import kcat
    sasl = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=SCRAM-SHA-256",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret",
            "-X", f"ssl.ca.location={secure.ca_file}"]
    admin = AdminClient(confluent_conf(secure, "SASL_SSL", "SCRAM-SHA-256"))
    admin.create_topics([NewTopic("sec-kcat", 1, 1)])["sec-kcat"].result(30)
    r = kcat("-b", secure.addr("SASL_SSL"), *sasl, "-P", "-t", "sec-kcat", input=b"one\ntwo\nthree\n")
    assert r.returncode == 0, r.stderr
    r = kcat("-b", secure.addr("SSL"), "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.ca_file}",
             "-C", "-t", "sec-kcat", "-o", "beginning", "-e", "-f", "%s\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["one", "two", "three"]


def test_reauthentication_keeps_a_long_connection(broker_factory, tmp_path):
    """KIP-368: with connections_max_reauth_ms a SASL session expires; librdkafka logs in
    again on the same connection and keeps producing; a request after expiry without it
    would close the connection (the broker logs that, and must not here)."""
    port = free_port()
    cfg = tmp_path / "reauth.toml"
    cfg.write_text("[security]\nconnections_max_reauth_ms = 1500\n")
    b = broker_factory("--config", str(cfg), "--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}")
    r = subprocess.run([PHXQ_BIN, "user", "create", "carol", "--password", "carol-secret",
                        "--bootstrap", b.bootstrap], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "carol", "sasl.password": "carol-secret"}
    admin = AdminClient(conf)
    admin.create_topics([NewTopic("sec-reauth", 1, 1)])["sec-reauth"].result(30)
    p = Producer({**conf, "linger.ms": 0})
    delivered = []
    for i in range(40):
        p.produce("sec-reauth", value=f"r{i}".encode(), on_delivery=lambda e, m: delivered.append(e))
        p.flush(10)
        time.sleep(0.1)
    assert len(delivered) == 40 and all(e is None for e in delivered), delivered
    assert "SASL session expired" not in b.log_tail(400)


# ---------------------------------------------------------------- bad input on the new paths

def _frame(api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    """A request with header v1 (client id "bad")."""
    header = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + correlation.to_bytes(4, "big")
    header += (3).to_bytes(2, "big") + b"bad"
    msg = header + body
    return len(msg).to_bytes(4, "big") + msg


def _read_frame(s: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out
    return exactly(int.from_bytes(exactly(4), "big"))


def _sasl_login(port: int, mechanism: bytes, token: bytes) -> tuple[int, bool]:
    """SaslHandshake v1 then one SaslAuthenticate v0 with `token`: (error code of the
    authenticate answer, whether the broker closed the connection after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_frame(17, 1, 1, len(mechanism).to_bytes(2, "big") + mechanism))
        r = _read_frame(s)
        assert int.from_bytes(r[4:6], "big", signed=True) == 0, r
        s.sendall(_frame(36, 0, 2, len(token).to_bytes(4, "big") + token))
        r = _read_frame(s)
        code = int.from_bytes(r[4:6], "big", signed=True)
        try:
            closed = s.recv(1) == b""
        except (ConnectionError, socket.timeout):
            closed = True
        return code, closed


@pytest.mark.parametrize("mechanism,token", [
    (b"SCRAM-SHA-256", b"\x00\xff garbage"),
    (b"SCRAM-SHA-256", b"n,,n=alice,r="),             # empty client nonce
    (b"SCRAM-SHA-512", b"p=tls-unique,,n=alice,r=abc"),  # channel binding asked for
    (b"PLAIN", b"no separators at all"),
    (b"PLAIN", b"\x00alice"),                          # no password
])
def test_malformed_sasl_exchanges_fail_and_close(secure, mechanism, token):
    code, closed = _sasl_login(secure.ports["SASL_PLAINTEXT"], mechanism, token)
    assert code == 58 and closed, (code, closed)  # SASL_AUTHENTICATION_FAILED


def test_tls_garbage_and_stalled_handshakes_do_not_disturb_others(secure):
    # Garbage where a ClientHello should be: the handshake fails and the connection closes.
    with socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello this is no TLS" * 10)
        try:
            while s.recv(4096):
                pass
        except ConnectionError:
            pass
    wait_logged(secure, "TLS handshake failed")
    # Clients that stop mid-handshake: each holds only its own connection until the
    # handshake timeout; everyone else is served meanwhile.
    stalled = [socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=15) for _ in range(50)]
    for s in stalled:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
    try:
        got = roundtrip(confluent_conf(secure, "SSL"), "sec-while-stalled", n=10)
        assert sorted(got) == sorted(f"v{i}".encode() for i in range(10))
        # The broker closes them after its 10 s handshake timeout.
        deadline = time.monotonic() + 20
        for s in stalled:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                assert s.recv(1) == b""
            except ConnectionError:
                pass
    finally:
        for s in stalled:
            s.close()
    wait_logged(secure, "TLS handshake timed out")


def test_a_thousand_failed_logins_leave_the_broker_serving(secure):
    from concurrent.futures import ThreadPoolExecutor
    before = secure.metric("phxq_authentication_failures_total")
    token = b"\x00alice\x00wrong-password"
    with ThreadPoolExecutor(100) as pool:
        failed = pool.map(lambda _: _sasl_login(secure.ports["SASL_PLAINTEXT"], b"PLAIN", token), range(1000))
        # Meanwhile a real client logs in and produces.
        got = roundtrip(confluent_conf(secure, "SASL_PLAINTEXT", "SCRAM-SHA-256"), "sec-under-attack", n=10)
        results = list(failed)
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(10))
    assert all(r == (58, True) for r in results), {r for r in results}
    assert secure.metric("phxq_authentication_failures_total") >= before + 1000
    secure.broker.assert_alive()
