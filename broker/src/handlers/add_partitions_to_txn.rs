//! AddPartitionsToTxn (24): partitions join a producer's ongoing transaction, durably,
//! before the producer writes to them (so the coordinator knows where to put markers).
//!
//! v0-3 carry one transaction (from a producer); v4+ carry a batch of transactions (from
//! brokers), each either added or, with `verify_only` (KIP-890), only checked. A
//! partition of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION and the others of
//! its transaction with OPERATION_NOT_ATTEMPTED, nothing added, as Kafka does.
//!
//! Authorization: v4+ (a broker's request) needs CLUSTER_ACTION on the cluster. Each
//! transaction needs WRITE on its transactional id (else every partition is
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and WRITE on each topic (else that topic's
//! partitions are TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authz};
use crate::txn::coordinator::ProducerIdAndEpoch;
use crate::txn::errors::*;
use crate::txn::manager::TxnManager;
use crate::txn::TxnPartition;

const API_KEY: i16 = 24;
const OPERATION_NOT_ATTEMPTED: i16 = ResponseError::OperationNotAttempted.code();

pub async fn handle(
    broker: &Broker,
    req: AddPartitionsToTxnRequest,
    version: i16,
    az: &Authz,
) -> AddPartitionsToTxnResponse {
    if version >= 4 && !az.cluster(AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(phxq_protocol::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    if version <= 3 {
        let producer = ProducerIdAndEpoch {
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
        };
        let results = one(
            broker,
            &req.v3_and_below_transactional_id,
            producer,
            &req.v3_and_below_topics,
            false,
            version,
            az,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let producer = ProducerIdAndEpoch {
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
        };
        let results = one(
            broker,
            &t.transactional_id,
            producer,
            &t.topics,
            t.verify_only,
            version,
            az,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// One transaction's partitions: added (or verified), with a code per partition.
async fn one(
    broker: &Broker,
    id: &TransactionalId,
    producer: ProducerIdAndEpoch,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
    az: &Authz,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(TopicName, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.clone(), *p)))
        .collect();
    let id_allowed = az.transactional_id(AclOperation::Write, &id.0);
    // Why a partition cannot be added, if it cannot.
    let refused = |name: &TopicName, p: i32| {
        if !id_allowed {
            Some(phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !az.topic(AclOperation::Write, &name.0) {
            Some(phxq_protocol::errors::TOPIC_AUTHORIZATION_FAILED)
        } else if broker
            .topics
            .get(&name.0)
            .is_none_or(|t| t.partition(p).is_none())
        {
            Some(UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            None
        }
    };
    let refusals: Vec<Option<i16>> = wanted.iter().map(|(n, p)| refused(n, *p)).collect();
    let codes: Vec<i16> = if refusals.iter().any(Option::is_some) {
        refusals
            .into_iter()
            .map(|r| r.unwrap_or(OPERATION_NOT_ATTEMPTED))
            .collect()
    } else {
        let partitions: Vec<TxnPartition> = wanted
            .iter()
            .map(|(n, p)| TxnPartition::new(&n.0, *p))
            .collect();
        decide(&broker.txns, &id.0, producer, &partitions, verify_only)
            .await
            .into_iter()
            .map(|c| for_version(c, API_KEY, version))
            .collect()
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(codes.next().unwrap_or(NONE))
                        })
                        .collect(),
                )
        })
        .collect()
}

async fn decide(
    txns: &Arc<TxnManager>,
    id: &str,
    producer: ProducerIdAndEpoch,
    partitions: &[TxnPartition],
    verify_only: bool,
) -> Vec<i16> {
    if verify_only {
        return match txns.verify_partitions(id, producer, partitions) {
            Ok(list) => list.into_iter().map(|(_, c)| c).collect(),
            Err(code) => vec![code; partitions.len()],
        };
    }
    match txns.add_partitions(id, producer, partitions).await {
        Ok(()) => vec![NONE; partitions.len()],
        Err(code) => vec![code; partitions.len()],
    }
}
