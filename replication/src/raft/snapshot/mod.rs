//! Full snapshots of a group: the dump format and how it is written from a read
//! transaction (`dump`), installed in one writer transaction (`install`), and streamed
//! between nodes (`transfer`).

pub mod dump;
pub mod install;
pub mod transfer;
