//! Byte-level mutations of an input, havoc style: each call stacks 1 to 8 of them, chosen
//! by the seeded PRNG. Bit flips, bytes set to interesting values, 16/32/64-bit fields
//! (big-endian, as Kafka writes them) and varints rewritten to huge, negative or boundary
//! values (the length and count fields of every format here), arithmetic on bytes and
//! fields, truncation, insertion, deletion, duplication of a chunk, and splicing with
//! another input of the pool.

use fastrand::Rng;

const BYTES: &[u8] = &[0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff];
const I16S: &[i16] = &[0, 1, -1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, -0x8000, -2];
const I32S: &[i32] = &[
    0,
    1,
    -1,
    -2,
    0x7f,
    0x80,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    i32::MIN,
    0x00ff_ffff,
    0x0100_0000,
    0x7fff_fff0,
    61,
    49,
];
const I64S: &[i64] = &[0, -1, 1, i64::MAX, i64::MIN, 0x7fff_ffff, 0x1_0000_0000];
/// Unsigned LEB128 varints: huge counts and lengths in the compact (flexible) encodings,
/// record fields and postcard.
const VARINTS: &[&[u8]] = &[
    &[0x00],
    &[0x01],
    &[0x7f],
    &[0xff, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xfe, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ],
    &[0xff, 0xff, 0xff, 0xff, 0xff],
];

/// Mutates inputs with a seeded PRNG, keeping them at most `max_len` bytes.
pub struct Mutator {
    pub rng: Rng,
    pub max_len: usize,
}

impl Mutator {
    pub fn new(seed: u64, max_len: usize) -> Mutator {
        Mutator {
            rng: Rng::with_seed(seed),
            max_len,
        }
    }

    /// Stacks 1, 2, 4 or 8 mutations on `data`; `pool` gives splice partners.
    pub fn mutate(&mut self, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        let n = 1usize << self.rng.u32(0..4);
        for _ in 0..n {
            self.one(data, pool);
        }
        data.truncate(self.max_len);
    }

    fn pos(&mut self, data: &[u8], width: usize) -> Option<usize> {
        (data.len() >= width).then(|| self.rng.usize(0..=data.len() - width))
    }

    fn overwrite(&mut self, data: &mut [u8], bytes: &[u8]) {
        if let Some(p) = self.pos(data, bytes.len()) {
            data[p..p + bytes.len()].copy_from_slice(bytes);
        }
    }

    fn one(&mut self, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        match self.rng.u32(0..16) {
            0 => {
                if let Some(p) = self.pos(data, 1) {
                    data[p] ^= 1 << self.rng.u32(0..8);
                }
            }
            1 => {
                let b = BYTES[self.rng.usize(0..BYTES.len())];
                self.overwrite(data, &[b]);
            }
            2 => {
                let v = I16S[self.rng.usize(0..I16S.len())];
                self.overwrite(data, &v.to_be_bytes());
            }
            3 => {
                let v = I32S[self.rng.usize(0..I32S.len())];
                self.overwrite(data, &v.to_be_bytes());
            }
            4 => {
                let v = I64S[self.rng.usize(0..I64S.len())];
                self.overwrite(data, &v.to_be_bytes());
            }
            5 => {
                let v = VARINTS[self.rng.usize(0..VARINTS.len())];
                self.overwrite(data, v);
            }
            6 => {
                if let Some(p) = self.pos(data, 1) {
                    data[p] = self.rng.u8(..);
                }
            }
            7 => {
                // Arithmetic on a byte: off-by-a-few lengths and counts.
                if let Some(p) = self.pos(data, 1) {
                    let d = self.rng.u8(1..=16);
                    data[p] = if self.rng.bool() {
                        data[p].wrapping_add(d)
                    } else {
                        data[p].wrapping_sub(d)
                    };
                }
            }
            8 => {
                if let Some(p) = self.pos(data, 4) {
                    let v = i32::from_be_bytes(data[p..p + 4].try_into().unwrap());
                    let d = self.rng.i32(-64..=64);
                    data[p..p + 4].copy_from_slice(&v.wrapping_add(d).to_be_bytes());
                }
            }
            9 => {
                if !data.is_empty() {
                    let keep = self.rng.usize(0..data.len());
                    data.truncate(keep);
                }
            }
            10 => {
                // Insert random bytes, or one byte repeated.
                let at = self.rng.usize(0..=data.len());
                let n = self.rng.usize(1..=32);
                let fill: Vec<u8> = if self.rng.bool() {
                    (0..n).map(|_| self.rng.u8(..)).collect()
                } else {
                    vec![BYTES[self.rng.usize(0..BYTES.len())]; n]
                };
                data.splice(at..at, fill);
            }
            11 => {
                if !data.is_empty() {
                    let at = self.rng.usize(0..data.len());
                    let n = self.rng.usize(1..=(data.len() - at).min(64));
                    data.drain(at..at + n);
                }
            }
            12 => {
                // Duplicate a chunk of the input elsewhere in it (repeated elements).
                if !data.is_empty() {
                    let from = self.rng.usize(0..data.len());
                    let n = self.rng.usize(1..=(data.len() - from).min(256));
                    let chunk = data[from..from + n].to_vec();
                    let at = self.rng.usize(0..=data.len());
                    data.splice(at..at, chunk);
                }
            }
            13 => {
                // Splice: a prefix of this input and a suffix of another.
                if !pool.is_empty() {
                    let other = &pool[self.rng.usize(0..pool.len())];
                    let cut = self.rng.usize(0..=data.len());
                    let from = self.rng.usize(0..=other.len());
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            14 => {
                // Insert an interesting 32-bit field (shifting what follows).
                let v = I32S[self.rng.usize(0..I32S.len())];
                let at = self.rng.usize(0..=data.len());
                data.splice(at..at, v.to_be_bytes());
            }
            _ => {
                // Insert a varint.
                let v = VARINTS[self.rng.usize(0..VARINTS.len())];
                let at = self.rng.usize(0..=data.len());
                data.splice(at..at, v.iter().copied());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let pool = vec![b"another input".to_vec()];
        let run = |seed| {
            let mut m = Mutator::new(seed, 1024);
            let mut out = Vec::new();
            for _ in 0..200 {
                let mut d = b"0123456789abcdef0123456789abcdef".to_vec();
                m.mutate(&mut d, &pool);
                out.push(d);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().all(|d| d.len() <= 1024));
    }
}
