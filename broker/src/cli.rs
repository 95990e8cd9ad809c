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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a broker node (a single node on 127.0.0.1:9092 with ./data by default).
    Serve(ServeArgs),
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
    /// Largest request frame accepted, in bytes.
    #[arg(long, env = "PHXQ_SOCKET_REQUEST_MAX_BYTES")]
    pub socket_request_max_bytes: Option<usize>,
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
        set!(message_max_bytes, socket_request_max_bytes);
        if let Some(a) = &self.advertised_listener {
            c.advertised_listener = Some(a.clone());
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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
