//! Arguments checked against cog parameters before anything runs: a task's own arguments when
//! its pipeline is defined, and the launch arguments (with what each task lacks) when a run is
//! launched.
//!
//! The checks use the parameters `#[cog]` recorded ([`crate::registry::Parameter`]), so they apply
//! to the cogs compiled into this binary. `define` already refuses a cog this binary lacks; a
//! launch skips the tasks whose cog it does not have (their worker checks them when it runs them).

use std::collections::HashSet;

use sea_orm::ConnectionTrait;
use serde_json::{Map, Value};

use crate::error::{DefinitionError, Error, LaunchRefusal};
use crate::registry::{self, CogDef};
use crate::store::arguments::launched_tasks;

/// Checks the arguments of task `task` against the parameters of `cog`: every key must be a
/// parameter and every value must deserialize into its type.
pub(crate) fn check_task(task: &str, cog: &CogDef, arguments: &Map<String, Value>) -> Result<(), DefinitionError> {
    for (argument, value) in arguments {
        let Some(parameter) = cog.parameters.iter().find(|p| p.name == argument) else {
            return Err(DefinitionError::UnknownArgument {
                task: task.to_owned(),
                cog: cog.name.to_owned(),
                argument: argument.clone(),
                parameters: cog.parameters.iter().map(|p| p.name.to_owned()).collect(),
            });
        };
        parameter.check(value).map_err(|message| DefinitionError::BadArgument {
            task: task.to_owned(),
            cog: cog.name.to_owned(),
            argument: argument.clone(),
            expected: parameter.type_name.to_owned(),
            message,
        })?;
    }
    Ok(())
}

/// Checks a launch of pipeline `pipeline_id` with launch arguments `launch` (a JSON object):
/// each launch argument a task's cog takes must deserialize into the parameter's type, and each
/// required parameter must be in the task's arguments or the launch arguments. Tasks whose cog
/// this binary does not have are skipped.
pub(crate) async fn check_launch(conn: &impl ConnectionTrait, pipeline_id: i64, launch: &Value) -> Result<(), Error> {
    let empty = Map::new();
    let launch = launch.as_object().unwrap_or(&empty);
    // A launch argument is checked once per cog, not once per task.
    let mut checked: HashSet<(&str, &str)> = HashSet::new();
    // Only tasks of cogs that take parameters can be refused: the others are not read (a stage
    // of 100,000 no-argument tasks launches without reading them all first).
    for row in launched_tasks(conn, pipeline_id, &registry::cogs_with_parameters()).await? {
        let Some(cog) = registry::cog(&row.cog) else { continue };
        let own: Map<String, Value> = match serde_json::from_str(&row.arguments) {
            Ok(Value::Object(map)) => map,
            // Not an object: the task fails with its own error when it runs, as before.
            _ => continue,
        };
        for parameter in cog.parameters {
            if let Some(value) = launch.get(parameter.name) {
                if checked.insert((cog.name, parameter.name)) {
                    parameter.check(value).map_err(|message| Error::BadLaunchArgument {
                        task: row.task.clone(),
                        cog: cog.name.to_owned(),
                        argument: parameter.name.to_owned(),
                        expected: parameter.type_name,
                        message,
                    })?;
                }
            } else if !own.contains_key(parameter.name) && parameter.required() {
                return Err(Error::MissingArgument { task: row.task, cog: cog.name.to_owned(), parameter: parameter.name.to_owned() });
            }
        }
    }
    Ok(())
}

/// A scheduled launch's error as the scheduler reports it: a missing argument becomes a
/// [`LaunchRefusal::MissingArgument`] refusal (logged and counted in `cog_pipeline.refused_ticks`,
/// like an overlap refusal); other errors are unchanged.
pub(crate) fn scheduled_refusal(pipeline: &str, error: Error) -> Error {
    match error {
        Error::MissingArgument { task, cog, parameter } => {
            Error::LaunchRefused { pipeline: pipeline.to_owned(), reason: LaunchRefusal::MissingArgument { task, cog, parameter } }
        }
        other => other,
    }
}
