//! OffsetForLeaderEpoch (23, KIP-101/KIP-320): where a leader epoch ends, so a consumer
//! that saw the leader change can tell whether its position survived. phxq's leader epoch
//! is the store group's Raft term; the answer comes from the epochs each partition keeps
//! (`StoreGroup::end_offset_for_epoch`). Since only committed records are served and Raft
//! never truncates them, a consumer's position is always within its epoch: clients go on
//! without resetting.
//!
//! Rules: `current_leader_epoch` is checked as Fetch checks it (FENCED_LEADER_EPOCH,
//! UNKNOWN_LEADER_EPOCH); an unknown epoch answers leader epoch and end offset -1. Needs
//! DESCRIBE on each topic (else TOPIC_AUTHORIZATION_FAILED); a broker's request
//! (`replica_id` >= 0) needs CLUSTER_ACTION.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use phxq_protocol::errors;

use crate::broker::Broker;
use crate::handlers::replication_error_code;
use crate::security::acl::{AclOperation, Authz};

pub fn handle(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
    az: &Authz,
) -> OffsetForLeaderEpochResponse {
    let follower_denied = req.replica_id.0 >= 0 && !az.cluster(AclOperation::ClusterAction);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let denied = follower_denied || !az.topic(AclOperation::Describe, &t.topic.0);
            let topic = broker.topics.get(&t.topic.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if denied {
                        let code = if follower_denied {
                            errors::CLUSTER_AUTHORIZATION_FAILED
                        } else {
                            errors::TOPIC_AUTHORIZATION_FAILED
                        };
                        return out.with_error_code(code);
                    }
                    let Some((pid, g)) = topic.as_ref().and_then(|t| t.partition(p.partition))
                    else {
                        return out.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let (group, current) = match broker.leading_at(g, p.current_leader_epoch) {
                        Ok(found) => found,
                        Err(code) => return out.with_error_code(code),
                    };
                    match group.end_offset_for_epoch(pid, p.leader_epoch, current) {
                        Ok((epoch, end)) => out.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => out.with_error_code(replication_error_code(&e)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
