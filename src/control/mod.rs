//! Run control (issue 9): paused queues, overlap policies at launch, retrying a run from where
//! it failed, launching inside the host's transaction, and pruning old history. Each part adds
//! its calls to [`CogRuntime`](crate::CogRuntime) from its own file.

pub(crate) mod launch;
pub(crate) mod prune;
pub(crate) mod queues;
