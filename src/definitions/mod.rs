//! Definitions, as opposed to runs: saving pipelines (`define`) and learning task weights from
//! history. (Which cogs live workers carry is `store::presence`.)

pub(crate) mod define;
pub(crate) mod weights;
