//! The state every handler shares: configuration, the replication node with its metadata
//! group and store groups, and the topic registry.

use std::sync::Arc;

use bytes::Bytes;
use phxq_replication::{Command, GroupId, NodeConfig, ReplicaNode, StoreGroup};
use tracing::{info, warn};

use crate::audit;
use crate::audit::deliveries::{Check, Deliveries, Verdict};
use crate::audit::reconcile::Mode;
use crate::broker_configs::BrokerConfigs;
use crate::config::Config;
use crate::groups::configs::{GroupConfigRegistry, GroupSettings};
use crate::groups::consumer::TopicMetadata;
use crate::groups::consumer_coordinator::Catalog;
use crate::groups::views::Holders;
use crate::groups::GroupCoordinator;
use crate::quotas::QuotaManager;
use crate::topics::TopicRegistry;

pub struct Broker {
    pub config: Config,
    pub node: Arc<ReplicaNode>,
    /// Group 0: topics, placement, cluster id.
    pub metadata: StoreGroup,
    pub topics: TopicRegistry,
    /// Group configs (GROUP resource of the config APIs), from the metadata group.
    pub group_configs: GroupConfigRegistry,
    /// Dynamic broker configs, from the metadata group (`broker_configs/`): what this
    /// broker runs with is `broker_configs.effective()`, `config` is what it started with.
    pub broker_configs: BrokerConfigs,
    /// Client quotas, from the metadata group (`quotas/`).
    pub quotas: QuotaManager,
    /// Users' SCRAM credentials, from the metadata group (`security/credentials.rs`).
    pub credentials: crate::security::credentials::Credentials,
    /// The cluster's ACLs and the authorizer built from them (`security/acl/store.rs`).
    pub acls: crate::security::acl::store::Acls,
    /// Store group leaders as the metadata group records them (`cluster/leaders.rs`).
    pub leaders: crate::cluster::leaders::LeaderDirectory,
    /// Consumer groups coordinated by this node (see `groups/`).
    pub groups: Arc<GroupCoordinator>,
    /// Counters and histograms exposed on the metrics endpoint (`metrics/`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether the disk still takes new records (`disk/`).
    pub disk: crate::disk::DiskGuard,
    /// What this broker, as partition leader, gave each client (`audit/`).
    pub deliveries: Deliveries,
    /// Transactions coordinated by this node (`txn/`).
    pub txns: Arc<crate::txn::manager::TxnManager>,
    /// Share groups' share-partitions this broker leads, and its share sessions (`share/`).
    pub share: Arc<crate::share::manager::ShareManager>,
    pub cluster_id: String,
    /// Advertised host and port, as given to clients.
    pub host: String,
    pub port: i32,
    /// Stops the inter-broker listener (cluster only).
    internal_stop: Option<Arc<tokio::sync::Notify>>,
}

const CLUSTER_ID_KEY: &[u8] = b"cluster_id";

impl Broker {
    pub async fn open(config: Config) -> anyhow::Result<Arc<Broker>> {
        let mut raft = NodeConfig::single(config.node_id, config.data_dir.clone());
        raft.heartbeat_interval_ms = config.raft_heartbeat_ms;
        raft.cache_bytes = config.cache_mb << 20;
        raft.election_timeout_min_ms = config.raft_heartbeat_ms * 3;
        raft.election_timeout_max_ms = config.raft_heartbeat_ms * 6;
        raft.segment_bytes = config.log.segment_bytes;
        let (node, metadata, cluster_id, internal_stop) = match &config.cluster {
            None => {
                let node = ReplicaNode::open(raft).await.map_err(|e| {
                    anyhow::anyhow!("cannot open data dir {}: {e}", config.data_dir.display())
                })?;
                let metadata = node.open_group(GroupId::METADATA).await?;
                for g in 1..=config.store_groups {
                    node.open_group(GroupId(g)).await?;
                }
                // A read error refuses to start: it must not pass for "no cluster id yet"
                // and have a new one written over the real one.
                let stored = metadata
                    .kv_get(CLUSTER_ID_KEY)
                    .map_err(|e| anyhow::anyhow!("cannot read the cluster id: {e}"))?;
                let cluster_id = match stored {
                    Some(id) => String::from_utf8_lossy(&id).into_owned(),
                    None => {
                        let id = new_cluster_id();
                        metadata
                            .propose(Command::Put(vec![(
                                Bytes::from_static(CLUSTER_ID_KEY),
                                Some(Bytes::from(id.clone())),
                            )]))
                            .await?;
                        id
                    }
                };
                (node, metadata, cluster_id, None)
            }
            Some(cluster) => {
                let c = crate::cluster::node::open(&config, cluster, raft).await?;
                let id =
                    crate::cluster::node::cluster_id(&c.metadata, CLUSTER_ID_KEY, new_cluster_id)
                        .await?;
                (c.node, c.metadata, id, Some(c.stop))
            }
        };
        let topics = TopicRegistry::load(&metadata)?;
        let group_configs = GroupConfigRegistry::load(&metadata)?;
        let broker_configs = BrokerConfigs::load(&metadata, &config)?;
        let quotas = QuotaManager::load(&metadata)?;
        let credentials = crate::security::credentials::Credentials::load(&metadata)?;
        let acls = crate::security::acl::store::Acls::load(&metadata, &config.security)?;
        let leaders = crate::cluster::leaders::LeaderDirectory::load(&metadata)?;
        quotas
            .groups
            .reload(&metadata, &group_configs, &config.groups)?;
        info!(%cluster_id, topics = topics.len(), "metadata loaded");
        let groups = GroupCoordinator::start(
            config.groups.clone(),
            node.clone(),
            (1..=config.store_groups).map(GroupId).collect(),
        );
        let txns = crate::txn::manager::TxnManager::start(
            config.transactions.clone(),
            node.clone(),
            metadata.clone(),
            (1..=config.store_groups).map(GroupId).collect(),
        );
        let (host, port) = config.advertised();
        let disk = crate::disk::DiskGuard::new(&config.data_dir, &config.storage);
        let config_share_sessions = config.groups.share.max_share_sessions as usize;
        let broker = Arc::new(Broker {
            metrics: Arc::new(crate::metrics::Metrics::new()),
            disk,
            config,
            node,
            metadata,
            topics,
            group_configs,
            broker_configs,
            quotas,
            credentials,
            acls,
            leaders,
            groups,
            txns,
            deliveries: Deliveries::default(),
            share: Arc::new(crate::share::manager::ShareManager::new(
                config_share_sessions,
            )),
            cluster_id,
            host,
            port,
            internal_stop,
        });
        let catalog: std::sync::Weak<dyn Catalog> = Arc::downgrade(&broker) as _;
        broker.groups.set_catalog(catalog);
        let writer: std::sync::Weak<dyn crate::txn::manager::MarkerWriter> =
            Arc::downgrade(&broker) as _;
        broker.txns.set_writer(writer);
        // Other brokers' coordinators check commits with this broker's deliveries.
        let weak = Arc::downgrade(&broker);
        broker
            .node
            .set_peer_service(Arc::new(move |service: String, body: Bytes| {
                let weak = weak.clone();
                Box::pin(async move {
                    let b = weak.upgrade().ok_or("the broker is shutting down")?;
                    match service.as_str() {
                        audit::service::SERVICE => {
                            audit::service::answer_peer(&b.deliveries, &b.topics, &b.node, &body)
                        }
                        crate::share::admin::SERVICE => {
                            let settings = |g: &str| b.share_settings(g);
                            crate::share::admin::answer_peer(
                                &b.topics, &b.node, &b.share, &settings, &body,
                            )
                            .await
                        }
                        crate::txn::markers::SERVICE => {
                            crate::txn::markers::answer_peer(&b, &body).await
                        }
                        other => Err(format!("unknown peer service {other:?}")),
                    }
                })
            }));
        // Topics, group configs, broker configs, quotas and the holders of speed-limited groups follow the
        // metadata group (also on a single node: the coordinator publishes holders there).
        tokio::spawn(crate::cluster::balance::follow_metadata(Arc::downgrade(
            &broker,
        )));
        // Share-partitions: lock expiry and idle share sessions; dead letters.
        tokio::spawn(crate::share::manager::run(Arc::downgrade(&broker.share)));
        let (dead_letters, letters) = tokio::sync::mpsc::channel(crate::share::dlq::QUEUE);
        broker.share.send_dead_letters_to(dead_letters);
        let sink: std::sync::Weak<dyn crate::share::dlq::Sink> = Arc::downgrade(&broker) as _;
        tokio::spawn(crate::share::dlq::run(letters, sink));
        // Retention runs on the leaders of the store groups, in the background.
        tokio::spawn(crate::retention::run(Arc::downgrade(&broker)));
        broker.metrics.watch(Arc::downgrade(&broker));
        // Free disk space is watched on every broker (produce stops below the floor).
        tokio::spawn(crate::disk::run(Arc::downgrade(&broker)));
        // Compaction runs on every replica of a compacted partition, in the background.
        tokio::spawn(crate::compaction::run(Arc::downgrade(&broker)));
        if broker.config.cluster.is_some() {
            tokio::spawn(crate::cluster::leaders::publish(Arc::downgrade(&broker)));
            tokio::spawn(crate::cluster::balance::rebalance_leaders(Arc::downgrade(
                &broker,
            )));
        }
        Ok(broker)
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id as i32
    }

    /// Whether consumers' fetches must be recorded for the audit (`audit/`): some group may
    /// be audited (the broker's default is on, or a group turns it on).
    pub fn audit_on(&self) -> bool {
        self.config.groups.audit != Mode::Off.name() || self.group_configs.any_audited()
    }

    /// The store group holding a partition placed in `group`.
    pub fn store_group(&self, group: GroupId) -> Option<StoreGroup> {
        self.node.group(group)
    }

    /// The store group `group` if this broker leads it and has applied everything earlier
    /// leaders committed; else NOT_LEADER_OR_FOLLOWER, so the client refreshes its metadata
    /// and goes to the leader. The data path (produce, fetch, offsets) goes through here.
    pub fn leading(&self, group: GroupId) -> Result<StoreGroup, i16> {
        match self.node.group(group) {
            Some(g) if g.leader_ready() => Ok(g),
            _ => Err(phxq_protocol::errors::NOT_LEADER_OR_FOLLOWER),
        }
    }

    /// [`Broker::leading`], checking the client's idea of the leader epoch (KIP-320): a
    /// `current_leader_epoch` below the leader's is FENCED_LEADER_EPOCH (the client's
    /// metadata is stale), above it UNKNOWN_LEADER_EPOCH (this broker's is); -1 skips the
    /// check. Returns the group and its leader epoch.
    pub fn leading_at(
        &self,
        group: GroupId,
        current_leader_epoch: i32,
    ) -> Result<(StoreGroup, i32), i16> {
        let g = self.leading(group)?;
        let epoch = g
            .leader_epoch()
            .ok_or(phxq_protocol::errors::NOT_LEADER_OR_FOLLOWER)?;
        match current_leader_epoch {
            e if e < 0 || e == epoch => Ok((g, epoch)),
            e if e < epoch => Err(phxq_protocol::errors::FENCED_LEADER_EPOCH),
            _ => Err(phxq_protocol::errors::UNKNOWN_LEADER_EPOCH),
        }
    }

    /// Store groups new partitions may be placed in.
    pub fn store_group_ids(&self) -> Vec<GroupId> {
        (1..=self.config.store_groups).map(GroupId).collect()
    }

    pub async fn shutdown(&self) {
        if let Some(stop) = &self.internal_stop {
            stop.notify_one();
        }
        self.node.shutdown().await;
    }
}

/// Topics and logs as the consumer group coordinator and its scheduler see them.
impl TopicMetadata for Broker {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|t| t.partition_count())
    }

    fn topic_names(&self) -> Vec<String> {
        self.topics.all().iter().map(|t| t.name.clone()).collect()
    }
}

impl Catalog for Broker {
    fn group_settings(&self, group: &str) -> GroupSettings {
        GroupSettings::resolve(&self.config.groups, &self.group_configs.get(group))
    }

    fn share_settings(&self, group: &str) -> crate::share::config::ShareSettings {
        crate::groups::configs::share_settings(&self.config.groups, &self.group_configs.get(group))
    }

    fn share_max_size(&self) -> u32 {
        self.config.groups.share.max_size
    }

    fn publish_holders(&self, group: &str, holders: Holders) {
        // This broker attributes fetches at once; the others once the metadata group
        // applies the write.
        let settings = self.group_settings(group);
        self.quotas.groups.set_holders(group, &settings, &holders);
        let metadata = self.metadata.clone();
        let cmd = crate::quotas::groups::holders_command(group, &holders);
        let group = group.to_string();
        tokio::spawn(async move {
            if let Err(e) = metadata.propose_on_leader(cmd).await {
                warn!(%group, error = %e, "cannot publish the partition holders of a speed-limited group; will retry");
            }
        });
    }

    fn check_deliveries(
        &self,
        checks: Vec<Check>,
    ) -> futures::future::BoxFuture<'_, Vec<Result<Verdict, String>>> {
        Box::pin(audit::service::check(
            &self.deliveries,
            &self.topics,
            &self.node,
            checks,
        ))
    }

    fn log_end(&self, topic: &str, partition: i32) -> Option<i64> {
        let (pid, group) = self.topics.get(topic)?.partition(partition)?;
        Some(self.node.group(group)?.offsets(pid)?.high_watermark)
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = uuid::Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((bits >> (i * 6)) & 63) as usize] as char)
        .collect()
}

/// The dead-letter writer's view of the broker (`share/dlq.rs`): the group's target, the
/// source log (this broker leads it), and a Produce to the dead-letter topic's leader over
/// the Kafka protocol, as any producer (acks=all), so it works wherever that leader is.
impl crate::share::dlq::Sink for Broker {
    fn target(&self, group: &str) -> Option<crate::share::dlq::Target> {
        crate::groups::configs::dead_letter_target(&self.group_configs.get(group))
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, String> {
        let (pid, g) = self
            .topics
            .get(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| format!("no partition {topic}-{partition}"))?;
        let store = self
            .leading(g)
            .map_err(|_| format!("this broker does not lead {topic}-{partition}"))?;
        let mut buf = bytes::BytesMut::new();
        store
            .read(
                pid,
                offset,
                phxq_replication::ReadLimit::at_least_one_batch(max_bytes),
                &mut buf,
            )
            .map_err(|e| e.to_string())?;
        Ok(buf.freeze())
    }

    fn produce(
        &self,
        topic: String,
        hint: i32,
        records: Vec<kafka_protocol::records::Record>,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        let bootstrap = format!("{}:{}", self.host, self.port);
        let partitions = self.topics.get(&topic).map(|t| t.partition_count());
        Box::pin(async move {
            let n = partitions
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("no dead-letter topic {topic}"))?;
            let partition = hint.rem_euclid(n);
            tokio::task::spawn_blocking(move || {
                crate::admin::produce::send_batch(&bootstrap, &topic, partition, &records)
            })
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
        })
    }

    fn failed(&self, n: u64) {
        self.share
            .dead_letters_failed
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}
