"""`cargo xtask check-torch`: a file written by `amoeba export --format torch`, loaded by
`python/amoeba_torch` in PyTorch, against TensorFlow's golden.

    check_torch.py --export E.safetensors --golden G.golden.safetensors [--train]

Checks, printing one JSON line (exit 1 on any failure):
- the model's `state_dict()` has exactly the file's names, shapes and dtypes;
- in eval mode, `logits` and `features` (and every cell's output the golden holds, when the
  model offers `forward_cells`) by the verify bar: max |torch - golden| <= 1e-4 * max(1,
  max |golden|), and the same top-5 classes in the same order;
- with --train, fine-tuning: 5 SGD steps in training mode on the golden's images with fixed
  labels, the dropout masks the same at every step (same seed), must lower the loss, change
  the weights and keep every weight finite.
"""

import argparse
import json
import os
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import amoeba_torch  # noqa: E402

TOLERANCE = 1e-4


def compare(name, ours, golden):
    err = float((ours.double() - golden.double()).abs().max())
    bar = TOLERANCE * max(1.0, float(golden.abs().max()))
    return {"tensor": name, "max_abs_err": err, "bar": bar, "ok": bool(err <= bar)}


def top5(x):
    return torch.argsort(-x, dim=1, stable=True)[:, :5].tolist()


def state_dict_matches(model, path):
    with safe_open(path, "pt") as f:
        file = {k: f.get_slice(k) for k in f.keys()}
        want = {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in file.items()}
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    have = {k: (tuple(v.shape), dtypes.get(v.dtype, str(v.dtype)))
            for k, v in model.state_dict().items()}
    problems = [f"only in the file: {k}" for k in sorted(set(want) - set(have))]
    problems += [f"only in the model: {k}" for k in sorted(set(have) - set(want))]
    problems += [f"{k}: file {want[k]}, model {have[k]}" for k in sorted(set(want) & set(have))
                 if want[k] != have[k]]
    return problems


def evaluate(model, golden):
    images = golden["images"].permute(0, 3, 1, 2).contiguous()
    results = []
    with torch.no_grad():
        features = model.forward_features(images)
        results.append(compare("features", features, golden["features"]))
        same_top5 = True
        if "logits" in golden:
            logits = model(images)
            results.append(compare("logits", logits, golden["logits"]))
            same_top5 = top5(logits) == top5(golden["logits"])
        if hasattr(model, "forward_cells"):
            # The goldens hold each cell's output as `cell_output/<scope>`, NHWC; every one
            # must be compared (a drift of scope names must not pass unnoticed).
            cells = {f"cell_output/{scope}": out
                     for scope, out in model.forward_cells(images).items()}
            for key in sorted(k for k in golden if k.startswith("cell_output/")):
                if key not in cells:
                    results.append({"tensor": key, "max_abs_err": float("inf"), "bar": 1.0,
                                    "ok": False, "problem": "the model has no such cell"})
                    continue
                results.append(compare(key, cells[key].permute(0, 2, 3, 1), golden[key]))
    return results, same_top5


def fine_tune(model, golden, steps=5, lr=0.01):
    images = golden["images"].permute(0, 3, 1, 2).contiguous()
    classes = golden["logits"].shape[1]
    labels = torch.arange(images.shape[0]) % classes
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)  # the same dropout masks at every step
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    changed = sum(1 for k, v in model.named_parameters() if not torch.equal(v, before[k]))
    finite = all(bool(torch.isfinite(v).all()) for v in model.state_dict().values()
                 if v.is_floating_point())
    return {"losses": losses, "parameters_changed": changed,
            "parameters": len(before), "finite": finite,
            "ok": losses[-1] < losses[0] and changed > 0 and finite}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--train", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    model = amoeba_torch.load(a.export)
    load_seconds = time.perf_counter() - started
    report = {"export": a.export, "load_seconds": load_seconds,
              "state_dict_problems": state_dict_matches(model, a.export)}
    golden = load_file(a.golden)
    started = time.perf_counter()
    results, same_top5 = evaluate(model, golden)
    report.update({"eval_seconds": time.perf_counter() - started,
                   "images": int(golden["images"].shape[0]),
                   "worst": max(results, key=lambda r: r["max_abs_err"] / r["bar"]),
                   "failed": [r for r in results if not r["ok"]],
                   "compared": len(results), "same_top5": same_top5})
    ok = not report["state_dict_problems"] and not report["failed"] and same_top5
    if a.train:
        if "logits" not in golden:
            report["train"] = {"ok": False, "problem": "no logits to fine-tune against"}
        else:
            report["train"] = fine_tune(model, golden)
        ok = ok and report["train"]["ok"]
    report["ok"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
