//! Starting and stopping a node: check the data directory, open the replication node and
//! the metadata, bind the Kafka listeners, accept connections until shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::addr::parse_addr;
use crate::broker::Broker;
use crate::config::Config;
use crate::shutdown;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_data_dir(&config.data_dir)?;
    let listeners = bind(&config).await?;
    let metrics = bind_metrics(&config).await?;
    let broker = Broker::open(config).await?;
    let (trigger, stop) = shutdown::channel();
    broker.metrics.set_enabled(metrics.is_some());
    for listener in listeners {
        tokio::spawn(accept_loop(listener, broker.clone(), stop.clone()));
    }
    if let Some(l) = metrics {
        tokio::spawn(crate::metrics::http::serve(
            l,
            Arc::downgrade(&broker),
            stop.clone(),
        ));
    }
    info!(node_id = broker.config.node_id, "phxq is ready");
    shutdown::signal().await;
    info!("shutting down");
    trigger.trigger();
    broker.shutdown().await;
    info!("stopped");
    Ok(())
}

fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.display()))?;
    let probe = dir.join(".phxq-write-probe");
    std::fs::write(&probe, b"ok")
        .map_err(|e| anyhow::anyhow!("data dir {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

async fn bind(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let addr = parse_addr(l)?;
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                info!(%addr, "listening for Kafka clients");
                out.push(listener);
            }
            Err(e) if i == 0 => anyhow::bail!("cannot listen on {addr}: {e}"),
            Err(e) => warn!(%addr, error = %e, "skipping listener"),
        }
    }
    Ok(out)
}

/// The metrics endpoint's listener: the configured address must bind; the default one is
/// skipped with a warning when taken (several brokers on one machine).
async fn bind_metrics(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let l = match &config.metrics_listen {
        Some(addr) => crate::metrics::http::bind(addr).await?,
        None => match crate::metrics::http::bind(DEFAULT_METRICS_LISTEN).await {
            Ok(l) => l,
            Err(e) => {
                warn!("{e:#}; metrics are off (set metrics_listen to choose an address)");
                None
            }
        },
    };
    if let Some(l) = &l {
        if let Ok(addr) = l.local_addr() {
            if config.console {
                info!(%addr, "serving /metrics, /health and the console (/console/)");
            } else {
                info!(%addr, "serving /metrics and /health");
            }
        }
    }
    Ok(l)
}

/// Where metrics are served unless configured otherwise (Redpanda's admin port).
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9644";

async fn accept_loop(listener: TcpListener, broker: Arc<Broker>, mut stop: shutdown::Shutdown) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let conn = crate::connection::Connection::new(socket, peer, broker.clone(), stop.clone());
                    tokio::spawn(conn.run());
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}
