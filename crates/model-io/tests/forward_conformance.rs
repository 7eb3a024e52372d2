//! The forward pass on the official conformance module against TensorFlow 1.15's outputs,
//! through the libraries alone (module weights read straight from the checkpoint by
//! `ModuleWeights`, no CLI).

use hub_module::HubModule;
use model_io::ModuleWeights;
use nasnet_forward::{Network, Tensor, WeightSource};
use std::path::Path;

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn shared() -> std::path::PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/conformance");
    assert!(
        shared.is_dir(),
        "conformance data missing at fixtures/conformance (committed with the repository)"
    );
    shared
}

/// The conformance module and the network description extracted from it.
fn conformance_module() -> (HubModule, nasnet_genotype::NetworkSpec) {
    let module = HubModule::open(&shared().join("amoebanet_a_n6_f16")).unwrap();
    let variables: Vec<(String, Vec<usize>)> = module
        .bundle()
        .entries()
        .map(|e| (e.name.clone(), e.shape.clone()))
        .collect();
    let graph = &module.inference_variant().unwrap().meta_graph;
    let spec = nasnet_genotype::extract(graph, &variables, module.image_size())
        .unwrap()
        .spec;
    (module, spec)
}

/// TensorFlow's golden file for the conformance module.
fn golden_bytes() -> Vec<u8> {
    std::fs::read(shared().join("amoebanet_a_n6_f16.golden.safetensors")).unwrap()
}

/// The images the golden outputs were made from.
fn golden_images(golden: &safetensors::SafeTensors) -> Tensor {
    let images = golden.tensor("images").unwrap();
    Tensor::from_vec(f32s(images.data()), images.shape().try_into().unwrap()).unwrap()
}

#[test]
fn logits_features_and_every_cell_match_tensorflow() {
    let (module, spec) = conformance_module();
    let network = Network::load(&spec, &ModuleWeights(&module)).unwrap();
    let bytes = golden_bytes();
    let golden = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let images = golden_images(&golden);

    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let mut cells = 0;
    let out = network
        .forward_with_taps(&images, |scope, t| {
            let theirs = golden.tensor(&format!("cell_output/{scope}")).unwrap();
            assert_eq!(theirs.shape(), t.shape.as_slice(), "{scope}");
            let d = max_diff(&t.data, &f32s(theirs.data()));
            assert!(d < 1e-4, "{scope}: max |diff| {d}");
            cells += 1;
        })
        .unwrap();
    assert_eq!(cells, 10, "two stem cells, six normal, two reduction");
    let logits = f32s(golden.tensor("logits").unwrap().data());
    let features = f32s(golden.tensor("features").unwrap().data());
    assert!(max_diff(out.logits.as_ref().unwrap(), &logits) < 1e-4);
    assert!(max_diff(&out.features, &features) < 1e-4);
}

/// `forward` runs whole images one per thread when the batch allows, the rest as a batch;
/// `forward_with_taps` runs the whole batch at once. Both must give the same numbers, bit for
/// bit, in image order, whatever the thread count.
#[test]
fn image_parallel_batches_match_the_whole_batch_exactly() {
    let (module, spec) = conformance_module();
    let network = Network::load(&spec, &ModuleWeights(&module)).unwrap();
    let bytes = golden_bytes();
    let images = golden_images(&safetensors::SafeTensors::deserialize(&bytes).unwrap());
    assert!(images.shape[0] >= 3, "the golden has several images");
    let whole = network.forward_with_taps(&images, |_, _| {}).unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let split = pool.install(|| network.forward(&images)).unwrap();
        assert_eq!(split.n, whole.n);
        assert_eq!(split.features, whole.features, "{threads} threads");
        assert_eq!(split.logits, whole.logits, "{threads} threads");
    }
    network.release_buffers();
    assert_eq!(nasnet_forward::pooled_bytes(), 0);
}

#[test]
fn wrong_image_size_is_refused() {
    let (module, spec) = conformance_module();
    let network = Network::load(&spec, &ModuleWeights(&module)).unwrap();
    let err = network
        .forward(&Tensor::zeros([1, 224, 224, 3]))
        .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("[1, 224, 224, 3]")
            && err.contains("amoebanet_a_n6_f16 takes [N, 331, 331, 3]"),
        "{err}"
    );
}

#[test]
fn missing_variable_is_named() {
    struct Without<'a>(ModuleWeights<'a>);
    impl WeightSource for Without<'_> {
        fn source_name(&self) -> String {
            "test".into()
        }
        fn shape(&self, name: &str) -> Option<Vec<usize>> {
            (name != "cell_1/prev_1x1/weights")
                .then(|| self.0.shape(name))
                .flatten()
        }
        fn values(&self, name: &str) -> Result<Vec<f32>, nasnet_forward::ForwardError> {
            self.0.values(name)
        }
    }
    let (module, spec) = conformance_module();
    let err = Network::load(&spec, &Without(ModuleWeights(&module)))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cell_1/prev_1x1/weights") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn inconsistent_description_is_refused_at_load() {
    let (module, spec) = conformance_module();
    let mut wrong = spec.clone();
    wrong.num_features = 5;
    let err = Network::load(&wrong, &ModuleWeights(&module))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("amoebanet_a_n6_f16")
            && err.contains("invalid network description: num_features: 5, but the cells give"),
        "{err}"
    );
    let mut empty = spec;
    empty.cells.clear();
    let err = Network::load(&empty, &ModuleWeights(&module))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cells: 0 cells"), "{err}");
}
