//! Drawings of NASNet-search-space networks (AmoebaNet-A and relatives).
//!
//! Owns: turning a [`NetworkSpec`] into pictures and listings: the normal and the reduction
//! cell (inputs h0 = previous cell and h1 = the one before, every combination's two operations
//! and their sum, the output concat) and a network overview (stem, stacks, reduction cells,
//! widths and sizes per stage), as plain text, JSON, Graphviz DOT, Mermaid or SVG. The SVG is
//! laid out here (layered, no Graphviz needed).
//!
//! Names in the spec (cell scopes, the genotype name) come from files, so every format
//! escapes them for itself (`escape`) and node ids are generated, never taken from names.
//! What is drawn is capped ([`MAX_DRAWN_OPERATIONS`], [`MAX_DRAWN_CELLS`],
//! [`MAX_DRAWN_NAME_CHARS`]); [`try_render`] refuses a spec beyond a cap with a [`DrawError`].
//!
//! Does not own: reading modules or extracting the spec (crate `nasnet-genotype`), running
//! anything, or rasterising (use any SVG viewer or `rsvg-convert`).

mod dot;
mod escape;
mod layout;
mod mermaid;
mod model;
mod svg;
mod text;

pub use model::{cell_diagram, overview_diagram, Diagram, Edge, Node, NodeKind};
use nasnet_genotype::{CellKind, CellSpec, Genotype, NetworkSpec};

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

/// The three diagrams of a network: normal cell, reduction cell, overview; or, for a
/// genotype with one cell type (PNASNet-5), that cell drawn once and the overview (not
/// capped: call [`check`] first on a spec read from a file).
pub fn diagrams(spec: &NetworkSpec) -> Vec<Diagram> {
    let name = spec.genotype.name.as_deref();
    if spec.genotype.has_one_cell_type() {
        let mut cell = cell_diagram(&spec.genotype.normal, CellKind::Normal, name);
        cell.title = model::one_cell_title(name);
        return vec![cell, overview_diagram(spec)];
    }
    vec![
        cell_diagram(&spec.genotype.normal, CellKind::Normal, name),
        cell_diagram(&spec.genotype.reduction, CellKind::Reduction, name),
        overview_diagram(spec),
    ]
}

/// Operations per cell that are drawn or listed at most: 20 times a real NASNet-family cell
/// (5 combinations, 10 operations). Layout time and output size grow with the square of a
/// cell's operations (a long edge gets a slot in every layer it passes), so the cap keeps
/// every drawing small and fast.
pub const MAX_DRAWN_OPERATIONS: usize = 200;

/// Cells of a network that are drawn or listed at most (AmoebaNet-A N18 has 22), and the
/// longest list of reduction indices.
pub const MAX_DRAWN_CELLS: usize = 1000;

/// The longest cell scope or genotype name that is drawn, in characters (real ones are
/// like `reduction_cell_1` and `amoeba_net_a`).
pub const MAX_DRAWN_NAME_CHARS: usize = 256;

/// Why a spec is not drawn: what is over which cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawError {
    message: String,
}

impl std::fmt::Display for DrawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DrawError {}

fn over_cap(what: String, cap: usize, cap_name: &str, usual: &str) -> DrawError {
    DrawError {
        message: format!(
            "{what}, more than the {cap} that are drawn at most ({cap_name}; {usual}); \
             this is not a NASNet-family network the tool can draw"
        ),
    }
}

/// Checks one cell kind against [`MAX_DRAWN_OPERATIONS`].
pub fn check_cell(cell: &CellSpec, kind: CellKind) -> Result<(), DrawError> {
    let n = cell.operations.len().max(cell.hiddenstate_indices.len());
    if n > MAX_DRAWN_OPERATIONS || cell.used_hiddenstates.len() > MAX_DRAWN_OPERATIONS + 2 {
        let which = if kind == CellKind::Normal {
            "normal"
        } else {
            "reduction"
        };
        return Err(over_cap(
            format!("the {which} cell has {n} operations"),
            MAX_DRAWN_OPERATIONS,
            "MAX_DRAWN_OPERATIONS",
            "a real cell has 10",
        ));
    }
    Ok(())
}

/// Checks a genotype's cells and name against the caps.
pub fn check_genotype(genotype: &Genotype) -> Result<(), DrawError> {
    check_cell(&genotype.normal, CellKind::Normal)?;
    check_cell(&genotype.reduction, CellKind::Reduction)?;
    if let Some(name) = &genotype.name {
        check_name(name, "the genotype name")?;
    }
    Ok(())
}

fn check_name(name: &str, what: &str) -> Result<(), DrawError> {
    let chars = name.chars().count();
    if chars > MAX_DRAWN_NAME_CHARS {
        return Err(over_cap(
            format!("{what} has {chars} characters"),
            MAX_DRAWN_NAME_CHARS,
            "MAX_DRAWN_NAME_CHARS",
            "real cell scopes have a few dozen characters at most",
        ));
    }
    Ok(())
}

/// Checks everything [`render`] draws against the caps, once, before anything is drawn.
pub fn check(spec: &NetworkSpec) -> Result<(), DrawError> {
    check_genotype(&spec.genotype)?;
    let cells = spec.cells.len().max(spec.reduction_indices.len());
    if cells > MAX_DRAWN_CELLS {
        return Err(over_cap(
            format!("the network has {cells} cells"),
            MAX_DRAWN_CELLS,
            "MAX_DRAWN_CELLS",
            "AmoebaNet-A N18 has 22",
        ));
    }
    for cell in &spec.cells {
        check_name(&cell.scope, "a cell scope")?;
    }
    Ok(())
}

/// Renders the normal cell, the reduction cell and the network overview in `format`, or
/// says which cap ([`check`]) the spec is over.
pub fn try_render(spec: &NetworkSpec, format: Format) -> Result<String, DrawError> {
    check(spec)?;
    Ok(render_unchecked(spec, format))
}

/// Renders one cell kind of a genotype alone (stem cells are reduction cells), or says which
/// cap ([`check_genotype`]) it is over.
pub fn try_render_cell(
    genotype: &Genotype,
    kind: CellKind,
    format: Format,
) -> Result<String, DrawError> {
    check_genotype(genotype)?;
    Ok(render_cell_unchecked(genotype, kind, format))
}

/// [`try_render`] for callers that cannot handle an error: a spec over a cap comes out as a
/// short note in the format's own comment or text syntax instead of a drawing (nothing of
/// the spec is drawn then). Prefer [`try_render`].
pub fn render(spec: &NetworkSpec, format: Format) -> String {
    try_render(spec, format).unwrap_or_else(|e| refusal(&e, format))
}

/// [`try_render_cell`] with the same fallback as [`render`].
pub fn render_cell(genotype: &Genotype, kind: CellKind, format: Format) -> String {
    try_render_cell(genotype, kind, format).unwrap_or_else(|e| refusal(&e, format))
}

/// A well-formed document of `format` that says why nothing was drawn.
fn refusal(error: &DrawError, format: Format) -> String {
    let message = format!("not drawn: {error}");
    match format {
        Format::Text => format!("{}\n", escape::text_line(&message)),
        Format::Json => serde_json::json!({ "error": message }).to_string(),
        Format::Dot => format!("digraph nasnet {{\n  label=\"{}\";\n}}\n", escape::dot_string(&message)),
        Format::Svg => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"40\"><text x=\"10\" y=\"25\">{}</text></svg>\n",
            escape::xml(&message)
        ),
        Format::Mermaid => format!("flowchart TB\n  note[\"{}\"]\n", escape::mermaid_label(&message)),
    }
}

fn render_unchecked(spec: &NetworkSpec, format: Format) -> String {
    let all = diagrams(spec);
    match format {
        Format::Text => text::network(spec),
        Format::Json => json(spec, &all),
        Format::Dot => dot::render(&all),
        Format::Svg => svg::render(&all),
        Format::Mermaid => mermaid::render(&all),
    }
}

fn render_cell_unchecked(genotype: &Genotype, kind: CellKind, format: Format) -> String {
    let (cell, name) = (genotype.cell(kind), genotype.name.as_deref());
    let one_type = genotype.has_one_cell_type();
    // The one cell of a one-cell-type genotype is drawn as it is written, without strides.
    let kind = if one_type { CellKind::Normal } else { kind };
    let mut d = cell_diagram(cell, kind, name);
    if one_type {
        d.title = model::one_cell_title(name);
    }
    match format {
        Format::Text if one_type => text::cell(cell, kind, name).replacen(
            &escape::text_line(&model::cell_title(kind, name)),
            &escape::text_line(&d.title),
            1,
        ),
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
