//! Golden files as `amoeba verify --golden` reads them, and the comparison behind the verdict.
//!
//! Two inputs per run: the fuzzer's bytes as a whole golden file, and a valid small golden
//! (built here) with the fuzzer's bytes applied as byte edits, so that mutations reach past
//! the safetensors header into the values and shapes. Whatever parses must then hold the
//! verify crate's promises, checked here:
//! - a golden fits the model it describes, and our outputs equal to it PASS;
//! - one NaN in our output of any compared tensor makes the verdict FAIL, never PASS;
//! - a NaN tolerance is refused.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use nasnet_forward::{Outputs, Tensor};
use verify::{Golden, ModelOutputs, Options, VerifyError};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check(data);
    check(&mutated_seed(data));
});

fn check(bytes: &[u8]) {
    let Ok(golden) = Golden::from_bytes(Path::new("fuzz.golden.safetensors"), bytes) else {
        return;
    };
    let model = model_of(&golden);
    assert!(
        golden.check_fits(&model).is_ok(),
        "a golden must fit the model it describes"
    );
    let cells: Vec<(&str, &Tensor)> = golden
        .cells()
        .iter()
        .map(|(s, t)| (s.as_str(), t))
        .collect();
    let outputs = outputs_of(&golden);
    let report = verify::judge(&golden, Options::default(), cells.iter().copied(), &outputs)
        .expect("our outputs equal to the golden are comparable");
    assert!(report.pass, "identical outputs must PASS");
    let nan = Options {
        atol: f32::NAN,
        ..Options::default()
    };
    assert!(matches!(
        verify::judge(&golden, nan, cells.iter().copied(), &outputs),
        Err(VerifyError::Usage(_))
    ));
    check_nan_fails(&golden, &cells, &outputs);
}

/// Our outputs with one NaN, in each compared tensor in turn: never a PASS.
fn check_nan_fails(golden: &Golden, cells: &[(&str, &Tensor)], outputs: &Outputs) {
    for k in 0..cells.len() {
        let mut poisoned = cells[k].1.clone();
        poisoned.data[0] = f32::NAN;
        let with_nan = cells
            .iter()
            .enumerate()
            .map(|(i, &(s, t))| (s, if i == k { &poisoned } else { t }));
        let report =
            verify::judge(golden, Options::default(), with_nan, outputs).expect("comparable");
        assert!(!report.pass, "NaN in {} passed", cells[k].0);
    }
    let mut nan_features = outputs.clone();
    if let Some(v) = nan_features.features.first_mut() {
        *v = f32::NAN;
        let report = verify::judge(
            golden,
            Options::default(),
            cells.iter().copied(),
            &nan_features,
        )
        .expect("comparable");
        assert!(!report.pass, "NaN in features passed");
    }
}

fn model_of(golden: &Golden) -> ModelOutputs {
    let [_, h, w, _] = golden.images().shape;
    ModelOutputs {
        image_size: [h, w],
        num_classes: golden.logits().map(|(_, [_, k])| *k),
        num_features: golden.features().map_or(1, |(_, [_, k])| *k),
        cells: golden
            .cells()
            .iter()
            .map(|(s, t)| (s.clone(), [t.shape[1], t.shape[2], t.shape[3]]))
            .collect(),
    }
}

fn outputs_of(golden: &Golden) -> Outputs {
    Outputs {
        n: golden.batch(),
        features: golden.features().map(|m| m.0.clone()).unwrap_or_default(),
        logits: golden.logits().map(|m| m.0.clone()),
    }
}

/// The seed golden with `edits` applied: each 3 bytes are a little-endian u16 offset into
/// the file and a byte to XOR there.
fn mutated_seed(edits: &[u8]) -> Vec<u8> {
    let mut bytes = seed().to_vec();
    for edit in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % bytes.len();
        bytes[at] ^= edit[2];
    }
    bytes
}

/// A valid golden: 1 image 2x2, 3 logits, 2 features, two cells.
fn seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let tensors: [(&str, Vec<usize>); 5] = [
            ("images", vec![1, 2, 2, 3]),
            ("logits", vec![1, 3]),
            ("features", vec![1, 2]),
            ("cell_output/cell_stem_0", vec![1, 1, 1, 2]),
            ("cell_output/cell_0", vec![1, 1, 1, 4]),
        ];
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, shape)| {
                let len = shape.iter().product::<usize>();
                (0..len)
                    .flat_map(|i| (i as f32 * 0.25 - 0.5).to_le_bytes())
                    .collect()
            })
            .collect();
        let views = tensors.iter().zip(&data).map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("seed tensor");
            (name.to_string(), view)
        });
        safetensors::serialize(views, None).expect("seed golden")
    })
}
