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
    let broker = Broker::open(config).await?;
    let (trigger, stop) = shutdown::channel();
    for listener in listeners {
        tokio::spawn(accept_loop(listener, broker.clone(), stop.clone()));
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
