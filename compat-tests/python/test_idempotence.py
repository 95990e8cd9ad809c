"""Idempotent producers (InitProducerId + sequence numbers): many records, each
stored exactly once, offsets dense 0..N-1, batches carrying the producer id."""

from phxq_clients import (
    Rec, assert_dense, assert_same_records, confluent_consume, confluent_produce,
    kafka_python_consume, kafka_python_produce, now_ms,
)
from phxq_wire import Conn, parse_batches

N = 5000


def records(n, partitions=1):
    ts = now_ms() - 60_000
    return [Rec(i % partitions, -1, f"k{i}".encode(), f"idempotent-{i}".encode(), (), ts + i) for i in range(n)]


def producer_ids(broker, topic, partition=0):
    """Producer ids of all stored batches (raw Fetch from offset 0)."""
    ids = set()
    with Conn.to(broker.bootstrap) as c:
        offset = 0
        while True:
            r = c.fetch_v4(topic, partition, offset)
            batches = parse_batches(r["records"])
            if not batches:
                return ids
            ids |= {b.producer_id for b in batches}
            offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1


def test_confluent_idempotent(broker_factory, topic):
    b = broker_factory("--num-partitions", "2")
    recs = records(N, 2)
    sent = confluent_produce(b.bootstrap, topic, recs, **{
        "enable.idempotence": True, "linger.ms": 1, "batch.num.messages": 50,
        "max.in.flight.requests.per.connection": 5, "compression.type": "lz4"})
    assert_dense(sent)
    assert_same_records(sent, confluent_consume(b.bootstrap, topic, partitions=[0, 1]))
    for p in (0, 1):
        ids = producer_ids(b, topic, p)
        assert len(ids) == 1 and min(ids) >= 0, f"partition {p}: producer ids {ids}"


def test_kafka_python_default_idempotence(broker, topic):
    """kafka-python 3.0 is idempotent by default: no option set here."""
    recs = records(N)
    sent = kafka_python_produce(broker.bootstrap, topic, recs, compression_type="gzip")
    assert_dense(sent)
    assert_same_records(sent, kafka_python_consume(broker.bootstrap, topic))
    ids = producer_ids(broker, topic)
    assert len(ids) == 1 and min(ids) >= 0, f"producer ids {ids} (expected one InitProducerId id)"


def test_two_idempotent_producers_get_distinct_ids(broker, topic):
    a = confluent_produce(broker.bootstrap, topic, records(100), **{"enable.idempotence": True})
    b = confluent_produce(broker.bootstrap, topic, records(100), **{"enable.idempotence": True})
    assert [r.offset for r in a + b] == list(range(200))
    ids = producer_ids(broker, topic)
    assert len(ids) == 2 and min(ids) >= 0, f"producer ids {ids}"


def test_aiokafka_idempotent(broker, topic):
    from phxq_clients import aiokafka_consume, aiokafka_produce
    recs = records(2000)
    sent = aiokafka_produce(broker.bootstrap, topic, recs, enable_idempotence=True, compression_type="zstd")
    assert_dense(sent)
    assert_same_records(sent, aiokafka_consume(broker.bootstrap, topic))
    ids = producer_ids(broker, topic)
    assert len(ids) == 1 and min(ids) >= 0, f"producer ids {ids}"


def test_kafkajs_idempotent(broker, topic):
    from phxq_clients import kafkajs_produce
    recs = records(2000)
    sent = kafkajs_produce(broker.bootstrap, topic, recs, compression="gzip", chunk=100, idempotent=True)
    assert_dense(sent)
    assert_same_records(sent, confluent_consume(broker.bootstrap, topic))
    ids = producer_ids(broker, topic)
    assert len(ids) == 1 and min(ids) >= 0, f"producer ids {ids}"
