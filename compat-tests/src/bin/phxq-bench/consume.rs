//! The `consume` workload: one librdkafka consumer reads a topic from the
//! beginning with assign() over every partition (no consumer group,
//! enable.auto.commit=false) up to the high watermarks taken at the start.
//!
//! Throughput is over the first to the last record read; the time to the first
//! record (connection, ListOffsets, first fetch) is reported separately.
//!
//! It verifies what it read: every partition's offsets must be dense from the
//! low to the high watermark (no gap, no repeat), the total must equal the sum
//! of (high - low), and, when given, the count the producer acknowledged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::kafka::{self, BenchContext, ClientEvents, ClientOpts};
use crate::report::RunResult;
use crate::stats::{Recorder, Sampler};

/// Parameters of `phxq-bench consume`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ConsumeParams {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Fail unless the topic holds exactly this many records.
    #[arg(long)]
    pub expect: Option<u64>,
    /// Like --expect, with the count of acknowledged records from a produce result JSON.
    #[arg(long, conflicts_with = "expect")]
    pub expect_from: Option<PathBuf>,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
}

/// Per-partition read state.
#[derive(Debug, Clone)]
struct PartitionState {
    id: i32,
    low: i64,
    high: i64,
    next: i64,
    gaps: u64,
    repeats: u64,
}

/// Runs the consume workload and returns its result.
pub fn run(
    opts: &ClientOpts,
    p: &ConsumeParams,
    label: &str,
    progress: &ProgressBar,
) -> Result<RunResult> {
    let mut result = RunResult::new(
        "consume",
        label,
        Some(&opts.bootstrap),
        serde_json::to_value(p)?,
    );
    let expect = match (&p.expect, &p.expect_from) {
        (Some(n), _) => Some(*n),
        (None, Some(path)) => {
            let produced = RunResult::read(path)?;
            if produced.kind != "produce" {
                bail!(
                    "{} is a {} result, not a produce result",
                    path.display(),
                    produced.kind
                );
            }
            Some(produced.records)
        }
        (None, None) => None,
    };
    let timeout = Duration::from_secs(30);
    let ids = kafka::wait_for_partitions(opts, &p.topic, None, timeout)?;
    let events = Arc::new(ClientEvents::default());
    let ctx = BenchContext::new(events.clone(), None, 0);
    let config = opts.config(
        "phxq-bench-consumer",
        &[
            ("group.id", kafka::throwaway_group()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
        ],
    );
    let consumer: BaseConsumer<BenchContext> =
        BaseConsumer::from_config_and_context(&config, ctx).context("creating consumer")?;
    let mut parts = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for id in ids {
        let (low, high) = consumer
            .fetch_watermarks(&p.topic, id, timeout)
            .with_context(|| format!("ListOffsets for {}:{id}", p.topic))?;
        parts.push(PartitionState {
            id,
            low,
            high,
            next: low,
            gaps: 0,
            repeats: 0,
        });
        tpl.add_partition_offset(&p.topic, id, Offset::Beginning)?;
    }
    let expected: u64 = parts.iter().map(|s| (s.high - s.low).max(0) as u64).sum();
    result.extra.insert("partitions".into(), parts.len().into());
    result
        .extra
        .insert("records_in_topic".into(), expected.into());

    let start = Instant::now();
    let recorder = Arc::new(Recorder::new(start));
    progress.set_length(expected);
    let sampler = Sampler::start(recorder.clone(), progress.clone());
    consumer.assign(&tpl).context("assign")?;
    let deadline = start + Duration::from_secs_f64(p.max_seconds);
    let mut remaining = parts.iter().filter(|s| s.next < s.high).count();
    let mut consumer_errors = 0u64;
    while remaining > 0 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                consumer_errors += 1;
                recorder.record_error(format!("consumer error: {e}"));
            }
            Some(Ok(m)) => {
                let Some(s) = parts.iter_mut().find(|s| s.id == m.partition()) else {
                    continue;
                };
                let off = m.offset();
                if off < s.next {
                    s.repeats += 1;
                    continue;
                }
                if off > s.next {
                    s.gaps += (off - s.next) as u64;
                }
                let was_open = s.next < s.high;
                s.next = off + 1;
                if was_open && s.next >= s.high {
                    remaining -= 1;
                }
                if off < s.high {
                    recorder.record(m.payload_len() as u64, None);
                }
            }
        }
    }
    result.timeline = sampler.finish();
    let totals = recorder.totals();
    // Throughput is over first -> last record read; the time before the first record
    // (connection, ListOffsets, first fetch) is reported on its own.
    result.set_totals(
        totals.records,
        totals.bytes,
        (totals.last_completion - totals.first_completion).as_secs_f64(),
    );
    result.extra.insert(
        "time_to_first_record_ms".into(),
        (totals.first_completion.as_secs_f64() * 1000.0).into(),
    );
    let gaps: u64 = parts.iter().map(|s| s.gaps).sum();
    let repeats: u64 = parts.iter().map(|s| s.repeats).sum();
    result.extra.insert("offset_gaps".into(), gaps.into());
    result
        .extra
        .insert("repeated_offsets".into(), repeats.into());
    if remaining > 0 {
        let behind: Vec<String> = parts
            .iter()
            .filter(|s| s.next < s.high)
            .map(|s| format!("{}: at {} of {}", s.id, s.next, s.high))
            .collect();
        result.fail(format!(
            "read {} of {expected} records in {}s; partitions not finished: {}",
            totals.records,
            p.max_seconds,
            behind.join(", ")
        ));
    } else if totals.records != expected {
        result.fail(format!(
            "read {} records but the watermarks say {expected}",
            totals.records
        ));
    }
    if gaps > 0 {
        result.fail(format!(
            "{gaps} offsets missing inside the watermarks (offsets must be dense)"
        ));
    }
    if repeats > 0 {
        result
            .notes
            .push(format!("{repeats} records delivered twice (ignored)"));
    }
    if consumer_errors > 0 {
        result.fail(format!(
            "{consumer_errors} consumer errors; first: {}",
            totals.first_errors.join("; ")
        ));
    }
    if let Some(n) = expect {
        if n != expected {
            result.fail(format!(
                "the topic holds {expected} records but {n} were expected (acknowledged by the producer)"
            ));
        }
    }
    crate::produce::add_client_events(&mut result, &events);
    Ok(result)
}
