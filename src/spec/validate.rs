//! Checks a [`PipelineSpec`] completely before anything is written (DESIGN invariant 11).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::PipelineSpec;
use crate::error::DefinitionError;
use crate::error::MAX_NAME_CHARS;
use crate::registry;
use crate::scheduler::expression as schedule;

/// Every check that needs no database: names, cogs, handlers, prerequisites, cycles,
/// schedule, time zone, arguments (against the cog's parameters), weights, timeouts.
pub(crate) fn validate(spec: &PipelineSpec) -> Result<(), DefinitionError> {
    let pipeline = &spec.name;
    let empty = |what| DefinitionError::EmptyName { pipeline: pipeline.clone(), what };
    let too_long = |what: &'static str, name: &str| {
        let length = name.chars().count();
        (length > MAX_NAME_CHARS).then(|| DefinitionError::NameTooLong {
            pipeline: pipeline.chars().take(60).collect(),
            what,
            name: name.chars().take(60).chain("…".chars()).collect(),
            length,
        })
    };
    if pipeline.trim().is_empty() {
        return Err(empty("pipeline"));
    }
    if let Some(e) = too_long("pipeline", pipeline) {
        return Err(e);
    }
    for stage in &spec.stages {
        if let Some(e) = too_long("stage", &stage.name) {
            return Err(e);
        }
        for task in &stage.tasks {
            if let Some(e) = too_long("task", task.task_name()).or_else(|| too_long("queue", &task.queue)) {
                return Err(e);
            }
        }
    }
    if let Some(expr) = &spec.schedule {
        schedule::parse(expr).map_err(|reason| DefinitionError::InvalidSchedule { pipeline: pipeline.clone(), schedule: expr.clone(), reason })?;
    }
    if schedule::parse_timezone(&spec.timezone).is_none() {
        return Err(DefinitionError::InvalidTimezone { pipeline: pipeline.clone(), timezone: spec.timezone.clone() });
    }
    let mut stage_names = HashSet::new();
    for stage in &spec.stages {
        if stage.name.trim().is_empty() {
            return Err(empty("stage"));
        }
        if !stage_names.insert(stage.name.as_str()) {
            return Err(DefinitionError::DuplicateStage { pipeline: pipeline.clone(), stage: stage.name.clone() });
        }
        let mut task_names = HashSet::new();
        for task in &stage.tasks {
            let name = task.task_name();
            if name.trim().is_empty() {
                return Err(empty("task"));
            }
            if task.queue.trim().is_empty() {
                return Err(empty("queue"));
            }
            if !task_names.insert(name) {
                return Err(DefinitionError::DuplicateTask { stage: stage.name.clone(), task: name.to_owned() });
            }
            let Some(cog) = registry::cog(&task.cog) else {
                return Err(DefinitionError::UnknownCog { task: name.to_owned(), cog: task.cog.clone() });
            };
            if let Some(handler) = &task.error_handler
                && registry::error_handler(handler).is_none()
            {
                return Err(DefinitionError::UnknownErrorHandler { task: name.to_owned(), handler: handler.clone() });
            }
            let Some(arguments) = task.args.as_object() else {
                return Err(DefinitionError::ArgumentsNotObject { task: name.to_owned(), got: json_kind(&task.args) });
            };
            crate::arguments::check_task(name, cog, arguments)?;
            if let Some(weight) = task.weight
                && !(weight.is_finite() && weight >= 0.0)
            {
                return Err(DefinitionError::InvalidWeight { task: name.to_owned(), weight });
            }
            if task.timeout.is_some_and(|t| t.is_zero()) {
                return Err(DefinitionError::InvalidTimeout { task: name.to_owned() });
            }
        }
    }
    for stage in &spec.stages {
        for prerequisite in &stage.after {
            if !stage_names.contains(prerequisite.as_str()) {
                return Err(DefinitionError::UnknownPrerequisite { pipeline: pipeline.clone(), stage: stage.name.clone(), prerequisite: prerequisite.clone() });
            }
        }
    }
    find_cycle(spec).map_or(Ok(()), |cycle| Err(DefinitionError::Cycle { pipeline: pipeline.clone(), cycle }))
}

/// The first prerequisite cycle found, as stage names with the first repeated at the end.
fn find_cycle(spec: &PipelineSpec) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let edges: HashMap<&str, Vec<&str>> = spec.stages.iter().map(|s| (s.name.as_str(), s.after.iter().map(String::as_str).collect())).collect();
    let mut marks: HashMap<&str, Mark> = edges.keys().map(|k| (*k, Mark::New)).collect();
    for start in spec.stages.iter().map(|s| s.name.as_str()) {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` holds the stages on the current branch.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::OnPath);
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            match edges[node].get(*next) {
                Some(&child) => {
                    *next += 1;
                    match marks[child] {
                        Mark::New => {
                            marks.insert(child, Mark::OnPath);
                            path.push((child, 0));
                        }
                        Mark::OnPath => {
                            let from = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let mut cycle: Vec<String> = path[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                            cycle.push(child.to_owned());
                            return Some(cycle);
                        }
                        Mark::Done => {}
                    }
                }
                None => {
                    marks.insert(node, Mark::Done);
                    path.pop();
                }
            }
        }
    }
    None
}

/// The JSON kind of a value, for error messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
