//! Recording task outcomes in batches: while one batch commits, the next one gathers, and
//! each batch writes the outcomes of one pipeline run in a single transaction. Under load
//! this turns a commit per task into a commit per batch; when idle a batch is one outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::claim::Claimed;
use crate::engine::finish::{self, Finished, Outcome, RetryPolicy};
use crate::runtime::Inner;

/// Most outcomes written by one transaction.
const MAX_BATCH: usize = 512;

/// One attempt's end, waiting to be written.
pub(crate) struct Completion {
    pub(crate) task: Claimed,
    pub(crate) outcome: Outcome,
    /// What was written; `None` if the database could not be reached before the lease ran out.
    pub(crate) reply: oneshot::Sender<Option<Finished>>,
}

/// Writes completions until the runtime has stopped and the channel is drained.
pub(crate) async fn completion_loop(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    loop {
        let first = tokio::select! {
            biased;
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = inner.stopped.cancelled() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut by_run: HashMap<i64, Vec<Completion>> = HashMap::new();
        for c in batch {
            by_run.entry(c.task.pipeline_run_id).or_default().push(c);
        }
        futures::future::join_all(by_run.into_values().map(|group| write_group(&inner, group))).await;
    }
}

/// Writes the completions of one pipeline run, retrying while the database is unreachable
/// (up to the lease length: after that another process may reclaim the task runs).
async fn write_group(inner: &Arc<Inner>, group: Vec<Completion>) {
    let policy = RetryPolicy { base: inner.config.retry_backoff_base, cap: inner.config.retry_backoff_cap };
    let items: Vec<(&Claimed, &Outcome)> = group.iter().map(|c| (&c.task, &c.outcome)).collect();
    let run_id = group[0].task.pipeline_run_id;
    let give_up = tokio::time::Instant::now() + inner.config.lease_duration;
    let mut tries = 0;
    let written = loop {
        match finish::finish_batch(&inner.db, &items, policy).await {
            Ok((finished, effects)) => {
                crate::metrics::recorded(group.iter().map(|c| &c.task), &finished, crate::store::now());
                inner.apply(run_id, effects);
                break Some(finished);
            }
            Err(e) if tokio::time::Instant::now() < give_up => {
                tries += 1;
                let pause = finish::backoff(Duration::from_millis(50), Duration::from_secs(5), tries);
                tracing::warn!(error = %e, pipeline.run = run_id, outcomes = items.len(), retry_in = ?pause, "could not record task outcomes; retrying");
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                tracing::error!(error = %e, pipeline.run = run_id, "could not record task outcomes; their leases will expire and the task runs be retried or failed");
                break None;
            }
        }
    };
    for (i, c) in group.into_iter().enumerate() {
        let _ = c.reply.send(written.as_ref().map(|f| f[i]));
    }
}
