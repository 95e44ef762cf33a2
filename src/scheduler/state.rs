//! [`Scheduler`]: what the scheduler needs — the connection, settings, its clock, the name it
//! holds the leader lease under — and its loop.

use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Clock;
use crate::config::Config;
use crate::health::HealthBoard;
use crate::signals::Signals;

/// The scheduler's state.
pub(crate) struct Scheduler {
    pub(crate) db: DatabaseConnection,
    pub(crate) config: Config,
    /// The time schedules follow.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) health: Arc<HealthBoard>,
    /// The name the leader lease is held under (the runtime's worker name).
    pub(crate) holder: String,
    /// Cancelled on shutdown: stop launching.
    pub(crate) stop: CancellationToken,
    /// The running loop, if started.
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

impl Scheduler {
    /// A scheduler that has not started.
    pub(crate) fn new(db: DatabaseConnection, config: Config, clock: Arc<dyn Clock>, signals: Arc<Signals>, health: Arc<HealthBoard>, holder: String) -> Self {
        Scheduler { db, config, clock, signals, health, holder, stop: CancellationToken::new(), task: Mutex::new(None) }
    }
}
