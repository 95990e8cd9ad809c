//! `[transactions]`: the transaction coordinator's settings, with Kafka's names in the
//! comments and Kafka's defaults.

use serde::Deserialize;

use super::TxnConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionsConfig {
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may
    /// ask for; above it InitProducerId answers INVALID_TRANSACTION_TIMEOUT.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id with no transaction for this long is
    /// forgotten.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often timed-out
    /// transactions are looked for (and aborted).
    pub abort_check_interval_ms: u64,
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        let core = TxnConfig::default();
        TransactionsConfig {
            max_timeout_ms: core.max_timeout_ms,
            id_expiration_ms: core.id_expiration_ms,
            abort_check_interval_ms: 10_000,
        }
    }
}

impl TransactionsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_timeout_ms > 0,
            "[transactions] max_timeout_ms must be positive"
        );
        anyhow::ensure!(
            self.id_expiration_ms > 0,
            "[transactions] id_expiration_ms must be positive"
        );
        anyhow::ensure!(
            (100..=3_600_000).contains(&self.abort_check_interval_ms),
            "[transactions] abort_check_interval_ms must be between 100 and 3600000"
        );
        Ok(())
    }

    /// The settings of the pure coordinator.
    pub fn core(&self) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: self.max_timeout_ms,
            id_expiration_ms: self.id_expiration_ms,
        }
    }
}
