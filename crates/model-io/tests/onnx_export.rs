//! The ONNX export, checked in Rust: the written file decodes, its graph is well formed (every
//! op is one of the few the exporter writes, every input defined before use, opset 17), and a
//! plain reference interpreter of those ops, written here from the ONNX operator definitions,
//! reproduces TensorFlow's goldens and our own forward pass on fixtures of each family.
//! (ONNX Runtime and `onnx.checker` check the same files in `cargo xtask check-onnx`.)

use model_io::{export_onnx, Model};
use nasnet_forward::Tensor;
use onnx_export::onnx::{attribute_proto::AttributeType, ModelProto, NodeProto, TensorProto};
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// An NCHW (or any-rank) tensor of the interpreter.
#[derive(Clone, Debug)]
struct T {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .map(|a| {
            if a.r#type == Some(AttributeType::Int as i32) {
                vec![a.i.unwrap()]
            } else {
                a.ints.clone()
            }
        })
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr_ints(node, name).map_or(default, |v| v[0])
}

/// An initializer's values (float32 or int64), embedded or from the external-data file.
fn initializer(t: &TensorProto, dir: &Path) -> (Vec<usize>, Vec<f32>, Vec<i64>) {
    let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let raw = match &t.raw_data {
        Some(raw) => raw.clone(),
        None => {
            let get = |k: &str| {
                t.external_data
                    .iter()
                    .find(|e| e.key.as_deref() == Some(k))
                    .and_then(|e| e.value.clone())
                    .unwrap()
            };
            let bytes = std::fs::read(dir.join(get("location"))).unwrap();
            let (offset, length): (usize, usize) = (
                get("offset").parse().unwrap(),
                get("length").parse().unwrap(),
            );
            bytes[offset..offset + length].to_vec()
        }
    };
    if t.data_type == Some(7) {
        let ints = raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (shape, Vec::new(), ints)
    } else {
        (shape, f32s(&raw), Vec::new())
    }
}

fn conv(x: &T, w: &T, b: Option<&T>, node: &NodeProto) -> T {
    let [n, c, h, wd] = x.shape[..] else { panic!() };
    let [m, cg, kh, kw] = w.shape[..] else {
        panic!()
    };
    let group = attr_int(node, "group", 1) as usize;
    let s = attr_ints(node, "strides").unwrap();
    let p = attr_ints(node, "pads").unwrap();
    assert_eq!(
        attr_ints(node, "kernel_shape").unwrap(),
        [kh as i64, kw as i64]
    );
    assert_eq!(c, cg * group);
    let (sh, sw) = (s[0] as usize, s[1] as usize);
    let oh = (h + (p[0] + p[2]) as usize - kh) / sh + 1;
    let ow = (wd + (p[1] + p[3]) as usize - kw) / sw + 1;
    let mut out = vec![0f32; n * m * oh * ow];
    let per_group = m / group;
    for b_ in 0..n {
        for o in 0..m {
            let g = o / per_group;
            let bias = b.map_or(0.0, |b| b.data[o]);
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = bias as f64;
                    for ci in 0..cg {
                        let cin = g * cg + ci;
                        for dy in 0..kh {
                            let iy = (y * sh + dy) as i64 - p[0];
                            if iy < 0 || iy >= h as i64 {
                                continue;
                            }
                            for dx in 0..kw {
                                let ix = (xo * sw + dx) as i64 - p[1];
                                if ix < 0 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x.data[((b_ * c + cin) * h + iy as usize) * wd + ix as usize];
                                let wv = w.data[((o * cg + ci) * kh + dy) * kw + dx];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    out[((b_ * m + o) * oh + y) * ow + xo] = acc as f32;
                }
            }
        }
    }
    T {
        shape: vec![n, m, oh, ow],
        data: out,
    }
}

fn pool(x: &T, node: &NodeProto, avg: bool) -> T {
    let [n, c, h, w] = x.shape[..] else { panic!() };
    let k = attr_ints(node, "kernel_shape").unwrap();
    let s = attr_ints(node, "strides").unwrap();
    let p = attr_ints(node, "pads").unwrap();
    assert!(!avg || attr_int(node, "count_include_pad", 0) == 0);
    let (kh, kw, sh, sw) = (k[0] as usize, k[1] as usize, s[0] as usize, s[1] as usize);
    let oh = (h + (p[0] + p[2]) as usize - kh) / sh + 1;
    let ow = (w + (p[1] + p[3]) as usize - kw) / sw + 1;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for plane in x.data.chunks_exact(h * w) {
        for y in 0..oh {
            for xo in 0..ow {
                let (mut acc, mut count, mut max) = (0f64, 0, f32::NEG_INFINITY);
                for dy in 0..kh {
                    for dx in 0..kw {
                        let (iy, ix) = ((y * sh + dy) as i64 - p[0], (xo * sw + dx) as i64 - p[1]);
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = plane[iy as usize * w + ix as usize];
                            acc += f64::from(v);
                            count += 1;
                            max = max.max(v);
                        }
                    }
                }
                out.push(if avg {
                    (acc / f64::from(count)) as f32
                } else {
                    max
                });
            }
        }
    }
    T {
        shape: vec![n, c, oh, ow],
        data: out,
    }
}

fn broadcast(a: &T, b: &T, f: impl Fn(f32, f32) -> f32) -> T {
    let data = if b.data.len() == 1 {
        a.data.iter().map(|&x| f(x, b.data[0])).collect()
    } else {
        assert_eq!(a.shape, b.shape);
        a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect()
    };
    T {
        shape: a.shape.clone(),
        data,
    }
}

/// Pad (zeros, 4-D, non-negative) and Slice (axes 2 and 3) as the exporter uses them.
fn pad(x: &T, pads: &[i64]) -> T {
    let [n, c, h, w] = x.shape[..] else { panic!() };
    assert!(pads[..4].iter().all(|&p| p == 0) || pads[0..2] == [0, 0]);
    let (t, l, b, r) = (
        pads[2] as usize,
        pads[3] as usize,
        pads[6] as usize,
        pads[7] as usize,
    );
    let (oh, ow) = (h + t + b, w + l + r);
    let mut out = vec![0f32; n * c * oh * ow];
    for (i, plane) in x.data.chunks_exact(h * w).enumerate() {
        for y in 0..h {
            let at = i * oh * ow + (y + t) * ow + l;
            out[at..at + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
        }
    }
    T {
        shape: vec![n, c, oh, ow],
        data: out,
    }
}

fn slice(x: &T, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> T {
    assert_eq!(axes, [2, 3]);
    let [n, c, h, w] = x.shape[..] else { panic!() };
    let range = |s: i64, e: i64, st: i64, len: usize| -> Vec<usize> {
        (s as usize..(e as usize).min(len))
            .step_by(st as usize)
            .collect()
    };
    let ys = range(starts[0], ends[0], steps[0], h);
    let xs = range(starts[1], ends[1], steps[1], w);
    let mut out = Vec::with_capacity(n * c * ys.len() * xs.len());
    for plane in x.data.chunks_exact(h * w) {
        for &y in &ys {
            for &xi in &xs {
                out.push(plane[y * w + xi]);
            }
        }
    }
    T {
        shape: vec![n, c, ys.len(), xs.len()],
        data: out,
    }
}

fn concat(parts: &[&T]) -> T {
    let [n, _, h, w] = parts[0].shape[..] else {
        panic!()
    };
    let c: usize = parts.iter().map(|p| p.shape[1]).sum();
    let mut out = Vec::with_capacity(n * c * h * w);
    for b in 0..n {
        for p in parts {
            let len = p.shape[1] * h * w;
            out.extend_from_slice(&p.data[b * len..(b + 1) * len]);
        }
    }
    T {
        shape: vec![n, c, h, w],
        data: out,
    }
}

/// Runs the model on NHWC `images`; returns every graph output by name.
fn interpret(model: &ModelProto, dir: &Path, images: &T) -> HashMap<String, T> {
    let graph = model.graph.as_ref().unwrap();
    let mut values: HashMap<String, T> = HashMap::new();
    let mut ints: HashMap<String, Vec<i64>> = HashMap::new();
    for t in &graph.initializer {
        let (shape, data, i) = initializer(t, dir);
        let name = t.name.clone().unwrap();
        if t.data_type == Some(7) {
            ints.insert(name, i);
        } else {
            values.insert(name, T { shape, data });
        }
    }
    values.insert("images".into(), images.clone());
    for node in &graph.node {
        let input = |i: usize| &values[&node.input[i]];
        let int_input = |i: usize| ints[&node.input[i]].clone();
        let out = match node.op_type.as_deref().unwrap() {
            "Transpose" => {
                assert_eq!(attr_ints(node, "perm").unwrap(), [0, 3, 1, 2]);
                let x = input(0);
                let [n, h, w, c] = x.shape[..] else { panic!() };
                let mut data = vec![0f32; x.data.len()];
                for (i, v) in x.data.iter().enumerate() {
                    let (b, y, xi, ch) = (i / (h * w * c), i / (w * c) % h, i / c % w, i % c);
                    data[((b * c + ch) * h + y) * w + xi] = *v;
                }
                T {
                    shape: vec![n, c, h, w],
                    data,
                }
            }
            "Mul" => broadcast(input(0), input(1), |a, b| a * b),
            "Add" => broadcast(input(0), input(1), |a, b| a + b),
            "Relu" => broadcast(
                input(0),
                &T {
                    shape: vec![],
                    data: vec![0.0],
                },
                f32::max,
            ),
            "Conv" => conv(
                input(0),
                input(1),
                node.input.get(2).map(|n| &values[n]),
                node,
            ),
            "MaxPool" => pool(input(0), node, false),
            "AveragePool" => pool(input(0), node, true),
            "Pad" => pad(input(0), &int_input(1)),
            "Slice" => slice(
                input(0),
                &int_input(1),
                &int_input(2),
                &int_input(3),
                &int_input(4),
            ),
            "Concat" => {
                assert_eq!(attr_int(node, "axis", 0), 1);
                concat(&node.input.iter().map(|n| &values[n]).collect::<Vec<_>>())
            }
            "GlobalAveragePool" => {
                let x = input(0);
                let hw = x.shape[2] * x.shape[3];
                let data = x
                    .data
                    .chunks_exact(hw)
                    .map(|p| (p.iter().map(|&v| f64::from(v)).sum::<f64>() / hw as f64) as f32)
                    .collect();
                T {
                    shape: vec![x.shape[0], x.shape[1], 1, 1],
                    data,
                }
            }
            "Flatten" => {
                let x = input(0);
                T {
                    shape: vec![x.shape[0], x.data.len() / x.shape[0]],
                    data: x.data.clone(),
                }
            }
            "Gemm" => {
                let (a, b, c) = (input(0), input(1), input(2));
                let (n, k, m) = (a.shape[0], a.shape[1], b.shape[1]);
                let mut data = Vec::with_capacity(n * m);
                for i in 0..n {
                    for j in 0..m {
                        let dot: f64 = (0..k)
                            .map(|t| f64::from(a.data[i * k + t]) * f64::from(b.data[t * m + j]))
                            .sum();
                        data.push((dot + f64::from(c.data[j])) as f32);
                    }
                }
                T {
                    shape: vec![n, m],
                    data,
                }
            }
            other => panic!("the exporter wrote an op the interpreter does not know: {other}"),
        };
        values.insert(node.output[0].clone(), out);
    }
    graph
        .output
        .iter()
        .map(|o| {
            let name = o.name.clone().unwrap();
            (name.clone(), values[&name].clone())
        })
        .collect()
}

/// The graph's structure: known ops only, every input defined before it is read.
fn check_structure(model: &ModelProto) {
    assert_eq!(model.opset_import[0].version, Some(onnx_export::OPSET));
    let graph = model.graph.as_ref().unwrap();
    let known = [
        "Transpose",
        "Mul",
        "Add",
        "Relu",
        "Conv",
        "MaxPool",
        "AveragePool",
        "Pad",
        "Slice",
        "Concat",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
    ];
    let mut defined: std::collections::HashSet<String> = graph
        .initializer
        .iter()
        .map(|t| t.name.clone().unwrap())
        .collect();
    assert_eq!(
        defined.len(),
        graph.initializer.len(),
        "initializer names are unique"
    );
    defined.insert("images".into());
    for node in &graph.node {
        let op = node.op_type.as_deref().unwrap();
        assert!(known.contains(&op), "unexpected op {op}");
        for input in &node.input {
            assert!(
                defined.contains(input),
                "{op} reads {input} before it is made"
            );
        }
        for output in &node.output {
            assert!(defined.insert(output.clone()), "{output} is made twice");
        }
    }
    for output in &graph.output {
        assert!(defined.contains(output.name.as_ref().unwrap()));
    }
    let meta: HashMap<_, _> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    let plan = nasnet_genotype::NetworkSpec::from_json(&meta["amoeba.network"]).unwrap();
    assert!(!plan.cells.is_empty());
    assert_eq!(meta["amoeba.source.checkpoint_sha256"].len(), 64);
}

fn max_err(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let err = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| f64::from(y.abs())).fold(1.0, f64::max);
    (err, 1e-4 * scale)
}

/// Exports `fixture` (embedded or with external data), interprets it on the golden's images
/// and compares with TensorFlow's outputs and with our forward pass.
fn export_and_run(fixture: &str, external: bool) {
    let model = Model::open(&fixtures().join("modules").join(fixture)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    let report = export_onnx(&model, &out, external, &mut |_, _| {}).unwrap();
    assert_eq!(report.data_file.is_some(), external);
    let bytes = std::fs::read(&out).unwrap();
    let onnx = ModelProto::decode(bytes.as_slice()).unwrap();
    check_structure(&onnx);
    let golden_bytes =
        std::fs::read(fixtures().join(format!("goldens/{fixture}.golden.safetensors"))).unwrap();
    let golden = safetensors::SafeTensors::deserialize(&golden_bytes).unwrap();
    let images = golden.tensor("images").unwrap();
    let input = T {
        shape: images.shape().to_vec(),
        data: f32s(images.data()),
    };
    let ours = model
        .network()
        .unwrap()
        .forward(&Tensor::from_vec(input.data.clone(), images.shape().try_into().unwrap()).unwrap())
        .unwrap();
    let outputs = interpret(&onnx, dir.path(), &input);
    for (name, forward) in [
        ("features", Some(&ours.features)),
        ("logits", ours.logits.as_ref()),
    ] {
        let Ok(tf) = golden.tensor(name) else {
            continue;
        };
        let got = &outputs[name];
        let (err, bar) = max_err(&got.data, &f32s(tf.data()));
        assert!(
            err <= bar,
            "{fixture} {name}: ONNX vs TensorFlow {err:e} > {bar:e}"
        );
        let (err, bar) = max_err(&got.data, forward.unwrap());
        assert!(
            err <= bar,
            "{fixture} {name}: ONNX vs our forward pass {err:e} > {bar:e}"
        );
    }
}

#[test]
fn amoebanet_a_exports_and_runs_as_tensorflow_does() {
    export_and_run("amoebanet_a_n3_f8", false);
}

#[test]
fn a_feature_vector_module_exports_with_external_data() {
    export_and_run("amoebanet_a_n3_f8_feature_vector", true);
}

#[test]
fn pnasnet_exports_and_runs_as_tensorflow_does() {
    export_and_run("pnasnet_5_large_n6_f16", false);
}

#[test]
fn nasnet_a_mobile_exports_and_runs_as_tensorflow_does() {
    export_and_run("nasnet_a_mobile_n6_f8", true);
}
