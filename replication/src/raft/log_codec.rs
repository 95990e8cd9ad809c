//! Binary encoding of raft log entries and commands as stored in redb (log ids are in
//! `store::log_id`).
//!
//! Entries are written straight into redb's reserved value space (`encode_stored_entry`
//! into a `&mut [u8]`). The raft log row of an Append holds where its batches are in the
//! segment files (`store::segments`), not their bytes; decoding reads them back. There is
//! no form with the batches inline: databases of the older layout that had one are refused
//! at open (`store::db`). Between nodes, entries travel with their batches inline,
//! serialized by the transport (postcard). Record batches are opaque: no per-record work
//! happens here.
//!
//! Layout (big-endian): entry = term u64, leader node u64, kind u8, payload.
//! Kinds: 0 blank, 1 normal (a [`Command`]), 2 membership (JSON: rare and small).

use bytes::{Buf, BufMut, Bytes};

use crate::store::log_id::DecodeError;
use crate::store::segments::SegmentPos;
use crate::types::{AppendBatch, Command, Entry, LeaderId, LogId, Membership, PartitionId};
use openraft::EntryPayload;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

const CMD_CREATE: u8 = 1;
const CMD_DELETE: u8 = 2;
// 3 was an Append with its batches inline, written only by the older storage layout.
const CMD_DELETE_RECORDS: u8 = 4;
const CMD_PUT: u8 = 5;
const CMD_ALLOC_PIDS: u8 = 6;
const CMD_COMPARE_AND_PUT: u8 = 7;
/// An Append as stored in the raft log: per batch its partition, length and segment position.
const CMD_APPEND_STORED: u8 = 8;

/// Size of a partition id on the wire: topic id and index.
const PART_LEN: usize = 16 + 4;

/// A membership as JSON. Serializing one cannot fail (ids and plain structs; map keys are
/// integers, which serde_json writes as strings): a failure is a bug, not a condition.
fn membership_json(m: &Membership) -> Vec<u8> {
    serde_json::to_vec(m).expect("a membership serializes to JSON")
}

/// Size of an entry in memory and on the wire (batches inline).
pub fn entry_len(e: &Entry) -> usize {
    17 + match &e.payload {
        EntryPayload::Blank => 0,
        EntryPayload::Normal(Command::Append(v)) => {
            1 + 4
                + v.iter()
                    .map(|b| PART_LEN + 4 + b.batch.len())
                    .sum::<usize>()
        }
        EntryPayload::Normal(c) => command_len(c),
        EntryPayload::Membership(m) => membership_json(m).len(),
    }
}

/// Size of an entry's raft log row: an Append holds its batches' positions, not their bytes.
pub fn stored_len(e: &Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(c) => 17 + command_len(c),
        _ => entry_len(e),
    }
}

/// Encodes `e` as its raft log row. `at` holds where each batch of an Append entry was
/// written to the segment files, in order (ignored for other entries).
pub fn encode_stored_entry(e: &Entry, at: &[SegmentPos], mut buf: impl BufMut) {
    buf.put_u64(e.log_id.leader_id.term);
    buf.put_u64(e.log_id.leader_id.node_id);
    match &e.payload {
        EntryPayload::Blank => buf.put_u8(KIND_BLANK),
        EntryPayload::Normal(c) => {
            buf.put_u8(KIND_NORMAL);
            encode_command(c, at, &mut buf);
        }
        EntryPayload::Membership(m) => {
            buf.put_u8(KIND_MEMBERSHIP);
            buf.put_slice(&membership_json(m));
        }
    }
}

/// Reads `len` batch bytes at a segment position.
pub type ReadBatch<'a> = &'a dyn Fn(SegmentPos, usize) -> Result<Bytes, DecodeError>;

/// Decodes a raft log row, reading the batches of an Append entry with `read`.
pub fn decode_stored_entry(
    index: u64,
    mut b: Bytes,
    read: ReadBatch,
) -> Result<Entry, DecodeError> {
    let log_id = stored_log_id(index, &b)?;
    b.advance(16);
    let payload = match b.get_u8() {
        KIND_BLANK => EntryPayload::Blank,
        KIND_NORMAL => EntryPayload::Normal(decode_command(b, read)?),
        KIND_MEMBERSHIP => {
            let m: Membership =
                serde_json::from_slice(&b).map_err(|_| DecodeError("membership"))?;
            EntryPayload::Membership(m)
        }
        _ => return Err(DecodeError("entry kind")),
    };
    Ok(Entry { log_id, payload })
}

/// The log id of a raft log row, without reading anything else.
pub fn stored_log_id(index: u64, mut b: &[u8]) -> Result<LogId, DecodeError> {
    if b.len() < 17 {
        return Err(DecodeError("truncated"));
    }
    let term = b.get_u64();
    let node_id = b.get_u64();
    Ok(LogId::new(LeaderId { term, node_id }, index))
}

/// Where the batches of a raft log row's Append entry are, in order, with their lengths;
/// empty for any other entry.
pub fn stored_positions(row: &[u8]) -> Result<Vec<(SegmentPos, u32)>, DecodeError> {
    if row.len() < 18 || row[16] != KIND_NORMAL || row[17] != CMD_APPEND_STORED {
        return Ok(Vec::new());
    }
    let mut b = Bytes::copy_from_slice(&row[18..]);
    let n = get_count(&mut b, PART_LEN + 16)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        get_part(&mut b)?;
        need(&b, 16)?;
        let len = b.get_u32();
        let at = SegmentPos {
            segment: b.get_u32(),
            pos: b.get_u64(),
        };
        out.push((at, len));
    }
    Ok(out)
}

/// Size of a command as [`encode_command`] writes it (an Append with its batch positions).
fn command_len(c: &Command) -> usize {
    1 + match c {
        Command::CreatePartitions(v) | Command::DeletePartitions(v) => 4 + v.len() * PART_LEN,
        Command::Append(v) => 4 + v.len() * (PART_LEN + 4 + 12),
        Command::DeleteRecords(v) => 4 + v.len() * (PART_LEN + 8),
        Command::Put(v) => {
            4 + v
                .iter()
                .map(|(k, val)| 4 + k.len() + 1 + val.as_ref().map_or(0, |x| 4 + x.len()))
                .sum::<usize>()
        }
        Command::AllocateProducerIds(_) => 4,
        Command::CompareAndPut {
            key,
            expected,
            value,
        } => {
            let opt = |x: &Option<Bytes>| 1 + x.as_ref().map_or(0, |x| 4 + x.len());
            4 + key.len() + opt(expected) + opt(value)
        }
    }
}

fn put_opt(buf: &mut impl BufMut, x: &Option<Bytes>) {
    match x {
        None => buf.put_u8(0),
        Some(x) => {
            buf.put_u8(1);
            put_len(buf, x.len());
            buf.put_slice(x);
        }
    }
}

fn get_opt(b: &mut Bytes) -> Result<Option<Bytes>, DecodeError> {
    need(b, 1)?;
    if b.get_u8() == 0 {
        Ok(None)
    } else {
        Ok(Some(get_bytes(b)?))
    }
}

fn put_part(buf: &mut impl BufMut, p: &PartitionId) {
    buf.put_u128(p.topic_id);
    buf.put_i32(p.index);
}

fn put_len(buf: &mut impl BufMut, n: usize) {
    buf.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
}

/// Encodes a command as the raft log stores it. `at` holds where each batch of an Append
/// was written to the segment files, in order (ignored for other commands).
fn encode_command(c: &Command, at: &[SegmentPos], buf: &mut impl BufMut) {
    match c {
        Command::CreatePartitions(v) | Command::DeletePartitions(v) => {
            let tag = if matches!(c, Command::CreatePartitions(_)) {
                CMD_CREATE
            } else {
                CMD_DELETE
            };
            buf.put_u8(tag);
            put_len(buf, v.len());
            v.iter().for_each(|p| put_part(buf, p));
        }
        Command::Append(v) => {
            buf.put_u8(CMD_APPEND_STORED);
            put_len(buf, v.len());
            for (b, at) in v.iter().zip(at) {
                put_part(buf, &b.partition);
                put_len(buf, b.batch.len());
                buf.put_u32(at.segment);
                buf.put_u64(at.pos);
            }
        }
        Command::DeleteRecords(v) => {
            buf.put_u8(CMD_DELETE_RECORDS);
            put_len(buf, v.len());
            for (p, o) in v {
                put_part(buf, p);
                buf.put_i64(*o);
            }
        }
        Command::Put(v) => {
            buf.put_u8(CMD_PUT);
            put_len(buf, v.len());
            for (k, val) in v {
                put_len(buf, k.len());
                buf.put_slice(k);
                put_opt(buf, val);
            }
        }
        Command::CompareAndPut {
            key,
            expected,
            value,
        } => {
            buf.put_u8(CMD_COMPARE_AND_PUT);
            put_len(buf, key.len());
            buf.put_slice(key);
            put_opt(buf, expected);
            put_opt(buf, value);
        }
        Command::AllocateProducerIds(n) => {
            buf.put_u8(CMD_ALLOC_PIDS);
            buf.put_u32(*n);
        }
    }
}

fn need(b: &Bytes, n: usize) -> Result<(), DecodeError> {
    if b.remaining() < n {
        Err(DecodeError("truncated"))
    } else {
        Ok(())
    }
}

fn get_part(b: &mut Bytes) -> Result<PartitionId, DecodeError> {
    need(b, PART_LEN)?;
    Ok(PartitionId {
        topic_id: b.get_u128(),
        index: b.get_i32(),
    })
}

fn get_bytes(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    need(b, n)?;
    Ok(b.split_to(n))
}

/// Reads a count and checks that at least `min_item` bytes per item remain, so a corrupt
/// count cannot make us reserve a huge vector.
fn get_count(b: &mut Bytes, min_item: usize) -> Result<usize, DecodeError> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    if n.saturating_mul(min_item) > b.remaining() {
        return Err(DecodeError("count"));
    }
    Ok(n)
}

/// Decodes a command as the raft log stores it; `read` resolves the batch positions of an
/// Append.
fn decode_command(mut b: Bytes, read: ReadBatch) -> Result<Command, DecodeError> {
    need(&b, 1)?;
    let cmd = match b.get_u8() {
        tag @ (CMD_CREATE | CMD_DELETE) => {
            let n = get_count(&mut b, PART_LEN)?;
            let v = (0..n)
                .map(|_| get_part(&mut b))
                .collect::<Result<Vec<_>, _>>()?;
            if tag == CMD_CREATE {
                Command::CreatePartitions(v)
            } else {
                Command::DeletePartitions(v)
            }
        }
        CMD_APPEND_STORED => {
            let n = get_count(&mut b, PART_LEN + 16)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let partition = get_part(&mut b)?;
                need(&b, 16)?;
                let len = b.get_u32() as usize;
                let at = SegmentPos {
                    segment: b.get_u32(),
                    pos: b.get_u64(),
                };
                v.push(AppendBatch {
                    partition,
                    batch: read(at, len)?,
                });
            }
            Command::Append(v)
        }
        CMD_DELETE_RECORDS => {
            let n = get_count(&mut b, PART_LEN + 8)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let p = get_part(&mut b)?;
                need(&b, 8)?;
                v.push((p, b.get_i64()));
            }
            Command::DeleteRecords(v)
        }
        CMD_PUT => {
            let n = get_count(&mut b, 5)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let k = get_bytes(&mut b)?;
                v.push((k, get_opt(&mut b)?));
            }
            Command::Put(v)
        }
        CMD_ALLOC_PIDS => {
            need(&b, 4)?;
            Command::AllocateProducerIds(b.get_u32())
        }
        CMD_COMPARE_AND_PUT => Command::CompareAndPut {
            key: get_bytes(&mut b)?,
            expected: get_opt(&mut b)?,
            value: get_opt(&mut b)?,
        },
        _ => return Err(DecodeError("command tag")),
    };
    if b.has_remaining() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::log_id::{decode_log_id, encode_log_id};

    fn p(i: i32) -> PartitionId {
        PartitionId {
            topic_id: 0xdead_beef_u128 << 64 | 7,
            index: i,
        }
    }

    /// Commands other than Append (whose round trip through its batch positions is
    /// `stored_appends_hold_positions_and_read_their_batches_back`).
    #[test]
    fn commands_round_trip() {
        let no_read: ReadBatch = &|_, _| Err(DecodeError("no batches here"));
        let cmds = vec![
            Command::CreatePartitions(vec![p(0), p(1)]),
            Command::DeletePartitions(vec![p(2)]),
            Command::DeleteRecords(vec![(p(0), -1), (p(1), 42)]),
            Command::Put(vec![
                (Bytes::from_static(b"k"), Some(Bytes::from_static(b"v"))),
                (Bytes::from_static(b"gone"), None),
            ]),
            Command::AllocateProducerIds(17),
            Command::CompareAndPut {
                key: Bytes::from_static(b"topic/a"),
                expected: None,
                value: Some(Bytes::from_static(b"{}")),
            },
            Command::CompareAndPut {
                key: Bytes::from_static(b"topic/a"),
                expected: Some(Bytes::from_static(b"{}")),
                value: None,
            },
        ];
        for c in cmds {
            let mut buf = Vec::new();
            encode_command(&c, &[], &mut buf);
            assert_eq!(buf.len(), command_len(&c));
            let back = decode_command(Bytes::from(buf), no_read).unwrap();
            assert_eq!(format!("{c:?}"), format!("{back:?}"));
        }
    }

    #[test]
    fn entries_round_trip_through_reserved_space() {
        let log_id = LogId::new(
            LeaderId {
                term: 3,
                node_id: 1,
            },
            99,
        );
        let e = Entry {
            log_id,
            payload: EntryPayload::Normal(Command::AllocateProducerIds(5)),
        };
        let no_read: ReadBatch = &|_, _| Err(DecodeError("no batches here"));
        let mut space = vec![0u8; stored_len(&e)];
        encode_stored_entry(&e, &[], &mut space[..]);
        let back = decode_stored_entry(99, Bytes::from(space), no_read).unwrap();
        assert_eq!(back.log_id, log_id);
        assert!(matches!(
            back.payload,
            EntryPayload::Normal(Command::AllocateProducerIds(5))
        ));
        // A corrupt count is an error, not a huge allocation; tag 3 (the older layout's
        // inline Append) is not a command any more.
        for tag in [CMD_APPEND_STORED, CMD_CREATE, CMD_PUT, 3] {
            let row = Bytes::copy_from_slice(&[tag, 0xff, 0xff, 0xff, 0xff]);
            assert!(decode_command(row, no_read).is_err());
        }
        assert_eq!(decode_log_id(&encode_log_id(&log_id)).unwrap(), log_id);
    }

    #[test]
    fn stored_appends_hold_positions_and_read_their_batches_back() {
        let batches = vec![
            AppendBatch {
                partition: p(0),
                batch: Bytes::from_static(b"first batch"),
            },
            AppendBatch {
                partition: p(3),
                batch: Bytes::from(vec![7u8; 5000]),
            },
        ];
        let at = [
            SegmentPos { segment: 1, pos: 0 },
            SegmentPos {
                segment: 2,
                pos: 4096,
            },
        ];
        let e = Entry {
            log_id: LogId::new(
                LeaderId {
                    term: 2,
                    node_id: 3,
                },
                7,
            ),
            payload: EntryPayload::Normal(Command::Append(batches.clone())),
        };
        let mut row = vec![0u8; stored_len(&e)];
        encode_stored_entry(&e, &at, &mut row[..]);
        assert!(row.len() < 100, "the row holds positions, not bytes");
        assert_eq!(
            stored_positions(&row).unwrap(),
            vec![(at[0], 11), (at[1], 5000)]
        );
        let read: ReadBatch = &|pos, len| {
            let i = at
                .iter()
                .position(|a| *a == pos)
                .ok_or(DecodeError("pos"))?;
            assert_eq!(batches[i].batch.len(), len);
            Ok(batches[i].batch.clone())
        };
        let back = decode_stored_entry(7, Bytes::from(row.clone()), read).unwrap();
        assert_eq!(back.log_id, e.log_id);
        assert_eq!(format!("{:?}", back.payload), format!("{:?}", e.payload));
        // A truncated row is an error, not a panic.
        for cut in 0..row.len() {
            let _ = stored_positions(&row[..cut]);
            let _ = decode_stored_entry(7, Bytes::copy_from_slice(&row[..cut]), read);
        }
    }
}
