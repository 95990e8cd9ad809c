"""Produce with each real client in every compression it supports, read back, and
compare exactly: partition, offset, key, value, headers, timestamp, order, count.

Each record set has null/binary keys, empty/null/binary/100 KB values, none/one/
duplicate/empty/null headers and explicit timestamps (see make_records). Every
test also checks the broker kept the batches in the producer's compression codec.
"""

import time

import pytest

from phxq_clients import (
    COMPRESSIONS, Rec, aiokafka_consume, aiokafka_produce, assert_dense, assert_same_records,
    confluent_consume, confluent_produce, kafka_python_consume, kafka_python_produce,
    assert_compressed, kafkajs_produce, kcat, kcat_consume, make_records, now_ms,
)

N = 240
PARTITIONS = 2


def check_stored(broker, topic, compression, partitions=PARTITIONS):
    assert_compressed(broker.bootstrap, topic, compression, range(partitions))


@pytest.fixture
def broker2(broker_factory):
    """Broker whose auto-created topics get 2 partitions."""
    return broker_factory("--num-partitions", str(PARTITIONS))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_confluent_kafka(broker2, topic, compression):
    recs = make_records(N, PARTITIONS)
    sent = confluent_produce(broker2.bootstrap, topic, recs, **{"compression.type": compression})
    assert_dense(sent)
    got = confluent_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS))
    assert_same_records(sent, got, "confluent-kafka read back")
    check_stored(broker2, topic, compression)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_kafka_python(broker2, topic, compression):
    # kafka-python 3.0 refuses null header values ("must be (str, bytes) tuples")
    recs = make_records(N, PARTITIONS, null_header_values=False)
    sent = kafka_python_produce(broker2.bootstrap, topic, recs,
                                compression_type=None if compression == "none" else compression)
    assert_dense(sent)
    got = kafka_python_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS))
    assert_same_records(sent, got, "kafka-python read back")
    assert_same_records(sent, confluent_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS)),
                        "confluent-kafka reading kafka-python's records")
    check_stored(broker2, topic, compression)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_aiokafka(broker2, topic, compression):
    recs = make_records(N, PARTITIONS)
    sent = aiokafka_produce(broker2.bootstrap, topic, recs,
                            compression_type=None if compression == "none" else compression)
    assert_dense(sent)
    got = aiokafka_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS))
    assert_same_records(sent, got, "aiokafka read back")
    assert_same_records(sent, kafka_python_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS)),
                        "kafka-python reading aiokafka's records")
    check_stored(broker2, topic, compression)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_kafkajs(broker2, topic, compression):
    """kafkajs consumes only through a group (a later issue), so its records are read
    back with confluent-kafka and aiokafka. kafkajs 2.2 cannot send null header values."""
    recs = make_records(N, PARTITIONS, null_header_values=False)
    sent = kafkajs_produce(broker2.bootstrap, topic, recs, compression=compression)
    assert_dense(sent)
    assert_same_records(sent, confluent_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS)),
                        "confluent-kafka reading kafkajs' records")
    assert_same_records(sent, aiokafka_consume(broker2.bootstrap, topic, partitions=range(PARTITIONS)),
                        "aiokafka reading kafkajs' records")
    check_stored(broker2, topic, compression)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_kcat(broker, topic, compression):
    """kcat -P (Debian kcat 1.7.1, librdkafka 2.0.2): keys via -K, the same headers on
    every message via -H, timestamps set by the client at produce time. Read back with
    kcat -C -J and with confluent-kafka."""
    n = 200
    lines = [f"key-{i}\tvalue-{i}-" + "x" * (i % 40) for i in range(n)]
    before = now_ms()
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", "\t",
         "-H", "h1=one", "-H", "dup=a", "-H", "dup=b",
         "-X", f"compression.codec={compression}", "-X", "linger.ms=20",
         input=("\n".join(lines) + "\n").encode())
    after = now_ms()
    got = kcat_consume(broker.bootstrap, topic)
    assert [r.offset for r in got] == list(range(n))
    for i, r in enumerate(got):
        k, v = lines[i].split("\t")
        assert (r.partition, r.key, r.value) == (0, k.encode(), v.encode()), r.short()
        assert r.headers == (("h1", b"one"), ("dup", b"a"), ("dup", b"b")), r.short()
        assert before - 1000 <= r.timestamp <= after + 1000, f"timestamp {r.timestamp} not in [{before}, {after}]"
    assert_same_records(got, confluent_consume(broker.bootstrap, topic), "confluent-kafka reading kcat's records")
    # librdkafka 2.0.2 compresses gzip/snappy/lz4 only if the broker still serves Produce v0
    # (librdkafka issue #4956, fixed in later releases). phxq, like Kafka 4.0 (KIP-896), serves
    # Produce from v3, so this old client falls back to uncompressed batches — with Kafka 4.0
    # too. The records above still round-trip exactly; zstd (Produce >= 7) is compressed.
    stored_as = "none" if compression in ("gzip", "snappy", "lz4") else compression
    check_stored(broker, topic, stored_as, partitions=1)


def test_kcat_reads_other_clients(broker, topic):
    """kcat (old librdkafka 2.0.2, Fetch <= v11) reads what confluent-kafka wrote, with
    headers and timestamps; text values so kcat's JSON output is exact."""
    recs = [Rec(0, -1, f"k{i}".encode(), f"v{i}".encode(), (("h", f"{i}".encode()),), now_ms() - 10_000 + i)
            for i in range(100)]
    sent = confluent_produce(broker.bootstrap, topic, recs, **{"compression.type": "zstd"})
    assert_same_records(sent, kcat_consume(broker.bootstrap, topic), "kcat reading confluent-kafka's records")


def test_consume_from_middle_offset(broker, topic):
    """Fetching from an offset inside a batch returns records from exactly that offset
    (clients skip the batch's earlier records, but the offsets must be right)."""
    recs = make_records(100, 1)
    sent = confluent_produce(broker.bootstrap, topic, recs, **{"linger.ms": 50, "compression.type": "lz4"})
    for start in (1, 37, 99):
        assert_same_records(sent[start:], confluent_consume(broker.bootstrap, topic, start=start),
                            f"confluent-kafka from offset {start}")
        assert_same_records(sent[start:], kafka_python_consume(broker.bootstrap, topic, start=start),
                            f"kafka-python from offset {start}")


def test_many_small_produces_then_consume_while_producing(broker, topic):
    """A consumer that starts before the producer sees every record as it arrives."""
    from confluent_kafka import Producer, KafkaError, TopicPartition
    from phxq_clients import confluent_consumer

    c = confluent_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 100})
    # create the topic first so the consumer can be assigned
    confluent_produce(broker.bootstrap, topic, [Rec(0, -1, b"first", b"first")])
    c.assign([TopicPartition(topic, 0, 0)])
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    n = 500
    got = []
    deadline = time.monotonic() + 60
    produced = 0
    while len(got) < n + 1:
        assert time.monotonic() < deadline, f"only {len(got)} of {n + 1} records consumed"
        if produced < n:
            p.produce(topic, value=f"live-{produced}".encode(), partition=0)
            produced += 1
            p.poll(0)
        m = c.poll(0.01 if produced < n else 0.2)
        if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
            continue
        assert not m.error(), m.error()
        got.append((m.offset(), m.value()))
    assert p.flush(30) == 0
    c.close()
    assert got == [(0, b"first")] + [(i + 1, f"live-{i}".encode()) for i in range(n)]


def test_fetch_returns_whole_first_batch_over_max_bytes(broker, topic):
    """A batch larger than the fetch's max_bytes still comes back whole when it is
    the first one (KIP-74), or a consumer with small fetch sizes would be stuck."""
    from phxq_wire import Conn, parse_batches
    big = bytes(range(256)) * 800  # 200 KB
    recs = [Rec(0, -1, b"big", big, (), now_ms()), Rec(0, -1, b"small", b"s", (), now_ms())]
    sent = confluent_produce(broker.bootstrap, topic, recs[:1])
    sent += confluent_produce(broker.bootstrap, topic, recs[1:])
    with Conn.to(broker.bootstrap) as c:
        r = c.fetch_v4(topic, 0, 0, max_bytes=1000)
    assert r["error"] == 0
    batches = parse_batches(r["records"])
    assert batches, f"no complete batch in {len(r['records'])} bytes of records"
    first = batches[0].records[0]
    assert (first.offset, first.key, first.value) == (0, b"big", big)
    assert_same_records(sent, kafka_python_consume(broker.bootstrap, topic, max_partition_fetch_bytes=1000,
                                                   fetch_max_bytes=1000))
