"""ACLs with real clients: a broker with the ACL authorizer on, users logging in over
SASL/SCRAM, and ACLs managed with `phxq acl` and confluent-kafka's AdminClient, both
logged in as the super user `admin` over SASL (the CLI with `--command-config`). What a user checks: a principal
without WRITE cannot produce, without READ on the group cannot consume, DENY overrides
ALLOW, prefixed ACLs cover their names, Metadata hides what a principal may not
describe, a super user may do everything, and ACLs survive a restart."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)
from conftest import PHXQ_BIN, free_port

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


class Acl:
    def __init__(self, broker, sasl_port: int, metrics_port: int, admin_props):
        self.broker = broker
        self.sasl = f"127.0.0.1:{sasl_port}"
        self.metrics_port = metrics_port
        self.admin_props = str(admin_props)

    def conf(self, user: str, **extra) -> dict:
        return {"bootstrap.servers": self.sasl, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user,
                "sasl.password": USERS[user], **extra}

    def phxq(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        """`phxq ARGS` logged in as the super user over SASL."""
        r = subprocess.run([PHXQ_BIN, "--command-config", self.admin_props, *args,
                            "--bootstrap", self.sasl],
                           capture_output=True, text=True, timeout=60)
        if ok:
            assert r.returncode == 0, f"phxq {' '.join(args)}: {r.stderr}"
        return r

    def acl(self, *args: str) -> str:
        return self.phxq("acl", *args).stdout

    def acls(self) -> list[dict]:
        return json.loads(self.acl("list", "--json"))["acls"]

    def create_topics(self, *names: str, partitions: int = 1):
        admin = AdminClient(self.conf("admin"))
        for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
            f.result(30)


@pytest.fixture
def acl(broker_factory, tmp_path):
    """A broker whose users were made before the authorizer was turned on (how an operator
    bootstraps: no one could log in to create the first one otherwise), then restarted
    with `authorizer = "acl"` and `admin` as its super user."""
    port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "acl.toml"
    cfg.write_text(f'metrics_listen = "127.0.0.1:{metrics_port}"\n')
    broker = broker_factory("--config", str(cfg), "--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}")
    for user, password in USERS.items():
        r = subprocess.run([PHXQ_BIN, "user", "create", user, "--password", password,
                            "--bootstrap", broker.bootstrap], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    cfg.write_text(f"""
metrics_listen = "127.0.0.1:{metrics_port}"
[security]
authorizer = "acl"
super_users = ["User:admin"]
""")
    broker.restart()
    props = tmp_path / "admin.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
                     f"sasl.username=admin\nsasl.password={USERS['admin']}\n")
    # Anonymous clients (PLAINTEXT) are no super users: they may not manage users now.
    r = subprocess.run([PHXQ_BIN, "user", "create", "eve", "--password", "eve-secret",
                        "--bootstrap", broker.bootstrap], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr, r.stderr
    return Acl(broker, port, metrics_port, props)


def produce(conf: dict, topic: str, values: list[bytes]) -> list:
    """Produces `values`; returns each delivery's error (None when delivered)."""
    results = []
    p = Producer({"message.timeout.ms": 10000, "retries": 0, **conf})
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda err, m: results.append(err))
    p.flush(20)
    return results


def consume(conf: dict, topic: str, group: str, n: int, timeout: float = 20.0):
    """Subscribes as `group`; returns (values read, first error seen)."""
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                return got, m.error()
            got.append(m.value())
    finally:
        c.close()
    return got, None


def test_write_read_and_group_acls_govern_produce_and_consume(acl):
    acl.create_topics("orders")
    values = [f"o{i}".encode() for i in range(10)]
    # alice has no ACL: her records are refused, none appended.
    errors = produce(acl.conf("alice"), "orders", values[:1])
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
    acl.acl("add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "orders")
    assert produce(acl.conf("alice"), "orders", values) == [None] * 10
    # bob may read the topic but not join the group.
    acl.acl("add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", "orders")
    got, err = consume(acl.conf("bob"), "orders", "billing", 10)
    assert err is not None and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, (got, err)
    acl.acl("add", "--allow-principal", "User:bob", "--operation", "Read", "--group", "billing")
    got, err = consume(acl.conf("bob"), "orders", "billing", 10)
    assert err is None and got == values
    # DENY wins over the ALLOW: bob's fetches are refused.
    acl.acl("add", "--deny-principal", "User:bob", "--operation", "Read", "--topic", "orders")
    acl.acl("add", "--allow-principal", "User:bob", "--operation", "Read", "--group", "billing-2")
    got, err = consume(acl.conf("bob"), "orders", "billing-2", 10)
    assert got == [] and err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (got, err)
    # The log is intact: the super user reads exactly the ten records.
    got, err = consume(acl.conf("admin"), "orders", "audit", 10)
    assert err is None and got == values


def test_prefixed_acls_and_metadata_hides_undescribable_topics(acl):
    acl.create_topics("app.one", "app.two", "secret")
    acl.acl("add", "--allow-principal", "User:alice", "--operation", "Write",
            "--topic", "app.", "--resource-pattern-type", "prefixed")
    for t in ("app.one", "app.two"):
        assert produce(acl.conf("alice"), t, [b"x"]) == [None], t
    assert [e.code() for e in produce(acl.conf("alice"), "secret", [b"x"])] == \
        [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # WRITE implies DESCRIBE: alice sees the app. topics and not "secret"; bob sees none.
    seen = set(AdminClient(acl.conf("alice")).list_topics(timeout=10).topics)
    assert {"app.one", "app.two"} <= seen and "secret" not in seen, seen
    assert set(AdminClient(acl.conf("bob")).list_topics(timeout=10).topics) == set()
    # Asked for by name, an undescribable topic is an authorization error, not a topic.
    md = AdminClient(acl.conf("bob")).list_topics("secret", timeout=10)
    assert md.topics["secret"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Neither may create topics.
    alice = AdminClient(acl.conf("alice"))
    futures = alice.create_topics([NewTopic("app.new", 1, 1)])
    with pytest.raises(KafkaException) as e:
        futures["app.new"].result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_super_user_manages_acls_with_the_admin_client(acl):
    admin = AdminClient(acl.conf("admin"))
    alice = AdminClient(acl.conf("alice"))
    binding = AclBinding(ResourceType.GROUP, "team-", ResourcePatternType.PREFIXED, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    # alice is no super user: creating ACLs needs ALTER on the cluster.
    with pytest.raises(KafkaException) as e:
        alice.create_acls([binding])[binding].result(10)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    admin.create_acls([binding])[binding].result(10)
    assert acl.acls() == [{"resource_type": "GROUP", "pattern_type": "PREFIXED", "resource_name": "team-",
                           "principal": "User:alice", "host": "*", "operation": "READ",
                           "permission": "ALLOW"}]
    match = AclBindingFilter(ResourceType.GROUP, "team-payments", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(match).result(10) == [binding]
    # The super user may do everything without any ACL: create a topic, produce to it.
    admin.create_topics([NewTopic("admin-only", 1, 1)])["admin-only"].result(30)
    assert produce(acl.conf("admin"), "admin-only", [b"a"]) == [None]
    deleted = admin.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice",
                                                  None, AclOperation.ANY, AclPermissionType.ANY)])
    assert list(deleted.values())[0].result(10) == [binding]
    assert acl.acls() == []


def test_acls_survive_a_restart_and_phxq_acl_remove(acl):
    acl.create_topics("kept")
    acl.acl("add", "--allow-principal", "User:alice", "--allow-principal", "User:bob",
            "--operation", "Write", "--operation", "Describe", "--topic", "kept")
    assert len(acl.acls()) == 4
    acl.broker.restart()
    assert len(acl.acls()) == 4
    assert produce(acl.conf("alice"), "kept", [b"k"]) == [None]
    out = acl.acl("remove", "--allow-principal", "User:bob", "--topic", "kept")
    assert out.startswith("2 ACL(s) removed"), out
    assert {a["principal"] for a in acl.acls()} == {"User:alice"}
    assert [e.code() for e in produce(acl.conf("bob"), "kept", [b"k"])] == \
        [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_transactional_and_idempotent_producers_need_their_acls(acl):
    acl.create_topics("payments")
    acl.acl("add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "payments")
    # Idempotence needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).
    assert produce(acl.conf("alice", **{"enable.idempotence": True, "retries": 5}), "payments", [b"i"]) == [None]
    p = Producer(acl.conf("alice", **{"transactional.id": "pay-1"}))
    with pytest.raises(KafkaException) as e:
        p.init_transactions(10)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    acl.acl("add", "--allow-principal", "User:alice", "--operation", "Write", "--transactional-id", "pay-")
    # A literal ACL for "pay-" does not cover "pay-1"; a prefixed one does.
    p = Producer(acl.conf("alice", **{"transactional.id": "pay-1"}))
    with pytest.raises(KafkaException):
        p.init_transactions(10)
    acl.acl("add", "--allow-principal", "User:alice", "--operation", "Write", "--transactional-id", "pay-",
            "--resource-pattern-type", "prefixed")
    p = Producer(acl.conf("alice", **{"transactional.id": "pay-1"}))
    p.init_transactions(10)
    p.begin_transaction()
    p.produce("payments", value=b"t")
    p.commit_transaction(10)


def test_kafka_python_sees_topic_authorization_failed(acl):
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    acl.create_topics("kp-denied")
    p = KafkaProducer(bootstrap_servers=acl.sasl, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="bob",
                      sasl_plain_password=USERS["bob"], max_block_ms=5000)
    with pytest.raises(TopicAuthorizationFailedError):
        p.send("kp-denied", b"x").get(10)
    p.close()


def test_acl_apis_without_an_authorizer_say_so(broker):
    r = subprocess.run([PHXQ_BIN, "acl", "list", "--bootstrap", broker.bootstrap],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SECURITY_DISABLED" in r.stderr, r.stderr


def test_console_message_browser_is_off_under_acls(acl):
    import urllib.error
    import urllib.request
    acl.create_topics("browsed")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{acl.metrics_port}/console/api/messages?topic=browsed&partition=0",
                               timeout=5)
    assert e.value.code == 403 and b"ACL authorizer" in e.value.read()
