"""The topic config surface (issue 13, point 3) with real Admin clients: every standard
Kafka topic config is accepted at CreateTopics (those with no meaning in phxq's storage are
stored and described back), IncrementalAlterConfigs APPEND and SUBTRACT of the LIST config
cleanup.policy, and DescribeConfigs sources, synonyms and documentation.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceType,
)

# Configs phxq accepts and stores without giving them a meaning (see the README).
STORED = {
    "index.interval.bytes": "8192",
    "segment.index.bytes": "2097152",
    "segment.jitter.ms": "1000",
    "preallocate": "true",
    "flush.messages": "10",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
    "min.cleanable.dirty.ratio": "0.3",
    "leader.replication.throttled.replicas": "0:1",
}


def describe(admin: AdminClient, topic: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=10)


def incremental(admin: AdminClient, topic: str, name: str, value: str, op: AlterConfigOpType):
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=op)])
    admin.incremental_alter_configs([res])[res].result(timeout=10)


def test_create_topics_with_configs_phxq_only_stores(broker, topic):
    """confluent-kafka and kafka-python create topics with configs that have no meaning
    in phxq: created, and described back as the topic's own (DYNAMIC_TOPIC_CONFIG)."""
    from kafka.admin import ConfigResource as KResource, ConfigResourceType, KafkaAdminClient, NewTopic as KNewTopic
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, -1, config=STORED)])[topic].result(timeout=30)
    cfg = describe(a, topic)
    for k, v in STORED.items():
        assert cfg[k].value == v, k
        assert cfg[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, k
    # Not set: Kafka's default, from nowhere in phxq's configuration.
    assert cfg["message.downconversion.enable"].value == "true"
    assert cfg["message.downconversion.enable"].source == ConfigSource.DEFAULT_CONFIG.value
    # Not set, with a broker default phxq has (log.cleaner.delete.retention.ms).
    assert cfg["delete.retention.ms"].value == "86400000"
    assert cfg["delete.retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value

    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        other = f"{topic}-kp"
        ka.create_topics([KNewTopic(other, 1, 1, topic_configs={
            "file.delete.delay.ms": "1000", "flush.ms": "5000", "local.retention.ms": "-2",
            "message.timestamp.after.max.ms": "60000", "message.downconversion.enable": "false"})])
        got = ka.describe_configs([KResource(ConfigResourceType.TOPIC, other)], config_filter="all")
        got = got["topic"][other]
        assert got["file.delete.delay.ms"]["value"] == "1000"
        assert got["flush.ms"]["value"] == "5000"
        assert got["message.downconversion.enable"]["value"] == "false"
        assert got["message.timestamp.after.max.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    finally:
        ka.close()

    # Wrong types and unknown names stay INVALID_CONFIG.
    for bad in ({"preallocate": "maybe"}, {"index.interval.bytes": "-1"}, {"no.such.config": "1"}):
        with pytest.raises(KafkaException) as e:
            a.create_topics([NewTopic(f"{topic}-bad", 1, -1, config=bad)])[f"{topic}-bad"].result(timeout=30)
        assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, (bad, e.value)


def test_append_and_subtract_of_cleanup_policy(broker, topic):
    """APPEND and SUBTRACT start from cleanup.policy's value (its default, delete, when
    unset): SUBTRACT of compact is a no-op, APPEND of compact makes it delete,compact and
    SUBTRACT takes it off again, the same through kafka-python's incremental API."""
    from kafka.admin import AlterConfigOp, ConfigResource as KResource, ConfigResourceType, KafkaAdminClient
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic(topic, 1, -1)])[topic].result(timeout=30)

    incremental(a, topic, "cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)
    cfg = describe(a, topic)
    assert cfg["cleanup.policy"].value == "delete"
    incremental(a, topic, "cleanup.policy", "compact", AlterConfigOpType.APPEND)
    assert describe(a, topic)["cleanup.policy"].value == "delete,compact"
    incremental(a, topic, "cleanup.policy", "compact", AlterConfigOpType.SUBTRACT)
    assert describe(a, topic)["cleanup.policy"].value == "delete"
    # APPEND of a value already there changes nothing; APPEND to a non-list config is refused.
    incremental(a, topic, "cleanup.policy", "delete", AlterConfigOpType.APPEND)
    assert describe(a, topic)["cleanup.policy"].value == "delete"
    with pytest.raises(KafkaException) as e:
        incremental(a, topic, "retention.ms", "1000", AlterConfigOpType.APPEND)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    # The throttled replica lists are LIST configs too.
    incremental(a, topic, "follower.replication.throttled.replicas", "0:1", AlterConfigOpType.APPEND)
    incremental(a, topic, "follower.replication.throttled.replicas", "1:1", AlterConfigOpType.APPEND)
    assert describe(a, topic)["follower.replication.throttled.replicas"].value == "0:1,1:1"
    incremental(a, topic, "follower.replication.throttled.replicas", "0:1", AlterConfigOpType.SUBTRACT)
    assert describe(a, topic)["follower.replication.throttled.replicas"].value == "1:1"

    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        res = KResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": (AlterConfigOp.APPEND, "compact")})
        out = ka.alter_configs([res], raise_on_unknown=False, incremental=True)
        assert out["topic"][topic] == "OK", out
        assert describe(a, topic)["cleanup.policy"].value == "delete,compact"
        res = KResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": (AlterConfigOp.SUBTRACT, "compact")})
        out = ka.alter_configs([res], raise_on_unknown=False, incremental=True)
        assert out["topic"][topic] == "OK", out
    finally:
        ka.close()
    assert describe(a, topic)["cleanup.policy"].value == "delete"


def test_describe_configs_sources_synonyms_and_types(broker_factory, topic):
    """A config set on the topic, one whose default is a broker config phxq runs with
    (log.retention.bytes given on the command line), and one with only Kafka's default:
    their sources, and with include_synonyms the topic's value, the broker's, Kafka's; the
    config types."""
    from kafka.admin import ConfigResource as KResource, ConfigResourceType, KafkaAdminClient
    b = broker_factory("--log-retention-bytes", "123456789")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 1, -1, config={"segment.bytes": "1048576"})])[topic].result(timeout=30)
    cfg = describe(a, topic)  # librdkafka asks for synonyms

    seg = cfg["segment.bytes"]
    assert (seg.value, seg.source) == ("1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    # confluent-kafka keys synonyms by name: log.segment.bytes comes twice (phxq's, Kafka's).
    assert set(seg.synonyms) == {"segment.bytes", "log.segment.bytes"}, seg.synonyms
    rb = cfg["retention.bytes"]
    assert (rb.value, rb.source) == ("123456789", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert not rb.is_read_only and not rb.is_sensitive
    idx = cfg["index.interval.bytes"]
    assert (idx.value, idx.source) == ("4096", ConfigSource.DEFAULT_CONFIG.value)
    assert idx.is_default

    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        got = ka.describe_configs([KResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True,
                                  config_filter="all")["topic"][topic]
    finally:
        ka.close()
    syn = [(s["name"], s["value"], s["source"]) for s in got["retention.bytes"]["synonyms"]]
    assert syn == [("log.retention.bytes", "123456789", "STATIC_BROKER_CONFIG"),
                   ("log.retention.bytes", "-1", "DEFAULT_CONFIG")], syn
    syn = [(s["name"], s["value"], s["source"]) for s in got["segment.bytes"]["synonyms"]]
    assert syn[0] == ("segment.bytes", "1048576", "DYNAMIC_TOPIC_CONFIG"), syn
    assert syn[1][0] == "log.segment.bytes" and syn[1][2] == "STATIC_BROKER_CONFIG", syn
    assert syn[2] == ("log.segment.bytes", "1073741824", "DEFAULT_CONFIG"), syn
    assert got["min.cleanable.dirty.ratio"]["config_type"] == "DOUBLE"
    assert got["cleanup.policy"]["config_type"] == "LIST"
