//! The topic registry: topic names, ids, partition placement (which store group holds each
//! partition) and topic configs. The source of truth is the metadata group's key-value
//! space (`topic/<name>` -> JSON); this is its in-memory view, changed only through Raft.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use phxq_protocol::errors;
use phxq_replication::{
    Command, CommandResponse, GroupId, PartitionId, ReplicationError, StoreGroup,
};
use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::placement::{self, Candidate};
use crate::topic_configs;

const TOPIC_PREFIX: &str = "topic/";

/// A topic as stored in the metadata group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    /// Kafka topic id (UUID), as hex.
    #[serde(with = "hex_u128")]
    pub id: u128,
    /// Store group of each partition, by partition index.
    pub placement: Vec<GroupId>,
    /// Topic-level configs set explicitly (defaults are not stored).
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<(PartitionId, GroupId)> {
        let group = *self.placement.get(usize::try_from(index).ok()?)?;
        Some((
            PartitionId {
                topic_id: self.id,
                index,
            },
            group,
        ))
    }
    pub fn partition_count(&self) -> i32 {
        self.placement.len() as i32
    }
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic already exists")]
    AlreadyExists,
    #[error("unknown topic")]
    Unknown,
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Replication(#[from] ReplicationError),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::AlreadyExists => errors::TOPIC_ALREADY_EXISTS,
            TopicError::Unknown => errors::UNKNOWN_TOPIC_OR_PARTITION,
            TopicError::InvalidName(_) => errors::INVALID_TOPIC_EXCEPTION,
            TopicError::InvalidPartitions(_) => errors::INVALID_PARTITIONS,
            TopicError::InvalidReplicationFactor(_) => errors::INVALID_REPLICATION_FACTOR,
            TopicError::InvalidConfig(_) => errors::INVALID_CONFIG,
            TopicError::InvalidReplicaAssignment(_) => errors::INVALID_REPLICA_ASSIGNMENT,
            TopicError::InvalidRequest(_) => errors::INVALID_REQUEST,
            TopicError::Replication(e) => crate::errors::replication_error_code(e),
        }
    }
}

/// Kafka's rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: &str| {
        Err(TopicError::InvalidName(format!(
            "invalid topic name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// In-memory view of the topics, plus a lock that serializes changes to them.
pub struct TopicRegistry {
    by_name: RwLock<HashMap<String, Arc<Topic>>>,
    changes: tokio::sync::Mutex<()>,
}

impl TopicRegistry {
    pub fn load(metadata: &StoreGroup) -> anyhow::Result<TopicRegistry> {
        Ok(TopicRegistry {
            by_name: RwLock::new(Self::read_all(metadata)?),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Re-reads every topic from the metadata group's applied state (in a cluster, changes
    /// made through other brokers arrive this way).
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let all = Self::read_all(metadata)?;
        *self.by_name.write().unwrap() = all;
        Ok(())
    }

    fn read_all(metadata: &StoreGroup) -> anyhow::Result<HashMap<String, Arc<Topic>>> {
        let mut by_name = HashMap::new();
        let records = metadata
            .kv_scan(TOPIC_PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the topic registry: {e}"))?;
        for (key, value) in records {
            let topic: Topic = serde_json::from_slice(&value).map_err(|e| {
                anyhow::anyhow!(
                    "corrupt topic record {:?}: {e}",
                    String::from_utf8_lossy(&key)
                )
            })?;
            by_name.insert(topic.name.clone(), Arc::new(topic));
        }
        Ok(by_name)
    }

    pub fn len(&self) -> usize {
        self.by_name.read().unwrap().len()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.by_name.read().unwrap().get(name).cloned()
    }

    pub fn get_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        let id = id.as_u128();
        self.by_name
            .read()
            .unwrap()
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.by_name.read().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a topic: its partitions in their store groups first, then the metadata record
    /// (a crash in between leaves only empty, unreachable partitions).
    /// Creates a topic of `partitions` partitions placed by load, or, when `assignments`
    /// (partition -> wanted brokers) are given, one partition per assignment placed by
    /// [`placement::map`].
    pub async fn create(
        &self,
        broker: &Broker,
        name: &str,
        partitions: i32,
        assignments: &[(i32, Vec<i32>)],
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_name(name)?;
        let partitions = if assignments.is_empty() {
            partitions
        } else {
            assignments.len() as i32
        };
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(
                "at most 100000 partitions".into(),
            ));
        }
        topic_configs::validate(&configs).map_err(TopicError::InvalidConfig)?;
        let _guard = self.changes.lock().await;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists);
        }
        let placement = if assignments.is_empty() {
            self.place(broker, partitions as usize)
        } else {
            self.place_assigned(broker, assignments, 0)?
        };
        let topic = Topic {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().as_u128(),
            placement,
            configs,
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }
        self.create_partitions(broker, &topic, 0).await?;
        match self.store(broker, topic.clone(), None).await {
            // Created at the same moment through another broker: theirs stands; drop the
            // partitions made for ours (nothing can have been written to them).
            Err(TopicError::AlreadyExists) => {
                self.drop_partitions(broker, &topic).await;
                Err(TopicError::AlreadyExists)
            }
            other => other,
        }
    }

    /// Grows a topic to `count` partitions.
    /// Grows a topic to `count` partitions, the new ones placed by load or by
    /// `assignments` (one per new partition, numbered from the first new one).
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        name: &str,
        count: i32,
        assignments: &[(i32, Vec<i32>)],
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock().await;
        let current = self.get(name).ok_or(TopicError::Unknown)?;
        if count <= current.partition_count() {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {} partitions, which is higher than or equal to the requested {count}",
                current.partition_count()
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(
                "at most 100000 partitions".into(),
            ));
        }
        let mut topic = (*current).clone();
        let first_new = topic.placement.len();
        let added = if assignments.is_empty() {
            self.place(broker, count as usize - first_new)
        } else if assignments.len() != count as usize - first_new {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "{} assignments for {} new partitions",
                assignments.len(),
                count as usize - first_new
            )));
        } else {
            self.place_assigned(broker, assignments, first_new as i32)?
        };
        topic.placement.extend(added);
        if validate_only {
            return Ok(Arc::new(topic));
        }
        self.create_partitions(broker, &topic, first_new).await?;
        let expected = broker.metadata.kv_get(&topic_key(name))?;
        self.store(broker, topic, expected).await
    }

    /// Replaces a topic's configs with `edit(current)`, validated as at CreateTopics
    /// (AlterConfigs and IncrementalAlterConfigs on the TOPIC resource); an `Err` from
    /// `edit` is INVALID_CONFIG.
    pub async fn alter_configs(
        &self,
        broker: &Broker,
        name: &str,
        edit: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock().await;
        let current = self.get(name).ok_or(TopicError::Unknown)?;
        let mut topic = (*current).clone();
        topic.configs = edit(&current.configs).map_err(TopicError::InvalidConfig)?;
        topic_configs::validate(&topic.configs).map_err(TopicError::InvalidConfig)?;
        if validate_only {
            return Ok(Arc::new(topic));
        }
        let expected = broker.metadata.kv_get(&topic_key(name))?;
        self.store(broker, topic, expected).await
    }

    /// Deletes a topic: the metadata record first (clients stop seeing it), then the data.
    pub async fn delete(&self, broker: &Broker, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock().await;
        let topic = self.get(name).ok_or(TopicError::Unknown)?;
        let expected = broker.metadata.kv_get(&topic_key(name))?;
        let cas = Command::CompareAndPut {
            key: topic_key(name),
            expected: expected.clone(),
            value: None,
        };
        match broker.metadata.propose_on_leader(cas).await? {
            CommandResponse::Compared(true) => {}
            // Deleted or changed through another broker meanwhile.
            _ => return Err(TopicError::Unknown),
        }
        self.by_name.write().unwrap().remove(name);
        self.drop_partitions(broker, &topic).await;
        Ok(topic)
    }

    /// Drops every partition of `topic` from its store groups (best effort: a failure
    /// leaves empty, unreachable partitions behind, and is logged).
    async fn drop_partitions(&self, broker: &Broker, topic: &Topic) {
        for (group, parts) in by_group(topic, 0) {
            if let Some(g) = broker.store_group(group) {
                if let Err(e) = g.propose_on_leader(Command::DeletePartitions(parts)).await {
                    tracing::warn!(topic = %topic.name, group = group.0, error = %e, "cannot drop partitions");
                }
            }
        }
    }

    /// Writes the topic record if the stored one is still `expected` (None: no topic by
    /// that name), so that changes made at once through different brokers cannot
    /// overwrite each other: the loser gets AlreadyExists (or Unknown for an update).
    async fn store(
        &self,
        broker: &Broker,
        topic: Topic,
        expected: Option<Bytes>,
    ) -> Result<Arc<Topic>, TopicError> {
        let value = serde_json::to_vec(&topic).expect("topic serializes");
        let creating = expected.is_none();
        let cas = Command::CompareAndPut {
            key: topic_key(&topic.name),
            expected,
            value: Some(Bytes::from(value)),
        };
        match broker.metadata.propose_on_leader(cas).await? {
            CommandResponse::Compared(true) => {}
            _ if creating => return Err(TopicError::AlreadyExists),
            _ => return Err(TopicError::Unknown),
        }
        let topic = Arc::new(topic);
        self.by_name
            .write()
            .unwrap()
            .insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    async fn create_partitions(
        &self,
        broker: &Broker,
        topic: &Topic,
        from: usize,
    ) -> Result<(), TopicError> {
        for (group, parts) in by_group(topic, from) {
            let g = broker.store_group(group).ok_or_else(|| {
                TopicError::Replication(ReplicationError::Raft(format!(
                    "store group {} is not open",
                    group.0
                )))
            })?;
            g.propose_on_leader(Command::CreatePartitions(parts))
                .await?;
        }
        Ok(())
    }

    /// Places `n` new partitions, each on the store group holding the fewest partitions.
    /// Partitions per store group.
    fn partitions_per_group(&self, broker: &Broker) -> BTreeMap<GroupId, usize> {
        let mut load: BTreeMap<GroupId, usize> = broker
            .store_group_ids()
            .into_iter()
            .map(|g| (g, 0))
            .collect();
        for t in self.by_name.read().unwrap().values() {
            for g in &t.placement {
                if let Some(c) = load.get_mut(g) {
                    *c += 1;
                }
            }
        }
        load
    }

    /// Store groups for manually assigned partitions (see `placement.rs`).
    fn place_assigned(
        &self,
        broker: &Broker,
        assignments: &[(i32, Vec<i32>)],
        first: i32,
    ) -> Result<Vec<GroupId>, TopicError> {
        let mut candidates: Vec<Candidate> = self
            .partitions_per_group(broker)
            .into_iter()
            .map(|(group, load)| {
                let r = broker.replicas(group);
                Candidate {
                    group,
                    voters: r.replicas.into_iter().collect(),
                    leader: r.leader,
                    load,
                }
            })
            .collect();
        let brokers: BTreeSet<i32> = match &broker.config.cluster {
            Some(c) => c.brokers.iter().map(|b| b.id as i32).collect(),
            None => BTreeSet::from([broker.node_id()]),
        };
        placement::map(assignments, first, &brokers, &mut candidates)
            .map_err(TopicError::InvalidReplicaAssignment)
    }

    fn place(&self, broker: &Broker, n: usize) -> Vec<GroupId> {
        let mut load = self.partitions_per_group(broker);
        (0..n)
            .map(|_| {
                let (&g, c) = load
                    .iter_mut()
                    .min_by_key(|(_, c)| **c)
                    .expect("at least one store group");
                *c += 1;
                g
            })
            .collect()
    }
}

fn topic_key(name: &str) -> Bytes {
    Bytes::from(format!("{TOPIC_PREFIX}{name}"))
}

/// The topic's partitions from index `from` on, grouped by store group.
fn by_group(topic: &Topic, from: usize) -> BTreeMap<GroupId, Vec<PartitionId>> {
    let mut out: BTreeMap<GroupId, Vec<PartitionId>> = BTreeMap::new();
    for (i, g) in topic.placement.iter().enumerate().skip(from) {
        out.entry(*g).or_default().push(PartitionId {
            topic_id: topic.id,
            index: i as i32,
        });
    }
    out
}

mod hex_u128 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        u128::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_x-2").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/",
            "ünï",
            &"x".repeat(250),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be invalid");
        }
    }
}
