"""PyTorch for the NASNet-family networks that ``amoeba export --format torch`` writes.

    import amoeba_torch
    model = amoeba_torch.load("model.safetensors")   # eval mode
    logits = model(images)                           # NCHW in [0, 1]

The file is a PyTorch state dict (safetensors) whose metadata holds the network plan, the
TF naming conventions and the training settings; :func:`load` builds the network from them
and loads the weights strictly. :func:`build` makes the same network from the three
documents, with freshly initialised weights.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Optional, Sequence, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .model import AmoebaNet

__all__ = ["AmoebaNet", "build", "load", "FORMAT"]

#: The ``amoeba.format`` metadata value this package reads.
FORMAT = "torch-state-dict/1"


def build(plan: Mapping, conventions: Mapping, training: Mapping, *,
          weight_shapes: Optional[Mapping[str, Sequence[int]]] = None) -> AmoebaNet:
    """The network the plan describes (``amoeba.network``), named by ``conventions``
    (``amoeba.conventions``), with the training settings of ``training``
    (``amoeba.training``). ``weight_shapes`` (state-dict key -> shape), when given, decides
    what only the weights can tell: the width of a ``1xK_Kx1`` / ``KxK`` bottleneck (without
    it, the official rule). The module is in training mode, as PyTorch modules start."""
    return AmoebaNet(plan, conventions, training, weight_shapes)


def load(path: Union[str, "os.PathLike[str]"], *, map_location="cpu") -> AmoebaNet:
    """Reads an exported file: builds the network from its metadata, loads every tensor
    strictly (the keys and shapes must be exactly the network's) and returns it in eval mode
    on ``map_location``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    fmt = meta.get("amoeba.format")
    if fmt != FORMAT:
        raise ValueError(f"{path}: amoeba.format is {fmt!r}, this package reads {FORMAT!r} "
                         "(write the file with `amoeba export MODEL --format torch`)")
    documents = {}
    for key in ("amoeba.network", "amoeba.conventions", "amoeba.training"):
        if key not in meta:
            raise ValueError(f"{path}: the metadata has no {key}")
        documents[key] = json.loads(meta[key])
    model = build(documents["amoeba.network"], documents["amoeba.conventions"],
                  documents["amoeba.training"], weight_shapes=shapes)
    device = torch.device(map_location)
    state = load_file(str(path), device=str(device))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
