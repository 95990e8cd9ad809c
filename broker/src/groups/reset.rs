//! `phxq group reset`: moves a group's committed offsets, also while its consumers run
//! (a live replay, `replay.rs`), like `kafka-consumer-groups --reset-offsets` does for an
//! empty group.
//!
//! The new offsets are worked out here, over the Kafka protocol (Metadata, OffsetFetch,
//! ListOffsets), then written with one OffsetCommit without member that carries the live
//! reset tag: the coordinator makes every affected member resume from them. Offsets are
//! clamped to the partition's log start and end, as Kafka's tool does, and the clamped
//! partitions are named in the output. Resetting to a time takes, per partition, the first
//! offset whose timestamp is at or after it (ListOffsets by time), or the log end if no
//! record is that recent.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, MetadataRequest, OffsetCommitRequest, TopicName};

use super::admin::{self, check, s, table, EARLIEST, LATEST};
use super::consumer_protocol::{self, TopicPartition};
use super::errors::NONE;
use crate::handlers::offset_commit::LIVE_RESET_TAG;
use crate::kafka_client::KafkaClient;

/// Where to move the offsets.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Offset(i64),
    Earliest,
    Latest,
    /// Milliseconds since the Unix epoch.
    Time(i64),
    /// Relative to the committed offset.
    ShiftBy(i64),
    /// This many milliseconds before now.
    Before(i64),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
pub struct ResetArgs {
    /// The group id.
    pub group: String,
    /// TOPIC or TOPIC:P,P,... (repeatable): the partitions to reset (all of the topic's
    /// partitions when none are named).
    #[arg(long = "topic", required_unless_present = "all_topics")]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    pub all_topics: bool,
    /// To this offset.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// To the log start.
    #[arg(long, group = "target")]
    pub to_earliest: bool,
    /// To the log end (skip everything not yet consumed).
    #[arg(long, group = "target")]
    pub to_latest: bool,
    /// To the first record at or after this time: YYYY-MM-DDTHH:MM:SS[.sss] in local
    /// time, or with a zone (Z, +02:00), or milliseconds since the epoch.
    #[arg(long, group = "target")]
    pub to_datetime: Option<String>,
    /// By N records from the committed offset (negative: back).
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// To the first record at or after this long ago: 90s, 15m, 2h, 1d or ISO-8601 PT15M.
    #[arg(long, group = "target")]
    pub by_duration: Option<String>,
    /// Show the new offsets without writing them.
    #[arg(long)]
    pub dry_run: bool,
}

impl ResetArgs {
    fn target(&self) -> anyhow::Result<Target> {
        Ok(if let Some(o) = self.to_offset {
            Target::Offset(o)
        } else if self.to_earliest {
            Target::Earliest
        } else if self.to_latest {
            Target::Latest
        } else if let Some(t) = &self.to_datetime {
            Target::Time(parse_datetime(t)?)
        } else if let Some(n) = self.shift_by {
            Target::ShiftBy(n)
        } else if let Some(d) = &self.by_duration {
            Target::Before(parse_duration(d)?)
        } else {
            anyhow::bail!("say where to: --to-offset, --to-earliest, --to-latest, --to-datetime, --shift-by or --by-duration")
        })
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][zone]` (local time without a zone) or epoch ms.
pub fn parse_datetime(v: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = chrono::DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Ok(t.timestamp_millis());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot read {v:?} as a time: use YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] or milliseconds since the epoch"
            )
        })?;
    use chrono::TimeZone;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| anyhow::anyhow!("{v:?} does not exist in the local time zone"))
}

/// Parses `90s`, `15m`, `2h`, `1d`, `500ms`, combinations like `1h30m`, or ISO-8601
/// `PnDTnHnMn.nS` (as kafka-consumer-groups takes). Returns milliseconds.
pub fn parse_duration(v: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "cannot read {v:?} as a duration: use e.g. 90s, 15m, 2h, 1d, 1h30m or PT15M"
        )
    };
    let upper = v.to_ascii_uppercase();
    let iso = upper.starts_with('P');
    let body = if iso { &upper[1..] } else { v };
    let (mut total, mut num, mut in_time) = (0f64, String::new(), false);
    let mut chars = body.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        if iso && c == 'T' && num.is_empty() {
            in_time = true;
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit_ms = match (iso, c.to_ascii_lowercase()) {
            (false, 'm') if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            (_, 's') => 1_000.0,
            (_, 'm') if !iso || in_time => 60_000.0,
            (_, 'h') => 3_600_000.0,
            (_, 'd') => 86_400_000.0,
            (_, 'w') if !iso => 7.0 * 86_400_000.0,
            _ => return Err(bad()),
        };
        total += n * unit_ms;
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(total as i64)
}

/// The new offset of one partition, clamped to `[start, end]`; `clamped` tells whether
/// the asked offset was outside.
pub fn new_offset(
    target: &Target,
    committed: Option<i64>,
    start: i64,
    end: i64,
    by_time: Option<i64>,
) -> (i64, bool) {
    let asked = match target {
        Target::Offset(o) => *o,
        Target::Earliest => start,
        Target::Latest => end,
        Target::Time(_) | Target::Before(_) => match by_time {
            Some(o) if o >= 0 => o,
            _ => end,
        },
        Target::ShiftBy(n) => committed.unwrap_or(start).saturating_add(*n),
    };
    let clamped = asked.clamp(start, end.max(start));
    (clamped, clamped != asked)
}

/// The partitions named by `--topic` (all of a topic's when none are given).
fn partitions(bootstrap: &str, topics: &[String]) -> anyhow::Result<BTreeSet<TopicPartition>> {
    let mut named: BTreeMap<String, Option<Vec<i32>>> = BTreeMap::new();
    for t in topics {
        match t.split_once(':') {
            Some((name, ps)) => {
                let ps: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse()).collect();
                let ps = ps.map_err(|_| {
                    anyhow::anyhow!("cannot read partitions in {t:?}: use TOPIC:0,1,2")
                })?;
                named
                    .entry(name.to_string())
                    .or_insert(Some(vec![]))
                    .get_or_insert_with(Vec::new)
                    .extend(ps);
            }
            None => {
                named.insert(t.clone(), None);
            }
        }
    }
    let mut c = KafkaClient::connect(bootstrap)?;
    let md = c.send(
        &MetadataRequest::default().with_topics(Some(
            named
                .keys()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                .collect(),
        )),
        4,
    )?;
    let mut out = BTreeSet::new();
    for t in &md.topics {
        let Some(name) = &t.name else { continue };
        check(t.error_code, &format!("Metadata of topic {}", name.0))?;
        let count = t.partitions.len() as i32;
        match named.get(name.0.as_str()) {
            Some(Some(ps)) => {
                for p in ps {
                    anyhow::ensure!(
                        (0..count).contains(p),
                        "topic {} has no partition {p} (it has {count})",
                        name.0
                    );
                    out.insert((name.0.to_string(), *p));
                }
            }
            _ => out.extend((0..count).map(|p| (name.0.to_string(), p))),
        }
    }
    Ok(out)
}

pub fn run(bootstrap: &str, args: &ResetArgs) -> anyhow::Result<String> {
    let target = args.target()?;
    let mut coord = admin::coordinator(bootstrap, &args.group)?;
    // A share group's "committed offsets" are its share-partitions' start offsets.
    let share = super::share_admin::standings(&mut coord, &args.group)?;
    let committed = match &share {
        Some(s) => s
            .iter()
            .filter(|(_, st)| st.start_offset >= 0)
            .map(|(tp, st)| (tp.clone(), st.start_offset))
            .collect(),
        None => admin::committed_offsets(&mut coord, &args.group)?,
    };
    let parts = if args.all_topics {
        let topics: BTreeSet<String> = committed.keys().map(|(t, _)| t.clone()).collect();
        anyhow::ensure!(
            !topics.is_empty(),
            "group {:?} has no committed offsets",
            args.group
        );
        partitions(bootstrap, &topics.into_iter().collect::<Vec<_>>())?
    } else {
        partitions(bootstrap, &args.topics)?
    };
    anyhow::ensure!(!parts.is_empty(), "no partitions to reset");
    let starts = admin::list_offsets(bootstrap, &parts, EARLIEST)?;
    let ends = admin::list_offsets(bootstrap, &parts, LATEST)?;
    let by_time = match target {
        Target::Time(ms) => Some(admin::list_offsets(bootstrap, &parts, ms)?),
        Target::Before(ago) => {
            let now = chrono::Utc::now().timestamp_millis();
            Some(admin::list_offsets(bootstrap, &parts, now - ago)?)
        }
        _ => None,
    };
    let mut rows = vec![[
        "TOPIC",
        "PARTITION",
        "CURRENT",
        "NEW",
        "LOG-START",
        "LOG-END",
        "",
    ]
    .map(String::from)
    .to_vec()];
    let mut plan: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for tp in &parts {
        let (Some(&start), Some(&end)) = (starts.get(tp), ends.get(tp)) else {
            anyhow::bail!(
                "cannot read the offsets of {} partition {} from its leader",
                tp.0,
                tp.1
            );
        };
        let current = committed.get(tp).copied().filter(|o| *o >= 0);
        let at_time = by_time.as_ref().and_then(|m| m.get(tp).copied());
        let (new, clamped) = new_offset(&target, current, start, end, at_time);
        plan.insert(tp.clone(), new);
        rows.push(vec![
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or("-".into(), |o| o.to_string()),
            new.to_string(),
            start.to_string(),
            end.to_string(),
            if clamped {
                "(clamped to the log)".into()
            } else {
                String::new()
            },
        ]);
    }
    let mut out = table(&rows);
    if args.dry_run {
        out.push_str("dry run: nothing written\n");
        return Ok(out);
    }
    if share.is_some() {
        super::share_admin::alter(&mut coord, &args.group, &plan)?;
        out.push_str(&format!(
            "share group {}: {} partition(s) start over at these offsets\n",
            args.group,
            plan.len()
        ));
        return Ok(out);
    }
    let by_topic = consumer_protocol::grouped(&plan.keys().cloned().collect());
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&args.group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(plan[&(t.clone(), p)])
                                        .with_committed_leader_epoch(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    req.unknown_tagged_fields
        .insert(LIVE_RESET_TAG, bytes::Bytes::from_static(b"1"));
    let r = coord.send(&req, 8)?;
    let mut failed = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != NONE {
                failed.push(format!(
                    "{} partition {}: error {}",
                    t.name.0, p.partition_index, p.error_code
                ));
            }
        }
    }
    anyhow::ensure!(failed.is_empty(), "reset refused: {}", failed.join("; "));
    out.push_str(&format!(
        "group {}: {} partition(s) reset; running members resume from these offsets\n",
        args.group,
        plan.len()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90_000);
        assert_eq!(parse_duration("15m").unwrap(), 900_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert_eq!(parse_duration("PT15M").unwrap(), 900_000);
        assert_eq!(parse_duration("P1DT1H").unwrap(), 90_000_000);
        assert_eq!(parse_duration("PT0.5S").unwrap(), 500);
        for bad in ["", "15", "m", "P15M", "1y", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_datetime("2023-11-14T23:13:20.000+01:00").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_datetime("2023-11-14T22:13:20").is_ok());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn new_offsets_clamp_to_the_log() {
        let (start, end) = (100, 200);
        assert_eq!(
            new_offset(&Target::Offset(150), None, start, end, None),
            (150, false)
        );
        assert_eq!(
            new_offset(&Target::Offset(5), None, start, end, None),
            (100, true)
        );
        assert_eq!(
            new_offset(&Target::Offset(500), None, start, end, None),
            (200, true)
        );
        assert_eq!(
            new_offset(&Target::Earliest, Some(180), start, end, None),
            (100, false)
        );
        assert_eq!(
            new_offset(&Target::Latest, Some(180), start, end, None),
            (200, false)
        );
        assert_eq!(
            new_offset(&Target::ShiftBy(-30), Some(180), start, end, None),
            (150, false)
        );
        assert_eq!(
            new_offset(&Target::ShiftBy(-300), Some(180), start, end, None),
            (100, true)
        );
        assert_eq!(
            new_offset(&Target::Time(1), Some(180), start, end, Some(120)),
            (120, false)
        );
        // No record at or after the time: the log end.
        assert_eq!(
            new_offset(&Target::Before(1), Some(180), start, end, Some(-1)),
            (200, false)
        );
    }
}
