//! The drawing model shared by every format: a small directed graph of labelled nodes, built
//! from a cell spec or from the network layout.

use nasnet_genotype::{CellKind, CellLayout, CellSpec, NetworkSpec, Operation};
use serde::Serialize;

/// What a node stands for; decides its shape and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// h0 / h1, the cell inputs.
    Input,
    Separable,
    Pool,
    Identity,
    Conv,
    /// A combination's sum (a new hidden state).
    Add,
    /// The output concat.
    Output,
    /// Network overview: image, stem, cell groups, head.
    Stage,
    /// Network overview: a reduction or stem cell.
    ReductionStage,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Unique within the whole rendering: the diagram's id, `_`, a fixed word and maybe a
    /// number (`normal_op3`, `network_stage2`). Generated here, never taken from a name read
    /// from a file, so every format can use it as an identifier as it is.
    pub id: String,
    /// Label lines.
    pub label: Vec<String>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
}

/// One diagram; nodes are in topological order (every edge goes from a lower to a higher index).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagram {
    pub id: String,
    pub title: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Diagram {
    fn new(id: &'static str, title: String) -> Self {
        Diagram {
            id: id.to_string(),
            title,
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// Adds a node whose id is `<diagram>_<word><number>`: only fixed words and numbers, so
    /// ids are safe identifiers in DOT and Mermaid whatever the labels hold.
    fn push(
        &mut self,
        word: &'static str,
        number: Option<usize>,
        label: Vec<String>,
        kind: NodeKind,
    ) -> usize {
        let id = match number {
            Some(n) => format!("{}_{word}{n}", self.id),
            None => format!("{}_{word}", self.id),
        };
        self.nodes.push(Node { id, label, kind });
        self.nodes.len() - 1
    }

    fn link(&mut self, from: usize, to: usize) {
        self.edges.push(Edge { from, to });
    }
}

fn op_kind(op: Operation) -> NodeKind {
    match op {
        Operation::Separable { .. } => NodeKind::Separable,
        Operation::AvgPool { .. } | Operation::MaxPool { .. } => NodeKind::Pool,
        Operation::Identity => NodeKind::Identity,
        Operation::Conv1x1 | Operation::Factorized { .. } | Operation::Conv { .. } => {
            NodeKind::Conv
        }
    }
}

/// Cell title: `Normal cell` / `Reduction cell (stride 2 on h0, h1)`, with the genotype name.
pub fn cell_title(kind: CellKind, name: Option<&str>) -> String {
    let base = match kind {
        CellKind::Normal => "Normal cell".to_string(),
        CellKind::Stem | CellKind::Reduction => "Reduction cell (stride 2 on h0, h1)".to_string(),
    };
    match name {
        Some(n) => format!("{}: {base}", display_name(n)),
        None => base,
    }
}

/// Title of the one cell of a one-cell-type genotype (PNASNet-5), drawn once.
pub fn one_cell_title(name: Option<&str>) -> String {
    let base = "Cell (the one cell type; also run with stride 2 on h0, h1: the stem cells and \
                each reduction)";
    match name {
        Some(n) => format!("{}: {base}", display_name(n)),
        None => base.to_string(),
    }
}

/// `amoeba_net_a` -> `AmoebaNet-A`, `nasnet_a` -> `NASNet-A`, `pnasnet_5` -> `PNASNet-5`;
/// others unchanged.
pub fn display_name(name: &str) -> String {
    let upper = |s: &str| s.to_uppercase();
    if let Some(v) = name.strip_prefix("amoeba_net_") {
        format!("AmoebaNet-{}", upper(v))
    } else if let Some(v) = name.strip_prefix("pnasnet_") {
        format!("PNASNet-{}", upper(v))
    } else if let Some(v) = name.strip_prefix("nasnet_") {
        format!("NASNet-{}", upper(v))
    } else {
        name.to_string()
    }
}

/// Inputs h0/h1, each operation, each sum and the output concat.
pub fn cell_diagram(cell: &CellSpec, kind: CellKind, name: Option<&str>) -> Diagram {
    let id = if kind == CellKind::Normal {
        "normal"
    } else {
        "reduction"
    };
    let strided = kind != CellKind::Normal;
    let mut d = Diagram::new(id, cell_title(kind, name));
    let mut states = vec![
        d.push(
            "h",
            Some(0),
            vec!["h0".into(), "previous cell".into()],
            NodeKind::Input,
        ),
        d.push(
            "h",
            Some(1),
            vec!["h1".into(), "cell before".into()],
            NodeKind::Input,
        ),
    ];
    for (j, pair) in cell.operations.chunks(2).enumerate() {
        let mut ops = Vec::with_capacity(2);
        for (side, op) in pair.iter().enumerate() {
            let i = 2 * j + side;
            let input = cell.hiddenstate_indices.get(i).copied().unwrap_or(0);
            let stride = if strided && input < 2 { " /2" } else { "" };
            let label = vec![format!("{}{stride}", op.short_label())];
            let node = d.push("op", Some(i), label, op_kind(*op));
            if let Some(&from) = states.get(input) {
                d.link(from, node);
            }
            ops.push(node);
        }
        let add = d.push(
            "h",
            Some(j + 2),
            vec![format!("+ h{}", j + 2)],
            NodeKind::Add,
        );
        for op in ops {
            d.link(op, add);
        }
        states.push(add);
    }
    let concat = cell.concat_states();
    let list: Vec<String> = concat.iter().map(|j| format!("h{j}")).collect();
    let out = d.push(
        "out",
        None,
        vec!["concat".into(), list.join(" ")],
        NodeKind::Output,
    );
    for j in concat {
        if let Some(&from) = states.get(j) {
            d.link(from, out);
        }
    }
    d
}

/// `HxWxC`.
pub fn shape(hw: [usize; 2], c: usize) -> String {
    format!("{}x{}x{}", hw[0], hw[1], c)
}

/// Image, stem, stem cells, stacks of normal cells, reduction cells, head.
pub fn overview_diagram(spec: &NetworkSpec) -> Diagram {
    let title = match &spec.genotype.name {
        Some(n) => format!(
            "{} network (N={}, F={})",
            display_name(n),
            spec.num_cells,
            spec.filters
        ),
        None => format!("Network (N={}, F={})", spec.num_cells, spec.filters),
    };
    let mut d = Diagram::new("network", title);
    let [h, w] = spec.image_size;
    let mut last = d.push(
        "image",
        None,
        vec!["image".into(), format!("{h}x{w}x3")],
        NodeKind::Stage,
    );
    let stem_hw = spec.cells.first().map_or([0, 0], |c| c.input_hw);
    let stem = d.push(
        "stem",
        None,
        vec!["stem conv 3x3 /2".into(), shape(stem_hw, spec.stem_filters)],
        NodeKind::Stage,
    );
    d.link(last, stem);
    last = stem;
    for (k, group) in groups(&spec.cells).into_iter().enumerate() {
        let node = stage_node(&mut d, k, group);
        d.link(last, node);
        last = node;
    }
    let head = d.push(
        "pool",
        None,
        vec![
            "ReLU, global avg pool".into(),
            format!("{} features", spec.num_features),
        ],
        NodeKind::Stage,
    );
    d.link(last, head);
    if let Some(classes) = spec.num_classes {
        let fc = d.push(
            "fc",
            None,
            vec!["FC".into(), format!("{classes} logits")],
            NodeKind::Stage,
        );
        d.link(head, fc);
    }
    d
}

/// Consecutive cells of one kind with the same output, drawn as one stage.
fn groups(cells: &[CellLayout]) -> Vec<&[CellLayout]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=cells.len() {
        let split = i == cells.len()
            || cells[i].kind != CellKind::Normal
            || cells[start].kind != CellKind::Normal
            || cells[i].output_hw != cells[start].output_hw;
        if split {
            out.push(&cells[start..i]);
            start = i;
        }
    }
    out
}

fn stage_node(d: &mut Diagram, number: usize, group: &[CellLayout]) -> usize {
    let (first, last) = (&group[0], &group[group.len() - 1]);
    let out = shape(last.output_hw, last.output_channels);
    let (title, kind) = match (first.kind, group.len()) {
        (CellKind::Normal, 1) => (format!("{} (normal)", first.scope), NodeKind::Stage),
        (CellKind::Normal, n) => (
            format!("{} .. {} ({n} normal)", first.scope, last.scope),
            NodeKind::Stage,
        ),
        (CellKind::Stem, _) => (
            format!("{} (stem, stride 2)", first.scope),
            NodeKind::ReductionStage,
        ),
        (CellKind::Reduction, _) => (
            format!("{} (stride 2)", first.scope),
            NodeKind::ReductionStage,
        ),
    };
    d.push(
        "stage",
        Some(number),
        vec![title, format!("width {}, out {out}", first.filters)],
        kind,
    )
}
