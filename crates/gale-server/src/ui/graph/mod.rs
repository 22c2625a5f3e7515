//! The task graph: lays a DAG's tasks out in layers from left to right and
//! renders the result as one SVG document.
//!
//! Pure and deterministic: no I/O, no clock, and the same tasks always give the
//! same bytes. The work is bounded (roughly linear in tasks and edges, with a cap
//! on the bends long edges may add), so a DAG of thousands of tasks renders in
//! milliseconds. The input is not trusted: needs naming unknown tasks are
//! ignored, and a cycle is broken rather than followed.
//!
//! The steps are the classic layered ("Sugiyama") ones: a layer per task from
//! the longest path to it; a bend point in every layer a long edge crosses, so
//! edges route around tasks; a few barycenter sweeps to order each layer with
//! fewer crossings; and vertical positions that keep each task near its
//! neighbours without overlaps.
//!
//! `layout` places the vertices; `draw` turns a layout into SVG text.

mod draw;
mod layout;
#[cfg(test)]
mod tests;

use draw::*;
pub(crate) use draw::{ClassName, Escaped, num, truncate};
use layout::*;

/// One task as the graph shows it.
#[derive(Clone, Debug, Default)]
pub struct GraphNode {
    pub id: String,
    /// Ids of the tasks this one runs after.
    pub needs: Vec<String>,
    /// The task instance's state, if the graph shows a run; styles the box.
    pub state: Option<String>,
    /// Where a click on the task leads.
    pub href: Option<String>,
    /// A short note under the id, such as the task's kind ("shell", "http").
    pub label: Option<String>,
}

const NODE_H: f64 = 40.0;
const GAP_Y: f64 = 14.0;
const GAP_X: f64 = 64.0;
const MARGIN: f64 = 16.0;
const PAD_X: f64 = 12.0;
const MIN_NODE_W: f64 = 80.0;
/// Width of one character of a task id, an estimate for 12px sans-serif text.
const ID_CHAR_W: f64 = 7.0;
/// Width of one character of a label (10px text).
const LABEL_CHAR_W: f64 = 6.0;
/// Longer ids are cut with an ellipsis; the full id is in the node's tooltip.
const MAX_ID_CHARS: usize = 28;
const MAX_LABEL_CHARS: usize = 24;
/// Bend points for long edges are capped so that a pathological DAG (every task
/// needing the first of a long chain) stays cheap; edges beyond the budget are
/// drawn as one curve and take no part in ordering.
const MAX_BENDS: usize = 10_000;
/// Most ordering rounds (a sweep down the layers, then one back up); the order
/// with the fewest crossings seen wins.
const MAX_ORDER_ROUNDS: usize = 4;
/// How many vertices and segments the ordering may visit in all: a graph too
/// big for [`MAX_ORDER_ROUNDS`] rounds within it gets fewer (but at least one).
const ORDER_WORK: usize = 100_000;
/// Vertical placement passes, alternately towards upstream and downstream.
const PLACE_PASSES: usize = 4;

/// Renders the DAG as an SVG document (without an XML declaration, ready to be
/// inlined in a page).
pub fn svg(nodes: &[GraphNode]) -> String {
    if nodes.is_empty() {
        return concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph empty" "#,
            r#"viewBox="0 0 160 40" width="160" height="40" role="img" aria-label="task graph">"#,
            r##"<text x="16" y="25" font-family="system-ui, sans-serif" font-size="12" fill="#888">no tasks</text>"##,
            "</svg>"
        )
        .to_owned();
    }
    let layout = Layout::new(nodes);
    render(nodes, &layout)
}
