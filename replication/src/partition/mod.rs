//! Partitions, the layer above the store: what a partition's log means (Kafka log
//! semantics, like Redpanda's `rm_stm`). Applying commands at dense offsets with producer
//! id/epoch/sequence checks, the time index and DeleteRecords (`exec`); the readers' view
//! of offsets and the applied position (`view`); fetches, timestamp lookups and key-value
//! reads (`read`); which head of a log retention drops (`retention`, pure). Knows nothing of Raft: it is handed commands and segment positions.

pub mod exec;
pub mod read;
pub mod retention;
pub mod view;
