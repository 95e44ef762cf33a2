//! `COG_BENCH_STEPS=1`: where the measuring process's stage hand-offs spend their time, step
//! by step, from cog's `cog::handoff` trace events (see README "Metrics and traces"). Meant
//! for a workload on one process, whose hand-offs follow one another (B): each is a cog's
//! return, the write of its outcome (`BEGIN`, the successes with the run's lock, the stage
//! run's end, the next stage's start with its claim, the commit), the claimed task run's
//! dispatch, and the next cog's call.

use std::sync::Mutex;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The steps, in the order a hand-off passes them.
const STEPS: [&str; 9] = ["cog_returned", "write_began", "begun", "outcomes_written", "stage_ended", "stages_started", "committed", "dispatched", "cog_called"];

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

/// ` steps_us=<step>:<µs>,...`: for each step after the first, the median time from the step
/// before it to it, over the hand-offs seen (each a `cog_returned` and the steps after it, in
/// order, through the next `cog_called`; a step a hand-off skips, the stage run's end when its
/// run ends, counts its time in the next one), and `n=` hand-offs. Empty when none was seen.
pub(crate) fn summary() -> String {
    let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    let mut last: Option<(usize, Instant)> = None;
    let mut handoffs = 0;
    for &(step, at) in seen.iter() {
        last = match last {
            _ if step == 0 => Some((0, at)),
            Some((before, since)) if step > before => {
                gaps[step].push(at.duration_since(since).as_secs_f64() * 1e6);
                if step == STEPS.len() - 1 {
                    handoffs += 1;
                    None
                } else {
                    Some((step, at))
                }
            }
            // Out of order (another task's events in between): this hand-off is not counted.
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
