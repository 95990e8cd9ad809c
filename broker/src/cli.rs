//! Command line: `phxq serve` and its flags. Flags override environment variables
//! (`PHXQ_*`), which override the TOML file given with `--config`, which overrides defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "phxq",
    version,
    about = "A Kafka-wire-compatible message broker built like PhxQueue"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: `text` (default) or `json` (one JSON object per line, with the
    /// event's fields, for log shippers).
    #[arg(long, global = true, env = "PHXQ_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Client security of the admin commands, as Kafka tools take it: a properties file
    /// with security.protocol, sasl.mechanism, sasl.username/sasl.password (or
    /// sasl.jaas.config), ssl.ca.location, ssl.certificate.location/ssl.key.location,
    /// ssl.endpoint.identification.algorithm (see security/client.rs).
    #[arg(long, global = true, env = "PHXQ_COMMAND_CONFIG", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a broker node (a single node on 127.0.0.1:9092 with ./data by default).
    Serve(Box<ServeArgs>),
    /// Inspect consumer groups (members, assignments, committed offsets, lag) and reset
    /// their offsets.
    Group(GroupArgs),
    /// Run a local cluster, or show a cluster's brokers, Raft groups, leaders and lag.
    Cluster(ClusterArgs),
    /// List and set client quotas (byte rates per client id or user).
    Quota(QuotaArgs),
    /// Create, list, describe, delete and grow topics; produce lines and consume records.
    Topic(TopicArgs),
    /// List transactions and describe a transactional id (as kafka-transactions does).
    Txn(TxnArgs),
    /// Create, list and delete SCRAM users (SASL/SCRAM and SASL/PLAIN logins).
    User(UserArgs),
    /// Add, list and remove ACLs (who may do what to topics, groups, transactional ids
    /// and the cluster), as kafka-acls does.
    Acl(AclArgs),
    /// Show and change broker configs (dynamic, without a restart: cluster-wide or per
    /// broker) and topic configs, as kafka-configs does.
    Config(ConfigArgs),
}

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: crate::security::admin::UserCommand,
}

#[derive(clap::Args, Debug)]
pub struct AclArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: crate::security::acl::admin::AclCommand,
}

#[derive(clap::Args, Debug)]
pub struct TxnArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(Subcommand, Debug)]
pub enum TxnCommand {
    /// The transactional ids every broker coordinates, with producer id and state.
    List {
        /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort,
        /// CompleteCommit, CompleteAbort); repeat for several.
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only transactions running for longer than this many ms.
        #[arg(long)]
        min_duration_ms: Option<i64>,
        /// Only transactional ids the whole of which match this regular expression.
        #[arg(long)]
        pattern: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One transactional id: state, producer id and epoch, timeout, start time, partitions.
    Describe {
        transactional_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: crate::broker_configs::admin::ConfigCommand,
}

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Every topic with its partitions and replicas.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A topic's partitions (leader, replicas, ISR, log start and end) and its own configs.
    Describe {
        topic: String,
        #[arg(long)]
        json: bool,
    },
    /// Create topics (configs with -c KEY=VALUE).
    Create(crate::admin::topics::CreateArgs),
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set and remove a topic's configs (IncrementalAlterConfigs, as `phxq config set|delete
    /// --topic`).
    #[command(arg_required_else_help = true)]
    AlterConfig {
        topic: String,
        /// KEY=VALUE to set (repeatable), e.g. --set retention.ms=3600000.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A config to remove (back to the broker's default; repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to this many partitions.
    AddPartitions {
        topic: String,
        /// The partition count afterwards.
        #[arg(long)]
        to: i32,
    },
    /// Write each line of standard input as a record.
    Produce(crate::admin::produce::ProduceArgs),
    /// Print records (from the start, the end, an offset, a time or a group's offsets).
    Consume(crate::admin::consume::ConsumeArgs),
}

#[derive(clap::Args, Debug)]
pub struct QuotaArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: QuotaCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Every client quota set in the cluster.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set or remove the quotas of a client id or user (or their defaults).
    Set(crate::quotas::admin::SetArgs),
}

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Start every node of a local cluster (<config-dir>/nodeN.toml) as child processes,
    /// each with its own data directory; Ctrl-C stops them all.
    Up(crate::cluster::up::UpArgs),
    /// Show the brokers, every Raft group's leader and term, and the followers' lag.
    Status(crate::cluster::status::StatusArgs),
    /// Cluster id, controller, brokers (host, port, rack), topic and partition counts, over
    /// the Kafka protocol (DescribeCluster, Metadata): works against Kafka too.
    Info {
        #[command(flatten)]
        broker: BootstrapArg,
        #[arg(long)]
        json: bool,
    },
}

/// The broker an admin command talks to.
#[derive(clap::Args, Debug)]
pub struct BootstrapArg {
    /// Broker to ask (HOST:PORT).
    #[arg(
        long,
        global = true,
        visible_alias = "bootstrap-server",
        default_value = "127.0.0.1:9092",
        env = "PHXQ_BOOTSTRAP"
    )]
    pub bootstrap: String,
}

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub broker: BootstrapArg,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List the groups with their state and protocol type.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members, assignment, and committed offset and lag per partition.
    Describe {
        /// The group id.
        group: String,
        /// Members and partitions as JSON objects (see README "The CLI").
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets, also while its consumers run: they resume from
    /// the new offsets within seconds (a live replay). `seek` is the same (rpk's name).
    #[command(alias = "seek")]
    Reset(crate::groups::reset::ResetArgs),
    /// Show a group's configs (session timeout, speed limits, ...) and change them.
    Config(crate::groups::configs_admin::ConfigArgs),
    /// Show a group's reconciliation per partition: produced, delivered, committed, lag,
    /// skipped records (who, when) and whether its chained checksum matches the log.
    Audit(crate::groups::audit_admin::AuditArgs),
    /// Delete groups that have no members, with their committed offsets
    /// (kafka-consumer-groups --delete).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (see config/single.toml for every key).
    #[arg(long, env = "PHXQ_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on for Kafka clients (repeat for several).
    #[arg(long = "listen", env = "PHXQ_LISTEN", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// HOST:PORT advertised to clients in Metadata.
    #[arg(long, env = "PHXQ_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Data directory.
    #[arg(long, env = "PHXQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Broker / Raft node id.
    #[arg(long, env = "PHXQ_NODE_ID")]
    pub node_id: Option<u64>,
    /// Partitions of auto-created topics (Kafka's num.partitions).
    #[arg(long, env = "PHXQ_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    /// Create topics requested through Metadata.
    #[arg(long, env = "PHXQ_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Store groups on this node.
    #[arg(long, env = "PHXQ_STORE_GROUPS")]
    pub store_groups: Option<u32>,
    /// Largest record batch accepted, in bytes.
    #[arg(long, env = "PHXQ_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<i32>,
    /// Memory for caching storage pages, in MiB.
    #[arg(long, env = "PHXQ_CACHE_MB")]
    pub cache_mb: Option<usize>,
    /// Largest request frame accepted, in bytes.
    #[arg(long, env = "PHXQ_SOCKET_REQUEST_MAX_BYTES")]
    pub socket_request_max_bytes: Option<usize>,
    /// Default retention.ms of topics (Kafka's log.retention.ms; -1: no time limit).
    #[arg(long, env = "PHXQ_LOG_RETENTION_MS", allow_hyphen_values = true)]
    pub log_retention_ms: Option<i64>,
    /// Default retention.ms of topics in hours (log.retention.hours; 168).
    #[arg(long, env = "PHXQ_LOG_RETENTION_HOURS", allow_hyphen_values = true)]
    pub log_retention_hours: Option<i64>,
    /// Default retention.bytes of partitions (log.retention.bytes; -1: no size limit).
    #[arg(long, env = "PHXQ_LOG_RETENTION_BYTES", allow_hyphen_values = true)]
    pub log_retention_bytes: Option<i64>,
    /// Size at which segment files roll, and default segment.bytes of topics
    /// (log.segment.bytes).
    #[arg(long, env = "PHXQ_LOG_SEGMENT_BYTES")]
    pub log_segment_bytes: Option<u64>,
    /// How often leaders look for segments retention drops, in ms
    /// (log.retention.check.interval.ms).
    #[arg(long, env = "PHXQ_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// Address of the HTTP endpoint with /metrics (Prometheus), /health/live|ready and the
    /// web console, /console/ (default 127.0.0.1:9644 when free; "" turns it off).
    #[arg(long, env = "PHXQ_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Serve the read-only web console under /console/ on the metrics endpoint (default
    /// true; it shows record contents to whoever reaches that address).
    #[arg(long, env = "PHXQ_CONSOLE")]
    pub console: Option<bool>,
    /// Free bytes kept on the data directory's filesystem; below them produce is refused
    /// with KAFKA_STORAGE_ERROR (default: 1 GiB or 5% of the filesystem; 0: no floor).
    #[arg(long, env = "PHXQ_STORAGE_MIN_FREE_BYTES")]
    pub storage_min_free_bytes: Option<u64>,
    /// How often the log cleaner looks for partitions to compact, in ms
    /// (log.cleaner.backoff.ms).
    #[arg(long, env = "PHXQ_LOG_CLEANER_BACKOFF_MS")]
    pub log_cleaner_backoff_ms: Option<u64>,
    /// Memory of the log cleaner's key -> offset map (log.cleaner.dedupe.buffer.size).
    #[arg(long, env = "PHXQ_LOG_CLEANER_DEDUPE_BUFFER_BYTES")]
    pub log_cleaner_dedupe_buffer_bytes: Option<u64>,
    /// The log cleaner's read + write rate limit (log.cleaner.io.max.bytes.per.second).
    #[arg(long, env = "PHXQ_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND")]
    pub log_cleaner_io_max_bytes_per_second: Option<u64>,
    /// How long the first rebalance of an empty consumer group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms, 3000 there).
    #[arg(long, env = "PHXQ_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session.timeout.ms a consumer may ask for (Kafka: 6000).
    #[arg(long, env = "PHXQ_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<i32>,
    /// Largest session.timeout.ms a consumer may ask for.
    #[arg(long, env = "PHXQ_GROUP_MAX_SESSION_TIMEOUT_MS")]
    pub group_max_session_timeout_ms: Option<i32>,
    /// KIP-848 groups: session timeout (Kafka's group.consumer.session.timeout.ms).
    #[arg(long, env = "PHXQ_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// KIP-848 groups: heartbeat interval (group.consumer.heartbeat.interval.ms).
    #[arg(long, env = "PHXQ_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
    /// KIP-848 groups: default server-side assignor (load, uniform, range).
    #[arg(long, env = "PHXQ_GROUP_CONSUMER_ASSIGNOR")]
    pub group_consumer_assignor: Option<String>,
    /// Scheduler: how often the load assignor looks at the load again, in ms.
    #[arg(long, env = "PHXQ_GROUP_SCHEDULER_INTERVAL_MS")]
    pub group_scheduler_interval_ms: Option<u64>,
    /// Scheduler: no commit for this long on partitions with backlog means stalled, in ms.
    #[arg(long, env = "PHXQ_GROUP_SCHEDULER_STALL_MS")]
    pub group_scheduler_stall_ms: Option<u64>,
    /// Scheduler: a partition it moved is not moved again for this long, in ms.
    #[arg(long, env = "PHXQ_GROUP_SCHEDULER_COOLDOWN_MS")]
    pub group_scheduler_cooldown_ms: Option<u64>,
    /// Reconciliation of groups without their own setting: record, strict or off.
    #[arg(long, env = "PHXQ_GROUP_AUDIT")]
    pub group_audit: Option<String>,
    /// Offsets of groups without members expire after this long, in ms (Kafka's
    /// offsets.retention.minutes; default 7 days).
    #[arg(long, env = "PHXQ_GROUP_OFFSETS_RETENTION_MS")]
    pub group_offsets_retention_ms: Option<u64>,
    /// How often expired offsets are looked for, in ms.
    #[arg(long, env = "PHXQ_GROUP_OFFSETS_RETENTION_CHECK_INTERVAL_MS")]
    pub group_offsets_retention_check_interval_ms: Option<u64>,
}

impl ServeArgs {
    /// The effective configuration.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            c.listeners = self.listen.clone();
        }
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = &self.$field { c.$field = v.clone().into(); }
            )*};
        }
        set!(
            data_dir,
            node_id,
            num_partitions,
            auto_create_topics,
            store_groups
        );
        set!(message_max_bytes, socket_request_max_bytes, cache_mb);
        if self.log_retention_ms.is_some() {
            c.log.retention_ms = self.log_retention_ms;
        }
        if let Some(v) = self.log_retention_hours {
            c.log.retention_hours = v;
        }
        if let Some(v) = self.log_retention_bytes {
            c.log.retention_bytes = v;
        }
        if let Some(v) = self.log_segment_bytes {
            c.log.segment_bytes = v;
        }
        if let Some(v) = self.log_retention_check_interval_ms {
            c.log.retention_check_interval_ms = v;
        }
        if self.metrics_listen.is_some() {
            c.metrics_listen = self.metrics_listen.clone();
        }
        if let Some(on) = self.console {
            c.console = on;
        }
        if self.storage_min_free_bytes.is_some() {
            c.storage.min_free_bytes = self.storage_min_free_bytes;
        }
        if let Some(v) = self.log_cleaner_backoff_ms {
            c.log.cleaner_backoff_ms = v;
        }
        if let Some(v) = self.log_cleaner_dedupe_buffer_bytes {
            c.log.cleaner_dedupe_buffer_bytes = v;
        }
        if let Some(v) = self.log_cleaner_io_max_bytes_per_second {
            c.log.cleaner_io_max_bytes_per_second = v;
        }
        if let Some(v) = self.group_initial_rebalance_delay_ms {
            c.groups.initial_rebalance_delay_ms = v;
        }
        if let Some(v) = self.group_min_session_timeout_ms {
            c.groups.min_session_timeout_ms = v;
        }
        if let Some(v) = self.group_max_session_timeout_ms {
            c.groups.max_session_timeout_ms = v;
        }
        if let Some(v) = self.group_consumer_session_timeout_ms {
            c.groups.consumer_session_timeout_ms = v;
        }
        if let Some(v) = self.group_consumer_heartbeat_interval_ms {
            c.groups.consumer_heartbeat_interval_ms = v;
        }
        if let Some(v) = &self.group_consumer_assignor {
            c.groups.consumer_assignor = v.clone();
        }
        if let Some(v) = self.group_scheduler_interval_ms {
            c.groups.scheduler_interval_ms = v;
        }
        if let Some(v) = self.group_scheduler_stall_ms {
            c.groups.scheduler_stall_ms = v;
        }
        if let Some(v) = &self.group_audit {
            c.groups.audit = v.clone();
        }
        if let Some(v) = self.group_offsets_retention_ms {
            c.groups.offsets_retention_ms = v;
        }
        if let Some(v) = self.group_offsets_retention_check_interval_ms {
            c.groups.offsets_retention_check_interval_ms = v;
        }
        if let Some(v) = self.group_scheduler_cooldown_ms {
            c.groups.scheduler_cooldown_ms = v;
        }
        if let Some(a) = &self.advertised_listener {
            c.advertised_listener = Some(a.clone());
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(path) = &cli.command_config {
        crate::security::client::configure_from_file(path)?;
    }
    match cli.command {
        Command::Group(args) => {
            let out = match &args.command {
                GroupCommand::List { json } => {
                    crate::groups::admin::list(&args.broker.bootstrap, *json)?
                }
                GroupCommand::Describe { group, json } => {
                    crate::groups::admin::describe(&args.broker.bootstrap, group, *json)?
                }
                GroupCommand::Reset(reset) => {
                    crate::groups::reset::run(&args.broker.bootstrap, reset)?
                }
                GroupCommand::Config(config) => {
                    crate::groups::configs_admin::run(&args.broker.bootstrap, config)?
                }
                GroupCommand::Delete { groups } => {
                    crate::groups::admin::delete(&args.broker.bootstrap, groups)?
                }
                GroupCommand::Audit(audit) => {
                    crate::groups::audit_admin::run(&args.broker.bootstrap, audit)?
                }
            };
            print!("{out}");
            Ok(())
        }
        Command::Quota(args) => {
            let out = match &args.command {
                QuotaCommand::List { json } => {
                    crate::quotas::admin::list(&args.broker.bootstrap, *json)?
                }
                QuotaCommand::Set(set) => crate::quotas::admin::set(&args.broker.bootstrap, set)?,
            };
            print!("{out}");
            Ok(())
        }
        Command::Topic(args) => {
            use crate::admin::{consume, produce, topics};
            let b = &args.broker.bootstrap;
            let out = match &args.command {
                TopicCommand::List { json } => topics::list(b, *json)?,
                TopicCommand::Describe { topic, json } => topics::describe(b, topic, *json)?,
                TopicCommand::Create(a) => topics::create(b, a)?,
                TopicCommand::Delete { topics: names } => topics::delete(b, names)?,
                TopicCommand::AlterConfig { topic, set, delete } => {
                    crate::broker_configs::admin::alter_topic(b, topic, set, delete)?
                }
                TopicCommand::AddPartitions { topic, to } => topics::add_partitions(b, topic, *to)?,
                TopicCommand::Produce(a) => produce::run(b, a)?,
                TopicCommand::Consume(a) => consume::run(b, a)?,
            };
            print!("{out}");
            Ok(())
        }
        Command::Txn(args) => {
            let b = &args.broker.bootstrap;
            let out = match &args.command {
                TxnCommand::List {
                    states,
                    min_duration_ms,
                    pattern,
                    json,
                } => {
                    crate::txn::admin::list(b, states, *min_duration_ms, pattern.as_deref(), *json)?
                }
                TxnCommand::Describe {
                    transactional_id,
                    json,
                } => crate::txn::admin::describe(b, transactional_id, *json)?,
            };
            print!("{out}");
            Ok(())
        }
        Command::User(args) => {
            print!(
                "{}",
                crate::security::admin::run(&args.broker.bootstrap, &args.command)?
            );
            Ok(())
        }
        Command::Acl(args) => {
            print!(
                "{}",
                crate::security::acl::admin::run(&args.broker.bootstrap, &args.command)?
            );
            Ok(())
        }
        Command::Config(args) => {
            print!(
                "{}",
                crate::broker_configs::admin::run(&args.broker.bootstrap, &args.command)?
            );
            Ok(())
        }
        Command::Cluster(args) => match args.command {
            ClusterCommand::Up(a) => crate::cluster::up::run(a),
            ClusterCommand::Status(a) => crate::cluster::status::run(a),
            ClusterCommand::Info { broker, json } => {
                print!("{}", crate::admin::cluster::info(&broker.bootstrap, json)?);
                Ok(())
            }
        },
        Command::Serve(args) => {
            let config = args.config()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("phxq")
                .build()?;
            runtime.block_on(crate::server::serve(config))
        }
    }
}
