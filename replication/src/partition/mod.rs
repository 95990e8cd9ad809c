//! Partitions, the layer above the store: what a partition's log means (Kafka log
//! semantics, like Redpanda's `rm_stm`). Applying commands at dense offsets with producer
//! id/epoch/sequence checks, the time index and DeleteRecords (`exec`); the readers' view
//! of offsets and the applied position (`view`); fetches, timestamp lookups and key-value
//! reads (`read`); which head of a log retention drops (`retention`, pure); which records log
//! compaction keeps (`compaction`, pure) and its index reads and batch swaps
//! (`compact_rows`). Knows nothing of Raft: it is handed commands and segment positions.

pub mod compact_rows;
pub mod compaction;
pub mod exec;
pub mod read;
pub mod retention;
pub mod view;
