//! Mermaid `flowchart TB`, one subgraph per diagram. Node and subgraph ids are generated
//! (`d0`, `d0n3`), never taken from the model; every label is double-quoted and escaped by
//! [`mermaid_label`].

use crate::escape::mermaid_label as escape;
use crate::model::{Diagram, NodeKind};
use std::fmt::Write;

/// The Mermaid id of node `node` of diagram `diagram`.
fn node_id(diagram: usize, node: usize) -> String {
    format!("d{diagram}n{node}")
}

pub fn render(diagrams: &[Diagram]) -> String {
    let mut out = String::from("flowchart TB\n");
    for (k, d) in diagrams.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph d{k}[\"{}\"]\n    direction TB",
            escape(&d.title)
        );
        for (i, n) in d.nodes.iter().enumerate() {
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
            let _ = writeln!(out, "    {}{open}\"{label}\"{close}", node_id(k, i));
        }
        for e in &d.edges {
            let _ = writeln!(out, "    {} --> {}", node_id(k, e.from), node_id(k, e.to));
        }
        out.push_str("  end\n");
    }
    out
}
