//! Dynamic broker configs (Kafka's KIP-226): broker configs changed at run time with
//! AlterConfigs / IncrementalAlterConfigs on the BROKER resource, cluster-wide (resource
//! name "") or for one broker (its id), without a restart.
//!
//! Rules:
//! - Which configs are dynamic and how values are checked: `defs`; precedence (topic >
//!   per broker > cluster default > static > Kafka's default) and the values in effect:
//!   `resolve`.
//! - They live in the metadata Raft group (`broker-config/default`,
//!   `broker-config/<id>` -> JSON map), so they survive restarts, and every broker reloads
//!   them whenever the metadata group applies something
//!   (`cluster::balance::follow_metadata`): a change made through any broker is in effect
//!   on every broker within moments.
//! - Each broker applies its own per-broker configs over the cluster defaults; the
//!   retention task and produce read [`BrokerConfigs::effective`], so a topic without
//!   its own `retention.ms` follows a changed `log.retention.ms` at the next check.
//! - A change is a compare-and-put on the metadata group: concurrent changes through
//!   different brokers cannot lose each other (the loser is told to retry).

pub mod admin;
pub mod defs;
pub mod resolve;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use phxq_replication::{Command, CommandResponse, ReplicationError, StoreGroup};

use crate::config::Config;
use crate::config_ops::Op;
pub use resolve::Values;
use resolve::{effective, Layers};

const PREFIX: &str = "broker-config/";
const DEFAULT_KEY: &str = "default";

/// Which dynamic configs a change is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Cluster-wide defaults (resource name "").
    Default,
    /// One broker (resource name: its id).
    Broker(i32),
}

impl Level {
    fn key(self) -> Bytes {
        match self {
            Level::Default => Bytes::from(format!("{PREFIX}{DEFAULT_KEY}")),
            Level::Broker(id) => Bytes::from(format!("{PREFIX}{id}")),
        }
    }
}

/// Why a change failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("the broker configs were changed at the same time through another broker; retry")]
    Conflict,
    #[error("{0}")]
    Replication(#[from] ReplicationError),
}

/// Every dynamic config of the cluster, and what is in effect on this broker.
pub struct Snapshot {
    pub default: Values,
    pub by_broker: BTreeMap<i32, Values>,
    /// The running configuration with this broker's dynamic configs applied.
    pub effective: Arc<Config>,
}

/// The dynamic broker configs, as the metadata group holds them.
pub struct BrokerConfigs {
    node_id: i32,
    /// The configuration the broker was started with (STATIC_BROKER_CONFIG).
    config: Config,
    state: RwLock<Arc<Snapshot>>,
}

impl BrokerConfigs {
    pub fn load(metadata: &StoreGroup, config: &Config) -> anyhow::Result<BrokerConfigs> {
        let r = BrokerConfigs {
            node_id: config.node_id as i32,
            config: config.clone(),
            state: RwLock::new(Arc::new(Snapshot {
                default: Values::new(),
                by_broker: BTreeMap::new(),
                effective: Arc::new(config.clone()),
            })),
        };
        r.reload(metadata)?;
        Ok(r)
    }

    /// Re-reads every dynamic broker config from the metadata group's applied state. A
    /// failed read keeps what was there and is an error (never "no configs").
    pub fn reload(&self, metadata: &StoreGroup) -> anyhow::Result<()> {
        let rows = metadata
            .kv_scan(PREFIX.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot read the dynamic broker configs: {e}"))?;
        let mut default = Values::new();
        let mut by_broker = BTreeMap::new();
        for (k, v) in rows {
            let name = String::from_utf8_lossy(&k[PREFIX.len()..]).to_string();
            let values: Values = serde_json::from_slice(&v).map_err(|e| {
                anyhow::anyhow!("corrupt dynamic broker config record {name:?}: {e}")
            })?;
            if name == DEFAULT_KEY {
                default = values;
            } else if let Ok(id) = name.parse::<i32>() {
                by_broker.insert(id, values);
            }
        }
        self.publish(default, by_broker);
        Ok(())
    }

    fn publish(&self, default: Values, by_broker: BTreeMap<i32, Values>) {
        let none = Values::new();
        let effective = effective(&Layers {
            config: &self.config,
            broker: by_broker.get(&self.node_id).unwrap_or(&none),
            default: &default,
        });
        *self.state.write().unwrap() = Arc::new(Snapshot {
            default,
            by_broker,
            effective: Arc::new(effective),
        });
    }

    /// Everything as of the last reload.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().unwrap().clone()
    }

    /// The running configuration with this broker's dynamic configs in effect.
    pub fn effective(&self) -> Arc<Config> {
        self.snapshot().effective.clone()
    }

    /// The configuration this broker was started with.
    pub fn static_config(&self) -> &Config {
        &self.config
    }

    /// Calls `f` with the layers this broker resolves configs with.
    pub fn with_layers<T>(&self, f: impl FnOnce(&Layers) -> T) -> T {
        let s = self.snapshot();
        let none = Values::new();
        f(&Layers {
            config: &self.config,
            broker: s.by_broker.get(&self.node_id).unwrap_or(&none),
            default: &s.default,
        })
    }

    /// Changes the dynamic configs of `level`: `replace` (AlterConfigs) starts from
    /// nothing, else from what is set; `ops` are applied and the result checked
    /// (`resolve::edit`). With `validate_only` nothing is written. A change that lost a
    /// race with another broker's is applied again to what that one wrote, a few times.
    pub async fn alter(
        &self,
        metadata: &StoreGroup,
        level: Level,
        replace: bool,
        ops: &[Op],
        validate_only: bool,
    ) -> Result<Values, ConfigError> {
        const ATTEMPTS: usize = 3;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Let this broker apply the change that came first before reading it.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if let Some(next) = self
                .try_alter(metadata, level, replace, ops, validate_only)
                .await?
            {
                return Ok(next);
            }
        }
        Err(ConfigError::Conflict)
    }

    /// One compare-and-put attempt: `None` when another change came first.
    async fn try_alter(
        &self,
        metadata: &StoreGroup,
        level: Level,
        replace: bool,
        ops: &[Op],
        validate_only: bool,
    ) -> Result<Option<Values>, ConfigError> {
        let key = level.key();
        let stored = metadata.kv_get(&key)?;
        let current: Values = match (&stored, replace) {
            (Some(b), false) => serde_json::from_slice(b).map_err(|e| {
                ConfigError::Invalid(format!("stored broker configs unreadable: {e}"))
            })?,
            _ => Values::new(),
        };
        let next = resolve::edit(current, ops).map_err(ConfigError::Invalid)?;
        if validate_only {
            return Ok(Some(next));
        }
        let value = (!next.is_empty())
            .then(|| Bytes::from(serde_json::to_vec(&next).expect("map serializes")));
        let cas = Command::CompareAndPut {
            key,
            expected: stored,
            value,
        };
        match metadata.propose_on_leader(cas).await? {
            CommandResponse::Compared(true) => {}
            _ => return Ok(None),
        }
        // In effect here at once; elsewhere when their metadata group applies it.
        let s = self.snapshot();
        let (mut default, mut by_broker) = (s.default.clone(), s.by_broker.clone());
        match level {
            Level::Default => default = next.clone(),
            Level::Broker(id) => {
                by_broker.insert(id, next.clone());
            }
        }
        self.publish(default, by_broker);
        Ok(Some(next))
    }
}
