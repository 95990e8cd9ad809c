//! Raft, third layer: each group's replicated log on top of the store and the partition
//! semantics. The log store and its memory (`log_store`, `log_mem`, `log_codec`,
//! `log_read`), the writer work it submits (`work`), the state machine and its apply loop
//! (`state_machine`, `apply`), the messages between nodes and their transports (`rpc`,
//! `network`, `tcp`) and full snapshots (`snapshot`).

use openraft::error::{ClientWriteError, Fatal, RaftError};

use crate::raft::state_machine::StateMachine;
use crate::types::{ReplicationError, TypeConfig};

pub mod apply;
pub mod log_codec;
pub mod log_mem;
pub mod log_read;
pub mod log_store;
pub mod network;
pub mod rpc;
pub mod snapshot;
pub mod state_machine;
pub mod tcp;
pub mod work;

/// A group's openraft instance.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// Maps an openraft error of a write onto the crate's error.
pub fn write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> ReplicationError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            ReplicationError::NotLeader {
                leader: f.leader_id,
            }
        }
        RaftError::APIError(other) => ReplicationError::Raft(other.to_string()),
        RaftError::Fatal(f) => fatal_error(f),
    }
}

/// Maps a fatal openraft error onto the crate's error.
pub fn fatal_error(f: Fatal<TypeConfig>) -> ReplicationError {
    match f {
        Fatal::StorageError(e) => ReplicationError::Storage(e.to_string()),
        Fatal::Stopped => ReplicationError::ShuttingDown,
        other => ReplicationError::Raft(other.to_string()),
    }
}
