//! `[storage]`: the free-space floor of the data directory (`disk::floor`).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Free bytes kept on the data directory's filesystem: below them produce is refused
    /// with KAFKA_STORAGE_ERROR. None: 1 GiB or 5% of the filesystem, whichever is smaller.
    /// 0: no floor.
    pub min_free_bytes: Option<u64>,
    /// How often free space is measured, in ms.
    pub check_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            min_free_bytes: None,
            check_interval_ms: 1000,
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (10..=60_000).contains(&self.check_interval_ms),
            "[storage] check_interval_ms must be between 10 and 60000"
        );
        Ok(())
    }
}
