//! Run control (issue 9) below the runtime: the types its calls return (`PruneReport`,
//! `QueueState`) and the prune passes the scheduler shares. The `CogRuntime` methods
//! (`retry`, `launch_in`, `prune`, `pause_queue`, ...) live in `runtime::control`.

pub(crate) mod prune;
pub(crate) mod queues;
