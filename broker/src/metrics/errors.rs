//! The error codes a response carries, for `phxq_request_errors_total`: the top-level code
//! and the per-topic, per-partition, per-group or per-member codes of the APIs clients use
//! most. An API not listed here counts requests and latency only.

use kafka_protocol::messages::ResponseKind;
pub use phxq_protocol::errors::name;

/// Calls `f` with every non-zero error code in `body`.
pub fn each_error(body: &ResponseKind, mut f: impl FnMut(i16)) {
    let mut e = |code: i16| {
        if code != 0 {
            f(code)
        }
    };
    match body {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| e(p.error_code)),
        ResponseKind::Fetch(r) => {
            e(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| e(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| e(p.error_code)),
        ResponseKind::Metadata(r) => {
            e(r.error_code);
            for t in &r.topics {
                e(t.error_code);
                t.partitions.iter().for_each(|p| e(p.error_code));
            }
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| e(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            e(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| e(p.error_code));
            for g in &r.groups {
                e(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| e(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(r) => {
            e(r.error_code);
            r.coordinators.iter().for_each(|c| e(c.error_code));
        }
        ResponseKind::JoinGroup(r) => e(r.error_code),
        ResponseKind::SyncGroup(r) => e(r.error_code),
        ResponseKind::Heartbeat(r) => e(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            e(r.error_code);
            r.members.iter().for_each(|m| e(m.error_code));
        }
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| e(g.error_code)),
        ResponseKind::ListGroups(r) => e(r.error_code),
        ResponseKind::ConsumerGroupHeartbeat(r) => e(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| e(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| e(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| e(p.error_code)),
        ResponseKind::InitProducerId(r) => e(r.error_code),
        ResponseKind::ApiVersions(r) => e(r.error_code),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn partition_errors_of_a_produce_response() {
        let r = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(6),
                PartitionProduceResponse::default(),
                PartitionProduceResponse::default().with_error_code(56),
            ])]);
        let mut seen = vec![];
        each_error(&ResponseKind::Produce(r), |c| seen.push(c));
        assert_eq!(seen, vec![6, 56]);
    }
}
