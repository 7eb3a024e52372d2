//! What the inference graph's NodeDefs say: per cell, the operation of every
//! `comb_iter_i/{left,right}` (op types, kernels, strides, dilations), the state it reads, the
//! states the output concat takes, where the cell's inputs come from; plus the batch-norm
//! epsilon, the input scaling and the image size. Attributes stripped because they equal their
//! OpDef default are filled in from `meta_info_def.stripped_op_list`.

use crate::conventions::{conventions, join};
use crate::error::GenotypeError;
use crate::spec::{CellKind, Operation, PrevAdjust};
use crate::validate::limits::{MAX_CELLS, MAX_OPERATIONS_PER_CELL};
use crate::variables::parse_cell_scope;
use std::collections::{BTreeMap, HashMap};
use tf_proto::tensorflow::attr_value::Value;
use tf_proto::tensorflow::{collection_def, AttrValue, MetaGraphDef, NodeDef, TensorProto};
use tf_proto::tensorflow_hub::{ImageModuleInfo, ModuleAttachment};
use tf_proto::Message;

/// Where a cell input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The stem conv's batch norm.
    Stem,
    /// The `cell_output/concat` of the named cell.
    Cell(String),
}

/// One `comb_iter_i/{left,right}` as the graph builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphBranch {
    pub op: Operation,
    /// Hidden-state index of the input.
    pub input: usize,
    pub stride: usize,
    /// A 1x1 conv + BN after a pool (input width differs from the cell's).
    pub projection: bool,
}

/// One cell as the graph builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphCell {
    pub scope: String,
    pub kind: CellKind,
    pub net: Source,
    /// The `prev_layer` source; `None` when no operation or the concat reads h1.
    pub prev: Option<Source>,
    pub prev_adjust: PrevAdjust,
    pub branches: Vec<GraphBranch>,
    /// States concatenated into the output, in concat order.
    pub concat: Vec<usize>,
    /// The concat's static output shape [h, w, c] if the graph records it.
    pub output_shape: Option<[usize; 3]>,
}

/// Graph facts outside the cells.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphFacts {
    /// Cells in network order (following each cell's `net` input from the stem).
    pub cells: Vec<GraphCell>,
    pub batch_norm_epsilon: f32,
    /// `(scale, offset)` of the ops between the images and the stem convolution, if found.
    pub input_scaling: Option<(f32, f32)>,
    /// From the `image_module_info` attachment.
    pub attachment_image_size: Option<[usize; 2]>,
    /// From the signature input or the `hub_input/images` placeholder.
    pub input_image_size: Option<[usize; 2]>,
    /// Stem conv output channels.
    pub stem_filters: Option<usize>,
}

/// The graph's nodes by name (without any `module/` prefix), with op defaults.
pub struct Graph<'a> {
    prefix: String,
    nodes: HashMap<&'a str, &'a NodeDef>,
    defaults: HashMap<(&'a str, &'a str), &'a AttrValue>,
    meta: &'a MetaGraphDef,
}

const VARIABLE_OPS: [&str; 6] = [
    "VarHandleOp",
    "VariableV2",
    "Variable",
    "ReadVariableOp",
    "Const",
    "Identity",
];

impl<'a> Graph<'a> {
    /// Indexes the graph; finds the `module/`-style name prefix from the first cell's concat.
    pub fn new(meta: &'a MetaGraphDef) -> Result<Graph<'a>, GenotypeError> {
        let nodes_list = meta
            .graph_def
            .as_ref()
            .map(|g| g.node.as_slice())
            .unwrap_or_default();
        let c = conventions();
        let first_cells = [CellKind::Stem, CellKind::Normal]
            .map(|kind| c.cell_output_concat(&c.cell_scope(kind, 0)));
        let prefix = nodes_list
            .iter()
            .find_map(|n| {
                let at = first_cells
                    .iter()
                    .find_map(|cell| n.name.find(cell.as_str()))?;
                let prefix = &n.name[..at];
                (prefix.is_empty() || prefix.ends_with('/')).then(|| prefix.to_string())
            })
            .ok_or_else(|| {
                GenotypeError::graph(&first_cells[1], "not in the graph: no NASNet-space cells")
            })?;
        let nodes = nodes_list
            .iter()
            .filter_map(|n| n.name.strip_prefix(prefix.as_str()).map(|s| (s, n)))
            .collect();
        let mut defaults = HashMap::new();
        for op in meta
            .meta_info_def
            .iter()
            .flat_map(|m| m.stripped_op_list.iter())
            .flat_map(|l| &l.op)
        {
            for attr in &op.attr {
                if let Some(v) = &attr.default_value {
                    defaults.insert((op.name.as_str(), attr.name.as_str()), v);
                }
            }
        }
        Ok(Graph {
            prefix,
            nodes,
            defaults,
            meta,
        })
    }

    pub fn node(&self, name: &str) -> Option<&'a NodeDef> {
        self.nodes.get(name).copied()
    }

    /// The node's attr, or the OpDef default when the exporter stripped it.
    pub fn attr(&self, node: &NodeDef, name: &str) -> Option<&'a AttrValue> {
        let own = self
            .nodes
            .get(self.local(&node.name))
            .and_then(|n| n.attr.get(name));
        own.or_else(|| self.defaults.get(&(node.op.as_str(), name)).copied())
    }

    fn ints(&self, node: &NodeDef, name: &str) -> Option<Vec<i64>> {
        match &self.attr(node, name)?.value {
            Some(Value::List(l)) => Some(l.i.clone()),
            _ => None,
        }
    }

    fn string(&self, node: &NodeDef, name: &str) -> Option<String> {
        match &self.attr(node, name)?.value {
            Some(Value::S(s)) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    fn local<'n>(&self, name: &'n str) -> &'n str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }

    /// Data inputs (no control inputs), as local node names without the output index.
    pub fn inputs(&self, node: &NodeDef) -> Vec<String> {
        node.input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(|i| {
                let name = i
                    .rsplit_once(':')
                    .filter(|(_, idx)| idx.chars().all(|c| c.is_ascii_digit()))
                    .map_or(i.as_str(), |(n, _)| n);
                self.local(name).to_string()
            })
            .collect()
    }

    /// The shape of a variable a node reads through `ReadVariableOp`/`Identity`.
    fn variable_shape(&self, name: &str) -> Option<Vec<usize>> {
        let mut name = name.to_string();
        for _ in 0..8 {
            let node = self.node(&name)?;
            match node.op.as_str() {
                "VarHandleOp" | "VariableV2" | "Variable" => {
                    return shape_attr(self.attr(node, "shape")?)
                }
                "ReadVariableOp" | "Identity" | "Enter" => {
                    name = self.inputs(node).into_iter().next()?
                }
                _ => {
                    let shapes = self.attr(node, "_output_shapes")?;
                    return match &shapes.value {
                        Some(Value::List(l)) => l.shape.first().and_then(|s| {
                            shape_attr(&AttrValue {
                                value: Some(Value::Shape(s.clone())),
                            })
                        }),
                        _ => None,
                    };
                }
            }
        }
        None
    }

    fn output_shape(&self, node: &NodeDef) -> Option<Vec<i64>> {
        match &self.attr(node, "_output_shapes")?.value {
            Some(Value::List(l)) => l
                .shape
                .first()
                .map(|s| s.dim.iter().map(|d| d.size).collect()),
            _ => None,
        }
    }
}

fn shape_attr(v: &AttrValue) -> Option<Vec<usize>> {
    match &v.value {
        Some(Value::Shape(s)) if !s.unknown_rank => {
            s.dim.iter().map(|d| usize::try_from(d.size).ok()).collect()
        }
        _ => None,
    }
}

/// The value of a float32 scalar (or one-element) constant; `None` for any other dtype or
/// shape (a per-channel constant is not a scalar scaling).
fn scalar_f32(t: &TensorProto) -> Option<f32> {
    if t.dtype != tf_proto::tensorflow::DataType::DtFloat as i32 {
        return None;
    }
    let elements: i64 = t
        .tensor_shape
        .as_ref()
        .map_or(1, |s| s.dim.iter().map(|d| d.size).product());
    if elements != 1 {
        return None;
    }
    match (t.float_val.as_slice(), t.tensor_content.as_slice()) {
        ([v], _) => Some(*v),
        ([], bytes) if bytes.len() == 4 => bytes.try_into().ok().map(f32::from_le_bytes),
        _ => None,
    }
}

/// Reads all graph facts; `Err` names the first node or cell at fault.
pub fn graph_facts(meta: &MetaGraphDef) -> Result<GraphFacts, GenotypeError> {
    let graph = Graph::new(meta)?;
    let concat = conventions().cell_output_concat_suffix();
    let mut scopes: Vec<&str> = graph
        .nodes
        .keys()
        .filter_map(|n| n.strip_suffix(concat.as_str()))
        .filter(|s| !s.contains('/') && parse_cell_scope(s).is_some())
        .collect();
    scopes.sort();
    // Each cell is read with scans over the whole graph: cap the count before reading any.
    if scopes.len() > MAX_CELLS {
        return Err(GenotypeError::graph(
            conventions().cell_output_concat(scopes[MAX_CELLS]),
            format!(
                "{} cells in the graph; a network has at most {MAX_CELLS} (the cap)",
                scopes.len()
            ),
        ));
    }
    let cells = scopes
        .iter()
        .map(|s| CellReader::new(&graph, s).read())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GraphFacts {
        cells: chain(cells)?,
        batch_norm_epsilon: epsilon(&graph)?,
        input_scaling: input_scaling(&graph),
        attachment_image_size: attachment_image_size(meta),
        input_image_size: input_image_size(&graph),
        stem_filters: stem_filters(&graph)?,
    })
}

/// A cell's kind from what its operations do, not from its scope name alone: a `cell_K`
/// whose operations on h0/h1 all have stride 2 is a reduction cell (PNASNet runs its one cell
/// type so at the reduction positions, under the normal cells' numbering). The stem and
/// `reduction_cell_K` scopes keep their kind; a `cell_K` with mixed strides stays normal, so
/// that `check_strides` names the strided branch.
fn kind_from_strides(named: CellKind, branches: &[GraphBranch]) -> CellKind {
    let mut on_inputs = branches.iter().filter(|b| b.input < 2).peekable();
    let strided = on_inputs.peek().is_some() && on_inputs.all(|b| b.stride == 2);
    match named {
        CellKind::Normal if strided => CellKind::Reduction,
        kind => kind,
    }
}

/// Orders cells by following `net` inputs from the stem.
fn chain(mut cells: Vec<GraphCell>) -> Result<Vec<GraphCell>, GenotypeError> {
    let mut order = Vec::with_capacity(cells.len());
    let mut current = Source::Stem;
    while !cells.is_empty() {
        let next: Vec<usize> = (0..cells.len())
            .filter(|&i| cells[i].net == current)
            .collect();
        match next.as_slice() {
            [i] => {
                let cell = cells.swap_remove(*i);
                current = Source::Cell(cell.scope.clone());
                order.push(cell);
            }
            [] => {
                return Err(GenotypeError::graph(
                    format!("{current:?}"),
                    format!(
                        "no cell takes it as input, but {} cells remain ({})",
                        cells.len(),
                        cells[0].scope
                    ),
                ))
            }
            [a, b, ..] => {
                return Err(GenotypeError::graph(
                    format!("{current:?}"),
                    format!(
                        "both {} and {} take it as input: not a chain of cells",
                        cells[*a].scope, cells[*b].scope
                    ),
                ))
            }
        }
    }
    Ok(order)
}

/// The one batch-norm epsilon of all FusedBatchNorm ops (attr or OpDef default).
fn epsilon(graph: &Graph) -> Result<f32, GenotypeError> {
    let mut found: Option<(f32, &str)> = None;
    let mut names: Vec<&&str> = graph.nodes.keys().collect();
    names.sort();
    for name in names {
        let node = graph.nodes[*name];
        if !node.op.starts_with("FusedBatchNorm") {
            continue;
        }
        let eps = match graph.attr(node, "epsilon").and_then(|a| a.value.as_ref()) {
            Some(Value::F(f)) => *f,
            _ => {
                return Err(GenotypeError::graph(
                    *name,
                    "FusedBatchNorm without an epsilon attr or OpDef default",
                ))
            }
        };
        match found {
            Some((e, first)) if e.to_bits() != eps.to_bits() => {
                return Err(GenotypeError::graph(
                    *name,
                    format!("batch-norm epsilon {eps:e} differs from {e:e} of {first}"),
                ))
            }
            None => found = Some((eps, name)),
            _ => {}
        }
    }
    found
        .map(|(e, _)| e)
        .ok_or_else(|| GenotypeError::graph("FusedBatchNorm", "no batch-norm op in the graph"))
}

/// The stem convolution node of each family (AmoebaNet's, then TF-slim's).
fn stem_convs() -> Vec<String> {
    let c = conventions();
    c.stem_scopes()
        .into_iter()
        .map(|scope| join(scope, &c.stem.conv_op))
        .collect()
}

/// Longest chain of element-wise ops followed back from the stem convolution to the images.
const MAX_SCALING_CHAIN: usize = 32;

/// One element-wise step between the images and the stem convolution, in graph order.
enum ScalingStep {
    Mul(f32),
    Div(f32),
    Add(f32),
    /// `x - c`.
    Sub(f32),
    /// `c - x`.
    SubFrom(f32),
}

/// `images * scale + offset`, found by following the stem convolution's input back through
/// Identity, Cast, Mul, RealDiv, Sub and Add to a Placeholder: the ops that scale the images
/// wherever the exporter put them (under `hub_input/` in tensorflow/tpu's exports, at the top
/// level in TF-slim's). `None` when the chain holds any other op or does not reach a
/// placeholder within [`MAX_SCALING_CHAIN`] steps.
fn input_scaling(graph: &Graph) -> Option<(f32, f32)> {
    let conv = stem_convs().iter().find_map(|n| graph.node(n))?;
    let mut current = graph.node(graph.inputs(conv).first()?)?;
    let mut steps = Vec::new();
    for _ in 0..MAX_SCALING_CHAIN {
        let inputs = graph.inputs(current);
        match (current.op.as_str(), inputs.as_slice()) {
            ("Placeholder", _) => return compose_scaling(&steps),
            ("Identity" | "Cast", [input]) => current = graph.node(input)?,
            (op, [a, b]) => {
                let (step, other) = scaling_step(graph, op, a, b)?;
                steps.push(step);
                current = graph.node(other)?;
            }
            _ => return None,
        }
    }
    None
}

/// The step of a binary op with one constant operand, and the other (non-constant) input.
fn scaling_step<'n>(
    graph: &Graph,
    op: &str,
    a: &'n str,
    b: &'n str,
) -> Option<(ScalingStep, &'n str)> {
    let (constant, other, constant_first) = match (scalar_const(graph, a), scalar_const(graph, b)) {
        (None, Some(c)) => (c, a, false),
        (Some(c), None) => (c, b, true),
        _ => return None,
    };
    let step = match (op, constant_first) {
        ("Mul", _) => ScalingStep::Mul(constant),
        ("RealDiv", false) => ScalingStep::Div(constant),
        ("Add" | "AddV2", _) => ScalingStep::Add(constant),
        ("Sub", false) => ScalingStep::Sub(constant),
        ("Sub", true) => ScalingStep::SubFrom(constant),
        _ => return None,
    };
    Some((step, other))
}

/// A scalar float constant (through Identity ops), or `None`.
fn scalar_const(graph: &Graph, name: &str) -> Option<f32> {
    let mut node = graph.node(name)?;
    for _ in 0..MAX_SCALING_CHAIN {
        match node.op.as_str() {
            "Const" => {
                return match &graph.attr(node, "value")?.value {
                    Some(Value::Tensor(t)) => scalar_f32(t),
                    _ => None,
                }
            }
            "Identity" => node = graph.node(graph.inputs(node).first()?)?,
            _ => return None,
        }
    }
    None
}

/// The affine map of `steps` (collected from the convolution back to the images, so applied
/// in reverse), as `(scale, offset)`.
fn compose_scaling(steps: &[ScalingStep]) -> Option<(f32, f32)> {
    let (mut scale, mut offset) = (1.0f32, 0.0f32);
    for step in steps.iter().rev() {
        (scale, offset) = match *step {
            ScalingStep::Mul(c) => (scale * c, offset * c),
            ScalingStep::Div(c) if c != 0.0 => (scale / c, offset / c),
            ScalingStep::Div(_) => return None,
            ScalingStep::Add(c) => (scale, offset + c),
            ScalingStep::Sub(c) => (scale, offset - c),
            ScalingStep::SubFrom(c) => (-scale, c - offset),
        };
    }
    Some((scale, offset))
}

fn attachment_image_size(meta: &MetaGraphDef) -> Option<[usize; 2]> {
    let hub = &conventions().hub;
    let list = match &meta.collection_def.get(&hub.attachments_collection)?.kind {
        Some(collection_def::Kind::BytesList(l)) => l,
        _ => return None,
    };
    // The last attachment of a key wins, as at export.
    let bytes = list
        .value
        .iter()
        .rev()
        .filter_map(|b| ModuleAttachment::decode(b.as_slice()).ok())
        .find(|a| a.key == hub.image_module_info)?;
    let size = ImageModuleInfo::decode(bytes.value.as_slice())
        .ok()?
        .default_image_size?;
    Some([
        usize::try_from(size.height).ok()?,
        usize::try_from(size.width).ok()?,
    ])
}

/// From the `default` signature's `images` input, else the `hub_input/images` placeholder.
fn input_image_size(graph: &Graph) -> Option<[usize; 2]> {
    let hub = &conventions().hub;
    let hw = |dims: Vec<i64>| -> Option<[usize; 2]> {
        match dims.as_slice() {
            [_, h, w, _] if *h > 0 && *w > 0 => Some([*h as usize, *w as usize]),
            _ => None,
        }
    };
    let from_signature = graph
        .meta
        .signature_def
        .get(&hub.default_signature)
        .and_then(|s| s.inputs.get(&hub.images_input))
        .and_then(|t| t.tensor_shape.as_ref())
        .and_then(|s| hw(s.dim.iter().map(|d| d.size).collect()));
    from_signature.or_else(|| {
        let node = graph.node(&hub.input_placeholder)?;
        match &graph.attr(node, "shape")?.value {
            Some(Value::Shape(s)) => hw(s.dim.iter().map(|d| d.size).collect()),
            _ => None,
        }
    })
}

/// The stem conv: checks it is 3x3 / stride 2 / VALID (the layout assumes it) and returns its width.
fn stem_filters(graph: &Graph) -> Result<Option<usize>, GenotypeError> {
    let convs = stem_convs();
    let Some((name, node)) = convs
        .iter()
        .find_map(|n| Some((n.as_str(), graph.node(n)?)))
    else {
        return Ok(None);
    };
    let strides = graph.ints(node, "strides").unwrap_or_default();
    let padding = graph.string(node, "padding").unwrap_or_default();
    let filter = graph
        .inputs(node)
        .get(1)
        .and_then(|f| graph.variable_shape(f));
    match filter.as_deref() {
        Some([3, 3, _, out]) if strides == [1, 2, 2, 1] && padding == "VALID" => Ok(Some(*out)),
        _ => Err(GenotypeError::graph(name, format!("stem conv filter {filter:?} strides {strides:?} padding {padding}; only 3x3 / 2 / VALID is supported"))),
    }
}

/// Reads one cell's nodes.
struct CellReader<'g, 'a> {
    graph: &'g Graph<'a>,
    scope: String,
    /// Node name -> hidden-state index.
    states: HashMap<String, usize>,
    /// The external node that is h1 when the cell has no prev adjustment.
    external_h1: Option<String>,
}

impl<'g, 'a> CellReader<'g, 'a> {
    fn new(graph: &'g Graph<'a>, scope: &str) -> Self {
        CellReader {
            graph,
            scope: scope.to_string(),
            states: HashMap::new(),
            external_h1: None,
        }
    }

    fn err(&self, node: &str, message: impl Into<String>) -> GenotypeError {
        GenotypeError::graph(node, message)
    }

    /// Nodes under `{scope}/{sub}/`, sorted by name.
    fn nodes_under(&self, sub: &str) -> Vec<(&'a str, &'a NodeDef)> {
        let prefix = format!("{}/{sub}/", self.scope);
        let mut v: Vec<_> = self
            .graph
            .nodes
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, d)| (*n, *d))
            .collect();
        v.sort_by_key(|(n, _)| *n);
        v
    }

    /// The FusedBatchNorm node of a BN scope of this cell, if any.
    fn batch_norm(&self, sub: &str) -> Option<&'a str> {
        self.nodes_under(sub)
            .into_iter()
            .find(|(_, n)| n.op.starts_with("FusedBatchNorm"))
            .map(|(n, _)| n)
    }

    fn inside(&self, name: &str) -> bool {
        name.starts_with(&format!("{}/", self.scope))
    }

    /// Follows first data inputs from `name` until leaving the cell scope.
    fn trace_external(&self, name: &str) -> Result<String, GenotypeError> {
        let mut current = name.to_string();
        for _ in 0..64 {
            if !self.inside(&current) {
                return Ok(current);
            }
            let node = self
                .graph
                .node(&current)
                .ok_or_else(|| self.err(&current, "input names a node that is not in the graph"))?;
            current = self
                .graph
                .inputs(node)
                .into_iter()
                .next()
                .ok_or_else(|| self.err(&current, "has no data input"))?;
        }
        Err(self.err(name, "input chain too long"))
    }

    fn source(&self, external: &str) -> Result<Source, GenotypeError> {
        let c = conventions();
        if let Some(scope) = external.strip_suffix(c.cell_output_concat_suffix().as_str()) {
            return Ok(Source::Cell(scope.to_string()));
        }
        // The stem's output is its batch norm, under the stem scope's name.
        if c.stem_scopes().iter().any(|s| external.starts_with(s)) {
            return Ok(Source::Stem);
        }
        Err(self.err(
            &self.scope,
            format!("reads {external}, which is neither a cell output nor the stem"),
        ))
    }

    /// The state a node name stands for, looking through `Split`/`Identity`; `Ok(None)` for
    /// variables and constants.
    fn resolve(&mut self, name: &str) -> Result<Option<usize>, GenotypeError> {
        let mut current = name.to_string();
        for _ in 0..16 {
            if let Some(&s) = self.states.get(&current) {
                return Ok(Some(s));
            }
            let node = self
                .graph
                .node(&current)
                .ok_or_else(|| self.err(&current, "not in the graph"))?;
            if node.op != "Identity" && VARIABLE_OPS.contains(&node.op.as_str()) {
                return Ok(None);
            }
            if !self.inside(&current) {
                return self.external(&current).map(Some);
            }
            let inputs = self.graph.inputs(node);
            current = match node.op.as_str() {
                "Identity" | "StopGradient" => inputs.first().cloned(),
                "Split" => inputs.get(1).cloned(),
                _ => {
                    return Err(self.err(
                        &current,
                        format!(
                            "{} is read by an operation but is not a hidden state",
                            node.op
                        ),
                    ))
                }
            }
            .ok_or_else(|| self.err(&current, "has no data input"))?;
        }
        Err(self.err(name, "Identity/Split chain too long"))
    }

    /// An external node read by an operation is h1 (the cell input itself or the unchanged prev).
    fn external(&mut self, name: &str) -> Result<usize, GenotypeError> {
        match &self.external_h1 {
            Some(h1) if h1 != name => Err(self.err(&self.scope, format!("operations read two outside nodes, {h1} and {name}; only h1 may come from outside"))),
            _ => {
                self.external_h1 = Some(name.to_string());
                Ok(1)
            }
        }
    }

    fn read(mut self) -> Result<GraphCell, GenotypeError> {
        let scope = self.scope.clone();
        let (named_kind, _) =
            parse_cell_scope(&scope).ok_or_else(|| self.err(&scope, "not a cell scope"))?;
        let names = &conventions().cell;
        let h0 = self.batch_norm(&names.input_bn).ok_or_else(|| {
            self.err(
                &join(&scope, &names.input_bn),
                "no FusedBatchNorm: cannot find h0",
            )
        })?;
        self.states.insert(h0.to_string(), 0);
        let net = self.source(&self.trace_external(h0)?)?;
        let (prev_adjust, h1) = match (
            self.batch_norm(&names.factorized_bn),
            self.batch_norm(&names.prev_bn),
        ) {
            (Some(bn), _) => (Some(PrevAdjust::FactorizedReduction), Some(bn)),
            (None, Some(bn)) => (Some(PrevAdjust::Prev1x1), Some(bn)),
            (None, None) => (None, None),
        };
        if let Some(h1) = h1 {
            self.states.insert(h1.to_string(), 1);
        }
        let combines = self.combines()?;
        for (i, name) in combines.iter().enumerate() {
            self.states.insert(name.clone(), 2 + i);
        }
        let mut branches = Vec::with_capacity(2 * combines.len());
        for (i, name) in combines.iter().enumerate() {
            let [left, right] = self.combination(i, name)?;
            branches.push(left);
            branches.push(right);
        }
        let (concat, output_shape) = self.concat()?;
        let kind = kind_from_strides(named_kind, &branches);
        let prev = match (h1, &self.external_h1) {
            (Some(bn), _) => Some(self.source(&self.trace_external(bn)?)?),
            (None, Some(ext)) => Some(self.source(ext)?),
            (None, None) => None,
        };
        let prev_adjust = prev_adjust.unwrap_or(
            if prev.as_ref() == Some(&net) && self.external_h1.is_some() {
                PrevAdjust::UseInput
            } else {
                PrevAdjust::Unchanged
            },
        );
        Ok(GraphCell {
            scope,
            kind,
            net,
            prev,
            prev_adjust,
            branches,
            concat,
            output_shape,
        })
    }

    /// The `comb_iter_i/combine` add nodes, in order.
    fn combines(&self) -> Result<Vec<String>, GenotypeError> {
        let c = conventions();
        let combine = |i: usize| join(&c.combination(i), &c.cell.combine);
        let mut out = Vec::new();
        // One more than the cap, to tell "at the cap" from "over it".
        for i in 0..=MAX_OPERATIONS_PER_CELL / 2 {
            if i == MAX_OPERATIONS_PER_CELL / 2 {
                if self.nodes_under(&combine(i)).is_empty() {
                    break;
                }
                return Err(self.err(
                    &join(&self.scope, &combine(i)),
                    format!(
                        "a cell has at most {} combinations (the cap)",
                        MAX_OPERATIONS_PER_CELL / 2
                    ),
                ));
            }
            let adds: Vec<_> = self
                .nodes_under(&combine(i))
                .into_iter()
                .filter(|(_, n)| matches!(n.op.as_str(), "Add" | "AddV2"))
                .collect();
            match adds.as_slice() {
                [] => break,
                [(name, _)] => out.push(name.to_string()),
                _ => return Err(self.err(&join(&self.scope, &combine(i)), "more than one add")),
            }
        }
        if out.is_empty() {
            return Err(self.err(&self.scope, format!("no {} add", combine(0))));
        }
        Ok(out)
    }

    /// Left and right branch of combination `i`, whose add is `add`.
    fn combination(&mut self, i: usize, add: &str) -> Result<[GraphBranch; 2], GenotypeError> {
        let node = self
            .graph
            .node(add)
            .ok_or_else(|| self.err(add, "vanished"))?;
        let inputs = self.graph.inputs(node);
        if inputs.len() != 2 {
            return Err(self.err(add, format!("add with {} inputs", inputs.len())));
        }
        let c = conventions();
        let side_scope = |side: usize| join(&c.combination(i), &c.cell.sides[side]);
        let sides = [0, 1].map(|side| format!("{}/", join(&self.scope, &side_scope(side))));
        // An add input inside `left/` or `right/` is that branch's output; a state is an identity.
        let mut slots: [Option<&str>; 2] = [None, None];
        for input in &inputs {
            if let Some(side) = sides.iter().position(|s| input.starts_with(s.as_str())) {
                slots[side] = Some(input);
            }
        }
        let mut out = Vec::with_capacity(2);
        for side in 0..2 {
            let branch_nodes = self.nodes_under(&side_scope(side));
            let branch = if branch_nodes
                .iter()
                .any(|(_, n)| !VARIABLE_OPS.contains(&n.op.as_str()) || n.op == "Identity")
            {
                self.branch(&sides[side], &branch_nodes)?
            } else {
                // No nodes: identity. Its add input is the one not claimed by the other side.
                let free = if slots[1 - side].is_some() {
                    inputs.iter().find(|n| Some(n.as_str()) != slots[1 - side])
                } else {
                    inputs.get(side)
                };
                let free = free
                    .ok_or_else(|| self.err(add, "cannot tell the identity input"))?
                    .clone();
                let input = self
                    .resolve(&free)?
                    .ok_or_else(|| self.err(&free, "identity branch reads a constant"))?;
                GraphBranch {
                    op: Operation::Identity,
                    input,
                    stride: 1,
                    projection: false,
                }
            };
            out.push(branch);
        }
        let right = out.pop();
        let left = out.pop();
        match (left, right) {
            (Some(l), Some(r)) => Ok([l, r]),
            _ => Err(self.err(add, "missing branch")),
        }
    }

    /// Classifies the nodes of one branch scope.
    fn branch(
        &mut self,
        prefix: &str,
        nodes: &[(&'a str, &'a NodeDef)],
    ) -> Result<GraphBranch, GenotypeError> {
        let name = prefix.trim_end_matches('/');
        let mut inputs = Vec::new();
        for (_, node) in nodes {
            for input in self.graph.inputs(node) {
                if !input.starts_with(prefix) {
                    if let Some(s) = self.resolve(&input)? {
                        inputs.push(s);
                    }
                }
            }
        }
        inputs.sort_unstable();
        inputs.dedup();
        let input = match inputs.as_slice() {
            [s] => *s,
            [] => return Err(self.err(name, "reads no hidden state")),
            many => return Err(self.err(name, format!("reads several hidden states {many:?}"))),
        };
        let (op, stride, projection) = classify(self.graph, name, nodes)?;
        Ok(GraphBranch {
            op,
            input,
            stride,
            projection,
        })
    }

    /// States of `cell_output/concat`, in order, looking through any `cell_output/reduction_k`.
    fn concat(&mut self) -> Result<(Vec<usize>, Option<[usize; 3]>), GenotypeError> {
        let c = conventions();
        let name = c.cell_output_concat(&self.scope);
        let node = self
            .graph
            .node(&name)
            .ok_or_else(|| self.err(&name, "missing"))?;
        let mut states = Vec::new();
        for input in self.graph.inputs(node) {
            if self.graph.node(&input).is_some_and(|n| n.op == "Const") {
                continue;
            }
            let mut current = input.clone();
            // A factorized reduction inside cell_output: walk back to the state it reduces.
            // The graph is untrusted and may loop: each step visits a new node or fails.
            let inside = format!("{}/", join(&self.scope, &c.cell.output));
            let mut visited = std::collections::HashSet::new();
            while current.starts_with(&inside) {
                if !visited.insert(current.clone()) {
                    return Err(self.err(
                        &current,
                        format!("reached again walking back from {input}: the cell output's inputs form a loop"),
                    ));
                }
                let n = self
                    .graph
                    .node(&current)
                    .ok_or_else(|| self.err(&current, "not in the graph"))?;
                current = self
                    .graph
                    .inputs(n)
                    .into_iter()
                    .next()
                    .ok_or_else(|| self.err(&current, "no input"))?;
            }
            if let Some(s) = self.resolve(&current)? {
                states.push(s);
            }
        }
        let shape = self
            .graph
            .output_shape(node)
            .and_then(|d| match d.as_slice() {
                [_, h, w, c] if *h > 0 && *w > 0 && *c > 0 => {
                    Some([*h as usize, *w as usize, *c as usize])
                }
                _ => None,
            });
        Ok((states, shape))
    }
}

/// What the op nodes of one branch are: (operation, stride, pool projection).
fn classify(
    graph: &Graph,
    branch: &str,
    nodes: &[(&str, &NodeDef)],
) -> Result<(Operation, usize, bool), GenotypeError> {
    let err = |m: String| GenotypeError::graph(branch, m);
    let mut stride = 1;
    let mut depthwise: Vec<usize> = Vec::new();
    let mut pools: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut ones, mut row, mut col, mut square) = (0, None, None, None);
    for (name, node) in nodes {
        let op = node.op.as_str();
        if !matches!(
            op,
            "DepthwiseConv2dNative" | "Conv2D" | "AvgPool" | "MaxPool"
        ) {
            continue;
        }
        let strides = graph.ints(node, "strides").unwrap_or_default();
        stride = stride.max(strides.iter().copied().max().unwrap_or(1) as usize);
        let dilation = graph
            .ints(node, "dilations")
            .map_or(1, |d| d.iter().copied().max().unwrap_or(1) as usize);
        let padding = graph.string(node, "padding").unwrap_or_default();
        let inputs = graph.inputs(node);
        if op == "AvgPool" || op == "MaxPool" {
            let k = graph
                .ints(node, "ksize")
                .and_then(|k| k.get(1).copied())
                .ok_or_else(|| err(format!("{name}: no ksize")))? as usize;
            check_same(name, &padding)?;
            pools.insert(op, k);
            continue;
        }
        let filter = inputs
            .get(1)
            .and_then(|f| graph.variable_shape(f))
            .ok_or_else(|| err(format!("{name}: cannot find the filter's shape")))?;
        let (kh, kw) = match filter.as_slice() {
            [kh, kw, ..] => (*kh, *kw),
            _ => {
                return Err(err(format!(
                    "{name}: filter of shape {filter:?}, not [kh, kw, ...]"
                )))
            }
        };
        if op == "DepthwiseConv2dNative" {
            check_same(name, &padding)?;
            if dilation != 1 {
                return Err(err(format!("{name}: depthwise dilation {dilation}; separable ops are not dilated in the official code")));
            }
            depthwise.push(kh);
            continue;
        }
        // A Conv2D straight after a depthwise is its pointwise half.
        if inputs
            .first()
            .and_then(|i| graph.node(i))
            .is_some_and(|n| n.op == "DepthwiseConv2dNative")
        {
            continue;
        }
        match (kh, kw) {
            (1, 1) => ones += 1,
            (1, k) => row = Some(k),
            (k, 1) => col = Some(k),
            (k, _) => square = Some((k, dilation)),
        }
        if kh > 1 || kw > 1 {
            check_same(name, &padding)?;
        }
    }
    if let Some(&k) = depthwise.first() {
        if depthwise.iter().any(|&d| d != k) {
            return Err(err(format!("depthwise kernels {depthwise:?} differ")));
        }
        return Ok((
            Operation::Separable {
                kernel: k,
                repeats: depthwise.len(),
            },
            stride,
            false,
        ));
    }
    match (pools.len(), pools.iter().next()) {
        (1, Some((&"AvgPool", &k))) => {
            return Ok((Operation::AvgPool { kernel: k }, stride, ones > 0))
        }
        (1, Some((_, &k))) => return Ok((Operation::MaxPool { kernel: k }, stride, ones > 0)),
        (0, _) => {}
        _ => return Err(err(format!("several pools {pools:?}"))),
    }
    match (row, col, square) {
        (Some(r), Some(c), None) if r == c => {
            Ok((Operation::Factorized { kernel: r }, stride, false))
        }
        (None, None, Some((kernel, dilation))) => {
            Ok((Operation::Conv { kernel, dilation }, stride, false))
        }
        (None, None, None) if ones > 0 => Ok((Operation::Conv1x1, stride, false)),
        other => Err(err(format!(
            "convs {other:?} ({ones} 1x1) match no NASNet-space operation"
        ))),
    }
}

fn check_same(node: &str, padding: &str) -> Result<(), GenotypeError> {
    if padding == "SAME" {
        Ok(())
    } else {
        Err(GenotypeError::graph(
            node,
            format!("padding {padding:?}; cell operations use SAME"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tf_proto::tensorflow::GraphDef;

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.to_string(),
            op: op.to_string(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<NodeDef>) -> MetaGraphDef {
        MetaGraphDef {
            graph_def: Some(GraphDef {
                node: nodes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A cell `cell_0` with h0 from the stem and one identity combination of h0 with
    /// itself, whose output concat reads `concat_inputs`; plus `extra` nodes.
    fn one_cell(concat_inputs: &[&str], extra: Vec<NodeDef>) -> MetaGraphDef {
        let h0 = "cell_0/beginning_bn/FusedBatchNorm";
        let mut nodes = vec![
            node("stem/conv0_bn/FusedBatchNorm", "FusedBatchNorm", &[]),
            node(h0, "FusedBatchNorm", &["stem/conv0_bn/FusedBatchNorm"]),
            node("cell_0/comb_iter_0/combine/add", "Add", &[h0, h0]),
            node("cell_0/cell_output/concat", "ConcatV2", concat_inputs),
        ];
        nodes.extend(extra);
        graph(nodes)
    }

    #[test]
    fn cell_output_nodes_that_read_each_other_are_an_error_not_a_hang() {
        let meta = one_cell(
            &["cell_0/cell_output/a"],
            vec![
                node(
                    "cell_0/cell_output/a",
                    "Identity",
                    &["cell_0/cell_output/b"],
                ),
                node(
                    "cell_0/cell_output/b",
                    "Identity",
                    &["cell_0/cell_output/a"],
                ),
            ],
        );
        let err = graph_facts(&meta).unwrap_err().to_string();
        assert!(
            err.contains("graph: cell_0/cell_output/a") && err.contains("loop"),
            "{err}"
        );
        // A node that reads itself.
        let meta = one_cell(
            &["cell_0/cell_output/self"],
            vec![node(
                "cell_0/cell_output/self",
                "Identity",
                &["cell_0/cell_output/self"],
            )],
        );
        let err = graph_facts(&meta).unwrap_err().to_string();
        assert!(
            err.contains("cell_0/cell_output/self") && err.contains("loop"),
            "{err}"
        );
    }

    #[test]
    fn a_cell_output_chain_that_ends_in_a_state_is_followed() {
        let meta = one_cell(
            &["cell_0/cell_output/a"],
            vec![node(
                "cell_0/cell_output/a",
                "Identity",
                &["cell_0/comb_iter_0/combine/add"],
            )],
        );
        let graph = Graph::new(&meta).unwrap();
        let mut reader = CellReader::new(&graph, "cell_0");
        reader
            .states
            .insert("cell_0/comb_iter_0/combine/add".into(), 2);
        assert_eq!(reader.concat().unwrap().0, vec![2]);
    }

    #[test]
    fn more_combinations_than_the_cap_are_refused() {
        let h0 = "cell_0/beginning_bn/FusedBatchNorm";
        let adds: Vec<NodeDef> = (1..=MAX_OPERATIONS_PER_CELL / 2)
            .map(|i| {
                node(
                    &format!("cell_0/comb_iter_{i}/combine/add"),
                    "Add",
                    &[h0, h0],
                )
            })
            .collect();
        let meta = one_cell(&[h0], adds);
        let err = graph_facts(&meta).unwrap_err().to_string();
        assert!(
            err.contains("cell_0/comb_iter_16/combine")
                && err.contains("at most 16 combinations (the cap)"),
            "{err}"
        );
    }

    #[test]
    fn more_cells_than_the_cap_are_refused_before_any_is_read() {
        let nodes = (0..=MAX_CELLS)
            .map(|i| node(&format!("cell_{i}/cell_output/concat"), "ConcatV2", &[]))
            .collect();
        let err = graph_facts(&graph(nodes)).unwrap_err().to_string();
        assert!(
            err.contains("257 cells") && err.contains("at most 256 (the cap)"),
            "{err}"
        );
    }

    #[test]
    fn a_filter_without_two_dimensions_is_an_error_not_a_panic() {
        let conv = node("b/Conv2D", "Conv2D", &["x", "w"]);
        let mut var = node("w", "VariableV2", &[]);
        var.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(Value::Shape(Default::default())),
            },
        );
        let meta = graph(vec![
            node("cell_0/cell_output/concat", "ConcatV2", &[]),
            conv.clone(),
            var,
        ]);
        let graph = Graph::new(&meta).unwrap();
        let err = classify(&graph, "b", &[("b/Conv2D", &conv)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b/Conv2D: filter of shape []"), "{err}");
    }

    fn constant(name: &str, value: f32) -> NodeDef {
        let mut n = node(name, "Const", &[]);
        n.attr.insert(
            "value".to_string(),
            AttrValue {
                value: Some(Value::Tensor(TensorProto {
                    dtype: tf_proto::tensorflow::DataType::DtFloat as i32,
                    float_val: vec![value],
                    ..Default::default()
                })),
            },
        );
        n
    }

    /// The stem conv of `stem_scope` fed by `chain` (name, op, inputs) from a placeholder.
    fn scaling_graph(stem_scope: &str, chain: Vec<NodeDef>, conv_input: &str) -> MetaGraphDef {
        let mut nodes = vec![
            node("images", "Placeholder", &[]),
            node(
                &format!("{stem_scope}/Conv2D"),
                "Conv2D",
                &[conv_input, "w"],
            ),
        ];
        nodes.extend(chain);
        nodes.push(node("cell_0/cell_output/concat", "ConcatV2", &[]));
        graph(nodes)
    }

    #[test]
    fn input_scaling_is_followed_from_the_stem_conv_wherever_the_ops_are() {
        // TF-slim's export: top-level `mul` and `sub`, read through an Identity.
        let meta = scaling_graph(
            "conv0",
            vec![
                constant("two", 2.0),
                constant("one", 1.0),
                node("mul", "Mul", &["images", "two"]),
                node("sub", "Sub", &["mul:0", "one"]),
                node("id", "Identity", &["sub"]),
            ],
            "id",
        );
        assert_eq!(
            input_scaling(&Graph::new(&meta).unwrap()),
            Some((2.0, -1.0))
        );
        // Constant first, division, and `c - x`: (1 - x / 4) * 3 = -0.75 x + 3.
        let meta = scaling_graph(
            "stem/conv0",
            vec![
                constant("four", 4.0),
                constant("one", 1.0),
                constant("three", 3.0),
                node("hub_input/div", "RealDiv", &["images", "four"]),
                node("hub_input/rsub", "Sub", &["one", "hub_input/div"]),
                node("hub_input/mul", "Mul", &["three", "hub_input/rsub"]),
            ],
            "hub_input/mul",
        );
        assert_eq!(
            input_scaling(&Graph::new(&meta).unwrap()),
            Some((-0.75, 3.0))
        );
        // No ops at all: the images go in unscaled.
        let meta = scaling_graph("conv0", vec![], "images");
        assert_eq!(input_scaling(&Graph::new(&meta).unwrap()), Some((1.0, 0.0)));
    }

    #[test]
    fn input_scaling_that_is_not_a_constant_affine_chain_is_not_guessed() {
        // x * x is not affine; a chain that never reaches a placeholder is not the input;
        // a loop ends at the step cap.
        for (chain, conv_input) in [
            (vec![node("sq", "Mul", &["images", "images"])], "sq"),
            (vec![node("v", "VariableV2", &[])], "v"),
            (
                vec![node("a", "Identity", &["b"]), node("b", "Identity", &["a"])],
                "a",
            ),
            (vec![node("e", "Exp", &["images"])], "e"),
            // A per-channel mean is not a scalar scaling; nor is a float64 constant.
            (
                vec![per_channel("mean"), node("s", "Sub", &["images", "mean"])],
                "s",
            ),
            (vec![double("d"), node("m", "Mul", &["images", "d"])], "m"),
        ] {
            let meta = scaling_graph("conv0", chain, conv_input);
            assert_eq!(input_scaling(&Graph::new(&meta).unwrap()), None);
        }
    }

    fn per_channel(name: &str) -> NodeDef {
        let mut n = constant(name, 123.68);
        if let Some(Value::Tensor(t)) = n.attr.get_mut("value").and_then(|a| a.value.as_mut()) {
            t.float_val = vec![123.68, 116.78, 103.94];
            t.tensor_shape = Some(tf_proto::tensorflow::TensorShapeProto {
                dim: vec![tf_proto::tensorflow::tensor_shape_proto::Dim {
                    size: 3,
                    name: String::new(),
                }],
                unknown_rank: false,
            });
        }
        n
    }

    fn double(name: &str) -> NodeDef {
        let mut n = constant(name, 2.0);
        if let Some(Value::Tensor(t)) = n.attr.get_mut("value").and_then(|a| a.value.as_mut()) {
            t.dtype = tf_proto::tensorflow::DataType::DtDouble as i32;
        }
        n
    }
}
