"""Admin APIs through real admin clients: CreateTopics, DeleteTopics, CreatePartitions,
DescribeConfigs, ListOffsets (earliest / latest / by timestamp), DeleteRecords, Metadata."""

import json

import pytest

from phxq_clients import (
    Rec, aiokafka_consume, confluent_consume, confluent_produce, kafka_python_consume,
    kafkajs_admin, kcat, now_ms,
)
from phxq_wire import (
    OFFSET_OUT_OF_RANGE, TOPIC_ALREADY_EXISTS, Conn, parse_batches, wait_for,
)


def admin(broker):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def kp_admin(broker):
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap)


def partitions_of(broker, topic):
    """{partition: (leader, replicas, isrs)} from confluent-kafka's Metadata."""
    md = admin(broker).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}


def broker_id(broker):
    md = admin(broker).list_topics(timeout=10)
    (bid,) = md.brokers.keys()
    return bid


def produce_values(broker, topic, n, partition=0, ts0=None, step=1000):
    ts0 = ts0 or now_ms() - 600_000
    recs = [Rec(partition, -1, None, f"v{i}".encode(), (), ts0 + i * step) for i in range(n)]
    return confluent_produce(broker.bootstrap, topic, recs)


# --------------------------------------------------------------------------- CreateTopics

def test_create_topics_confluent(broker, topic):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic
    a = admin(broker)
    a.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=10)
    bid = broker_id(broker)
    assert partitions_of(broker, topic) == {p: (bid, [bid], [bid]) for p in range(3)}

    with pytest.raises(KafkaException) as ei:
        a.create_topics([NewTopic(topic, 5, 1)])[topic].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert len(partitions_of(broker, topic)) == 3, "duplicate CreateTopics changed the topic"

    # all three partitions take records
    recs = [Rec(p, -1, b"k", f"p{p}".encode(), (), now_ms()) for p in range(3)]
    sent = confluent_produce(broker.bootstrap, topic, recs)
    assert [(r.partition, r.offset) for r in sent] == [(0, 0), (1, 0), (2, 0)]


def test_create_topics_kafka_python(broker, topic):
    from kafka.errors import TopicAlreadyExistsError
    a = kp_admin(broker)
    try:
        a.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
        assert set(partitions_of(broker, topic)) == {0, 1, 2, 3}
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
        res = a.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}}, raise_errors=False)
        assert [t["error_code"] for t in res["topics"]] == [TOPIC_ALREADY_EXISTS]
    finally:
        a.close()


def test_create_topics_kafkajs(broker, topic):
    r = kafkajs_admin(broker.bootstrap, "createTopics", topics=[{"topic": topic, "numPartitions": 2}])
    assert r == {"created": True}
    # kafkajs reports an existing topic as created: false (it maps TOPIC_ALREADY_EXISTS)
    r = kafkajs_admin(broker.bootstrap, "createTopics", topics=[{"topic": topic, "numPartitions": 2}])
    assert r == {"created": False}
    md = kafkajs_admin(broker.bootstrap, "fetchTopicMetadata", topics=[topic])
    (t,) = md["topics"]
    assert t["name"] == topic
    assert sorted(p["partitionId"] for p in t["partitions"]) == [0, 1]


def test_create_topics_raw_duplicate(broker, topic):
    with Conn.to(broker.bootstrap) as c:
        assert c.create_topics_v2([(topic, 2)])[topic][0] == 0
        err, _msg = c.create_topics_v2([(topic, 2)])[topic]
        assert err == TOPIC_ALREADY_EXISTS


# --------------------------------------------------------------------------- DeleteTopics

def test_delete_topics_confluent(broker, topic):
    from confluent_kafka.admin import NewTopic
    a = admin(broker)
    a.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=10)
    produce_values(broker, topic, 5)
    a.delete_topics([topic])[topic].result(timeout=10)
    wait_for(lambda: topic not in a.list_topics(timeout=10).topics, 10, what="topic to disappear from Metadata")
    # a new topic of the same name starts empty, at offset 0
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    sent = produce_values(broker, topic, 3)
    assert [r.offset for r in sent] == [0, 1, 2]
    assert [r.value for r in confluent_consume(broker.bootstrap, topic)] == [b"v0", b"v1", b"v2"]


def test_delete_topics_kafka_python_and_kafkajs(broker, topic):
    a = kp_admin(broker)
    try:
        for name in (topic + "-kp", topic + "-js"):
            a.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
        a.delete_topics([topic + "-kp"])
        assert kafkajs_admin(broker.bootstrap, "deleteTopics", topics=[topic + "-js"]) == {"ok": True}
        wait_for(lambda: not {topic + "-kp", topic + "-js"} & set(a.list_topics()), 10,
                 what="deleted topics to disappear")
    finally:
        a.close()


# --------------------------------------------------------------------------- CreatePartitions

def test_create_partitions_confluent(broker, topic):
    from confluent_kafka.admin import NewPartitions, NewTopic
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    before = produce_values(broker, topic, 3)
    a.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=10)
    wait_for(lambda: len(partitions_of(broker, topic)) == 4, 10, what="4 partitions in Metadata")
    sent = confluent_produce(broker.bootstrap, topic, [Rec(3, -1, None, b"new", (), now_ms())])
    assert (sent[0].partition, sent[0].offset) == (3, 0)
    assert [r.value for r in confluent_consume(broker.bootstrap, topic, partitions=[3])] == [b"new"]
    # existing partition untouched
    assert [r.value for r in confluent_consume(broker.bootstrap, topic)] == [r.value for r in before]


def test_create_partitions_kafka_python_and_kafkajs(broker, topic):
    from kafka.admin import NewPartitions
    a = kp_admin(broker)
    try:
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        a.create_partitions({topic: NewPartitions(total_count=2)})
        wait_for(lambda: len(partitions_of(broker, topic)) == 2, 10, what="2 partitions")
        assert kafkajs_admin(broker.bootstrap, "createPartitions", topic=topic, count=5) == {"ok": True}
        wait_for(lambda: len(partitions_of(broker, topic)) == 5, 10, what="5 partitions")
    finally:
        a.close()


# --------------------------------------------------------------------------- DescribeConfigs

def test_describe_configs_confluent(broker_factory, topic):
    """Topic configs: an explicit max.message.bytes, the broker default for a topic
    without one, and both enforced; broker configs: message.max.bytes."""
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType
    b = broker_factory("--message-max-bytes", "200000")
    a = admin(b)
    small, default = topic + "-small", topic + "-default"
    a.create_topics([NewTopic(small, 1, 1, config={"max.message.bytes": "50000"})])[small].result(timeout=10)
    a.create_topics([NewTopic(default, 1, 1)])[default].result(timeout=10)

    def topic_configs(name):
        res = ConfigResource(ResourceType.TOPIC, name)
        return {k: v.value for k, v in a.describe_configs([res])[res].result(timeout=10).items()}

    values = topic_configs(small)
    assert values.get("max.message.bytes") == "50000", values
    assert values.get("cleanup.policy") == "delete", values
    assert topic_configs(default).get("max.message.bytes") == "200000"

    bres = ConfigResource(ResourceType.BROKER, str(broker_id(b)))
    bentries = a.describe_configs([bres])[bres].result(timeout=10)
    assert bentries["message.max.bytes"].value == "200000"

    # the described limits are the enforced ones
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    reports = {}
    for name in (small, default):
        p.produce(name, value=b"m" * 60000, partition=0,
                  on_delivery=lambda err, msg, name=name: reports.__setitem__(name, err))
    assert p.flush(30) == 0
    assert reports[small] is not None and reports[small].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports
    assert reports[default] is None, reports


def test_describe_configs_kafka_python(broker_factory, topic):
    from kafka.admin import ConfigResource, ConfigResourceType
    b = broker_factory("--message-max-bytes", "300000")
    a = kp_admin(b)
    try:
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                 "configs": {"max.message.bytes": "70000"}}})
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        text = json.dumps(res, default=str)
        cfg = res["topic"][topic]
        assert cfg["max.message.bytes"]["value"] == "70000", text
        assert cfg["cleanup.policy"]["value"] == "delete", text
    finally:
        a.close()


# --------------------------------------------------------------------------- ListOffsets

def test_list_offsets_by_timestamp_all_clients(broker, topic):
    """Records at ts0, ts0+1000, ... ts0+9000. The offset for a timestamp is the
    first record with timestamp >= it; past the last record there is none."""
    from confluent_kafka import TopicPartition
    ts0 = now_ms() - 600_000
    produce_values(broker, topic, 10, ts0=ts0)
    cases = {ts0 - 5000: 0, ts0: 0, ts0 + 1: 1, ts0 + 1000: 1, ts0 + 1500: 2, ts0 + 8999: 9, ts0 + 9000: 9}

    # confluent-kafka
    from phxq_clients import confluent_consumer
    c = confluent_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)
        for ts, want in cases.items():
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None and tp.offset == want, f"confluent ts {ts - ts0:+}: {tp}"
        (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts0 + 9001)], timeout=10)
        assert tp.offset == -1, f"past the last record: {tp}"  # OFFSET_END
    finally:
        c.close()

    # kafka-python
    from kafka import KafkaConsumer, TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = KTP(topic, 0)
        assert kc.beginning_offsets([tp]) == {tp: 0}
        assert kc.end_offsets([tp]) == {tp: 10}
        for ts, want in cases.items():
            r = kc.offsets_for_times({tp: ts})[tp]
            assert (r.offset, r.timestamp) == (want, ts0 + want * 1000), f"kafka-python ts {ts - ts0:+}: {r}"
        assert kc.offsets_for_times({tp: ts0 + 9001})[tp] is None
    finally:
        kc.close()

    # aiokafka
    import asyncio
    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP

    async def aio():
        ac = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await ac.start()
        try:
            tp = ATP(topic, 0)
            assert await ac.beginning_offsets([tp]) == {tp: 0}
            assert await ac.end_offsets([tp]) == {tp: 10}
            r = (await ac.offsets_for_times({tp: ts0 + 1500}))[tp]
            assert (r.offset, r.timestamp) == (2, ts0 + 2000), r
        finally:
            await ac.stop()

    asyncio.run(aio())

    # kafkajs
    assert kafkajs_admin(broker.bootstrap, "fetchTopicOffsetsByTimestamp", topic=topic, timestamp=ts0 + 1500) == \
        [{"partition": 0, "offset": "2"}]
    offs = kafkajs_admin(broker.bootstrap, "fetchTopicOffsets", topic=topic)
    assert [(o["partition"], o["low"], o["high"]) for o in offs] == [(0, "0", "10")]

    # kcat -Q (librdkafka 2.0.2, ListOffsets v1)
    out = kcat("-b", broker.bootstrap, "-Q", "-t", f"{topic}:0:{ts0 + 1500}").stdout.decode()
    assert f"{topic} [0] offset 2" in out, out

    # kcat -C -o s@ts starts at that offset
    r = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", f"s@{ts0 + 4500}", "-e", "-q",
             "-f", "%o:%s\\n")
    assert r.stdout.decode().split() == [f"{i}:v{i}" for i in range(5, 10)]


def test_list_offsets_raw_earliest_latest(broker, topic):
    produce_values(broker, topic, 7)
    with Conn.to(broker.bootstrap) as c:
        assert c.list_offsets_v1(topic, 0, -2)[::2] == (0, 0)
        assert c.list_offsets_v1(topic, 0, -1)[::2] == (0, 7)


# --------------------------------------------------------------------------- DeleteRecords

def test_delete_records_confluent(broker, topic):
    from confluent_kafka import KafkaError, TopicPartition
    sent = produce_values(broker, topic, 20)
    a = admin(broker)
    fut = a.delete_records([TopicPartition(topic, 0, 5)])
    (deleted,) = [f.result(timeout=10) for f in fut.values()]
    assert deleted.low_watermark == 5

    from phxq_clients import confluent_consumer
    c = confluent_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (5, 20)
    finally:
        c.close()

    # fetching below the log start: the broker says OFFSET_OUT_OF_RANGE ...
    with Conn.to(broker.bootstrap) as raw:
        assert raw.fetch_v4(topic, 0, 2)["error"] == OFFSET_OUT_OF_RANGE
        assert raw.list_offsets_v1(topic, 0, -2)[::2] == (0, 5)
        r = raw.fetch_v4(topic, 0, 5)
        assert r["error"] == 0
        assert [rec.offset for b in parse_batches(r["records"]) for rec in b.records if rec.offset >= 5][:1] == [5]

    # ... and a client resets: auto.offset.reset=earliest starts at the new log start,
    got = confluent_consume(broker.bootstrap, topic, start=2, **{"auto.offset.reset": "earliest"})
    assert [(r.offset, r.value) for r in got] == [(r.offset, r.value) for r in sent[5:]]
    # auto.offset.reset=error surfaces the out-of-range error
    c = confluent_consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 2)])
        # (a Message's truth value is its length, so wrap it)
        (m,) = wait_for(lambda: [m for m in [c.poll(0.2)] if m is not None], 15, interval=0,
                        what="an error from the consumer")
        assert m.error() is not None, f"got record at offset {m.offset()} below the log start"
        assert m.error().code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), m.error()
    finally:
        c.close()


def test_delete_records_kafka_python(broker, topic):
    from kafka import TopicPartition
    from kafka.errors import OffsetOutOfRangeError
    sent = produce_values(broker, topic, 10)
    a = kp_admin(broker)
    try:
        tp = TopicPartition(topic, 0)
        res = a.delete_records({tp: 4})
        assert res[tp]["low_watermark"] == 4, res
    finally:
        a.close()
    # kafka-python with auto_offset_reset='earliest' is reset to the new log start
    got = kafka_python_consume(broker.bootstrap, topic, start=1, auto_offset_reset="earliest")
    assert [(r.offset, r.value) for r in got] == [(r.offset, r.value) for r in sent[4:]]
    # aiokafka too
    got = aiokafka_consume(broker.bootstrap, topic, start=0, auto_offset_reset="earliest")
    assert [r.offset for r in got] == list(range(4, 10))
    # kafka-python with no reset policy raises OffsetOutOfRange
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="none")
    try:
        c.assign([tp])
        c.seek(tp, 1)
        with pytest.raises(OffsetOutOfRangeError):
            wait_for(lambda: c.poll(timeout_ms=200), 15, interval=0, what="OffsetOutOfRangeError")
    finally:
        c.close()


def test_delete_records_kafkajs(broker, topic):
    produce_values(broker, topic, 10)
    assert kafkajs_admin(broker.bootstrap, "deleteTopicRecords", topic=topic,
                         partitions=[{"partition": 0, "offset": "6"}]) == {"ok": True}
    offs = kafkajs_admin(broker.bootstrap, "fetchTopicOffsets", topic=topic)
    assert [(o["partition"], o["low"], o["high"]) for o in offs] == [(0, "6", "10")]


# --------------------------------------------------------------------------- Metadata

def test_metadata_reports_partitions(broker_factory, topic):
    b = broker_factory("--num-partitions", "3")
    # confluent-kafka: auto-creates from Metadata with the broker's default partition count
    produce_values(b, topic, 1)
    bid = broker_id(b)
    assert partitions_of(b, topic) == {p: (bid, [bid], [bid]) for p in range(3)}

    # kafka-python
    from kafka import KafkaConsumer
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None)
    try:
        assert kc.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        kc.close()

    # kcat -L -J (Metadata v4 from librdkafka 2.0.2)
    md = json.loads(kcat("-b", b.bootstrap, "-L", "-J", "-t", topic).stdout)
    (t,) = [t for t in md["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == bid for p in t["partitions"])
    assert [br["id"] for br in md["brokers"]] == [bid]
    assert md["brokers"][0]["name"] == b.bootstrap

    # raw Metadata v4: controller is the live broker, the broker advertises our address
    with Conn.to(b.bootstrap) as c:
        brokers, controller, topics = c.metadata_v4([topic], allow_auto_create=False)
        assert [(x[0], x[1], x[2]) for x in brokers] == [(bid, "127.0.0.1", b.port)]
        assert controller == bid
        err, parts = topics[topic]
        assert err == 0 and sorted(parts) == [0, 1, 2]
        # a topic that does not exist, without auto-create: UNKNOWN_TOPIC_OR_PARTITION
        _, _, topics = c.metadata_v4([topic + "-nope"], allow_auto_create=False)
        assert topics[topic + "-nope"][0] == 3


# --------------------------------------------------------------------------- DescribeCluster

def test_describe_cluster(broker):
    """DescribeCluster (confluent-kafka and kafka-python): one node at our address,
    that node is the controller, and the cluster id is the one Metadata reports."""
    a = admin(broker)
    md = a.list_topics(timeout=10)
    desc = a.describe_cluster(request_timeout=10).result(timeout=10)
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(md.brokers[n].id, "127.0.0.1", broker.port)
                                                              for n in md.brokers]
    assert desc.controller is not None and desc.controller.id == md.controller_id
    assert desc.cluster_id and desc.cluster_id == md.cluster_id

    k = kp_admin(broker)
    try:
        c = k.describe_cluster()
    finally:
        k.close()
    assert c["cluster_id"] == md.cluster_id, c
    assert [(b["broker_id"], b["host"], b["port"]) for b in c["brokers"]] == [(md.controller_id, "127.0.0.1", broker.port)], c


def test_list_offsets_by_time_in_a_compression_bomb_is_bounded(broker, topic):
    """A zstd batch of a few kilobytes that expands to 80 MB (two records: a small one at
    t=1000, a huge one of zeros at t=2000). ListOffsets by time inside it would need to
    decompress it; the broker decompresses at most 64 MiB, answers the batch's first offset
    (at most one batch early) and logs it; queries answered from the batch header need no
    decompression at all; the broker stays up and serves the records."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd",
                  "linger.ms": 100, "message.max.bytes": 100_000_000, "batch.size": 200_000_000})
    p.produce(topic, value=b"small", partition=0, timestamp=1000)
    p.produce(topic, value=bytes(80_000_000), partition=0, timestamp=2000)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bomb"})
    try:
        def at(ts: int) -> int:
            return c.offsets_for_times([TopicPartition(topic, 0, ts)], 10)[0].offset
        assert at(500) == 0    # the first record's time is the batch's base timestamp
        assert at(1500) == 0   # inside the bomb: its first offset, at most one batch early
        assert at(2000) == 0
        assert at(2001) == -1  # nothing that recent
        assert "decompresses to more than the cap" in broker.log_tail()
        broker.assert_alive()
    finally:
        c.close()
