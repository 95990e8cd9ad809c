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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers::{self, api_versions, Reply};
use crate::metrics::Metrics;
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
}

pub struct Connection {
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    stop: Shutdown,
}

impl Connection {
    pub fn new(socket: TcpStream, peer: SocketAddr, broker: Arc<Broker>, stop: Shutdown) -> Self {
        Connection {
            socket,
            peer,
            broker,
            stop,
        }
    }

    pub async fn run(self) {
        let Connection {
            socket,
            peer,
            broker,
            mut stop,
        } = self;
        debug!(%peer, "connection opened");
        let _open = broker.metrics.connection();
        let (rd, wr) = socket.into_split();
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
    rd: OwnedReadHalf,
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
                return self
                    .send(ApiKey::ApiVersions, 0, correlation_id, reply, received)
                    .await;
            }
            Err(e) => anyhow::bail!("{e}"),
        };
        let (api_key, version, correlation_id) =
            (request.api_key, request.version(), request.correlation_id());
        if !handlers::is_pipelined(&request) {
            // Everything before this request is answered first, as Kafka would.
            let queued = self.queued;
            self.answered
                .wait_for(|a| *a >= queued)
                .await
                .map_err(|_| anyhow::anyhow!("writer stopped"))?;
        }
        let reply = handlers::handle(&self.broker, request, &mut self.session).await;
        self.send(api_key, version, correlation_id, reply, received)
            .await
    }

    async fn send(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reply: Reply,
        received: Instant,
    ) -> anyhow::Result<()> {
        self.queued += 1;
        self.tx
            .send(Outgoing {
                api_key,
                version,
                correlation_id,
                reply,
                received,
            })
            .await
            .map_err(|_| anyhow::anyhow!("writer stopped"))
    }
}

/// Finishes responses in order and writes them. Responses already complete are coalesced
/// into one write; before waiting on a pending one, what is ready goes out.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    answered: watch::Sender<u64>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut done = 0u64;
    let mut written = 0u64;
    loop {
        let next = match rx.try_recv() {
            Ok(o) => o,
            Err(_) => {
                flush(&mut wr, &mut out, &answered, &mut written, done).await?;
                match rx.recv().await {
                    Some(o) => o,
                    None => break,
                }
            }
        };
        let body = match next.reply {
            Reply::Now(body) => body,
            Reply::Later(pending) => {
                flush(&mut wr, &mut out, &answered, &mut written, done).await?;
                pending.await
            }
        };
        metrics.request(
            next.api_key,
            next.version,
            next.received.elapsed(),
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
        }
        done += 1;
    }
    flush(&mut wr, &mut out, &answered, &mut written, done).await?;
    wr.shutdown().await.ok();
    Ok(())
}

/// Writes what is encoded and tells the reader how many requests are answered.
async fn flush(
    wr: &mut OwnedWriteHalf,
    out: &mut BytesMut,
    answered: &watch::Sender<u64>,
    written: &mut u64,
    done: u64,
) -> anyhow::Result<()> {
    if done == *written {
        return Ok(());
    }
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    *written = done;
    answered.send_replace(done);
    Ok(())
}
