//! The metrics endpoint: a small HTTP/1.1 server (hyper) on `metrics_listen` with
//!
//! - `GET /metrics`: the OpenMetrics text exposition (Prometheus scrapes it as is);
//! - `GET /health/live`: 200 while the process answers;
//! - `GET /health/ready`: 200 when the broker is ready (`health::ready`), else 503 with the
//!   reasons, one per line.
//!
//! - `/` and `/console/...`: the web console (`console`), which answers them itself
//!   (unless `console = false`).
//!
//! Anything else is 404. It stops with the broker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Weak;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::health;
use crate::broker::Broker;
use crate::shutdown::Shutdown;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves until `stop`; connections already open finish their request.
pub async fn serve(listener: TcpListener, broker: Weak<Broker>, mut stop: Shutdown) {
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait() => return,
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(broker.clone(), req));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                debug!(%peer, error = %e, "metrics connection closed");
            }
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_str(content_type)
            .unwrap_or(hyper::header::HeaderValue::from_static("text/plain")),
    );
    r
}

async fn answer(
    broker: Weak<Broker>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let Some(b) = broker.upgrade() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "shutting down\n".into(),
        ));
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "GET only\n".into(),
        ));
    }
    let path = req.uri().path();
    if b.config.console && crate::console::owns(path) {
        let reply = crate::console::answer(b, path, req.uri().query()).await;
        return Ok(console_response(reply));
    }
    Ok(match path {
        "/metrics" => match b.metrics.render() {
            Ok(body) => text(StatusCode::OK, OPENMETRICS, body),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "cannot encode metrics\n".into(),
            ),
        },
        "/health/live" => text(StatusCode::OK, PLAIN, "live\n".into()),
        "/health/ready" => match health::ready(&b) {
            Ok(()) => text(StatusCode::OK, PLAIN, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                why.join("\n") + "\n",
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: /metrics, /health/live, /health/ready, /console/\n".into(),
        ),
    })
}

fn console_response(reply: crate::console::Reply) -> Response<Full<Bytes>> {
    use hyper::header::{self, HeaderValue};
    let mut r = Response::new(Full::new(reply.body));
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::console::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(to) = reply.location {
        h.insert(header::LOCATION, HeaderValue::from_static(to));
    }
    r
}

/// Binds the metrics address; `None` when metrics are off (empty address).
pub async fn bind(addr: &str) -> anyhow::Result<Option<TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let a: SocketAddr = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("metrics_listen {addr:?} is not an IP:PORT: {e}"))?;
    let l = TcpListener::bind(a)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the metrics listener on {addr}: {e}"))?;
    Ok(Some(l))
}
