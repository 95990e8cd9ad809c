//! The openraft type configuration of phxq groups and the aliases the rest of the crate uses.

use std::fmt;

use crate::api::{Command, CommandResponse, GroupId};

/// What the state machine hands back to a proposer: the command's answer, or why the
/// storage refused to apply it (then the group stops and the proposal fails).
pub type ApplyResult = Result<CommandResponse, String>;

openraft::declare_raft_types!(
    /// Type configuration shared by every group of a node.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, u64>;
pub type LogId = openraft::LogId<LeaderId>;
pub type Vote = openraft::impls::Vote<LeaderId>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
pub type ApplyResponder = openraft::storage::ApplyResponder<TypeConfig>;
pub type IOFlushed = openraft::storage::IOFlushed<TypeConfig>;

/// What a snapshot of a group carries. The group's state lives durably in the node's redb
/// tables, so building a snapshot only records the durable applied position; sending one
/// dumps the tables at that moment and the receiver installs them before handing this
/// descriptor to openraft (see `snapshot`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GroupSnapshot {
    pub group: GroupId,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::CreatePartitions(v) => write!(f, "create_partitions({})", v.len()),
            Command::DeletePartitions(v) => write!(f, "delete_partitions({})", v.len()),
            Command::Append(v) => {
                let bytes: usize = v.iter().map(|b| b.batch.len()).sum();
                write!(f, "append({} batches, {} bytes)", v.len(), bytes)
            }
            Command::DeleteRecords(v) => write!(f, "delete_records({})", v.len()),
            Command::Put(v) => write!(f, "put({})", v.len()),
            Command::AllocateProducerIds(n) => write!(f, "allocate_producer_ids({n})"),
            Command::CompareAndPut { .. } => write!(f, "compare_and_put"),
        }
    }
}
