//! Metrics: what a broker measures, exposed over HTTP in the Prometheus / OpenMetrics text
//! format (`[metrics] listen`, `http`), with the health checks next to them.
//!
//! Instruments updated as things happen live in [`Metrics`]; the state of the node (Raft,
//! storage, disk, consumer lag) is read at each scrape by [`state::NodeState`]. The registry
//! and the text encoding are the `prometheus-client` crate's.
//!
//! # Names
//!
//! Every name starts with `phxq_`. Where Kafka has the same measure, the name says which:
//! `topic_bytes_in_total` is Kafka's BytesInPerSec, `topic_records_in_total` its
//! MessagesInPerSec, `request_duration_seconds` its RequestMetrics TotalTimeMs and
//! `request_{queue,local,remote,send}_time_seconds` the parts of it (RequestQueueTimeMs,
//! LocalTimeMs, RemoteTimeMs, ResponseQueueTimeMs + ResponseSendTimeMs),
//! `under_replicated_partitions` its UnderReplicatedPartitions. README: Metrics lists all.
//!
//! # Cardinality
//!
//! Labels come from bounded sets only: Kafka API names and versions, Kafka error names,
//! topics (series of a deleted topic are dropped with it), store groups and their voters,
//! consumer groups this broker coordinates. Consumer lag per partition is exported for at
//! most [`MAX_LAG_SERIES`] partitions (the per-group total always); client ids and hosts
//! are never labels.

pub mod errors;
pub mod health;
pub mod http;
pub mod state;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::broker::Broker;

/// Most partitions whose consumer lag gets its own series, per scrape.
pub const MAX_LAG_SERIES: usize = 10_000;

/// API keys below this get their latency histograms resolved once (Kafka's keys end near
/// 90); others go through the label families on each request.
const API_SLOTS: usize = 128;

type Labels = Vec<(&'static str, String)>;

/// The broker's instruments and the registry that exposes them.
pub struct Metrics {
    /// Off while no endpoint serves them: nothing is counted then.
    enabled: AtomicBool,
    registry: Mutex<Registry>,
    collector_set: OnceLock<()>,
    requests: Family<Labels, Counter>,
    request_errors: Family<Labels, Counter>,
    request_duration: Family<Labels, Histogram>,
    /// Kafka's split of a request's time (RequestQueueTimeMs, LocalTimeMs, RemoteTimeMs,
    /// ResponseSendTimeMs), by API.
    request_queue: Family<Labels, Histogram>,
    request_local: Family<Labels, Histogram>,
    request_remote: Family<Labels, Histogram>,
    request_send: Family<Labels, Histogram>,
    /// Each API's histograms, looked up once: a request then costs no label allocation.
    api_latency: Box<[OnceLock<ApiLatency>]>,
    connections: Gauge,
    connections_opened: Counter,
    /// SASL authentications refused.
    authentication_failures: Counter,
    bytes_in: Family<Labels, Counter>,
    records_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    records_out: Family<Labels, Counter>,
    throttle: Family<Labels, Counter<f64, AtomicU64>>,
}

fn duration_histogram() -> Histogram {
    // 100 µs to ~105 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// The latency histograms of one API (shared with their families' series).
struct ApiLatency {
    total: Histogram,
    queue: Histogram,
    local: Histogram,
    /// Only for APIs answered later (Produce): the others would export empty series.
    remote: Option<Histogram>,
    send: Histogram,
}

/// Where a request's time went, as the connection measured it (see `connection.rs`).
#[derive(Clone, Copy, Debug)]
pub struct RequestTimes {
    /// Frame read to handler start: waiting behind the connection's earlier requests.
    pub queue: Duration,
    /// The handler, until its response exists or its work is handed to Raft.
    pub local: Duration,
    /// A deferred response's wait (a Produce's Raft commit), `None` for the others.
    pub remote: Option<Duration>,
    /// Frame read to response ready (Kafka's TotalTimeMs without the send).
    pub total: Duration,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            enabled: AtomicBool::new(true),
            registry: Mutex::new(Registry::with_prefix("phxq")),
            collector_set: OnceLock::new(),
            requests: Family::default(),
            request_errors: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            request_queue: Family::new_with_constructor(duration_histogram),
            request_local: Family::new_with_constructor(duration_histogram),
            request_remote: Family::new_with_constructor(duration_histogram),
            request_send: Family::new_with_constructor(duration_histogram),
            api_latency: (0..API_SLOTS).map(|_| OnceLock::new()).collect(),
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            authentication_failures: Counter::default(),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            throttle: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap();
            r.register(
                "requests",
                "Requests answered, by Kafka API and version",
                m.requests.clone(),
            );
            r.register(
                "request_errors",
                "Error codes in responses (top level, per partition or per resource), by API and Kafka error name",
                m.request_errors.clone(),
            );
            r.register_with_unit(
                "request_duration",
                "Time from a request's arrival to its response being ready, by API (Kafka's TotalTimeMs)",
                Unit::Seconds,
                m.request_duration.clone(),
            );
            r.register_with_unit(
                "request_queue_time",
                "Time from a request's arrival to its handler starting, waiting behind the connection's earlier requests, by API (Kafka's RequestQueueTimeMs)",
                Unit::Seconds,
                m.request_queue.clone(),
            );
            r.register_with_unit(
                "request_local_time",
                "Time in the request's handler until its response exists or its work is handed to Raft, by API (Kafka's LocalTimeMs)",
                Unit::Seconds,
                m.request_local.clone(),
            );
            r.register_with_unit(
                "request_remote_time",
                "Time a deferred response waited after its handler (a Produce's Raft commit and fsync on a majority), by API (Kafka's RemoteTimeMs)",
                Unit::Seconds,
                m.request_remote.clone(),
            );
            r.register_with_unit(
                "request_send_time",
                "Time from a response being ready to its bytes being written to the socket, by API (Kafka's ResponseQueueTimeMs + ResponseSendTimeMs)",
                Unit::Seconds,
                m.request_send.clone(),
            );
            r.register(
                "connections",
                "Open client connections",
                m.connections.clone(),
            );
            r.register(
                "connections_opened",
                "Client connections accepted",
                m.connections_opened.clone(),
            );
            r.register(
                "authentication_failures",
                "SASL authentications refused (wrong password, unknown user, bad exchange)",
                m.authentication_failures.clone(),
            );
            r.register_with_unit(
                "topic_in",
                "Record batch bytes appended by producers, by topic (Kafka's BytesInPerSec)",
                Unit::Bytes,
                m.bytes_in.clone(),
            );
            r.register(
                "topic_records_in",
                "Records appended by producers, by topic (Kafka's MessagesInPerSec)",
                m.records_in.clone(),
            );
            r.register_with_unit(
                "topic_out",
                "Record batch bytes sent to consumers, by topic (Kafka's BytesOutPerSec)",
                Unit::Bytes,
                m.bytes_out.clone(),
            );
            r.register(
                "topic_records_out",
                "Records sent to consumers, by topic",
                m.records_out.clone(),
            );
            r.register_with_unit(
                "quota_throttle",
                "Throttle time given to clients, by quota kind (produce, fetch, group)",
                Unit::Seconds,
                m.throttle.clone(),
            );
        }
        m
    }

    /// Turns counting on or off (off when the broker serves no metrics endpoint).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether anything is counted (callers skip work that only feeds the metrics).
    pub fn on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Adds the scrape-time view of the node (Raft, storage, disk, lag, health), once.
    pub fn watch(&self, broker: Weak<Broker>) {
        if self.collector_set.set(()).is_ok() {
            self.registry
                .lock()
                .unwrap()
                .register_collector(Box::new(state::NodeState::new(broker)));
        }
    }

    /// The whole exposition, OpenMetrics text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock().unwrap())?;
        Ok(out)
    }

    /// The latency histograms of `api`, created on its first request.
    fn latency<R>(&self, api: ApiKey, f: impl FnOnce(&ApiLatency) -> R) -> R {
        let make = || {
            let l = vec![("api", format!("{api:?}"))];
            ApiLatency {
                total: self.request_duration.get_or_create(&l).clone(),
                queue: self.request_queue.get_or_create(&l).clone(),
                local: self.request_local.get_or_create(&l).clone(),
                remote: (api == ApiKey::Produce)
                    .then(|| self.request_remote.get_or_create(&l).clone()),
                send: self.request_send.get_or_create(&l).clone(),
            }
        };
        match self.api_latency.get(api as i16 as usize) {
            Some(slot) => f(slot.get_or_init(make)),
            None => f(&make()),
        }
    }

    /// One request answered (`body` None: no response, acks=0).
    pub fn request(
        &self,
        api: ApiKey,
        version: i16,
        times: RequestTimes,
        body: Option<&ResponseKind>,
    ) {
        if !self.on() {
            return;
        }
        let name = format!("{api:?}");
        self.requests
            .get_or_create(&vec![
                ("api", name.clone()),
                ("version", version.to_string()),
            ])
            .inc();
        self.latency(api, |h| {
            h.total.observe(times.total.as_secs_f64());
            h.queue.observe(times.queue.as_secs_f64());
            h.local.observe(times.local.as_secs_f64());
            if let Some(remote) = times.remote {
                match &h.remote {
                    Some(r) => r.observe(remote.as_secs_f64()),
                    None => self
                        .request_remote
                        .get_or_create(&vec![("api", format!("{api:?}"))])
                        .observe(remote.as_secs_f64()),
                }
            }
        });
        if let Some(body) = body {
            errors::each_error(body, |code| {
                self.request_errors
                    .get_or_create(&vec![("api", name.clone()), ("error", errors::name(code))])
                    .inc();
            });
        }
    }

    /// A response of `api` was written to its socket, `took` after it was ready.
    pub fn sent(&self, api: ApiKey, took: Duration) {
        if self.on() {
            self.latency(api, |h| h.send.observe(took.as_secs_f64()));
        }
    }

    /// A connection opened; the guard counts it closed when dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.inc();
        self.connections_opened.inc();
        ConnectionGuard(self.clone())
    }

    /// A SASL authentication was refused (counted even while metrics are off: rare).
    pub fn authentication_failed(&self) {
        self.authentication_failures.inc();
    }

    /// Batches appended to `topic`.
    pub fn produced(&self, topic: &str, bytes: u64, records: u64) {
        if !self.on() {
            return;
        }
        let l = vec![("topic", topic.to_string())];
        self.bytes_in.get_or_create(&l).inc_by(bytes);
        self.records_in.get_or_create(&l).inc_by(records);
    }

    /// Batches sent to a consumer from `topic`.
    pub fn fetched(&self, topic: &str, bytes: u64, records: u64) {
        if !self.on() {
            return;
        }
        let l = vec![("topic", topic.to_string())];
        self.bytes_out.get_or_create(&l).inc_by(bytes);
        self.records_out.get_or_create(&l).inc_by(records);
    }

    /// What was counted for `topic` since the broker started (zeros while nothing was, or
    /// while counting is off). Reads only: no series is created.
    pub fn topic_totals(&self, topic: &str) -> TopicTotals {
        let l = vec![("topic", topic.to_string())];
        let get = |f: &Family<Labels, Counter>| f.get(&l).map_or(0, |c| c.get());
        TopicTotals {
            bytes_in: get(&self.bytes_in),
            records_in: get(&self.records_in),
            bytes_out: get(&self.bytes_out),
            records_out: get(&self.records_out),
        }
    }

    /// A deleted topic's series go with it.
    pub fn forget_topic(&self, topic: &str) {
        let l = vec![("topic", topic.to_string())];
        self.bytes_in.remove(&l);
        self.records_in.remove(&l);
        self.bytes_out.remove(&l);
        self.records_out.remove(&l);
    }

    /// Throttle time handed to a client for a quota kind.
    pub fn throttled(&self, kind: &'static str, ms: u64) {
        if ms > 0 && self.on() {
            self.throttle
                .get_or_create(&vec![("kind", kind.to_string())])
                .inc_by(ms as f64 / 1000.0);
        }
    }
}

/// A topic's traffic counters (`Metrics::topic_totals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TopicTotals {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

/// Counts a connection closed when dropped.
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
