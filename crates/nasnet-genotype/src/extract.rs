//! Putting the two sources together: the genotype and wiring come from the graph, widths and
//! cell order from both, checked against each other. Where they disagree the graph wins and
//! the disagreement is reported; where the result could not run (weights that do not fit the
//! layout, or a description [`NetworkSpec::validate`] refuses) it is an error.

use crate::conventions::conventions;
use crate::error::GenotypeError;
use crate::graph::{graph_facts, GraphBranch, GraphCell, GraphFacts, Source};
use crate::known::{known_genotype, recognize};
use crate::layout::{build_layout, default_reduction_indices, CellPlan};
use crate::spec::{CellKind, CellLayout, CellSpec, Genotype, NetworkSpec, Operation, PrevAdjust};
use crate::validate::cell_numbering;
use crate::variables::{VarOp, VariableFacts};
use tf_proto::tensorflow::MetaGraphDef;

/// The extracted network and every place where the sources disagreed or a default was assumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub spec: NetworkSpec,
    /// Human-readable notes, each naming its scope; empty when names and graph fully agree.
    pub disagreements: Vec<String>,
    /// Other facts worth saying once (variables the inference network does not use).
    pub notes: Vec<String>,
}

/// A note on the auxiliary-head variables among `variables`, if there are any: TF-slim's
/// auxiliary head (`aux_<cell>/aux_logits/...`) is built only for training; a module may
/// carry its variables, which the inference network never reads.
fn aux_head_note(variables: &[(String, Vec<usize>)]) -> Option<String> {
    let c = conventions();
    let prefix = c.head.aux_head_prefix.as_str();
    let aux: Vec<&str> = variables
        .iter()
        .map(|(name, _)| {
            name.strip_prefix(c.hub.consumer_prefix.as_str())
                .unwrap_or(name)
        })
        .filter(|name| !prefix.is_empty() && name.starts_with(prefix))
        .collect();
    let first = aux.first()?;
    Some(format!(
        "{} variables of the training-only auxiliary head ({first}, …) are not part of the \
         inference network: convert keeps them, the forward pass ignores them",
        aux.len()
    ))
}

/// What [`from_variables`] cannot read from names alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Assumptions {
    pub genotype: Genotype,
    pub image_size: [usize; 2],
    pub batch_norm_epsilon: f32,
    pub input_scale: f32,
    pub input_offset: f32,
}

/// Extracts the network from the inference MetaGraphDef (tags `{}`) and the checkpoint's
/// variable names and shapes. `image_size` (from the module's attachment, if the caller read
/// it) wins over the graph's own attachment, signature and placeholder shapes.
pub fn extract(
    graph: &MetaGraphDef,
    variables: &[(String, Vec<usize>)],
    image_size: Option<[usize; 2]>,
) -> Result<Extraction, GenotypeError> {
    let vars = VariableFacts::from_variables(variables)?;
    let facts = graph_facts(graph)?;
    let mut notes = Vec::new();
    let mut genotype = genotype_from_graph(&facts.cells)?;
    // A recognised genotype is written as published: where a graph cannot tell `none` from
    // `1x1` (a strided input), the official list says which it is.
    if let Some(known) = recognize(&genotype).and_then(known_genotype) {
        genotype = known;
    }
    compare_cells(&vars, &facts, &mut notes)?;
    compare_order(&vars, &facts, &mut notes)?;
    let plan = plan_from_graph(&vars, &facts.cells)?;
    let image = choose_image_size(image_size, &facts, &mut notes)?;
    if facts.stem_filters.is_some_and(|f| f != vars.stem_filters) {
        notes.push(format!(
            "{}: variables say {} filters, the graph's conv {:?} (graph wins)",
            vars.stem_scope, vars.stem_filters, facts.stem_filters
        ));
    }
    let stem_filters = facts.stem_filters.unwrap_or(vars.stem_filters);
    let mut cells = build_layout(&genotype, &plan, stem_filters, image)?;
    for (layout, cell) in cells.iter_mut().zip(&facts.cells) {
        reconcile_with_graph(layout, cell, &mut notes);
    }
    check_layout_against_vars(&cells, &vars)?;
    let (scale, offset) = facts.input_scaling.unwrap_or_else(|| {
        notes.push(
            "input scaling: the graph between the images and the stem convolution is not a \
             chain of Mul/Sub/Add constants; assuming images * 2 - 1"
                .to_string(),
        );
        (2.0, -1.0)
    });
    let spec = assemble(
        genotype,
        cells,
        &vars,
        stem_filters,
        image,
        facts.batch_norm_epsilon,
        (scale, offset),
    )?;
    Ok(Extraction {
        spec,
        disagreements: notes,
        notes: aux_head_note(variables).into_iter().collect(),
    })
}

/// Builds the network from variable names alone, for a file without a graph: the genotype,
/// image size, epsilon and scaling must be supplied; the names must agree with them.
pub fn from_variables(
    variables: &[(String, Vec<usize>)],
    assumptions: &Assumptions,
) -> Result<Extraction, GenotypeError> {
    let vars = VariableFacts::from_variables(variables)?;
    let order = vars.order(assumptions.genotype.has_one_cell_type())?;
    let plan: Vec<CellPlan> = order
        .iter()
        .map(|c| CellPlan {
            scope: c.scope.clone(),
            kind: c.kind,
            filters: c.filters,
            prev: None,
        })
        .collect();
    let cells = build_layout(
        &assumptions.genotype,
        &plan,
        vars.stem_filters,
        assumptions.image_size,
    )?;
    for (layout, cell) in cells.iter().zip(&order) {
        let spec = assumptions.genotype.cell(cell.kind);
        for (i, (op, var)) in spec.operations.iter().zip(&cell.branches).enumerate() {
            if !var_op_fits(*op, var) {
                return Err(GenotypeError::vars(
                    branch_name(&layout.scope, i),
                    format!("variables imply {var:?}, but the genotype has {op}"),
                ));
            }
        }
    }
    check_layout_against_vars(&cells, &vars)?;
    let notes = unofficial_reductions(&cells).into_iter().collect();
    let a = assumptions;
    let spec = assemble(
        a.genotype.clone(),
        cells,
        &vars,
        vars.stem_filters,
        a.image_size,
        a.batch_norm_epsilon,
        (a.input_scale, a.input_offset),
    )?;
    Ok(Extraction {
        spec,
        disagreements: notes,
        notes: aux_head_note(variables).into_iter().collect(),
    })
}

/// A note when the reduction cells (placed by widths) are not where the official
/// `calc_reduction_layers` puts them.
fn unofficial_reductions(cells: &[CellLayout]) -> Option<String> {
    let (numbered, indices) = cell_numbering(cells);
    let default = default_reduction_indices(numbered, indices.len());
    (default != indices).then(|| {
        format!("reduction cells at {indices:?} (from widths), not the official {default:?}")
    })
}

fn branch_name(scope: &str, i: usize) -> String {
    conventions().branch(scope, i)
}

fn count(cells: &[CellLayout], kind: CellKind) -> usize {
    cells.iter().filter(|c| c.kind == kind).count()
}

/// The genotype the graph's cells build; every cell of a kind must build the same.
fn genotype_from_graph(cells: &[GraphCell]) -> Result<Genotype, GenotypeError> {
    let of = |kinds: &[CellKind]| -> Vec<&GraphCell> {
        cells.iter().filter(|c| kinds.contains(&c.kind)).collect()
    };
    let normal = of(&[CellKind::Normal]);
    // Stem cells are reduction cells; a real reduction cell is the cleaner reference (the stem
    // cells may add projections for their narrow inputs).
    let mut reduction = of(&[CellKind::Reduction]);
    reduction.extend(of(&[CellKind::Stem]));
    Ok(Genotype {
        name: None,
        normal: cell_spec(&normal)?,
        reduction: cell_spec(&reduction)?,
    })
}

fn cell_spec(cells: &[&GraphCell]) -> Result<CellSpec, GenotypeError> {
    let Some(first) = cells.first() else {
        return Err(GenotypeError::graph(
            "(cells)",
            "no cell of this kind in the graph",
        ));
    };
    let mut branches: Vec<GraphBranch> = first.branches.clone();
    for cell in cells {
        check_strides(cell)?;
        if cell.branches.len() != branches.len() {
            return Err(inconsistent(
                cell,
                format!(
                    "{} operations, but {} has {}",
                    cell.branches.len(),
                    first.scope,
                    branches.len()
                ),
            ));
        }
        for (i, (b, reference)) in cell.branches.iter().zip(branches.iter_mut()).enumerate() {
            if b.input != reference.input {
                return Err(inconsistent(
                    cell,
                    format!(
                        "{} reads h{}, but in {} it reads h{}",
                        branch_name(&cell.scope, i),
                        b.input,
                        first.scope,
                        reference.input
                    ),
                ));
            }
            match (b.op, reference.op) {
                (x, y) if x == y => {}
                // `none` convolves only where the input is strided or narrower: the cells
                // without the conv show what the genotype says.
                (Operation::Identity, Operation::Conv1x1) => reference.op = Operation::Identity,
                (Operation::Conv1x1, Operation::Identity) => {}
                (x, y) => {
                    return Err(inconsistent(
                        cell,
                        format!(
                            "{} is {x}, but in {} it is {y}",
                            branch_name(&cell.scope, i),
                            first.scope
                        ),
                    ))
                }
            }
        }
        if cell.concat != first.concat {
            return Err(inconsistent(
                cell,
                format!(
                    "output concatenates h{:?}, but {} concatenates h{:?}",
                    cell.concat, first.scope, first.concat
                ),
            ));
        }
    }
    let states = 2 + branches.len() / 2;
    if first.concat.windows(2).any(|w| w[0] >= w[1]) {
        return Err(GenotypeError::graph(
            conventions().cell_output_concat(&first.scope),
            format!("concatenates h{:?}, not in index order", first.concat),
        ));
    }
    let used = (0..states)
        .map(|j| u8::from(!first.concat.contains(&j)))
        .collect();
    let spec = CellSpec {
        operations: branches.iter().map(|b| b.op).collect(),
        hiddenstate_indices: branches.iter().map(|b| b.input).collect(),
        used_hiddenstates: used,
    };
    spec.validate()
        .map_err(|e| GenotypeError::graph(&first.scope, e.to_string()))?;
    Ok(spec)
}

fn inconsistent(cell: &GraphCell, message: String) -> GenotypeError {
    GenotypeError::Inconsistent {
        scope: cell.scope.clone(),
        message,
    }
}

/// The cell stride (2 in stem and reduction cells) applies exactly to operations on h0/h1.
fn check_strides(cell: &GraphCell) -> Result<(), GenotypeError> {
    let cell_stride = if cell.kind == CellKind::Normal { 1 } else { 2 };
    for (i, b) in cell.branches.iter().enumerate() {
        let expected = if b.input < 2 { cell_stride } else { 1 };
        if b.stride != expected {
            return Err(GenotypeError::graph(
                branch_name(&cell.scope, i),
                format!(
                    "{} on h{} has stride {}, expected {expected}",
                    b.op, b.input, b.stride
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a branch's variables fit a genotype operation (pools and `none` may carry a projection).
fn var_op_fits(op: Operation, var: &VarOp) -> bool {
    match (op, var) {
        (
            Operation::Separable { kernel, repeats },
            VarOp::Separable {
                kernel: k,
                repeats: r,
            },
        ) => kernel == *k && repeats == *r,
        (Operation::Factorized { kernel }, VarOp::Factorized { kernel: k }) => kernel == *k,
        (Operation::Conv { kernel, .. }, VarOp::Conv { kernel: k }) => kernel == *k,
        (Operation::Conv1x1, VarOp::Projection) => true,
        (
            Operation::Identity | Operation::AvgPool { .. } | Operation::MaxPool { .. },
            VarOp::Nothing | VarOp::Projection,
        ) => true,
        _ => false,
    }
}

/// Names vs graph, cell by cell and branch by branch.
fn compare_cells(
    vars: &VariableFacts,
    facts: &GraphFacts,
    notes: &mut Vec<String>,
) -> Result<(), GenotypeError> {
    for cell in &facts.cells {
        let v = vars.cell(&cell.scope).ok_or_else(|| {
            GenotypeError::vars(
                &cell.scope,
                "the graph builds this cell but the checkpoint has no variables for it",
            )
        })?;
        for (i, b) in cell.branches.iter().enumerate() {
            let var = v.branches.get(i).unwrap_or(&VarOp::Nothing);
            if !graph_fits_vars(b, var) {
                notes.push(format!(
                    "{}: variables imply {}, the graph builds {} (graph wins)",
                    branch_name(&cell.scope, i),
                    describe(var),
                    b.op
                ));
            }
        }
        let named = v.prev_adjust.unwrap_or(PrevAdjust::Unchanged);
        let graph = if cell.prev_adjust == PrevAdjust::UseInput {
            PrevAdjust::Unchanged
        } else {
            cell.prev_adjust
        };
        if named != graph {
            notes.push(format!(
                "{}: variables imply prev adjustment {named:?}, the graph has {:?} (graph wins)",
                cell.scope, cell.prev_adjust
            ));
        }
    }
    for v in &vars.cells {
        if !facts.cells.iter().any(|c| c.scope == v.scope) {
            notes.push(format!(
                "{}: {} variables that the graph does not use",
                v.scope, v.count
            ));
        }
    }
    Ok(())
}

fn graph_fits_vars(b: &GraphBranch, var: &VarOp) -> bool {
    match (b.op, var) {
        (Operation::AvgPool { .. } | Operation::MaxPool { .. }, VarOp::Projection) => b.projection,
        (Operation::AvgPool { .. } | Operation::MaxPool { .. }, VarOp::Nothing) => !b.projection,
        (Operation::Identity, VarOp::Nothing) => true,
        (Operation::Identity, _) => false,
        (op, var) => var_op_fits(op, var),
    }
}

fn describe(var: &VarOp) -> String {
    match var {
        VarOp::Separable { kernel, repeats } => Operation::Separable {
            kernel: *kernel,
            repeats: *repeats,
        }
        .name(),
        VarOp::Factorized { kernel } => Operation::Factorized { kernel: *kernel }.name(),
        VarOp::Conv { kernel } => format!("a {kernel}x{kernel} conv"),
        VarOp::Projection => "only a 1x1 conv".to_string(),
        VarOp::Nothing => "no variables (a pool or identity)".to_string(),
    }
}

/// The order implied by names (widths) vs the graph's chain of inputs.
fn compare_order(
    vars: &VariableFacts,
    facts: &GraphFacts,
    notes: &mut Vec<String>,
) -> Result<(), GenotypeError> {
    let one_cell_type = facts.cells.iter().any(|c| {
        c.kind == CellKind::Reduction
            && crate::variables::parse_cell_scope(&c.scope).map(|s| s.0) == Some(CellKind::Normal)
    });
    let named: Vec<String> = match vars.order(one_cell_type) {
        Ok(order) => order.into_iter().map(|c| c.scope).collect(),
        Err(e) => {
            notes.push(format!(
                "cell order from names: {e} (the graph's order is used)"
            ));
            return Ok(());
        }
    };
    let graph: Vec<&str> = facts.cells.iter().map(|c| c.scope.as_str()).collect();
    if named != graph {
        let at = named
            .iter()
            .zip(&graph)
            .position(|(a, b)| a != b)
            .unwrap_or(named.len().min(graph.len()));
        notes.push(format!(
            "cell order: names imply {:?} at position {at}, the graph chains {:?} (graph wins)",
            named.get(at),
            graph.get(at)
        ));
    }
    Ok(())
}

/// Cell plan in graph order, widths from the variables, prev inputs from the graph.
fn plan_from_graph(
    vars: &VariableFacts,
    cells: &[GraphCell],
) -> Result<Vec<CellPlan>, GenotypeError> {
    let index_of = |source: &Source| -> Option<usize> {
        match source {
            Source::Stem => Some(0),
            Source::Cell(scope) => cells.iter().position(|c| &c.scope == scope).map(|i| i + 1),
        }
    };
    cells
        .iter()
        .map(|cell| {
            let v = vars
                .cell(&cell.scope)
                .ok_or_else(|| GenotypeError::vars(&cell.scope, "no variables for this cell"))?;
            let prev = match (&cell.prev, cell.prev_adjust) {
                (_, PrevAdjust::UseInput) | (None, _) => None,
                (Some(source), _) => Some(index_of(source).ok_or_else(|| {
                    GenotypeError::graph(
                        &cell.scope,
                        format!("prev_layer {source:?} is not a cell"),
                    )
                })?),
            };
            Ok(CellPlan {
                scope: cell.scope.clone(),
                kind: cell.kind,
                filters: v.filters,
                prev,
            })
        })
        .collect()
}

fn choose_image_size(
    given: Option<[usize; 2]>,
    facts: &GraphFacts,
    notes: &mut Vec<String>,
) -> Result<[usize; 2], GenotypeError> {
    let graph = facts.attachment_image_size.or(facts.input_image_size);
    if let (Some(g), Some(o)) = (given, graph) {
        if g != o {
            notes.push(format!(
                "image size: given {g:?}, the module says {o:?} (the given size is used)"
            ));
        }
    }
    given.or(graph).ok_or(GenotypeError::NoImageSize)
}

/// The graph's own view of prev adjustment and output shape wins over the computed one.
fn reconcile_with_graph(layout: &mut CellLayout, cell: &GraphCell, notes: &mut Vec<String>) {
    if layout.prev_adjust != cell.prev_adjust {
        notes.push(format!(
            "{}: the layout rules give prev adjustment {:?}, the graph has {:?} (graph wins)",
            layout.scope, layout.prev_adjust, cell.prev_adjust
        ));
        layout.prev_adjust = cell.prev_adjust;
    }
    let computed = [
        layout.output_hw[0],
        layout.output_hw[1],
        layout.output_channels,
    ];
    if let Some(shape) = cell.output_shape.filter(|s| *s != computed) {
        notes.push(format!(
            "{}: computed output {computed:?}, the graph records {shape:?}",
            layout.scope
        ));
    }
}

/// Weights must fit: the 1x1 input width and the prev adjustment's input width.
fn check_layout_against_vars(
    cells: &[CellLayout],
    vars: &VariableFacts,
) -> Result<(), GenotypeError> {
    let width_of = |index: usize| {
        if index == 0 {
            vars.stem_filters
        } else {
            cells[index - 1].output_channels
        }
    };
    for layout in cells {
        let v = vars
            .cell(&layout.scope)
            .ok_or_else(|| GenotypeError::vars(&layout.scope, "no variables"))?;
        if v.net_channels != layout.input_channels {
            return Err(GenotypeError::layout(
                &layout.scope,
                format!(
                    "{} take {} channels, but the cell input has {}",
                    conventions().weights(&conventions().cell.input_conv),
                    v.net_channels,
                    layout.input_channels
                ),
            ));
        }
        let adjusted = matches!(
            layout.prev_adjust,
            PrevAdjust::FactorizedReduction | PrevAdjust::Prev1x1
        );
        match (adjusted, v.prev_adjust, layout.prev) {
            (true, Some(named), _) if named != layout.prev_adjust => {
                return Err(GenotypeError::layout(
                    &layout.scope,
                    format!(
                        "prev adjustment {:?}, but the variables are for {named:?}",
                        layout.prev_adjust
                    ),
                ))
            }
            (true, None, _) => {
                return Err(GenotypeError::layout(
                    &layout.scope,
                    format!("prev adjustment {:?} has no variables", layout.prev_adjust),
                ))
            }
            (true, Some(_), Some(p)) if v.prev_channels != Some(width_of(p)) => {
                return Err(GenotypeError::layout(
                    &layout.scope,
                    format!(
                        "prev adjustment weights take {:?} channels, but prev_layer has {}",
                        v.prev_channels,
                        width_of(p)
                    ),
                ))
            }
            (false, Some(named), _) => {
                return Err(GenotypeError::layout(
                    &layout.scope,
                    format!("variables for a {named:?} prev adjustment, but the layout needs none"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    genotype: Genotype,
    cells: Vec<CellLayout>,
    vars: &VariableFacts,
    stem_filters: usize,
    image_size: [usize; 2],
    eps: f32,
    scaling: (f32, f32),
) -> Result<NetworkSpec, GenotypeError> {
    let last = cells
        .last()
        .ok_or_else(|| GenotypeError::vars("(cells)", "no cells"))?;
    let num_features = last.output_channels;
    let first_normal = cells
        .iter()
        .find(|c| c.kind == CellKind::Normal)
        .ok_or_else(|| GenotypeError::vars("(cells)", "no normal cell"))?;
    let filters = first_normal.filters;
    let first_reduction = cells.windows(2).find(|w| w[1].kind == CellKind::Reduction);
    let filter_scaling_rate = match first_reduction {
        None => 2,
        Some(w) if w[0].filters > 0 && w[1].filters % w[0].filters == 0 => {
            w[1].filters / w[0].filters
        }
        Some(w) => {
            return Err(GenotypeError::layout(
                &w[1].scope,
                "width is not a whole multiple of the stack before it",
            ))
        }
    };
    if let Some((features, _)) = vars.fc.filter(|(f, _)| *f != num_features) {
        return Err(GenotypeError::layout(
            &conventions().head.fc_weights,
            format!("weights take {features} features, but the last cell outputs {num_features}"),
        ));
    }
    let (num_cells, reduction_indices) = cell_numbering(&cells);
    let spec = NetworkSpec {
        genotype,
        filters,
        num_cells,
        reduction_indices,
        stem_filters,
        stem_scope: vars.stem_scope.clone(),
        num_stem_cells: count(&cells, CellKind::Stem),
        filter_scaling_rate,
        image_size,
        num_classes: vars.fc.map(|(_, c)| c),
        num_features,
        batch_norm_epsilon: eps,
        input_scale: scaling.0,
        input_offset: scaling.1,
        cells,
    };
    // The one validation every description passes, here as it is built.
    spec.validate()?;
    Ok(spec)
}
