"""The `phxq` admin commands against secured listeners, configured as Kafka's tools are:
`--command-config FILE` (or PHXQ_COMMAND_CONFIG) with a client properties file. One broker
(test_security.py's `secure` fixture: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL and an SSL
listener requiring client certificates; users alice (SCRAM-SHA-256) and bob
(SCRAM-SHA-512)).

What a user checks: topic create/list, produce and consume work over SASL_SSL with SCRAM
(librdkafka's and Java's property names) and over SSL with a client certificate; without
the settings the same commands fail; a wrong password or a missing certificate fails
quickly with exit code 2 and a message saying why."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from conftest import PHXQ_BIN
from test_security import secure  # noqa: F401 - the fixture

LINES = [f"line-{i}" for i in range(25)]


def props(path: Path, **kv: str) -> Path:
    path.write_text("# phxq --command-config\n" + "".join(f"{k}={v}\n" for k, v in kv.items()))
    return path


def phxq(bootstrap: str, *args: str, config: Path | None = None, env_config: Path | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [PHXQ_BIN, *(["--command-config", str(config)] if config else []), *args, "--bootstrap", bootstrap]
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PHXQ_COMMAND_CONFIG", None)
    if env_config:
        env["PHXQ_COMMAND_CONFIG"] = str(env_config)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env=env)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"{' '.join(r.args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def round_trip(bootstrap: str, topic: str, **how):
    """topic create (2 partitions), list, produce LINES, consume them back: what a user runs."""
    assert f"created {topic}" in ok(phxq(bootstrap, "topic", "create", topic, "-p", "2", **how))
    listed = {t["topic"]: t for t in json.loads(ok(phxq(bootstrap, "topic", "list", "--json", **how)))}
    assert listed[topic]["partitions"] == 2
    out = ok(phxq(bootstrap, "topic", "produce", topic, "--json", stdin="".join(f"{v}\n" for v in LINES), **how))
    assert json.loads(out)["records"] == len(LINES)
    got = [json.loads(ln) for ln in ok(phxq(bootstrap, "topic", "consume", topic, "--to-end", "--json",
                                            **how)).splitlines()]
    assert sorted(r["value"] for r in got) == sorted(LINES)


def test_sasl_ssl_with_scram(secure, tmp_path):  # noqa: F811
    b = secure.addr("SASL_SSL")
    # Without the settings the SASL_SSL listener serves nothing.
    r = phxq(b, "topic", "list")
    assert r.returncode == 2, r
    alice = props(tmp_path / "alice.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "alice", "sasl.password": "alice-secret", "ssl.ca.location": secure.ca_file})
    round_trip(b, "cli-sasl-ssl", config=alice)
    # Java's names: sasl.jaas.config and a PEM truststore; SCRAM-SHA-512; through the env.
    bob = props(tmp_path / "bob.properties", **{
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            'username="bob" password="bob-secret";',
        "ssl.truststore.type": "PEM", "ssl.truststore.location": secure.ca_file,
        "ssl.endpoint.identification.algorithm": "https"})
    round_trip(b, "cli-sasl-ssl-bob", env_config=bob)


def test_ssl_with_a_client_certificate(secure, tmp_path):  # noqa: F811
    b = secure.addr("MTLS")
    no_cert = props(tmp_path / "no-cert.properties", **{"security.protocol": "SSL", "ssl.ca.location": secure.ca_file})
    r = phxq(b, "topic", "list", config=no_cert)
    assert r.returncode == 2 and "127.0.0.1" in r.stderr, r.stderr
    print(f"\nno client certificate: {r.stderr.strip()}")
    cert, key = secure.client_cert("cli-app")
    mtls = props(tmp_path / "mtls.properties", **{
        "security.protocol": "SSL", "ssl.ca.location": secure.ca_file,
        "ssl.certificate.location": cert, "ssl.key.location": key})
    round_trip(b, "cli-mtls", config=mtls)


def test_a_wrong_password_fails_quickly_and_says_why(secure, tmp_path):  # noqa: F811
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        wrong = props(tmp_path / f"wrong-{mechanism}.properties", **{
            "security.protocol": "SASL_SSL", "sasl.mechanism": mechanism, "sasl.username": "alice",
            "sasl.password": "not-her-password", "ssl.ca.location": secure.ca_file})
        started = time.monotonic()
        r = phxq(secure.addr("SASL_SSL"), "topic", "create", "never", config=wrong)
        took = time.monotonic() - started
        assert r.returncode == 2, r
        assert f'SASL/{mechanism} login as "alice"' in r.stderr and "SASL_AUTHENTICATION_FAILED" in r.stderr, r.stderr
        assert took < 10, f"took {took:.1f} s"
        print(f"\n{mechanism}, wrong password ({took:.2f} s): {r.stderr.strip()}")
    # Nothing was created by the failed logins.
    plain = json.loads(ok(phxq(secure.broker.bootstrap, "topic", "list", "--json")))
    assert all(t["topic"] != "never" for t in plain)
    # A broken file is refused before connecting.
    bad = props(tmp_path / "bad.properties", **{"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI"})
    r = phxq(secure.addr("SASL_SSL"), "topic", "list", config=bad)
    assert r.returncode == 2 and "sasl.mechanism=GSSAPI" in r.stderr, r.stderr
