//! One Kafka client connection: read length-prefixed frames, decode each request, hand it
//! to its handler, write the response. Requests on a connection are processed one at a
//! time and answered in order, as Kafka does (this is what keeps an idempotent producer's
//! batches in sequence). Malformed input is logged and closes the connection; it never
//! reaches a handler and never takes the broker down.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use phxq_protocol::codec::{self, DecodeError};
use phxq_protocol::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers::{self, api_versions};
use crate::shutdown::Shutdown;

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

    pub async fn run(mut self) {
        debug!(peer = %self.peer, "connection opened");
        let mut stop = self.stop.clone();
        let reason = tokio::select! {
            r = self.serve() => r,
            _ = stop.wait() => Ok(()),
        };
        match reason {
            Ok(()) => debug!(peer = %self.peer, "connection closed"),
            Err(e) => warn!(peer = %self.peer, "closing connection: {e}"),
        }
    }

    async fn serve(&mut self) -> anyhow::Result<()> {
        let limit = self.broker.config.socket_request_max_bytes;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut out = BytesMut::with_capacity(64 * 1024);
        loop {
            let Some(frame) = frame::take_frame(&mut buf, limit)? else {
                if let Some(n) = frame::needed(&buf, limit)? {
                    buf.reserve(n.saturating_sub(buf.len()));
                }
                if self.socket.read_buf(&mut buf).await? == 0 {
                    if !buf.is_empty() {
                        anyhow::bail!("peer closed the connection mid-frame ({} bytes)", buf.len());
                    }
                    return Ok(());
                }
                continue;
            };
            out.clear();
            self.handle_frame(frame.freeze(), &mut out).await?;
            if !out.is_empty() {
                self.socket.write_all(&out).await?;
            }
        }
    }

    /// Decodes and handles one frame, appending the response frame (if any) to `out`.
    async fn handle_frame(&self, frame: bytes::Bytes, out: &mut BytesMut) -> anyhow::Result<()> {
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
                let body = api_versions::unsupported_version_response();
                codec::encode_response(out, ApiKey::ApiVersions, 0, correlation_id, &body)?;
                return Ok(());
            }
            Err(e) => anyhow::bail!("{e}"),
        };
        let (api_key, version, correlation_id) =
            (request.api_key, request.version(), request.correlation_id());
        let client_id = request.header.client_id.clone();
        let response = handlers::handle(&self.broker, request, self.peer).await;
        if let Some(body) = response {
            codec::encode_response(out, api_key, version, correlation_id, &body).map_err(|e| {
                anyhow::anyhow!(
                    "cannot encode {api_key:?} v{version} response for {client_id:?}: {e}"
                )
            })?;
        }
        Ok(())
    }
}
