//! Inference batch norm: folding into the preceding conv, or as scale/shift.

/// Per-channel `(scale, shift)` of `y = gamma*(x-mean)/sqrt(var+eps) + beta`,
/// computed in f64 so the fold adds no rounding beyond the final f32 cast.
///
/// Panics if the four slices differ in length.
pub fn batch_norm_scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let c = gamma.len();
    assert!(
        beta.len() == c && mean.len() == c && var.len() == c,
        "batch norm parameter lengths differ"
    );
    (0..c)
        .map(|i| {
            let scale = f64::from(gamma[i]) / (f64::from(var[i]) + f64::from(eps)).sqrt();
            let shift = f64::from(beta[i]) - f64::from(mean[i]) * scale;
            (scale as f32, shift as f32)
        })
        .unzip()
}

/// Fold inference batch norm into a preceding bias-free conv whose weights
/// have `cout` as the last (fastest) axis (HWIO, `[cin][cout]`, depthwise
/// `[k][k][c]`): scales the weights in place and returns the bias.
///
/// Panics if `weights.len()` is not a multiple of `cout` or the parameter
/// lengths are not `cout`.
pub fn fold_batch_norm(
    weights: &mut [f32],
    cout: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Vec<f32> {
    assert_eq!(gamma.len(), cout, "gamma length");
    assert!(
        cout > 0 && weights.len().is_multiple_of(cout),
        "weights are not [..][cout]"
    );
    let c = gamma.len();
    assert!(
        beta.len() == c && mean.len() == c && var.len() == c,
        "batch norm parameter lengths differ"
    );
    let scale: Vec<f64> = (0..c)
        .map(|i| f64::from(gamma[i]) / (f64::from(var[i]) + f64::from(eps)).sqrt())
        .collect();
    for row in weights.chunks_exact_mut(cout) {
        for (w, s) in row.iter_mut().zip(&scale) {
            *w = (f64::from(*w) * s) as f32;
        }
    }
    (0..c)
        .map(|i| (f64::from(beta[i]) - f64::from(mean[i]) * scale[i]) as f32)
        .collect()
}
