//! Full-size AmoebaNet-A (N18, F448, 331x331) forward pass with random weights.
//!
//! The architecture comes from the real module's variable list in `shared/spec`, so this
//! measures the real model's arithmetic without the 1.9 GB download. Run with
//! `cargo bench -p nasnet-forward --bench full_size [-- BATCH [REPEATS]]`.

use nasnet_forward::{ForwardError, Network, Tensor, WeightSource};
use nasnet_genotype::{from_variables, known_genotype, Assumptions};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Deterministic random weights of the right shapes; batch-norm variances stay positive.
struct RandomWeights {
    shapes: HashMap<String, Vec<usize>>,
}

impl WeightSource for RandomWeights {
    fn source_name(&self) -> String {
        "random weights".into()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.shapes.get(name).cloned()
    }
    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        let shape = &self.shapes[name];
        let n: usize = shape.iter().product();
        let fan_in: usize = shape[..shape.len().saturating_sub(1)]
            .iter()
            .product::<usize>()
            .max(1);
        let mut state = name.bytes().fold(0x9e3779b97f4a7c15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let bn = name.ends_with("moving_variance") || name.ends_with("gamma");
        let scale = (1.0 / fan_in as f32).sqrt();
        Ok((0..n)
            .map(|_| {
                if bn {
                    0.5 + next()
                } else {
                    (next() - 0.5) * 2.0 * scale
                }
            })
            .collect())
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch = args.first().copied().unwrap_or(1);
    let repeats = args.get(1).copied().unwrap_or(3);
    let tsv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nasnet-genotype/tests/data/variables-n18-f448-classification.tsv");
    let text = std::fs::read_to_string(&tsv).expect("the real module's variable list, committed");
    let variables: Vec<(String, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?.to_string();
            let shape = f.next()?.split('x').map(|d| d.parse().unwrap()).collect();
            Some((name, shape))
        })
        .collect();
    let assumptions = Assumptions {
        genotype: known_genotype("amoeba_net_a").unwrap(),
        image_size: [331, 331],
        batch_norm_epsilon: 1.001e-5,
        input_scale: 2.0,
        input_offset: -1.0,
    };
    let spec = from_variables(&variables, &assumptions).expect("spec").spec;
    let weights = RandomWeights {
        shapes: variables.into_iter().collect(),
    };
    let t = Instant::now();
    let network = Network::load(&spec, &weights).expect("load");
    println!("load: {:.2} s", t.elapsed().as_secs_f64());
    let images = Tensor::from_vec(
        (0..batch * 331 * 331 * 3)
            .map(|i| (i % 255) as f32 / 255.0)
            .collect(),
        [batch, 331, 331, 3],
    )
    .unwrap();
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let out = network.forward(&images).expect("forward");
        times.push(t.elapsed().as_secs_f64());
        assert!(out.logits.unwrap().iter().all(|v| v.is_finite()));
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    // 104.0 G multiply-adds per image (issue 7), 2 FLOP each.
    println!(
        "batch {batch}: median {:.3} s ({:.3} s/image, {:.0} GFLOP/s) over {repeats} runs",
        median,
        median / batch as f64,
        208.0 * batch as f64 / median
    );
}
