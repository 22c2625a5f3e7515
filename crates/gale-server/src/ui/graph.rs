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

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;

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

/// Why an edge is drawn the way it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EdgeKind {
    /// Runs left to right through a bend point in every layer it crosses.
    Routed,
    /// Spans layers but did not fit the bend budget: one curve, which may cross
    /// tasks.
    Direct,
    /// Closes a cycle, which validation should have rejected; it was left out
    /// of the layering and points right to left.
    Back,
}

struct Edge {
    from: usize,
    to: usize,
    /// Bend points, one per layer strictly between `from` and `to`.
    via: Vec<usize>,
    kind: EdgeKind,
}

/// The layered graph: the tasks (`0..n_tasks`) plus one bend point per layer a
/// routed edge crosses (`n_tasks..`), every segment joining adjacent layers.
struct Layout {
    n_tasks: usize,
    layer_of: Vec<usize>,
    /// Neighbours one layer to the left.
    ups: Vec<Vec<usize>>,
    /// Neighbours one layer to the right.
    downs: Vec<Vec<usize>>,
    layers: Vec<Vec<usize>>,
    edges: Vec<Edge>,
    /// Vertical centre of each vertex.
    y: Vec<f64>,
}

impl Layout {
    fn new(nodes: &[GraphNode]) -> Layout {
        let n_tasks = nodes.len();
        let preds = resolve_needs(nodes);
        let (task_layer, topo_rank) = assign_layers(&preds);

        let mut layout = Layout {
            n_tasks,
            layer_of: task_layer,
            ups: vec![Vec::new(); n_tasks],
            downs: vec![Vec::new(); n_tasks],
            layers: Vec::new(),
            edges: Vec::new(),
            y: Vec::new(),
        };
        layout.add_edges(&preds, &topo_rank);
        layout.order();
        layout.place();
        layout
    }

    fn add_vertex(&mut self, layer: usize) -> usize {
        self.layer_of.push(layer);
        self.ups.push(Vec::new());
        self.downs.push(Vec::new());
        self.layer_of.len() - 1
    }

    fn link(&mut self, from: usize, to: usize) {
        self.downs[from].push(to);
        self.ups[to].push(from);
    }

    fn add_edges(&mut self, preds: &[Vec<usize>], topo_rank: &[usize]) {
        let mut n_bends = 0;
        for (to, from_list) in preds.iter().enumerate() {
            for &from in from_list {
                if topo_rank[from] > topo_rank[to] {
                    self.edges.push(Edge {
                        from,
                        to,
                        via: Vec::new(),
                        kind: EdgeKind::Back,
                    });
                    continue;
                }
                let (from_layer, to_layer) = (self.layer_of[from], self.layer_of[to]);
                debug_assert!(from_layer < to_layer);
                let n_via = to_layer - from_layer - 1;
                if n_bends + n_via > MAX_BENDS {
                    self.edges.push(Edge {
                        from,
                        to,
                        via: Vec::new(),
                        kind: EdgeKind::Direct,
                    });
                    continue;
                }
                n_bends += n_via;
                let mut via = Vec::with_capacity(n_via);
                let mut prev = from;
                for layer in from_layer + 1..to_layer {
                    let bend = self.add_vertex(layer);
                    self.link(prev, bend);
                    via.push(bend);
                    prev = bend;
                }
                self.link(prev, to);
                self.edges.push(Edge {
                    from,
                    to,
                    via,
                    kind: EdgeKind::Routed,
                });
            }
        }
    }

    /// Orders every layer by barycenter sweeps, keeping the order with the
    /// fewest crossings.
    fn order(&mut self) {
        let n_layers = self.layer_of.iter().max().map_or(0, |max| max + 1);
        let mut layers = vec![Vec::new(); n_layers];
        for (vertex, &layer) in self.layer_of.iter().enumerate() {
            layers[layer].push(vertex);
        }
        let mut pos = vec![0; self.layer_of.len()];
        update_positions(&layers, &mut pos);

        // A round visits every vertex and segment a few times (two sweeps and a
        // count); big graphs get fewer rounds so the cost stays bounded.
        let size = self.layer_of.len() + self.downs.iter().map(Vec::len).sum::<usize>();
        let n_rounds = (ORDER_WORK / size.max(1)).clamp(1, MAX_ORDER_ROUNDS);
        let mut best = layers.clone();
        let mut best_crossings = count_crossings(&layers, &pos, &self.downs);
        for _ in 0..n_rounds {
            if best_crossings == 0 {
                break;
            }
            for layer in layers.iter_mut().skip(1) {
                reorder(layer, &mut pos, &self.ups);
            }
            for layer in layers.iter_mut().rev().skip(1) {
                reorder(layer, &mut pos, &self.downs);
            }
            let crossings = count_crossings(&layers, &pos, &self.downs);
            if crossings >= best_crossings {
                // The order has settled (or started to oscillate).
                break;
            }
            best_crossings = crossings;
            best.clone_from(&layers);
        }
        self.layers = best;
    }

    /// Half the height a vertex takes up in its layer: tasks are boxes, bend
    /// points are thin.
    fn half_height(&self, vertex: usize) -> f64 {
        if vertex < self.n_tasks {
            NODE_H / 2.0
        } else {
            0.0
        }
    }

    /// Sets vertical positions: each layer is packed, then each vertex is pulled
    /// towards its neighbours in the layer just placed, keeping the order and the
    /// minimum gaps.
    fn place(&mut self) {
        let mut y = vec![0.0; self.layer_of.len()];
        for layer in &self.layers {
            let mut at = 0.0;
            for (i, &vertex) in layer.iter().enumerate() {
                if i > 0 {
                    at += self.half_height(layer[i - 1]) + GAP_Y + self.half_height(vertex);
                }
                y[vertex] = at;
            }
            for &vertex in layer {
                y[vertex] -= at / 2.0;
            }
        }

        let n_layers = self.layers.len();
        let mut targets = Vec::new();
        let mut gaps = Vec::new();
        for pass in 0..PLACE_PASSES {
            let (neighbours, layer_order): (&[Vec<usize>], Vec<usize>) = if pass % 2 == 0 {
                (&self.ups, (1..n_layers).collect())
            } else {
                (&self.downs, (0..n_layers.saturating_sub(1)).rev().collect())
            };
            for layer in layer_order {
                let layer = &self.layers[layer];
                targets.clear();
                gaps.clear();
                for (i, &vertex) in layer.iter().enumerate() {
                    let near = &neighbours[vertex];
                    let target = if near.is_empty() {
                        y[vertex]
                    } else {
                        near.iter().map(|&n| y[n]).sum::<f64>() / near.len() as f64
                    };
                    targets.push(target);
                    if i > 0 {
                        gaps.push(
                            self.half_height(layer[i - 1]) + GAP_Y + self.half_height(vertex),
                        );
                    }
                }
                let placed = closest_spaced(&targets, &gaps);
                for (&vertex, at) in layer.iter().zip(placed) {
                    y[vertex] = at;
                }
            }
        }
        self.y = y;
    }
}

/// For each task, the indexes of the distinct known tasks it needs (sorted).
/// A need naming an unknown task or the task itself is ignored; a repeated id
/// names its first task.
fn resolve_needs(nodes: &[GraphNode]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        index.entry(node.id.as_str()).or_insert(i);
    }
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut preds: Vec<usize> = node
                .needs
                .iter()
                .filter_map(|need| index.get(need.as_str()).copied())
                .filter(|&pred| pred != i)
                .collect();
            preds.sort_unstable();
            preds.dedup();
            preds
        })
        .collect()
}

/// Layers by longest path from the sources (Kahn's algorithm). When only tasks
/// on cycles are left, the first of them by input order is placed as if its
/// unplaced needs did not exist; the edges from those needs become back edges.
/// Returns each task's layer and its rank in the resulting topological order (an
/// edge is a back edge exactly when it goes from a higher rank to a lower).
fn assign_layers(preds: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    let n = preds.len();
    let mut succs = vec![Vec::new(); n];
    for (to, from_list) in preds.iter().enumerate() {
        for &from in from_list {
            succs[from].push(to);
        }
    }
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut placed = vec![false; n];
    let mut layer = vec![0; n];
    let mut rank = vec![0; n];
    let mut n_placed = 0;
    let mut cycle_cursor = 0;
    while n_placed < n {
        let task = match ready.pop_front() {
            Some(task) => task,
            None => {
                while placed[cycle_cursor] {
                    cycle_cursor += 1;
                }
                cycle_cursor
            }
        };
        placed[task] = true;
        rank[task] = n_placed;
        n_placed += 1;
        layer[task] = preds[task]
            .iter()
            .filter(|&&pred| placed[pred])
            .map(|&pred| layer[pred] + 1)
            .max()
            .unwrap_or(0);
        for &succ in &succs[task] {
            if !placed[succ] {
                waiting[succ] -= 1;
                if waiting[succ] == 0 {
                    ready.push_back(succ);
                }
            }
        }
    }
    (layer, rank)
}

fn update_positions(layers: &[Vec<usize>], pos: &mut [usize]) {
    for layer in layers {
        for (i, &vertex) in layer.iter().enumerate() {
            pos[vertex] = i;
        }
    }
}

/// Sorts one layer by the mean position of each vertex's neighbours in the
/// adjacent layer. Vertices without such neighbours keep their slots; ties keep
/// their current order, so the result is deterministic.
fn reorder(layer: &mut [usize], pos: &mut [usize], neighbours: &[Vec<usize>]) {
    let mut movable: Vec<Barycenter> = Vec::with_capacity(layer.len());
    let mut fixed = vec![false; layer.len()];
    for (slot, &vertex) in layer.iter().enumerate() {
        let near = &neighbours[vertex];
        if near.is_empty() {
            fixed[slot] = true;
        } else {
            let sum = near.iter().map(|&n| pos[n]).sum();
            movable.push(Barycenter {
                sum,
                count: near.len(),
                vertex,
            });
        }
    }
    let mut movable = sort_barycenters(movable).into_iter();
    for (slot, vertex) in layer.iter_mut().enumerate() {
        if !fixed[slot]
            && let Some(next) = movable.next()
        {
            *vertex = next.vertex;
        }
    }
    for (i, &vertex) in layer.iter().enumerate() {
        pos[vertex] = i;
    }
}

/// The mean position `sum / count` of a vertex's neighbours, kept as a fraction
/// so comparisons are exact.
#[derive(Clone, Copy, Debug)]
struct Barycenter {
    sum: usize,
    count: usize,
    vertex: usize,
}

impl Barycenter {
    fn is_before(self, other: Barycenter) -> bool {
        self.sum * other.count < other.sum * self.count
    }
}

/// Barycenters in each of these fractions of a position share a bucket.
const BUCKETS_PER_SLOT: usize = 4;

/// A stable sort in about linear time: a counting sort into buckets a quarter
/// position wide, then an insertion sort, which only has to fix the order within
/// buckets. (Sorting is the hot spot of the layout, and a comparison sort is
/// several times slower in unoptimised builds.)
fn sort_barycenters(items: Vec<Barycenter>) -> Vec<Barycenter> {
    let bucket = |b: &Barycenter| b.sum * BUCKETS_PER_SLOT / b.count;
    let n_buckets = items.iter().map(bucket).max().map_or(0, |max| max + 1);
    let mut starts = vec![0; n_buckets + 1];
    for item in &items {
        starts[bucket(item) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut sorted = items.clone();
    for item in items {
        let at = &mut starts[bucket(&item)];
        sorted[*at] = item;
        *at += 1;
    }
    for i in 1..sorted.len() {
        let mut j = i;
        while j > 0 && sorted[j].is_before(sorted[j - 1]) {
            sorted.swap(j, j - 1);
            j -= 1;
        }
    }
    sorted
}

/// Counts crossing segments between every pair of adjacent layers, by counting
/// inversions with a Fenwick tree: O(segments · log width). Segments leaving one
/// vertex share an end and never cross, so each vertex's are all counted before
/// any of them is added; walking the left layer in order then needs no sort.
fn count_crossings(layers: &[Vec<usize>], pos: &[usize], downs: &[Vec<usize>]) -> u64 {
    let mut total = 0;
    let mut tree = Vec::new();
    for pair in layers.windows(2) {
        tree.clear();
        tree.resize(pair[1].len() + 1, 0u64);
        let mut n_added = 0;
        for &from in &pair[0] {
            for &to in &downs[from] {
                // Segments added so far that end strictly below this one cross it.
                let mut at_or_above = 0;
                let mut i = pos[to] + 1;
                while i > 0 {
                    at_or_above += tree[i];
                    i &= i - 1;
                }
                total += n_added - at_or_above;
            }
            for &to in &downs[from] {
                let mut i = pos[to] + 1;
                while i < tree.len() {
                    tree[i] += 1;
                    i += i & i.wrapping_neg();
                }
                n_added += 1;
            }
        }
    }
    total
}

/// The positions closest (least squares) to `targets` that keep their order and
/// at least `gaps[i]` between positions `i` and `i + 1`: isotonic regression by
/// pooling adjacent violators, in linear time.
fn closest_spaced(targets: &[f64], gaps: &[f64]) -> Vec<f64> {
    debug_assert_eq!(gaps.len() + 1, targets.len().max(1));
    // Shifting each target by the gaps before it turns the constraint into
    // "non-decreasing".
    let mut offsets = Vec::with_capacity(targets.len());
    let mut offset = 0.0;
    for i in 0..targets.len() {
        if i > 0 {
            offset += gaps[i - 1];
        }
        offsets.push(offset);
    }
    // Blocks of (sum, count), each pooled to its mean.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (target, offset) in targets.iter().zip(&offsets) {
        blocks.push((target - offset, 1));
        while blocks.len() >= 2 {
            let (sum_b, n_b) = blocks[blocks.len() - 1];
            let (sum_a, n_a) = blocks[blocks.len() - 2];
            if sum_a / n_a as f64 <= sum_b / n_b as f64 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (sum_a + sum_b, n_a + n_b);
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (sum, count) in blocks {
        let mean = sum / count as f64;
        for _ in 0..count {
            out.push(mean + offsets[out.len()]);
        }
    }
    out
}

fn render(nodes: &[GraphNode], layout: &Layout) -> String {
    let widths: Vec<f64> = nodes.iter().map(node_width).collect();
    let n_layers = layout.layers.len();
    let mut column_w = vec![MIN_NODE_W; n_layers];
    for (task, &w) in widths.iter().enumerate() {
        let layer = layout.layer_of[task];
        column_w[layer] = column_w[layer].max(w);
    }
    let mut column_x = Vec::with_capacity(n_layers);
    let mut x = MARGIN;
    for w in &column_w {
        column_x.push(x);
        x += w + GAP_X;
    }
    let width = x - GAP_X + MARGIN;

    let mut top = f64::INFINITY;
    let mut bottom = f64::NEG_INFINITY;
    for (vertex, &y) in layout.y.iter().enumerate() {
        top = top.min(y - layout.half_height(vertex));
        bottom = bottom.max(y + layout.half_height(vertex));
    }
    let shift = MARGIN - top;
    let height = bottom - top + 2.0 * MARGIN;
    let y = |vertex: usize| layout.y[vertex] + shift;

    let mut out = String::with_capacity(nodes.len() * 400 + layout.edges.len() * 120);
    let (width, height) = (num(width), num(height));
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="task graph">"#
    );
    out.push_str(concat!(
        r#"<defs><marker id="gale-arrow" viewBox="0 0 10 10" refX="10" refY="5" "#,
        r#"markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">"#,
        r##"<path class="arrowhead" d="M0,0L10,5L0,10z" fill="#8a94a6"/></marker></defs>"##,
        r##"<g class="edges" fill="none" stroke="#8a94a6" stroke-width="1.25">"##,
    ));
    for edge in &layout.edges {
        let (from_layer, to_layer) = (layout.layer_of[edge.from], layout.layer_of[edge.to]);
        let mut at = (column_x[from_layer] + widths[edge.from], y(edge.from));
        let class = match edge.kind {
            EdgeKind::Routed => "edge",
            EdgeKind::Direct => "edge direct",
            EdgeKind::Back => "edge back",
        };
        let _ = write!(
            out,
            r#"<path class="{class}" data-from="{}" data-to="{}" marker-end="url(#gale-arrow)" d="M{},{}"#,
            Escaped(&nodes[edge.from].id),
            Escaped(&nodes[edge.to].id),
            num(at.0),
            num(at.1),
        );
        for &bend in &edge.via {
            let layer = layout.layer_of[bend];
            let enter = (column_x[layer], y(bend));
            curve(&mut out, at, enter);
            at = (column_x[layer] + column_w[layer], enter.1);
            let _ = write!(out, "H{}", num(at.0));
        }
        curve(&mut out, at, (column_x[to_layer], y(edge.to)));
        out.push_str("\"/>");
    }
    out.push_str("</g>");

    out.push_str(r##"<g class="nodes" font-family="system-ui, sans-serif" font-size="12">"##);
    for (task, node) in nodes.iter().enumerate() {
        let x = column_x[layout.layer_of[task]];
        let top = y(task) - NODE_H / 2.0;
        render_node(&mut out, node, x, top, widths[task]);
    }
    out.push_str("</g></svg>");
    out
}

fn render_node(out: &mut String, node: &GraphNode, x: f64, top: f64, width: f64) {
    if let Some(href) = &node.href {
        let _ = write!(out, r#"<a href="{}">"#, Escaped(href));
    }
    let state = node.state.as_deref().unwrap_or("none");
    let _ = write!(
        out,
        r#"<g class="node state-{}" data-task="{}" transform="translate({},{})"><title>{}"#,
        ClassName(state),
        Escaped(&node.id),
        num(x),
        num(top),
        Escaped(&node.id),
    );
    if let Some(state) = &node.state {
        let _ = write!(out, " ({})", Escaped(state));
    }
    let _ = write!(
        out,
        r##"</title><rect width="{}" height="{NODE_H}" rx="6" fill="#fff" stroke="#8a94a6"/>"##,
        num(width)
    );
    let id = truncate(&node.id, MAX_ID_CHARS);
    match &node.label {
        Some(label) => {
            let _ = write!(
                out,
                r#"<text class="id" x="{PAD_X}" y="18">{}</text><text class="label" x="{PAD_X}" y="32" font-size="10">{}</text>"#,
                Escaped(&id),
                Escaped(&truncate(label, MAX_LABEL_CHARS)),
            );
        }
        None => {
            let _ = write!(
                out,
                r#"<text class="id" x="{PAD_X}" y="24">{}</text>"#,
                Escaped(&id)
            );
        }
    }
    out.push_str("</g>");
    if node.href.is_some() {
        out.push_str("</a>");
    }
}

/// A cubic curve leaving and arriving horizontally, so edges read left to right.
fn curve(out: &mut String, from: (f64, f64), to: (f64, f64)) {
    let pull = ((to.0 - from.0).abs() / 2.0).max(24.0);
    let _ = write!(
        out,
        "C{},{} {},{} {},{}",
        num(from.0 + pull),
        num(from.1),
        num(to.0 - pull),
        num(to.1),
        num(to.0),
        num(to.1),
    );
}

fn node_width(node: &GraphNode) -> f64 {
    let id_chars = node.id.chars().count().min(MAX_ID_CHARS);
    let label_chars = node
        .label
        .as_deref()
        .map_or(0, |l| l.chars().count().min(MAX_LABEL_CHARS));
    let text = (id_chars as f64 * ID_CHAR_W).max(label_chars as f64 * LABEL_CHAR_W);
    (text + 2.0 * PAD_X).max(MIN_NODE_W).ceil()
}

/// Cuts `text` to at most `max` characters, the last one an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A coordinate rounded to a tenth, without a trailing ".0".
pub(crate) fn num(value: f64) -> Num {
    Num((value * 10.0).round() as i64)
}

/// A number in tenths, displayed as a decimal; formatting it allocates nothing.
pub(crate) struct Num(i64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenths = self.0;
        if tenths < 0 {
            f.write_char('-')?;
        }
        let (whole, tenth) = (tenths.unsigned_abs() / 10, tenths.unsigned_abs() % 10);
        if tenth == 0 {
            write!(f, "{whole}")
        } else {
            write!(f, "{whole}.{tenth}")
        }
    }
}

/// Text escaped for XML content and attribute values.
pub(crate) struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A state made safe as one CSS class-name suffix: anything but ASCII letters,
/// digits, `_` and `-` becomes `_`, so a state can neither break the markup nor
/// add classes.
pub(crate) struct ClassName<'a>(pub &'a str);

impl std::fmt::Display for ClassName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            let safe = c.is_ascii_alphanumeric() || c == '_' || c == '-';
            f.write_char(if safe { c } else { '_' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, needs: &[&str]) -> GraphNode {
        GraphNode {
            id: id.to_owned(),
            needs: needs.iter().map(|&n| n.to_owned()).collect(),
            ..GraphNode::default()
        }
    }

    fn layers(nodes: &[GraphNode]) -> Vec<usize> {
        assign_layers(&resolve_needs(nodes)).0
    }

    /// The SVG must be well-formed enough for a browser: every `<` opens a tag
    /// we know, and the document is one `<svg>` element.
    fn check_well_formed(svg: &str) {
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<a ").count(), svg.matches("</a>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn diamond_layers() {
        let nodes = [
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
        ];
        assert_eq!(layers(&nodes), [0, 1, 1, 2]);
        let svg = svg(&nodes);
        check_well_formed(&svg);
        assert_eq!(svg.matches("<path class=\"edge\"").count(), 4);
    }

    #[test]
    fn longest_path_decides_the_layer() {
        // d needs a directly and through b and c; the longest path wins.
        let nodes = [
            node("d", &["a", "c"]),
            node("c", &["b"]),
            node("b", &["a"]),
            node("a", &[]),
        ];
        assert_eq!(layers(&nodes), [3, 2, 1, 0]);
        let layout = Layout::new(&nodes);
        let a_to_d = layout
            .edges
            .iter()
            .find(|e| (e.from, e.to) == (3, 0))
            .unwrap();
        assert_eq!(a_to_d.kind, EdgeKind::Routed);
        assert_eq!(a_to_d.via.len(), 2, "one bend in each of layers 1 and 2");
    }

    #[test]
    fn escapes_ids_labels_states_and_hrefs() {
        let nodes = [
            GraphNode {
                id: r#"<&>"'"#.to_owned(),
                state: Some("bad\" onload=\"x".to_owned()),
                href: Some("/t?a=1&b=<2>".to_owned()),
                label: Some("<shell>".to_owned()),
                ..GraphNode::default()
            },
            node("b", &[r#"<&>"'"#]),
        ];
        let svg = svg(&nodes);
        check_well_formed(&svg);
        assert!(
            svg.contains("data-task=\"&lt;&amp;&gt;&quot;&#39;\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title>&lt;&amp;&gt;&quot;&#39; (bad&quot; onload=&quot;x)</title>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"node state-bad__onload__x\""), "{svg}");
        assert!(svg.contains("href=\"/t?a=1&amp;b=&lt;2&gt;\""), "{svg}");
        assert!(svg.contains("&lt;shell&gt;"), "{svg}");
        assert!(
            svg.contains("data-from=\"&lt;&amp;&gt;&quot;&#39;\" data-to=\"b\""),
            "{svg}"
        );
        assert!(!svg.contains("<&"));
        assert!(!svg.contains("<shell"));
    }

    #[test]
    fn unknown_and_self_needs_are_ignored() {
        let nodes = [node("a", &["nope", "a"]), node("b", &["a", "ghost", "a"])];
        assert_eq!(layers(&nodes), [0, 1]);
        let svg = svg(&nodes);
        check_well_formed(&svg);
        assert_eq!(svg.matches("<path class=\"edge").count(), 1, "{svg}");
        assert!(!svg.contains("ghost"));
    }

    #[test]
    fn cycles_are_broken() {
        // b -> c -> d -> b, fed by a; and a two-task cycle on its own.
        let nodes = [
            node("a", &[]),
            node("b", &["a", "d"]),
            node("c", &["b"]),
            node("d", &["c"]),
            node("x", &["y"]),
            node("y", &["x"]),
        ];
        let layout = Layout::new(&nodes);
        let back: Vec<(usize, usize)> = layout
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Back)
            .map(|e| (e.from, e.to))
            .collect();
        assert_eq!(back, [(3, 1), (5, 4)]);
        assert_eq!(layout.layer_of[..6], [0, 1, 2, 3, 0, 1]);
        let svg = svg(&nodes);
        check_well_formed(&svg);
        assert_eq!(svg.matches("class=\"edge back\"").count(), 2);
        assert_eq!(svg.matches("<g class=\"node state-").count(), 6);
    }

    #[test]
    fn empty_dag_is_a_small_valid_svg() {
        let svg = svg(&[]);
        check_well_formed(&svg);
        assert!(svg.contains("viewBox=\"0 0 160 40\""));
        assert!(svg.contains("no tasks"));
    }

    #[test]
    fn long_ids_are_cut_with_the_full_id_in_the_title() {
        let id = "a_really_long_task_identifier_that_goes_on";
        let svg = svg(&[node(id, &[])]);
        assert!(svg.contains(&format!("<title>{id}</title>")), "{svg}");
        assert!(
            svg.contains(">a_really_long_task_identifi…</text>"),
            "{svg}"
        );
    }

    #[test]
    fn nodes_have_links_states_and_labels() {
        let nodes = [GraphNode {
            id: "extract".to_owned(),
            state: Some("up_for_retry".to_owned()),
            href: Some("/runs/1/tasks/extract".to_owned()),
            label: Some("shell".to_owned()),
            ..GraphNode::default()
        }];
        let svg = svg(&nodes);
        check_well_formed(&svg);
        assert!(svg.contains(
            "<a href=\"/runs/1/tasks/extract\"><g class=\"node state-up_for_retry\" data-task=\"extract\""
        ));
        assert!(svg.contains("<text class=\"label\""));
        assert!(svg.contains("width=\"") && svg.contains("viewBox=\"0 0 "));
        let plain = self::svg(&[node("extract", &[])]);
        assert!(plain.contains("class=\"node state-none\""));
        assert!(!plain.contains("<a "));
    }

    #[test]
    fn ordering_removes_avoidable_crossings() {
        // Two chains given crosswise: a1 -> b2, a2 -> b1 (b1 listed first).
        let nodes = [
            node("a1", &[]),
            node("a2", &[]),
            node("b1", &["a2"]),
            node("b2", &["a1"]),
        ];
        let layout = Layout::new(&nodes);
        let mut pos = vec![0; layout.layer_of.len()];
        update_positions(&layout.layers, &mut pos);
        assert_eq!(count_crossings(&layout.layers, &pos, &layout.downs), 0);
        // Chains are straight: each task sits level with the one it needs.
        assert_eq!(layout.y[0], layout.y[3]);
        assert_eq!(layout.y[1], layout.y[2]);
    }

    #[test]
    fn crossings_are_counted() {
        // Layer 0: 0, 1; layer 1: 2, 3; segments 0-3 and 1-2 cross once.
        let layers = vec![vec![0, 1], vec![2, 3]];
        let downs = vec![vec![3], vec![2], vec![], vec![]];
        let mut pos = vec![0; 4];
        update_positions(&layers, &mut pos);
        assert_eq!(count_crossings(&layers, &pos, &downs), 1);
        let downs = vec![vec![2, 3], vec![2, 3], vec![], vec![]];
        assert_eq!(count_crossings(&layers, &pos, &downs), 1);
    }

    #[test]
    fn barycenters_sort_stably() {
        let items: Vec<Barycenter> = [(3, 2), (1, 1), (0, 1), (2, 2), (1, 3), (5, 1), (1, 1)]
            .iter()
            .enumerate()
            .map(|(vertex, &(sum, count))| Barycenter { sum, count, vertex })
            .collect();
        let order: Vec<usize> = sort_barycenters(items).iter().map(|b| b.vertex).collect();
        // 0, 1/3, 1, 1, 1, 1.5, 5 with the three 1s in input order.
        assert_eq!(order, [2, 4, 1, 3, 6, 0, 5]);
    }

    #[test]
    fn numbers_are_short() {
        let shown: Vec<String> = [0.0, 12.0, 12.04, 12.06, -3.5, -0.04, 1e6]
            .iter()
            .map(|&v| num(v).to_string())
            .collect();
        assert_eq!(shown, ["0", "12", "12", "12.1", "-3.5", "0", "1000000"]);
    }

    #[test]
    fn spacing_keeps_order_and_gaps() {
        assert_eq!(closest_spaced(&[0.0, 0.0], &[10.0]), [-5.0, 5.0]);
        assert_eq!(closest_spaced(&[0.0, 100.0], &[10.0]), [0.0, 100.0]);
        assert_eq!(closest_spaced(&[3.0], &[]), [3.0]);
        assert_eq!(
            closest_spaced(&[0.0, 0.0, 0.0], &[10.0, 10.0]),
            [-10.0, 0.0, 10.0]
        );
        assert_eq!(
            closest_spaced(&[5.0, 0.0, 50.0], &[10.0, 10.0]),
            [-2.5, 7.5, 50.0]
        );
    }

    #[test]
    fn large_dag_is_deterministic_and_complete() {
        // 2,000 tasks, 4,000 edges: each task needs two earlier ones, chosen by a
        // fixed linear congruential sequence.
        let mut seed: u64 = 42;
        let mut next = |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % bound
        };
        let mut nodes = vec![node("t0", &[]), node("t1", &["t0"])];
        for i in 2..2000 {
            let needs = [
                format!("t{}", i - 1 - next(i.min(50))),
                format!("t{}", next(i)),
            ];
            nodes.push(GraphNode {
                id: format!("t{i}"),
                needs: needs.to_vec(),
                ..GraphNode::default()
            });
        }
        let first = svg(&nodes);
        check_well_formed(&first);
        assert_eq!(first.matches("<g class=\"node state-").count(), 2000);
        assert!(first.matches("<path class=\"edge").count() >= 3900);
        assert_eq!(first, svg(&nodes));
    }

    #[test]
    fn bends_are_capped() {
        // Every task needs the head of a long chain: about n²/2 bends uncapped.
        let n = 400;
        let mut nodes = vec![node("t0", &[])];
        for i in 1..n {
            let prev = format!("t{}", i - 1);
            nodes.push(GraphNode {
                id: format!("t{i}"),
                needs: vec![prev, "t0".to_owned()],
                ..GraphNode::default()
            });
        }
        let layout = Layout::new(&nodes);
        assert!(layout.layer_of.len() - n <= MAX_BENDS);
        assert!(layout.edges.iter().any(|e| e.kind == EdgeKind::Direct));
        check_well_formed(&svg(&nodes));
    }
}
