"""Dynamic broker configs (Kafka's KIP-226) with real admin clients: IncrementalAlterConfigs
on the BROKER resource, cluster-wide ("") and per broker ("<id>"), kept in the metadata
Raft group and in effect without a restart. Neither Python client can name the
cluster-wide resource "" (both insist on a broker id), so it is driven on the raw wire
(what Kafka's Java Admin and kafka-configs --entity-default send) and with `phxq config`.

1. confluent-kafka: a cluster-wide log.retention.ms makes a topic without its own
   retention drop its old records; DescribeConfigs of the topic shows the source
   DYNAMIC_DEFAULT_BROKER_CONFIG and Kafka's synonym chain, a per-broker value wins
   (DYNAMIC_BROKER_CONFIG), DELETE goes back to the static value; read-only keys,
   unknown keys and invalid values are INVALID_REQUEST (Kafka's answer for broker
   configs); validate_only changes nothing.
2. kafka-python: message.max.bytes set cluster-wide limits produce at once and after a
   restart (stored in Raft); the `phxq config` CLI sets, describes and deletes.
3. Three nodes: a change through one broker is in effect and described on the others
   within seconds; a per-broker value only on its broker.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import PHXQ_BIN
from phxq_clients import Rec, confluent_produce, now_ms
from phxq_wire import CONFIG_DELETE, CONFIG_SET, Conn, wait_for

INVALID_REQUEST = 42

CHECK_MS = 300
ARGS = ("--log-retention-check-interval-ms", str(CHECK_MS))
HOUR_MS = 3_600_000
WEEK_MS = str(7 * 24 * HOUR_MS)
DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 2, 3, 4, 5


def admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def wire_alter(bootstrap: str, ops: list[tuple[str, str | None]], validate_only: bool = False, name: str = ""):
    """IncrementalAlterConfigs of BROKER `name` (the cluster-wide defaults: ""): (error, message)."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port))
    try:
        return c.incremental_alter_configs_v0(
            4, name, [(k, CONFIG_SET if v is not None else CONFIG_DELETE, v) for k, v in ops], validate_only)
    finally:
        c.close()


def wire_defaults(bootstrap: str) -> dict:
    """DescribeConfigs of BROKER "": {name: (value, read_only, source, is_sensitive)}."""
    host, port = bootstrap.rsplit(":", 1)
    c = Conn(host, int(port))
    try:
        err, msg, cfg = c.describe_configs_v1(4, "")
    finally:
        c.close()
    assert err == 0, msg
    return cfg


def set_defaults(bootstrap: str, ops: list[tuple[str, str | None]], validate_only: bool = False):
    err, msg = wire_alter(bootstrap, ops, validate_only)
    assert err == 0, msg


def alter(a, name: str, ops: list[tuple[str, str | None]], validate_only: bool = False):
    """IncrementalAlterConfigs on BROKER `name`: (key, value) SETs, (key, None) DELETEs."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.BROKER, name, incremental_configs=[
        ConfigEntry(k, v or "", incremental_operation=AlterConfigOpType.SET if v is not None
                    else AlterConfigOpType.DELETE) for k, v in ops])
    a.incremental_alter_configs([res], validate_only=validate_only)[res].result(timeout=10)


def refused(a, name: str, key: str, value: str):
    from confluent_kafka import KafkaException
    with pytest.raises(KafkaException) as e:
        alter(a, name, [(key, value)])
    return e.value.args[0]


def describe(a, kind, name: str) -> dict:
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(kind, name)
    return a.describe_configs([res])[res].result(timeout=10)


def topic_cfg(a, topic: str) -> dict:
    from confluent_kafka.admin import ResourceType
    return describe(a, ResourceType.TOPIC, topic)


def broker_cfg(a, name: str) -> dict:
    from confluent_kafka.admin import ResourceType
    return describe(a, ResourceType.BROKER, name)


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def kp_synonyms(bootstrap: str, topic: str, key: str) -> list[tuple]:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    ka = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        got = ka.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True,
                                  config_filter="all")["topic"][topic]
    finally:
        ka.close()
    return [(s["name"], s["value"], s["source"]) for s in got[key]["synonyms"]]


def test_cluster_default_and_per_broker_retention_with_sources_and_refusals(broker_factory, topic):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic
    b = broker_factory(*ARGS)
    a = admin(b.bootstrap)
    a.create_topics([NewTopic(topic, 1, -1, config={"segment.bytes": "16384"})])[topic].result(timeout=30)
    old = 40
    confluent_produce(b.bootstrap, topic, [Rec(0, -1, None, b"x" * 1000, (), now_ms() - HOUR_MS + i)
                                           for i in range(old)], **{"linger.ms": 0, "batch.num.messages": 1})
    time.sleep(3 * CHECK_MS / 1000)
    assert watermarks(b.bootstrap, topic) == (0, old), "nothing is past the default week"
    cfg = topic_cfg(a, topic)["retention.ms"]
    assert (cfg.value, cfg.source) == (WEEK_MS, STATIC)

    # validate_only changes nothing.
    set_defaults(b.bootstrap, [("log.retention.ms", "60000")], validate_only=True)
    alter(a, "1", [("log.retention.ms", "60000")], validate_only=True)
    assert topic_cfg(a, topic)["retention.ms"].value == WEEK_MS
    assert wire_defaults(b.bootstrap) == {}

    # Cluster-wide: the topic without its own retention follows it.
    set_defaults(b.bootstrap, [("log.retention.ms", "60000")])
    wait_for(lambda: watermarks(b.bootstrap, topic) == (old, old), 15, interval=0.2,
             what="the hour-old records to go under the cluster-wide log.retention.ms")
    cfg = topic_cfg(a, topic)["retention.ms"]
    assert (cfg.value, cfg.source) == ("60000", DYNAMIC_DEFAULT), (cfg.value, cfg.source)
    assert kp_synonyms(b.bootstrap, topic, "retention.ms") == [
        ("log.retention.ms", "60000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        ("log.retention.ms", WEEK_MS, "STATIC_BROKER_CONFIG"),
        ("log.retention.ms", WEEK_MS, "DEFAULT_CONFIG")]
    assert wire_defaults(b.bootstrap) == {"log.retention.ms": ("60000", False, DYNAMIC_DEFAULT, False)}

    # Per broker wins over the cluster default; hours are one of its units.
    alter(a, "1", [("log.retention.hours", "2")])
    cfg = topic_cfg(a, topic)["retention.ms"]
    assert (cfg.value, cfg.source) == (str(2 * HOUR_MS), DYNAMIC_BROKER), (cfg.value, cfg.source)
    assert kp_synonyms(b.bootstrap, topic, "retention.ms")[:2] == [
        ("log.retention.hours", "2", "DYNAMIC_BROKER_CONFIG"),
        ("log.retention.ms", "60000", "DYNAMIC_DEFAULT_BROKER_CONFIG")]
    mine = broker_cfg(a, "1")
    assert (mine["log.retention.ms"].value, mine["log.retention.ms"].source) == (str(2 * HOUR_MS), DYNAMIC_BROKER)
    assert (mine["log.retention.hours"].value, mine["log.retention.hours"].source) == ("2", DYNAMIC_BROKER)
    assert not mine["log.retention.ms"].is_read_only and mine["log.dirs"].is_read_only
    assert mine["log.retention.check.interval.ms"].is_read_only
    assert mine["log.retention.check.interval.ms"].value == str(CHECK_MS)

    # Refusals: Kafka answers INVALID_REQUEST for every broker config it will not take.
    e = refused(a, "1", "log.dirs", "/elsewhere")
    assert e.code() == KafkaError.INVALID_REQUEST and "Cannot update these configs dynamically" in e.str(), e
    e = refused(a, "1", "log.retention.ms", "-7")
    assert e.code() == KafkaError.INVALID_REQUEST and "log.retention.ms" in e.str(), e
    err, msg = wire_alter(b.bootstrap, [("log.retention.check.interval.ms", "1000")])
    assert err == INVALID_REQUEST and "Cannot update these configs dynamically" in msg, (err, msg)
    err, msg = wire_alter(b.bootstrap, [("log.retension.ms", "1000")])
    assert err == INVALID_REQUEST and "Unknown broker config" in msg, (err, msg)
    err, msg = wire_alter(b.bootstrap, [("log.retention.ms", "1000")], name="7")
    assert err == INVALID_REQUEST and "Unexpected broker id" in msg, (err, msg)

    # DELETE goes back down the chain: the cluster default, then the static value.
    alter(a, "1", [("log.retention.hours", None)])
    assert topic_cfg(a, topic)["retention.ms"].source == DYNAMIC_DEFAULT
    set_defaults(b.bootstrap, [("log.retention.ms", None)])
    cfg = topic_cfg(a, topic)["retention.ms"]
    assert (cfg.value, cfg.source) == (WEEK_MS, STATIC)
    assert wire_defaults(b.bootstrap) == {}


def produce_one(bootstrap: str, topic: str, size: int):
    """The delivery error of one record of `size` bytes (None: delivered)."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "message.max.bytes": 10_000_000})
    out = {}
    p.produce(topic, value=b"m" * size, partition=0, on_delivery=lambda err, msg: out.setdefault("err", err))
    assert p.flush(30) == 0
    return out["err"]


def test_message_max_bytes_kafka_python_restart_and_cli(broker_factory, topic):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import NewTopic
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient
    b = broker_factory(*ARGS)
    a = admin(b.bootstrap)  # kept until the result is in: a destroyed client fails it
    a.create_topics([NewTopic(topic, 1, -1)])[topic].result(timeout=30)
    assert produce_one(b.bootstrap, topic, 20_000) is None
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        res = ConfigResource(ConfigResourceType.BROKER, "1", configs={"message.max.bytes": (AlterConfigOp.SET, "10000")})
        out = ka.alter_configs([res], incremental=True)
        assert out["broker"]["1"] == "OK", out
        bad = ConfigResource(ConfigResourceType.BROKER, "1", configs={"broker.id": (AlterConfigOp.SET, "5")})
        out = ka.alter_configs([bad], raise_on_unknown=False, incremental=True)
        assert out["broker"]["1"] != "OK", out
    finally:
        ka.close()
    err = produce_one(b.bootstrap, topic, 20_000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    assert topic_cfg(a, topic)["max.message.bytes"].source == DYNAMIC_BROKER

    # Kept in the metadata Raft group: in effect again after a restart.
    b.restart()
    m = broker_cfg(admin(b.bootstrap), "1")["message.max.bytes"]
    assert (m.value, m.source) == ("10000", DYNAMIC_BROKER)
    err = produce_one(b.bootstrap, topic, 20_000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err

    def cli(*args: str) -> str:
        r = subprocess.run([PHXQ_BIN, "config", *args, "--bootstrap-server", b.bootstrap],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout
    cli("delete", "--broker", "1", "message.max.bytes")
    cli("set", "--broker-defaults", "log.retention.bytes=123456")
    cli("set", "--broker", "1", "log.segment.bytes=65536")
    out = cli("describe", "--broker")
    assert "log.retention.bytes=123456 source=DYNAMIC_DEFAULT_BROKER_CONFIG" in out, out
    assert "log.segment.bytes=65536 source=DYNAMIC_BROKER_CONFIG" in out, out
    assert "message.max.bytes=1048588 source=STATIC_BROKER_CONFIG" in out, out
    assert "log.dirs=" in out and "read-only" in out, out
    out = cli("describe", "--broker-defaults")
    assert "log.retention.bytes=123456 source=DYNAMIC_DEFAULT_BROKER_CONFIG" in out, out
    assert "segment.bytes" not in out, out
    out = cli("describe", "--topic", topic)
    assert "retention.bytes=123456 source=DYNAMIC_DEFAULT_BROKER_CONFIG" in out, out
    assert "segment.bytes=65536 source=DYNAMIC_BROKER_CONFIG" in out, out
    assert produce_one(b.bootstrap, topic, 20_000) is None
    r = subprocess.run([PHXQ_BIN, "config", "set", "--broker-defaults", "log.dirs=/x",
                        "--bootstrap-server", b.bootstrap], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "Cannot update these configs dynamically" in r.stderr, r.stderr


def test_cluster_a_change_through_one_broker_is_in_effect_on_the_others(cluster):
    from confluent_kafka.admin import ResourceType
    one, two, three = (cluster.nodes[n].bootstrap for n in (1, 2, 3))
    set_defaults(one, [("log.retention.bytes", "777777")])
    alter(admin(one), "3", [("message.max.bytes", "50000")])

    def seen(bootstrap: str, node: int, key: str):
        try:
            c = describe(admin(bootstrap), ResourceType.BROKER, str(node))[key]
        except Exception:  # noqa: BLE001 - a node still loading: ask again
            return None
        return (c.value, c.source)
    for node, bootstrap in ((2, two), (3, three)):
        wait_for(lambda: seen(bootstrap, node, "log.retention.bytes") == ("777777", DYNAMIC_DEFAULT), 10,
                 interval=0.2, what=f"the cluster default on broker {node}")
        assert wire_defaults(bootstrap) == {"log.retention.bytes": ("777777", False, DYNAMIC_DEFAULT, False)}
    wait_for(lambda: seen(three, 3, "message.max.bytes") == ("50000", DYNAMIC_BROKER), 10, interval=0.2,
             what="broker 3's own message.max.bytes")
    assert seen(two, 2, "message.max.bytes") == ("1048588", STATIC)
