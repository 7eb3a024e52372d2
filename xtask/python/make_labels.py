"""Writes crates/preprocess/data/imagenet_labels.txt: the 1001 class names of
TF-slim / TF-Hub ImageNet classifiers, one a line.

Line 0 is `background` (TF-slim's extra class 0); lines 1..1000 are the
ILSVRC-2012 classes in synset-id order, the order TensorFlow's ImageNet
models use for indices 1..1000 (torchvision uses the same order for 0..999).

The names come from the torchvision wheel's `torchvision/models/_meta.py`
(`_IMAGENET_CATEGORIES`). The wheel is downloaded with `pip download --no-deps`
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(["background", *names]) + "\n", encoding="utf-8")
    print(f"wrote {OUT} (1001 labels from torchvision {TORCHVISION})")


if __name__ == "__main__":
    main()
