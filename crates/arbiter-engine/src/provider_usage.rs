//! Vendors' monthly budgets counted in the database, so a budget holds across restarts and
//! across replicas sharing it.

use arbiter_db::Db;
use async_trait::async_trait;

/// [`arbiter_providers::Usage`] over `provider_usage`.
pub struct DbUsage(pub Db);

#[async_trait]
impl arbiter_providers::Usage for DbUsage {
    async fn take(&self, provider: &str, month: &str, budget: u64) -> Result<Option<u64>, String> {
        let txn = self.0.begin_write().await.map_err(|err| err.to_string())?;
        let taken = arbiter_db::usage::take(&txn, provider, month, budget)
            .await
            .map_err(|err| err.to_string())?;
        txn.commit().await.map_err(|err| err.to_string())?;
        Ok(taken)
    }
}
