//! One Kafka client connection: read length-prefixed frames, decode each request, hand it
//! to its handler, write the responses in request order.
//!
//! Kafka processes a connection's requests one at a time. phxq keeps that order, with one
//! refinement for throughput: consecutive Produce requests are *queued* in their store
//! groups' Raft logs in order (so an idempotent producer's batches stay in sequence) and
//! may wait for their fsync together; any other request waits until everything before it
//! has been answered, then runs. The reader runs ahead by at most [`MAX_IN_FLIGHT`] requests.
//! Malformed input is logged and closes the connection (after the answers already due are
//! written); it never reaches a handler and never takes the broker down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use phxq_protocol::codec::{self, DecodeError};
use phxq_protocol::frame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers::{self, api_versions, Reply};
use crate::metrics::{Metrics, RequestTimes};
use crate::security::sasl::Gate;
use crate::security::Listener;
use crate::shutdown::Shutdown;

/// Requests read ahead of the oldest unanswered one.
const MAX_IN_FLIGHT: usize = 32;

/// A response on its way out: where it goes in the stream and how it is finished.
struct Outgoing {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    reply: Reply,
    /// When the request's frame was read (its latency is counted from there).
    received: Instant,
    /// When its handler started and when it returned (`metrics::RequestTimes`).
    started: Instant,
    handled: Instant,
}

/// The byte stream of a connection: plain TCP, or TLS over it. Under TLS the socket is
/// read through a large buffer: rustls asks for a few KiB at a time, which would otherwise
/// be one system call each.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TlsSocket>>),
}

/// What TLS runs over: the socket, read through [`TLS_READ_BUFFER`] bytes.
pub type TlsSocket = tokio::io::BufReader<TcpStream>;

/// Read buffer under TLS.
pub const TLS_READ_BUFFER: usize = 256 * 1024;

type Rd = Box<dyn AsyncRead + Send + Unpin>;
type Wr = Box<dyn AsyncWrite + Send + Unpin>;

impl Io {
    fn split(self) -> (Rd, Wr) {
        match self {
            Io::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Io::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r), Box::new(w))
            }
        }
    }
}

pub struct Connection {
    io: Io,
    peer: SocketAddr,
    broker: Arc<Broker>,
    stop: Shutdown,
    listener: Arc<Listener>,
    /// `User:<subject>` of the client's TLS certificate, if it sent one.
    tls_principal: Option<String>,
}

impl Connection {
    pub fn new(
        io: Io,
        peer: SocketAddr,
        broker: Arc<Broker>,
        stop: Shutdown,
        listener: Arc<Listener>,
        tls_principal: Option<String>,
    ) -> Self {
        Connection {
            io,
            peer,
            broker,
            stop,
            listener,
            tls_principal,
        }
    }

    pub async fn run(self) {
        let Connection {
            io,
            peer,
            broker,
            mut stop,
            listener,
            tls_principal,
        } = self;
        debug!(%peer, listener = %listener.name, "connection opened");
        let _open = broker.metrics.connection();
        let (rd, wr) = io.split();
        let share_connection = broker.share.connection_id();
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let (answered_tx, answered_rx) = watch::channel(0u64);
        let writer = tokio::spawn(write_loop(wr, rx, answered_tx, broker.metrics.clone()));
        let mut reader = Reader {
            rd,
            peer,
            broker,
            tx,
            answered: answered_rx,
            queued: 0,
            session: handlers::Session {
                peer: Some(peer),
                share_connection,
                auth: crate::security::sasl::Auth::new(listener, tls_principal),
                ..Default::default()
            },
        };
        let outcome = tokio::select! {
            r = reader.read_loop() => r,
            _ = stop.wait() => Ok(()),
        };
        // Let the writer finish what is already due, then close.
        let (broker, share_connection) = (reader.broker.clone(), reader.session.share_connection);
        drop(reader);
        // Share sessions end with their connection: what their members held comes back.
        broker.share.connection_closed(share_connection).await;
        let written = writer
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("writer task failed: {e}")));
        match outcome.and(written) {
            Ok(()) => debug!(%peer, "connection closed"),
            Err(e) => warn!(%peer, "closing connection: {e:#}"),
        }
    }
}

struct Reader {
    rd: Rd,
    peer: SocketAddr,
    broker: Arc<Broker>,
    tx: mpsc::Sender<Outgoing>,
    /// How many responses the writer has finished (written or dropped for acks=0).
    answered: watch::Receiver<u64>,
    /// How many requests were handed to the writer.
    queued: u64,
    /// What the handlers remember between this connection's requests.
    session: handlers::Session,
}

impl Reader {
    async fn read_loop(&mut self) -> anyhow::Result<()> {
        let limit = self.broker.config.socket_request_max_bytes;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            let Some(frame) = frame::take_frame(&mut buf, limit)? else {
                if let Some(n) = frame::needed(&buf, limit)? {
                    buf.reserve(n.saturating_sub(buf.len()));
                }
                if self.rd.read_buf(&mut buf).await? == 0 {
                    if !buf.is_empty() {
                        anyhow::bail!("peer closed the connection mid-frame ({} bytes)", buf.len());
                    }
                    return Ok(());
                }
                continue;
            };
            if let Some(until) = self.session.mute_until.take() {
                // Throttled by a client quota (KIP-219): read nothing more until then.
                tokio::time::sleep_until(until).await;
            }
            self.handle_frame(frame.freeze()).await?;
            if self.session.auth.close_after_reply {
                // A failed authentication: its answer goes out, then the connection closes.
                return Ok(());
            }
        }
    }

    async fn handle_frame(&mut self, frame: Bytes) -> anyhow::Result<()> {
        let received = Instant::now();
        let request = match codec::decode_request(frame, api_versions::supported) {
            Ok(r) => r,
            Err(DecodeError::UnsupportedVersion {
                key: ApiKey::ApiVersions,
                version,
                correlation_id,
            }) => {
                // Clients probe with their newest ApiVersions; answer v0 with error 35 so
                // they retry with one we list.
                debug!(peer = %self.peer, version, "ApiVersions version not supported, answering v0");
                let reply =
                    Reply::Now(Some(Box::new(api_versions::unsupported_version_response())));
                let now = Instant::now();
                return self
                    .send(
                        ApiKey::ApiVersions,
                        0,
                        correlation_id,
                        reply,
                        [received, now, now],
                    )
                    .await;
            }
            Err(e) => anyhow::bail!("{e}"),
        };
        let (api_key, version, correlation_id) =
            (request.api_key, request.version(), request.correlation_id());
        match self.session.auth.gate(api_key) {
            Gate::Pass => {}
            Gate::Close(why) => anyhow::bail!("{why} ({api_key:?})"),
        }
        if !handlers::is_pipelined(&request) {
            // Everything before this request is answered first, as Kafka would.
            let queued = self.queued;
            self.answered
                .wait_for(|a| *a >= queued)
                .await
                .map_err(|_| anyhow::anyhow!("writer stopped"))?;
        }
        let started = Instant::now();
        let reply = handlers::handle(&self.broker, request, &mut self.session).await;
        let handled = Instant::now();
        self.send(
            api_key,
            version,
            correlation_id,
            reply,
            [received, started, handled],
        )
        .await
    }

    async fn send(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reply: Reply,
        [received, started, handled]: [Instant; 3],
    ) -> anyhow::Result<()> {
        self.queued += 1;
        self.tx
            .send(Outgoing {
                api_key,
                version,
                correlation_id,
                reply,
                received,
                started,
                handled,
            })
            .await
            .map_err(|_| anyhow::anyhow!("writer stopped"))
    }
}

/// Responses encoded and not yet written: their APIs and when each was ready, for the send
/// time (reused: no allocation per response once it has grown).
type Unsent = Vec<(ApiKey, Instant)>;

/// Finishes responses in order and writes them. Responses already complete are coalesced
/// into one write; before waiting on a pending one, what is ready goes out.
async fn write_loop(
    mut wr: Wr,
    mut rx: mpsc::Receiver<Outgoing>,
    answered: watch::Sender<u64>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut unsent: Unsent = Vec::with_capacity(MAX_IN_FLIGHT);
    let mut w = Written {
        answered: &answered,
        metrics: &metrics,
        count: 0,
    };
    let mut done = 0u64;
    loop {
        let next = match rx.try_recv() {
            Ok(o) => o,
            Err(_) => {
                w.flush(&mut wr, &mut out, &mut unsent, done).await?;
                match rx.recv().await {
                    Some(o) => o,
                    None => break,
                }
            }
        };
        let (body, ready, remote) = match next.reply {
            Reply::Now(body) => (body, next.handled, None),
            Reply::Later(pending) => {
                w.flush(&mut wr, &mut out, &mut unsent, done).await?;
                let body = pending.await;
                let ready = Instant::now();
                (body, ready, Some(ready.duration_since(next.handled)))
            }
        };
        metrics.request(
            next.api_key,
            next.version,
            RequestTimes {
                queue: next.started.duration_since(next.received),
                local: next.handled.duration_since(next.started),
                remote,
                total: ready.duration_since(next.received),
            },
            body.as_deref(),
        );
        if let Some(body) = body {
            codec::encode_response(
                &mut out,
                next.api_key,
                next.version,
                next.correlation_id,
                &body,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot encode {:?} v{} response: {e}",
                    next.api_key,
                    next.version
                )
            })?;
            unsent.push((next.api_key, ready));
        }
        done += 1;
    }
    w.flush(&mut wr, &mut out, &mut unsent, done).await?;
    wr.shutdown().await.ok();
    Ok(())
}

/// The writer's progress: how many responses are written, and where that is reported.
struct Written<'a> {
    answered: &'a watch::Sender<u64>,
    metrics: &'a Metrics,
    count: u64,
}

impl Written<'_> {
    /// Writes what is encoded, counts each response's send time and tells the reader how
    /// many requests are answered.
    async fn flush(
        &mut self,
        wr: &mut Wr,
        out: &mut BytesMut,
        unsent: &mut Unsent,
        done: u64,
    ) -> anyhow::Result<()> {
        if done == self.count {
            return Ok(());
        }
        if !out.is_empty() {
            wr.write_all(out).await?;
            // TLS keeps what the socket did not take in its buffer until flushed (plain TCP
            // has nothing to flush): without it a response could wait for the next one.
            wr.flush().await?;
            out.clear();
            let now = Instant::now();
            for (api, ready) in unsent.drain(..) {
                self.metrics.sent(api, now.duration_since(ready));
            }
        }
        self.count = done;
        self.answered.send_replace(done);
        Ok(())
    }
}
