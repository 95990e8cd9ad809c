//! librdkafka client plumbing shared by the workloads: client configuration,
//! topic creation through the admin API, metadata waits, payloads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::stats::Recorder;

/// Options common to every client the harness creates.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub bootstrap: String,
    /// Extra librdkafka properties (`-X key=value`), applied last so they win.
    pub extra: Vec<(String, String)>,
}

impl ClientOpts {
    /// A client configuration with the bootstrap address, a client id and the extra properties.
    /// `overrides` are applied before the user's `-X` properties.
    pub fn config(&self, client_id: &str, overrides: &[(&str, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c.set("client.id", client_id);
        for (k, v) in overrides {
            c.set(*k, v);
        }
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        if std::env::var_os("PHXQ_BENCH_LOG").is_some() {
            // rdkafka derives librdkafka's log level from the `log` crate's (off here).
            c.set_log_level(RDKafkaLogLevel::Debug);
        }
        c
    }
}

/// Client-level errors and warnings librdkafka reported (connection refused,
/// broker down, unsupported API...). They do not fail a run by themselves but
/// are written into its result, so that a slow or failed run can be explained.
#[derive(Debug, Default)]
pub struct ClientEvents {
    inner: Mutex<(u64, Vec<String>)>,
}

impl ClientEvents {
    fn push(&self, line: String) {
        let mut g = self.inner.lock().expect("client events lock");
        g.0 += 1;
        if g.1.len() < 10 && !g.1.contains(&line) {
            g.1.push(line);
        }
    }

    /// (count of events, the first distinct ones).
    pub fn snapshot(&self) -> (u64, Vec<String>) {
        self.inner.lock().expect("client events lock").clone()
    }
}

/// The client context of every producer and consumer of the harness: keeps
/// client errors in [`ClientEvents`] and, for producers, feeds delivery
/// reports into a [`Recorder`].
pub struct BenchContext {
    pub events: Arc<ClientEvents>,
    /// Where delivery reports go (producers only).
    pub deliveries: Option<Arc<Recorder>>,
    /// Payload bytes of each produced record.
    pub record_size: u64,
    /// Echo every librdkafka log line to stderr with a timestamp (env PHXQ_BENCH_LOG set;
    /// combine with -X debug=fetch,protocol... to see what the client does).
    pub echo_log: bool,
}

impl BenchContext {
    /// A context reporting client events to `events` and deliveries (if any) to `deliveries`.
    pub fn new(
        events: Arc<ClientEvents>,
        deliveries: Option<Arc<Recorder>>,
        record_size: u64,
    ) -> Self {
        Self {
            events,
            deliveries,
            record_size,
            echo_log: std::env::var_os("PHXQ_BENCH_LOG").is_some(),
        }
    }
}

impl ClientContext for BenchContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if self.echo_log {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!(
                "{}.{:06} librdkafka {level:?} {fac}: {message}",
                t.as_secs(),
                t.subsec_micros()
            );
        }
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.events.push(format!("{level:?} {fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.push(format!("error {error}: {reason}"));
    }
}

impl ConsumerContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// Nanoseconds since the run's start at which the record was handed to librdkafka.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let Some(rec) = &self.deliveries else { return };
        match result {
            Ok(_) => {
                let latency_us = rec.now_ns().saturating_sub(sent_ns as u64) / 1000;
                rec.record(self.record_size, Some(latency_us));
            }
            Err((e, _)) => rec.record_error(format!("delivery failed: {e}")),
        }
    }
}

/// librdkafka refuses assign() without a group.id ("Local: Unknown group"), so
/// assign-only consumers get a throwaway group id. Nothing is committed and no
/// group is joined; librdkafka only looks up the group's coordinator.
pub fn throwaway_group() -> String {
    format!("phxq-bench-assign-{}", std::process::id())
}

/// Parses one `key=value` librdkafka property.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// Creates `topic` with `partitions` partitions through the admin API (an
/// already existing topic is fine), then waits until metadata shows it with
/// every partition led by some broker.
pub fn ensure_topic(
    opts: &ClientOpts,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = opts
        .config("phxq-bench-admin", &[])
        .create()
        .context("creating admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let admin_opts = AdminOptions::new().operation_timeout(Some(timeout));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt
        .block_on(async {
            tokio::time::timeout(timeout, admin.create_topics([&new_topic], &admin_opts)).await
        })
        .map_err(|_| anyhow!("CreateTopics for {topic:?} got no answer within {timeout:?}"))?
        .with_context(|| format!("CreateTopics for {topic:?}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => bail!("CreateTopics {t:?} failed: {code:?} ({code})"),
        }
    }
    wait_for_partitions(opts, topic, Some(partitions as usize), timeout)?;
    Ok(())
}

/// Waits until metadata lists `topic` with (at least `expect`) partitions all having a leader,
/// and returns the partition ids.
pub fn wait_for_partitions(
    opts: &ClientOpts,
    topic: &str,
    expect: Option<usize>,
    timeout: Duration,
) -> Result<Vec<i32>> {
    let consumer: BaseConsumer = opts
        .config("phxq-bench-metadata", &[])
        .create()
        .context("creating metadata client")?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no metadata answer");
    while Instant::now() < deadline {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_some() => {
                    last = format!("topic error {:?}", t.error());
                }
                Some(t) => {
                    let ready: Vec<i32> = t
                        .partitions()
                        .iter()
                        .filter(|p| p.leader() >= 0 && p.error().is_none())
                        .map(|p| p.id())
                        .collect();
                    let enough = expect.is_none_or(|n| ready.len() >= n);
                    if !ready.is_empty() && ready.len() == t.partitions().len() && enough {
                        let mut ids = ready;
                        ids.sort_unstable();
                        return Ok(ids);
                    }
                    last = format!(
                        "{} of {} partitions have a leader (want {:?})",
                        ready.len(),
                        t.partitions().len(),
                        expect
                    );
                }
                None => last = "topic not in metadata".into(),
            },
            Err(e) => last = format!("metadata request failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("topic {topic:?} not ready within {timeout:?}: {last}")
}

/// A payload of `size` pseudo-random (incompressible) bytes, the same for a given seed.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    // xorshift64*: deterministic, fast, and not compressible by lz4/zstd/gzip.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A topic name unique to this process and moment, with a readable prefix.
pub fn unique_topic(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{prefix}-{ms}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_parsing() {
        assert_eq!(
            parse_property("fetch.wait.max.ms=100").unwrap(),
            ("fetch.wait.max.ms".into(), "100".into())
        );
        assert_eq!(parse_property("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn payload_is_deterministic_and_sized() {
        assert_eq!(payload(100, 7).len(), 100);
        assert_eq!(payload(100, 7), payload(100, 7));
        assert_ne!(payload(100, 7), payload(100, 8));
        assert_eq!(payload(0, 1).len(), 0);
    }

    #[test]
    fn config_applies_extras_last() {
        let o = ClientOpts {
            bootstrap: "127.0.0.1:1".into(),
            extra: vec![("acks".into(), "1".into())],
        };
        let c = o.config("x", &[("acks", "all".into())]);
        assert_eq!(c.get("acks"), Some("1"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:1"));
    }
}
