//! `record-batch`: the checks the Produce path makes on a partition's records and the
//! readers of batches the log holds. The bytes are a Produce request's `records` field
//! (one or more batches):
//!
//! - [`batch::split`] (header, declared length, record count, CRC of every batch: what
//!   Produce refuses with CORRUPT_MESSAGE) and [`batch::count_records`] (metrics, quotas);
//! - on each batch that passes: [`records::keyless_records`] (the key check of a compacted
//!   topic, through the capped [`decompress`]), [`records::plain_records`] with
//!   [`records::parse_records`] and [`records::parse_record_fields`] (the log cleaner, the
//!   console's message browser, the share groups' dead letter queue),
//!   [`control::control_type`] (transaction markers), and kafka-protocol's
//!   `RecordBatchDecoder` with the capped decompression (ListOffsets by timestamp).
//!
//! Seeds: batches of records with and without keys, values and headers, encoded by
//! kafka-protocol with each codec (none, gzip, snappy, lz4, zstd), snappy also in the xerial
//! framing Java clients write, transactional batches, transaction markers, and runs of
//! several batches. Mutants get their CRC recomputed most of the time (else nearly all
//! stop at the CRC check); compressed batches are also mutated decompressed and compressed
//! again, so the record parsers see compressed batches' records too.

use bytes::{Bytes, BytesMut};
use fastrand::Rng;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use phxq_protocol::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use phxq_protocol::control;
use phxq_protocol::decompress::decompress;
use phxq_protocol::records;

use super::{stage, Target, CODEC};
use crate::mutate::Mutator;

/// The decompression cap given to every reader here. The broker's are larger (64 MiB for
/// the Produce key check); the code is the same, and a small cap makes mutants reach the
/// "too large" refusal often.
pub const CAP: usize = 1 << 20;
/// First byte covered by a batch's CRC.
const CRC_START: usize = 21;

pub struct RecordBatch;

fn record(rng: &mut Rng, offset: i64, transactional: bool) -> Record {
    let bytes = |rng: &mut Rng, max: usize| -> Option<Bytes> {
        (rng.u32(0..5) > 0).then(|| {
            let n = rng.usize(0..=max);
            Bytes::from((0..n).map(|_| rng.u8(b' '..=b'~')).collect::<Vec<u8>>())
        })
    };
    let mut r = Record {
        transactional,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: if transactional { 4242 } else { -1 },
        producer_epoch: if transactional { 1 } else { -1 },
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: if transactional { offset as i32 } else { -1 },
        timestamp: 1_700_000_000_000 + offset * rng.i64(0..1000),
        key: bytes(rng, 16),
        value: bytes(rng, 200),
        headers: Default::default(),
    };
    for i in 0..rng.usize(0..3) {
        let key = format!("h{i}").into();
        r.headers.insert(key, bytes(rng, 8));
    }
    r
}

/// Valid batches: every codec, with and without keys, values and headers.
pub fn valid_batches(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for n in [1usize, 2, 5, 20] {
            let transactional = rng.u32(0..4) == 0;
            let records: Vec<Record> = (0..n as i64)
                .map(|o| record(rng, o, transactional))
                .collect();
            let mut buf = BytesMut::new();
            let opts = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("a batch encodes");
            out.push(buf.to_vec());
        }
    }
    // Snappy in the xerial framing (Java clients): the same records, written again by the
    // log cleaner's rebuild, which uses it.
    let snappy: Vec<Vec<u8>> = out
        .iter()
        .filter(|b| BatchHeader::parse(b).map(|h| h.compression()) == Ok(2))
        .cloned()
        .collect();
    for b in snappy {
        let (h, plain) = records::plain_records(&b, CAP).expect("a seed decompresses");
        let refs = records::parse_records(&plain, h.records_count).expect("a seed parses");
        let kept: Vec<&records::RecordRef> = refs.iter().collect();
        out.push(records::rebuild(&b, &plain, &kept).expect("a seed rebuilds"));
    }
    for kind in [control::ControlType::Commit, control::ControlType::Abort] {
        out.push(control::marker_batch(4242, 1, kind, 3, 1_700_000_000_000).to_vec());
    }
    out
}

/// Recomputes the CRC of every whole batch, sometimes after making the declared length
/// match the bytes and the last offset delta match the record count.
fn repair(data: &mut [u8], rng: &mut Rng) {
    let mut pos = 0;
    while data.len() - pos >= HEADER_LEN {
        let b = &mut data[pos..];
        if rng.u32(0..5) == 0 {
            let len = (b.len() - LOG_OVERHEAD) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
        }
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap());
        let total = LOG_OVERHEAD.saturating_add(len.max(0) as usize);
        if total < HEADER_LEN || total > b.len() {
            return;
        }
        if rng.u32(0..4) == 0 {
            let count = i32::from_be_bytes(b[57..61].try_into().unwrap());
            b[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
        }
        if rng.u32(0..10) < 9 {
            let crc = crc32c::crc32c(&b[CRC_START..total]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        pos += total;
    }
}

impl Target for RecordBatch {
    fn name(&self) -> &'static str {
        "record-batch"
    }

    fn seeds(&self, rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut seeds = valid_batches(rng);
        // Runs of batches, as a partition's records in one Produce.
        for _ in 0..8 {
            let mut run = Vec::new();
            for _ in 0..rng.usize(2..=3) {
                run.extend_from_slice(&seeds[rng.usize(0..seeds.len())]);
            }
            seeds.push(run);
        }
        seeds
    }

    fn fixup(&self, data: &mut Vec<u8>, rng: &mut Rng) {
        repair(data, rng);
    }

    fn mutate_structured(&self, data: &mut Vec<u8>, m: &mut Mutator, pool: &[Vec<u8>]) -> bool {
        // A compressed batch's records, mutated decompressed and compressed again.
        let Ok(h) = BatchHeader::parse(data) else {
            return false;
        };
        if h.compression() == 0 || m.rng.bool() {
            return false;
        }
        let Ok((_, plain)) = records::plain_records(data, CAP) else {
            return false;
        };
        let mut plain = plain.to_vec();
        m.mutate(&mut plain, pool);
        let Ok(packed) = records::compress(h.compression(), &plain) else {
            return false;
        };
        data.truncate(HEADER_LEN);
        data.extend_from_slice(&packed);
        let len = (data.len() - LOG_OVERHEAD) as i32;
        data[8..12].copy_from_slice(&len.to_be_bytes());
        if m.rng.u32(0..4) == 0 {
            // A record count that disagrees with the records.
            let count = [0i32, 1, 2, 1000, i32::MAX, -1][m.rng.usize(0..6)];
            data[57..61].copy_from_slice(&count.to_be_bytes());
            data[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
        }
        let crc = crc32c::crc32c(&data[CRC_START..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        true
    }

    fn exec(&self, input: &[u8]) -> Result<bool, String> {
        let n = input.len();
        let split = stage("batch::split", n, 0, || batch::split(input))?;
        stage("batch::count_records", n, 0, || batch::count_records(input))?;
        let Ok(batches) = split else {
            return Ok(false);
        };
        for (range, h) in batches {
            let b = &input[range];
            // Decompressing may take the cap (and the codec's buffers; uncompressed records
            // are a copy); what the records decode to is bounded by the decompressed
            // bytes, counted as input.
            let codec = if h.compression() == 0 { 0 } else { CAP + CODEC };
            let plain = stage("records::plain_records", b.len(), codec, || {
                records::plain_records(b, CAP)
            })?;
            let plain_len = match &plain {
                Ok((h, plain)) => {
                    let _ = stage("records::parse_records", plain.len(), 0, || {
                        records::parse_records(plain, h.records_count)
                    })?;
                    let _ = stage("records::parse_record_fields", plain.len(), 0, || {
                        records::parse_record_fields(plain, h.records_count)
                    })?;
                    plain.len()
                }
                Err(_) => CAP,
            };
            let _ = stage(
                "records::keyless_records",
                b.len() + plain_len,
                codec,
                || records::keyless_records(b, CAP),
            )?;
            stage("control::control_type", b.len(), (1 << 16) + CODEC, || {
                control::control_type(b)
            })?;
            let _ = stage(
                "RecordBatchDecoder (capped)",
                b.len() + plain_len,
                codec,
                || {
                    let mut buf = Bytes::copy_from_slice(b);
                    RecordBatchDecoder::decode_with_custom_compression(
                        &mut buf,
                        Some(|r: &mut Bytes, c: Compression| {
                            decompress(c as i16, r, CAP).map_err(anyhow::Error::from)
                        }),
                    )
                    .map(|set| set.records.len())
                },
            )?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_batches_of_every_codec() {
        let seeds = RecordBatch.seeds(&mut Rng::with_seed(3));
        let mut codecs = std::collections::BTreeSet::new();
        for s in &seeds {
            let parts = batch::split(s).unwrap();
            for (r, h) in parts {
                codecs.insert(h.compression());
                let (h, plain) = records::plain_records(&s[r], CAP).unwrap();
                records::parse_record_fields(&plain, h.records_count).unwrap();
            }
        }
        assert_eq!(codecs.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn repaired_mutants_pass_the_crc_check() {
        let mut rng = Rng::with_seed(5);
        let mut b = valid_batches(&mut rng).remove(0);
        let last = b.len() - 1;
        b[last] ^= 0x55;
        assert!(batch::split(&b).is_err());
        // Repair recomputes the CRC 9 times in 10.
        let fixed = (0..20).any(|_| {
            let mut c = b.clone();
            repair(&mut c, &mut rng);
            batch::validate(&c).is_ok()
        });
        assert!(fixed);
    }
}
