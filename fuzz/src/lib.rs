//! Fuzzing phxq's decoders on stable Rust (no libFuzzer): structure-aware seeds, byte-level
//! mutations from a seeded PRNG, and per execution the checks that matter for input off a
//! socket: no panic (caught ones included), no allocation out of proportion to the input,
//! and an answer (success or error) in bounded time.
//!
//! - [`targets`]: what is fuzzed: `kafka-request` (frame splitter and request decoder as a
//!   broker connection runs them), `record-batch` (the Produce path's batch checks and the
//!   record readers), `inter-broker` (the Raft listener's frame decoder).
//! - [`run`]: the loop: replay the corpus, then the seeds, then mutate; findings are
//!   written as crash files.
//! - [`mutate`]: the byte-level mutator.
//! - [`alloc`]: the counting global allocator the checks read.
//!
//! `src/main.rs` is the long mode (`phxq-fuzz --target T --execs N`); `tests/short.rs` runs
//! every target briefly under `cargo test`. See `docs/fuzzing.md`.

pub mod alloc;
pub mod mutate;
pub mod run;
pub mod targets;
