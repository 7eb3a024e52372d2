"""OpenVINO side of `cargo xtask bench` (run in xtask/.venv-bench: TensorFlow 2.21, OpenVINO).

Usage:
    bench_ov.py freeze --module DIR -o FROZEN.pb
    bench_ov.py convert --frozen FROZEN.pb -o MODEL.xml
    bench_ov.py forward --frozen FROZEN.pb [--ir MODEL.xml] --input IMAGES.safetensors
                        --repeats R --precision f32|bf16 [--golden GOLDEN.safetensors]

`freeze` imports the TF1 Hub module's inference graph (the meta graph with no tags) in a
tf.compat.v1 graph, input replaced by a placeholder `images` [None,S,S,3], restores its
variables and writes a frozen GraphDef (every variable a constant,
`convert_variables_to_constants`) whose output is `logits` (the `image_classification`
signature's logits).  A GraphDef is one protobuf message, at most 2 GiB: the full-size
AmoebaNet-A's 1.87 GB of float32 weights fit; a larger module is refused with the size.
`convert` is `openvino.convert_model` (TensorFlow frontend) of the frozen graph, saved as
OpenVINO IR (`.xml` + `.bin`, weights kept float32: `compress_to_fp16=False`).
`forward` reads the IR (or converts the frozen graph if no fresh IR is given), fixes the
batch size to the input's, compiles for CPU with INFERENCE_PRECISION_HINT f32 or bf16 and
PERFORMANCE_HINT LATENCY, runs once as a warm-up then R timed runs, one `forward_seconds S`
line each (the lines `bench_tf.py forward` and `amoeba run --repeat` print), and reports what
the compiled model really runs: `ov_precision: P` (its INFERENCE_PRECISION_HINT read back),
`ov_runtime: ...` (the runtime graph's nodes by the precision they execute in, the
convolutions and matmuls by kernel) and `ov_info: ...`.  With `--golden`,
`logits_max_abs_error E`, `golden_max_abs_logit G` and `golden_top1_agree N` compare the
images that are the golden's (the first ones, as `bench_tf.py inputs` writes them).  Files are
written under a temporary name and renamed, so an interrupted run leaves no truncated cache
behind.  The caller measures wall time and peak RSS.
"""

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np
from safetensors.numpy import load_file

# openvino.convert_model would otherwise send usage telemetry (its default without a consent
# file): with the package hidden, OpenVINO uses its own no-op stub.
sys.modules["openvino_telemetry"] = None

# Protobuf's hard limit for one message (a GraphDef included).
PROTOBUF_LIMIT = 2**31 - 1


def freeze_cmd(module_path, out):
    start = time.perf_counter()
    import tensorflow as tf
    import bench_tf
    v1 = tf.compat.v1
    imported = time.perf_counter()
    with tf.Graph().as_default() as graph:
        size = image_size(module_path)
        x = v1.placeholder(tf.float32, [None, size, size, 3], name="images")
        logits, restore = bench_tf.inference_graph(tf, module_path, x)
        tf.identity(logits, name="logits")
        with v1.Session() as sess:
            restore(sess)
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ["logits"])
    del graph
    nbytes = frozen.ByteSize()
    if nbytes > PROTOBUF_LIMIT:
        sys.exit(f"{module_path}: the frozen GraphDef would be {nbytes} bytes, more than "
                 f"protobuf's limit of {PROTOBUF_LIMIT} for one message")
    consts = sum(1 for n in frozen.node if n.op == "Const")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(frozen.SerializeToString())
    os.replace(tmp, out)
    print(f"tf_version: {tf.__version__}")
    print(f"frozen: {out} {nbytes} bytes, {len(frozen.node)} nodes, {consts} constants, "
          f"input images [None,{size},{size},3], output logits")
    print(f"frozen_bytes {nbytes}")
    print(f"import_seconds {imported - start:.6f}")
    print(f"freeze_seconds {time.perf_counter() - imported:.6f}")


def image_size(module_path):
    """The side of the `image_classification` signature's images input."""
    from tensorflow.core.protobuf import saved_model_pb2
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(module_path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    meta = [m for m in saved.meta_graphs if not m.meta_info_def.tags][0]
    dims = [d.size for d in meta.signature_def["image_classification"]
            .inputs["images"].tensor_shape.dim]
    if len(dims) != 4 or dims[1] != dims[2] or dims[1] <= 0 or dims[3] != 3:
        sys.exit(f"{module_path}: images input {dims}, expected [-1,S,S,3]")
    return dims[1]


def convert_model(frozen):
    import openvino as ov
    return ov.convert_model(frozen)


def convert_cmd(frozen, out):
    import openvino as ov
    start = time.perf_counter()
    model = convert_model(frozen)
    converted = time.perf_counter()
    if not out.endswith(".xml"):
        sys.exit(f"{out}: the IR's name must end in .xml")
    tmp = out[: -len(".xml")] + ".tmp.xml"
    ov.save_model(model, tmp, compress_to_fp16=False)
    # The .bin first: a fresh .xml is what marks the pair as done.
    os.replace(tmp[: -len(".xml")] + ".bin", out[: -len(".xml")] + ".bin")
    os.replace(tmp, out)
    print(f"ov_version: {ov.get_version()}")
    print(f"ir: {out}, inputs {[str(i.get_partial_shape()) for i in model.inputs]}, "
          f"outputs {[o.get_any_name() for o in model.outputs]}")
    print(f"convert_seconds {converted - start:.6f}")
    print(f"save_seconds {time.perf_counter() - converted:.6f}")


def runtime_precisions(compiled):
    """The compiled (runtime) graph's nodes by the precision they execute in: convolutions
    and matmuls by kernel (e.g. `Convolution bf16 brgconv_avx512_amx_1x1_bf16 x 113`), every
    other node by type (constants left out)."""
    compute, other = Counter(), Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        field = lambda k: rt[k].astype(str) if k in rt else "?"
        kind, prec = field("layerType"), field("runtimePrecision")
        if "Convolution" in kind or kind in ("FullyConnected", "MatMul"):
            compute[(kind, prec, field("primitiveType"))] += 1
        elif kind not in ("Const", "Input", "Output"):
            other[(kind, prec)] += 1
    return "; ".join([
        ", ".join(f"{k} {p} {t} x {n}" for (k, p, t), n in sorted(compute.items())),
        "other nodes: " + ", ".join(f"{k} {p} x {n}" for (k, p), n in sorted(other.items())),
    ])


def forward_cmd(frozen, ir, input_path, repeats, precision, golden):
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints
    images = load_file(input_path)["images"]
    start = time.perf_counter()
    core = ov.Core()
    if ir and os.path.exists(ir) and os.path.getmtime(ir) >= os.path.getmtime(frozen):
        model, source = core.read_model(ir), f"IR {ir}"
    else:
        model, source = convert_model(frozen), f"convert_model({frozen})"
    model.reshape({model.inputs[0]: ov.PartialShape(list(images.shape))})
    want = {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
    compiled = core.compile_model(model, "CPU", {
        hints.inference_precision: want,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
    })
    print(f"load_compile_seconds {time.perf_counter() - start:.6f}", flush=True)
    ran = compiled.get_property(hints.inference_precision)
    ran = {ov.Type.f32: "f32", ov.Type.bf16: "bf16", ov.Type.f16: "f16"}.get(ran, str(ran))
    print(f"ov_precision: {ran}", flush=True)
    print(f"ov_runtime: {runtime_precisions(compiled)}", flush=True)
    caps = core.get_property("CPU", props.device.capabilities)
    print(f"ov_info: version={ov.get_version()} asked={precision} "
          f"performance_hint={compiled.get_property(hints.performance_mode)} "
          f"streams={compiled.get_property(props.num_streams)} "
          f"threads={compiled.get_property(props.inference_num_threads)} "
          f"device={core.get_property('CPU', props.device.full_name)!r} "
          f"capabilities={','.join(caps)} input={list(images.shape)} model={source}",
          flush=True)
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(np.ascontiguousarray(images)))
    start = time.perf_counter()
    request.infer()
    print(f"warmup_seconds {time.perf_counter() - start:.6f}", flush=True)
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer()
        print(f"forward_seconds {time.perf_counter() - start:.6f}", flush=True)
    logits = np.array(request.get_output_tensor(0).data, dtype=np.float32)
    if golden:
        compare(logits, images, load_file(golden))


def compare(logits, images, golden):
    n = min(len(images), len(golden["images"]))
    if n == 0 or not np.array_equal(images[:n], golden["images"][:n]):
        sys.exit("the input does not start with the golden's images")
    want = golden["logits"][:n]
    if logits.shape[1:] != want.shape[1:]:
        sys.exit(f"logits {logits.shape}, golden {want.shape}")
    err = float(np.abs(logits[:n] - want).max())
    top1 = int((logits[:n].argmax(1) == want.argmax(1)).sum())
    print(f"logits_max_abs_error {err:.3e}")
    print(f"golden_max_abs_logit {float(np.abs(want).max()):.6f}")
    print(f"golden_images {n}")
    print(f"golden_top1_agree {top1}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("freeze")
    f.add_argument("--module", required=True)
    f.add_argument("-o", "--out", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--frozen", required=True)
    c.add_argument("-o", "--out", required=True)
    r = sub.add_parser("forward")
    r.add_argument("--frozen", required=True)
    r.add_argument("--ir")
    r.add_argument("--input", required=True)
    r.add_argument("--repeats", type=int, required=True)
    r.add_argument("--precision", choices=["f32", "bf16"], required=True)
    r.add_argument("--golden")
    a = p.parse_args()
    if a.cmd == "freeze":
        freeze_cmd(a.module, a.out)
    elif a.cmd == "convert":
        convert_cmd(a.frozen, a.out)
    else:
        forward_cmd(a.frozen, a.ir, a.input, a.repeats, a.precision, a.golden)


if __name__ == "__main__":
    main()
