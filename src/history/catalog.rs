//! The definitions (pipelines, stages, tasks, cogs, queues) loaded once per listing, to name
//! what run rows point at. Definitions are small next to the run history.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder};

use crate::entity::{cog, error_handler, pipeline, queue, stage, stage_prerequisite, task};

/// Definitions by id.
pub(super) struct Catalog {
    pub(super) pipelines: HashMap<i64, pipeline::Model>,
    pub(super) stages: HashMap<i64, stage::Model>,
    pub(super) tasks: HashMap<i64, task::Model>,
    pub(super) cogs: HashMap<i64, cog::Model>,
    pub(super) handlers: HashMap<i64, error_handler::Model>,
    pub(super) queues: HashMap<i64, String>,
    /// Prerequisite stage ids per stage id.
    pub(super) prerequisites: HashMap<i64, Vec<i64>>,
}

impl Catalog {
    /// Loads every definition.
    pub(super) async fn load(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let mut prerequisites: HashMap<i64, Vec<i64>> = HashMap::new();
        for edge in stage_prerequisite::Entity::find().all(db).await? {
            prerequisites.entry(edge.stage_id).or_default().push(edge.prerequisite_id);
        }
        Ok(Self {
            pipelines: pipeline::Entity::find().all(db).await?.into_iter().map(|p| (p.id, p)).collect(),
            stages: stage::Entity::find().order_by_asc(stage::Column::Position).all(db).await?.into_iter().map(|s| (s.id, s)).collect(),
            tasks: task::Entity::find().all(db).await?.into_iter().map(|t| (t.id, t)).collect(),
            cogs: cog::Entity::find().all(db).await?.into_iter().map(|c| (c.id, c)).collect(),
            handlers: error_handler::Entity::find().all(db).await?.into_iter().map(|h| (h.id, h)).collect(),
            queues: queue::Entity::find().all(db).await?.into_iter().map(|q| (q.id, q.name)).collect(),
            prerequisites,
        })
    }

    /// A pipeline's name (`#id` if unknown).
    pub(super) fn pipeline_name(&self, id: i64) -> String {
        self.pipelines.get(&id).map_or_else(|| format!("#{id}"), |p| p.name.clone())
    }

    /// A stage's name.
    pub(super) fn stage_name(&self, id: i64) -> String {
        self.stages.get(&id).map_or_else(|| format!("#{id}"), |s| s.name.clone())
    }

    /// A cog's name.
    pub(super) fn cog_name(&self, id: i64) -> String {
        self.cogs.get(&id).map_or_else(|| format!("#{id}"), |c| c.name.clone())
    }

    /// The stages of pipeline `pipeline_id`, archived ones too if `archived`, sorted by
    /// depth then definition order, each with its depth.
    pub(super) fn stages_of(&self, pipeline_id: i64, archived: bool) -> Vec<(&stage::Model, usize)> {
        let mut depths: HashMap<i64, usize> = HashMap::new();
        let mut stages: Vec<(&stage::Model, usize)> =
            self.stages.values().filter(|s| s.pipeline_id == pipeline_id && (archived || !s.archived)).map(|s| (s, self.depth(s.id, &mut depths, 0))).collect();
        stages.sort_by_key(|(s, depth)| (*depth, s.position, s.id));
        stages
    }

    /// The names of stage `id`'s prerequisites.
    pub(super) fn prerequisite_names(&self, id: i64) -> Vec<String> {
        self.prerequisites.get(&id).map(|ids| ids.iter().map(|p| self.stage_name(*p)).collect()).unwrap_or_default()
    }

    /// Stage `id`'s dependency depth (the graph is acyclic; `guard` bounds a corrupt one).
    fn depth(&self, id: i64, memo: &mut HashMap<i64, usize>, guard: usize) -> usize {
        if let Some(d) = memo.get(&id) {
            return *d;
        }
        let d = match self.prerequisites.get(&id) {
            Some(prereqs) if guard < 1000 => prereqs.iter().map(|p| self.depth(*p, memo, guard + 1) + 1).max().unwrap_or(0),
            _ => 0,
        };
        memo.insert(id, d);
        d
    }

    /// The tasks of stage `id` (archived ones too if `archived`), in definition order.
    pub(super) fn tasks_of(&self, stage_id: i64, archived: bool) -> Vec<&task::Model> {
        let mut tasks: Vec<&task::Model> = self.tasks.values().filter(|t| t.stage_id == stage_id && (archived || !t.archived)).collect();
        tasks.sort_by_key(|t| (t.position, t.id));
        tasks
    }
}
