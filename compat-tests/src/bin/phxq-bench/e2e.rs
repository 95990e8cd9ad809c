//! The `e2e` workload: end-to-end latency at a fixed rate.
//!
//! One producer sends `rate` records per second, evenly paced, for
//! `duration_secs`; each payload starts with its sequence number and its send
//! time (nanoseconds since the run started, same process clock). One consumer
//! in the same process reads the topic with assign() from the beginning (no
//! consumer group) and records receive time - send time. Both clients run with
//! librdkafka's defaults (so fetch.wait.max.ms = 500 and linger.ms = 5) unless
//! changed with -X: the figure is what a user with default settings sees.
//!
//! Records sent in the first `warmup_secs` are received and counted but kept
//! out of the latency statistics (connection setup, metadata, first fetch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::kafka::{self, BenchContext, ClientEvents, ClientOpts};
use crate::report::RunResult;
use crate::stats::{Recorder, Sampler};

/// Bytes at the start of each payload: sequence number and send time.
const HEADER: usize = 16;

/// Parameters of `phxq-bench e2e`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct E2eParams {
    /// Topic (default: a new, uniquely named topic; an existing one must be empty).
    #[arg(long)]
    pub topic: Option<String>,
    /// Records per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Payload bytes per record (at least 16).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Leading seconds of records kept out of the latency statistics.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// After the last send, how long to wait for the last records to arrive.
    #[arg(long, default_value_t = 15.0)]
    pub drain_secs: f64,
    /// Do not create the topic.
    #[arg(long)]
    pub no_create: bool,
}

/// Encodes the payload header: sequence number, then send time in ns.
fn encode_header(buf: &mut [u8], seq: u64, sent_ns: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_le_bytes());
}

/// Decodes (sequence number, send time in ns) from a payload.
fn decode_header(buf: &[u8]) -> Option<(u64, u64)> {
    if buf.len() < HEADER {
        return None;
    }
    let seq = u64::from_le_bytes(buf[..8].try_into().ok()?);
    let sent = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    Some((seq, sent))
}

/// Runs the e2e workload and returns its result.
pub fn run(
    opts: &ClientOpts,
    p: &E2eParams,
    label: &str,
    progress: &ProgressBar,
) -> Result<RunResult> {
    if p.record_size < HEADER {
        bail!("--record-size must be at least {HEADER} (sequence number and timestamp)");
    }
    if p.rate == 0 {
        bail!("--rate must be positive");
    }
    let topic = p
        .topic
        .clone()
        .unwrap_or_else(|| kafka::unique_topic("bench-e2e"));
    let mut params = serde_json::to_value(p)?;
    params["topic"] = serde_json::json!(topic);
    let mut result = RunResult::new("e2e", label, Some(&opts.bootstrap), params);
    let timeout = Duration::from_secs(30);
    let ids = if p.no_create {
        kafka::wait_for_partitions(opts, &topic, None, timeout)?
    } else {
        kafka::ensure_topic(opts, &topic, p.partitions, p.replication_factor, timeout)?;
        kafka::wait_for_partitions(opts, &topic, None, timeout)?
    };

    let total = (p.rate as f64 * p.duration_secs).round() as u64;
    let warmup = (p.rate as f64 * p.warmup_secs).round() as u64;
    let events = Arc::new(ClientEvents::default());
    let start = Instant::now();
    let received = Arc::new(Recorder::new(start));
    let acks = Arc::new(Recorder::new(start));

    // Consumer first, so that it is fetching before the first record is sent.
    let consumer: BaseConsumer<BenchContext> = BaseConsumer::from_config_and_context(
        &opts.config(
            "phxq-bench-e2e-consumer",
            &[
                ("group.id", kafka::throwaway_group()),
                ("enable.auto.commit", "false".into()),
            ],
        ),
        BenchContext::new(events.clone(), None, 0),
    )
    .context("creating consumer")?;
    let mut tpl = TopicPartitionList::new();
    for id in &ids {
        let (low, high) = consumer.fetch_watermarks(&topic, *id, timeout)?;
        if high != low {
            bail!("topic {topic} partition {id} is not empty ({low}..{high}); e2e needs an empty topic");
        }
        tpl.add_partition_offset(&topic, *id, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assign")?;
    let producer: ThreadedProducer<BenchContext> = ThreadedProducer::from_config_and_context(
        &opts.config("phxq-bench-e2e-producer", &[]),
        BenchContext::new(events.clone(), Some(acks.clone()), p.record_size as u64),
    )
    .context("creating producer")?;

    progress.set_length(total);
    let sampler = Sampler::start(received.clone(), progress.clone());
    let done_sending = AtomicBool::new(false);
    let mut seen = vec![false; total as usize];
    let (mut duplicates, mut foreign, mut consumer_errors) = (0u64, 0u64, 0u64);
    let mut unique = 0u64;
    let send_outcome = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let r = send_paced(&producer, &topic, p, total, &acks);
            done_sending.store(true, Ordering::Release);
            r
        });
        let mut drain_deadline: Option<Instant> = None;
        while unique < total {
            if done_sending.load(Ordering::Acquire) {
                let d = *drain_deadline
                    .get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(p.drain_secs));
                if Instant::now() >= d {
                    break;
                }
            }
            match consumer.poll(Duration::from_millis(50)) {
                None => {}
                Some(Err(e)) => {
                    consumer_errors += 1;
                    received.record_error(format!("consumer error: {e}"));
                }
                Some(Ok(m)) => {
                    let now = received.now_ns();
                    let Some((seq, sent)) = m.payload().and_then(decode_header) else {
                        foreign += 1;
                        continue;
                    };
                    match seen.get_mut(seq as usize) {
                        None => foreign += 1,
                        Some(true) => duplicates += 1,
                        Some(slot) => {
                            *slot = true;
                            unique += 1;
                            let lat_us = (now.saturating_sub(sent) / 1000).max(1);
                            let lat = (seq >= warmup).then_some(lat_us);
                            received.record(m.payload_len() as u64, lat);
                        }
                    }
                }
            }
        }
        sender.join().expect("sender thread panicked")
    });
    let flush_ok = producer.flush(Duration::from_secs(30)).is_ok();
    drop(producer);
    result.timeline = sampler.finish();
    let totals = received.totals();
    let ack_totals = acks.totals();
    let sent = send_outcome.sent;
    result.set_totals(
        totals.records,
        totals.bytes,
        totals.last_completion.as_secs_f64(),
    );
    result.latency = totals.latency;
    let lost = sent.saturating_sub(unique);
    for (k, v) in [
        ("sent", sent),
        ("acknowledged", ack_totals.records),
        ("delivery_failures", ack_totals.errors),
        ("lost", lost),
        ("duplicates", duplicates),
        ("foreign_records", foreign),
        ("warmup_records_excluded", warmup.min(unique)),
    ] {
        result.extra.insert(k.into(), v.into());
    }
    if let Some(l) = ack_totals.latency {
        result
            .extra
            .insert("produce_ack_p50_ms".into(), l.p50_ms.into());
        result
            .extra
            .insert("produce_ack_p99_ms".into(), l.p99_ms.into());
    }
    result.extra.insert(
        "send_lag_max_ms".into(),
        (send_outcome.max_lag.as_secs_f64() * 1000.0).into(),
    );
    if let Some(e) = send_outcome.error {
        result.fail(format!("send failed: {e}"));
    }
    if sent < total {
        result.fail(format!("sent only {sent} of {total} records"));
    }
    if lost > 0 {
        result.fail(format!(
            "{lost} of {sent} sent records never reached the consumer ({}s drain)",
            p.drain_secs
        ));
    }
    if ack_totals.errors > 0 || !flush_ok {
        result.fail(format!(
            "{} deliveries failed{}; first errors: {}",
            ack_totals.errors,
            if flush_ok { "" } else { ", flush timed out" },
            ack_totals.first_errors.join("; ")
        ));
    }
    if consumer_errors > 0 {
        result.fail(format!(
            "{consumer_errors} consumer errors; first: {}",
            totals.first_errors.join("; ")
        ));
    }
    if duplicates > 0 {
        result
            .notes
            .push(format!("{duplicates} records received twice"));
    }
    if send_outcome.max_lag > Duration::from_millis(100) {
        result.notes.push(format!(
            "the sender fell up to {:.0} ms behind its schedule (the rate was not held)",
            send_outcome.max_lag.as_secs_f64() * 1000.0
        ));
    }
    crate::produce::add_client_events(&mut result, &events);
    Ok(result)
}

struct PacedOutcome {
    sent: u64,
    max_lag: Duration,
    error: Option<String>,
}

/// Sends `total` records at `p.rate` per second, each stamped with its sequence number and send time.
fn send_paced(
    producer: &ThreadedProducer<BenchContext>,
    topic: &str,
    p: &E2eParams,
    total: u64,
    clock: &Recorder,
) -> PacedOutcome {
    let mut buf = kafka::payload(p.record_size, 2);
    let period = Duration::from_secs_f64(1.0 / p.rate as f64);
    let begin = Instant::now();
    let mut out = PacedOutcome {
        sent: 0,
        max_lag: Duration::ZERO,
        error: None,
    };
    for seq in 0..total {
        let due = begin + period.mul_f64(seq as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            out.max_lag = out.max_lag.max(now - due);
        }
        loop {
            let sent_ns = clock.now_ns();
            encode_header(&mut buf, seq, sent_ns);
            let record = BaseRecord::with_opaque_to(topic, sent_ns as usize).payload(&buf[..]);
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    out.error = Some(e.to_string());
                    return out;
                }
            }
        }
        out.sent += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut buf = vec![0u8; 100];
        encode_header(&mut buf, 42, 1_234_567_890);
        assert_eq!(decode_header(&buf), Some((42, 1_234_567_890)));
        assert_eq!(decode_header(&buf[..15]), None);
    }
}
