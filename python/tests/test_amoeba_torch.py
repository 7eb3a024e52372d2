"""Checks of amoeba_torch against TensorFlow's goldens (stdlib ``unittest`` only).

    AMOEBA_TORCH_EXPORTS=/path/to/exports python -m unittest discover -s python/tests
    AMOEBA_TORCH_EXPORTS=/path/to/exports python python/tests/test_amoeba_torch.py

(``python -m pytest python/tests`` runs the same tests where pytest is installed.)

``AMOEBA_TORCH_EXPORTS`` names a folder of files written by ``amoeba export MODEL --format
torch``:

* ``<fixture>.safetensors`` for every fixture of ``fixtures/manifest.json`` (the modules in
  ``fixtures/modules/``, goldens in ``fixtures/goldens/``);
* ``conformance/<name>.safetensors`` for every official export in ``fixtures/conformance/``
  (goldens ``fixtures/conformance/<name>.golden.safetensors``). Their names are those of
  fixtures too, hence the subfolder.

A case whose file is missing fails (the harness is meant to export them all);
``AMOEBA_TORCH_CASES=name,conformance/name`` restricts the run to some cases. Without
``AMOEBA_TORCH_EXPORTS`` only the tests that need no exported file run. ``AMOEBA_FIXTURES``
overrides where the fixtures are (default: the repository's ``fixtures/``).

Per case: the state dict's keys, shapes and dtypes are exactly the file's; in eval mode the
logits and features (and every cell's output) are within the project's verify bar,
``max |ours - TF| <= 1e-4 * max(1, max |TF|)`` per tensor (crates/verify: ``Options::default``
``atol`` 1e-4, ``rtol`` 0, scaled in ``compare``), with the same top-5 classes in the same
order; and a few SGD steps in training mode change the weights, keep them finite and lower the
loss. Each test prints its measured errors as a fraction of the bar.
"""

from __future__ import annotations

import json
import os
import sys
import unittest
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # python/, so that the package imports uninstalled

import amoeba_torch  # noqa: E402
from amoeba_torch import model as M  # noqa: E402

# One thread unless told otherwise: on this project's 2-core machines the other core is often
# busy (cargo), and then two OpenMP threads that wait on each other ran these tests 10-20x
# slower than one thread did (measured: a train step 6-15 s with 2 threads, 0.6 s with 1).
torch.set_num_threads(int(os.environ.get("AMOEBA_TORCH_THREADS", "1")))

ATOL = 1e-4  # crates/verify/src/options.rs, Options::default()
TOP_K = 5
FIXTURES = Path(os.environ.get("AMOEBA_FIXTURES", HERE.parents[1] / "fixtures"))
EXPORTS = os.environ.get("AMOEBA_TORCH_EXPORTS")


def bar_fraction(ours: torch.Tensor, golden: torch.Tensor) -> float:
    """max |ours - golden| over the verify bar ``ATOL * max(1, max |golden|)``: <= 1 passes.
    NaN or Inf anywhere gives inf."""
    if ours.shape != golden.shape:
        raise AssertionError(f"shape {list(ours.shape)}, golden {list(golden.shape)}")
    ours, golden = ours.double(), golden.double()
    if not torch.isfinite(ours).all():
        return float("inf")
    bar = ATOL * max(1.0, golden.abs().max().item())
    return (ours - golden).abs().max().item() / bar


def top_k(logits: torch.Tensor, k: int = TOP_K) -> list:
    """The k largest classes per row, largest first; ties in index order (as crates/verify's
    stable sort)."""
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices
    return order[:, :k].tolist()


def cases() -> list:
    """(case name, export file, golden file) of every fixture and conformance module."""
    out = []
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    for fixture in manifest["fixtures"]:
        out.append((fixture["name"], f"{fixture['name']}.safetensors",
                    FIXTURES / fixture["golden"]))
    for golden in sorted((FIXTURES / "conformance").glob("*.golden.safetensors")):
        name = golden.name[: -len(".golden.safetensors")]
        out.append((f"conformance/{name}", f"conformance/{name}.safetensors", golden))
    wanted = os.environ.get("AMOEBA_TORCH_CASES")
    if wanted:
        names = {w.strip() for w in wanted.split(",") if w.strip()}
        unknown = names - {name for name, _, _ in out}
        if unknown:
            raise SystemExit(f"AMOEBA_TORCH_CASES: no such case {sorted(unknown)}")
        out = [case for case in out if case[0] in names]
    return out


def report(case: str, what: str, values: dict) -> None:
    text = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
    print(f"\n[{case}] {what}: {text}", file=sys.stderr)


class ExportedModelChecks:
    """The checks of one exported file: a ``unittest.TestCase`` per case is made from it below
    (this class is not one, so that it does not run on its own)."""

    case = ""
    export = ""
    golden_path = Path()

    @classmethod
    def setUpClass(cls):
        if not EXPORTS:
            raise unittest.SkipTest("AMOEBA_TORCH_EXPORTS is not set")
        cls.path = Path(EXPORTS) / cls.export
        if not cls.path.is_file():
            raise AssertionError(f"{cls.case}: no exported file {cls.path}")
        cls.golden = load_file(str(cls.golden_path))
        cls.images = cls.golden["images"].permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        with safe_open(str(cls.path), framework="pt") as f:
            cls.meta = f.metadata()
            cls.file_shapes = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                               for k in f.keys()}
        cls.plan = json.loads(cls.meta["amoeba.network"])
        cls.training = json.loads(cls.meta["amoeba.training"])

    def test_state_dict_is_exactly_the_file(self):
        model = amoeba_torch.load(self.path)
        ours = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
        self.assertEqual(sorted(set(ours) - set(self.file_shapes)), [], "keys not in the file")
        self.assertEqual(sorted(set(self.file_shapes) - set(ours)), [], "file keys not ours")
        dtypes = {"F32": torch.float32, "I64": torch.int64}
        for key, (shape, dtype) in self.file_shapes.items():
            self.assertEqual(ours[key][0], shape, key)
            self.assertEqual(ours[key][1], dtypes.get(dtype), f"{key}: file dtype {dtype}")
        self.assertFalse(model.training, "load() returns the model in eval mode")

    def test_build_from_the_documents_alone(self):
        """build() without the weights' shapes (the official bottleneck rule) makes the same
        tree: the plan, the conventions and the training settings are enough."""
        model = amoeba_torch.build(self.plan, json.loads(self.meta["amoeba.conventions"]),
                                   self.training)
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        self.assertEqual(ours, {k: shape for k, (shape, _) in self.file_shapes.items()})

    def test_eval_matches_tensorflow(self):
        model = amoeba_torch.load(self.path)
        with torch.no_grad():
            cells = model.forward_cells(self.images)
            features = model.forward_features(self.images)
            out = model(self.images)
        errors = {}
        golden_cells = {k.split("/", 1)[1]: v for k, v in self.golden.items()
                        if k.startswith("cell_output/")}
        self.assertEqual(set(golden_cells), set(cells), "cells traced by the golden")
        worst_cell = max(bar_fraction(cells[s].permute(0, 2, 3, 1), g)
                         for s, g in golden_cells.items())
        errors["features"] = bar_fraction(features, self.golden["features"])
        if "logits" in self.golden:
            self.assertIsNotNone(self.plan["num_classes"])
            errors["logits"] = bar_fraction(out, self.golden["logits"])
            self.assertEqual(top_k(out), top_k(self.golden["logits"]), "top-5 classes")
        else:
            self.assertIsNone(self.plan["num_classes"])
            self.assertTrue(torch.equal(out, features), "a feature-vector model returns features")
        errors["worst cell"] = worst_cell
        report(self.case, "max |ours - TF| / bar", errors)
        for name, fraction in errors.items():
            self.assertLessEqual(fraction, 1.0, f"{name}: outside the verify bar")

    def test_training_semantics(self):
        """Train mode: BN on batch statistics with the file's momentum and the plan's epsilon,
        the drop-path keeps of the training settings, TF's running-statistics update."""
        model = amoeba_torch.load(self.path)
        momentum = self.training["batch_norm_momentum"]
        eps = self.plan["batch_norm_epsilon"]
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.assertTrue(bns)
        for bn in bns:
            self.assertAlmostEqual(bn.momentum, momentum)
            self.assertAlmostEqual(bn.eps, eps)
        keeps = M.drop_path_keeps(self.plan, self.training)
        for n, layout in enumerate(self.plan["cells"]):
            for op in model[layout["scope"]].modules():
                if isinstance(op, M.Identity) or (
                        isinstance(op, M.Projection) and op.drop_path_keep is None):
                    continue  # 'none': never drop path
                if isinstance(op, M.Operation):
                    self.assertAlmostEqual(op.drop_path_keep, keeps[n])
        # One train-mode forward moves the stem BN's moving mean towards the batch mean by
        # the momentum (TF: moving -= (1 - decay) * (moving - batch), zero_debias=False).
        stem_conv, stem_bn = model.at(model.stem_conv_scope), model.at(model.stem_bn_scope)
        before = stem_bn.running_mean.clone()
        x = self.images[:2]
        with torch.no_grad():
            scaled = x * model.input_scale + model.input_offset
            batch_mean = stem_conv(scaled).mean(dim=(0, 2, 3))
            model.train()
            torch.manual_seed(0)
            train_out = model(x)
            model.eval()
            eval_out = model(x)
        expected = (1 - momentum) * before + momentum * batch_mean
        self.assertTrue(torch.allclose(stem_bn.running_mean, expected, rtol=1e-5, atol=1e-6))
        # Train and eval differ (batch statistics, drop path, dropout).
        self.assertTrue(torch.isfinite(train_out).all())
        self.assertFalse(torch.allclose(train_out, eval_out))

    def test_sgd_steps_lower_the_loss(self):
        model = amoeba_torch.load(self.path)
        if self.plan["num_classes"] is None:
            self.skipTest("a feature-vector model has no classifier to train")
        x = self.images[:2]
        if x.shape[0] < 2:
            x = torch.cat([x, x.flip(3)])  # two examples, so batch statistics vary by example
        labels = torch.tensor([1, 2])
        model.train()
        start = {k: v.detach().clone() for k, v in model.named_parameters()}
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

        def loss() -> torch.Tensor:
            # The same drop-path and dropout masks at every evaluation: with batch-norm on
            # batch statistics the loss is then a fixed function of the weights, so small
            # gradient steps must lower it.
            torch.manual_seed(1234)
            return F.cross_entropy(model(x), labels)

        losses = []
        for step in range(5):
            optimizer.zero_grad()
            value = loss()
            value.backward()
            optimizer.step()
            losses.append(value.item())
            if step == 0:
                changed = [k for k, v in model.named_parameters() if not torch.equal(v, start[k])]
                self.assertIn(model.fc_scope.replace("/", ".") + ".weight", changed)
                self.assertIn(model.stem_conv_scope.replace("/", ".") + ".weight", changed)
                self.assertGreater(len(changed), len(start) // 2, "most weights take a step")
            for k, v in model.named_parameters():
                self.assertTrue(torch.isfinite(v).all(), f"{k} is not finite after a step")
        with torch.no_grad():
            losses.append(loss().item())
        report(self.case, "training loss", {f"step {i}": v for i, v in enumerate(losses)})
        self.assertTrue(all(map(lambda v: v == v and abs(v) != float("inf"), losses)))
        self.assertLess(losses[-1], losses[0] - 1e-3, f"losses {losses}")


class PiecesTest(unittest.TestCase):
    """The parts that need no exported file."""

    def test_same_padding_puts_the_extra_pixel_after(self):
        # The Rust tests' cases (crates/nasnet-genotype/src/layout.rs).
        self.assertEqual(M.same_padding(42, 3, 2), (0, 1))
        self.assertEqual(M.same_padding(42, 7, 2), (2, 3))
        self.assertEqual(M.same_padding(165, 3, 2), (1, 1))
        self.assertEqual(M.same_padding(83, 7, 2), (3, 3))
        self.assertEqual(M.same_padding(42, 5, 1), (2, 2))
        self.assertEqual(M.same_padding(42, 1, 2), (0, 0))

    def test_avg_pool_leaves_the_padding_out_of_the_count(self):
        x = torch.arange(16.0).reshape(1, 1, 4, 4)
        y = M.avg_pool_same(x, 3, 1)
        self.assertAlmostEqual(y[0, 0, 0, 0].item(), (0 + 1 + 4 + 5) / 4)
        self.assertAlmostEqual(y[0, 0, 1, 1].item(), x[0, 0, :3, :3].mean().item())
        y = M.avg_pool_same(x, 3, 2)  # 4 -> 2, pads (0, 1): the last window has 2x2 real pixels
        self.assertAlmostEqual(y[0, 0, 1, 1].item(), (10 + 11 + 14 + 15) / 4)
        z = M.max_pool_same(-x - 1, 3, 2)
        self.assertEqual(z[0, 0, 1, 1].item(), -11.0)  # the padding (-inf) never wins

    def test_factorized_reduction_path2_is_shifted_by_one(self):
        x = torch.arange(25.0).reshape(1, 1, 5, 5)
        ident = torch.nn.Identity()
        y = M.factorized_reduction(x, ident, ident, ident)
        self.assertEqual(y[0, 0].tolist(), x[0, 0, ::2, ::2].tolist())
        # Odd size: path2 reads x[1::2, 1::2] and a zero row and column after it.
        self.assertEqual(y[0, 1].tolist(), [[6.0, 8.0, 0.0], [16.0, 18.0, 0.0], [0.0] * 3])

    def test_drop_path_keeps(self):
        plan = {"cells": [{}] * 10}
        constant = {"drop_path_keep_prob": 0.7, "drop_path_schedule": "constant"}
        self.assertEqual(M.drop_path_keeps(plan, constant), [0.7] * 10)
        scaled = dict(constant, drop_path_schedule="layer_scaled")
        keeps = M.drop_path_keeps(plan, scaled)
        self.assertAlmostEqual(keeps[0], 1 - 0.1 * 0.3)  # cell_stem_0: cell_num 0
        self.assertAlmostEqual(keeps[-1], 0.7)  # the last cell keeps exactly p
        x = torch.ones(4000, 1, 1, 1)
        torch.manual_seed(0)
        y = M.drop_path(x, 0.7)
        kept = torch.tensor(1.0) / 0.7  # float32, as the model computes it
        self.assertEqual(set(y.flatten().tolist()), {0.0, kept.item()})
        self.assertAlmostEqual((y > 0).float().mean().item(), 0.7, delta=0.03)


def _make_case_classes() -> None:
    for name, export, golden in cases():
        cls_name = "Test_" + name.replace("/", "__")
        globals()[cls_name] = type(cls_name, (ExportedModelChecks, unittest.TestCase),
                                   {"case": name, "export": export, "golden_path": golden})


_make_case_classes()

if __name__ == "__main__":
    unittest.main()
