//! `COG_BENCH_STEPS=1`: where the measuring process's stage hand-offs spend their time, step
//! by step, from cog's `cog::handoff` trace events (see README "Metrics and traces"). Meant
//! for workload B on one process, whose hand-offs follow one another: each is a cog's return,
//! the write of its outcome (`BEGIN`, the successes with the run's lock, the stage run's end,
//! the next stage's start with its claim, the commit), the claimed task run handed to its
//! slot, and the next cog's call.

use std::sync::Mutex;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The steps, in the order a hand-off passes them.
const STEPS: [&str; 9] =
    ["cog_returned", "write_began", "begun", "outcomes_written", "stage_ended", "stages_started", "committed", "dispatching", "cog_called"];

/// The one step a write may pass without: `stage_ended`, in an outcome that leaves its stage
/// run open (not a hand-off, then, but a write like it).
const SKIPPABLE: usize = 4;

/// Every step seen in this process (its index in [`STEPS`]) and when.
static SEEN: Mutex<Vec<(usize, Instant)>> = Mutex::new(Vec::new());

/// Whether `COG_BENCH_STEPS` asks for the steps.
pub(crate) fn enabled() -> bool {
    std::env::var_os("COG_BENCH_STEPS").is_some()
}

/// A `tracing` layer recording the `cog::handoff` events' steps (give it a filter that lets
/// them through).
pub(crate) struct Recorder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "cog::handoff" {
            return;
        }
        let mut step = StepOf(None);
        event.record(&mut step);
        if let Some(i) = step.0 {
            SEEN.lock().unwrap_or_else(|e| e.into_inner()).push((i, Instant::now()));
        }
    }
}

/// The step an event names (its `step` field), if it is one of [`STEPS`].
struct StepOf(Option<usize>);

impl Visit for StepOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "step" {
            self.0 = STEPS.iter().position(|s| *s == value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// A hand-off being followed by [`summary`]: its last step (an index in [`STEPS`]), when that
/// came, and the time to each step so far (`(step, µs)`).
type Followed = (usize, Instant, Vec<(usize, f64)>);

/// ` steps_us=<step>:<µs>,...`: for each step after the first, the median time from the step
/// before it to it, over the hand-offs seen, and ` steps_n=<hand-offs>`. A hand-off is a
/// `cog_returned` followed by each next step in order through a `cog_called` (an outcome that
/// did not end its stage run may pass without `stage_ended`); any other sequence (the last
/// outcome of a run, which calls no cog after it, or the events of concurrent tasks in between)
/// is not counted. Empty when no hand-off was seen: with several tasks at once (any workload
/// but B, or more than one process) few or none are.
pub(crate) fn summary() -> String {
    let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    // The hand-off being followed: its last step and when, and its gaps so far.
    let mut current: Option<Followed> = None;
    let mut handoffs = 0;
    for &(step, at) in seen.iter() {
        current = match current.take() {
            _ if step == 0 => Some((0, at, Vec::new())),
            Some((before, since, mut so_far)) if step == before + 1 || (before + 1 == SKIPPABLE && step == SKIPPABLE + 1) => {
                so_far.push((step, at.duration_since(since).as_secs_f64() * 1e6));
                if step == STEPS.len() - 1 {
                    handoffs += 1;
                    so_far.into_iter().for_each(|(step, gap)| gaps[step].push(gap));
                    None
                } else {
                    Some((step, at, so_far))
                }
            }
            _ => None,
        };
    }
    if handoffs == 0 {
        return String::new();
    }
    let medians: Vec<String> = STEPS
        .iter()
        .zip(&mut gaps)
        .skip(1)
        .filter(|(_, g)| !g.is_empty())
        .map(|(name, g)| {
            g.sort_by(f64::total_cmp);
            format!("{name}:{:.0}", g[g.len() / 2])
        })
        .collect();
    format!(" steps_us={} steps_n={handoffs}", medians.join(","))
}
