//! Plain-text rendering: one equation per combination and a table of the network. Names from
//! the spec pass through [`text_line`], so none can break a line or send terminal escapes.

use crate::escape::text_line;
use crate::model::{cell_title, display_name, one_cell_title, shape};
use nasnet_genotype::{CellKind, CellSpec, NetworkSpec};
use std::fmt::Write;

/// `h2 = avg 3x3 /2 (h0) + max 3x3 /2 (h0)` lines and the output concat.
pub fn cell(spec: &CellSpec, kind: CellKind, name: Option<&str>) -> String {
    let mut out = format!(
        "{}\n  h0 = previous cell, h1 = the cell before\n",
        text_line(&cell_title(kind, name))
    );
    let strided = kind != CellKind::Normal;
    for (j, pair) in spec.operations.chunks(2).enumerate() {
        let terms: Vec<String> = pair
            .iter()
            .enumerate()
            .map(|(side, op)| {
                let h = spec
                    .hiddenstate_indices
                    .get(2 * j + side)
                    .copied()
                    .unwrap_or(0);
                let stride = if strided && h < 2 { "/2" } else { "" };
                format!("{}{stride}(h{h})", op.name())
            })
            .collect();
        let _ = writeln!(out, "  h{} = {}", j + 2, terms.join(" + "));
    }
    let concat: Vec<String> = spec
        .concat_states()
        .iter()
        .map(|j| format!("h{j}"))
        .collect();
    let _ = writeln!(out, "  output = concat[{}]", concat.join(", "));
    out
}

/// Both cells and the per-cell table.
pub fn network(spec: &NetworkSpec) -> String {
    let name = spec.genotype.name.as_deref();
    let mut out = String::new();
    let title = name.map_or_else(|| "Unknown genotype".to_string(), display_name);
    let title = text_line(&title);
    let one_type = spec.genotype.has_one_cell_type();
    let (cells, reductions) = if one_type {
        ("cells", "one cell type, stride 2 in the stem and at cells")
    } else {
        ("normal cells", "reduction cells before normal cells")
    };
    let _ = writeln!(
        out,
        "{title}: N={} {cells}, F={}, stem {} filters, image {}x{}",
        spec.num_cells, spec.filters, spec.stem_filters, spec.image_size[0], spec.image_size[1]
    );
    let _ = writeln!(
        out,
        "{reductions} {:?}; batch-norm epsilon {:e}\n",
        spec.reduction_indices, spec.batch_norm_epsilon
    );
    if one_type {
        out += &cell(&spec.genotype.normal, CellKind::Normal, name).replacen(
            &text_line(&cell_title(CellKind::Normal, name)),
            &text_line(&one_cell_title(name)),
            1,
        );
    } else {
        out += &cell(&spec.genotype.normal, CellKind::Normal, name);
        out.push('\n');
        out += &cell(&spec.genotype.reduction, CellKind::Reduction, name);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<18} {:<9} {:>6} {:>6} {:<16} {:<16} prev",
        "cell", "kind", "width", "stride", "input", "output"
    );
    for c in &spec.cells {
        let kind = format!("{:?}", c.kind).to_lowercase();
        let _ = writeln!(
            out,
            "{:<18} {:<9} {:>6} {:>6} {:<16} {:<16} {:?}",
            text_line(&c.scope),
            kind,
            c.filters,
            c.stride,
            shape(c.input_hw, c.input_channels),
            shape(c.output_hw, c.output_channels),
            c.prev_adjust
        );
    }
    let head = spec.num_classes.map_or_else(
        || "no classifier".to_string(),
        |c| format!("FC -> {c} logits"),
    );
    let _ = writeln!(
        out,
        "head: ReLU, global average pool -> {} features, {head}",
        spec.num_features
    );
    out
}
