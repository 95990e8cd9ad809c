//! `phxq cluster status`: asks every broker listed in a node's `[cluster]` table for the
//! Raft state of its groups (over the inter-broker listener) and prints the brokers, then
//! per group (0 = metadata) its leader, term and voters, and per node its log, committed
//! and applied index, with each follower's lag behind the leader in entries and the time
//! since it last acknowledged the leader. `--json` prints the raw answers instead. With
//! `[security.inter_broker] tls = true` it connects as a broker does, with that node's
//! certificate and key (`security/inter_broker.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use phxq_replication::tcp::PeerSecurity;
use phxq_replication::GroupStatus;
use serde::Serialize;

use crate::addr::parse_addr;
use crate::cluster::config::BrokerEntry;
use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A node's configuration file: its `[cluster]` table lists the brokers to ask.
    #[arg(long, default_value = "config/cluster/node1.toml")]
    pub config: PathBuf,
    /// How long to wait for each broker.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Print the brokers' answers as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One broker and what it answered.
#[derive(Debug, Serialize)]
pub struct BrokerReport {
    #[serde(flatten)]
    pub broker: BrokerEntryOut,
    /// Why it could not be asked; `None` when it answered.
    pub error: Option<String>,
    pub groups: Vec<GroupStatus>,
}

#[derive(Debug, Serialize)]
pub struct BrokerEntryOut {
    pub id: u64,
    pub kafka: String,
    pub internal: String,
    pub rack: Option<String>,
}

impl From<&BrokerEntry> for BrokerEntryOut {
    fn from(b: &BrokerEntry) -> Self {
        BrokerEntryOut {
            id: b.id,
            kafka: b.kafka.clone(),
            internal: b.internal.clone(),
            rack: b.rack.clone(),
        }
    }
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let config = Config::from_file(&args.config)?;
    let cluster = config.cluster.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no [cluster] table: nothing to ask",
            args.config.display()
        )
    })?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let security = crate::security::inter_broker::peer_security(&config.security, &cluster)?;
    let reports = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(ask_all(&cluster.brokers, &*security, timeout));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", render(&reports));
    }
    anyhow::ensure!(
        reports.iter().any(|r| r.error.is_none()),
        "no broker answered"
    );
    Ok(())
}

async fn ask_all(
    brokers: &[BrokerEntry],
    security: &dyn PeerSecurity,
    timeout: Duration,
) -> Vec<BrokerReport> {
    let asks = brokers.iter().map(|b| async move {
        let answer = match parse_addr(&b.internal) {
            Ok(addr) => phxq_replication::tcp::fetch_status(addr, security, timeout).await,
            Err(e) => Err(format!("{e:#}")),
        };
        let (error, mut groups) = match answer {
            Ok(g) => (None, g),
            Err(e) => (Some(e), Vec::new()),
        };
        groups.sort_by_key(|g| g.group);
        BrokerReport {
            broker: b.into(),
            error,
            groups,
        }
    });
    futures::future::join_all(asks).await
}

/// The human-readable report.
pub fn render(reports: &[BrokerReport]) -> String {
    let mut out = String::new();
    let mut rows = vec![row(["BROKER", "KAFKA", "INTERNAL", "RACK", "STATE"])];
    for r in reports {
        let state = match &r.error {
            None => format!("up ({} groups)", r.groups.len()),
            Some(e) => format!("unreachable: {e}"),
        };
        rows.push(row([
            r.broker.id.to_string(),
            r.broker.kafka.clone(),
            r.broker.internal.clone(),
            r.broker.rack.clone().unwrap_or_else(|| "-".into()),
            state,
        ]));
    }
    out.push_str(&table(&rows, ""));

    let mut by_group: BTreeMap<u32, Vec<&GroupStatus>> = BTreeMap::new();
    for g in reports.iter().flat_map(|r| &r.groups) {
        by_group.entry(g.group.0).or_default().push(g);
    }
    let unreachable: BTreeSet<u64> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.broker.id)
        .collect();
    let mut leaderless = 0;
    for (id, views) in &by_group {
        out.push('\n');
        if !render_group(&mut out, *id, views, &unreachable) {
            leaderless += 1;
        }
    }
    out.push('\n');
    match (by_group.len(), leaderless) {
        (0, _) => out.push_str("no groups reported\n"),
        (n, 0) => {
            let _ = writeln!(out, "{n} groups, every one with a leader");
        }
        (n, l) => {
            let _ = writeln!(out, "{n} groups, {l} without a leader");
        }
    }
    out
}

/// One group's header and a row per node; false if it has no leader.
fn render_group(
    out: &mut String,
    id: u32,
    views: &[&GroupStatus],
    unreachable: &BTreeSet<u64>,
) -> bool {
    let term = views.iter().map(|v| v.term).max().unwrap_or(0);
    // The leader's own report, if the leader of the newest term answered.
    let leader_view = views
        .iter()
        .filter(|v| v.term == term && v.state == "Leader")
        .copied()
        .next();
    let leader = leader_view.map(|v| v.node).or_else(|| {
        views
            .iter()
            .filter(|v| v.term == term)
            .find_map(|v| v.leader)
    });
    let voters: Vec<u64> = leader_view
        .or_else(|| views.iter().max_by_key(|v| v.term).copied())
        .map(|v| v.voters.clone())
        .unwrap_or_default();
    let name = if id == 0 { " (metadata)" } else { "" };
    let leader_text = match leader {
        Some(l) => l.to_string(),
        None => "none".into(),
    };
    let voters_text: Vec<String> = voters.iter().map(|v| v.to_string()).collect();
    let _ = writeln!(
        out,
        "group {id}{name}  leader {leader_text}  term {term}  voters {}",
        voters_text.join(",")
    );
    let mut rows = vec![row([
        "NODE",
        "ROLE",
        "TERM",
        "LAST_LOG",
        "COMMITTED",
        "APPLIED",
        "LAG",
        "LAST_ACK",
    ])];
    let nodes: BTreeSet<u64> = voters
        .iter()
        .copied()
        .chain(views.iter().map(|v| v.node))
        .collect();
    let idx = |i: Option<u64>| i.map_or_else(|| "-".to_string(), |i| i.to_string());
    for node in nodes {
        let Some(v) = views.iter().find(|v| v.node == node) else {
            let why = if unreachable.contains(&node) {
                "unreachable"
            } else {
                "no such group"
            };
            rows.push(row([node.to_string(), why.into()]));
            continue;
        };
        let (lag, ack) = match leader_view {
            Some(l) if l.node == node => ("leader".to_string(), "-".to_string()),
            Some(l) => match l.replication.iter().find(|p| p.node == node) {
                Some(p) => (
                    match (l.last_log, p.matched) {
                        (Some(last), Some(m)) => last.saturating_sub(m).to_string(),
                        (None, _) => "0".into(),
                        (Some(_), None) => "?".into(),
                    },
                    p.last_ack_ms
                        .map_or_else(|| "never".into(), |ms| format!("{ms} ms ago")),
                ),
                None => ("-".into(), "-".into()),
            },
            None => ("-".into(), "-".into()),
        };
        rows.push(row([
            node.to_string(),
            v.state.clone(),
            v.term.to_string(),
            idx(v.last_log),
            idx(v.committed),
            idx(v.applied),
            lag,
            ack,
        ]));
    }
    out.push_str(&table(&rows, "  "));
    leader.is_some()
}

fn row<S: Into<String>, const N: usize>(cells: [S; N]) -> Vec<String> {
    cells.into_iter().map(Into::into).collect()
}

/// Left-aligned columns, two spaces apart; the last cell of a row is not padded.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        out.push_str(indent);
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = width[c]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phxq_replication::{GroupId, ReplicaProgress};

    fn status(group: u32, node: u64, state: &str, leader: Option<u64>) -> GroupStatus {
        GroupStatus {
            group: GroupId(group),
            node,
            state: state.into(),
            term: 4,
            leader,
            voters: vec![1, 2, 3],
            last_log: Some(120),
            committed: Some(118),
            applied: Some(118),
            replication: Vec::new(),
        }
    }

    fn report(id: u64, error: Option<&str>, groups: Vec<GroupStatus>) -> BrokerReport {
        BrokerReport {
            broker: BrokerEntryOut {
                id,
                kafka: format!("127.0.0.1:909{}", id + 1),
                internal: format!("127.0.0.1:1909{}", id + 1),
                rack: Some(format!("r{id}")),
            },
            error: error.map(Into::into),
            groups,
        }
    }

    #[test]
    fn leader_lag_and_unreachable_nodes() {
        let mut leader = status(1, 1, "Leader", Some(1));
        leader.replication = vec![
            ReplicaProgress {
                node: 2,
                matched: Some(100),
                last_ack_ms: Some(12),
            },
            ReplicaProgress {
                node: 3,
                matched: None,
                last_ack_ms: None,
            },
        ];
        let reports = [
            report(1, None, vec![leader]),
            report(2, None, vec![status(1, 2, "Follower", Some(1))]),
            report(3, Some("connection refused"), vec![]),
        ];
        let text = render(&reports);
        assert!(text.contains("up (1 groups)"), "{text}");
        assert!(text.contains("unreachable: connection refused"), "{text}");
        assert!(
            text.contains("group 1  leader 1  term 4  voters 1,2,3"),
            "{text}"
        );
        let line = |node: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("  {node} ")))
                .unwrap_or_else(|| panic!("no row for node {node} in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("2"),
            ["2", "Follower", "4", "120", "118", "118", "20", "12", "ms", "ago"]
        );
        assert_eq!(line("3"), ["3", "unreachable"]);
        assert!(text.contains("1 groups, every one with a leader"), "{text}");
    }

    #[test]
    fn group_without_leader_is_counted() {
        let reports = [
            report(1, None, vec![status(0, 1, "Candidate", None)]),
            report(2, None, vec![status(0, 2, "Follower", None)]),
        ];
        let text = render(&reports);
        assert!(text.contains("group 0 (metadata)  leader none"), "{text}");
        assert!(text.contains("1 groups, 1 without a leader"), "{text}");
    }
}
