"""`cargo xtask check-onnx`: ONNX files written by `amoeba export` against TensorFlow's goldens.

    check_onnx.py --model M.onnx --golden G.golden.safetensors [--timing-runs N]

Checks the model with `onnx.checker.check_model(full_check=True)` (shape inference through
every node), runs it in ONNX Runtime (CPU) on the golden's `images`, and compares `logits`
and `features` with the golden by the verify bar: max |ort - golden| <= 1e-4 * max(1,
max |golden|), and the same top-5 classes in the same order. Prints one JSON line; exit 1 on a
mismatch. With --timing-runs, also ORT's median seconds per batch of the golden's images.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

TOLERANCE = 1e-4


def compare(name, ours, golden):
    err = float(np.max(np.abs(ours.astype(np.float64) - golden.astype(np.float64))))
    bar = TOLERANCE * max(1.0, float(np.max(np.abs(golden))))
    return {"tensor": name, "max_abs_err": err, "bar": bar, "ok": bool(err <= bar)}


def top5(x):
    return [list(map(int, row)) for row in np.argsort(-x, axis=1, kind="stable")[:, :5]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--timing-runs", type=int, default=0)
    a = ap.parse_args()
    # Full check with shape inference; a model over 2 GiB is checked by path.
    onnx.checker.check_model(a.model, full_check=True)
    golden = load_file(a.golden)
    images = golden["images"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    started = time.perf_counter()
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    load_seconds = time.perf_counter() - started
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(names, {"images": images})))
    results = []
    for name in ("logits", "features"):
        if name in golden:
            if name not in out:
                results.append({"tensor": name, "ok": False, "problem": "not an output"})
                continue
            results.append(compare(name, out[name], golden[name]))
    same_top5 = True
    if "logits" in golden and "logits" in out:
        same_top5 = top5(out["logits"]) == top5(golden["logits"])
    report = {"model": a.model, "images": int(images.shape[0]), "results": results,
              "same_top5": same_top5, "ok": all(r["ok"] for r in results) and same_top5}
    if a.timing_runs:
        session.run(names, {"images": images})
        times = []
        for _ in range(a.timing_runs):
            t = time.perf_counter()
            session.run(names, {"images": images})
            times.append(time.perf_counter() - t)
        report["ort_session_seconds"] = load_seconds
        report["ort_seconds_per_batch_median"] = float(np.median(times))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
