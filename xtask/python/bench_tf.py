"""TensorFlow side of `cargo xtask bench`.

Usage:
    bench_tf.py inputs --out DIR --size S --batches B... [--golden G]
    bench_tf.py forward --module DIR --input IMAGES.safetensors --repeats R
    bench_tf.py convert --module DIR -o OUT.safetensors

`inputs` writes `images_b<B>.safetensors` files (`images` [B,S,S,3] float32 in [0,1]): the
golden's images first (if given), then seeded uniform noise, so Rust and TensorFlow see the
same bytes.  `forward` times the `image_classification` signature of a hub.Module in a
tf.compat.v1 graph: one warm-up run, then R timed runs, one `forward_seconds S` line each
(the same lines `amoeba run --repeat` prints).  Where tensorflow_hub has no `hub.Module`
(TensorFlow 2.16 and later: tensorflow_hub 0.16 dropped it, 0.15 no longer imports), `forward`
imports the module's inference graph (tags {}) from its saved_model.pb and restores its
variables with a Saver instead: the same ops, fed and run the same way (`inference_graph`).
`convert` is the Python baseline of `amoeba convert`: tf.train.load_checkpoint, then
safetensors.numpy.save_file of every variable.  The process's wall time and peak RSS are
measured by the caller.
"""

import argparse
import os
import sys
import time

import numpy as np
from safetensors.numpy import load_file, save_file


def inputs_cmd(out, size, batches, golden):
    """Writes one images file per batch size from the same image sequence."""
    first = np.zeros((0, size, size, 3), np.float32)
    if golden:
        first = load_file(golden)["images"].astype(np.float32)
        if first.shape[1:] != (size, size, 3):
            sys.exit(f"{golden}: images {first.shape}, expected [N,{size},{size},3]")
    need = max(batches)
    noise = np.random.default_rng(7).uniform(0.0, 1.0, (max(0, need - len(first)), size, size, 3))
    images = np.concatenate([first, noise.astype(np.float32)])
    os.makedirs(out, exist_ok=True)
    for b in batches:
        save_file({"images": np.ascontiguousarray(images[:b])},
                  os.path.join(out, f"images_b{b}.safetensors"))


def tf_info(tf):
    """What TensorFlow computes with: oneDNN on or off, and its thread pools (0 = default,
    one thread per core)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        onednn = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        onednn = "unknown"
    threading = tf.config.threading
    print(f"tf_info: version={tf.__version__} onednn={onednn} "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')} "
          f"intra_op={threading.get_intra_op_parallelism_threads()} "
          f"inter_op={threading.get_inter_op_parallelism_threads()} cpus={os.cpu_count()}",
          flush=True)


def inference_graph(tf, module_path, x, signature="image_classification"):
    """Imports the TF1 Hub module's inference graph (the meta graph with no tags) into the
    default graph with its input placeholder replaced by `x`; returns the signature's logits
    and a function that restores the module's variables into a session (hub.Module's
    initializer does the same from the same checkpoint)."""
    from tensorflow.core.protobuf import saved_model_pb2
    v1 = tf.compat.v1
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(module_path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    meta = [m for m in saved.meta_graphs if not m.meta_info_def.tags]
    if len(meta) != 1:
        sys.exit(f"{module_path}: expected one meta graph with no tags, found {len(meta)}")
    sig = meta[0].signature_def[signature]
    v1.train.import_meta_graph(meta[0], clear_devices=True,
                               input_map={sig.inputs["images"].name: x})
    graph = v1.get_default_graph()
    logits = graph.get_tensor_by_name(sig.outputs["logits"].name)
    saver = v1.train.Saver(graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES))
    ckpt = os.path.join(module_path, "variables", "variables")
    return logits, lambda sess: saver.restore(sess, ckpt)


def forward_cmd(module_path, input_path, repeats):
    import tensorflow as tf
    try:
        import tensorflow_hub as hub
    except ImportError:
        hub = None
    v1 = tf.compat.v1
    tf_info(tf)
    loader = "hub.Module" if hasattr(hub, "Module") else "saved_model.pb meta graph (tags {})"
    print(f"tf_loader: {loader}", flush=True)
    images = load_file(input_path)["images"]
    with tf.Graph().as_default():
        x = v1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        if hasattr(hub, "Module"):
            module = hub.Module(module_path)
            logits = module(x, signature="image_classification")
            restore = lambda sess: sess.run(v1.global_variables_initializer())
        else:
            logits, restore = inference_graph(tf, module_path, x)
        with v1.Session() as sess:
            restore(sess)
            start = time.perf_counter()
            sess.run(logits, {x: images})
            print(f"warmup_seconds {time.perf_counter() - start:.6f}", flush=True)
            for _ in range(repeats):
                start = time.perf_counter()
                sess.run(logits, {x: images})
                print(f"forward_seconds {time.perf_counter() - start:.6f}", flush=True)


def convert_cmd(module_path, out):
    start = time.perf_counter()
    import tensorflow as tf
    imported = time.perf_counter()
    reader = tf.train.load_checkpoint(os.path.join(module_path, "variables", "variables"))
    tensors = {name: np.ascontiguousarray(reader.get_tensor(name))
               for name in sorted(reader.get_variable_to_shape_map())}
    save_file(tensors, out)
    done = time.perf_counter()
    # Importing TensorFlow is a fixed cost; report it apart from the conversion itself.
    print(f"import_seconds {imported - start:.6f}")
    print(f"convert_seconds {done - imported:.6f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inputs")
    i.add_argument("--out", required=True)
    i.add_argument("--size", type=int, required=True)
    i.add_argument("--batches", type=int, nargs="+", required=True)
    i.add_argument("--golden")
    f = sub.add_parser("forward")
    f.add_argument("--module", required=True)
    f.add_argument("--input", required=True)
    f.add_argument("--repeats", type=int, required=True)
    c = sub.add_parser("convert")
    c.add_argument("--module", required=True)
    c.add_argument("-o", "--out", required=True)
    a = p.parse_args()
    if a.cmd == "inputs":
        inputs_cmd(a.out, a.size, a.batches, a.golden)
    elif a.cmd == "forward":
        forward_cmd(a.module, a.input, a.repeats)
    else:
        convert_cmd(a.module, a.out)


if __name__ == "__main__":
    main()
