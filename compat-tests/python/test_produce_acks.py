"""Produce with acks=0, 1 and all. acks=0 gets no response at all: the next answer on
the connection belongs to the next request."""

import pytest

from phxq_clients import Rec, confluent_consume, confluent_produce, kafka_python_consume, now_ms
from phxq_wire import API_VERSIONS, Conn, Enc, PRODUCE, Record, build_batch


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_acks(broker, topic, acks):
    recs = [Rec(0, -1, f"k{i}".encode(), f"acks{acks}-{i}".encode(), (), now_ms()) for i in range(300)]
    sent = confluent_produce(broker.bootstrap, topic, recs, acks=acks)
    if acks != "0":
        assert [r.offset for r in sent] == list(range(300))
    got = confluent_consume(broker.bootstrap, topic)
    assert [(r.offset, r.key, r.value) for r in got] == [(i, r.key, r.value) for i, r in enumerate(recs)]


def test_kafka_python_acks_1(broker, topic):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, enable_idempotence=False)
    offs = [p.send(topic, value=f"a1-{i}".encode(), partition=0).get(timeout=30).offset for i in range(50)]
    p.close()
    assert offs == list(range(50))
    assert [r.value for r in kafka_python_consume(broker.bootstrap, topic)] == [f"a1-{i}".encode() for i in range(50)]


def test_raw_acks_0_sends_no_response(broker, topic):
    with Conn.to(broker.bootstrap) as c:
        # make the topic exist first
        c.metadata_v4([topic], allow_auto_create=True)
        batch = build_batch([Record(b"k", b"fire and forget", [], now_ms())])
        body = (Enc().string(None).i16(0).i32(10000)
                .array([topic], lambda e, t: e.string(t).array([0], lambda e2, p: e2.i32(p).bytes_(batch)))
                .build())
        produce_corr = c.send(PRODUCE, 3, body)
        api_corr = c.send(API_VERSIONS, 0, b"")
        got, d = c.recv()
        assert got == api_corr, f"got a response with correlation id {got} (the acks=0 produce was {produce_corr})"
        assert d.i16() == 0
        # the record is there
        err, _, end = c.list_offsets_v1(topic, 0, -1)
        assert (err, end) == (0, 1)
