//! Regression tests for what fuzzing found, measured with the counting allocator (the
//! crates' own tests cannot see allocations): each input is also in `fuzz/corpus/`.
//!
//! - kafka-protocol's array decoders reserved `count x size_of::<T>()` for a count the
//!   input could back only at one byte per element (a 100 MiB request could ask for
//!   gigabytes); the record and record-header decoders likewise. Now never more than the
//!   bytes left (vendor/kafka-protocol/PHXQ-PATCH.md).
//! - `decompress` read through `read_to_end`, whose buffer doubles: reading the one byte
//!   past a cap of N could hold 2N. Now the buffer never grows past the cap plus one.

use kafka_protocol::records::Record;
use phxq_fuzz::alloc;
use phxq_fuzz::targets::{self, batch::RecordBatch, kafka::KafkaRequest, Target, CODEC};
use phxq_protocol::decompress::{decompress, DecompressError};
use phxq_protocol::records::compress;

#[global_allocator]
static ALLOC: phxq_fuzz::alloc::Counting = phxq_fuzz::alloc::Counting;

/// A Produce v3 frame whose topic array declares one element per byte that follows,
/// and bytes that fail as the first element (a null topic name).
pub fn produce_with_count_backed_by_bytes(filler: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(0i16.to_be_bytes()); // Produce
    f.extend(3i16.to_be_bytes());
    f.extend(1i32.to_be_bytes()); // correlation id
    f.extend((-1i16).to_be_bytes()); // client id: null
    f.extend((-1i16).to_be_bytes()); // transactional id: null
    f.extend(1i16.to_be_bytes()); // acks
    f.extend(1000i32.to_be_bytes()); // timeout
    f.extend((filler as i32).to_be_bytes()); // topic_data: as many topics as bytes follow
    f.extend(vec![0xff; filler]);
    let mut frame = (f.len() as i32).to_be_bytes().to_vec();
    frame.extend(f);
    frame
}

/// A batch (valid CRC) declaring a billion records, followed by bytes that fail as the
/// first record.
pub fn batch_with_count_backed_by_bytes(filler: usize) -> Vec<u8> {
    let count: i32 = 1 << 30;
    let mut b = vec![0u8; 61];
    b[8..12].copy_from_slice(&((49 + filler) as i32).to_be_bytes());
    b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    b[16] = 2; // magic
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend(vec![0xff; filler]);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn an_array_count_reserves_no_more_than_the_bytes_left() {
    let frame = produce_with_count_backed_by_bytes(256 << 10);
    // Refused (Ok(false)), within the bound; before the fix the stage reported about
    // 96 bytes reserved per input byte.
    assert_eq!(KafkaRequest.exec(&frame), Ok(false));
}

#[test]
fn a_record_count_reserves_no_more_than_the_bytes_left() {
    assert!(std::mem::size_of::<Record>() > 2 * targets::PER_BYTE);
    let batch = batch_with_count_backed_by_bytes(256 << 10);
    assert_eq!(RecordBatch.exec(&batch), Ok(true));
}

#[test]
fn decompression_holds_no_more_than_the_cap() {
    let cap = 1 << 20;
    let zeros = vec![0u8; 8 << 20];
    for codec in 1..=4i16 {
        let bomb = compress(codec, &zeros).unwrap();
        assert!(bomb.len() < 512 << 10, "codec {codec}: {}", bomb.len());
        alloc::reset();
        assert_eq!(
            decompress(codec, &bomb, cap),
            Err(DecompressError::TooLarge(cap))
        );
        let used = alloc::usage().peak;
        assert!(
            used <= cap + 1 + CODEC,
            "codec {codec}: {used} bytes for a cap of {cap}"
        );
        // Exactly the cap decompresses, within the same bound.
        let fits = compress(codec, &zeros[..cap]).unwrap();
        alloc::reset();
        assert_eq!(decompress(codec, &fits, cap).unwrap().len(), cap);
        let used = alloc::usage().peak;
        assert!(used <= cap + 1 + CODEC, "codec {codec}: {used} bytes");
    }
    // Raw snappy (no xerial framing): the length is read first and checked.
    let raw = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
    alloc::reset();
    assert_eq!(
        decompress(2, &raw, cap),
        Err(DecompressError::TooLarge(cap))
    );
    assert!(alloc::usage().peak <= CODEC);
}

/// A batch of one record whose records are `plain_len` zero bytes compressed with `codec`
/// (a bomb when that is past the harness's cap), with a valid CRC.
pub fn bomb_batch(codec: i16, plain_len: usize) -> Vec<u8> {
    let zeros = vec![0u8; plain_len];
    let packed = compress(codec, &zeros).unwrap();
    let mut b = vec![0u8; 61];
    b[8..12].copy_from_slice(&((49 + packed.len()) as i32).to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    b.extend(packed);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The regression inputs kept in the corpus, by target and file name.
fn regression_inputs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let two_caps = 2 * phxq_fuzz::targets::batch::CAP;
    vec![
        (
            "kafka-request",
            "regress-array-count-reservation.bin",
            produce_with_count_backed_by_bytes(16 << 10),
        ),
        (
            "record-batch",
            "regress-record-count-reservation.bin",
            batch_with_count_backed_by_bytes(16 << 10),
        ),
        (
            "record-batch",
            "regress-gzip-bomb.bin",
            bomb_batch(1, two_caps),
        ),
        (
            "record-batch",
            "regress-lz4-bomb.bin",
            bomb_batch(3, two_caps),
        ),
        (
            "record-batch",
            "regress-zstd-bomb.bin",
            bomb_batch(4, two_caps),
        ),
    ]
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
fn the_regression_inputs_are_in_the_corpus_and_pass() {
    for (target, file, input) in regression_inputs() {
        let path = corpus_dir().join(target).join(file);
        let kept = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            kept == input,
            "{} differs from what the test builds",
            path.display()
        );
        let t = targets::by_name(target).unwrap();
        assert!(t.exec(&input).is_ok(), "{}", path.display());
    }
}

/// Writes the regression inputs into `fuzz/corpus/` (run with `--ignored` after changing them).
#[test]
#[ignore]
fn write_regression_corpus() {
    for (target, file, input) in regression_inputs() {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), input).unwrap();
    }
}
