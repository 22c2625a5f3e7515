//! The graph's layout and drawing, without I/O.

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
