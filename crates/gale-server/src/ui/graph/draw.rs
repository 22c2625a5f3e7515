//! Drawing a layout as SVG text: nodes, edge curves, and the escaping and
//! number formatting that keep the output safe and compact.

use std::fmt::Write;

use super::*;

pub(super) fn render(nodes: &[GraphNode], layout: &Layout) -> String {
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

pub(super) fn render_node(out: &mut String, node: &GraphNode, x: f64, top: f64, width: f64) {
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
pub(super) fn curve(out: &mut String, from: (f64, f64), to: (f64, f64)) {
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

pub(super) fn node_width(node: &GraphNode) -> f64 {
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
