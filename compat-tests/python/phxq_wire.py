"""Hand-encoded Kafka wire protocol, just enough to send the requests real clients
will not send (bad CRCs, unknown APIs, huge frame lengths) and to look at what the
broker stores (batch attributes) or when it answers (long poll).

Mostly non-flexible ("classic") versions are encoded, so every string is an int16
length + bytes and every array an int32 count + items:

  * request header v1:  api_key i16, api_version i16, correlation_id i32, client_id string
  * response header v0: correlation_id i32
  * ApiVersions v0, Metadata v4, Produce v3, Fetch v4, CreateTopics v2, ListOffsets v1
    (the oldest versions Kafka 4 still serves); Produce and Fetch for one partition or
    for many in one request (``produce_v3_many``, ``fetch_v4_many``)
  * DescribeConfigs v1 and IncrementalAlterConfigs v0 (any resource type, e.g. Kafka's
    GROUP config resource, 32)

and a few flexible versions (``call_flex``: request header v2 = v1 + tagged fields,
response header v1 = correlation id + tagged fields; compact strings/arrays are an
unsigned varint length+1, every struct ends in tagged fields, topic ids are 16-byte
UUIDs): ConsumerGroupHeartbeat v1 (KIP-848), OffsetCommit v9 and OffsetFetch v9 with
member ids and epochs.

Record batches are magic 2 (the only format modern clients use): see
``build_batch`` for the layout; the CRC is CRC-32C over attributes..end.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
from dataclasses import dataclass, field

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
CONSUMER_GROUP_HEARTBEAT = 68
DESCRIBE_CONFIGS = 32
INCREMENTAL_ALTER_CONFIGS = 44

# Config resource types (Kafka's ConfigResource.Type; groups are 32, not the ACL code 3).
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_GROUP = 32
# IncrementalAlterConfigs operations.
CONFIG_SET, CONFIG_DELETE = 0, 1

# Kafka error codes used by the tests.
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_CONFIG = 40

COMPRESSION_CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


# --------------------------------------------------------------------------- CRC-32C

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --------------------------------------------------------------------------- encoding

def zigzag_varint(n: int) -> bytes:
    """Signed varint (zigzag), as used inside magic-2 records."""
    z = (n << 1) ^ (n >> 63)
    z &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Enc:
    def __init__(self):
        self.buf = bytearray()

    def i8(self, v):
        self.buf += struct.pack(">b", v)
        return self

    def i16(self, v):
        self.buf += struct.pack(">h", v)
        return self

    def i32(self, v):
        self.buf += struct.pack(">i", v)
        return self

    def i64(self, v):
        self.buf += struct.pack(">q", v)
        return self

    def string(self, s):
        if s is None:
            return self.i16(-1)
        b = s.encode() if isinstance(s, str) else s
        self.i16(len(b))
        self.buf += b
        return self

    def bytes_(self, b):
        if b is None:
            return self.i32(-1)
        self.i32(len(b))
        self.buf += b
        return self

    def array(self, items, fn):
        if items is None:
            return self.i32(-1)
        self.i32(len(items))
        for it in items:
            fn(self, it)
        return self

    def raw(self, b):
        self.buf += b
        return self

    # flexible versions
    def uvarint(self, n: int):
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                self.buf.append(b | 0x80)
            else:
                self.buf.append(b)
                return self

    def cstring(self, s):
        """Compact (nullable) string."""
        if s is None:
            return self.uvarint(0)
        b = s.encode() if isinstance(s, str) else s
        self.uvarint(len(b) + 1)
        self.buf += b
        return self

    def carray(self, items, fn):
        """Compact (nullable) array."""
        if items is None:
            return self.uvarint(0)
        self.uvarint(len(items) + 1)
        for it in items:
            fn(self, it)
        return self

    def uuid(self, u: bytes):
        assert len(u) == 16
        self.buf += u
        return self

    def tags(self):
        """An empty tagged-field section."""
        return self.uvarint(0)

    def build(self) -> bytes:
        return bytes(self.buf)


class Dec:
    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def _take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"short read: need {size} at {self.pos} of {len(self.data)}")
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def u32(self):
        return self._take(">I")

    def i64(self):
        return self._take(">q")

    def raw(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("short read")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def string(self):
        n = self.i16()
        return None if n < 0 else self.raw(n).decode()

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.raw(n)

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def varint(self):
        shift = 0
        z = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        return (z >> 1) ^ -(z & 1)

    def remaining(self):
        return len(self.data) - self.pos

    # flexible versions
    def uvarint(self):
        shift = 0
        z = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                return z
            shift += 7

    def cstring(self):
        n = self.uvarint()
        return None if n == 0 else self.raw(n - 1).decode()

    def carray(self, fn):
        n = self.uvarint()
        return None if n == 0 else [fn(self) for _ in range(n - 1)]

    def uuid(self) -> bytes:
        return self.raw(16)

    def tags(self) -> dict[int, bytes]:
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            out[tag] = self.raw(self.uvarint())
        return out


# --------------------------------------------------------------------------- record batches

@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)  # [(str|bytes, bytes|None)]
    timestamp: int = 0
    offset: int = -1


def _encode_record(offset_delta, ts_delta, rec: Record) -> bytes:
    body = bytearray()
    body += b"\x00"  # attributes
    body += zigzag_varint(ts_delta)
    body += zigzag_varint(offset_delta)
    for b in (rec.key, rec.value):
        if b is None:
            body += zigzag_varint(-1)
        else:
            body += zigzag_varint(len(b)) + b
    body += zigzag_varint(len(rec.headers))
    for k, v in rec.headers:
        kb = k if isinstance(k, bytes) else k.encode()
        body += zigzag_varint(len(kb)) + kb
        if v is None:
            body += zigzag_varint(-1)
        else:
            body += zigzag_varint(len(v)) + v
    return zigzag_varint(len(body)) + bytes(body)


def build_batch(records: list[Record], compression: str = "none", corrupt_crc: bool = False,
                producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1) -> bytes:
    """A magic-2 record batch with base offset 0.

    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    attributes i16 | lastOffsetDelta i32 | firstTimestamp i64 | maxTimestamp i64 |
    producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records
    """
    first_ts = min(r.timestamp for r in records)
    max_ts = max(r.timestamp for r in records)
    recs = b"".join(_encode_record(i, r.timestamp - first_ts, r) for i, r in enumerate(records))
    codec = COMPRESSION_CODECS[compression]
    if codec == 1:
        recs = gzip.compress(recs)
    elif codec != 0:
        raise ValueError("only none/gzip are hand-encoded")
    after_crc = struct.pack(">hiqqqhii", codec, len(records) - 1, first_ts, max_ts,
                            producer_id, producer_epoch, base_sequence, len(records)) + recs
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x5A5A5A5A
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


@dataclass
class Batch:
    base_offset: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    record_count: int
    crc_ok: bool
    records: list | None  # decoded only for uncompressed / gzip batches

    @property
    def compression(self) -> int:
        return self.attributes & 0x07


def parse_batches(data: bytes) -> list[Batch]:
    """Split a Fetch response's records bytes into batches (a trailing partial batch,
    allowed by the protocol, is ignored)."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + batch_len
        if end > len(data):
            break
        d = Dec(data, pos + 12)
        d.i32()  # partition leader epoch
        magic = d.i8()
        assert magic == 2, f"magic {magic}"
        crc = d.u32()
        crc_ok = crc32c(data[d.pos:end]) == crc
        attributes = d.i16()
        last_offset_delta = d.i32()
        first_ts = d.i64()
        max_ts = d.i64()
        producer_id = d.i64()
        d.i16()
        d.i32()
        count = d.i32()
        payload = data[d.pos:end]
        records = None
        codec = attributes & 0x07
        if codec in (0, 1):
            if codec == 1:
                payload = gzip.decompress(payload)
            rd = Dec(payload)
            records = []
            for _ in range(count):
                rd.varint()  # length
                rd.i8()
                ts_delta = rd.varint()
                off_delta = rd.varint()
                kl = rd.varint()
                key = None if kl < 0 else rd.raw(kl)
                vl = rd.varint()
                value = None if vl < 0 else rd.raw(vl)
                headers = []
                for _ in range(rd.varint()):
                    hk = rd.raw(rd.varint()).decode()
                    hl = rd.varint()
                    headers.append((hk, None if hl < 0 else rd.raw(hl)))
                records.append(Record(key, value, headers, first_ts + ts_delta, base_offset + off_delta))
        out.append(Batch(base_offset, attributes, last_offset_delta, first_ts, max_ts,
                         producer_id, count, crc_ok, records))
        pos = end
    return out


@dataclass
class Span:
    """Where one record batch sits in a Fetch response's records bytes."""
    base_offset: int
    last_offset: int
    size: int  # 12 + batchLength: the batch's bytes on the wire


def batch_spans(data: bytes) -> tuple[list[Span], int]:
    """Split records bytes into whole batches by their headers only (baseOffset i64,
    batchLength i32, ..., lastOffsetDelta i32 at byte 23). Returns the batches and the
    number of trailing bytes that do not form a whole batch (0 when the bytes are a
    concatenation of whole batches)."""
    out = []
    pos = 0
    while pos + 27 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        size = 12 + batch_len
        if batch_len < 15 or pos + size > len(data):
            break
        (last_delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append(Span(base_offset, base_offset + last_delta, size))
        pos += size
    return out, len(data) - pos


# --------------------------------------------------------------------------- connection

class ConnectionClosed(Exception):
    pass


class Conn:
    """One TCP connection speaking request header v1 / response header v0."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, client_id: str = "phxq-compat-raw"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.next_corr = 1

    @classmethod
    def to(cls, bootstrap: str, **kw) -> "Conn":
        host, port = bootstrap.rsplit(":", 1)
        return cls(host, int(port), **kw)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def header(self, api_key: int, version: int, corr: int) -> bytes:
        return Enc().i16(api_key).i16(version).i32(corr).string(self.client_id).build()

    def send(self, api_key: int, version: int, body: bytes, header: bytes | None = None) -> int:
        corr = self.next_corr
        self.next_corr += 1
        h = header if header is not None else self.header(api_key, version, corr)
        payload = h + body
        self.send_raw(struct.pack(">i", len(payload)) + payload)
        return corr

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e))
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv(self) -> tuple[int, Dec]:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        data = self._recv_exact(size)
        d = Dec(data)
        corr = d.i32()
        return corr, d

    def call(self, api_key: int, version: int, body: bytes) -> Dec:
        corr = self.send(api_key, version, body)
        got, d = self.recv()
        assert got == corr, f"correlation id {got}, expected {corr}"
        return d

    def call_flex(self, api_key: int, version: int, body: bytes) -> Dec:
        """A flexible version: request header v2, response header v1."""
        corr = self.next_corr
        header = Enc().i16(api_key).i16(version).i32(corr).string(self.client_id).tags().build()
        self.send(api_key, version, body, header=header)
        got, d = self.recv()
        assert got == corr, f"correlation id {got}, expected {corr}"
        d.tags()
        return d

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True if the broker closes (EOF or reset) within timeout; False if it sends
        bytes instead. Raises TimeoutError if it does neither."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            raise TimeoutError("broker neither answered nor closed the connection")
        return chunk == b""

    # ------------------------------------------------------------------ requests

    def api_versions_v0(self) -> tuple[int, dict]:
        d = self.call(API_VERSIONS, 0, b"")
        err = d.i16()
        apis = d.array(lambda x: (x.i16(), x.i16(), x.i16()))
        return err, {k: (lo, hi) for k, lo, hi in apis}

    def metadata_v4(self, topics: list[str] | None, allow_auto_create: bool = True):
        body = Enc().array(topics, lambda e, t: e.string(t)).i8(1 if allow_auto_create else 0).build()
        d = self.call(METADATA, 4, body)
        d.i32()  # throttle
        brokers = d.array(lambda x: (x.i32(), x.string(), x.i32(), x.string()))
        d.string()  # cluster id
        controller = d.i32()

        def topic(x):
            err = x.i16()
            name = x.string()
            x.i8()
            parts = x.array(lambda y: (y.i16(), y.i32(), y.i32(), y.array(Dec.i32), y.array(Dec.i32)))
            return name, err, {p[1]: p for p in parts}

        topics_out = {name: (err, parts) for name, err, parts in d.array(topic)}
        return brokers, controller, topics_out

    def create_topics_v2(self, topics: list[tuple[str, int]], timeout_ms: int = 10000,
                         replication_factor: int = 1) -> dict:
        """{name: (error_code, error_message)}"""
        def t(e, item):
            name, parts = item
            e.string(name).i32(parts).i16(replication_factor).array([], None).array([], None)

        body = Enc().array(topics, t).i32(timeout_ms).i8(0).build()
        d = self.call(CREATE_TOPICS, 2, body)
        d.i32()  # throttle
        res = d.array(lambda x: (x.string(), x.i16(), x.string()))
        return {name: (err, msg) for name, err, msg in res}

    def produce_v3(self, topic: str, partition: int, batch: bytes, acks: int = -1,
                   timeout_ms: int = 10000) -> tuple[int, int]:
        """Returns (error_code, base_offset) for the one partition."""
        body = (Enc().string(None).i16(acks).i32(timeout_ms)
                .array([topic], lambda e, t: e.string(t).array(
                    [partition], lambda e2, p: e2.i32(p).bytes_(batch)))
                .build())
        d = self.call(PRODUCE, 3, body)
        topics = d.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
        (name, parts), = topics
        assert name == topic
        (p, err, base_offset, _), = parts
        assert p == partition
        return err, base_offset

    def produce_v3_many(self, topic: str, batches: dict[int, bytes], acks: int = -1,
                        timeout_ms: int = 10000) -> dict[int, tuple[int, int]]:
        """One Produce request with one batch for each of several partitions.
        Returns {partition: (error_code, base_offset)}."""
        body = (Enc().string(None).i16(acks).i32(timeout_ms)
                .array([topic], lambda e, t: e.string(t).array(
                    list(batches.items()), lambda e2, pb: e2.i32(pb[0]).bytes_(pb[1])))
                .build())
        d = self.call(PRODUCE, 3, body)
        topics = d.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
        (name, parts), = topics
        assert name == topic
        return {p: (err, base_offset) for p, err, base_offset, _ in parts}

    def fetch_v4_send(self, topic: str, partition: int, offset: int, max_wait_ms: int = 0,
                      min_bytes: int = 1, max_bytes: int = 8 << 20) -> int:
        body = (Enc().i32(-1).i32(max_wait_ms).i32(min_bytes).i32(max_bytes).i8(0)
                .array([topic], lambda e, t: e.string(t).array(
                    [partition], lambda e2, p: e2.i32(p).i64(offset).i32(max_bytes)))
                .build())
        return self.send(FETCH, 4, body)

    def fetch_v4_recv(self, corr: int) -> dict:
        got, d = self.recv()
        assert got == corr, f"correlation id {got}, expected {corr}"
        d.i32()  # throttle

        def part(y):
            p = y.i32()
            err = y.i16()
            hw = y.i64()
            lso = y.i64()
            y.array(lambda z: (z.i64(), z.i64()))
            records = y.bytes_() or b""
            return {"partition": p, "error": err, "high_watermark": hw,
                    "last_stable_offset": lso, "records": records}

        topics = d.array(lambda x: (x.string(), x.array(part)))
        (name, parts), = topics
        (p,) = parts
        return p

    def fetch_v4(self, topic: str, partition: int, offset: int, **kw) -> dict:
        return self.fetch_v4_recv(self.fetch_v4_send(topic, partition, offset, **kw))

    def fetch_v4_many(self, partitions: list[tuple[str, int, int, int]], max_bytes: int,
                      max_wait_ms: int = 0, min_bytes: int = 1) -> list[dict]:
        """One Fetch v4 for several partitions: [(topic, partition, fetch_offset,
        partition_max_bytes)], in that order (consecutive entries of one topic share its
        topic entry). Returns one dict per partition in response order, as fetch_v4 does,
        plus its "topic"."""
        grouped: list[tuple[str, list]] = []
        for topic, p, offset, pmax in partitions:
            if not grouped or grouped[-1][0] != topic:
                grouped.append((topic, []))
            grouped[-1][1].append((p, offset, pmax))
        body = (Enc().i32(-1).i32(max_wait_ms).i32(min_bytes).i32(max_bytes).i8(0)
                .array(grouped, lambda e, t: e.string(t[0]).array(
                    t[1], lambda e2, p: e2.i32(p[0]).i64(p[1]).i32(p[2])))
                .build())
        d = self.call(FETCH, 4, body)
        d.i32()  # throttle

        def part(y):
            p = y.i32()
            err = y.i16()
            hw = y.i64()
            lso = y.i64()
            y.array(lambda z: (z.i64(), z.i64()))
            records = y.bytes_() or b""
            return {"partition": p, "error": err, "high_watermark": hw,
                    "last_stable_offset": lso, "records": records}

        out = []
        for name, parts in d.array(lambda x: (x.string(), x.array(part))):
            for p in parts:
                out.append({"topic": name, **p})
        return out

    def list_offsets_v1(self, topic: str, partition: int, timestamp: int) -> tuple[int, int, int]:
        """timestamp -2 = earliest, -1 = latest. Returns (error, timestamp, offset)."""
        body = (Enc().i32(-1).array([topic], lambda e, t: e.string(t).array(
            [partition], lambda e2, p: e2.i32(p).i64(timestamp))).build())
        d = self.call(LIST_OFFSETS, 1, body)
        topics = d.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
        (_, parts), = topics
        (_, err, ts, off), = parts
        return err, ts, off

    # ------------------------------------------------------------------ configs

    def describe_configs_v1(self, resource_type: int, name: str,
                            keys: list[str] | None = None) -> tuple[int, str | None, dict]:
        """DescribeConfigs v1 for one resource. Returns (error, error message,
        {config name: (value, read_only, source, is_sensitive)})."""
        body = (Enc().array([0], lambda e, _: e.i8(resource_type).string(name)
                            .array(keys, lambda e2, k: e2.string(k)))
                .i8(0).build())
        d = self.call(DESCRIBE_CONFIGS, 1, body)
        d.i32()  # throttle

        def entry(x):
            n, v, ro, src, sens = x.string(), x.string(), x.i8(), x.i8(), x.i8()
            x.array(lambda y: (y.string(), y.string(), y.i8()))  # synonyms
            return n, (v, bool(ro), src, bool(sens))

        (err, msg, _rt, _name, configs), = d.array(
            lambda x: (x.i16(), x.string(), x.i8(), x.string(), x.array(entry)))
        return err, msg, dict(configs or [])

    def incremental_alter_configs_v0(self, resource_type: int, name: str,
                                     ops: list[tuple[str, int, str | None]],
                                     validate_only: bool = False) -> tuple[int, str | None]:
        """IncrementalAlterConfigs v0 for one resource; ops are (config name, operation
        (CONFIG_SET, CONFIG_DELETE, ...), value). Returns (error, error message)."""
        body = (Enc().array([0], lambda e, _: e.i8(resource_type).string(name).array(
                    ops, lambda e2, op: e2.string(op[0]).i8(op[1]).string(op[2])))
                .i8(1 if validate_only else 0).build())
        d = self.call(INCREMENTAL_ALTER_CONFIGS, 0, body)
        d.i32()  # throttle
        (err, msg, _rt, _name), = d.array(lambda x: (x.i16(), x.string(), x.i8(), x.string()))
        return err, msg

    # ------------------------------------------------------------------ KIP-848

    def consumer_group_heartbeat_v1(self, group: str, member_id: str, member_epoch: int,
                                    topics: list[str] | None = None, regex: str | None = None,
                                    assignor: str | None = None,
                                    owned: dict[bytes, list[int]] | None = None,
                                    instance_id: str | None = None, rebalance_timeout_ms: int = -1) -> dict:
        """ConsumerGroupHeartbeat v1. `owned`: {topic id: partitions} (None: unchanged).
        Returns {error, message, member_id, epoch, interval, assignment: {topic id:
        [partitions]} or None (unchanged)}."""
        body = (Enc().cstring(group).cstring(member_id).i32(member_epoch).cstring(instance_id)
                .cstring(None).i32(rebalance_timeout_ms)
                .carray(topics, lambda e, t: e.cstring(t)).cstring(regex).cstring(assignor)
                .carray(None if owned is None else sorted(owned.items()),
                        lambda e, tp: e.uuid(tp[0]).carray(sorted(tp[1]), lambda e2, p: e2.i32(p)).tags())
                .tags().build())
        d = self.call_flex(CONSUMER_GROUP_HEARTBEAT, 1, body)
        d.i32()  # throttle
        r = {"error": d.i16(), "message": d.cstring(), "member_id": d.cstring(), "epoch": d.i32(),
             "interval": d.i32(), "assignment": None}
        if d.i8() >= 0:
            tps = d.carray(lambda x: (x.uuid(), x.carray(Dec.i32), x.tags())[:2])
            d.tags()
            r["assignment"] = {t: sorted(ps) for t, ps in tps}
        d.tags()
        return r

    def offset_commit_v9(self, group: str, member_epoch: int, member_id: str,
                         offsets: dict[tuple[str, int], int],
                         instance_id: str | None = None) -> dict[tuple[str, int], int]:
        """OffsetCommit v9 (GenerationIdOrMemberEpoch). Returns {(topic, partition): error}."""
        by_topic: dict[str, list[tuple[int, int]]] = {}
        for (t, p), o in offsets.items():
            by_topic.setdefault(t, []).append((p, o))
        body = (Enc().cstring(group).i32(member_epoch).cstring(member_id).cstring(instance_id)
                .carray(list(by_topic.items()), lambda e, tp: e.cstring(tp[0]).carray(
                    tp[1], lambda e2, po: e2.i32(po[0]).i64(po[1]).i32(-1).cstring("").tags()).tags())
                .tags().build())
        d = self.call_flex(OFFSET_COMMIT, 9, body)
        d.i32()
        out = {}
        for name, parts in d.carray(lambda x: (x.cstring(), x.carray(lambda y: (y.i32(), y.i16(), y.tags())[:2]),
                                               x.tags())[:2]):
            for p, err in parts:
                out[(name, p)] = err
        return out

    def offset_fetch_v9(self, group: str, member_id: str | None, member_epoch: int,
                        topics: dict[str, list[int]] | None) -> tuple[int, dict]:
        """OffsetFetch v9 for one group. Returns (group error, {(topic, partition):
        (offset, error)})."""
        items = None if topics is None else list(topics.items())
        body = (Enc().carray([0], lambda e, _: e.cstring(group).cstring(member_id).i32(member_epoch)
                             .carray(items, lambda e2, tp: e2.cstring(tp[0]).carray(tp[1], lambda e3, p: e3.i32(p)).tags())
                             .tags())
                .i8(0).tags().build())
        d = self.call_flex(OFFSET_FETCH, 9, body)
        d.i32()

        def group_(x):
            gid = x.cstring()
            ts = x.carray(lambda y: (y.cstring(), y.carray(
                lambda z: (z.i32(), z.i64(), z.i32(), z.cstring(), z.i16(), z.tags())), y.tags()))
            err = x.i16()
            x.tags()
            return gid, ts, err

        (_, ts, err), = d.carray(group_)
        out = {}
        for name, parts, _ in ts or []:
            for p, o, _ep, _meta, perr, _ in parts:
                out[(name, p)] = (o, perr)
        return err, out


def wait_for(cond, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll cond() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
