//! The inter-broker transport: Raft RPCs of every group of a node over one TCP connection
//! per peer (openraft-multi's pattern), plus the node-status query of `phxq cluster status`.
//!
//! Frames are a 4-byte big-endian length and a postcard-encoded body. A request carries an
//! id chosen by the caller; answers may come back in any order and are matched by id, so
//! a slow AppendEntries of one group never holds up the heartbeats of another. A broken
//! connection fails every call in flight (openraft treats that as "unreachable" and backs
//! off); the next call opens a new one. The listener decodes defensively: a frame larger
//! than [`MAX_FRAME`] or one that does not decode closes that connection, nothing else.
//!
//! Who may talk to whom is a [`PeerSecurity`]'s call, so that this crate stays free of TLS:
//! every connection, opened or accepted, is handed to it before the first frame, and the
//! frames then go over the stream it returns. [`Plaintext`] (the default) returns the TCP
//! stream as it is; the broker plugs in mutual TLS. A connection it refuses on accept (or
//! one that does not finish its upgrade within [`UPGRADE_TIMEOUT`]) is logged with the
//! peer's address and closed without a byte of answer; nothing else is affected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::raft::rpc::{BoxFuture, RaftRpc, RaftRpcReply, RpcService, Transport};
use crate::types::{GroupId, GroupStatus, NodeId};

/// Largest frame accepted either way: AppendEntries are capped by `max_append_bytes`
/// (8 MiB by default), snapshot chunks are smaller.
pub const MAX_FRAME: usize = 64 << 20;
/// How long opening a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a [`PeerSecurity`] upgrade (a TLS handshake) may take, either way.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream frames go over: a TCP stream, or one wrapped by a [`PeerSecurity`].
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerStream for T {}

/// A connection after its upgrade.
pub type BoxedStream = Box<dyn PeerStream>;

/// What makes an inter-broker connection trusted: called on every connection before its
/// first frame, on both ends.
pub trait PeerSecurity: Send + Sync + 'static {
    /// Upgrades a connection this node opened to `peer` (its inter-broker address); an
    /// error fails the call that needed the connection (openraft retries later).
    fn connect(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<BoxedStream>>;

    /// Upgrades a connection `peer` opened to this node; `Err(reason)` refuses it: the
    /// transport logs the reason with `peer` and closes the connection.
    fn accept(&self, stream: TcpStream, peer: SocketAddr)
        -> BoxFuture<Result<BoxedStream, String>>;
}

/// No upgrade: frames go over plain TCP and anyone who reaches the port is a peer.
pub struct Plaintext;

impl PeerSecurity for Plaintext {
    fn connect(
        &self,
        stream: TcpStream,
        _peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<BoxedStream>> {
        Box::pin(async move { Ok(Box::new(stream) as BoxedStream) })
    }

    fn accept(
        &self,
        stream: TcpStream,
        _peer: SocketAddr,
    ) -> BoxFuture<Result<BoxedStream, String>> {
        Box::pin(async move { Ok(Box::new(stream) as BoxedStream) })
    }
}

/// [`Plaintext`], shared.
pub fn plaintext() -> Arc<dyn PeerSecurity> {
    Arc::new(Plaintext)
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum Request {
    Raft {
        id: u64,
        group: GroupId,
        rpc: Box<RaftRpc>,
    },
    Status {
        id: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum Answer {
    Raft(Result<RaftRpcReply, String>),
    Status(Vec<GroupStatus>),
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Response {
    id: u64,
    answer: Answer,
}

/// Encodes one frame: the body is serialized once, straight after its length prefix.
fn encode<T: Serialize>(v: &T) -> Result<Bytes, String> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0u8; 4]);
    let mut buf = postcard::to_extend(v, buf).map_err(|e| format!("encode: {e}"))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(format!(
            "message of {len} bytes exceeds the {MAX_FRAME}-byte frame limit"
        ));
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(Bytes::from(buf))
}

/// Reads one frame body; `Ok(None)` at a clean end of stream.
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    // Read into spare capacity: no zero-filling of a buffer about to be overwritten.
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        let left = (len - body.len()) as u64;
        if (&mut *r).take(left).read_buf(&mut body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(body))
}

/// Writes queued frames, flushing whenever the queue runs dry (batches small RPCs).
async fn write_frames(
    stream: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(256 << 10, stream);
    while let Some(mut frame) = rx.recv().await {
        loop {
            w.write_all_buf(&mut frame).await?;
            match rx.try_recv() {
                Ok(next) => frame = next,
                Err(_) => break,
            }
        }
        w.flush().await?;
    }
    Ok(())
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Answer>>>>>;

/// One open connection to a peer.
struct PeerConn {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Calls waiting for an answer; `None` once the connection is gone.
    pending: Pending,
}

impl PeerConn {
    async fn open(addr: SocketAddr, security: &dyn PeerSecurity) -> Result<PeerConn, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr}: timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let stream = tokio::time::timeout(UPGRADE_TIMEOUT, security.connect(stream, addr))
            .await
            .map_err(|_| format!("connect to {addr}: handshake timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let (mut read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(async move {
            if let Err(e) = write_frames(write, rx).await {
                tracing::debug!(%addr, error = %e, "peer connection write failed");
            }
        });
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let why = loop {
                match read_frame(&mut read).await {
                    Ok(Some(body)) => match postcard::from_bytes::<Response>(&body) {
                        Ok(r) => {
                            let waiter =
                                lock(&reader_pending).as_mut().and_then(|m| m.remove(&r.id));
                            if let Some(w) = waiter {
                                let _ = w.send(r.answer);
                            }
                        }
                        Err(e) => break format!("undecodable answer: {e}"),
                    },
                    Ok(None) => break "closed by peer".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            tracing::debug!(%addr, reason = %why, "peer connection closed");
            // Dropping the waiters fails their calls.
            lock(&reader_pending).take();
        });
        Ok(PeerConn { tx, pending })
    }

    fn alive(&self) -> bool {
        lock(&self.pending).is_some() && !self.tx.is_closed()
    }

    async fn call(&self, id: u64, frame: Bytes) -> Result<Answer, String> {
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(m) => {
                m.insert(id, tx);
            }
            None => return Err("connection closed".into()),
        }
        if self.tx.send(frame).is_err() {
            if let Some(m) = lock(&self.pending).as_mut() {
                m.remove(&id);
            }
            return Err("connection closed".into());
        }
        rx.await.map_err(|_| "connection closed".to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A peer's connection, if one is open; callers queue behind a connect in progress.
type ConnSlot = tokio::sync::Mutex<Option<Arc<PeerConn>>>;

/// Carries this node's Raft RPCs to its peers over TCP.
pub struct TcpTransport {
    /// Each peer's address and its connection, if one is open.
    peers: HashMap<NodeId, (SocketAddr, ConnSlot)>,
    security: Arc<dyn PeerSecurity>,
    next_id: AtomicU64,
}

impl TcpTransport {
    /// `peers`: the inter-broker address of every other node; `security` upgrades each
    /// connection opened to them.
    pub fn new(
        peers: HashMap<NodeId, SocketAddr>,
        security: Arc<dyn PeerSecurity>,
    ) -> Arc<TcpTransport> {
        Arc::new(TcpTransport {
            peers: peers
                .into_iter()
                .map(|(id, addr)| (id, (addr, tokio::sync::Mutex::new(None))))
                .collect(),
            security,
            next_id: AtomicU64::new(1),
        })
    }

    async fn conn(&self, target: NodeId) -> Result<Arc<PeerConn>, String> {
        let (addr, slot) = self
            .peers
            .get(&target)
            .ok_or_else(|| format!("node {target} is not a known peer"))?;
        // One connection per peer: its callers queue behind a connect in progress.
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.alive()) {
            return Ok(c.clone());
        }
        *slot = None;
        let c = Arc::new(PeerConn::open(*addr, &*self.security).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn call_raft(
        self: Arc<Self>,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
    ) -> Result<RaftRpcReply, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode(&Request::Raft {
            id,
            group,
            rpc: Box::new(rpc),
        })?;
        let conn = self.conn(target).await?;
        match conn.call(id, frame).await? {
            Answer::Raft(r) => r,
            Answer::Status(_) => Err("status answer to a raft call".into()),
        }
    }
}

impl Transport for Arc<TcpTransport> {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
    ) -> BoxFuture<Result<RaftRpcReply, String>> {
        Box::pin(self.clone().call_raft(target, group, rpc))
    }
}

/// Asks a node's inter-broker listener for the state of its groups, over a connection
/// `security` upgrades as a peer's would be.
pub async fn fetch_status(
    addr: SocketAddr,
    security: &dyn PeerSecurity,
    timeout: Duration,
) -> Result<Vec<GroupStatus>, String> {
    let ask = async {
        let conn = PeerConn::open(addr, security).await?;
        match conn.call(1, encode(&Request::Status { id: 1 })?).await? {
            Answer::Status(s) => Ok(s),
            Answer::Raft(_) => Err("raft answer to a status call".to_string()),
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("{addr} did not answer within {timeout:?}"))?
}

/// Serves the inter-broker listener until `stop` resolves or the node is dropped (the
/// listener is closed then; connections already open end with the node). Each connection
/// is upgraded by `security` in its own task first (a refused one is logged and closed);
/// each request runs in its own task; answers go back on the same connection.
pub async fn serve<S: RpcService>(
    listener: TcpListener,
    node: Weak<S>,
    security: Arc<dyn PeerSecurity>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "inter-broker accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if node.upgrade().is_none() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(UPGRADE_TIMEOUT, security.accept(stream, peer))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(reason)) => {
                    tracing::warn!(%peer, %reason, "inter-broker connection refused");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, reason = "handshake timed out", "inter-broker connection refused");
                    return;
                }
            };
            serve_conn(stream, peer, node).await
        });
    }
}

async fn serve_conn<S: RpcService>(stream: BoxedStream, peer: SocketAddr, node: Weak<S>) {
    let (mut read, write) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let _ = write_frames(write, rx).await;
    });
    loop {
        let body = match read_frame(&mut read).await {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "inter-broker connection closed");
                return;
            }
        };
        let req: Request = match postcard::from_bytes(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, len = body.len(), "undecodable inter-broker frame; closing");
                return;
            }
        };
        let Some(node) = node.upgrade() else { return };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (id, answer) = match req {
                Request::Raft { id, group, rpc } => {
                    (id, Answer::Raft(node.handle_rpc(group, *rpc).await))
                }
                Request::Status { id } => (id, Answer::Status(node.status())),
            };
            match encode(&Response { id, answer }) {
                Ok(frame) => {
                    let _ = tx.send(frame);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cannot encode an answer"),
            }
        });
    }
}

/// The listener's decoding of the first frame of `stream` (bytes as a peer sent them):
/// [`read_frame`] and the postcard decode of [`serve_conn`], without a socket. Returns how
/// many bytes the frame took. For the fuzz harness (`fuzz/`).
pub fn decode_request_frame(stream: &[u8]) -> Result<usize, String> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut rd = stream;
    let read = std::pin::pin!(read_frame(&mut rd)).poll(&mut Context::from_waker(Waker::noop()));
    // Reading a slice never waits.
    let Poll::Ready(read) = read else {
        return Err("reading a slice did not complete".into());
    };
    let body = read.map_err(|e| e.to_string())?.ok_or("no frame")?;
    postcard::from_bytes::<Request>(&body).map_err(|e| format!("undecodable: {e}"))?;
    Ok(stream.len() - rd.len())
}

/// One frame as [`TcpTransport`] sends it: `rpc` for its group, or the status query when
/// `None`. For the fuzz harness's seeds (`fuzz/`).
pub fn encode_request_frame(id: u64, rpc: Option<(GroupId, RaftRpc)>) -> Result<Bytes, String> {
    encode(&match rpc {
        Some((group, rpc)) => Request::Raft {
            id,
            group,
            rpc: Box::new(rpc),
        },
        None => Request::Status { id },
    })
}
