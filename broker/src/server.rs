//! Starting and stopping a node: check the data directory, open the replication node and
//! the metadata, bind the Kafka listeners, accept connections until shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::addr::parse_addr;
use crate::broker::Broker;
use crate::config::Config;
use crate::connection::{Connection, Io, TLS_READ_BUFFER};
use crate::security::tls::Tls;
use crate::security::Listener;
use crate::shutdown;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    check_data_dir(&config.data_dir)?;
    let tls_listeners: Vec<String> = config
        .listener_specs()?
        .into_iter()
        .filter(|l| l.protocol.uses_tls())
        .map(|l| l.name)
        .collect();
    let tls = match &config.security.tls {
        Some(t) if !tls_listeners.is_empty() => Some(Tls::load(t, tls_listeners)?),
        _ => None,
    };
    let listeners = bind(&config).await?;
    let metrics = bind_metrics(&config).await?;
    let broker = Broker::open(config).await?;
    let (trigger, stop) = shutdown::channel();
    broker.metrics.set_enabled(metrics.is_some());
    if let Some(t) = &tls {
        tokio::spawn(crate::security::tls::watch(Arc::downgrade(t)));
    }
    for (listener, spec) in listeners {
        let tls = spec.protocol.uses_tls().then(|| tls.clone()).flatten();
        tokio::spawn(accept_loop(
            listener,
            spec,
            tls,
            broker.clone(),
            stop.clone(),
        ));
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

/// Binds every listener address. The first address of each listener name must bind;
/// further addresses of a name (`[::1]` next to 127.0.0.1) are skipped with a warning.
async fn bind(config: &Config) -> anyhow::Result<Vec<(TcpListener, Arc<Listener>)>> {
    let mut out = Vec::new();
    let mut bound_names = std::collections::BTreeSet::new();
    for spec in config.listener_specs()? {
        let addr = parse_addr(&spec.addr)?;
        let first = !bound_names.contains(&spec.name);
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                info!(%addr, listener = %spec.name, protocol = spec.protocol.name(), "listening for Kafka clients");
                bound_names.insert(spec.name.clone());
                let l = Listener {
                    name: spec.name,
                    protocol: spec.protocol,
                };
                out.push((listener, Arc::new(l)));
            }
            Err(e) if first => anyhow::bail!("cannot listen on {addr} ({}): {e}", spec.name),
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

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    spec: Arc<Listener>,
    tls: Option<Arc<Tls>>,
    broker: Arc<Broker>,
    mut stop: shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let (broker, stop, spec) = (broker.clone(), stop.clone(), spec.clone());
                    let acceptor = tls.as_ref().and_then(|t| t.acceptor(&spec.name));
                    tokio::spawn(async move {
                        let (io, principal) = match acceptor {
                            None => (Io::Plain(socket), None),
                            Some(acceptor) => {
                                let socket = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, socket);
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                                    Ok(Ok(stream)) => {
                                        let principal = crate::security::tls::principal(stream.get_ref().1);
                                        (Io::Tls(Box::new(stream)), principal)
                                    }
                                    Ok(Err(e)) => {
                                        warn!(%peer, listener = %spec.name, error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        warn!(%peer, listener = %spec.name, "TLS handshake timed out");
                                        return;
                                    }
                                }
                            }
                        };
                        Connection::new(io, peer, broker, stop, spec, principal).run().await
                    });
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
