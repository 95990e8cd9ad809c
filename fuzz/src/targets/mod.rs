//! The fuzz targets and what they share: the [`Target`] trait the runner drives, and the
//! allocation check of one stage of a decode ([`stage`]).
//!
//! Allocation bounds. Decoding builds structs, and a struct takes more memory than its
//! encoding (a 2-byte empty string becomes a 32-byte `Bytes`, a 33-byte Fetch partition a
//! 64-byte struct), so a decode may use a fixed multiple of its input: every target
//! allows [`BASE`] plus [`PER_BYTE`] times the input, and adds only the caps its code
//! documents (a frame's declared length, a decompression cap). Counts and lengths read off
//! the wire must never be trusted beyond that: a reservation for an element count that the
//! input cannot back is what the check catches.

use fastrand::Rng;

use crate::alloc;
use crate::mutate::Mutator;

pub mod batch;
pub mod inter_broker;
pub mod kafka;

/// Bytes any decode may allocate whatever its input (small fixed buffers, error messages).
pub const BASE: usize = 64 << 10;
/// Bytes a decode may allocate per input byte: the in-memory size of what it decodes per
/// encoded byte, with a growing `Vec`'s slack. The largest legitimate ratio is about 32
/// (an empty compact string is 1 byte on the wire and a 32-byte `StrBytes` in memory),
/// doubled for a `Vec` that just grew.
pub const PER_BYTE: usize = 64;
/// The working buffers of a decompressor, whatever the input: flate2's 32 KiB read buffer
/// and inflate state, zstd's 128 KiB input buffer, lz4's buffers.
pub const CODEC: usize = 256 << 10;

/// The bound for a stage of `input` bytes plus `documented` bytes of caps it promises.
pub fn bound(input: usize, documented: usize) -> usize {
    BASE + PER_BYTE * input + documented
}

thread_local! {
    /// The most bytes per input byte a stage allocated beyond its documented caps, on
    /// inputs of 4 KiB and more.
    static WORST: std::cell::Cell<(usize, &'static str)> = const { std::cell::Cell::new((0, "")) };
}

/// The most bytes per input byte any stage allocated on this thread (beyond its
/// documented caps, inputs of 4 KiB and more) since the last call, and which stage.
pub fn take_worst() -> (usize, &'static str) {
    WORST.with(|w| w.replace((0, "")))
}

/// One of the fuzzed decoders.
pub trait Target: Sync {
    /// Its name on the command line and in the corpus (`fuzz/corpus/<name>/`).
    fn name(&self) -> &'static str;
    /// Structure-aware seeds: valid inputs, built with the encoders.
    fn seeds(&self, rng: &mut Rng) -> Vec<Vec<u8>>;
    /// Repairs, some of the time, what would make most mutants fail at the first check
    /// (a frame's length prefix, a batch's CRC), so that mutations reach deeper code.
    fn fixup(&self, _data: &mut Vec<u8>, _rng: &mut Rng) {}
    /// A mutation that knows the format (e.g. mutate a batch's records decompressed, then
    /// compress them again); false when it did nothing.
    fn mutate_structured(&self, _data: &mut Vec<u8>, _m: &mut Mutator, _pool: &[Vec<u8>]) -> bool {
        false
    }
    /// Runs the decoders on one input: `Ok(true)` when it decoded, `Ok(false)` when it was
    /// refused with an error, `Err(why)` when a check failed (allocation past its bound).
    fn exec(&self, input: &[u8]) -> Result<bool, String>;
}

/// Every target, by name.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(kafka::KafkaRequest),
        Box::new(batch::RecordBatch),
        Box::new(inter_broker::InterBroker),
    ]
}

/// The target named `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Target>> {
    all().into_iter().find(|t| t.name() == name)
}

/// Runs `f` counting its allocations: an error naming the stage when the peak or a single
/// allocation passes [`bound`]`(input, documented)`.
pub fn stage<T>(
    name: &'static str,
    input: usize,
    documented: usize,
    f: impl FnOnce() -> T,
) -> Result<T, String> {
    alloc::reset();
    let out = f();
    let u = alloc::usage();
    let limit = bound(input, documented);
    // The ratio means something only where the input, not BASE, dominates.
    if input >= 4096 {
        let per_byte = u.peak.saturating_sub(documented) / input;
        WORST.with(|w| {
            if per_byte > w.get().0 {
                w.set((per_byte, name));
            }
        });
    }
    if u.peak > limit || u.largest > limit {
        return Err(format!(
            "{name}: allocated {} bytes at peak, {} in one allocation; the bound for {input} \
             bytes of input is {limit}",
            u.peak, u.largest
        ));
    }
    Ok(out)
}
