//! Graphviz DOT: one `cluster_*` subgraph per diagram. Every ID and label is written as a
//! double-quoted DOT string, escaped by [`dot_string`].

use crate::escape::dot_string as escape;
use crate::model::{Diagram, NodeKind};
use std::fmt::Write;

/// Shape and fill of a node kind (shared palette with the SVG).
pub(crate) fn style(kind: NodeKind) -> (&'static str, &'static str) {
    match kind {
        NodeKind::Input => ("box", "#dbeafe"),
        NodeKind::Separable => ("box", "#fde2c8"),
        NodeKind::Pool => ("box", "#d9f2d9"),
        NodeKind::Identity => ("box", "#eeeeee"),
        NodeKind::Conv => ("box", "#e9d8f5"),
        NodeKind::Add => ("ellipse", "#ffffff"),
        NodeKind::Output => ("box", "#fff3b0"),
        NodeKind::Stage => ("box", "#dbeafe"),
        NodeKind::ReductionStage => ("box", "#fde2c8"),
    }
}

pub fn render(diagrams: &[Diagram]) -> String {
    let mut out = String::from("digraph nasnet {\n  rankdir=TB;\n  node [fontname=\"monospace\", style=\"rounded,filled\"];\n");
    for d in diagrams {
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{}\" {{\n    label=\"{}\";",
            escape(&d.id),
            escape(&d.title)
        );
        for n in &d.nodes {
            let (shape, fill) = style(n.kind);
            let label = n
                .label
                .iter()
                .map(|l| escape(l))
                .collect::<Vec<_>>()
                .join("\\n");
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{label}\", shape={shape}, fillcolor=\"{fill}\"];",
                escape(&n.id)
            );
        }
        for e in &d.edges {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\";",
                escape(&d.nodes[e.from].id),
                escape(&d.nodes[e.to].id)
            );
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}
