"""Fetch long poll: wait up to max_wait_ms for data, but answer as soon as it arrives."""

import threading
import time

from confluent_kafka import KafkaError, Producer, TopicPartition

from phxq_clients import Rec, confluent_consumer, confluent_produce, now_ms
from phxq_wire import Conn, parse_batches


def warm_producer(broker, topic):
    """A connected producer whose topic already exists and has one record (offset 0),
    so a later produce costs no connection or metadata round trips."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all"})
    p.produce(topic, value=b"warm", partition=0)
    assert p.flush(30) == 0
    return p


def test_fetch_returns_when_data_arrives(broker, topic):
    p = warm_producer(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        def produce_later():
            time.sleep(0.2)  # the scenario: data arrives 200 ms into the wait
            p.produce(topic, value=b"late", partition=0)
            p.flush(10)

        t = threading.Thread(target=produce_later)
        start = time.monotonic()
        corr = c.fetch_v4_send(topic, 0, 1, max_wait_ms=2000, min_bytes=1)
        t.start()
        r = c.fetch_v4_recv(corr)
        elapsed = time.monotonic() - start
        t.join()
    assert r["error"] == 0
    recs = [rec for b in parse_batches(r["records"]) for rec in b.records]
    assert [(x.offset, x.value) for x in recs] == [(1, b"late")], \
        f"fetch returned after {elapsed:.3f}s without the record: {recs}"
    assert elapsed < 1.5, f"fetch with max_wait 2s answered after {elapsed:.3f}s; data arrived at 0.2s"


def test_fetch_waits_for_max_wait_when_empty(broker, topic):
    """No data: the broker holds the fetch for about max_wait_ms rather than answering
    at once (which makes consumers spin) or never."""
    warm_producer(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        start = time.monotonic()
        r = c.fetch_v4(topic, 0, 1, max_wait_ms=1000, min_bytes=1)
        elapsed = time.monotonic() - start
    assert r["error"] == 0 and r["high_watermark"] == 1
    assert parse_batches(r["records"]) == []
    assert 0.8 <= elapsed <= 5, f"empty fetch with max_wait 1s answered after {elapsed:.3f}s"


def test_consumer_latency_with_long_wait(broker, topic):
    """confluent-kafka consumer with fetch.wait.max.ms=2000 sees each new record well
    before the wait ends."""
    p = warm_producer(broker, topic)
    c = confluent_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 2000})
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        # let the consumer reach the end (EOF) so its next fetch is a waiting one
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "consumer never reached the end of the partition"
            m = c.poll(0.2)
            if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                break
        latencies = []
        for i in range(5):
            sent_at = time.monotonic()
            p.produce(topic, value=f"r{i}".encode(), partition=0)
            p.flush(10)
            while True:
                assert time.monotonic() - sent_at < 5, f"record r{i} not consumed within 5s"
                m = c.poll(0.05)
                if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                    continue
                assert not m.error(), m.error()
                assert m.value() == f"r{i}".encode() and m.offset() == i + 1
                latencies.append(time.monotonic() - sent_at)
                break
    finally:
        c.close()
    assert max(latencies) < 1.0, f"end-to-end latencies {latencies}"
