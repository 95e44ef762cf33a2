//! The fill loop: queueing the rest of big stages' task runs (`engine::fill`) when a
//! transition of this process started one, and every half lease for the stages whose filler
//! died (its lease expired) or never began (a start whose process stopped before it could).

use std::sync::Arc;

use super::Worker;
use crate::engine::fill::{self, FillPolicy};

/// Fills what is left to fill when woken ([`Signals::fill`](crate::signals::Signals)) and
/// every half lease.
pub(crate) async fn fill_loop(worker: Arc<Worker>) {
    let period = worker.config.lease_duration / 2;
    loop {
        worker.health.checkpoint("fill");
        let policy = FillPolicy { lease: worker.config.lease_duration, learn_weights: worker.learn_weights() };
        let applied = |effects| worker.signals.apply(effects);
        let result = fill::fill_unheld(&worker.work, None, policy, &applied).await;
        match &result {
            Ok(0) => {}
            Ok(filled) => tracing::debug!(stage_runs = filled, "queued the rest of big stages' task runs"),
            Err(e) => {
                tracing::warn!(error = %e, "could not queue the rest of a big stage's task runs; retrying (another process takes it over once its lease expires)")
            }
        }
        worker.health.pass("fill", result.map(|_| ()));
        tokio::select! {
            _ = worker.stop_claiming.cancelled() => break,
            _ = worker.signals.fill.notified() => {}
            _ = tokio::time::sleep(period) => {}
        }
    }
}
