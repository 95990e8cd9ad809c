//! What ShareFetch and ShareAcknowledge have in common: topics by id, finding the
//! share-partition on this broker (it must lead the partition), applying acknowledgement
//! batches, persisting what changed, and the partition's leader for a refusal.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::share_fetch_response::LeaderIdAndEpoch;
use phxq_protocol::errors;
use uuid::Uuid;

use crate::broker::Broker;
use crate::share::assignor::TopicPartition;
use crate::share::config::ShareSettings;
use crate::share::manager::{Entry, Failure, Location};
use crate::share::partition::{AckBatch, AckType};

/// A partition named by a request: by topic id, with its name when the topic exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Named {
    pub topic_id: Uuid,
    pub partition: i32,
    /// `None`: no topic has this id (UNKNOWN_TOPIC_ID).
    pub topic: Option<String>,
}

impl Named {
    pub fn new(broker: &Broker, topic_id: Uuid, partition: i32) -> Named {
        Named {
            topic_id,
            partition,
            topic: broker.topics.get_by_id(topic_id).map(|t| t.name.clone()),
        }
    }

    pub fn tp(&self) -> Option<TopicPartition> {
        self.topic.clone().map(|t| (t, self.partition))
    }
}

/// Named partitions from topic-partition pairs (topics that exist).
pub fn named(broker: &Broker, tp: &TopicPartition) -> Option<Named> {
    let topic = broker.topics.get(&tp.0)?;
    Some(Named {
        topic_id: topic.uuid(),
        partition: tp.1,
        topic: Some(tp.0.clone()),
    })
}

/// Where the records of `tp` live, if this broker leads its store group.
pub fn locate(broker: &Broker, tp: &TopicPartition) -> Result<Location, Failure> {
    let (pid, group_id) = broker
        .topics
        .get(&tp.0)
        .and_then(|t| t.partition(tp.1))
        .ok_or((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("no partition {}-{}", tp.0, tp.1),
        ))?;
    let store = broker
        .leading(group_id)
        .map_err(|code| (code, format!("this broker does not lead {}-{}", tp.0, tp.1)))?;
    Ok(Location { store, pid })
}

/// The share-partition of `group` on `tp`, loaded on this broker (which leads it).
pub fn open(
    broker: &Broker,
    group: &str,
    tp: &TopicPartition,
    settings: &ShareSettings,
) -> Result<(Arc<Entry>, Location), Failure> {
    let at = locate(broker, tp)?;
    let entry = broker
        .share
        .open(&(group.to_string(), tp.0.clone(), tp.1), &at, settings)?;
    Ok((entry, at))
}

/// The partition's leader as far as this broker knows (for NOT_LEADER_OR_FOLLOWER).
pub fn current_leader(broker: &Broker, tp: &TopicPartition) -> LeaderIdAndEpoch {
    let none = LeaderIdAndEpoch::default()
        .with_leader_id(-1)
        .with_leader_epoch(-1);
    let Some((_, g)) = broker.topics.get(&tp.0).and_then(|t| t.partition(tp.1)) else {
        return none;
    };
    match broker.store_group(g) {
        Some(s) => match (s.leader(), s.leader_term()) {
            (Some(id), term) => LeaderIdAndEpoch::default()
                .with_leader_id(id as i32)
                .with_leader_epoch(term.map_or(-1, |t| t.min(i32::MAX as u64) as i32)),
            (None, _) => none,
        },
        None => none,
    }
}

/// Acknowledgement batches from the wire (first offset, last offset, types).
pub fn ack_batches(raw: &[(i64, i64, &[i8])]) -> Result<Vec<AckBatch>, Failure> {
    let mut out = Vec::with_capacity(raw.len());
    for (first, last, types) in raw {
        let types = types
            .iter()
            .map(|t| AckType::from_wire(*t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (e.code(), e.to_string()))?;
        if types.is_empty() {
            return Err((
                errors::INVALID_REQUEST,
                "an acknowledgement batch without acknowledge types".into(),
            ));
        }
        out.push(AckBatch {
            first_offset: *first,
            last_offset: *last,
            types,
        });
    }
    out.sort_by_key(|b| b.first_offset);
    Ok(out)
}

/// Applies `member`'s acknowledgements of `group` per partition; the share-partitions
/// changed are added to `touched`. Returns each partition's acknowledgement error.
pub fn acknowledge(
    broker: &Broker,
    group: &str,
    member: &str,
    settings: &ShareSettings,
    acks: BTreeMap<TopicPartition, Result<Vec<AckBatch>, Failure>>,
    touched: &mut Vec<Arc<Entry>>,
) -> BTreeMap<TopicPartition, Option<Failure>> {
    let now = crate::groups::offsets::now_ms();
    acks.into_iter()
        .map(|(tp, batches)| {
            let result = batches.and_then(|batches| {
                let (entry, _) = open(broker, group, &tp, settings)?;
                broker.share.acknowledge(&entry, member, &batches, now)?;
                touched.push(entry);
                Ok(())
            });
            (tp, result.err())
        })
        .collect()
}

/// Persists every share-partition in `touched` (each once, concurrently: the store
/// groups' group commit gathers them). Returns the failures by topic-partition.
pub async fn persist_all(
    broker: &Broker,
    touched: &[Arc<Entry>],
) -> BTreeMap<TopicPartition, Failure> {
    let mut unique: Vec<&Arc<Entry>> = Vec::new();
    for e in touched {
        if !unique.iter().any(|u| Arc::ptr_eq(u, e)) {
            unique.push(e);
        }
    }
    let results = futures::future::join_all(unique.iter().map(|e| broker.share.persist(e))).await;
    unique
        .iter()
        .zip(results)
        .filter_map(|(e, r)| {
            let k = e.key();
            r.err().map(|f| ((k.1.clone(), k.2), f))
        })
        .collect()
}
