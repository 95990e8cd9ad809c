//! Decompressing a record batch's records with a cap on the output: a batch of a few
//! kilobytes can expand to gigabytes (a "zstd bomb"), and the broker must never allocate
//! what a producer's bytes say. The codecs are Kafka's (gzip, snappy in the xerial framing
//! Java clients write or raw, lz4 frames, zstd); what would exceed the cap is refused
//! before it is allocated.

use std::io::Read;

use bytes::Bytes;

/// Why records could not be decompressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("the records decompress to more than {0} bytes")]
    TooLarge(usize),
    #[error("corrupt {codec} data: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("unknown compression codec {0}")]
    UnknownCodec(i16),
}

/// The xerial snappy stream header (`SnappyOutputStream`).
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fn corrupt(codec: &'static str, e: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        codec,
        reason: e.to_string(),
    }
}

/// Makes room in `out` for `extra` more bytes, doubling its capacity as a `Vec` does but
/// never past `limit` (the caller checked that `out.len() + extra <= limit`): what is
/// allocated stays within the cap, where `Vec`'s own growth could double past it.
fn grow_within(out: &mut Vec<u8>, extra: usize, limit: usize) {
    let need = out.len() + extra;
    if need > out.capacity() {
        let target = (out.capacity() * 2).clamp(need, limit.max(need));
        out.reserve_exact(target - out.len());
    }
}

/// Reads at most `cap` bytes from `r`; more is [`DecompressError::TooLarge`]. One byte past
/// the cap is read to tell; the buffer never grows past that.
fn read_capped(
    codec: &'static str,
    mut r: impl Read,
    cap: usize,
) -> Result<Bytes, DecompressError> {
    let limit = cap.saturating_add(1);
    let mut out = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            if filled == limit {
                break;
            }
            let step = filled.clamp(8 << 10, 1 << 20).min(limit - filled);
            grow_within(&mut out, step, limit);
            out.resize(filled + step, 0);
        }
        match r.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(corrupt(codec, e)),
        }
    }
    if filled > cap {
        return Err(DecompressError::TooLarge(cap));
    }
    out.truncate(filled);
    Ok(Bytes::from(out))
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>, cap: usize) -> Result<(), DecompressError> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt("snappy", e))?;
    if out.len().saturating_add(len) > cap {
        return Err(DecompressError::TooLarge(cap));
    }
    let start = out.len();
    grow_within(out, len, cap);
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt("snappy", e))?;
    Ok(())
}

fn snappy(data: &[u8], cap: usize) -> Result<Bytes, DecompressError> {
    let mut out = Vec::new();
    let Some(mut rest) = data.strip_prefix(&XERIAL_MAGIC[..]) else {
        snappy_block(data, &mut out, cap)?;
        return Ok(Bytes::from(out));
    };
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("snappy", "truncated block length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt("snappy", "truncated block"))?;
        snappy_block(block, &mut out, cap)?;
        rest = &tail[len..];
    }
    Ok(Bytes::from(out))
}

/// The records of a batch compressed with `codec` (the batch attributes' low 3 bits),
/// at most `cap` bytes of them.
pub fn decompress(codec: i16, data: &[u8], cap: usize) -> Result<Bytes, DecompressError> {
    match codec {
        0 => {
            if data.len() > cap {
                return Err(DecompressError::TooLarge(cap));
            }
            Ok(Bytes::copy_from_slice(data))
        }
        1 => read_capped("gzip", flate2::read::GzDecoder::new(data), cap),
        2 => snappy(data, cap),
        3 => read_capped(
            "lz4",
            lz4::Decoder::new(data).map_err(|e| corrupt("lz4", e))?,
            cap,
        ),
        4 => read_capped(
            "zstd",
            zstd::stream::read::Decoder::new(data).map_err(|e| corrupt("zstd", e))?,
            cap,
        ),
        other => Err(DecompressError::UnknownCodec(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_codec_round_trips_within_the_cap_and_bombs_are_refused() {
        let plain: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 7).to_be_bytes())
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::stream::encode_all(&plain[..], 3).unwrap();
        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&plain).unwrap();
        let (lz, r) = lz.finish();
        r.unwrap();
        let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        for chunk in plain.chunks(32 * 1024) {
            let c = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(c.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&c);
        }
        for (codec, data) in [(1, &gz), (2, &raw), (2, &xerial), (3, &lz), (4, &zs)] {
            assert_eq!(
                decompress(codec, data, plain.len()).unwrap(),
                plain,
                "codec {codec}"
            );
            assert_eq!(
                decompress(codec, data, plain.len() - 1),
                Err(DecompressError::TooLarge(plain.len() - 1)),
                "codec {codec}"
            );
        }
        assert!(matches!(
            decompress(4, b"not zstd", 1 << 20),
            Err(DecompressError::Corrupt { .. })
        ));
        assert_eq!(decompress(9, b"", 1), Err(DecompressError::UnknownCodec(9)));
    }

    #[test]
    fn a_zstd_bomb_costs_no_more_than_the_cap() {
        // 64 MiB of zeros compress to a few kilobytes.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        assert_eq!(
            decompress(4, &bomb, 1 << 20),
            Err(DecompressError::TooLarge(1 << 20))
        );
    }
}
