"""Checks a file written by `amoeba convert` against TensorFlow's own reading of the checkpoint.

Usage: check_convert.py MODULE_DIR CONVERTED.safetensors

Loads the converted file with the Python `safetensors` library (`safetensors.numpy.load_file`)
and the module's checkpoint with `tf.train.load_checkpoint`, and requires the same variable
names, and for every variable the same dtype, shape and bytes. Exits 1 on any difference.
"""

import sys

import numpy as np
import safetensors.numpy
import tensorflow as tf


def main(module_dir: str, converted: str) -> int:
    ours = safetensors.numpy.load_file(converted)
    reader = tf.train.load_checkpoint(f"{module_dir}/variables/variables")
    theirs = reader.get_variable_to_shape_map()
    problems = []
    if set(ours) != set(theirs):
        problems.append(f"names differ: only converted {sorted(set(ours) - set(theirs))[:5]}, "
                        f"only checkpoint {sorted(set(theirs) - set(ours))[:5]}")
    for name in sorted(set(ours) & set(theirs)):
        expected = reader.get_tensor(name)
        got = ours[name]
        if got.dtype != expected.dtype or got.shape != expected.shape:
            problems.append(f"{name}: {got.dtype}{got.shape} vs TF {expected.dtype}{expected.shape}")
        elif got.tobytes() != np.ascontiguousarray(expected).tobytes():
            problems.append(f"{name}: bytes differ")
    for p in problems:
        print(f"MISMATCH {p}")
    print(f"{converted}: {len(ours)} tensors compared with tf.train.load_checkpoint: "
          f"{'identical' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
