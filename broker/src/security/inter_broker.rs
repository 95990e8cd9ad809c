//! Inter-broker traffic over mutual TLS: `[security.inter_broker]`, and the
//! [`PeerSecurity`] the replication transport (`replication/src/raft/tcp.rs`) runs every
//! inter-broker connection through — Raft RPCs of every group, forwarded proposals,
//! snapshots and the status queries of `phxq cluster status`.
//!
//! Rules:
//! - `tls = false` (the default): plaintext, as before; anyone who reaches a broker's
//!   internal port is taken for a broker.
//! - `tls = true`: every inter-broker connection is TLS 1.2/1.3 (rustls, ring), and both
//!   ends prove who they are. The accepting broker requires a client certificate that
//!   chains to `ca_file`; the connecting broker requires a server certificate that chains
//!   to `ca_file` and is valid for the host of the peer's `internal` address in `[cluster]`
//!   (an IP address SAN for `127.0.0.1:19092`, a DNS SAN for `localhost:19092`).
//! - `allowed_principals`, when not empty: the peer certificate's subject, written as RFC
//!   2253 (`CN=broker1,O=Example`, as `security/tls.rs` writes client principals, compared
//!   exactly), must be one of them, in both directions. Empty: any certificate `ca_file`
//!   signed is a broker's, so give the brokers a CA of their own. It needs `tls = true`.
//! - `cert_file`, `key_file` and `ca_file` default to `[security.tls]`'s; `tls = true` with
//!   any of them missing is a configuration error.
//! - Refused on accept, without a byte of the inter-broker protocol: a connection whose
//!   first byte is not a TLS handshake (plaintext), a failed handshake (no certificate, an
//!   unknown CA, an expired certificate, a subject not allowed). The transport logs each
//!   with the peer's address and closes it; nothing else is affected.
//! - A renewed certificate, key or CA file is picked up for new connections without a
//!   restart: the files are checked at most once per [`RELOAD_CHECK`] when a connection
//!   opens. A reload that fails keeps the previous configuration and logs why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use phxq_replication::network::BoxFuture;
use phxq_replication::tcp::{BoxedStream, PeerSecurity};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, info, warn};

use super::config::{SecurityConfig, TlsConfig};
use super::tls::{read_certs, subject_dn};
use crate::addr::{parse_addr, split_host_port};
use crate::cluster::config::ClusterConfig;

/// How often, at most, the files are checked for changes (when a connection opens).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// `[security.inter_broker]`: Kafka's `security.inter.broker.protocol=SSL` with
/// `ssl.client.auth=required` on the inter-broker listener, in PEM files.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InterBrokerConfig {
    /// Mutual TLS between brokers; false: plaintext.
    pub tls: bool,
    /// This broker's certificate chain (leaf first), PEM: shown to peers both ways, so it
    /// must be valid for this broker's `internal` host and allowed as a client certificate.
    /// Default: `[security.tls] cert_file`.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM. Default: `[security.tls] key_file`.
    pub key_file: Option<PathBuf>,
    /// The CA certificates (PEM) that sign brokers' certificates. Default: `[security.tls]
    /// ca_file`.
    pub ca_file: Option<PathBuf>,
    /// Subjects (RFC 2253, `CN=broker1,O=Example`) of the brokers' certificates; empty: any
    /// certificate `ca_file` signed.
    pub allowed_principals: Vec<String>,
}

/// The three files, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl InterBrokerConfig {
    fn files(&self, tls: Option<&TlsConfig>) -> anyhow::Result<Files> {
        let pick = |own: &Option<PathBuf>, shared: Option<&PathBuf>, key: &str| {
            own.clone().or_else(|| shared.cloned()).ok_or_else(|| {
                anyhow::anyhow!(
                    "[security.inter_broker] tls = true needs {key} (or [security.tls] {key})"
                )
            })
        };
        Ok(Files {
            cert: pick(&self.cert_file, tls.map(|t| &t.cert_file), "cert_file")?,
            key: pick(&self.key_file, tls.map(|t| &t.key_file), "key_file")?,
            ca: pick(
                &self.ca_file,
                tls.and_then(|t| t.ca_file.as_ref()),
                "ca_file",
            )?,
        })
    }

    pub fn validate(&self, tls: Option<&TlsConfig>) -> anyhow::Result<()> {
        for p in &self.allowed_principals {
            anyhow::ensure!(
                p.contains('=') && p.trim() == p,
                "[security.inter_broker] allowed_principals: {p:?} is not a distinguished name \
                 like \"CN=broker1,O=Example\""
            );
        }
        if !self.tls {
            anyhow::ensure!(
                self.allowed_principals.is_empty(),
                "[security.inter_broker] allowed_principals needs tls = true"
            );
            return Ok(());
        }
        let f = self.files(tls)?;
        for (key, path) in [
            ("cert_file", &f.cert),
            ("key_file", &f.key),
            ("ca_file", &f.ca),
        ] {
            anyhow::ensure!(
                path.is_file(),
                "[security.inter_broker] {key} {}: no such file",
                path.display()
            );
        }
        Ok(())
    }
}

/// The upgrade of this node's inter-broker connections, from its configuration: mutual TLS
/// with `[security.inter_broker] tls = true`, plaintext otherwise.
pub fn peer_security(
    security: &SecurityConfig,
    cluster: &ClusterConfig,
) -> anyhow::Result<Arc<dyn PeerSecurity>> {
    let ib = &security.inter_broker;
    if !ib.tls {
        return Ok(phxq_replication::tcp::plaintext());
    }
    ib.validate(security.tls.as_ref())?;
    let mut names = HashMap::new();
    for b in &cluster.brokers {
        let (host, _) = split_host_port(&b.internal)?;
        let name = ServerName::try_from(host.clone()).map_err(|e| {
            anyhow::anyhow!("[cluster] broker {}: internal host {host:?}: {e}", b.id)
        })?;
        names.insert(parse_addr(&b.internal)?, name);
    }
    let files = ib.files(security.tls.as_ref())?;
    let allowed = Arc::new(ib.allowed_principals.clone());
    let current = build(&files, &allowed)?;
    info!(
        cert = %files.cert.display(),
        ca = %files.ca.display(),
        allowed_principals = allowed.len(),
        "inter-broker traffic over mutual TLS"
    );
    Ok(Arc::new(InterBrokerTls {
        names,
        stamps: Mutex::new((Instant::now(), stamps(&files))),
        files,
        allowed,
        current: RwLock::new(current),
    }))
}

/// Mutual TLS between brokers.
struct InterBrokerTls {
    /// The TLS name of each peer's internal address (the host as `[cluster]` writes it).
    names: HashMap<SocketAddr, ServerName<'static>>,
    files: Files,
    allowed: Arc<Vec<String>>,
    /// When the files were last checked, and their modification times then.
    stamps: Mutex<(Instant, Vec<Option<SystemTime>>)>,
    current: RwLock<(TlsAcceptor, TlsConnector)>,
}

fn stamps(f: &Files) -> Vec<Option<SystemTime>> {
    [&f.cert, &f.key, &f.ca]
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InterBrokerTls {
    /// The acceptor and connector for a new connection, rebuilt first if a file changed.
    fn current(&self) -> (TlsAcceptor, TlsConnector) {
        let changed = {
            let mut seen = lock(&self.stamps);
            if seen.0.elapsed() < RELOAD_CHECK {
                false
            } else {
                let now = stamps(&self.files);
                seen.0 = Instant::now();
                std::mem::replace(&mut seen.1, now.clone()) != now
            }
        };
        if changed {
            match build(&self.files, &self.allowed) {
                Ok(fresh) => {
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    info!(cert = %self.files.cert.display(), "inter-broker TLS files reloaded");
                }
                Err(e) => warn!(
                    error = %e,
                    "inter-broker TLS files changed but do not load; keeping the previous ones"
                ),
            }
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Reads the files and builds both ends' rustls configurations.
fn build(f: &Files, allowed: &Arc<Vec<String>>) -> anyhow::Result<(TlsAcceptor, TlsConnector)> {
    let what = |key: &str, e: anyhow::Error| anyhow::anyhow!("[security.inter_broker] {key}: {e}");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&f.cert).map_err(|e| what("cert_file", e))?;
    let key = || {
        PrivateKeyDer::from_pem_file(&f.key).map_err(|e| {
            anyhow::anyhow!(
                "[security.inter_broker] key_file: cannot read the key {}: {e}",
                f.key.display()
            )
        })
    };
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&f.ca).map_err(|e| what("ca_file", e))? {
        roots.add(ca).map_err(|e| {
            anyhow::anyhow!(
                "[security.inter_broker] ca_file: bad CA certificate in {}: {e}",
                f.ca.display()
            )
        })?;
    }
    let roots = Arc::new(roots);
    let mismatch = |e: rustls::Error| {
        anyhow::anyhow!(
            "[security.inter_broker] certificate {} and key {} do not go together: {e}",
            f.cert.display(),
            f.key.display()
        )
    };

    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("[security.inter_broker] ca_file: {e}"))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AllowedClients {
            inner: clients,
            allowed: allowed.clone(),
        }))
        .with_single_cert(certs.clone(), key()?)
        .map_err(mismatch)?;

    let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("[security.inter_broker] ca_file: {e}"))?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AllowedServers {
            inner: servers,
            allowed: allowed.clone(),
        }))
        .with_client_auth_cert(certs, key()?)
        .map_err(mismatch)?;
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}

/// A peer certificate whose subject is not in `allowed_principals`.
#[derive(Debug)]
struct NotAllowed(String);

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "subject {:?} is not in [security.inter_broker] allowed_principals",
            self.0
        )
    }
}

impl std::error::Error for NotAllowed {}

/// Ok when `allowed` is empty or names the certificate's subject.
fn check_allowed(allowed: &[String], cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    if allowed.is_empty() {
        return Ok(());
    }
    let dn = subject_dn(cert.as_ref()).ok_or(rustls::Error::InvalidCertificate(
        CertificateError::BadEncoding,
    ))?;
    if allowed.contains(&dn) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(NotAllowed(dn))),
        )))
    }
}

/// The accepting side: a client certificate is required, chains to `ca_file` (rustls'
/// WebPKI verifier) and has an allowed subject.
#[derive(Debug)]
struct AllowedClients {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Arc<Vec<String>>,
}

impl ClientCertVerifier for AllowedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_allowed(&self.allowed, end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The connecting side: the server certificate chains to `ca_file`, is valid for the
/// peer's internal host (rustls' WebPKI verifier) and has an allowed subject.
#[derive(Debug)]
struct AllowedServers {
    inner: Arc<WebPkiServerVerifier>,
    allowed: Arc<Vec<String>>,
}

impl ServerCertVerifier for AllowedServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_allowed(&self.allowed, end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A handshake error for the log: a subject not allowed is named as such (rustls' own
/// message would show its debug form).
fn describe(e: &std::io::Error) -> String {
    let rustls_error = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) =
        rustls_error
    {
        return format!("invalid peer certificate: {inner}");
    }
    e.to_string()
}

/// TLS records start with content type 22 (handshake) for a ClientHello.
const TLS_HANDSHAKE: u8 = 0x16;

impl PeerSecurity for InterBrokerTls {
    fn connect(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> BoxFuture<std::io::Result<BoxedStream>> {
        let (_, connector) = self.current();
        let name = self
            .names
            .get(&peer)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(peer.ip().into()));
        Box::pin(async move {
            match connector.connect(name, stream).await {
                Ok(s) => Ok(Box::new(s) as BoxedStream),
                Err(e) => {
                    let why = describe(&e);
                    warn!(%peer, error = %why, "inter-broker TLS handshake with a peer failed");
                    Err(std::io::Error::new(
                        e.kind(),
                        format!("TLS handshake failed: {why}"),
                    ))
                }
            }
        })
    }

    fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> BoxFuture<Result<BoxedStream, String>> {
        let (acceptor, _) = self.current();
        Box::pin(async move {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(0) => return Err("closed before a TLS handshake".into()),
                Ok(_) if first[0] != TLS_HANDSHAKE => {
                    return Err(format!(
                        "not a TLS handshake (first byte {:#04x}): plaintext is not accepted \
                         with [security.inter_broker] tls = true",
                        first[0]
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read failed before a TLS handshake: {e}")),
            }
            let s = acceptor
                .accept(stream)
                .await
                .map_err(|e| format!("TLS handshake failed: {}", describe(&e)))?;
            let subject = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| subject_dn(c.as_ref()));
            debug!(%peer, subject = subject.as_deref().unwrap_or("?"), "inter-broker TLS connection");
            Ok(Box::new(s) as BoxedStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: Option<&str>) -> TlsConfig {
        toml::from_str(&format!(
            "cert_file = \"/x/cert.pem\"\nkey_file = \"/x/key.pem\"\n{}",
            ca.map(|c| format!("ca_file = \"{c}\"")).unwrap_or_default()
        ))
        .unwrap()
    }

    #[test]
    fn files_default_to_security_tls() {
        let c: InterBrokerConfig = toml::from_str("tls = true\nca_file = \"/y/ca.pem\"").unwrap();
        let f = c.files(Some(&tls(None))).unwrap();
        assert_eq!(f.cert, PathBuf::from("/x/cert.pem"));
        assert_eq!(f.key, PathBuf::from("/x/key.pem"));
        assert_eq!(f.ca, PathBuf::from("/y/ca.pem"));
        let f = c.files(Some(&tls(Some("/x/ca.pem")))).unwrap();
        assert_eq!(f.ca, PathBuf::from("/y/ca.pem"), "its own ca_file wins");
    }

    #[test]
    fn validation_says_what_is_missing() {
        let c: InterBrokerConfig = toml::from_str("tls = true").unwrap();
        let e = c.validate(None).unwrap_err().to_string();
        assert!(e.contains("needs cert_file"), "{e}");
        let e = c.validate(Some(&tls(None))).unwrap_err().to_string();
        assert!(e.contains("needs ca_file"), "{e}");
        let e = c
            .validate(Some(&tls(Some("/x/ca.pem"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert_file /x/cert.pem: no such file"), "{e}");
        let c: InterBrokerConfig = toml::from_str("allowed_principals = [\"CN=b1\"]").unwrap();
        let e = c.validate(None).unwrap_err().to_string();
        assert!(e.contains("needs tls = true"), "{e}");
        let c: InterBrokerConfig =
            toml::from_str("tls = true\nallowed_principals = [\"broker1\"]").unwrap();
        assert!(c.validate(None).is_err());
        InterBrokerConfig::default().validate(None).unwrap();
        assert!(toml::from_str::<InterBrokerConfig>("tsl = true").is_err());
    }
}
