//! The layered layout: layers by longest path, bend points for long edges,
//! ordering by barycenter sweeps, vertical placement. Positions only; no
//! drawing.

use std::collections::{HashMap, VecDeque};

use super::*;

/// Why an edge is drawn the way it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EdgeKind {
    /// Runs left to right through a bend point in every layer it crosses.
    Routed,
    /// Spans layers but did not fit the bend budget: one curve, which may cross
    /// tasks.
    Direct,
    /// Closes a cycle, which validation should have rejected; it was left out
    /// of the layering and points right to left.
    Back,
}

pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    /// Bend points, one per layer strictly between `from` and `to`.
    pub(super) via: Vec<usize>,
    pub(super) kind: EdgeKind,
}

/// The layered graph: the tasks (`0..n_tasks`) plus one bend point per layer a
/// routed edge crosses (`n_tasks..`), every segment joining adjacent layers.
pub(super) struct Layout {
    pub(super) n_tasks: usize,
    pub(super) layer_of: Vec<usize>,
    /// Neighbours one layer to the left.
    pub(super) ups: Vec<Vec<usize>>,
    /// Neighbours one layer to the right.
    pub(super) downs: Vec<Vec<usize>>,
    pub(super) layers: Vec<Vec<usize>>,
    pub(super) edges: Vec<Edge>,
    /// Vertical centre of each vertex.
    pub(super) y: Vec<f64>,
}

impl Layout {
    pub(super) fn new(nodes: &[GraphNode]) -> Layout {
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

    pub(super) fn add_vertex(&mut self, layer: usize) -> usize {
        self.layer_of.push(layer);
        self.ups.push(Vec::new());
        self.downs.push(Vec::new());
        self.layer_of.len() - 1
    }

    pub(super) fn link(&mut self, from: usize, to: usize) {
        self.downs[from].push(to);
        self.ups[to].push(from);
    }

    pub(super) fn add_edges(&mut self, preds: &[Vec<usize>], topo_rank: &[usize]) {
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
    pub(super) fn order(&mut self) {
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
    pub(super) fn half_height(&self, vertex: usize) -> f64 {
        if vertex < self.n_tasks {
            NODE_H / 2.0
        } else {
            0.0
        }
    }

    /// Sets vertical positions: each layer is packed, then each vertex is pulled
    /// towards its neighbours in the layer just placed, keeping the order and the
    /// minimum gaps.
    pub(super) fn place(&mut self) {
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
pub(super) fn resolve_needs(nodes: &[GraphNode]) -> Vec<Vec<usize>> {
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
pub(super) fn assign_layers(preds: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
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

pub(super) fn update_positions(layers: &[Vec<usize>], pos: &mut [usize]) {
    for layer in layers {
        for (i, &vertex) in layer.iter().enumerate() {
            pos[vertex] = i;
        }
    }
}

/// Sorts one layer by the mean position of each vertex's neighbours in the
/// adjacent layer. Vertices without such neighbours keep their slots; ties keep
/// their current order, so the result is deterministic.
pub(super) fn reorder(layer: &mut [usize], pos: &mut [usize], neighbours: &[Vec<usize>]) {
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
pub(super) struct Barycenter {
    pub(super) sum: usize,
    pub(super) count: usize,
    pub(super) vertex: usize,
}

impl Barycenter {
    pub(super) fn is_before(self, other: Barycenter) -> bool {
        self.sum * other.count < other.sum * self.count
    }
}

/// Barycenters in each of these fractions of a position share a bucket.
pub(super) const BUCKETS_PER_SLOT: usize = 4;

/// A stable sort in about linear time: a counting sort into buckets a quarter
/// position wide, then an insertion sort, which only has to fix the order within
/// buckets. (Sorting is the hot spot of the layout, and a comparison sort is
/// several times slower in unoptimised builds.)
pub(super) fn sort_barycenters(items: Vec<Barycenter>) -> Vec<Barycenter> {
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
pub(super) fn count_crossings(layers: &[Vec<usize>], pos: &[usize], downs: &[Vec<usize>]) -> u64 {
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
pub(super) fn closest_spaced(targets: &[f64], gaps: &[f64]) -> Vec<f64> {
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
