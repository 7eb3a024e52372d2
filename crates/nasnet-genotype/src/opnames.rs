//! Operation names as the official genotypes spell them (`separable_3x3_2`, `1x7_7x1`, ...),
//! both ways, and the small helpers on the data model that use them.

use crate::error::GenotypeError;
use crate::spec::{CellKind, CellSpec, Genotype, NetworkSpec, Operation};
use std::fmt;

impl Operation {
    /// The genotype name of this operation (`separable_3x3_2`, `none`, `avg_pool_3x3`, ...).
    pub fn name(&self) -> String {
        match *self {
            Operation::Separable { kernel: k, repeats } => format!("separable_{k}x{k}_{repeats}"),
            Operation::AvgPool { kernel: k } => format!("avg_pool_{k}x{k}"),
            Operation::MaxPool { kernel: k } => format!("max_pool_{k}x{k}"),
            Operation::Identity => "none".to_string(),
            Operation::Conv1x1 => "1x1".to_string(),
            Operation::Factorized { kernel: k } => format!("1x{k}_{k}x1"),
            Operation::Conv {
                kernel: k,
                dilation: 1,
            } => format!("{k}x{k}"),
            Operation::Conv {
                kernel: k,
                dilation,
            } => format!("dilated_{k}x{k}_rate_{dilation}"),
        }
    }

    /// A short label for drawings: `sep 3x3`, `avg 3x3`, `id`, ...
    pub fn short_label(&self) -> String {
        match *self {
            Operation::Separable {
                kernel: k,
                repeats: 2,
            } => format!("sep {k}x{k}"),
            Operation::Separable { kernel: k, repeats } => format!("sep {k}x{k} x{repeats}"),
            Operation::AvgPool { kernel: k } => format!("avg {k}x{k}"),
            Operation::MaxPool { kernel: k } => format!("max {k}x{k}"),
            Operation::Identity => "identity".to_string(),
            Operation::Conv1x1 => "conv 1x1".to_string(),
            Operation::Factorized { kernel: k } => format!("1x{k} + {k}x1"),
            Operation::Conv {
                kernel: k,
                dilation: 1,
            } => format!("conv {k}x{k}"),
            Operation::Conv {
                kernel: k,
                dilation,
            } => format!("conv {k}x{k} d{dilation}"),
        }
    }

    /// Parses a genotype operation name. `dil_D_separable_KxK_N` parses as `separable_KxK_N`
    /// because the official code ignores that dilation (the graph's depthwise `dilations` is 1).
    pub fn parse(name: &str) -> Result<Operation, GenotypeError> {
        let unknown = || GenotypeError::UnknownOperation(name.to_string());
        let square = |s: &str| -> Option<usize> {
            let (a, b) = s.split_once('x')?;
            let k = a.parse().ok()?;
            (b.parse::<usize>().ok()? == k).then_some(k)
        };
        if name == "none" {
            return Ok(Operation::Identity);
        }
        if name == "1x1" {
            return Ok(Operation::Conv1x1);
        }
        let sep = name
            .strip_prefix("dil_")
            .and_then(|r| r.split_once('_'))
            .map_or(name, |(_, rest)| rest);
        if let Some(rest) = sep.strip_prefix("separable_") {
            let (k, n) = rest.rsplit_once('_').ok_or_else(unknown)?;
            let kernel = square(k).ok_or_else(unknown)?;
            let repeats = n.parse().map_err(|_| unknown())?;
            return Ok(Operation::Separable { kernel, repeats });
        }
        if let Some(k) = name.strip_prefix("avg_pool_") {
            return Ok(Operation::AvgPool {
                kernel: square(k).ok_or_else(unknown)?,
            });
        }
        if let Some(k) = name.strip_prefix("max_pool_") {
            return Ok(Operation::MaxPool {
                kernel: square(k).ok_or_else(unknown)?,
            });
        }
        if let Some(rest) = name.strip_prefix("dilated_") {
            let (k, rate) = rest.split_once("_rate_").ok_or_else(unknown)?;
            let kernel = square(k).ok_or_else(unknown)?;
            let dilation = rate.parse().map_err(|_| unknown())?;
            return Ok(Operation::Conv { kernel, dilation });
        }
        if let Some(kernel) = square(name) {
            return Ok(Operation::Conv {
                kernel,
                dilation: 1,
            });
        }
        // `1xK_Kx1`
        let (row, col) = name.split_once('_').ok_or_else(unknown)?;
        let k: usize = row
            .strip_prefix("1x")
            .and_then(|k| k.parse().ok())
            .ok_or_else(unknown)?;
        if col == format!("{k}x1") {
            return Ok(Operation::Factorized { kernel: k });
        }
        Err(unknown())
    }

    /// Whether the operation has no variables of its own when its input already has the
    /// right width and stride 1 (pools and identity); such ops exist only in the graph.
    pub fn is_parameter_free(&self) -> bool {
        matches!(
            self,
            Operation::AvgPool { .. } | Operation::MaxPool { .. } | Operation::Identity
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl CellSpec {
    /// Builds a cell from genotype operation names, as the official model specs write them.
    pub fn from_names(
        operations: &[&str],
        hiddenstate_indices: &[usize],
        used_hiddenstates: &[u8],
    ) -> Result<CellSpec, GenotypeError> {
        let operations = operations
            .iter()
            .map(|n| Operation::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        let cell = CellSpec {
            operations,
            hiddenstate_indices: hiddenstate_indices.to_vec(),
            used_hiddenstates: used_hiddenstates.to_vec(),
        };
        cell.validate()?;
        Ok(cell)
    }

    /// The operation names (`separable_3x3_2`, ...), in genotype order.
    pub fn operation_names(&self) -> Vec<String> {
        self.operations.iter().map(Operation::name).collect()
    }

    /// Number of combinations (5 in every known genotype).
    pub fn num_combinations(&self) -> usize {
        self.operations.len() / 2
    }

    /// The states concatenated into the output, in index order (those with flag 0).
    pub fn concat_states(&self) -> Vec<usize> {
        (0..self.used_hiddenstates.len())
            .filter(|&j| self.used_hiddenstates[j] == 0)
            .collect()
    }

    /// Checks the cell alone (see [`CellSpec::validate_at`]); messages name fields under `cell`.
    pub fn validate(&self) -> Result<(), GenotypeError> {
        self.validate_at("cell")
    }
}

impl Genotype {
    /// The cell spec a cell of `kind` uses (stem cells are reduction cells).
    pub fn cell(&self, kind: CellKind) -> &CellSpec {
        match kind {
            CellKind::Normal => &self.normal,
            CellKind::Stem | CellKind::Reduction => &self.reduction,
        }
    }

    /// Whether the normal and the reduction cell are one cell (PNASNet-5: one cell type, run
    /// with stride 2 in the stem and at the reductions).
    pub fn has_one_cell_type(&self) -> bool {
        self.normal == self.reduction
    }
}

impl NetworkSpec {
    /// Pretty-printed JSON (the form carried in a converted file's metadata).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses [`NetworkSpec::to_json`]'s output and validates it completely
    /// ([`NetworkSpec::validate`]): a description read from a file is untrusted.
    pub fn from_json(json: &str) -> Result<NetworkSpec, GenotypeError> {
        let spec: NetworkSpec = serde_json::from_str(json)?;
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "separable_3x3_2",
            "separable_7x7_3",
            "avg_pool_3x3",
            "max_pool_2x2",
            "none",
            "1x1",
            "1x7_7x1",
            "1x3_3x1",
            "3x3",
            "dilated_3x3_rate_2",
        ] {
            assert_eq!(Operation::parse(name).unwrap().name(), name);
        }
        assert_eq!(
            Operation::parse("dil_2_separable_5x5_2").unwrap(),
            Operation::Separable {
                kernel: 5,
                repeats: 2
            }
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "",
            "separable_3x5_2",
            "avg_pool_3",
            "1x7_5x1",
            "min_pool",
            "sep",
        ] {
            assert!(Operation::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn invalid_cells_are_refused() {
        let ops = ["none"; 10];
        assert!(CellSpec::from_names(
            &ops,
            &[0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
            &[1, 0, 1, 0, 0, 1, 0]
        )
        .is_ok());
        assert!(CellSpec::from_names(
            &ops,
            &[0, 0, 1, 1, 0, 1, 0, 2, 6, 0],
            &[1, 0, 1, 0, 0, 1, 0]
        )
        .is_err());
        assert!(CellSpec::from_names(&ops, &[0, 0, 1, 1, 0, 1, 0, 2, 5, 0], &[1, 0, 1]).is_err());
    }
}
