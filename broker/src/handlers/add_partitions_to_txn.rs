//! AddPartitionsToTxn (24): partitions join a producer's ongoing transaction, durably,
//! before the producer writes to them (so the coordinator knows where to put markers).
//!
//! v0-3 carry one transaction (from a producer); v4+ carry a batch of transactions (from
//! brokers), each either added or, with `verify_only` (KIP-890), only checked. A
//! partition of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION and the others of
//! its transaction with OPERATION_NOT_ATTEMPTED, nothing added, as Kafka does.

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
) -> AddPartitionsToTxnResponse {
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
) -> Vec<AddPartitionsToTxnTopicResult> {
    let wanted: Vec<(TopicName, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.clone(), *p)))
        .collect();
    let known = |name: &TopicName, p: i32| {
        broker
            .topics
            .get(&name.0)
            .is_some_and(|t| t.partition(p).is_some())
    };
    let codes: Vec<i16> = if wanted.iter().any(|(n, p)| !known(n, *p)) {
        wanted
            .iter()
            .map(|(n, p)| {
                if known(n, *p) {
                    OPERATION_NOT_ATTEMPTED
                } else {
                    UNKNOWN_TOPIC_OR_PARTITION
                }
            })
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
