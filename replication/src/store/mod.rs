//! Storage, second layer from the bottom: the node's redb database (schema and row
//! layouts, opening and format check, applied-state rows), the segment files holding
//! record batch bytes, and the group-commit writer that executes transaction work and
//! commits it (group commit and durability live here). Knows nothing of apply, Raft or the
//! log store: the layers above hand it work through `writer::Work` and tell it which
//! segment files their rows refer to through `segments::SegmentRefs`.

pub mod db;
#[doc(hidden)]
pub mod fault;
pub mod log_id;
pub mod meta;
pub mod schema;
pub mod segments;
pub mod writer;
