#!/usr/bin/env python3
"""List every variable of a TensorFlow checkpoint as TensorFlow itself reads it.

Writes a TSV with a header row and one row per variable, sorted by name:

    name <TAB> dtype <TAB> shape <TAB> nbytes <TAB> sha256

* dtype is numpy's name ("float32", "float16", "int64", "bool", ...);
* shape is the dimensions joined by "," (empty for a scalar);
* nbytes and sha256 are over ``tensor.tobytes()`` in C order, little-endian.

The `tensor-bundle` crate's conformance tests compare their own reading of the same
checkpoint against this listing, so it is the reference that TensorFlow wrote.

Usage (rerunnable for any module):

    xtask/.venv/bin/python xtask/python/list_checkpoint.py \
        <checkpoint prefix, e.g. module/variables/variables> <output.tsv>

    # Also write a small checkpoint that exercises what hub modules rarely have
    # (many dtypes, a string, partitioned variables, two data shards) at <prefix> first:
    xtask/.venv/bin/python xtask/python/list_checkpoint.py --write-sample <prefix> <output.tsv>
"""

import argparse
import hashlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def little_endian_c_bytes(value: np.ndarray) -> bytes:
    """The tensor's bytes in C order and little-endian, whatever the host."""
    array = np.ascontiguousarray(value)
    if array.dtype.byteorder == ">" or (
        array.dtype.byteorder == "=" and sys.byteorder == "big"
    ):
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes(order="C")


def rows(prefix: str):
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    for name in sorted(dtypes):
        value = np.asarray(reader.get_tensor(name))
        if value.dtype == object:
            # DT_STRING: no fixed-size bytes; the Rust reader refuses these too.
            yield name, "string", shape_text(value.shape), "-", "-"
            continue
        data = little_endian_c_bytes(value)
        yield (
            name,
            value.dtype.name,
            shape_text(value.shape),
            str(len(data)),
            hashlib.sha256(data).hexdigest(),
        )


def shape_text(shape) -> str:
    return ",".join(str(int(d)) for d in shape)


def write_sample(prefix: str) -> None:
    """Saves a small TF1 checkpoint with every common dtype, a string, and partitioned
    variables (one split on axis 1 at offset 100, so its slice keys need 2-byte numbers),
    sharded over two CPU devices so that `MergeBundles` writes two data files."""
    import tensorflow.compat.v1 as tf1

    rng = np.random.default_rng(0)
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        with tf1.device("/cpu:0"):
            tf1.get_variable("plain/f32", initializer=rng.standard_normal((3, 4)).astype(np.float32))
            tf1.get_variable("plain/f16", initializer=rng.standard_normal((5,)).astype(np.float16))
            tf1.get_variable("plain/f64", initializer=rng.standard_normal((2, 2)).astype(np.float64))
            tf1.get_variable("plain/bf16", initializer=tf1.cast(rng.standard_normal((7,)), tf1.bfloat16))
            tf1.get_variable("plain/i8", initializer=np.arange(-3, 3, dtype=np.int8))
            tf1.get_variable("plain/i16", initializer=np.arange(-300, 300, 100, dtype=np.int16))
            tf1.get_variable("plain/i32", initializer=np.arange(6, dtype=np.int32).reshape(2, 3))
            tf1.get_variable("plain/u8", initializer=np.arange(250, 256, dtype=np.uint8))
            tf1.get_variable("plain/u16", initializer=np.arange(60000, 60004, dtype=np.uint16))
            tf1.get_variable("plain/bool", initializer=np.array([True, False, True]))
            tf1.get_variable("global_step", initializer=np.int64(12345))
            tf1.get_variable("plain/empty", initializer=np.zeros((0, 3), np.float32))
            tf1.get_variable("vocab", initializer=np.array([b"a", b"bc", b""], dtype=object))
        with tf1.device("/cpu:1"):
            tf1.get_variable(
                "part/rows",
                shape=(10, 3),
                initializer=tf1.random_normal_initializer(seed=1),
                partitioner=tf1.fixed_size_partitioner(3),
            )
            tf1.get_variable(
                "part/cols",
                shape=(4, 200),
                initializer=tf1.random_normal_initializer(seed=2),
                partitioner=tf1.fixed_size_partitioner(2, axis=1),
            )
            tf1.get_variable("zz/last", initializer=np.float32(0.5))
        saver = tf1.train.Saver(sharded=True)
        config = tf1.ConfigProto(device_count={"CPU": 2})
        with tf1.Session(graph=graph, config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
            saver.save(sess, prefix, write_meta_graph=False, write_state=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="checkpoint prefix (without .index)")
    parser.add_argument("output", help="TSV file to write")
    parser.add_argument(
        "--write-sample",
        action="store_true",
        help="first save a small mixed-dtype, partitioned, two-shard checkpoint at PREFIX",
    )
    args = parser.parse_args()
    if args.write_sample:
        write_sample(args.prefix)
    if not os.path.exists(args.prefix + ".index"):
        parser.error(f"{args.prefix}.index does not exist: pass the prefix, not the file")
    lines = ["name\tdtype\tshape\tnbytes\tsha256"]
    lines += ["\t".join(row) for row in rows(args.prefix)]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 1} variables to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
