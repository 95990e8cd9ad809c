//! The standard "consumer" embedded protocol: the subscription a member sends in JoinGroup
//! and the assignment the leader sends in SyncGroup, each `int16 version` followed by the
//! kafka-protocol `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` body. Every
//! client in CLIENTS.md (librdkafka, kafka-python, aiokafka, kafkajs, Java) writes these.
//! Versions newer than the codec knows are read as the newest known one (the format only
//! ever appends fields), as Kafka does.

use std::collections::BTreeSet;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

/// The protocol type of groups whose members use the standard consumer protocol.
pub const CONSUMER: &str = "consumer";

/// A topic-partition named by topic name, as the consumer protocol names them.
pub type TopicPartition = (String, i32);

/// What a member subscribed to and (cooperative protocol) still owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: BTreeSet<String>,
    pub owned: BTreeSet<TopicPartition>,
    pub generation: i32,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed consumer protocol {what}: {reason}")]
pub struct ParseError {
    what: &'static str,
    reason: String,
}

fn split_version(
    what: &'static str,
    mut bytes: Bytes,
    max: i16,
) -> Result<(i16, Bytes), ParseError> {
    if bytes.len() < 2 {
        return Err(ParseError {
            what,
            reason: format!("{} bytes, need a version", bytes.len()),
        });
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(ParseError {
            what,
            reason: format!("negative version {version}"),
        });
    }
    Ok((version.min(max), bytes))
}

/// Parses JoinGroup protocol metadata of a consumer-protocol member.
pub fn parse_subscription(bytes: &Bytes) -> Result<Subscription, ParseError> {
    let what = "subscription";
    let (version, mut body) = split_version(
        what,
        bytes.clone(),
        ConsumerProtocolSubscription::VERSIONS.max,
    )?;
    let s = ConsumerProtocolSubscription::decode(&mut body, version).map_err(|e| ParseError {
        what,
        reason: e.to_string(),
    })?;
    Ok(Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned: s
            .owned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        generation: s.generation_id,
    })
}

/// Parses a SyncGroup member assignment. Empty bytes are an empty assignment (Kafka sends
/// empty bytes to members the leader gave nothing).
pub fn parse_assignment(bytes: &Bytes) -> Result<BTreeSet<TopicPartition>, ParseError> {
    if bytes.is_empty() {
        return Ok(BTreeSet::new());
    }
    let (_, a) = decode_assignment(bytes)?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
        .collect())
}

/// The version (capped at the newest known) and body of an encoded assignment.
fn decode_assignment(bytes: &Bytes) -> Result<(i16, ConsumerProtocolAssignment), ParseError> {
    let what = "assignment";
    let (version, mut body) = split_version(
        what,
        bytes.clone(),
        ConsumerProtocolAssignment::VERSIONS.max,
    )?;
    let a = ConsumerProtocolAssignment::decode(&mut body, version).map_err(|e| ParseError {
        what,
        reason: e.to_string(),
    })?;
    Ok((version, a))
}

/// Removes `withheld` partitions from an encoded assignment, keeping its version and user
/// data (a live replay withholds the partitions it rewound for one generation).
pub fn withhold_from_assignment(
    bytes: &Bytes,
    withheld: &BTreeSet<TopicPartition>,
) -> Result<Bytes, ParseError> {
    if bytes.is_empty() {
        return Ok(bytes.clone());
    }
    let (version, mut a) = decode_assignment(bytes)?;
    for t in &mut a.assigned_partitions {
        let topic = t.topic.0.to_string();
        t.partitions
            .retain(|p| !withheld.contains(&(topic.clone(), *p)));
    }
    a.assigned_partitions.retain(|t| !t.partitions.is_empty());
    let mut out = BytesMut::new();
    out.extend_from_slice(&version.to_be_bytes());
    a.encode(&mut out, version).map_err(|e| ParseError {
        what: "assignment",
        reason: e.to_string(),
    })?;
    Ok(out.freeze())
}

/// Partitions grouped by topic, in order.
pub fn grouped(parts: &BTreeSet<TopicPartition>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for (t, p) in parts {
        match out.last_mut() {
            Some((last, ps)) if last == t => ps.push(*p),
            _ => out.push((t.clone(), vec![*p])),
        }
    }
    out
}

/// `topic: p0,p1 topic2: p3` for logs and the admin view.
pub fn describe(parts: &BTreeSet<TopicPartition>) -> String {
    grouped(parts)
        .into_iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            format!("{t}: {}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub use encode::{encode_assignment, encode_subscription};

/// Encoders for tests (the broker only reads these bytes).
#[cfg(test)]
mod encode {
    use std::collections::BTreeSet;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
    use kafka_protocol::messages::{
        ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::TopicPartition;

    /// Encodes a subscription at `version` (tests).
    pub fn encode_subscription(
        topics: &[&str],
        owned: &BTreeSet<TopicPartition>,
        version: i16,
    ) -> Bytes {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.to_string()))
                    .collect(),
            )
            .with_owned_partitions(
                super::grouped(owned)
                    .into_iter()
                    .map(|(t, ps)| {
                        OwnedTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let mut out = BytesMut::new();
        out.extend_from_slice(&version.to_be_bytes());
        s.encode(&mut out, version).expect("subscription encodes");
        out.freeze()
    }

    /// Encodes an assignment at version 0..=3 (tests).
    pub fn encode_assignment(parts: &BTreeSet<TopicPartition>, version: i16) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            super::grouped(parts)
                .into_iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
        let mut out = BytesMut::new();
        out.extend_from_slice(&version.to_be_bytes());
        a.encode(&mut out, version).expect("assignment encodes");
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(v: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
        v.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn subscription_round_trips_at_every_version() {
        let owned = tps(&[("a", 0), ("a", 2), ("b", 1)]);
        for v in 0..=3 {
            let s = parse_subscription(&encode_subscription(&["a", "b"], &owned, v)).unwrap();
            assert_eq!(s.topics, ["a", "b"].iter().map(|s| s.to_string()).collect());
            assert_eq!(
                s.owned,
                if v >= 1 {
                    owned.clone()
                } else {
                    BTreeSet::new()
                }
            );
        }
    }

    #[test]
    fn assignment_round_trips_and_empty_is_empty() {
        let parts = tps(&[("a", 0), ("a", 1), ("c", 5)]);
        for v in 0..=3 {
            assert_eq!(
                parse_assignment(&encode_assignment(&parts, v)).unwrap(),
                parts
            );
        }
        assert!(parse_assignment(&Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn withholding_removes_only_the_given_partitions() {
        let parts = tps(&[("a", 0), ("a", 1), ("c", 5)]);
        for v in 0..=3 {
            let out = withhold_from_assignment(
                &encode_assignment(&parts, v),
                &tps(&[("a", 1), ("c", 5)]),
            )
            .unwrap();
            assert_eq!(parse_assignment(&out).unwrap(), tps(&[("a", 0)]));
            assert_eq!(&out[..2], &v.to_be_bytes());
        }
        assert!(withhold_from_assignment(&Bytes::from_static(&[0]), &parts).is_err());
    }

    #[test]
    fn newer_versions_read_as_newest_known_and_garbage_is_an_error() {
        let mut b = encode_assignment(&tps(&[("a", 3)]), 3).to_vec();
        b[1] = 9; // version 9, body of v3 plus nothing new
        assert_eq!(parse_assignment(&Bytes::from(b)).unwrap(), tps(&[("a", 3)]));
        assert!(parse_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(parse_assignment(&Bytes::from_static(&[0xff, 0xff, 0, 0])).is_err());
        assert!(parse_subscription(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }

    /// kafkajs and kafka-python write v0 assignments with a null user data field.
    #[test]
    fn v0_assignment_with_null_user_data() {
        let raw: &[u8] = &[
            0, 0, // version
            0, 0, 0, 1, // one topic
            0, 1, b't', // "t"
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, // partitions [0, 1]
            0xff, 0xff, 0xff, 0xff, // null user data
        ];
        assert_eq!(
            parse_assignment(&Bytes::from_static(raw)).unwrap(),
            tps(&[("t", 0), ("t", 1)])
        );
    }
}
