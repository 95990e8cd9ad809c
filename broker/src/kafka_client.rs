//! A minimal blocking Kafka protocol client for the admin commands of the `phxq` binary:
//! one connection, one request at a time, versions chosen by the caller. It talks to a
//! broker exactly as any Kafka client would (and so works against any Kafka broker).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub struct KafkaClient {
    stream: TcpStream,
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
        let stream = TcpStream::connect(addr)
            .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(KafkaClient {
            stream,
            addr: addr.to_string(),
            correlation_id: 0,
        })
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
        self.stream.write_all(&buf)?;

        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        anyhow::ensure!(
            (0..=256 << 20).contains(&len),
            "bad response size {len} from {}",
            self.addr
        );
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
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
