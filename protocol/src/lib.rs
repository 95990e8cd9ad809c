//! Kafka wire protocol for phxq: no I/O, no runtime.
//!
//! - [`frame`]: the length-prefixed frames on a Kafka connection and their size limits.
//! - [`codec`]: request header + body decoding and response encoding, on top of the
//!   `kafka-protocol` crate's message codecs.
//! - [`batch`]: the record batch (magic v2) header: reading the fields a broker needs,
//!   checking the CRC, and patching the base offset without re-encoding.
//! - [`decompress`]: a batch's records decompressed with a cap on the output.
//! - [`records`]: the records inside a batch: keys, tombstones, and rebuilding a batch
//!   with a subset of its records (log compaction).
//! - [`control`]: transaction markers (control batches): building and reading them.
//! - [`errors`]: Kafka error codes by name.
//! - [`supported`]: the APIs and version ranges the broker serves (ApiVersions, the decoder).

pub mod batch;
pub mod codec;
pub mod control;
pub mod decompress;
pub mod errors;
pub mod frame;
pub mod records;
pub mod supported;

pub use kafka_protocol;
