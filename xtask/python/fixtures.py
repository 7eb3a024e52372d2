"""Entry point of `cargo xtask fixtures|golden|synth-full` (see xtask/src/main.rs).

    fixtures.py fixtures --root REPO [--out DIR]
    fixtures.py check --root REPO --conformance MODULE_DIR
    fixtures.py golden --module DIR_OR_TGZ --images FILE... -o OUT [--noise]
    fixtures.py synth-full -o DIR [--no-noise] [--spec-tsv TSV]
        [--family amoebanet|nasnet_mobile|nasnet_large|pnasnet_large]

All numbers in the goldens come from TensorFlow; the Rust side only runs this.
"""

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# hub.Module and tf.compat.v1 are deprecated APIs, used on purpose here (the
# modules are TF1 Hub format); their warnings would bury the real output.
tf.get_logger().setLevel("ERROR")
import skimage  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import genotypes  # noqa: E402
import graph_compare  # noqa: E402
import hub_export  # noqa: E402
import nasnet_graph  # noqa: E402
import preprocess  # noqa: E402

# The committed fixtures.  Small so that git and the tests stay fast; the
# first one has the configuration of fixtures/conformance/amoebanet_a_n6_f16.
FIXTURES = [
    {"name": "amoebanet_a_n6_f16", "genotype": "amoeba_net_a", "num_cells": 6,
     "filters": 16, "image_size": 331, "num_classes": 1001, "photo": "astronaut.png",
     "seed": 6016, "tar_gz": False,
     # Only the photo: with the noise image its golden would be 8 MB.
     "noise": False},
    {"name": "amoebanet_a_n3_f8", "genotype": "amoeba_net_a", "num_cells": 3,
     "filters": 8, "image_size": 331, "num_classes": 1001, "photo": "chelsea.png",
     "seed": 3008, "tar_gz": True},
    {"name": "amoebanet_a_n3_f8_feature_vector", "genotype": "amoeba_net_a", "num_cells": 3,
     "filters": 8, "image_size": 331, "num_classes": 0, "photo": "coffee.png",
     "seed": 3009, "tar_gz": False},
    # Another genotype, another input size (224 gives odd sizes 111 and 7 and
    # other SAME paddings than 331) and another class count.
    {"name": "amoebanet_c_n3_f8_224", "genotype": "amoeba_net_c", "num_cells": 3,
     "filters": 8, "image_size": 224, "num_classes": 10, "photo": "rocket.jpg",
     "seed": 3224, "tar_gz": False},
    # NASNet-A as TF-slim builds it (family configs in nasnet_graph.FAMILIES).
    # The mobile config has the structure of
    # fixtures/conformance/nasnet_a_mobile_n6_f8.
    {"name": "nasnet_a_mobile_n6_f8", "family": "nasnet_a_mobile", "genotype": "nasnet_a",
     "num_cells": 6, "filters": 8, "image_size": 224, "num_classes": 1001,
     "photo": "chelsea.png", "seed": 6008, "tar_gz": False},
    # The large config: stem x3 (96 filters), skip_reduction_layer_input=1.
    {"name": "nasnet_a_large_n6_f16", "family": "nasnet_a_large", "genotype": "nasnet_a",
     "num_cells": 6, "filters": 16, "image_size": 331, "num_classes": 1001,
     "photo": "astronaut.png", "seed": 6016, "tar_gz": False,
     # Only the photo: with the noise image its golden would be about 9.5 MB.
     "noise": False},
    # PNASNet-5 as TF-slim builds it (pnasnet.py large config): one cell type,
    # stride 2 at cells 2 and 4 and in the stem, stem x3, no reduction_cell_K.
    {"name": "pnasnet_5_large_n6_f16", "family": "pnasnet_large", "genotype": "pnasnet_5",
     "num_cells": 6, "filters": 16, "image_size": 331, "num_classes": 1001,
     "photo": "coffee.png", "seed": 6216, "tar_gz": False, "noise": False},
]

# Fixtures whose generated module is compared with an official export
# (directory name under the conformance folder).
CONFORMANCE = ["amoebanet_a_n6_f16", "nasnet_a_mobile_n6_f8"]

# Photos from the scikit-image wheel (public domain / CC0, see its README.txt).
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png"]
PREPROCESS_SIZES = [331]

FULL = {"name": "amoebanet_a_n18_f448", "genotype": "amoeba_net_a", "num_cells": 18,
        "filters": 448, "image_size": 331, "num_classes": 1001, "photo": "astronaut.png",
        "seed": 18448}

# `synth-full --family F`: full-size modules with the hparams of the real TF-Hub
# modules (shared/spec/nasnet-family.md section 1), random weights, 1001 classes.
# "amoebanet" (the default) is FULL, unchanged.  "size" is only for the log line.
FULL_FAMILIES = {
    "amoebanet": dict(FULL, size="about 1.9 GB"),
    # google/imagenet/nasnet_mobile: 224 px, 12 cells, F=44, stem 32.
    "nasnet_mobile": {"name": "nasnet_a_mobile_n12_f44", "family": "nasnet_a_mobile",
                      "genotype": "nasnet_a", "num_cells": 12, "filters": 44,
                      "image_size": 224, "num_classes": 1001, "photo": "astronaut.png",
                      "seed": 12044, "size": "about 21 MB"},
    # google/imagenet/nasnet_large: 331 px, 18 cells, F=168, stem 96,
    # skip_reduction_layer_input=1.
    "nasnet_large": {"name": "nasnet_a_large_n18_f168", "family": "nasnet_a_large",
                     "genotype": "nasnet_a", "num_cells": 18, "filters": 168,
                     "image_size": 331, "num_classes": 1001, "photo": "astronaut.png",
                     "seed": 18168, "size": "about 360 MB"},
    # google/imagenet/pnasnet_large: 331 px, 12 cells, F=216, stem 96, one
    # cell type (stride 2 at cells 4 and 8).
    "pnasnet_large": {"name": "pnasnet_5_large_n12_f216", "family": "pnasnet_large",
                      "genotype": "pnasnet_5", "num_cells": 12, "filters": 216,
                      "image_size": 331, "num_classes": 1001, "photo": "astronaut.png",
                      "seed": 12216, "size": "about 350 MB"},
}


def skimage_data(name):
    return os.path.join(os.path.dirname(skimage.__file__), "data", name)


def log(*a):
    print(*a, flush=True)


# ---- generation -------------------------------------------------------------

def fixture_metadata(fx):
    meta = {"genotype": fx["genotype"], "num_cells": str(fx["num_cells"]),
            "filters": str(fx["filters"]), "image_size": str(fx["image_size"]),
            "num_classes": str(fx["num_classes"]),
            "reduction_indices": ",".join(map(str, nasnet_graph.reduction_indices(
                fx["num_cells"]))),
            "seed": str(fx["seed"])}
    # Only fixtures that name their family get the family's facts (the
    # AmoebaNet goldens keep the metadata they always had).
    if "family" in fx:
        meta.update({k: str(v) for k, v in family_facts(fx).items()})
    return meta


def family_facts(fx):
    fam = nasnet_graph.FAMILIES[fx["family"]]
    return {"family": fx["family"], "stem_filters": nasnet_graph.stem_filters(fx["family"]),
            "skip_reduction_layer_input": fam["skip_reduction_layer_input"],
            "batch_norm_epsilon": fam["bn_epsilon"]}


def module_spec(fx):
    """The fixture's module; its weights attachment says they are random (seeded)."""
    return hub_export.make_module_spec(genotypes.GENOTYPES[fx["genotype"]], fx["num_cells"],
                                       fx["filters"], fx["image_size"], fx["num_classes"],
                                       fx.get("family", "amoebanet"),
                                       weights_note=hub_export.random_weights_note(fx["seed"]))


def build_fixture(fx, modules_dir, goldens_dir):
    """Exports one module and its golden: image 0 is a real photo preprocessed
    by TF, image 1 seeded uniform noise."""
    module_dir = os.path.join(modules_dir, fx["name"])
    if os.path.exists(module_dir):
        shutil.rmtree(module_dir)
    log(f"exporting {fx['name']} ...")
    hub_export.export_module(module_spec(fx), module_dir, fx["seed"])
    # An empty assets/ folder cannot live in git; readers must cope without.
    assets = os.path.join(module_dir, "assets")
    if os.path.isdir(assets) and not os.listdir(assets):
        os.rmdir(assets)
    if fx.get("tar_gz"):
        hub_export.make_tar_gz(module_dir, os.path.join(modules_dir, fx["name"] + ".tar.gz"))
    size = fx["image_size"]
    _, photo = preprocess.preprocess_files([skimage_data(fx["photo"])], size, size)
    images, photos = photo, fx["photo"]
    if fx.get("noise", True):
        images = np.concatenate([photo, hub_export.noise_image(size, fx["seed"])[None]])
        photos += ",uniform-noise"
    meta = {"photos": photos, "module": fx["name"]}
    meta.update(fixture_metadata(fx))
    log(f"golden {fx['name']} ...")
    hub_export.run_golden(module_dir, images, os.path.join(goldens_dir,
                                                           fx["name"] + ".golden.safetensors"),
                          meta)


def build_preprocess(out_dir):
    """For each photo: the source file, TF's decoded uint8 pixels, and TF's
    preprocessed float image at each size."""
    os.makedirs(out_dir, exist_ok=True)
    for photo in PHOTOS:
        src = skimage_data(photo)
        shutil.copyfile(src, os.path.join(out_dir, photo))
        tensors = {}
        for size in PREPROCESS_SIZES:
            decoded, pre = preprocess.preprocess_files([src], size, size)
            tensors[f"preprocessed_{size}"] = pre[0]
        if photo.endswith(".jpg"):
            # JPEG decoders may differ by a unit here and there; TF's pixels
            # let a test tell decoding from preprocessing errors.
            tensors["decoded"] = decoded[0]
        stem = os.path.splitext(photo)[0]
        save_file(tensors, os.path.join(out_dir, stem + ".safetensors"), metadata={
            "source": photo,
            "pipeline": "tf.io.decode_image(channels=3) -> convert_image_dtype(float32) -> "
                        "central_crop(0.875) -> compat.v1.image.resize_bilinear("
                        "align_corners=False, half_pixel_centers=False)",
            "producer": "TensorFlow " + __import__("tensorflow").__version__})


def module_counts(module_dir, golden):
    """Variables and values in a module's checkpoint, and its feature count."""
    reader = tf.train.load_checkpoint(os.path.join(module_dir, "variables", "variables"))
    shapes = reader.get_variable_to_shape_map()
    counts = {"variables": len(shapes),
              "values": int(sum(int(np.prod(s)) for s in shapes.values()))}
    with safe_open(golden, "np") as f:
        counts["features"] = int(f.get_slice("features").get_shape()[-1])
    return counts


def write_manifest(root_out):
    entries = []
    for fx in FIXTURES:
        e = dict(fx)
        e["module"] = f"modules/{fx['name']}"
        if fx.get("tar_gz"):
            e["module_tar_gz"] = f"modules/{fx['name']}.tar.gz"
        e["golden"] = f"goldens/{fx['name']}.golden.safetensors"
        e["reduction_indices"] = nasnet_graph.reduction_indices(fx["num_cells"])
        e["cells"] = nasnet_graph.cell_scopes(fx["num_cells"], fx.get("family", "amoebanet"))
        if "family" in fx:
            e.update(family_facts(fx))
            e.update(module_counts(os.path.join(root_out, e["module"]),
                                   os.path.join(root_out, e["golden"])))
        entries.append(e)
    manifest = {"fixtures": entries,
                "preprocess": {"photos": PHOTOS, "sizes": PREPROCESS_SIZES}}
    with open(os.path.join(root_out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def generate_all(out):
    modules, goldens = os.path.join(out, "modules"), os.path.join(out, "goldens")
    os.makedirs(modules, exist_ok=True)
    os.makedirs(goldens, exist_ok=True)
    for fx in FIXTURES:
        build_fixture(fx, modules, goldens)
    build_preprocess(os.path.join(out, "preprocess"))
    write_manifest(out)


# ---- checking ---------------------------------------------------------------

def safetensors_layout(path):
    with safe_open(path, "np") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, f.metadata() or {}


def compare_goldens(a, b, a_label, b_label, ignore_batch=False):
    la, _ = safetensors_layout(a)
    lb, _ = safetensors_layout(b)
    problems = []
    for k in sorted(set(la) | set(lb)):
        if k not in la or k not in lb:
            problems.append(f"golden tensor {k} only in {a_label if k in la else b_label}")
            continue
        sa, sb = la[k], lb[k]
        if ignore_batch:
            sa, sb = sa[1:], sb[1:]
        if sa != sb:
            problems.append(f"golden tensor {k}: shape {list(la[k])} in {a_label}, "
                            f"{list(lb[k])} in {b_label}")
    return problems


def numeric_conformance(fx, conformance, tolerance=1e-4):
    """The generator's graph with the conformance module's weights must
    reproduce the conformance golden (computed by TensorFlow on the official
    graph): same structure is not enough if, say, an input were swapped."""
    golden = conformance.rstrip("/") + ".golden.safetensors"
    if not os.path.exists(golden):
        return [f"no golden {golden} for the numeric comparison"]
    with safe_open(golden, "np") as f:
        ref = {k: f.get_tensor(k) for k in f.keys()}
    got = hub_export.apply_module(module_spec(fx), ref["images"],
                                  checkpoint=os.path.join(conformance, "variables", "variables"))
    problems = []
    worst = 0.0
    for k in sorted(ref):
        if k == "images":
            continue
        if k not in got or got[k].shape != ref[k].shape:
            problems.append(f"numeric: {k} missing or of another shape")
            continue
        scale = max(1.0, float(np.abs(ref[k]).max()))
        err = float(np.abs(got[k] - ref[k]).max()) / scale
        worst = max(worst, err)
        if err > tolerance:
            problems.append(f"numeric: {k} differs from the conformance golden by {err:.3g} "
                            f"(relative to max |value|), tolerance {tolerance}")
    if not problems:
        log(f"conformance {fx['name']}: generated graph + conformance weights reproduce the "
            f"conformance golden (worst relative difference {worst:.2g})")
    return problems


def conformance_problems(tmp, name, conf_dir):
    """Generated module `name` vs the official export in conf_dir: variables,
    per-scope op types and signatures of both graph variants, node for node,
    the golden's tensors, and the conformance golden reproduced."""
    fx = next(f for f in FIXTURES if f["name"] == name)
    ours = os.path.join(tmp, "modules", name)
    if not os.path.isdir(conf_dir):
        return [f"conformance {name}: module not found at {conf_dir}"]
    # Not the attachments: ours mark the weights random, the official exports do not.
    found = graph_compare.compare(ours, conf_dir, what=("variables", "ops", "signatures"),
                                  a_label="generated", b_label="conformance")
    found += graph_compare.compare_nodes(ours, conf_dir, a_label="generated",
                                         b_label="conformance")
    golden_conf = conf_dir.rstrip("/") + ".golden.safetensors"
    if os.path.exists(golden_conf):
        found += compare_goldens(os.path.join(tmp, "goldens", name + ".golden.safetensors"),
                                 golden_conf, "generated", "conformance", ignore_batch=True)
    found += numeric_conformance(fx, conf_dir)
    if not found:
        log(f"conformance: generated {name} has the same variables, per-scope op types, "
            f"nodes (names, inputs, attributes; both graph variants) and signatures as "
            f"{conf_dir}")
    return [f"conformance {name}: {p}" for p in found]


def check(root, conformance):
    committed = os.path.join(root, "fixtures")
    problems = []
    with tempfile.TemporaryDirectory(prefix="xtask-fixtures-") as tmp:
        generate_all(tmp)
        for fx in FIXTURES:
            name = fx["name"]
            paths = [(f"modules/{name}", f"modules/{name}")]
            if fx.get("tar_gz"):
                paths.append((f"modules/{name}.tar.gz", f"modules/{name}.tar.gz"))
            for rel_c, rel_g in paths:
                c, g = os.path.join(committed, rel_c), os.path.join(tmp, rel_g)
                if not os.path.exists(c):
                    problems.append(f"{rel_c}: missing in fixtures/")
                    continue
                problems += [f"{rel_c}: {p}" for p in graph_compare.compare(
                    c, g, a_label="committed", b_label="regenerated")]
            gc = os.path.join(committed, "goldens", name + ".golden.safetensors")
            gg = os.path.join(tmp, "goldens", name + ".golden.safetensors")
            if not os.path.exists(gc):
                problems.append(f"goldens/{name}.golden.safetensors: missing in fixtures/")
            else:
                problems += [f"goldens/{name}: {p}" for p in compare_goldens(
                    gc, gg, "committed", "regenerated")]
        for photo in PHOTOS:
            stem = os.path.splitext(photo)[0] + ".safetensors"
            pc, pg = (os.path.join(committed, "preprocess", stem),
                      os.path.join(tmp, "preprocess", stem))
            if not os.path.exists(pc):
                problems.append(f"preprocess/{stem}: missing in fixtures/")
            else:
                problems += [f"preprocess/{stem}: {p}" for p in compare_goldens(
                    pc, pg, "committed", "regenerated")]
        # The generator against modules the official code exported: the
        # AmoebaNet one (TF 1.15) at `conformance`, the NASNet-A mobile one
        # (TF-slim, TF 2.21) beside it.
        for name in CONFORMANCE:
            conf_dir = (conformance if name == CONFORMANCE[0]
                        else os.path.join(os.path.dirname(conformance.rstrip("/")), name))
            problems += conformance_problems(tmp, name, conf_dir)
    if problems:
        log(f"\n{len(problems)} mismatch(es):")
        for p in problems:
            log("  " + p)
        return 1
    log("fixtures --check: committed fixtures match the regenerated structure")
    return 0


# ---- golden for any module and the full-size synthetic module ---------------

def golden_cmd(module, images, out, noise):
    if os.path.isfile(module):
        # hub.Module reads folders; a downloaded .tar.gz is unpacked first.
        with tempfile.TemporaryDirectory(prefix="xtask-module-") as tmp:
            with tarfile.open(module, "r:*") as tar:
                tar.extractall(tmp, filter="data")
            return _golden(tmp, module, images, out, noise)
    return _golden(module, module, images, out, noise)


def _golden(module, label, images, out, noise):
    size = hub_export.expected_image_size(module)
    _, pre = preprocess.preprocess_files(images, size[0], size[1])
    names = [os.path.basename(p) for p in images]
    if noise:
        pre = np.concatenate([pre, hub_export.noise_image(size[0], 0)[None]])
        names.append("uniform-noise")
    t = hub_export.run_golden(module, pre, out, {"photos": ",".join(names),
                                                 "module": os.path.abspath(label)})
    for k, v in t.items():
        log(f"  {k} {list(v.shape)}")
    return 0


def compare_with_tsv(module_dir, tsv_path):
    """Variables of a module vs a `name<TAB>AxBxC...` listing (the spec's list
    of every variable of the real hub module)."""
    want = {}
    with open(tsv_path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, shape = line.split("\t")[:2]
            want[name] = tuple(int(d) for d in shape.split("x"))
    problems = []
    for tags, g in graph_compare.structure(module_dir).items():
        have = g["variables"]
        problems += [f"[{tags}] not in {tsv_path}: {n}" for n in sorted(set(have) - set(want))]
        problems += [f"[{tags}] missing: {n}" for n in sorted(set(want) - set(have))]
        problems += [f"[{tags}] {n}: {list(have[n])} vs {list(want[n])}" for n in sorted(have)
                     if n in want and have[n] != want[n]]
    return problems


def synth_full(out_dir, with_noise, spec_tsv=None, family="amoebanet"):
    os.makedirs(out_dir, exist_ok=True)
    fx = {k: v for k, v in FULL_FAMILIES[family].items() if k != "size"}
    module_dir = os.path.join(out_dir, fx["name"])
    if os.path.exists(module_dir):
        shutil.rmtree(module_dir)
    log(f"exporting {module_dir} ({FULL_FAMILIES[family]['size']}, takes minutes) ...")
    hub_export.export_module(module_spec(fx), module_dir, fx["seed"])
    if spec_tsv:
        problems = compare_with_tsv(module_dir, spec_tsv)
        for p in problems:
            log("  " + p)
        if problems:
            log(f"{len(problems)} variable mismatch(es) with {spec_tsv}")
            return 1
        log(f"variables (names, shapes) identical to {spec_tsv}")
    size = fx["image_size"]
    _, images = preprocess.preprocess_files([skimage_data(fx["photo"])], size, size)
    photos = fx["photo"]
    if with_noise:
        images = np.concatenate([images, hub_export.noise_image(size, fx["seed"])[None]])
        photos += ",uniform-noise"
    meta = {"photos": photos, "module": fx["name"]}
    meta.update(fixture_metadata(fx))
    out = os.path.join(out_dir, fx["name"] + ".golden.safetensors")
    log(f"golden {out} ...")
    hub_export.run_golden(module_dir, images, out, meta)
    if "family" in fx:
        counts = module_counts(module_dir, out)
        log(f"{fx['name']}: {counts['variables']} variables, {counts['values']:,} values "
            f"({counts['values'] * 4 / 1e6:.1f} MB of float32), {counts['features']} features")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fixtures")
    p.add_argument("--root", required=True)
    p.add_argument("--out", help="output folder (default: ROOT/fixtures)")
    p.add_argument("--only", metavar="NAME", choices=[fx["name"] for fx in FIXTURES],
                   help="regenerate this fixture (module and golden) and the manifest only")
    p = sub.add_parser("check")
    p.add_argument("--root", required=True)
    p.add_argument("--conformance", required=True)
    p = sub.add_parser("golden")
    p.add_argument("--module", required=True)
    p.add_argument("--images", nargs="+", required=True)
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--noise", action="store_true")
    p = sub.add_parser("synth-full")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--spec-tsv", help="variable listing of the real module to compare with")
    p.add_argument("--family", choices=sorted(FULL_FAMILIES), default="amoebanet",
                   help="which real module's hparams (default: AmoebaNet-A N18/F448)")
    a = ap.parse_args()
    if a.cmd == "fixtures":
        out = a.out or os.path.join(a.root, "fixtures")
        if a.only:
            fx = next(f for f in FIXTURES if f["name"] == a.only)
            build_fixture(fx, os.path.join(out, "modules"), os.path.join(out, "goldens"))
            write_manifest(out)
            log(f"fixture {a.only} and the manifest written to {out}")
            return 0
        for d in ("modules", "goldens", "preprocess"):
            shutil.rmtree(os.path.join(out, d), ignore_errors=True)
        generate_all(out)
        log(f"fixtures written to {out}")
        return 0
    if a.cmd == "check":
        return check(a.root, a.conformance)
    if a.cmd == "golden":
        return golden_cmd(a.module, a.images, a.out, a.noise)
    if a.cmd == "synth-full":
        return synth_full(a.out, not a.no_noise, a.spec_tsv, a.family)
    return 2


if __name__ == "__main__":
    sys.exit(main())
