//! Does a golden file fit the model? Every golden tensor must be one the model produces, with
//! the shape it produces, or the file is bad input: a golden tensor that cannot be compared
//! is never skipped, and never counted as a failed verification.

use crate::golden::{golden_error, CELL_PREFIX};
use crate::{Golden, GoldenError};
use nasnet_forward::NetworkSpec;

/// What a model produces, as far as a golden file is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOutputs {
    /// Input `[height, width]`.
    pub image_size: [usize; 2],
    /// Logits classes, `None` for a feature-vector-only model.
    pub num_classes: Option<usize>,
    pub num_features: usize,
    /// Every cell in network order: scope and output `[h, w, c]`.
    pub cells: Vec<(String, [usize; 3])>,
}

impl ModelOutputs {
    pub fn of(spec: &NetworkSpec) -> ModelOutputs {
        ModelOutputs {
            image_size: spec.image_size,
            num_classes: spec.num_classes,
            num_features: spec.num_features,
            cells: spec
                .cells
                .iter()
                .map(|c| {
                    let [h, w] = c.output_hw;
                    (c.scope.clone(), [h, w, c.output_channels])
                })
                .collect(),
        }
    }
}

impl Golden {
    /// Checks that the golden file fits a network like `spec` (image size, classes, feature
    /// length, every cell's name and shape), so a golden of another model is reported as bad
    /// input, not as a failed verification.
    pub fn check_against(&self, spec: &NetworkSpec) -> Result<(), GoldenError> {
        self.check_fits(&ModelOutputs::of(spec))
    }

    /// [`Golden::check_against`] for a model described by what it outputs.
    pub fn check_fits(&self, model: &ModelOutputs) -> Result<(), GoldenError> {
        self.check_heads(model)
            .and_then(|()| self.check_cells(model))
            .map_err(|problem| golden_error(&self.path, problem))
    }

    fn check_heads(&self, model: &ModelOutputs) -> Result<(), String> {
        let [_, h, w, _] = self.images.shape;
        let [mh, mw] = model.image_size;
        if [h, w] != model.image_size {
            return Err(format!(
                "`images` are {h}x{w} but the model takes {mh}x{mw}: a golden file of another \
                 model?"
            ));
        }
        match (&self.logits, model.num_classes) {
            (Some((_, [_, classes])), Some(ours)) if *classes != ours => {
                return Err(format!(
                    "`logits` have {classes} classes but the model has {ours}"
                ))
            }
            (Some(_), None) => {
                return Err(
                    "`logits` cannot be compared: the model has no classifier (a \
                            feature-vector module); a golden file of another model?"
                        .into(),
                )
            }
            _ => {}
        }
        if let Some((_, [_, dim])) = &self.features {
            if *dim != model.num_features {
                return Err(format!(
                    "`features` have {dim} values but the model's feature vector has {}",
                    model.num_features
                ));
            }
        }
        Ok(())
    }

    fn check_cells(&self, model: &ModelOutputs) -> Result<(), String> {
        let n = self.batch();
        for (scope, tensor) in &self.cells {
            let name = format!("{CELL_PREFIX}{scope}");
            let Some((_, [h, w, c])) = model.cells.iter().find(|(s, _)| s == scope) else {
                return Err(format!(
                    "`{name}` cannot be compared: the model has no cell `{scope}` (its cells: \
                     {}); a golden file of another model?",
                    cell_list(model)
                ));
            };
            let expected = [n, *h, *w, *c];
            if tensor.shape != expected {
                return Err(format!(
                    "`{name}` has shape {:?} but the model's cell `{scope}` outputs {expected:?} \
                     for {n} images: a golden file of another model?",
                    tensor.shape
                ));
            }
        }
        Ok(())
    }
}

/// The model's cell scopes, shortened for a message when there are many.
fn cell_list(model: &ModelOutputs) -> String {
    const SHOWN: usize = 8;
    let mut list: Vec<&str> = model
        .cells
        .iter()
        .take(SHOWN)
        .map(|(s, _)| s.as_str())
        .collect();
    if model.cells.len() > SHOWN {
        list.push("…");
        if let Some((last, _)) = model.cells.last() {
            list.push(last);
        }
    }
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{parse, small_golden, small_model};

    fn misfit(model: &ModelOutputs) -> String {
        let golden = parse(&small_golden()).unwrap();
        let text = golden.check_fits(model).unwrap_err().to_string();
        assert!(text.starts_with("test.golden.safetensors: "), "{text}");
        text
    }

    #[test]
    fn a_golden_of_this_model_fits() {
        let golden = parse(&small_golden()).unwrap();
        assert!(golden.check_fits(&small_model()).is_ok());
        // A golden may leave cells out (they are reported as not compared).
        let mut fewer = small_golden();
        fewer.retain(|t| t.0 != "cell_output/a");
        assert!(parse(&fewer).unwrap().check_fits(&small_model()).is_ok());
    }

    #[test]
    fn a_cell_the_model_does_not_have_is_refused_naming_it() {
        let mut model = small_model();
        model.cells.retain(|(s, _)| s != "b");
        let text = misfit(&model);
        assert!(
            text.contains("`cell_output/b` cannot be compared: the model has no cell `b`"),
            "{text}"
        );
        assert!(text.contains("its cells: a"), "{text}");
    }

    #[test]
    fn a_cell_of_another_shape_is_refused_naming_both_shapes() {
        for wrong in [[1, 2, 2], [2, 1, 2], [2, 2, 3]] {
            let mut model = small_model();
            model.cells[0].1 = wrong;
            let text = misfit(&model);
            let expected = format!("outputs {:?}", [2, wrong[0], wrong[1], wrong[2]]);
            assert!(
                text.contains("`cell_output/a` has shape [2, 2, 2, 2]"),
                "{text}"
            );
            assert!(text.contains(&expected), "{text}");
        }
    }

    #[test]
    fn heads_of_another_model_are_refused() {
        let mut model = small_model();
        model.num_classes = None;
        assert!(misfit(&model).contains("`logits` cannot be compared: the model has no classifier"));
        let mut model = small_model();
        model.num_classes = Some(6);
        assert!(misfit(&model).contains("`logits` have 5 classes but the model has 6"));
        let mut model = small_model();
        model.num_features = 4;
        assert!(misfit(&model)
            .contains("`features` have 3 values but the model's feature vector has 4"));
        let mut model = small_model();
        model.image_size = [4, 5];
        assert!(misfit(&model).contains("`images` are 4x4 but the model takes 4x5"));
    }

    #[test]
    fn a_long_cell_list_is_shortened() {
        let mut model = small_model();
        model.cells = (0..20).map(|i| (format!("cell_{i}"), [1, 1, 1])).collect();
        let text = misfit(&model);
        assert!(text.contains("cell_7, …, cell_19"), "{text}");
        assert!(!text.contains("cell_8,"), "{text}");
    }
}
