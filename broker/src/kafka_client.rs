//! A minimal blocking Kafka protocol client for the admin commands of the `phxq` binary:
//! one connection, one request at a time, versions chosen by the caller. It talks to a
//! broker exactly as any Kafka client would (and so works against any Kafka broker).
//!
//! Every connection is secured as `--command-config` says (`security/client.rs`): TLS
//! (rustls, blocking) with SSL and SASL_SSL, then with SASL_* a SaslHandshake v1 and
//! SaslAuthenticate v1 rounds (PLAIN, or SCRAM with `security/scram_client.rs`) before the
//! caller's first request. A failed handshake or login is an error naming the broker and
//! Kafka's reason; reads time out after 30 s, so nothing waits forever.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rustls_pki_types::ServerName;
use tokio_rustls::rustls;

use crate::security::client::{ClientSecurity, SaslLogin};
use crate::security::sasl::Mechanism;
use crate::security::scram_client::ScramClient;

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct KafkaClient {
    stream: Stream,
    addr: String,
    correlation_id: i32,
}

impl KafkaClient {
    /// Connects to `addr`, or to the first that answers of a comma-separated list of
    /// addresses (a bootstrap list, as Kafka tools take it).
    pub fn connect(addr: &str) -> anyhow::Result<KafkaClient> {
        let mut errors = Vec::new();
        for a in addr.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Self::connect_one(a) {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e.to_string()),
            }
        }
        anyhow::bail!("{}", errors.join("; "))
    }

    fn connect_one(addr: &str) -> anyhow::Result<KafkaClient> {
        let tcp = TcpStream::connect(addr)
            .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
        tcp.set_nodelay(true)?;
        let security = crate::security::client::configured();
        let stream = match security.and_then(|s| s.tls.clone()) {
            Some(tls) => Stream::Tls(Box::new(tls_handshake(tls, tcp, addr)?)),
            None => Stream::Plain(tcp),
        };
        let mut client = KafkaClient {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
        };
        if let Some(login) = security.and_then(|s: &ClientSecurity| s.sasl.as_ref()) {
            client.authenticate(login)?;
        }
        Ok(client)
    }

    /// SaslHandshake v1, then SaslAuthenticate v1 rounds of `login`'s mechanism.
    fn authenticate(&mut self, login: &SaslLogin) -> anyhow::Result<()> {
        let name = login.mechanism.name();
        let addr = self.addr.clone();
        let hs = self.send(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name)),
            1,
        )?;
        anyhow::ensure!(
            hs.error_code == 0,
            "SASL handshake with {addr} failed: {} ({}){}",
            phxq_protocol::errors::name(hs.error_code),
            hs.error_code,
            if hs.mechanisms.is_empty() {
                String::new()
            } else {
                format!(
                    "; the broker enables {}",
                    hs.mechanisms
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        let failed = |why: String| {
            anyhow::anyhow!(
                "SASL/{name} login as {:?} to {addr} failed: {why}",
                login.username
            )
        };
        match login.mechanism {
            Mechanism::Plain => {
                let token = format!("\0{}\0{}", login.username, login.password);
                self.sasl_round(token.into_bytes()).map_err(failed)?;
            }
            Mechanism::Scram(m) => {
                let mut scram = ScramClient::new(m, &login.username, &login.password);
                let server_first = self.sasl_round(scram.client_first()).map_err(failed)?;
                let last = scram.client_final(&server_first).map_err(failed)?;
                let server_final = self.sasl_round(last).map_err(failed)?;
                scram.verify_server_final(&server_final).map_err(failed)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate v1 round: the server's bytes, or why it refused.
    fn sasl_round(&mut self, token: Vec<u8>) -> Result<Vec<u8>, String> {
        let r = self
            .send(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                1,
            )
            .map_err(|e| format!("{e:#}"))?;
        if r.error_code != 0 {
            return Err(format!(
                "{} ({}){}",
                phxq_protocol::errors::name(r.error_code),
                r.error_code,
                r.error_message
                    .map(|m| format!(": {}", m.as_str()))
                    .unwrap_or_default()
            ));
        }
        Ok(r.auth_bytes.to_vec())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` at `version` and waits for its response.
    pub fn send<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("phxq-admin")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .and_then(|_| self.stream.flush())
            .map_err(|e| anyhow::anyhow!("sending to {}: {e}", self.addr))?;

        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| anyhow::anyhow!("no answer from {}: {}", self.addr, closed_or(e)))?;
        let len = i32::from_be_bytes(len);
        anyhow::ensure!(
            (0..=256 << 20).contains(&len),
            "bad response size {len} from {}",
            self.addr
        );
        let mut body = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| anyhow::anyhow!("reading from {}: {}", self.addr, closed_or(e)))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        anyhow::ensure!(
            header.correlation_id == self.correlation_id,
            "response correlation id {} does not match request {}",
            header.correlation_id,
            self.correlation_id
        );
        R::Response::decode(&mut body, version)
    }
}

/// An I/O error as a user reads it: an end of stream is the broker closing the connection.
fn closed_or(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".into(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "timed out after 30 s".into()
        }
        _ => e.to_string(),
    }
}

/// The TLS handshake with `addr`, to the end, so that its failure is reported here.
fn tls_handshake(
    config: Arc<rustls::ClientConfig>,
    mut tcp: TcpStream,
    addr: &str,
) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let (host, _) = crate::addr::split_host_port(addr)?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| anyhow::anyhow!("{host:?} is not a TLS server name: {e}"))?;
    let mut conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| anyhow::anyhow!("TLS with {addr}: {e}"))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| anyhow::anyhow!("TLS handshake with {addr} failed: {}", closed_or(e)))?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}
