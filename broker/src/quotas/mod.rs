//! Client quotas (Kafka's, KIP-13/KIP-55/KIP-219): byte rates per user and client id,
//! set with AlterClientQuotas, read with DescribeClientQuotas, enforced by every broker on
//! what it serves.
//!
//! Rules:
//! - Keys: `producer_byte_rate` (bytes/s of record batches a client may produce) and
//!   `consumer_byte_rate` (bytes/s of record batches it may fetch); positive numbers.
//!   `request_percentage` and any other key are refused with INVALID_REQUEST: phxq does
//!   not enforce them, and it never stores what it does not enforce.
//! - Entities and resolution: `entity.rs`. Until SASL exists every connection's user is
//!   `ANONYMOUS`, as in Kafka on a PLAINTEXT listener.
//! - Quotas live in the metadata Raft group (`quota/<entity>` -> JSON), so a change made
//!   through any broker reaches every broker as soon as the metadata group applies it; no
//!   restart.
//! - Enforcement is per broker, as in Kafka: each broker holds each metered entity to the
//!   quota for what *it* serves ([`bucket::Bucket`]). A throttled client gets its response
//!   at once with `throttle_time_ms` set and the broker reads nothing more from that
//!   connection until the time has passed (KIP-219); a Fetch that arrives while its client
//!   still owes time is answered without records.

pub mod admin;
pub mod bucket;
pub mod entity;
pub mod groups;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use phxq_replication::{Command, CommandResponse, ReplicationError, StoreGroup};
use serde::{Deserialize, Serialize};

use bucket::Bucket;
use entity::{Entity, Name};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Quota keys phxq enforces.
pub const KEYS: &[&str] = &[PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE];

/// The user of every connection until authentication exists.
pub const ANONYMOUS: &str = "ANONYMOUS";

const PREFIX: &str = "quota/";

/// The values set on one entity.
pub type Values = BTreeMap<String, f64>;

#[derive(Serialize, Deserialize)]
struct Stored {
    entity: Vec<(String, Option<String>)>,
    values: Values,
}

/// How a DescribeClientQuotas component matches an entity's name of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Default,
    /// Any name, not the default.
    Specified,
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("{0}")]
    Invalid(String),
    #[error("the entity's quotas were changed at the same time through another broker; retry")]
    Conflict,
    #[error("{0}")]
    Replication(#[from] ReplicationError),
}

/// Checks one alteration: known key, positive value (None: remove).
pub fn validate(key: &str, value: Option<f64>) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!(
            "quota {key:?} is not supported by phxq (supported: {})",
            KEYS.join(", ")
        ));
    }
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            Err(format!("{key} must be a positive number, got {v}"))
        }
        _ => Ok(()),
    }
}

pub struct QuotaManager {
    /// Dequeue speed limits of consumer groups.
    pub groups: groups::GroupLimits,
    by_entity: RwLock<BTreeMap<Entity, Values>>,
    buckets: Mutex<HashMap<(Entity, &'static str), Bucket>>,
    started: Instant,
}

impl Default for QuotaManager {
    fn default() -> Self {
        QuotaManager {
            groups: groups::GroupLimits::default(),
            by_entity: RwLock::default(),
            buckets: Mutex::default(),
            started: Instant::now(),
        }
    }
}

impl QuotaManager {
    /// Milliseconds on the quotas' monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn load(metadata: &StoreGroup) -> anyhow::Result<QuotaManager> {
        let q = QuotaManager::default();
        q.reload(metadata)?;
        Ok(q)
    }

    /// Re-reads every quota from the metadata group's applied state.
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the client quotas: {e}"))?;
        let mut all = BTreeMap::new();
        for (k, v) in rows {
            let s: Stored = serde_json::from_slice(&v).map_err(|e| {
                anyhow::anyhow!(
                    "corrupt quota record {:?}: {e}",
                    String::from_utf8_lossy(&k)
                )
            })?;
            let entity =
                Entity::from_parts(s.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref())))
                    .map_err(|e| anyhow::anyhow!("corrupt quota record: {e}"))?;
            all.insert(entity, s.values);
        }
        *self.by_entity.write().unwrap() = all;
        Ok(())
    }

    /// Entities and their quotas that match every component (`strict`: and have no other
    /// entity type).
    pub fn describe(&self, components: &[(String, Match)], strict: bool) -> Vec<(Entity, Values)> {
        self.by_entity
            .read()
            .unwrap()
            .iter()
            .filter(|(e, _)| {
                let name_of = |kind: &str| match kind {
                    entity::USER => Some(&e.user),
                    entity::CLIENT_ID => Some(&e.client_id),
                    _ => None,
                };
                let all_match = components.iter().all(|(kind, m)| {
                    match (name_of(kind).and_then(|n| n.as_ref()), m) {
                        (None, _) => false,
                        (Some(Name::Named(n)), Match::Exact(want)) => n == want,
                        (Some(Name::Default), Match::Default) => true,
                        (Some(Name::Named(_)), Match::Specified) => true,
                        _ => false,
                    }
                });
                let types = e.parts().len();
                all_match && (!strict || types == components.len())
            })
            .map(|(e, v)| (e.clone(), v.clone()))
            .collect()
    }

    /// Applies `ops` (key, Some(value) to set, None to remove) to `entity`, written with a
    /// compare-and-put on the metadata group.
    pub async fn alter(
        &self,
        metadata: &StoreGroup,
        entity: &Entity,
        ops: &[(String, Option<f64>)],
        validate_only: bool,
    ) -> Result<(), QuotaError> {
        for (k, v) in ops {
            validate(k, *v).map_err(QuotaError::Invalid)?;
        }
        let key = Bytes::from(format!("{PREFIX}{}", entity.key()));
        let stored = metadata.kv_get(&key)?;
        let mut values = match &stored {
            Some(b) => {
                serde_json::from_slice::<Stored>(b)
                    .map_err(|e| QuotaError::Invalid(format!("stored quotas unreadable: {e}")))?
                    .values
            }
            None => Values::new(),
        };
        for (k, v) in ops {
            match v {
                Some(v) => values.insert(k.clone(), *v),
                None => values.remove(k),
            };
        }
        if validate_only {
            return Ok(());
        }
        let value = (!values.is_empty()).then(|| {
            let s = Stored {
                entity: entity
                    .parts()
                    .into_iter()
                    .map(|(t, n)| (t.to_string(), n.map(String::from)))
                    .collect(),
                values: values.clone(),
            };
            Bytes::from(serde_json::to_vec(&s).expect("quota record serializes"))
        });
        match metadata
            .propose_on_leader(Command::CompareAndPut {
                key,
                expected: stored,
                value,
            })
            .await?
        {
            CommandResponse::Compared(true) => {}
            _ => return Err(QuotaError::Conflict),
        }
        let mut all = self.by_entity.write().unwrap();
        if values.is_empty() {
            all.remove(entity);
        } else {
            all.insert(entity.clone(), values);
        }
        Ok(())
    }

    /// The quota for `key` that governs (`user`, `client_id`): the entity it is metered
    /// for and the rate.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(Entity, f64)> {
        let all = self.by_entity.read().unwrap();
        if all.is_empty() {
            return None;
        }
        Entity::candidates(user, client_id)
            .into_iter()
            .find_map(|e| all.get(&e).and_then(|v| v.get(key)).map(|r| (e, *r)))
            .map(|(e, r)| (e.metered(user, client_id), r))
    }

    /// How long a client must still wait before it may take more under `key` (0 when it
    /// has no quota or owes nothing).
    pub fn owed_ms(&self, key: &'static str, user: &str, client_id: &str, now_ms: u64) -> u64 {
        self.with_bucket(key, user, client_id, now_ms, |b| b.throttle_ms(now_ms))
    }

    /// Runs `f` on the bucket of the quota that governs the client (0 without one).
    fn with_bucket(
        &self,
        key: &'static str,
        user: &str,
        client_id: &str,
        now_ms: u64,
        f: impl FnOnce(&mut Bucket) -> u64,
    ) -> u64 {
        let Some((entity, rate)) = self.resolve(key, user, client_id) else {
            return 0;
        };
        let mut buckets = self.buckets.lock().unwrap();
        let b = buckets
            .entry((entity, key))
            .or_insert_with(|| Bucket::new(rate, now_ms));
        b.set_rate(rate);
        f(b)
    }

    /// Counts `amount` served under `key` and returns the throttle time it results in.
    pub fn record(
        &self,
        key: &'static str,
        user: &str,
        client_id: &str,
        amount: f64,
        now_ms: u64,
    ) -> u64 {
        self.with_bucket(key, user, client_id, now_ms, |b| b.take(amount, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (entity as (type, name) pairs, quota key, rate)
    type Setting<'a> = (&'a [(&'a str, Option<&'a str>)], &'a str, f64);

    fn manager(quotas: &[Setting]) -> QuotaManager {
        let q = QuotaManager::default();
        {
            let mut all = q.by_entity.write().unwrap();
            for (parts, key, v) in quotas {
                let e = Entity::from_parts(parts.iter().copied()).unwrap();
                all.entry(e).or_default().insert(key.to_string(), *v);
            }
        }
        q
    }

    #[test]
    fn the_most_specific_entity_with_the_key_wins() {
        let q = manager(&[
            (&[("client-id", None)], CONSUMER_BYTE_RATE, 100.0),
            (&[("client-id", Some("app"))], CONSUMER_BYTE_RATE, 500.0),
            (&[("user", Some("ANONYMOUS"))], PRODUCER_BYTE_RATE, 50.0),
        ]);
        let (e, r) = q.resolve(CONSUMER_BYTE_RATE, ANONYMOUS, "app").unwrap();
        assert_eq!((e.to_string().as_str(), r), ("client-id=app", 500.0));
        let (e, r) = q.resolve(CONSUMER_BYTE_RATE, ANONYMOUS, "other").unwrap();
        assert_eq!((e.to_string().as_str(), r), ("client-id=other", 100.0));
        // A user quota outranks client-id quotas for its key only.
        let (e, _) = q.resolve(PRODUCER_BYTE_RATE, ANONYMOUS, "app").unwrap();
        assert_eq!(e.to_string(), "user=ANONYMOUS");
        assert!(q.resolve(PRODUCER_BYTE_RATE, "bob", "app").is_none());
    }

    #[test]
    fn describe_matches_like_kafka() {
        let q = manager(&[
            (&[("client-id", None)], CONSUMER_BYTE_RATE, 100.0),
            (&[("client-id", Some("app"))], CONSUMER_BYTE_RATE, 500.0),
            (
                &[("user", Some("u")), ("client-id", Some("app"))],
                CONSUMER_BYTE_RATE,
                7.0,
            ),
        ]);
        let c = |m| vec![("client-id".to_string(), m)];
        assert_eq!(q.describe(&c(Match::Exact("app".into())), true).len(), 1);
        assert_eq!(q.describe(&c(Match::Exact("app".into())), false).len(), 2);
        assert_eq!(q.describe(&c(Match::Default), false).len(), 1);
        assert_eq!(q.describe(&c(Match::Specified), false).len(), 2);
        assert_eq!(q.describe(&[], false).len(), 3);
    }

    #[test]
    fn only_enforced_keys_and_positive_rates() {
        assert!(validate(PRODUCER_BYTE_RATE, Some(1024.0)).is_ok());
        assert!(validate(CONSUMER_BYTE_RATE, None).is_ok());
        assert!(validate("request_percentage", Some(50.0)).is_err());
        assert!(validate(CONSUMER_BYTE_RATE, Some(0.0)).is_err());
        assert!(validate(CONSUMER_BYTE_RATE, Some(f64::NAN)).is_err());
    }

    #[test]
    fn throttles_follow_the_metered_entity() {
        let q = manager(&[(&[("client-id", None)], CONSUMER_BYTE_RATE, 1000.0)]);
        assert_eq!(q.record(CONSUMER_BYTE_RATE, ANONYMOUS, "a", 1500.0, 0), 500);
        assert_eq!(q.owed_ms(CONSUMER_BYTE_RATE, ANONYMOUS, "a", 100), 400);
        // Another client id has its own share of the default.
        assert_eq!(q.owed_ms(CONSUMER_BYTE_RATE, ANONYMOUS, "b", 100), 0);
        // No quota: never throttled.
        assert_eq!(q.record(PRODUCER_BYTE_RATE, ANONYMOUS, "a", 1e12, 0), 0);
    }
}
