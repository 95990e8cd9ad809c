//! One module per Kafka API (or API family). Each exposes
//! `handle(broker, request, version[, ...], az) -> response`; [`handle`] dispatches to them.
//! Only APIs listed in [`api_versions::SUPPORTED`] ever reach a handler. `az` is the
//! request's authorization context (`security/acl/authz.rs`): each handler asks it for
//! the ACL operations Kafka requires of its API and answers with Kafka's
//! *_AUTHORIZATION_FAILED codes where they are refused.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod broker_config;
pub mod client_quotas;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod quota;
pub mod sasl;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod share_group_offsets;
pub mod share_partitions;
pub mod sync_group;
pub mod topic_config;
pub mod transactions;
pub mod txn_offset_commit;
pub mod user_scram_credentials;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use phxq_protocol::codec::Request;

use crate::broker::Broker;
use crate::security::acl::Authz;

/// A response still being produced: it resolves once the request's Raft entries commit.
pub type Deferred = Pin<Box<dyn Future<Output = Option<Box<ResponseKind>>> + Send>>;

/// What a handler gives back: `None` means no response is sent (Produce with acks=0).
pub enum Reply {
    Now(Option<Box<ResponseKind>>),
    /// Produce: its appends are queued in Raft in request order; the answer comes later.
    Later(Deferred),
}

/// True for requests whose work is queued in order and answered later ([`Reply::Later`]);
/// a connection may keep several of these in flight. Every other request waits until the
/// ones before it on the connection are answered, as Kafka processes them in order.
pub fn is_pipelined(request: &Request) -> bool {
    matches!(request.body, RequestKind::Produce(_))
}

/// What a connection remembers between its requests.
#[derive(Debug, Default)]
pub struct Session {
    /// The client's address (shown as the client host of group members).
    pub peer: Option<SocketAddr>,
    /// Which partition the connection's next Fetch fills first.
    pub fetch_rotation: fetch::budget::Rotation,
    /// A client quota throttled the connection: nothing more is read from it until then.
    pub mute_until: Option<tokio::time::Instant>,
    /// The connection's id for share sessions, which end with it (`share/sessions.rs`).
    pub share_connection: u64,
    /// The listener it came in on and who the client is (SASL, TLS; `security/sasl.rs`).
    pub auth: crate::security::sasl::Auth,
}

/// A client's host as Kafka shows it in group descriptions ("/127.0.0.1"); also what a
/// Fetch is attributed to a speed-limited group by.
pub fn client_host(peer: Option<SocketAddr>) -> String {
    peer.map(|p| format!("/{}", p.ip())).unwrap_or_default()
}

/// Counts what a Fetch gives a consumer (bytes and records per topic, throttle time).
fn count_fetched(broker: &Broker, resp: &kafka_protocol::messages::FetchResponse) {
    if !broker.metrics.on() {
        return;
    }
    broker
        .metrics
        .throttled("fetch", resp.throttle_time_ms.max(0) as u64);
    for t in &resp.responses {
        let name = if t.topic.0.is_empty() {
            // v13+: topics by id.
            match broker.topics.get_by_id(t.topic_id) {
                Some(topic) => topic.name.clone(),
                None => continue,
            }
        } else {
            t.topic.0.to_string()
        };
        let (bytes, records) = t.partitions.iter().filter_map(|p| p.records.as_ref()).fold(
            (0u64, 0u64),
            |(b, n), r| {
                (
                    b + r.len() as u64,
                    n + phxq_protocol::batch::count_records(r),
                )
            },
        );
        if bytes > 0 {
            broker.metrics.fetched(&name, bytes, records);
        }
    }
}

/// Handles one decoded request of a connection's `session`.
pub async fn handle(broker: &Broker, request: Request, session: &mut Session) -> Reply {
    let peer = session.peer;
    let v = request.version();
    let client_id = request.header.client_id.clone().unwrap_or_default();
    let az = &match broker.acls.authorizer() {
        None => Authz::unchecked(),
        Some(a) => Authz::new(
            Some(a),
            session.auth.principal.as_deref(),
            peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        ),
    };
    if let RequestKind::Produce(r) = request.body {
        let throttle = quota::produce(broker, &client_id, &r, session);
        broker.metrics.throttled("produce", throttle);
        let pending = produce::handle(broker, r, v, az).await;
        return Reply::Later(Box::pin(async move {
            pending.await.map(|r| {
                Box::new(ResponseKind::Produce(
                    r.with_throttle_time_ms(throttle.min(i32::MAX as u64) as i32),
                ))
            })
        }));
    }
    Reply::Now(Some(Box::new(match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r, v)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            metadata::handle(broker, r, v, &session.auth.listener.name, az).await,
        ),
        RequestKind::Fetch(mut r) => {
            let unknown_ids = fetch::resolve_topic_ids(broker, &mut r);
            let owed = quota::fetch_owed(broker, &client_id, &r, peer);
            let positions = fetch::positions(broker, &r);
            let mut resp = if owed > 0 {
                kafka_protocol::messages::FetchResponse::default()
            } else {
                let mut r = r;
                quota::shape_fetch(broker, &client_id, &mut r, peer);
                let held_back = quota::held_back_topics(broker, &client_id, &r, peer);
                let denied = r
                    .topics
                    .iter()
                    .filter(|t| !az.topic(crate::security::acl::AclOperation::Read, &t.topic.0))
                    .map(|t| t.topic.0.to_string())
                    .collect();
                let rotation = &mut session.fetch_rotation;
                fetch::handle(broker, r, v, rotation, &held_back, &denied).await
            };
            fetch::mark_unknown_ids(&mut resp, &unknown_ids);
            quota::enforce_fetch_lock(broker, &client_id, &mut resp, peer);
            quota::after_fetch(broker, &client_id, &mut resp, owed, session);
            if let Some(positions) = &positions {
                crate::audit::service::record_fetch(
                    &broker.deliveries,
                    &client_id,
                    &client_host(peer),
                    positions,
                    &resp,
                    crate::groups::offsets::now_ms(),
                );
            }
            count_fetched(broker, &resp);
            ResponseKind::Fetch(resp)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r, v, az))
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, v, az))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, r, v, az).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, r, v, az).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(broker, r, v, az).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, v, az))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(broker, r, v, az).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            alter_configs::handle_incremental(broker, r, v, az).await,
        ),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(broker, r, v, az))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter(broker, r, v, az).await)
        }
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::handle(
            broker,
            r,
            v,
            &session.auth.listener.name,
            az,
        )),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, r, v, az).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r, v, az).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(broker, r, v, az).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r, v, az).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r, v, az).await),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(
            txn_offset_commit::handle(broker, r, v, &client_id, &client_host(peer), az).await,
        ),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(transactions::describe(broker, r, v, az))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(transactions::list(broker, r, v, az))
        }
        RequestKind::SaslHandshake(r) => {
            ResponseKind::SaslHandshake(sasl::handshake(broker, r, v, &mut session.auth))
        }
        RequestKind::SaslAuthenticate(r) => ResponseKind::SaslAuthenticate(
            sasl::authenticate(broker, r, v, &mut session.auth, peer).await,
        ),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            user_scram_credentials::describe(broker, r, v, az),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            user_scram_credentials::alter(broker, r, v, az).await,
        ),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator::handle(
            broker,
            r,
            v,
            &session.auth.listener.name,
            az,
        )),
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(create_acls::handle(broker, r, v, az).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(describe_acls::handle(broker, r, v, az))
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(delete_acls::handle(broker, r, v, az).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(broker, r, v, &client_id, peer, az).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, r, v, az).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(broker, r, v, az)),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, r, v, az))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            offset_commit::handle(broker, r, v, &client_id, &client_host(peer), az).await,
        ),
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, r, v, az).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups::handle(broker, r, v, az))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, r, v, az))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, r, v, az).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(broker, r, v, &client_id, peer, az).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(broker, r, v, az))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, r, v, az).await)
        }
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(
            share_group_heartbeat::handle(broker, r, v, &client_id, peer, az).await,
        ),
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(share_group_describe::handle(broker, r, v, az))
        }
        RequestKind::ShareFetch(r) => ResponseKind::ShareFetch(
            share_fetch::handle(broker, r, v, session.share_connection, az).await,
        ),
        RequestKind::DescribeShareGroupOffsets(r) => ResponseKind::DescribeShareGroupOffsets(
            share_group_offsets::describe(broker, r, v, az).await,
        ),
        RequestKind::AlterShareGroupOffsets(r) => {
            ResponseKind::AlterShareGroupOffsets(share_group_offsets::alter(broker, r, v, az).await)
        }
        RequestKind::DeleteShareGroupOffsets(r) => ResponseKind::DeleteShareGroupOffsets(
            share_group_offsets::delete(broker, r, v, az).await,
        ),
        RequestKind::ShareAcknowledge(r) => {
            ResponseKind::ShareAcknowledge(share_acknowledge::handle(broker, r, v, az).await)
        }
        other => {
            // Unreachable: the decoder refuses keys not in SUPPORTED. Closing is the safe answer.
            tracing::error!("no handler for {:?}", std::mem::discriminant(&other));
            return Reply::Now(None);
        }
    })))
}

pub use crate::errors::replication_error_code;

pub fn str(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
