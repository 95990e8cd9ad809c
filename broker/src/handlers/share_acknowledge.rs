//! ShareAcknowledge (79, KIP-932): a share consumer's acknowledgements without a fetch
//! (explicit `commit_sync`/`commit_async`, and the final acknowledgements on close). The
//! share session must exist at the request's epoch; epoch -1 closes it afterwards. The
//! answer goes out once the acknowledgements are durable.
//! Needs READ on the group (else GROUP_AUTHORIZATION_FAILED).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use phxq_protocol::errors;

use super::share_partitions::{self as sp, Named};
use crate::broker::Broker;
use crate::groups::consumer_coordinator::Catalog;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};
use crate::share::manager::{Entry, Failure};

pub async fn handle(
    broker: &Broker,
    req: ShareAcknowledgeRequest,
    _version: i16,
    az: &Authz,
) -> ShareAcknowledgeResponse {
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let top = |code: i16, msg: String| {
        tracing::debug!(%group, %member, code, "share acknowledge refused: {msg}");
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str(msg)))
    };
    if group.is_empty() || member.is_empty() {
        return top(
            errors::INVALID_REQUEST,
            "ShareAcknowledge needs a group id and a member id".into(),
        );
    }
    if !az.group(AclOperation::Read, &group) {
        return top(
            phxq_protocol::errors::GROUP_AUTHORIZATION_FAILED,
            format!("{} may not READ group {group}", az.principal),
        );
    }
    let now = crate::groups::offsets::now_ms();
    let admitted = broker.share.sessions().acknowledge(
        &(group.clone(), member.clone()),
        req.share_session_epoch,
        now.max(0) as u64,
    );
    let mut admitted = match admitted {
        Ok(a) => a,
        Err((code, release)) => {
            if let Some(r) = release {
                broker.share.release(r).await;
            }
            return top(
                code,
                format!("share session epoch {} refused", req.share_session_epoch),
            );
        }
    };
    let settings = broker.share_settings(&group);
    let mut results: BTreeMap<Named, Option<Failure>> = BTreeMap::new();
    let mut acks = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let n = Named::new(broker, t.topic_id, p.partition_index);
            let raw: Vec<(i64, i64, &[i8])> = p
                .acknowledgement_batches
                .iter()
                .map(|b| {
                    (
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.as_slice(),
                    )
                })
                .collect();
            match n.tp() {
                Some(tp) => {
                    acks.insert(tp, sp::ack_batches(&raw));
                    results.insert(n, None);
                }
                None => {
                    results.insert(
                        n,
                        Some((errors::UNKNOWN_TOPIC_ID, "unknown topic id".into())),
                    );
                }
            }
        }
    }
    let mut touched: Vec<Arc<Entry>> = Vec::new();
    for (tp, err) in sp::acknowledge(broker, &group, &member, &settings, acks, &mut touched) {
        if let Some(n) = sp::named(broker, &tp) {
            results.insert(n, err);
        }
    }
    for (tp, f) in sp::persist_all(broker, &touched).await {
        if let Some(n) = sp::named(broker, &tp) {
            results.entry(n).or_insert(None).get_or_insert(f);
        }
    }
    if admitted.closing {
        if let Some(r) = admitted.release.take() {
            broker.share.release(r).await;
        }
    }
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for (n, err) in results {
        let mut p = PartitionData::default()
            .with_partition_index(n.partition)
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(-1)
                    .with_leader_epoch(-1),
            );
        if let Some((code, msg)) = err {
            p = p.with_error_code(code).with_error_message(Some(str(msg)));
        }
        match topics.last_mut() {
            Some(t) if t.topic_id == n.topic_id => t.partitions.push(p),
            _ => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(n.topic_id)
                    .with_partitions(vec![p]),
            ),
        }
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}
