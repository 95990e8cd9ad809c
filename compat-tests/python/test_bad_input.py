"""Bad input over raw sockets. Each case must get the right Kafka error code or a
closed connection, must not crash or wedge the broker, and must not disturb data:
after it, a normal client still produces and consumes and what was there before is
intact (`healthy`)."""

import random
import socket
import struct

import pytest

from phxq_clients import Rec, confluent_consume, confluent_produce, now_ms
from phxq_wire import (
    API_VERSIONS, CORRUPT_MESSAGE, INVALID_TOPIC_EXCEPTION, MESSAGE_TOO_LARGE, PRODUCE,
    UNSUPPORTED_VERSION, Conn, ConnectionClosed, Enc, Record, build_batch,
)


def baseline(broker, topic, n=10, tag="before", size=8):
    recs = [Rec(0, -1, f"k{i}".encode(), f"{tag}-{i}".encode().ljust(size, b"."), (("h", b"x"),), now_ms())
            for i in range(n)]
    return confluent_produce(broker.bootstrap, topic, recs)


def healthy(broker, topic, before):
    """The broker is alive, takes new records after the old ones, and the old ones are intact."""
    broker.assert_alive()
    after = baseline(broker, topic, 5, tag="after")
    assert [r.offset for r in after] == list(range(len(before), len(before) + 5))
    got = confluent_consume(broker.bootstrap, topic)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == \
        [(r.offset, r.key, r.value, r.headers) for r in before + after]
    # and a brand-new connection answers ApiVersions
    with Conn.to(broker.bootstrap) as c:
        err, apis = c.api_versions_v0()
        assert err == 0 and API_VERSIONS in apis
    return before + after


def assert_closed(conn: Conn, what: str):
    assert conn.closed_by_peer(timeout=10), f"{what}: broker answered instead of closing"


def closed_or_answered(conn: Conn) -> str:
    """For requests Kafka has no response schema for (unknown API key, unknown version):
    either the broker closes the connection or sends some response; it must not hang."""
    try:
        conn.recv()
        return "answered"
    except ConnectionClosed:
        return "closed"
    except socket.timeout:
        raise AssertionError("broker neither answered nor closed the connection within 10s")


def test_garbage_bytes(broker, topic):
    before = baseline(broker, topic)
    # an HTTP request: its first 4 bytes read as a ~1.2 GB frame length
    with Conn.to(broker.bootstrap) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert_closed(c, "HTTP request")
    # complete frames of random bytes (random header, api key, version, body)
    rng = random.Random(20240611)
    outcomes = []
    for i in range(30):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        with Conn.to(broker.bootstrap) as c:
            c.send_raw(struct.pack(">i", len(body)) + body)
            outcomes.append(closed_or_answered(c))
    # random frames starting with a valid Produce v3 header and a garbage body
    for i in range(20):
        with Conn.to(broker.bootstrap) as c:
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
            c.send(PRODUCE, 3, junk)
            outcomes.append(closed_or_answered(c))
    healthy(broker, topic, before)


def test_truncated_frame(broker, topic):
    before = baseline(broker, topic)
    # header promises 100 bytes, 10 arrive, then the client goes away mid-frame
    with Conn.to(broker.bootstrap) as c:
        c.send_raw(struct.pack(">i", 100) + b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00")
        c.sock.shutdown(socket.SHUT_WR)
        assert_closed(c, "truncated frame then EOF")
    # a truncated frame left hanging on an open connection must not block anyone else
    stalled = Conn.to(broker.bootstrap)
    stalled.send_raw(struct.pack(">i", 100) + b"\x00\x03")
    try:
        state = healthy(broker, topic, before)
    finally:
        stalled.close()
    healthy(broker, topic, state)


@pytest.mark.parametrize("length", [0x7FFFFFFF, -1, -0x80000000, 0x40000000], ids=["2GiB", "minus1", "minus2GiB", "1GiB"])
def test_huge_or_negative_frame_length(broker, topic, length):
    before = baseline(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        c.send_raw(struct.pack(">i", length) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
        assert_closed(c, f"frame length {length}")
    healthy(broker, topic, before)


def test_unknown_api_key(broker, topic):
    before = baseline(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        c.send(9999, 0, b"\x00\x00\x00\x00")
        closed_or_answered(c)
    healthy(broker, topic, before)


def test_unsupported_produce_version(broker, topic):
    before = baseline(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        c.send(PRODUCE, 99, b"\x00" * 16)
        closed_or_answered(c)
    healthy(broker, topic, before)


def test_api_versions_unsupported_version(broker, topic):
    """ApiVersions v99: error 35 with a v0 body that lists ApiVersions, and the
    connection stays open so the client can retry with a version it supports."""
    before = baseline(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        # v3+ requests use the flexible request header v2: client_id then tagged fields
        corr = 42
        header = Enc().i16(API_VERSIONS).i16(99).i32(corr).string("phxq-compat-raw").raw(b"\x00").build()
        body = b"\x04raw\x040.1\x00"  # compact strings software name/version, no tags
        c.send(API_VERSIONS, 99, body, header=header)
        got, d = c.recv()
        assert got == corr
        err = d.i16()
        apis = d.array(lambda x: (x.i16(), x.i16(), x.i16()))
        assert err == UNSUPPORTED_VERSION
        keys = {k: (lo, hi) for k, lo, hi in apis}
        assert API_VERSIONS in keys, keys
        assert keys[API_VERSIONS][0] == 0 and keys[API_VERSIONS][1] >= 3, keys[API_VERSIONS]
        # same connection, supported version: normal answer
        err, apis = c.api_versions_v0()
        assert err == 0 and API_VERSIONS in apis
    healthy(broker, topic, before)


def test_bad_crc_batch(broker, topic):
    before = baseline(broker, topic)
    recs = [Record(b"k", b"corrupt me", [], now_ms())]
    with Conn.to(broker.bootstrap) as c:
        err, _ = c.produce_v3(topic, 0, build_batch(recs, corrupt_crc=True))
        assert err == CORRUPT_MESSAGE
        # a correct batch on the same connection still works, at the next offset
        err, base = c.produce_v3(topic, 0, build_batch(recs))
        assert (err, base) == (0, len(before))
        # a gzip batch with a bad CRC too
        err, _ = c.produce_v3(topic, 0, build_batch(recs, compression="gzip", corrupt_crc=True))
        assert err == CORRUPT_MESSAGE
    before.append(Rec(0, len(before), b"k", b"corrupt me", (), recs[0].timestamp))
    healthy(broker, topic, before)


def test_message_too_large(broker_factory, topic):
    b = broker_factory("--message-max-bytes", "10000")
    before = baseline(b, topic)
    # raw: one 20 000-byte record
    with Conn.to(b.bootstrap) as c:
        err, _ = c.produce_v3(topic, 0, build_batch([Record(None, b"x" * 20000, [], now_ms())]))
        assert err == MESSAGE_TOO_LARGE
        # a batch under the limit is fine
        err, base = c.produce_v3(topic, 0, build_batch([Record(None, b"y" * 5000, [], now_ms())]))
        assert (err, base) == (0, len(before))
    before.append(Rec(0, len(before), None, b"y" * 5000, (), 0))

    # a real client gets the error in its delivery report
    from confluent_kafka import KafkaError, Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    reports = []
    p.produce(topic, value=b"z" * 20000, partition=0, on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports[0]

    # the broker state is unchanged (compare without timestamps: the raw one is ours)
    b.assert_alive()
    got = confluent_consume(b.bootstrap, topic)
    assert [(r.offset, r.value) for r in got] == [(r.offset, r.value) for r in before]
    healthy(b, topic, got)


@pytest.mark.parametrize("name", ["bad topic!", "a/b", "", ".", "..", "x" * 250, "tab\tname"],
                         ids=["space", "slash", "empty", "dot", "dotdot", "too-long", "tab"])
def test_invalid_topic_name(broker, topic, name):
    before = baseline(broker, topic)
    with Conn.to(broker.bootstrap) as c:
        res = c.create_topics_v2([(name, 1)])
        assert res[name][0] == INVALID_TOPIC_EXCEPTION, res
        _, _, topics = c.metadata_v4([name], allow_auto_create=True)
        assert topics[name][0] == INVALID_TOPIC_EXCEPTION, topics
        # and it was not created
        _, _, all_topics = c.metadata_v4(None)
        assert name not in all_topics
    healthy(broker, topic, before)


def test_invalid_topic_name_confluent_admin(broker, topic):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    before = baseline(broker, topic)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as ei:
        a.create_topics([NewTopic("no spaces allowed", 1, 1)])["no spaces allowed"].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.TOPIC_EXCEPTION
    healthy(broker, topic, before)


def test_batch_with_lying_record_count(broker, topic):
    """A batch with a valid CRC whose record count does not match its records: an
    error (CORRUPT_MESSAGE or INVALID_RECORD), not a crash and not stored."""
    before = baseline(broker, topic)
    batch = bytearray(build_batch([Record(b"k", b"v", [], now_ms())]))
    # recordCount sits at byte 57..61; claim 1000 records and re-sign the batch
    struct.pack_into(">i", batch, 57, 1000)
    from phxq_wire import crc32c
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    with Conn.to(broker.bootstrap) as c:
        try:
            err, _ = c.produce_v3(topic, 0, bytes(batch))
            assert err in (CORRUPT_MESSAGE, 87), f"error {err}"
        except ConnectionClosed:
            pass
    healthy(broker, topic, before)


def test_unknown_partition_topic_and_offset_out_of_range(broker, topic):
    """Produce to a partition or topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION
    (Produce never auto-creates); Fetch past the high watermark: OFFSET_OUT_OF_RANGE."""
    from phxq_wire import OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION
    before = baseline(broker, topic)
    batch = build_batch([Record(b"k", b"nowhere", [], now_ms())])
    with Conn.to(broker.bootstrap) as c:
        assert c.produce_v3(topic, 7, batch)[0] == UNKNOWN_TOPIC_OR_PARTITION
        assert c.produce_v3(topic + "-never-created", 0, batch)[0] == UNKNOWN_TOPIC_OR_PARTITION
        _, _, topics = c.metadata_v4(None)
        assert topic + "-never-created" not in topics
        assert c.fetch_v4(topic, 0, len(before) + 5)["error"] == OFFSET_OUT_OF_RANGE
        # at the high watermark itself: no error, no records
        r = c.fetch_v4(topic, 0, len(before))
        assert (r["error"], r["high_watermark"], r["records"]) == (0, len(before), b"")
        assert c.fetch_v4(topic, 7, 0)["error"] == UNKNOWN_TOPIC_OR_PARTITION
    healthy(broker, topic, before)
