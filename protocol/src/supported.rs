//! The APIs and version ranges the broker serves ([`SUPPORTED`]): what ApiVersions
//! advertises and what [`crate::codec::decode_request`] accepts. It lives here, with the
//! decoder, so that everything decoding requests as the broker does (the broker's
//! connections, the fuzz harness in `fuzz/`) uses the one list.

use kafka_protocol::messages::ApiKey;

/// (API, min version, max version) served. Minimums are at or below what every client in
/// CLIENTS.md uses (kafkajs ignores minimums); maximums stop before topic-id based
/// Produce (v13) and before features phxq lacks.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 10),
    // v13+ names topics by id; v15+ carries the replica state, v17+ follower-only fields.
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 7),
    // Leader epochs (KIP-320): the store group's Raft term.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 5),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    // Client quotas (quotas/).
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // Consumer groups (groups/): every version up to the codec's, classic protocol.
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // Security (security/): SASL on SASL listeners, and SCRAM users. SaslHandshake v0 is
    // listed because librdkafka looks for it to enable SASL, but a v0 handshake (raw SASL
    // tokens after it, pre-Kafka-1.0 clients) is refused: every client since uses v1.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs (security/acl/): v1+ (prefixed patterns, KIP-290); v0 is pre-2.0.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Transactions (txn/): the producer's APIs, TxnOffsetCommit on the group coordinator,
    // and KIP-664's admin APIs. Markers go through Raft, so WriteTxnMarkers is not served.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    // KIP-848 consumer groups (groups/consumer, scheduler/).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// The served version range of `key`.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_the_codec() {
        for (key, min, max) in SUPPORTED {
            let range = key.valid_versions();
            assert!(
                range.min <= *min && *max <= range.max,
                "{key:?} {min}..={max} outside codec {range:?}"
            );
        }
    }
}
