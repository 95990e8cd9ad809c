//! DescribeTransactions (65) and ListTransactions (66) (KIP-664): what
//! `kafka-transactions.sh` and the Admin API show of the transaction coordinators. Each
//! broker answers for the transactional ids it coordinates; the Admin client asks every
//! broker for a list and each id's coordinator for a description. ListTransactions v1 adds
//! the minimum duration (KIP-994), v2 a regular expression the whole transactional id
//! must match (KIP-1152; an invalid one is INVALID_REGULAR_EXPRESSION). Describing needs
//! DESCRIBE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED); a list
//! shows only the ids the principal may DESCRIBE.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId,
};

use crate::broker::Broker;
use crate::handlers::str;
use crate::security::acl::{AclOperation, Authz};
use crate::txn::coordinator::ListFilter;

pub fn describe(
    broker: &Broker,
    req: DescribeTransactionsRequest,
    _version: i16,
    az: &Authz,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let base = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !az.transactional_id(AclOperation::Describe, &id.0) {
                return base
                    .with_error_code(phxq_protocol::errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
            match broker.txns.describe(&id.0) {
                Ok(d) => {
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for p in &d.partitions {
                        topics.entry(p.topic.clone()).or_default().push(p.partition);
                    }
                    base.with_transaction_state(str(d.state.name()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.txn_start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(str(t).into())
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                }
                Err(code) => base.with_error_code(code),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list(
    broker: &Broker,
    req: ListTransactionsRequest,
    version: i16,
    az: &Authz,
) -> ListTransactionsResponse {
    let filter = ListFilter {
        states: req.state_filters.iter().map(|s| s.to_string()).collect(),
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: if version >= 1 {
            req.duration_filter
        } else {
            -1
        },
    };
    let pattern = match req.transactional_id_pattern.as_deref() {
        Some(p) if version >= 2 && !p.is_empty() => {
            match regex::RegexBuilder::new(&format!("^(?:{p})$"))
                .size_limit(1 << 20)
                .build()
            {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!(pattern = p, error = %e, "ListTransactions: invalid pattern");
                    return ListTransactionsResponse::default()
                        .with_error_code(crate::groups::errors::INVALID_REGULAR_EXPRESSION);
                }
            }
        }
        _ => None,
    };
    match broker.txns.list(&filter) {
        Ok(mut l) => {
            if let Some(r) = &pattern {
                l.transactions.retain(|t| r.is_match(&t.transactional_id));
            }
            l.transactions
                .retain(|t| az.transactional_id(AclOperation::Describe, &t.transactional_id));
            ListTransactionsResponse::default()
                .with_unknown_state_filters(l.unknown_state_filters.into_iter().map(str).collect())
                .with_transaction_states(
                    l.transactions
                        .into_iter()
                        .map(|t| {
                            ListedState::default()
                                .with_transactional_id(str(t.transactional_id).into())
                                .with_producer_id(ProducerId(t.producer_id))
                                .with_transaction_state(str(t.state.name()))
                        })
                        .collect(),
                )
        }
        Err(code) => ListTransactionsResponse::default().with_error_code(code),
    }
}
