//! Mermaid `flowchart TB`, one subgraph per diagram.

use crate::model::{Diagram, NodeKind};
use std::fmt::Write;

/// Mermaid labels are quoted; quotes and angle brackets become entities.
fn escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

pub fn render(diagrams: &[Diagram]) -> String {
    let mut out = String::from("flowchart TB\n");
    for d in diagrams {
        let _ = writeln!(
            out,
            "  subgraph {}[\"{}\"]\n    direction TB",
            d.id,
            escape(&d.title)
        );
        for n in &d.nodes {
            let label = n
                .label
                .iter()
                .map(|l| escape(l))
                .collect::<Vec<_>>()
                .join("<br/>");
            let (open, close) = match n.kind {
                NodeKind::Add => ("((", "))"),
                NodeKind::Input | NodeKind::Output => ("([", "])"),
                _ => ("[", "]"),
            };
            let _ = writeln!(out, "    {}{open}\"{label}\"{close}", n.id);
        }
        for e in &d.edges {
            let _ = writeln!(out, "    {} --> {}", d.nodes[e.from].id, d.nodes[e.to].id);
        }
        out.push_str("  end\n");
    }
    out
}
