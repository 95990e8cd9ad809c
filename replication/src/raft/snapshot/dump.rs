//! The byte format of a group's full snapshot: a dump of the group's rows, written by the
//! leader from one redb read transaction and installed by a follower in one write
//! transaction.
//!
//! Layout (integers big-endian): a header (`MAGIC`, group `u32`, applied log id flag `u8` and
//! the 24-byte log id when set), then rows, each a tag byte and its fields, then an end row
//! carrying the number of rows before it. Rows come in this order: every partition of the
//! group (`PARTITIONS`), then per partition its `BATCHES`, `TIME_INDEX`, `PRODUCERS`, `TXNS` and `EPOCHS` rows,
//! then the group's `KV` rows, then its `GROUP_META` rows `META_NEXT_PID`, `META_APPLIED`,
//! `META_MEMBERSHIP`. The applied log id in the header is the state the dump reflects; it is
//! at or after the snapshot meta openraft sends along (see `snapshot::transfer`).
//!
//! Batch rows carry the batch's bytes (base offset patched in), read from the segment files;
//! the install writes them to the follower's segment files.
//!
//! A dump received from the network is validated completely (`validate`) before the install
//! transaction starts, so that a bad dump never fails the writer's transaction.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use phxq_protocol::batch::BatchHeader;
use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc;

use crate::partition::read::read_batches;
use crate::store::log_id::{decode_log_id, encode_log_id};
use crate::store::schema::*;
use crate::store::segments::Segments;
use crate::types::{LogId, StoredMembership};

const MAGIC: &[u8; 8] = b"PHXQSNP1";

const T_PARTITION: u8 = 1;
const T_BATCH: u8 = 2;
const T_TIME: u8 = 3;
const T_PRODUCER: u8 = 4;
const T_KV: u8 = 5;
const T_META: u8 = 6;
const T_TXN: u8 = 7;
const T_EPOCH: u8 = 8;
const T_END: u8 = 0xff;

/// The `GROUP_META` keys a dump carries.
pub(crate) const DUMPED_META: [u8; 3] = [META_NEXT_PID, META_APPLIED, META_MEMBERSHIP];

/// One row of a dump; `V` is `&[u8]` when writing and `Vec<u8>` when reading.
#[derive(Debug)]
pub(crate) enum Row<V> {
    Partition {
        topic: u128,
        index: i32,
        value: V,
    },
    Batch {
        topic: u128,
        index: i32,
        base: i64,
        value: V,
    },
    Time {
        topic: u128,
        index: i32,
        ts: i64,
        base: i64,
    },
    Producer {
        topic: u128,
        index: i32,
        pid: i64,
        value: V,
    },
    Txn {
        topic: u128,
        index: i32,
        offset: i64,
        value: V,
    },
    Epoch {
        topic: u128,
        index: i32,
        epoch: i32,
        start: i64,
    },
    Kv {
        key: V,
        value: V,
    },
    Meta {
        key: u8,
        value: V,
    },
    End {
        rows: u64,
    },
}

fn put_value(buf: &mut BytesMut, v: &[u8]) {
    buf.put_u32(v.len() as u32);
    buf.put_slice(v);
}

fn encode_row<V: AsRef<[u8]>>(row: &Row<V>, buf: &mut BytesMut) {
    match row {
        Row::Partition {
            topic,
            index,
            value,
        } => {
            buf.put_u8(T_PARTITION);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            put_value(buf, value.as_ref());
        }
        Row::Batch {
            topic,
            index,
            base,
            value,
        } => {
            buf.put_u8(T_BATCH);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            buf.put_i64(*base);
            put_value(buf, value.as_ref());
        }
        Row::Time {
            topic,
            index,
            ts,
            base,
        } => {
            buf.put_u8(T_TIME);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            buf.put_i64(*ts);
            buf.put_i64(*base);
        }
        Row::Producer {
            topic,
            index,
            pid,
            value,
        } => {
            buf.put_u8(T_PRODUCER);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            buf.put_i64(*pid);
            put_value(buf, value.as_ref());
        }
        Row::Txn {
            topic,
            index,
            offset,
            value,
        } => {
            buf.put_u8(T_TXN);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            buf.put_i64(*offset);
            put_value(buf, value.as_ref());
        }
        Row::Epoch {
            topic,
            index,
            epoch,
            start,
        } => {
            buf.put_u8(T_EPOCH);
            buf.put_u128(*topic);
            buf.put_i32(*index);
            buf.put_i32(*epoch);
            buf.put_i64(*start);
        }
        Row::Kv { key, value } => {
            buf.put_u8(T_KV);
            put_value(buf, key.as_ref());
            put_value(buf, value.as_ref());
        }
        Row::Meta { key, value } => {
            buf.put_u8(T_META);
            buf.put_u8(*key);
            put_value(buf, value.as_ref());
        }
        Row::End { rows } => {
            buf.put_u8(T_END);
            buf.put_u64(*rows);
        }
    }
}

/// Cuts the encoded dump into chunks of exactly `chunk` bytes (the last one shorter) and
/// hands them to the sender. Fails once the receiving side is gone (transfer cancelled).
struct ChunkSink<'a> {
    buf: BytesMut,
    chunk: usize,
    rows: u64,
    tx: &'a mpsc::Sender<io::Result<Bytes>>,
}

impl ChunkSink<'_> {
    fn push(&mut self, row: Row<&[u8]>) -> io::Result<()> {
        encode_row(&row, &mut self.buf);
        self.rows += 1;
        self.flush(self.chunk)
    }

    /// Sends whole chunks while at least `min` bytes are buffered.
    fn flush(&mut self, min: usize) -> io::Result<()> {
        while !self.buf.is_empty() && self.buf.len() >= min {
            let n = self.buf.len().min(self.chunk);
            let c = self.buf.split_to(n).freeze();
            self.tx
                .blocking_send(Ok(c))
                .map_err(|_| io::Error::other("snapshot transfer cancelled"))?;
        }
        Ok(())
    }
}

pub(crate) fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Dumps `group` from one read transaction into `tx` as chunks of `chunk` bytes. Blocking:
/// run it on a blocking thread. Memory stays at about two chunks plus one partition list.
pub fn dump_group(
    db: &Database,
    segments: &Segments,
    group: u32,
    chunk: usize,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let txn = db.begin_read().map_err(other)?;
    let meta = txn.open_table(GROUP_META).map_err(other)?;
    let applied = match meta.get((group, META_APPLIED)).map_err(other)? {
        Some(v) => Some(decode_log_id(v.value()).map_err(other)?),
        None => None,
    };
    let mut sink = ChunkSink {
        buf: BytesMut::with_capacity(chunk + (64 << 10)),
        chunk,
        rows: 0,
        tx,
    };
    sink.buf.put_slice(MAGIC);
    sink.buf.put_u32(group);
    match &applied {
        Some(id) => {
            sink.buf.put_u8(1);
            sink.buf.put_slice(&encode_log_id(id));
        }
        None => sink.buf.put_u8(0),
    }
    let parts = txn.open_table(PARTITIONS).map_err(other)?;
    let mut list = Vec::new();
    for item in parts
        .range((group, 0u128, i32::MIN)..=(group, u128::MAX, i32::MAX))
        .map_err(other)?
    {
        let (k, v) = item.map_err(other)?;
        let (_, topic, index) = k.value();
        sink.push(Row::Partition {
            topic,
            index,
            value: v.value(),
        })?;
        list.push((topic, index));
    }
    let batches = txn.open_table(BATCHES).map_err(other)?;
    let time = txn.open_table(TIME_INDEX).map_err(other)?;
    let producers = txn.open_table(PRODUCERS).map_err(other)?;
    let txns = txn.open_table(TXNS).map_err(other)?;
    let epochs = txn.open_table(EPOCHS).map_err(other)?;
    for (topic, index) in list {
        let range = (topic, index, i64::MIN)..=(topic, index, i64::MAX);
        let mut bytes = BytesMut::new();
        for item in batches.range(range.clone()).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            let base = k.value().2;
            let loc = BatchLoc::decode(v.value()).ok_or_else(|| other("batch location"))?;
            bytes.clear();
            read_batches(segments, &[(base, loc)], &mut bytes)?;
            sink.push(Row::Batch {
                topic,
                index,
                base,
                value: &bytes,
            })?;
        }
        for item in time.range(range.clone()).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            sink.push(Row::Time {
                topic,
                index,
                ts: k.value().2,
                base: v.value(),
            })?;
        }
        for item in producers.range(range.clone()).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            sink.push(Row::Producer {
                topic,
                index,
                pid: k.value().2,
                value: v.value(),
            })?;
        }
        for item in txns.range(range).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            sink.push(Row::Txn {
                topic,
                index,
                offset: k.value().2,
                value: v.value(),
            })?;
        }
        for item in epochs
            .range((topic, index, i32::MIN)..=(topic, index, i32::MAX))
            .map_err(other)?
        {
            let (k, v) = item.map_err(other)?;
            sink.push(Row::Epoch {
                topic,
                index,
                epoch: k.value().2,
                start: v.value(),
            })?;
        }
    }
    let kv = txn.open_table(KV).map_err(other)?;
    for item in kv.range((group, &[][..])..).map_err(other)? {
        let (k, v) = item.map_err(other)?;
        let (g, key) = k.value();
        if g != group {
            break;
        }
        sink.push(Row::Kv {
            key,
            value: v.value(),
        })?;
    }
    for key in DUMPED_META {
        if let Some(v) = meta.get((group, key)).map_err(other)? {
            sink.push(Row::Meta {
                key,
                value: v.value(),
            })?;
        }
    }
    let rows = sink.rows;
    encode_row::<&[u8]>(&Row::End { rows }, &mut sink.buf);
    sink.flush(1)
}

/// Reads a dump; every length is checked against the bytes left in the file.
pub(crate) struct DumpReader<R> {
    r: R,
    left: u64,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: Read> DumpReader<R> {
    fn bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        if self.left < N as u64 {
            return Err(bad("dump truncated"));
        }
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.left -= N as u64;
        Ok(b)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_be_bytes(self.bytes()?))
    }
    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_be_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_be_bytes(self.bytes()?))
    }
    fn u128(&mut self) -> io::Result<u128> {
        Ok(u128::from_be_bytes(self.bytes()?))
    }

    fn value(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as u64;
        if n > self.left {
            return Err(bad("dump value runs past the end"));
        }
        let mut v = vec![0u8; n as usize];
        self.r.read_exact(&mut v)?;
        self.left -= n;
        Ok(v)
    }

    /// The header: group and applied log id.
    pub(crate) fn header(&mut self) -> io::Result<(u32, Option<LogId>)> {
        if &self.bytes::<8>()? != MAGIC {
            return Err(bad("not a phxq snapshot dump"));
        }
        let group = self.u32()?;
        let applied = match self.u8()? {
            0 => None,
            1 => Some(decode_log_id(&self.bytes::<24>()?).map_err(|e| bad(e.to_string()))?),
            _ => return Err(bad("bad header")),
        };
        Ok((group, applied))
    }

    pub(crate) fn row(&mut self) -> io::Result<Row<Vec<u8>>> {
        Ok(match self.u8()? {
            T_PARTITION => Row::Partition {
                topic: self.u128()?,
                index: self.i32()?,
                value: self.value()?,
            },
            T_BATCH => Row::Batch {
                topic: self.u128()?,
                index: self.i32()?,
                base: self.i64()?,
                value: self.value()?,
            },
            T_TIME => Row::Time {
                topic: self.u128()?,
                index: self.i32()?,
                ts: self.i64()?,
                base: self.i64()?,
            },
            T_PRODUCER => Row::Producer {
                topic: self.u128()?,
                index: self.i32()?,
                pid: self.i64()?,
                value: self.value()?,
            },
            T_TXN => Row::Txn {
                topic: self.u128()?,
                index: self.i32()?,
                offset: self.i64()?,
                value: self.value()?,
            },
            T_EPOCH => Row::Epoch {
                topic: self.u128()?,
                index: self.i32()?,
                epoch: self.i32()?,
                start: self.i64()?,
            },
            T_KV => Row::Kv {
                key: self.value()?,
                value: self.value()?,
            },
            T_META => Row::Meta {
                key: self.u8()?,
                value: self.value()?,
            },
            T_END => Row::End { rows: self.u64()? },
            t => return Err(bad(format!("unknown row tag {t}"))),
        })
    }
}

pub(crate) fn open_dump(path: &Path) -> io::Result<DumpReader<BufReader<std::fs::File>>> {
    let f = std::fs::File::open(path)?;
    let left = f.metadata()?.len();
    Ok(DumpReader {
        r: BufReader::with_capacity(1 << 20, f),
        left,
    })
}

/// What a validated dump holds.
#[derive(Debug, Clone, Copy)]
pub struct DumpInfo {
    pub group: u32,
    /// The applied log id of the state in the dump.
    pub applied: Option<LogId>,
    pub rows: u64,
}

/// Reads a whole dump and checks that it is complete and that every row is one the install
/// can write and the state machine can read back.
pub fn validate(path: &Path) -> io::Result<DumpInfo> {
    let mut r = open_dump(path)?;
    let (group, applied) = r.header()?;
    let mut parts: HashSet<(u128, i32)> = HashSet::new();
    let mut data_started = false;
    let mut rows = 0u64;
    loop {
        let row = r.row()?;
        let known = |t: &u128, i: &i32| parts.contains(&(*t, *i));
        match &row {
            Row::Partition {
                topic,
                index,
                value,
            } => {
                if data_started || PartMeta::decode(value).is_none() {
                    return Err(bad("bad partition row"));
                }
                parts.insert((*topic, *index));
            }
            Row::Batch {
                topic,
                index,
                base,
                value,
            } => {
                let ok = BatchHeader::parse(value)
                    .is_ok_and(|h| h.total_len() == value.len() && h.base_offset == *base);
                if !known(topic, index) || !ok {
                    return Err(bad("bad batch row"));
                }
            }
            Row::Time { topic, index, .. } => {
                if !known(topic, index) {
                    return Err(bad("bad time index row"));
                }
            }
            Row::Producer {
                topic,
                index,
                value,
                ..
            } => {
                if !known(topic, index) || ProducerState::decode(value).is_none() {
                    return Err(bad("bad producer row"));
                }
            }
            Row::Txn {
                topic,
                index,
                value,
                ..
            } => {
                if !known(topic, index) || TxnRow::decode(value).is_none() {
                    return Err(bad("bad transaction row"));
                }
            }
            Row::Epoch { topic, index, .. } => {
                if !known(topic, index) {
                    return Err(bad("bad leader epoch row"));
                }
            }
            Row::Kv { .. } => {}
            Row::Meta { key, value } => {
                let ok = match *key {
                    META_NEXT_PID => value.len() == 8,
                    META_APPLIED => decode_log_id(value).ok() == applied && applied.is_some(),
                    META_MEMBERSHIP => serde_json::from_slice::<StoredMembership>(value).is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(bad(format!("bad meta row {key}")));
                }
            }
            Row::End { rows: n } => {
                if *n != rows || r.left != 0 {
                    return Err(bad("dump incomplete or with trailing bytes"));
                }
                return Ok(DumpInfo {
                    group,
                    applied,
                    rows,
                });
            }
        }
        if !matches!(row, Row::Partition { .. }) {
            data_started = true;
        }
        rows += 1;
    }
}
