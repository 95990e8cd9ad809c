//! The `produce` workload: N producer threads, each with its own librdkafka
//! producer, send fixed-size records as fast as librdkafka accepts them.
//!
//! Throughput counts only records whose delivery report succeeded, over the
//! time from the first send to the last delivery report. Latency is send
//! (handed to librdkafka) -> delivery report, so it includes linger.ms and
//! batching. Any failed delivery fails the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use crate::kafka::{self, BenchContext, ClientEvents, ClientOpts};
use crate::report::RunResult;
use crate::stats::{Recorder, Sampler};

/// Parameters of `phxq-bench produce`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ProduceParams {
    /// Topic to produce to (default: a new, uniquely named topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Total records to send (split evenly over the producers).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Payload bytes per record (no key, no headers).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Producer clients (one thread and one librdkafka instance each).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// acks: all (-1), 1 or 0.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// linger.ms (librdkafka's default when not given: 5).
    #[arg(long)]
    pub linger_ms: Option<u32>,
    /// batch.size in bytes (librdkafka's default when not given: 1000000).
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// enable.idempotence=true (needs acks=all and InitProducerId on the broker).
    #[arg(long)]
    pub idempotence: bool,
    /// Stop sending after this many seconds (what was sent is still awaited and counted).
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
    /// How long to wait for outstanding delivery reports after the last send.
    #[arg(long, default_value_t = 60.0)]
    pub flush_seconds: f64,
    /// Do not create the topic (it must exist, or the broker must auto-create it).
    #[arg(long)]
    pub no_create: bool,
}

/// Runs the produce workload and returns its result.
pub fn run(
    opts: &ClientOpts,
    p: &ProduceParams,
    label: &str,
    progress: &ProgressBar,
) -> Result<RunResult> {
    let topic = p
        .topic
        .clone()
        .unwrap_or_else(|| kafka::unique_topic("bench-produce"));
    let mut params = serde_json::to_value(p)?;
    params["topic"] = serde_json::json!(topic);
    let mut result = RunResult::new("produce", label, Some(&opts.bootstrap), params);
    let setup_timeout = Duration::from_secs(30);
    if p.no_create {
        kafka::wait_for_partitions(opts, &topic, None, setup_timeout)?;
    } else {
        kafka::ensure_topic(
            opts,
            &topic,
            p.partitions,
            p.replication_factor,
            setup_timeout,
        )?;
    }

    let start = Instant::now();
    let recorder = Arc::new(Recorder::new(start));
    let events = Arc::new(ClientEvents::default());
    let mut overrides = vec![
        ("acks", p.acks.clone()),
        ("compression.type", p.compression.clone()),
        ("enable.idempotence", p.idempotence.to_string()),
    ];
    if let Some(l) = p.linger_ms {
        overrides.push(("linger.ms", l.to_string()));
    }
    if let Some(b) = p.batch_size {
        overrides.push(("batch.size", b.to_string()));
    }
    let producers = (0..p.producers.max(1))
        .map(|i| {
            let ctx =
                BenchContext::new(events.clone(), Some(recorder.clone()), p.record_size as u64);
            let config = opts.config(&format!("phxq-bench-producer-{i}"), &overrides);
            ThreadedProducer::from_config_and_context(&config, ctx)
                .context("creating producer (check --acks/--compression/-X values)")
        })
        .collect::<Result<Vec<_>>>()?;

    progress.set_length(p.records);
    let sampler = Sampler::start(recorder.clone(), progress.clone());
    let deadline = start + Duration::from_secs_f64(p.max_seconds);
    let n = producers.len() as u64;
    let payload = kafka::payload(p.record_size, 1);
    let outcomes: Vec<SendOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(i, producer)| {
                let mine = p.records / n + u64::from((i as u64) < p.records % n);
                let (topic, payload, recorder) = (&topic, &payload, &recorder);
                s.spawn(move || send_loop(producer, topic, payload, mine, deadline, recorder))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread panicked"))
            .collect()
    });
    let flush_timeout = Duration::from_secs_f64(p.flush_seconds);
    let mut unflushed = 0;
    for producer in &producers {
        if producer.flush(flush_timeout).is_err() {
            unflushed += producer.in_flight_count().max(0) as u64;
        }
    }
    // Stop the poll threads (delivering any last reports) before reading totals.
    drop(producers);
    result.timeline = sampler.finish();
    let totals = recorder.totals();
    let sent: u64 = outcomes.iter().map(|o| o.sent).sum();

    result.set_totals(
        totals.records,
        totals.bytes,
        totals.last_completion.as_secs_f64(),
    );
    result.latency = totals.latency;
    result.extra.insert("sent".into(), sent.into());
    result
        .extra
        .insert("delivery_failures".into(), totals.errors.into());
    if outcomes.iter().any(|o| o.stopped_by_deadline) {
        result.notes.push(format!(
            "stopped sending after --max-seconds {}: {sent} of {} records sent",
            p.max_seconds, p.records
        ));
    }
    for o in &outcomes {
        if let Some(e) = &o.send_error {
            result.fail(format!("send failed: {e}"));
        }
    }
    if totals.errors > 0 {
        result.fail(format!(
            "{} of {sent} deliveries failed; first errors: {}",
            totals.errors,
            totals.first_errors.join("; ")
        ));
    }
    if unflushed > 0 {
        result.fail(format!(
            "{unflushed} records still without a delivery report {}s after the last send",
            p.flush_seconds
        ));
    }
    if totals.records + totals.errors != sent {
        result.fail(format!(
            "sent {sent} records but got {} successful and {} failed delivery reports",
            totals.records, totals.errors
        ));
    }
    add_client_events(&mut result, &events);
    Ok(result)
}

/// Adds librdkafka's client-level errors/warnings to a result's notes.
pub fn add_client_events(result: &mut RunResult, events: &ClientEvents) {
    let (count, first) = events.snapshot();
    if count > 0 {
        result.extra.insert("client_events".into(), count.into());
        for e in first {
            result.notes.push(format!("librdkafka: {e}"));
        }
    }
}

struct SendOutcome {
    sent: u64,
    stopped_by_deadline: bool,
    send_error: Option<String>,
}

fn send_loop(
    producer: &ThreadedProducer<BenchContext>,
    topic: &str,
    payload: &[u8],
    count: u64,
    deadline: Instant,
    recorder: &Recorder,
) -> SendOutcome {
    let mut out = SendOutcome {
        sent: 0,
        stopped_by_deadline: false,
        send_error: None,
    };
    for _ in 0..count {
        if Instant::now() >= deadline {
            out.stopped_by_deadline = true;
            break;
        }
        let mut record =
            BaseRecord::with_opaque_to(topic, recorder.now_ns() as usize).payload(payload);
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: wait for deliveries to drain it.
                    std::thread::sleep(Duration::from_micros(200));
                    record = back;
                    record.delivery_opaque = recorder.now_ns() as usize;
                }
                Err((e, _)) => {
                    out.send_error = Some(e.to_string());
                    return out;
                }
            }
        }
        out.sent += 1;
    }
    out
}
