//! Drawings of NASNet-search-space networks (AmoebaNet-A and relatives).
//!
//! Owns: turning a [`NetworkSpec`] into pictures and listings: the normal and the reduction
//! cell (inputs h0 = previous cell and h1 = the one before, every combination's two operations
//! and their sum, the output concat) and a network overview (stem, stacks, reduction cells,
//! widths and sizes per stage), as plain text, JSON, Graphviz DOT, Mermaid or SVG. The SVG is
//! laid out here (layered, no Graphviz needed).
//!
//! Does not own: reading modules or extracting the spec (crate `nasnet-genotype`), running
//! anything, or rasterising (use any SVG viewer or `rsvg-convert`).

mod dot;
mod layout;
mod mermaid;
mod model;
mod svg;
mod text;

pub use model::{cell_diagram, overview_diagram, Diagram, Edge, Node, NodeKind};
use nasnet_genotype::{CellKind, Genotype, NetworkSpec};

/// Output formats of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Equations per cell and a table of the network.
    Text,
    /// The drawing model (nodes and edges of every diagram) plus the spec.
    Json,
    /// Graphviz DOT, one cluster per diagram.
    Dot,
    /// A standalone SVG with the three diagrams side by side.
    Svg,
    /// Mermaid `flowchart`, one subgraph per diagram.
    Mermaid,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "dot" | "gv" => Ok(Format::Dot),
            "svg" => Ok(Format::Svg),
            "mermaid" | "mmd" => Ok(Format::Mermaid),
            other => Err(format!(
                "unknown diagram format {other:?} (text, json, dot, svg, mermaid)"
            )),
        }
    }
}

/// The three diagrams of a network: normal cell, reduction cell, overview.
pub fn diagrams(spec: &NetworkSpec) -> Vec<Diagram> {
    let name = spec.genotype.name.as_deref();
    vec![
        cell_diagram(&spec.genotype.normal, CellKind::Normal, name),
        cell_diagram(&spec.genotype.reduction, CellKind::Reduction, name),
        overview_diagram(spec),
    ]
}

/// Renders the normal cell, the reduction cell and the network overview in `format`.
pub fn render(spec: &NetworkSpec, format: Format) -> String {
    let all = diagrams(spec);
    match format {
        Format::Text => text::network(spec),
        Format::Json => json(spec, &all),
        Format::Dot => dot::render(&all),
        Format::Svg => svg::render(&all),
        Format::Mermaid => mermaid::render(&all),
    }
}

/// Renders one cell kind of a genotype alone (stem cells are reduction cells).
pub fn render_cell(genotype: &Genotype, kind: CellKind, format: Format) -> String {
    let (cell, name) = (genotype.cell(kind), genotype.name.as_deref());
    let d = cell_diagram(cell, kind, name);
    match format {
        Format::Text => text::cell(cell, kind, name),
        Format::Json => serde_json::to_string_pretty(&d).unwrap_or_default(),
        Format::Dot => dot::render(std::slice::from_ref(&d)),
        Format::Svg => svg::render(std::slice::from_ref(&d)),
        Format::Mermaid => mermaid::render(std::slice::from_ref(&d)),
    }
}

fn json(spec: &NetworkSpec, all: &[Diagram]) -> String {
    let value = serde_json::json!({ "spec": spec, "diagrams": all });
    // Plain data with string keys always serialises.
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
