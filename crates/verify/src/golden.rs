//! Golden files: what TensorFlow computed for a batch of images.
//!
//! A golden file is untrusted input. [`Golden::open`] validates it once, completely, before
//! anything is compared: every tensor has a known name (`images`, `logits`, `features`,
//! `cell_output/<scope>`), is float32, has a shape within the caps below, and holds only
//! finite values. A [`Golden`] can only be made that way (its fields are private), so the
//! comparison never meets a golden value that could switch the bar off.

use crate::limits::{
    MAX_CELLS, MAX_CHANNELS, MAX_CLASSES, MAX_FEATURES, MAX_GOLDEN_BYTES, MAX_IMAGES,
    MAX_IMAGE_SIDE, MAX_SCOPE_LEN,
};
use nasnet_forward::Tensor;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a golden file cannot be used (bad input: the command exits 2).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct GoldenError {
    pub path: PathBuf,
    pub problem: String,
}

/// Row-major values and their `[rows, columns]` shape.
pub type Matrix = (Vec<f32>, [usize; 2]);

/// The contents of a golden file, validated (see the module documentation).
#[derive(Debug)]
pub struct Golden {
    pub(crate) path: PathBuf,
    /// `[N, H, W, 3]`.
    pub(crate) images: Tensor,
    /// `[N, classes]`, when the module classifies.
    pub(crate) logits: Option<Matrix>,
    /// `[N, features]`.
    pub(crate) features: Option<Matrix>,
    /// Cell scope -> output `[N, h, w, c]`.
    pub(crate) cells: BTreeMap<String, Tensor>,
}

pub(crate) const CELL_PREFIX: &str = "cell_output/";

/// What a tensor of a golden file is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Images,
    Logits,
    Features,
    Cell(String),
}

impl Golden {
    /// Reads and validates a golden file (a regular file of at most [`MAX_GOLDEN_BYTES`]).
    pub fn open(path: &Path) -> Result<Golden, GoldenError> {
        let bytes = safe_fs::read_regular(path, MAX_GOLDEN_BYTES)
            .map_err(|e| golden_error(path, format!("cannot read: {e}")))?;
        Golden::from_bytes(path, &bytes)
    }

    /// Validates the bytes of a golden file; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Golden, GoldenError> {
        parse(bytes)
            .map_err(|problem| golden_error(path, problem))
            .map(|parts| Golden {
                path: path.to_path_buf(),
                ..parts
            })
    }

    /// The file this golden was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The images `[N, H, W, 3]`.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// Number of images.
    pub fn batch(&self) -> usize {
        self.images.shape[0]
    }

    /// `[N, classes]` logits, when the golden has them.
    pub fn logits(&self) -> Option<&Matrix> {
        self.logits.as_ref()
    }

    /// `[N, features]` feature vectors, when the golden has them.
    pub fn features(&self) -> Option<&Matrix> {
        self.features.as_ref()
    }

    /// Cell scope -> golden output `[N, h, w, c]`.
    pub fn cells(&self) -> &BTreeMap<String, Tensor> {
        &self.cells
    }
}

pub(crate) fn golden_error(path: &Path, problem: String) -> GoldenError {
    GoldenError {
        path: path.to_path_buf(),
        problem,
    }
}

/// Everything but the path, which the caller fills in.
fn parse(bytes: &[u8]) -> Result<Golden, String> {
    // Names the tensor at fault (and refuses repeated names), which the crate's own
    // validation below does not.
    model_io::check_safetensors_bytes(bytes)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let roles = roles(&st)?;
    let images = roles
        .iter()
        .find(|(_, role)| *role == Role::Images)
        .ok_or_else(|| {
            "no `images` tensor: a golden file holds images [N,H,W,3], logits, features and \
             cell_output/<scope> tensors (make one with `cargo xtask golden`)"
                .to_string()
        })?;
    let n = check_images_shape(view(&st, &images.0)?.shape())?;
    // Every name, dtype and shape is checked before any value is decoded.
    for (name, role) in &roles {
        check_shape(name, role, view(&st, name)?.shape(), n)?;
    }
    if !roles
        .iter()
        .any(|(_, r)| matches!(r, Role::Logits | Role::Features))
    {
        return Err("neither `logits` nor `features`: nothing to compare".into());
    }
    let mut golden = Golden {
        path: PathBuf::new(),
        images: nhwc(&view(&st, "images")?, "images")?,
        logits: None,
        features: None,
        cells: BTreeMap::new(),
    };
    for (name, role) in &roles {
        let view = view(&st, name)?;
        match role {
            Role::Images => {}
            Role::Logits => golden.logits = Some(matrix(&view, "logits", n, MAX_CLASSES)?),
            Role::Features => golden.features = Some(matrix(&view, "features", n, MAX_FEATURES)?),
            Role::Cell(scope) => {
                golden.cells.insert(scope.clone(), nhwc(&view, name)?);
            }
        }
    }
    Ok(golden)
}

/// Every tensor's role, in name order; an unknown name is an error naming it.
fn roles(st: &SafeTensors<'_>) -> Result<Vec<(String, Role)>, String> {
    let mut names = st.names();
    // Cells, plus images, logits and features.
    if names.len() > MAX_CELLS + 3 {
        return Err(format!(
            "{} tensors, more than the limit of {} ({MAX_CELLS} cells plus images, logits, \
             features): not a golden file",
            names.len(),
            MAX_CELLS + 3
        ));
    }
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| role(name).map(|role| (name.to_string(), role)))
        .collect()
}

fn role(name: &str) -> Result<Role, String> {
    match name {
        "images" => Ok(Role::Images),
        "logits" => Ok(Role::Logits),
        "features" => Ok(Role::Features),
        _ => match name.strip_prefix(CELL_PREFIX) {
            Some(scope) if is_scope(scope) => Ok(Role::Cell(scope.to_string())),
            Some(_) => Err(format!(
                "tensor {} is not a cell output: a scope is 1 to {MAX_SCOPE_LEN} letters, \
                 digits or '_' (e.g. cell_output/cell_stem_0)",
                quoted(name)
            )),
            None => Err(format!(
                "unknown tensor {}: a golden file holds only `images`, `logits`, `features` \
                 and `cell_output/<scope>`, and every tensor in it must be compared (remove it \
                 or regenerate the file with `cargo xtask golden`)",
                quoted(name)
            )),
        },
    }
}

fn is_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A name from the file, quoted and escaped, and shortened when absurdly long, so that a
/// hostile name cannot flood or drive the terminal.
pub(crate) fn quoted(name: &str) -> String {
    const SHOWN: usize = 80;
    let shown: String = name.chars().take(SHOWN).collect();
    if shown.len() < name.len() {
        format!("{shown:?}… ({} bytes)", name.len())
    } else {
        format!("{shown:?}")
    }
}

fn view<'a>(st: &SafeTensors<'a>, name: &str) -> Result<TensorView<'a>, String> {
    let view = st
        .tensor(name)
        .map_err(|e| format!("`{name}` cannot be read: {e}"))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(format!(
            "`{name}` is {:?}, expected F32 (golden values are float32)",
            view.dtype()
        ));
    }
    Ok(view)
}

/// Checks `images` is `[N, H, W, 3]` within the caps; returns N.
fn check_images_shape(shape: &[usize]) -> Result<usize, String> {
    let bad = |why: String| format!("`images` has shape {shape:?}, expected [N, H, W, 3]: {why}");
    let [n, h, w, c] = *shape else {
        return Err(bad("not 4 dimensions".into()));
    };
    if c != 3 {
        return Err(bad(format!("{c} channels, not 3 (RGB)")));
    }
    check_dim("N (images)", n, MAX_IMAGES).map_err(&bad)?;
    check_dim("H", h, MAX_IMAGE_SIDE).map_err(&bad)?;
    check_dim("W", w, MAX_IMAGE_SIDE).map_err(&bad)?;
    Ok(n)
}

/// `value` is in `1..=cap`; the message names the cap.
fn check_dim(what: &str, value: usize, cap: usize) -> Result<(), String> {
    if (1..=cap).contains(&value) {
        Ok(())
    } else {
        Err(format!("{what} is {value}, allowed 1 to {cap}"))
    }
}

fn check_shape(name: &str, role: &Role, shape: &[usize], n: usize) -> Result<(), String> {
    match role {
        Role::Images => Ok(()),
        Role::Logits => check_matrix_shape(name, shape, n, MAX_CLASSES).map(|_| ()),
        Role::Features => check_matrix_shape(name, shape, n, MAX_FEATURES).map(|_| ()),
        Role::Cell(_) => check_cell_shape(name, shape, n),
    }
}

fn check_cell_shape(name: &str, shape: &[usize], n: usize) -> Result<(), String> {
    let [batch, h, w, c] = *shape else {
        return Err(format!(
            "`{name}` has shape {shape:?}, expected 4 dimensions [N, h, w, c] (NHWC)"
        ));
    };
    if batch != n {
        return Err(format!("`{name}` has batch {batch} but `images` has {n}"));
    }
    let caps = [
        ("h", h, MAX_IMAGE_SIDE),
        ("w", w, MAX_IMAGE_SIDE),
        ("c", c, MAX_CHANNELS),
    ];
    for (what, value, cap) in caps {
        check_dim(what, value, cap)
            .map_err(|why| format!("`{name}` has shape {shape:?}: {why}"))?;
    }
    Ok(())
}

fn check_matrix_shape(
    name: &str,
    shape: &[usize],
    n: usize,
    cap: usize,
) -> Result<[usize; 2], String> {
    let shape: [usize; 2] = shape
        .try_into()
        .map_err(|_| format!("`{name}` has shape {shape:?}, expected [N, K]"))?;
    if shape[0] != n {
        return Err(format!(
            "`{name}` has batch {} but `images` has {n}",
            shape[0]
        ));
    }
    check_dim("K", shape[1], cap).map_err(|why| format!("`{name}` has shape {shape:?}: {why}"))?;
    Ok(shape)
}

fn matrix(view: &TensorView<'_>, name: &str, n: usize, cap: usize) -> Result<Matrix, String> {
    let shape = check_matrix_shape(name, view.shape(), n, cap)?;
    Ok((finite_values(view, name)?, shape))
}

fn nhwc(view: &TensorView<'_>, name: &str) -> Result<Tensor, String> {
    let shape: [usize; 4] = view
        .shape()
        .try_into()
        .map_err(|_| format!("`{name}` has shape {:?}, expected NHWC", view.shape()))?;
    Tensor::from_vec(finite_values(view, name)?, shape)
        .ok_or_else(|| format!("`{name}`: the data does not match the shape {shape:?}"))
}

/// The float32 values of `view`, refusing NaN and ±Inf: a non-finite golden value would make
/// the bar (which scales with the largest golden value) infinite or meaningless.
fn finite_values(view: &TensorView<'_>, name: &str) -> Result<Vec<f32>, String> {
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "`{name}` holds {} at element {index} of {:?}: golden values must be finite \
             (a damaged file or a TensorFlow run that overflowed; regenerate it with \
             `cargo xtask golden`)",
            describe_non_finite(*value),
            view.shape()
        ));
    }
    Ok(values)
}

pub(crate) fn describe_non_finite(value: f32) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{golden_bytes, parse, ramp, refused, small_golden, Spec};
    use proptest::prelude::*;

    fn with(edit: impl FnOnce(&mut Vec<Spec<'static>>)) -> Vec<Spec<'static>> {
        let mut tensors = small_golden();
        edit(&mut tensors);
        tensors
    }

    #[test]
    fn a_valid_golden_is_read_whole() {
        let g = parse(&small_golden()).unwrap();
        assert_eq!(g.batch(), 2);
        assert_eq!(g.images().shape, [2, 4, 4, 3]);
        assert_eq!(g.logits().unwrap().1, [2, 5]);
        assert_eq!(g.features().unwrap().0, ramp(6));
        assert_eq!(g.cells().keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(g.cells()["b"].data, ramp(8));
    }

    #[test]
    fn non_finite_values_in_every_kind_of_tensor_are_refused() {
        for index in 0..small_golden().len() {
            for (bad, word) in [
                (f32::NAN, "NaN"),
                (f32::INFINITY, "+Inf"),
                (f32::NEG_INFINITY, "-Inf"),
            ] {
                let tensors = with(|t| {
                    let values = &mut t[index].2;
                    let last = values.len() - 1;
                    values[last] = bad;
                });
                let name = tensors[index].0;
                let text = refused(&tensors);
                assert!(text.contains(&format!("`{name}` holds {word}")), "{text}");
                assert!(text.contains("must be finite"), "{text}");
            }
        }
    }

    #[test]
    fn unknown_tensor_names_are_refused() {
        for name in [
            "extra",
            "logits2",
            "cell_output/",
            "cell_output/a/b",
            "cell_output/\u{1b}[2J",
        ] {
            let tensors = with(|t| t.push((name, vec![1], vec![0.0])));
            let text = refused(&tensors);
            assert!(text.contains(&format!("{name:?}")), "{name}: {text}");
        }
    }

    #[test]
    fn a_hostile_long_name_is_shortened_in_the_message() {
        let long = "x".repeat(10_000);
        let name: &'static str = Box::leak(long.into_boxed_str());
        let text = refused(&with(|t| t.push((name, vec![1], vec![0.0]))));
        assert!(text.len() < 1000, "{}", text.len());
        assert!(text.contains("10000 bytes"), "{text}");
    }

    #[test]
    fn other_dtypes_are_refused_naming_the_tensor() {
        let bytes = [0u8; 16];
        for (name, shape) in [
            ("features", vec![2, 1]),
            ("cell_output/a", vec![2, 1, 1, 1]),
        ] {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, shape, &bytes)
                .unwrap();
            let mut views = vec![(name.to_string(), view)];
            let others = with(|t| t.retain(|s| s.0 != name));
            let other_bytes = golden_bytes(&others);
            let st = SafeTensors::deserialize(&other_bytes).unwrap();
            views.extend(st.tensors());
            let file = safetensors::serialize(views, None).unwrap();
            let err = Golden::from_bytes(Path::new("g.safetensors"), &file).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("`{name}` is F64")), "{text}");
        }
    }

    #[test]
    fn zero_or_too_many_images_are_refused_naming_the_cap() {
        let zero = with(|t| t[0] = ("images", vec![0, 4, 4, 3], vec![]));
        assert!(refused(&zero).contains("N (images) is 0, allowed 1 to 64"));
        let many = MAX_IMAGES + 1;
        let too_many = vec![
            ("images", vec![many, 1, 1, 3], vec![0.5; many * 3]),
            ("features", vec![many, 1], vec![0.5; many]),
        ];
        let text = refused(&too_many);
        assert!(text.contains("N (images) is 65, allowed 1 to 64"), "{text}");
    }

    #[test]
    fn empty_and_absurd_dimensions_are_refused_naming_the_cap() {
        let cases: Vec<(Spec<'static>, &str)> = vec![
            (
                ("images", vec![2, 0, 4, 3], vec![]),
                "H is 0, allowed 1 to 4096",
            ),
            (("images", vec![2, 4, 4, 1], ramp(32)), "1 channels, not 3"),
            (("images", vec![2, 4, 4], ramp(32)), "not 4 dimensions"),
            (
                ("logits", vec![2, 0], vec![]),
                "K is 0, allowed 1 to 100000",
            ),
            (
                ("cell_output/a", vec![2, 2, 0, 2], vec![]),
                "w is 0, allowed 1 to 4096",
            ),
            (
                (
                    "cell_output/a",
                    vec![2, 1, 1, MAX_CHANNELS + 1],
                    vec![0.0; 2 * (MAX_CHANNELS + 1)],
                ),
                "c is 65537, allowed 1 to 65536",
            ),
            (
                ("cell_output/a", vec![2, 8], ramp(16)),
                "expected 4 dimensions",
            ),
            (
                ("cell_output/a", vec![1, 2, 2, 4], ramp(16)),
                "has batch 1 but `images` has 2",
            ),
            (
                ("logits", vec![3, 5], ramp(15)),
                "`logits` has batch 3 but `images` has 2",
            ),
            (
                ("features", vec![6], ramp(6)),
                "`features` has shape [6], expected [N, K]",
            ),
        ];
        for (replacement, problem) in cases {
            let tensors = with(|t| {
                let slot = t.iter_mut().find(|s| s.0 == replacement.0).unwrap();
                *slot = replacement.clone();
            });
            let text = refused(&tensors);
            assert!(text.contains(problem), "{problem}: {text}");
            assert!(text.contains(&format!("`{}`", replacement.0)), "{text}");
        }
    }

    #[test]
    fn too_many_tensors_are_refused_before_reading_them() {
        let names: Vec<String> = (0..=MAX_CELLS)
            .map(|i| format!("cell_output/c{i}"))
            .collect();
        let mut tensors = small_golden();
        for name in &names {
            let name: &'static str = Box::leak(name.clone().into_boxed_str());
            tensors.push((name, vec![2, 1, 1, 1], vec![0.0; 2]));
        }
        assert!(refused(&tensors).contains("more than the limit of 1027"));
    }

    #[test]
    fn images_alone_are_not_enough() {
        let text = refused(&[("images", vec![1, 1, 1, 3], vec![0.0; 3])]);
        assert!(text.contains("neither `logits` nor `features`"), "{text}");
        let text = refused(&[("logits", vec![1, 1], vec![0.0])]);
        assert!(text.contains("no `images` tensor"), "{text}");
    }

    #[test]
    fn open_refuses_missing_files_fifos_and_files_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.safetensors");
        let text = Golden::open(&missing).unwrap_err().to_string();
        assert!(text.contains("missing.safetensors: cannot read"), "{text}");

        let fifo = dir.path().join("fifo.safetensors");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let text = Golden::open(&fifo).unwrap_err().to_string();
        assert!(
            text.contains("fifo.safetensors") && text.contains("FIFO"),
            "{text}"
        );

        // Sparse: the size is refused from the metadata, nothing is read.
        let huge = dir.path().join("huge.safetensors");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_GOLDEN_BYTES + 1)
            .unwrap();
        let text = Golden::open(&huge).unwrap_err().to_string();
        assert!(
            text.contains(&format!("{MAX_GOLDEN_BYTES}-byte limit")),
            "{text}"
        );

        let good = dir.path().join("good.safetensors");
        std::fs::write(&good, golden_bytes(&small_golden())).unwrap();
        assert_eq!(Golden::open(&good).unwrap().path(), good);
    }

    fn non_finite() -> impl Strategy<Value = f32> {
        prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]
    }

    proptest! {
        #[test]
        fn one_non_finite_value_anywhere_is_refused_naming_its_tensor(
            tensor in 0usize..5,
            at in any::<prop::sample::Index>(),
            bad in non_finite(),
            scale in 1e-3f32..1e6,
        ) {
            let mut tensors = small_golden();
            for t in &mut tensors {
                t.2.iter_mut().for_each(|v| *v *= scale);
            }
            let values = &mut tensors[tensor].2;
            let i = at.index(values.len());
            values[i] = bad;
            let text = refused(&tensors);
            let needle = format!("`{}` holds {} at element {i} ", tensors[tensor].0, describe_non_finite(bad));
            prop_assert!(text.contains(&needle), "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Golden::from_bytes(Path::new("x"), &bytes);
        }

        #[test]
        fn a_mutated_golden_is_refused_or_entirely_finite(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = golden_bytes(&small_golden());
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Ok(g) = Golden::from_bytes(Path::new("x"), &bytes) {
                let all = g.images.data.iter()
                    .chain(g.logits.iter().flat_map(|m| &m.0))
                    .chain(g.features.iter().flat_map(|m| &m.0))
                    .chain(g.cells.values().flat_map(|t| &t.data));
                for v in all {
                    prop_assert!(v.is_finite());
                }
                prop_assert!(g.batch() >= 1 && g.batch() <= MAX_IMAGES);
            }
        }
    }
}
