//! The chained checksum of what a group was given (PhxQueue chains the CRCs of the cursors
//! it delivers). A link is one record batch: its first and last offset and the batch's own
//! CRC-32C (which covers every record in it, not the base offset). The chain is CRC-32C over
//! the links in offset order, each appended to the running value:
//!
//! `chain' = crc32c_append(chain, base_offset (8 bytes BE) ++ last_offset (8) ++ crc (4))`
//!
//! starting from [`SEED`]. The same fold over the log's batches (excluding the ranges the
//! audit recorded as skipped) gives the same value exactly when the group was given the
//! log's batches, byte for byte, at the log's offsets: `phxq group audit` checks that.

use phxq_protocol::batch::BatchHeader;
use serde::{Deserialize, Serialize};

pub const SEED: u32 = 0;

/// One record batch as the chain sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub base: i64,
    pub last: i64,
    pub crc: u32,
}

impl Link {
    /// Whether the batch lies entirely inside `[from, to)`.
    pub fn inside(&self, from: i64, to: i64) -> bool {
        self.base >= from && self.last < to
    }
}

pub fn extend(chain: u32, link: &Link) -> u32 {
    let mut buf = [0u8; 20];
    buf[..8].copy_from_slice(&link.base.to_be_bytes());
    buf[8..16].copy_from_slice(&link.last.to_be_bytes());
    buf[16..].copy_from_slice(&link.crc.to_be_bytes());
    crc32c::crc32c_append(chain, &buf)
}

/// The links of the whole batches in a `records` field as a Fetch returns it (base offsets
/// already in place); a trailing partial batch is not one.
pub fn links(mut records: &[u8]) -> Vec<Link> {
    let mut out = Vec::new();
    while let Ok(h) = BatchHeader::parse(records) {
        let len = h.total_len();
        if len == 0 || len > records.len() {
            break;
        }
        out.push(Link {
            base: h.base_offset,
            last: h.last_offset(),
            crc: h.crc,
        });
        records = &records[len..];
    }
    out
}

/// The chain over the links of the log whose last offset lies in `[from, to)`, in order,
/// leaving out those entirely inside one of `skipped`: what an auditor computes.
pub fn over_log(
    mut chain: u32,
    log: impl IntoIterator<Item = Link>,
    from: i64,
    to: i64,
    skipped: &[(i64, i64)],
) -> u32 {
    for l in log {
        if l.last >= from && l.last < to && !skipped.iter().any(|&(a, b)| l.inside(a, b)) {
            chain = extend(chain, &l);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(base: i64, last: i64, crc: u32) -> Link {
        Link { base, last, crc }
    }

    #[test]
    fn the_chain_depends_on_order_offsets_and_bytes() {
        let a = extend(extend(SEED, &l(0, 9, 1)), &l(10, 19, 2));
        let b = extend(extend(SEED, &l(10, 19, 2)), &l(0, 9, 1));
        assert_ne!(a, b);
        assert_ne!(a, extend(extend(SEED, &l(0, 9, 1)), &l(10, 19, 3)));
        assert_ne!(a, extend(extend(SEED, &l(0, 9, 1)), &l(11, 19, 2)));
        // Extending in two steps is extending once over both.
        let mid = over_log(SEED, [l(0, 9, 1)], 0, 10, &[]);
        assert_eq!(over_log(mid, [l(10, 19, 2)], 10, 20, &[]), a);
    }

    #[test]
    fn skipped_batches_are_left_out_but_straddling_ones_are_kept() {
        let log = [l(0, 9, 1), l(10, 19, 2), l(20, 29, 3)];
        let want = extend(extend(SEED, &l(0, 9, 1)), &l(20, 29, 3));
        assert_eq!(over_log(SEED, log, 0, 30, &[(10, 20)]), want);
        let all = over_log(SEED, log, 0, 30, &[]);
        assert_eq!(over_log(SEED, log, 0, 30, &[(12, 25)]), all);
        // Only batches whose last offset is below `to` are in.
        assert_eq!(
            over_log(SEED, log, 0, 29, &[]),
            over_log(SEED, log, 0, 20, &[])
        );
    }
}
