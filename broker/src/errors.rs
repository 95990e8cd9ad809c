//! Kafka error codes for the broker's domain errors, shared by the handlers and the topic
//! registry.

use phxq_protocol::errors;
use phxq_replication::ReplicationError;

/// The Kafka error code for a replication failure.
pub fn replication_error_code(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::NotLeader { .. } => errors::NOT_LEADER_OR_FOLLOWER,
        ReplicationError::UnknownPartition => errors::UNKNOWN_TOPIC_OR_PARTITION,
        ReplicationError::OffsetOutOfRange { .. } => errors::OFFSET_OUT_OF_RANGE,
        ReplicationError::Storage(_) => errors::KAFKA_STORAGE_ERROR,
        ReplicationError::ShuttingDown => errors::NOT_LEADER_OR_FOLLOWER,
        ReplicationError::Raft(_) => errors::REQUEST_TIMED_OUT,
    }
}
