//! Reusable pieces of the pages: times, durations, status badges, JSON, the stage graph,
//! the task timeline, the throughput chart and schedules in words.

pub(crate) mod chart;
pub(crate) mod cron;
pub(crate) mod dag;
pub(crate) mod fmt;
pub(crate) mod gantt;
