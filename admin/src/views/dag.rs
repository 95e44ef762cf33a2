//! The stage graph as SVG: stages left to right by dependency depth, arrows from each
//! prerequisite, boxes coloured by stage status on a run's page.

use std::collections::HashMap;

use maud::{Markup, html};

use super::fmt::shorten;

/// A stage to draw.
pub(crate) struct Node<'a> {
    /// Stage name.
    pub(crate) name: &'a str,
    /// Dependency depth (column).
    pub(crate) depth: usize,
    /// Names of the stages it waits for.
    pub(crate) prerequisites: &'a [String],
    /// Status word for the colour and the second line (`None` on a definition).
    pub(crate) status: Option<&'a str>,
    /// Whether the stage is disabled.
    pub(crate) disabled: bool,
}

const W: usize = 196;
const H: usize = 46;
const COL_GAP: usize = 64;
const ROW_GAP: usize = 20;
const PAD: usize = 12;

/// The graph of `nodes` (in depth order).
pub(crate) fn graph(nodes: &[Node<'_>]) -> Markup {
    if nodes.is_empty() {
        return html! { p.muted { "This pipeline has no stages: a run completes at once." } };
    }
    let mut rows_in_column: HashMap<usize, usize> = HashMap::new();
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    for node in nodes {
        let row = rows_in_column.entry(node.depth).or_insert(0);
        let x = PAD + node.depth * (W + COL_GAP);
        let y = PAD + *row * (H + ROW_GAP);
        at.insert(node.name, (x, y));
        *row += 1;
    }
    let columns = nodes.iter().map(|n| n.depth).max().unwrap_or(0) + 1;
    let rows = rows_in_column.values().copied().max().unwrap_or(1);
    let width = PAD * 2 + columns * W + (columns - 1) * COL_GAP;
    let height = PAD * 2 + rows * H + (rows - 1) * ROW_GAP;
    html! {
        div.dag-wrap {
            svg.dag xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } role="img" aria-label="Stage graph" {
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" class="dag-arrow" {}
                    }
                }
                @for node in nodes {
                    @for prerequisite in node.prerequisites {
                        @if let (Some((x1, y1)), Some((x2, y2))) = (at.get(prerequisite.as_str()), at.get(node.name)) {
                            @let (x1, y1, x2, y2) = (x1 + W, y1 + H / 2, *x2, y2 + H / 2);
                            path.dag-edge d={ "M " (x1) " " (y1) " C " (x1 + COL_GAP / 2) " " (y1) ", " (x2 - COL_GAP / 2) " " (y2) ", " (x2 - 2) " " (y2) } marker-end="url(#arrow)" {}
                        }
                    }
                }
                @for node in nodes {
                    @let (x, y) = at[node.name];
                    g class={ "dag-node status-" (node.status.unwrap_or("none").replace(' ', "-")) @if node.disabled { " disabled" } } data-stage=(node.name) {
                        title { (node.name) @if let Some(s) = node.status { ": " (s) } @if node.disabled { " (disabled)" } }
                        rect x=(x) y=(y) width=(W) height=(H) rx="8" {}
                        text.dag-name x=(x + 12) y=(y + if node.status.is_some() { 19 } else { 28 }) { (shorten(node.name, 22)) }
                        @if let Some(s) = node.status {
                            text.dag-status x=(x + 12) y=(y + 36) { (s) }
                        }
                    }
                }
            }
        }
    }
}
