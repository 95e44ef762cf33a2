//! The health of a runtime's background loops, as [`CogRuntime::health`](crate::CogRuntime::health)
//! reports it: whether each loop runs, how often it was restarted after a panic, and its last
//! error. Loops write here; the runtime reads.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// The state of one background loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoopState {
    /// Working normally.
    Running,
    /// Running, but its last pass failed (the database unreachable, say); it retries on its own.
    Failing,
    /// It panicked and is about to be restarted.
    Restarting,
    /// It ended (the runtime shut down).
    Stopped,
}

/// One background loop's health.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LoopHealth {
    /// The loop: `claim`, `completions`, `heartbeat`, `reclaim`, `presence`, `listener`, `scheduler`.
    pub name: &'static str,
    /// What it is doing now.
    pub state: LoopState,
    /// How many times it panicked and was restarted.
    pub restarts: u32,
    /// Its last error or panic message, if it ever had one.
    pub last_error: Option<String>,
    /// When that happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The health of every background loop of a runtime (none before `start()`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The loops, by name.
    pub loops: Vec<LoopHealth>,
}

impl LoopState {
    /// The state in words: `running`, `failing`, `restarting`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoopState::Running => "running",
            LoopState::Failing => "failing",
            LoopState::Restarting => "restarting",
            LoopState::Stopped => "stopped",
        }
    }
}

impl Health {
    /// Whether every loop is running without a current failure (and at least one was started).
    pub fn is_healthy(&self) -> bool {
        !self.loops.is_empty() && self.loops.iter().all(|l| l.state == LoopState::Running)
    }

    /// The loop named `name`, if the runtime runs it.
    pub fn get(&self, name: &str) -> Option<&LoopHealth> {
        self.loops.iter().find(|l| l.name == name)
    }
}

/// Where loops record their health.
#[derive(Debug, Default)]
pub(crate) struct HealthBoard {
    loops: Mutex<BTreeMap<&'static str, Entry>>,
}

#[derive(Debug)]
struct Entry {
    health: LoopHealth,
    /// A panic a test asked for, raised at the loop's next pass.
    inject_panic: bool,
}

impl HealthBoard {
    fn with<R>(&self, name: &'static str, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        let entry = loops.entry(name).or_insert_with(|| Entry {
            health: LoopHealth { name, state: LoopState::Running, restarts: 0, last_error: None, last_error_at: None },
            inject_panic: false,
        });
        f(entry)
    }

    /// Sets loop `name`'s state.
    pub(crate) fn set_state(&self, name: &'static str, state: LoopState) {
        self.with(name, |e| e.health.state = state);
    }

    /// Records a pass of loop `name`: back to `Running` after a success, `Failing` with the error.
    pub(crate) fn pass<E: Display>(&self, name: &'static str, result: Result<(), E>) {
        self.with(name, |e| match result {
            Ok(()) => {
                if e.health.state == LoopState::Failing {
                    e.health.state = LoopState::Running;
                }
            }
            Err(error) => {
                e.health.state = LoopState::Failing;
                e.health.last_error = Some(error.to_string());
                e.health.last_error_at = Some(Utc::now());
            }
        });
    }

    /// Records that loop `name` panicked with `message` and will be restarted.
    pub(crate) fn panicked(&self, name: &'static str, message: String) {
        self.with(name, |e| {
            e.health.state = LoopState::Restarting;
            e.health.restarts += 1;
            e.health.last_error = Some(format!("panicked: {message}"));
            e.health.last_error_at = Some(Utc::now());
        });
    }

    /// Called by loop `name` at each pass: panics if a test asked for it (see
    /// [`inject_panic`](Self::inject_panic)).
    pub(crate) fn checkpoint(&self, name: &'static str) {
        if self.with(name, |e| std::mem::take(&mut e.inject_panic)) {
            panic!("panic injected into the `{name}` loop");
        }
    }

    /// Makes loop `name` panic at its next pass (tests of the supervisor).
    pub(crate) fn inject_panic(&self, name: &'static str) {
        self.with(name, |e| e.inject_panic = true);
    }

    /// What every loop is doing.
    pub(crate) fn snapshot(&self) -> Health {
        Health { loops: self.loops.lock().unwrap_or_else(|e| e.into_inner()).values().map(|e| e.health.clone()).collect() }
    }
}
