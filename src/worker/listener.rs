//! Hearing other processes. PostgreSQL: `LISTEN cog_events`, so new work wakes idle workers at
//! once, a cancel reaches running cogs at once, an ended run wakes `RunHandle::wait`; polling
//! stays as the fallback when a notification is lost. MySQL has no such channel: see
//! [`super::watcher`]. SQLite serves one process, whose own signals are all it needs.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;

use super::Worker;
use crate::engine::finish::backoff;
use crate::store::{Backend, EVENTS_CHANNEL};

/// Hears other processes until the runtime stops, as the backend allows.
pub(crate) async fn listen_loop(worker: Arc<Worker>) {
    match Backend::of(&worker.db) {
        Ok(Backend::Postgres) => listen(worker).await,
        Ok(Backend::MySql) => super::watcher::watch_loop(worker).await,
        // One process per SQLite database: its own signals are all it hears. The loop stays
        // (idle) until the runtime stops, so health shows it running.
        Ok(Backend::Sqlite) => {
            worker.tried_hearing();
            worker.stopped.cancelled().await
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot hear other processes on this database; polling only");
            worker.tried_hearing();
            // Shown as failing (not as a loop that ended) until the runtime stops.
            worker.health.pass("listener", Err(format!("cannot hear other processes on this database; polling only: {e}")));
            worker.stopped.cancelled().await
        }
    }
}

/// `LISTEN cog_events` until the runtime stops; reconnects with back-off when the connection is
/// lost. While listening, the process hears every run end (`Signals::hears_others`).
async fn listen(worker: Arc<Worker>) {
    /// Hears no more when the loop ends, however it ends (stopped, or a panic: restarted).
    struct Deaf<'a>(&'a Worker);
    impl Drop for Deaf<'_> {
        fn drop(&mut self) {
            self.0.signals.hear(false);
        }
    }
    let _deaf = Deaf(&worker);
    // Connections lost or refused in a row: the wait before the next try grows with them, so a
    // connection dropped as soon as it is made (a server restarting, say) is not retried in a
    // tight loop that wakes every waiter each time. Back to none once a notification arrives.
    let mut failures = 0;
    loop {
        worker.health.checkpoint("listener");
        if failures > 0 {
            let pause = reconnect_pause(failures);
            tokio::select! {
                _ = worker.stopped.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let listener = async {
            let mut listener = PgListener::connect_with(worker.db.get_postgres_connection_pool()).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = worker.stopped.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, retry_in = ?reconnect_pause(failures), "could not listen for cog events; polling meanwhile");
                    worker.health.pass("listener", Err(format!("could not listen for cog events (polling meanwhile): {e}")));
                    worker.tried_hearing();
                    continue;
                }
            },
        };
        // Whatever happened while not listening is unknown: look again.
        worker.signals.hear(true);
        worker.health.pass::<&str>("listener", Ok(()));
        worker.tried_hearing();
        wake_all(&worker);
        loop {
            let next = tokio::select! {
                _ = worker.stopped.cancelled() => return,
                n = listener.try_recv() => n,
            };
            let failed = match next {
                Ok(Some(notification)) => {
                    failures = 0;
                    dispatch(&worker, notification.payload());
                    continue;
                }
                Ok(None) => None,
                Err(e) => Some(e),
            };
            // Reconnected here (not by the listener on its next receive), so that the ends
            // committed meanwhile are looked for once listening again; meanwhile every waiter
            // reads its run again and polls, as ends go unheard.
            let retry_in = reconnect_pause(failures + 1);
            let error = match failed {
                Some(e) => {
                    tracing::warn!(error = %e, ?retry_in, "listening for cog events failed; reconnecting");
                    format!("listening for cog events failed (reconnecting, polling meanwhile): {e}")
                }
                None => {
                    tracing::warn!(?retry_in, "lost the connection listening for cog events; reconnecting");
                    "lost the connection listening for cog events (reconnecting, polling meanwhile)".to_owned()
                }
            };
            worker.health.pass("listener", Err(error));
            worker.signals.hear(false);
            wake_all(&worker);
            failures += 1;
            break;
        }
    }
}

/// How long the listener waits before its next try after `failures` connections lost or
/// refused in a row: 100 ms doubling up to 10 s.
fn reconnect_pause(failures: i32) -> Duration {
    backoff(Duration::from_millis(100), Duration::from_secs(10), failures)
}

/// Acts on one event.
fn dispatch(worker: &Worker, payload: &str) {
    match payload.split_once(':') {
        Some(("cancel", id)) => match id.parse() {
            Ok(id) => worker.cancel_running(id),
            Err(_) => tracing::warn!(payload, "ignoring a cancel event whose run id is not a number (sent by something other than cog?)"),
        },
        Some(("ended", id)) => worker.signals.ended(id.parse().ok()),
        _ => worker.signals.wake.notify_waiters(),
    }
}

fn wake_all(worker: &Worker) {
    worker.signals.wake.notify_waiters();
    worker.signals.ended(None);
}
