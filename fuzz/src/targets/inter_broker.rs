//! `inter-broker`: the Raft listener's frame decoder. The bytes are what a peer sends on
//! the inter-broker port: 4-byte length, postcard-encoded request, as many frames as
//! decode; each goes through `phxq_replication::tcp::decode_request_frame`, the listener's
//! own `read_frame` and postcard decode.
//!
//! Seeds: frames of every request the transport sends, encoded by the transport's own
//! encoder: AppendEntries (heartbeats, blank, membership and command entries of every
//! kind), votes and pre-votes, leader transfer, forwarded commands, snapshot chunks,
//! broker-to-broker calls, and the status query; and runs of several frames.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use fastrand::Rng;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::impls::Vote;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::{BasicNode, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership};
use phxq_replication::network::{RaftRpc, SnapshotChunk};
use phxq_replication::tcp::{decode_request_frame, encode_request_frame};
use phxq_replication::{AppendBatch, Command, GroupId, PartitionId};

use super::{stage, Target};

/// The listener's frame limit (`raft::tcp::MAX_FRAME`): `read_frame` reserves what a
/// frame's length prefix declares, up to this.
pub const MAX_FRAME: usize = 64 << 20;
/// serde's cap on what a sequence reserves from its declared length before decoding
/// (`serde::__private::size_hint::cautious`: 1 MiB), times the nesting of sequences in
/// a request (entries, batches, keys).
const SERDE_PREALLOC: usize = 4 << 20;

pub struct InterBroker;

fn log_id(rng: &mut Rng) -> LogId<LeaderId<u64, u64>> {
    LogId::new(
        LeaderId {
            term: rng.u64(0..100),
            node_id: rng.u64(1..=3),
        },
        rng.u64(0..10_000),
    )
}

fn bytes(rng: &mut Rng, max: usize) -> Bytes {
    let n = rng.usize(0..=max);
    Bytes::from((0..n).map(|_| rng.u8(..)).collect::<Vec<u8>>())
}

fn partition(rng: &mut Rng) -> PartitionId {
    PartitionId {
        topic_id: rng.u128(..),
        index: rng.i32(0..64),
    }
}

fn membership(rng: &mut Rng) -> Membership<u64, BasicNode> {
    let voters: BTreeSet<u64> = (1..=rng.u64(1..=3)).collect();
    let nodes: BTreeMap<u64, BasicNode> = voters
        .iter()
        .map(|&n| (n, BasicNode::new(format!("127.0.0.1:{}", 19091 + n))))
        .collect();
    Membership::new(vec![voters], nodes).expect("a valid membership")
}

/// One of every command a group's log carries.
fn commands(rng: &mut Rng) -> Vec<Command> {
    vec![
        Command::CreatePartitions(vec![partition(rng), partition(rng)]),
        Command::DeletePartitions(vec![partition(rng)]),
        Command::Append(
            (0..rng.usize(1..=3))
                .map(|_| AppendBatch {
                    partition: partition(rng),
                    batch: bytes(rng, 120),
                })
                .collect(),
        ),
        Command::DeleteRecords(vec![(partition(rng), rng.i64(-1..1000))]),
        Command::Put(vec![
            (bytes(rng, 16), Some(bytes(rng, 64))),
            (bytes(rng, 16), None),
        ]),
        Command::AllocateProducerIds(rng.u32(1..1000)),
        Command::CompareAndPut {
            key: bytes(rng, 16),
            expected: rng.bool().then(|| bytes(rng, 16)),
            value: Some(bytes(rng, 32)),
        },
    ]
}

/// One of every RPC the transport carries.
fn rpcs(rng: &mut Rng) -> Vec<RaftRpc> {
    let vote = |rng: &mut Rng| Vote::new(rng.u64(0..100), rng.u64(1..=3));
    let mut entries = vec![
        Entry {
            log_id: log_id(rng),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(rng),
            payload: EntryPayload::Membership(membership(rng)),
        },
    ];
    for c in commands(rng) {
        entries.push(Entry {
            log_id: log_id(rng),
            payload: EntryPayload::Normal(c),
        });
    }
    let mut out = vec![
        // A heartbeat, then entries of every kind.
        RaftRpc::Append(AppendEntriesRequest {
            vote: vote(rng),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        }),
        RaftRpc::Append(AppendEntriesRequest {
            vote: vote(rng),
            prev_log_id: Some(log_id(rng)),
            entries,
            leader_commit: Some(log_id(rng)),
        }),
        RaftRpc::Vote(VoteRequest::new(vote(rng), Some(log_id(rng)))),
        RaftRpc::PreVote(VoteRequest::new(vote(rng), None)),
        RaftRpc::TransferLeader(TransferLeaderRequest::new(vote(rng), 2, Some(log_id(rng)))),
        RaftRpc::SnapshotChunk(SnapshotChunk {
            vote: vote(rng),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(rng)),
                last_membership: StoredMembership::new(Some(log_id(rng)), membership(rng)),
            },
            snapshot_id: format!("{}-{}", rng.u32(..), rng.u32(..)),
            offset: rng.u64(0..1 << 30),
            data: bytes(rng, 300),
            done: rng.bool(),
        }),
        RaftRpc::Peer {
            service: "txn".into(),
            body: bytes(rng, 64),
        },
    ];
    out.extend(commands(rng).into_iter().map(RaftRpc::Forward));
    // A large AppendEntries (a follower catching up): many entries of every kind.
    let mut entries = Vec::new();
    for i in 0..40 {
        for c in commands(rng) {
            entries.push(Entry {
                log_id: log_id(rng),
                payload: if i % 10 == 0 {
                    EntryPayload::Membership(membership(rng))
                } else {
                    EntryPayload::Normal(c)
                },
            });
        }
    }
    out.push(RaftRpc::Append(AppendEntriesRequest {
        vote: vote(rng),
        prev_log_id: Some(log_id(rng)),
        entries,
        leader_commit: Some(log_id(rng)),
    }));
    out
}

impl Target for InterBroker {
    fn name(&self) -> &'static str {
        "inter-broker"
    }

    fn seeds(&self, rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for round in 0..3 {
            for rpc in rpcs(rng) {
                let group = GroupId(rng.u32(0..8));
                let f = encode_request_frame(rng.u64(..), Some((group, rpc)))
                    .expect("a request encodes");
                seeds.push(f.to_vec());
            }
            let status = encode_request_frame(round, None).expect("a status query encodes");
            seeds.push(status.to_vec());
        }
        for _ in 0..8 {
            let mut run = Vec::new();
            for _ in 0..rng.usize(2..=3) {
                run.extend_from_slice(&seeds[rng.usize(0..seeds.len())]);
            }
            seeds.push(run);
        }
        seeds
    }

    fn fixup(&self, data: &mut Vec<u8>, rng: &mut Rng) {
        if data.len() >= 4 && rng.u32(0..10) < 8 {
            let len = (data.len() - 4) as u32;
            data[..4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn exec(&self, input: &[u8]) -> Result<bool, String> {
        let mut rest = input;
        let mut decoded = false;
        loop {
            // What the frame's prefix declares is reserved before its bytes are read.
            let declared = match rest.first_chunk::<4>() {
                Some(p) => (u32::from_be_bytes(*p) as usize).min(MAX_FRAME),
                None => 0,
            };
            let documented = declared + SERDE_PREALLOC;
            match stage("inter-broker frame", rest.len(), documented, || {
                decode_request_frame(rest)
            })? {
                Ok(n) => {
                    decoded = true;
                    rest = &rest[n..];
                }
                Err(_) => return Ok(decoded),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_decodes_whole() {
        let seeds = InterBroker.seeds(&mut Rng::with_seed(9));
        assert!(seeds.len() > 40);
        for s in &seeds {
            let mut rest = &s[..];
            while !rest.is_empty() {
                let n = decode_request_frame(rest).unwrap();
                rest = &rest[n..];
            }
        }
        assert!(decode_request_frame(&[0, 0, 0, 1, 0xff]).is_err());
        assert!(decode_request_frame(&[]).is_err());
    }
}
