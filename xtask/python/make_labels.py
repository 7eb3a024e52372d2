"""Writes crates/preprocess/data/imagenet_labels.txt: the 1001 class names of
TF-slim / TF-Hub ImageNet classifiers, one a line.

Line 0 is `background` (TF-slim's extra class 0); lines 1..1000 are the
ILSVRC-2012 classes in synset-id order, the order TensorFlow's ImageNet
models use for indices 1..1000 (torchvision uses the same order for 0..999).

The names come from the torchvision wheel's `torchvision/models/_meta.py`
(`_IMAGENET_CATEGORIES`), with the two names torchvision made unique put back as
TensorFlow's `ImageNetLabels.txt` writes them (TF_NAMES): TF's file names two classes
`crane` (the bird, 135, and the machine, 518) and two `maillot` (639 and 640), where
torchvision writes `crane bird` and `maillot tank suit`. The wheel is downloaded with `pip download --no-deps`
into a temporary folder and read as a zip: it is never installed, and torch is
not needed.

Usage (from the repository root):

    xtask/.venv/bin/python xtask/python/make_labels.py [--wheel PATH]
"""

import argparse
import ast
import pathlib
import subprocess
import sys
import tempfile
import zipfile

TORCHVISION = "0.20.1"
META = "torchvision/models/_meta.py"
# torchvision's disambiguated names -> TensorFlow's ImageNetLabels.txt names.
TF_NAMES = {"crane bird": "crane", "maillot tank suit": "maillot"}
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/preprocess/data/imagenet_labels.txt"


def download_wheel(folder: pathlib.Path) -> pathlib.Path:
    """Fetches the pinned torchvision wheel (no dependencies) into `folder`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--dest", str(folder), f"torchvision=={TORCHVISION}"],
        check=True,
    )
    wheels = sorted(folder.glob("torchvision-*.whl"))
    if not wheels:
        sys.exit(f"no torchvision wheel in {folder}")
    return wheels[0]


def categories(wheel: pathlib.Path) -> list:
    """Reads `_IMAGENET_CATEGORIES` from _meta.py without importing it (it needs torch)."""
    with zipfile.ZipFile(wheel) as z:
        source = z.read(META).decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    sys.exit(f"{wheel}: no _IMAGENET_CATEGORIES in {META}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=pathlib.Path, help="use this torchvision wheel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(pathlib.Path(tmp))
        names = categories(wheel)
    if len(names) != 1000 or any("\n" in n or not n.strip() for n in names):
        sys.exit(f"expected 1000 one-line class names, got {len(names)}")
    if any(n not in names for n in TF_NAMES):
        sys.exit(f"torchvision {TORCHVISION} no longer has {sorted(TF_NAMES)}")
    names = [TF_NAMES.get(n, n) for n in names]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(["background", *names]) + "\n", encoding="utf-8")
    print(f"wrote {OUT} (1001 labels from torchvision {TORCHVISION})")


if __name__ == "__main__":
    main()
