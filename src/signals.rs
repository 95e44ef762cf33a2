//! Signals shared by the runtime's parts (work queued, a run ended, schedules changed) and the
//! effects of a transition that fire them. Imports nothing of cog's: every other module may use it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// What a transition did to its pipeline run, for the caller to act on after commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effects {
    /// New task runs were queued (wake the workers), or written claimed by the stage starts
    /// of a transaction with a chained claim (see `store::start_claims`).
    pub(crate) queued_work: bool,
    /// The pipeline run has ended: its `completed_at` was written.
    pub(crate) run_ended: bool,
    /// A big stage started with only its first chunk of task runs queued: the rest is to be
    /// queued after commit (`engine::fill`).
    pub(crate) filling: bool,
    /// Another run than the one transitioned ended too (a buffered run started by its end
    /// that had nothing to run): waiters of every run are to read again.
    pub(crate) other_run_ended: bool,
    /// Stage starts queued task runs without telling other processes (`Announce::Later`):
    /// the smallest id among those they left queued (none: they claimed all they wrote, or
    /// announced them). The transaction announces what its chained claim left.
    pub(crate) unannounced_from: Option<i64>,
}

impl Effects {
    /// Both effects combined.
    pub(crate) fn merge(self, other: Effects) -> Effects {
        Effects {
            queued_work: self.queued_work || other.queued_work,
            run_ended: self.run_ended || other.run_ended,
            filling: self.filling || other.filling,
            other_run_ended: self.other_run_ended || other.other_run_ended,
            unannounced_from: match (self.unannounced_from, other.unannounced_from) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// The in-process wake-ups. Cross-process ones arrive through the database (NOTIFY or a
/// change counter) and are turned into these by the worker's listener.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Task runs were queued.
    pub(crate) wake: Notify,
    /// A pipeline run ended (which one: [`Signals::may_have_ended`]).
    pub(crate) run_ended: Notify,
    /// The runs that ended lately, so that a waiter woken by `run_ended` reads its run again
    /// only when the end may be its run's (50 waiters of 50 runs ending made 1,400 reads).
    ends: Mutex<Ends>,
    /// A schedule, or whether a pipeline is enabled, changed.
    pub(crate) schedules_changed: Notify,
    /// A big stage's task runs are to be queued (wakes the worker's fill loop).
    pub(crate) fill: Notify,
    /// Whether this process hears the run ends of the others as they commit (PostgreSQL's
    /// `LISTEN`, while it is established; see [`Self::hears_others`]).
    hearing: AtomicBool,
}

/// Run ends told to this process, numbered in order.
#[derive(Debug, Default)]
struct Ends {
    /// The number of the last end told.
    last: u64,
    /// The last [`RECENT_ENDS`] ends of a known run: (number, run id).
    recent: VecDeque<(u64, i64)>,
    /// The number of the last end of a run not named (every waiter reads again).
    unnamed: u64,
}

/// How many named run ends [`Signals`] remembers; a waiter that slept through more reads
/// its run again.
const RECENT_ENDS: usize = 4096;

impl Signals {
    /// Wakes whoever a committed transition concerns. Everything the transition did is
    /// already in the database (weights included), so waiters see it all. A run end whose
    /// run is not named here wakes every waiter to read its run again (see [`Self::ended`]).
    pub(crate) fn apply(&self, effects: Effects) {
        if effects.queued_work {
            self.wake.notify_waiters();
        }
        if effects.run_ended || effects.other_run_ended {
            self.ended(None);
        }
        if effects.filling {
            self.fill.notify_one();
        }
    }
}

impl Signals {
    /// Run `run` ended (committed), or some run when `None`: wakes the waiters, and those of
    /// other runs than `run` go back to sleep without reading.
    pub(crate) fn ended(&self, run: Option<i64>) {
        {
            let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
            ends.last += 1;
            let number = ends.last;
            match run {
                Some(id) => {
                    if ends.recent.len() >= RECENT_ENDS {
                        ends.recent.pop_front();
                    }
                    ends.recent.push_back((number, id));
                }
                None => ends.unnamed = number,
            }
        }
        self.run_ended.notify_waiters();
    }

    /// Whether this process hears the other processes' run ends (their `ended` notifications,
    /// on PostgreSQL while its listening connection is up), besides its own: then a waiter
    /// waits to be told and reads its run only now and then, as a safety net (an end whose
    /// notification was lost: its process died between the commit and the notification, or
    /// could not send it). Not while the listening connection is down (every waiter reads
    /// again when it goes, and once it is back), nor where nobody listens (MySQL, SQLite, a
    /// runtime not started).
    pub(crate) fn hears_others(&self) -> bool {
        self.hearing.load(Ordering::Acquire)
    }

    /// Records whether the run ends of other processes are heard (see [`Self::hears_others`]).
    pub(crate) fn hear(&self, on: bool) {
        self.hearing.store(on, Ordering::Release);
    }

    /// A mark of the run ends told so far, for [`Self::may_have_ended`].
    pub(crate) fn ends_mark(&self) -> u64 {
        self.ends.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Whether an end told since `mark` may be run `run`'s: it named `run`, or named no run,
    /// or was forgotten already.
    pub(crate) fn may_have_ended(&self, run: i64, mark: u64) -> bool {
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        let forgotten = ends.recent.front().map_or(ends.last, |(first, _)| first - 1);
        ends.unnamed > mark || (ends.last > mark && forgotten > mark) || ends.recent.iter().rev().take_while(|(n, _)| *n > mark).any(|(_, id)| *id == run)
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_reads_again_only_for_an_end_that_may_be_its_runs() {
        let signals = Signals::default();
        let mark = signals.ends_mark();
        assert!(!signals.may_have_ended(7, mark), "nothing ended yet");
        signals.ended(Some(8));
        assert!(!signals.may_have_ended(7, mark), "another run's end");
        assert!(signals.may_have_ended(8, mark), "its own run's end");
        let later = signals.ends_mark();
        assert!(!signals.may_have_ended(8, later), "an end before the mark is not looked at again");
        signals.ended(None);
        assert!(signals.may_have_ended(7, later), "an end of a run not named concerns every waiter");
        let later = signals.ends_mark();
        signals.apply(Effects { run_ended: true, ..Effects::default() });
        assert!(signals.may_have_ended(7, later), "a transition's end names no run");
    }

    #[test]
    fn a_waiter_that_slept_through_more_ends_than_are_remembered_reads_again() {
        let signals = Signals::default();
        let mark = signals.ends_mark();
        for run in 0..RECENT_ENDS as i64 + 1 {
            signals.ended(Some(1_000_000 + run));
        }
        assert!(signals.may_have_ended(7, mark), "its run's end may have been forgotten");
        let later = signals.ends_mark();
        signals.ended(Some(1));
        assert!(!signals.may_have_ended(7, later), "ends since the mark are all remembered");
    }
}
