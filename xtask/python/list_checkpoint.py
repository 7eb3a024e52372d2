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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="checkpoint prefix (without .index)")
    parser.add_argument("output", help="TSV file to write")
    args = parser.parse_args()
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
