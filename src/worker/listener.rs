//! Hearing other processes. PostgreSQL: `LISTEN cog_events`, so new work wakes idle workers at
//! once, a cancel reaches running cogs at once, an ended run wakes `RunHandle::wait`; polling
//! stays as the fallback when a notification is lost. MySQL has no such channel: see
//! [`super::watcher`]. SQLite serves one process, whose own signals are all it needs.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;

use crate::engine::finish::backoff;
use crate::runtime::Inner;
use crate::store::{Backend, EVENTS_CHANNEL};

/// Hears other processes until the runtime stops, as the backend allows.
pub(crate) async fn listen_loop(inner: Arc<Inner>) {
    match Backend::of(&inner.db) {
        Ok(Backend::Postgres) => listen(inner).await,
        Ok(Backend::MySql) => super::watcher::watch_loop(inner).await,
        Ok(Backend::Sqlite) => {}
        Err(e) => tracing::error!(error = %e, "cannot hear other processes on this database; polling only"),
    }
}

/// `LISTEN cog_events` until the runtime stops; reconnects with back-off when the connection is lost.
async fn listen(inner: Arc<Inner>) {
    let mut failures = 0;
    loop {
        let listener = async {
            let mut listener = PgListener::connect_with(inner.db.get_postgres_connection_pool()).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = inner.stopped.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    failures += 1;
                    let pause = backoff(Duration::from_millis(100), Duration::from_secs(10), failures);
                    tracing::warn!(error = %e, retry_in = ?pause, "could not listen for cog events; polling meanwhile");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        failures = 0;
        // Whatever happened while not listening is unknown: look again.
        wake_all(&inner);
        loop {
            let next = tokio::select! {
                _ = inner.stopped.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(notification)) => dispatch(&inner, notification.payload()),
                Ok(None) => {
                    tracing::warn!("lost the connection listening for cog events; reconnecting");
                    wake_all(&inner);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listening for cog events failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Acts on one event.
fn dispatch(inner: &Inner, payload: &str) {
    match payload.split_once(':') {
        Some(("cancel", id)) => {
            if let Ok(id) = id.parse() {
                inner.cancel_running(id);
            }
        }
        Some(("ended", _)) => inner.run_ended.notify_waiters(),
        _ => inner.wake.notify_waiters(),
    }
}

fn wake_all(inner: &Inner) {
    inner.wake.notify_waiters();
    inner.run_ended.notify_waiters();
}
