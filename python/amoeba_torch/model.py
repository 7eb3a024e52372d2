"""The NASNet-family network (AmoebaNet-A..D, NASNet-A, PNASNet-5) as a ``torch.nn.Module``.

Everything is built from three JSON documents that ``amoeba export --format torch`` stores in
the file's metadata:

* the *network plan* (``amoeba.network``): the genotype and every cell's scope, kind, width,
  stride, inputs, how it adjusts its ``prev_layer`` input, and its sizes;
* the *conventions* (``amoeba.conventions``): the names TensorFlow gives every scope, so that
  the module tree mirrors the TF variable scopes and ``state_dict()`` keys are the TF names
  with ``/`` replaced by ``.`` (only the last component is renamed, e.g. ``gamma`` ->
  ``weight``);
* the *training* settings (``amoeba.training``): batch-norm momentum, drop-path and dropout
  keep probabilities.

The operations mirror the project's ONNX builder (crates/onnx-export/src/graph.rs) and its
forward pass (crates/nasnet-forward), which follow the official code: tensorflow/tpu
``models/official/amoeba_net/network_utils.py`` and TF-slim ``research/slim/nets/nasnet``.
Tensors are NCHW throughout.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# TensorFlow's SAME padding, pooling and the factorized reduction
# --------------------------------------------------------------------------------------------


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TF SAME padding of one dimension: (before, after).

    TF pads so that the output is ``ceil(size / stride)``, with a total of
    ``(out - 1) * stride + kernel - size`` pixels, and puts the odd pixel *after* (bottom or
    right). At stride 2 on an even size the total is odd (e.g. 42 -> 21 with a 3x3 pads 0 above
    and 1 below), so the padding is asymmetric, which PyTorch's symmetric ``padding=`` cannot
    express: every SAME layer here pads explicitly with ``F.pad`` instead.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Tuple[int, int], stride: Tuple[int, int],
             value: float = 0.0) -> torch.Tensor:
    """``x`` (NCHW) padded as TF's SAME would for this kernel and stride."""
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def avg_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF ``avg_pool`` with SAME padding.

    TF divides each window's sum by the number of *real* pixels in it: the padding is left out
    of the count (``count_include_pad=False``), so a border output is not pulled towards 0.
    PyTorch can leave padding out of the count only for its own symmetric padding, so here
    the window sums of the zero-padded input (``divisor_override=1``) are divided by the
    window sums of a padded tensor of ones: the number of real pixels in each window.
    """
    k, s = (kernel, kernel), (stride, stride)
    total = F.avg_pool2d(pad_same(x, k, s), k, s, divisor_override=1)
    ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
    count = F.avg_pool2d(pad_same(ones, k, s), k, s, divisor_override=1)
    return total / count


def max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF ``max_pool`` with SAME padding: the padding never wins (it is -inf)."""
    k, s = (kernel, kernel), (stride, stride)
    return F.max_pool2d(pad_same(x, k, s, value=-math.inf), k, s)


def factorized_reduction(x: torch.Tensor, path1: nn.Module, path2: nn.Module,
                         bn: nn.Module) -> torch.Tensor:
    """Halves the spatial size without losing half the pixels (``factorized_reduction``).

    Path 1 reads the even pixels ``x[::2, ::2]`` (TF: a 1x1 average pool at stride 2, VALID).
    Path 2 reads the odd ones: TF pads one zero row and column at the bottom/right and drops
    the first row and column, i.e. shifts the image by one pixel, then subsamples the same way;
    on an odd size its last row/column is the zero padding. Each path is a 1x1 conv to half
    the channels; the halves are concatenated and share one batch norm. No ReLU inside: the
    caller applies it (or not).
    """
    p1 = path1(x[:, :, ::2, ::2])
    shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    p2 = path2(shifted[:, :, ::2, ::2])
    return bn(torch.cat([p1, p2], dim=1))


def drop_path(x: torch.Tensor, keep_prob: float) -> torch.Tensor:
    """TF's ``drop_path``: drops a whole example's output with probability ``1 - keep_prob``
    (one Bernoulli draw per example, mask [N, 1, 1, 1]) and scales the kept ones by
    ``1 / keep_prob``. TF draws ``floor(keep + U[0, 1))``, a Bernoulli(keep)."""
    mask = torch.floor(keep_prob + torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype,
                                              device=x.device))
    return x / keep_prob * mask


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def fill(pattern: str, **values: int) -> str:
    """A conventions pattern with its ``{key}`` numbers filled in: ``comb_iter_{i}`` ->
    ``comb_iter_3``."""
    for key, value in values.items():
        pattern = pattern.replace("{" + key + "}", str(value))
    return pattern


class Scope(nn.ModuleDict):
    """A TF variable scope: its children are keyed by their TF scope names (``1x1``,
    ``beginning_bn``, ``comb_iter_0`` ...), so a parameter's ``state_dict`` key is its TF
    variable's name with ``/`` as ``.``. A ``ModuleDict`` because TF names such as ``1x1``
    are not Python identifiers: children are looked up as ``self["1x1"]``."""

    def put(self, path: str, module: nn.Module) -> nn.Module:
        """Adds ``module`` at ``path`` (``a/b/c``), making the scopes on the way."""
        head, _, rest = path.partition("/")
        if not rest:
            self[head] = module
            return module
        if head not in self:
            self[head] = Scope()
        return self[head].put(rest, module)

    def at(self, path: str) -> nn.Module:
        """The module at ``path`` (``a/b/c``)."""
        module: nn.Module = self
        for part in path.split("/"):
            module = module[part]
        return module


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class SameConv2d(nn.Conv2d):
    """A TF convolution with SAME padding (computed from the input size, see
    :func:`same_padding`) and no bias: every convolution of these networks is followed by a
    batch norm, so TF-slim builds them with ``biases_initializer=None``."""

    def __init__(self, cin: int, cout: int, kernel: Tuple[int, int] = (1, 1),
                 stride: Tuple[int, int] = (1, 1), groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride))


def conv1x1(cin: int, cout: int, stride: int = 1) -> SameConv2d:
    return SameConv2d(cin, cout, (1, 1), (stride, stride))


class SeparableConv2d(nn.Module):
    """``slim.separable_conv2d`` with depth multiplier 1: a depthwise KxK (the stride is
    here) straight into a pointwise 1x1, with no batch norm or ReLU between them. The TF
    variables ``depthwise_weights`` and ``pointwise_weights`` become ``depthwise.weight``
    and ``pointwise.weight``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.depthwise = SameConv2d(cin, cin, (kernel, kernel), (stride, stride), groups=cin)
        self.pointwise = conv1x1(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Names:
    """The TF names this network needs, read from the conventions document
    (crates/nasnet-genotype/data/conventions.json), never spelled out in the code."""

    def __init__(self, conventions: Mapping):
        self.stem_bn_suffix: str = conventions["stem"]["bn_suffix"]
        self.cell: Mapping[str, object] = conventions["cell"]
        self.op: Mapping[str, str] = conventions["operations"]
        self.head: Mapping[str, str] = conventions["head"]
        self.conv_weights: str = conventions["variables"]["conv_weights"]

    def scope_of(self, variable: str) -> str:
        """``final_layer/FC/weights`` -> ``final_layer/FC``."""
        return variable.rsplit("/", 1)[0]


class Settings:
    """What every layer needs besides its shape: batch-norm epsilon (the graph's, from the
    plan) and momentum (PyTorch's convention: 1 - TF's decay)."""

    def __init__(self, epsilon: float, momentum: float):
        self.epsilon = epsilon
        self.momentum = momentum

    def bn(self, channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=self.epsilon, momentum=self.momentum)


# --------------------------------------------------------------------------------------------
# Operations (one per ``comb_iter_i/left`` or ``right``)
# --------------------------------------------------------------------------------------------


class Operation(Scope):
    """One operation of a combination. In training mode its output (after its batch norm,
    before the add) goes through drop path, except for the identity op ``none``: both
    official codes run ``_apply_drop_path`` only ``if operation != 'none'`` (even when
    ``none`` has to become a strided 1x1 conv). ``drop_path_keep`` is None for no drop path."""

    def __init__(self, drop_path_keep: Optional[float]):
        super().__init__()
        self.drop_path_keep = drop_path_keep

    def run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.run(x)
        if self.training and self.drop_path_keep is not None and self.drop_path_keep < 1.0:
            y = drop_path(y, self.drop_path_keep)
        return y


class Identity(Operation):
    """``none`` on a state that already has the cell's stride and width: the state itself."""

    def __init__(self):
        super().__init__(None)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Projection(Operation):
    """``1x1``, or ``none`` that must change the stride or the width: ReLU -> 1x1 conv (with
    the stride) -> BN, scopes ``1x1`` and ``bn_1``."""

    def __init__(self, names: Names, s: Settings, cin: int, cout: int, stride: int,
                 drop_path_keep: Optional[float]):
        super().__init__(drop_path_keep)
        self.conv_scope, self.bn_scope = names.op["projection_conv"], names.op["projection_bn"]
        self[self.conv_scope] = conv1x1(cin, cout, stride)
        self[self.bn_scope] = s.bn(cout)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self[self.bn_scope](self[self.conv_scope](F.relu(x)))


class Pooling(Operation):
    """``avg_pool_KxK`` / ``max_pool_KxK``: SAME pooling with the stride, no ReLU; then, only
    when the input's width differs from the cell's, a plain 1x1 conv and BN (``1x1``,
    ``bn_1``), still without a ReLU."""

    def __init__(self, names: Names, s: Settings, average: bool, kernel: int, cin: int,
                 cout: int, stride: int, drop_path_keep: Optional[float]):
        super().__init__(drop_path_keep)
        self.average, self.kernel, self.stride = average, kernel, stride
        self.conv_scope, self.bn_scope = names.op["projection_conv"], names.op["projection_bn"]
        self.project = cin != cout
        if self.project:
            self[self.conv_scope] = conv1x1(cin, cout)
            self[self.bn_scope] = s.bn(cout)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        pool = avg_pool_same if self.average else max_pool_same
        y = pool(x, self.kernel, self.stride)
        if self.project:
            y = self[self.bn_scope](self[self.conv_scope](y))
        return y


class Separable(Operation):
    """``separable_KxK_N``: N times ReLU -> separable conv (scope ``separable_KxK_n``) -> BN
    (``bn_sep_KxK_n``). Only the first depthwise has the stride and reads the input's width;
    every pointwise makes the cell's width."""

    def __init__(self, names: Names, s: Settings, kernel: int, repeats: int, cin: int,
                 cout: int, stride: int, drop_path_keep: Optional[float]):
        super().__init__(drop_path_keep)
        if repeats < 1:
            raise ValueError("a separable operation with no layers")
        self.layers: List[Tuple[str, str]] = []
        for n in range(1, repeats + 1):
            conv = fill(names.op["separable"], k=kernel, n=n)
            bn = fill(names.op["separable_bn"], k=kernel, n=n)
            self[conv] = SeparableConv2d(cin if n == 1 else cout, cout, kernel,
                                         stride if n == 1 else 1)
            self[bn] = s.bn(cout)
            self.layers.append((conv, bn))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in self.layers:
            x = self[bn](self[conv](F.relu(x)))
        return x


class Bottleneck(Operation):
    """``1xK_Kx1`` (``factorized``) or ``KxK`` (``conv``), each layer after a ReLU:
    [``pre_1x1`` -> ``pre_bn``] -> the conv(s) with their BNs -> [``post_1x1`` -> ``post_bn``].

    ``1xK_Kx1`` is ``1xK`` (stride [1, s]) -> ``bn_1xK_Kx1`` -> ReLU -> ``Kx1`` (stride [s, 1])
    -> ``bn``; ``KxK`` is one conv with the stride -> ``bn``. The bottleneck (``pre``/``post``)
    narrows to ``width`` channels; it is absent (``width`` None) when the official rule gives
    fewer than 1 channel (see :func:`bottleneck_width`); then the convs make the cell's width
    directly, as tensorflow/tpu's ``_apply_operation`` builds them (and as the project's Rust
    forward pass and ONNX builder do).
    """

    def __init__(self, names: Names, s: Settings, kernel: int, factorized: bool,
                 width: Optional[int], cin: int, cout: int, stride: int,
                 drop_path_keep: Optional[float]):
        super().__init__(drop_path_keep)
        op = names.op
        self.bottleneck = width is not None
        mid = width if width is not None else cout
        self.layers: List[Tuple[str, str]] = []  # (conv scope, bn scope), each after a ReLU

        def add(conv_scope: str, conv: nn.Module, bn_scope: str, channels: int) -> None:
            self[conv_scope] = conv
            self[bn_scope] = s.bn(channels)
            self.layers.append((conv_scope, bn_scope))

        current = cin
        if self.bottleneck:
            add(op["bottleneck_in"], conv1x1(cin, mid), op["bottleneck_in_bn"], mid)
            current = mid
        if factorized:
            add(fill(op["factorized_row"], k=kernel),
                SameConv2d(current, mid, (1, kernel), (1, stride)),
                fill(op["factorized_row_bn"], k=kernel), mid)
            add(fill(op["factorized_column"], k=kernel),
                SameConv2d(mid, mid, (kernel, 1), (stride, 1)), op["conv_bn"], mid)
        else:
            add(fill(op["conv"], k=kernel),
                SameConv2d(current, mid, (kernel, kernel), (stride, stride)), op["conv_bn"], mid)
        if self.bottleneck:
            add(op["bottleneck_out"], conv1x1(mid, cout), op["bottleneck_out_bn"], cout)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in self.layers:
            x = self[bn](self[conv](F.relu(x)))
        return x


def bottleneck_width(scope: str, kernel: int, factorized: bool, cout: int, names: Names,
                     shapes: Optional[Mapping[str, Sequence[int]]]) -> Optional[int]:
    """The bottleneck width of a ``1xK_Kx1`` / ``KxK`` op, or None for no bottleneck.

    As in the project's forward pass, the weights decide when they are at hand (``shapes``:
    the file's tensor shapes by state-dict key): the op has a bottleneck exactly when its
    ``pre_1x1`` exists, as wide as that conv's output. Without them, tensorflow/tpu's rule
    (network_utils.py ``_apply_operation``): ``int(3 * width / 8)`` for ``1x3_3x1``,
    ``int(width / 4)`` otherwise, and no bottleneck when that is below 1.
    """
    if shapes is not None:
        key = ".".join(scope.split("/") + [names.op["bottleneck_in"], "weight"])
        shape = shapes.get(key)
        if shape is None:
            return None
        if len(shape) != 4 or not 1 <= shape[0] <= cout:
            raise ValueError(f"{key} has shape {list(shape)}; a bottleneck's pre_1x1 is "
                             f"[W, C, 1, 1] with 1 <= W <= {cout} (the cell's width)")
        return int(shape[0])
    width = (3 * cout) // 8 if (factorized and kernel == 3) else cout // 4
    return width if width >= 1 else None


# --------------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------------

Shape = Tuple[int, int, int]  # (channels, height, width) of a state, without the batch


def halve(size: int) -> int:
    return -(-size // 2)


class Combination(Scope):
    """``comb_iter_i``: ``left(h[a]) + right(h[b])`` (the add is TF's ``combine``)."""

    def __init__(self, sides: Sequence[str], left: Operation, right: Operation,
                 inputs: Tuple[int, int]):
        super().__init__()
        self.side_scopes = tuple(sides)
        self[self.side_scopes[0]], self[self.side_scopes[1]] = left, right
        self.inputs = inputs

    def forward(self, states: List[torch.Tensor]) -> torch.Tensor:
        left, right = self.side_scopes
        return self[left](states[self.inputs[0]]) + self[right](states[self.inputs[1]])


class OutputProjection(Scope):
    """``cell_output/reduction_j`` when only the width differs: 1x1 ``path_conv`` ->
    ``path_bn``, no ReLU (``factorized_reduction`` at stride 1)."""

    def __init__(self, names: Names, s: Settings, cin: int, cout: int):
        super().__init__()
        self.conv_scope = names.cell["output_reduction_conv"]
        self.bn_scope = names.cell["output_reduction_bn"]
        self[self.conv_scope] = conv1x1(cin, cout)
        self[self.bn_scope] = s.bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[self.bn_scope](self[self.conv_scope](x))


class FactorizedReduction(Scope):
    """A :func:`factorized_reduction` with its own scope (``path1_conv``, ``path2_conv``,
    ``final_path_bn``): ``cell_output/reduction_j`` when the spatial size differs. No ReLU."""

    def __init__(self, names: Names, s: Settings, cin: int, cout: int):
        super().__init__()
        self.path_scopes, self.bn_scope = add_factorized_reduction(self, names, s, cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.path_scopes
        return factorized_reduction(x, self[first], self[second], self[self.bn_scope])


def add_factorized_reduction(scope: Scope, names: Names, s: Settings, cin: int,
                             cout: int) -> Tuple[Tuple[str, str], str]:
    """Puts the two half-width paths and their shared BN into ``scope``; returns their names."""
    if cout % 2:
        raise ValueError(f"a factorized reduction to {cout} channels (odd) cannot split evenly "
                         "into its two paths")
    paths = tuple(names.cell["factorized_paths"])
    bn = names.cell["factorized_bn"]
    for path in paths:
        scope[path] = conv1x1(cin, cout // 2)
    scope[bn] = s.bn(cout)
    return (paths[0], paths[1]), bn


class CellOutput(Scope):
    """``cell_output``: the states whose ``used_hiddenstates`` flag is 0, in index order, each
    first brought to the last state's size and width (``reduction_j``: a factorized reduction
    when the size differs, a 1x1 when only the width does; AmoebaNet-C needs them), then
    concatenated along the channels."""

    def __init__(self, names: Names, s: Settings, scope: str, used: Sequence[int],
                 shapes: List[Shape], expect: Tuple[int, Tuple[int, int]]):
        super().__init__()
        last = shapes[-1]
        self.parts: List[Tuple[int, Optional[str]]] = []  # (state, adjusting child or None)
        for j, shape in enumerate(shapes):
            if j >= len(used) or used[j] != 0:
                continue
            name = fill(names.cell["output_reduction"], j=j)
            if shape[1:] != last[1:]:
                if (halve(shape[1]), halve(shape[2])) != last[1:]:
                    raise ValueError(f"{scope}: state h{j} {shape} cannot be reduced to {last}")
                self[name] = FactorizedReduction(names, s, shape[0], last[0])
            elif shape[0] != last[0]:
                self[name] = OutputProjection(names, s, shape[0], last[0])
            else:
                name = None
            self.parts.append((j, name))
        channels = last[0] * len(self.parts)
        if (channels, last[1:]) != (expect[0], tuple(expect[1])):
            raise ValueError(f"{scope}: the cell computes {channels}x{last[1]}x{last[2]}, the "
                             f"plan says {expect[0]}x{expect[1][0]}x{expect[1][1]}")

    def forward(self, states: List[torch.Tensor]) -> torch.Tensor:
        parts = [states[j] if name is None else self[name](states[j]) for j, name in self.parts]
        return torch.cat(parts, dim=1)


class Cell(Scope):
    """One cell (``cell_stem_K``, ``cell_K``, ``reduction_cell_K``).

    * ``h0`` = ReLU -> ``1x1`` -> ``beginning_bn`` of the cell input ``net``;
    * ``h1`` = the ``prev_layer`` input, adjusted as the plan says (``_reduce_prev_layer``):
      unchanged; the input itself (first stem cell: no ReLU); ReLU -> factorized reduction
      when the size differs (its variables sit directly under the cell scope); ReLU ->
      ``prev_1x1`` -> ``prev_bn`` when only the width differs;
    * five (as many as the genotype has) combinations, each appending a state; an operation
      gets the cell's stride only if it reads h0 or h1;
    * the output concat (:class:`CellOutput`).
    """

    def __init__(self, names: Names, s: Settings, layout: Mapping, genotype_cell: Mapping,
                 prev_shape: Shape, drop_path_keep: Optional[float],
                 weight_shapes: Optional[Mapping[str, Sequence[int]]]):
        super().__init__()
        scope, br, stride = layout["scope"], layout["filters"], layout["stride"]
        self.scope = scope
        cell = names.cell
        c_in = layout["input_channels"]
        hw_in = tuple(layout["input_hw"])

        self.input_conv_scope, self.input_bn_scope = cell["input_conv"], cell["input_bn"]
        self[self.input_conv_scope] = conv1x1(c_in, br)
        self[self.input_bn_scope] = s.bn(br)

        self.prev_adjust = layout["prev_adjust"]
        pc, ph, pw = prev_shape
        if self.prev_adjust == "use_input":
            h1: Shape = (c_in,) + hw_in
        elif self.prev_adjust == "unchanged":
            h1 = prev_shape
        elif self.prev_adjust == "prev1x1":
            self.prev_conv_scope, self.prev_bn_scope = cell["prev_conv"], cell["prev_bn"]
            self[self.prev_conv_scope] = conv1x1(pc, br)
            self[self.prev_bn_scope] = s.bn(br)
            h1 = (br, ph, pw)
        elif self.prev_adjust == "factorized_reduction":
            self.prev_path_scopes, self.prev_reduction_bn_scope = add_factorized_reduction(
                self, names, s, pc, br)
            h1 = (br, halve(ph), halve(pw))
        else:
            raise ValueError(f"{scope}: unknown prev_adjust {self.prev_adjust!r}")

        shapes: List[Shape] = [(br,) + hw_in, h1]
        ops, indices = genotype_cell["operations"], genotype_cell["hiddenstate_indices"]
        self.combination_scopes: List[str] = []
        for i in range(len(ops) // 2):
            sides, out_shapes = [], []
            for side in range(2):
                j = 2 * i + side
                index = indices[j]
                if index >= len(shapes):
                    raise ValueError(f"{scope}: operation {j} reads h{index}, which does not "
                                     "exist yet")
                op_stride = stride if index < 2 else 1
                op_scope = "/".join([scope, fill(cell["combination"], i=i), cell["sides"][side]])
                op, shape = make_operation(names, s, op_scope, ops[j], shapes[index], op_stride,
                                           br, drop_path_keep, weight_shapes)
                sides.append(op)
                out_shapes.append(shape)
            if out_shapes[0] != out_shapes[1]:
                raise ValueError(f"{scope}: combination {i}: {out_shapes[0]} and "
                                 f"{out_shapes[1]} cannot be added")
            name = fill(cell["combination"], i=i)
            self[name] = Combination(cell["sides"], sides[0], sides[1],
                                     (indices[2 * i], indices[2 * i + 1]))
            self.combination_scopes.append(name)
            shapes.append(out_shapes[0])

        self.output_scope = cell["output"]
        self[self.output_scope] = CellOutput(names, s, scope, genotype_cell["used_hiddenstates"],
                                       shapes, (layout["output_channels"], layout["output_hw"]))

    def forward(self, net: torch.Tensor, prev: Optional[torch.Tensor]) -> torch.Tensor:
        h0 = self[self.input_bn_scope](self[self.input_conv_scope](F.relu(net)))
        if self.prev_adjust == "use_input":
            h1 = net
        elif self.prev_adjust == "unchanged":
            h1 = prev
        elif self.prev_adjust == "prev1x1":
            h1 = self[self.prev_bn_scope](self[self.prev_conv_scope](F.relu(prev)))
        else:
            p1, p2 = self.prev_path_scopes
            h1 = factorized_reduction(F.relu(prev), self[p1], self[p2],
                                      self[self.prev_reduction_bn_scope])
        states = [h0, h1]
        for name in self.combination_scopes:
            states.append(self[name](states))
        return self[self.output_scope](states)


def make_operation(names: Names, s: Settings, scope: str, op: Mapping, input_shape: Shape,
                   stride: int, br: int, drop_path_keep: Optional[float],
                   weight_shapes: Optional[Mapping[str, Sequence[int]]]) -> Tuple[Operation, Shape]:
    """The module of one operation of the plan (tagged ``{"op": ...}``) reading a state of
    ``input_shape`` with ``stride``; returns it and its output shape."""
    c, h, w = input_shape
    out: Shape = (br, -(-h // stride), -(-w // stride))
    kind = op["op"]
    if kind == "identity":
        if stride == 1 and c == br:
            return Identity(), input_shape
        return Projection(names, s, c, br, stride, None), out  # 'none': never drop path
    if kind == "conv1x1":
        return Projection(names, s, c, br, stride, drop_path_keep), out
    if kind in ("avg_pool", "max_pool"):
        return Pooling(names, s, kind == "avg_pool", op["kernel"], c, br, stride,
                       drop_path_keep), out
    if kind == "separable":
        return Separable(names, s, op["kernel"], op["repeats"], c, br, stride,
                         drop_path_keep), out
    if kind in ("factorized", "conv"):
        factorized = kind == "factorized"
        if not factorized and op.get("dilation", 1) != 1:
            # As the project's forward pass and ONNX builder: not implemented.
            raise NotImplementedError(f"{scope}: dilated {op['kernel']}x{op['kernel']} "
                                      f"convolution (rate {op['dilation']}) is not implemented")
        width = bottleneck_width(scope, op["kernel"], factorized, br, names, weight_shapes)
        return Bottleneck(names, s, op["kernel"], factorized, width, c, br, stride,
                          drop_path_keep), out
    raise ValueError(f"{scope}: unknown operation {op!r}")


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


def drop_path_keeps(plan: Mapping, training: Mapping) -> List[float]:
    """The drop-path keep probability of each cell of the plan, in network order.

    * ``constant`` (AmoebaNet, tensorflow/tpu network_utils.py ``_apply_drop_path``, v1, with
      ``drop_path_burn_in_steps = 0`` in the hub export): every cell keeps ``p``.
    * ``layer_scaled`` (TF-slim nasnet_utils.py ``NasNetABaseCell._apply_drop_path``, v3, at a
      step past ``total_training_steps`` so the step ratio is 1.0): cell ``n`` keeps
      ``1 - (n + 1) / total_num_cells * (1 - p)``. ``n`` is TF's ``cell_num``: the stem cells
      get 0 and 1 (nasnet.py ``_imagenet_stem``), then ``true_cell_num`` starts at 2 and grows
      by one for every reduction and normal cell (nasnet.py ``_build_nasnet_base``,
      pnasnet.py ``_build_pnasnet_base``): the cell's position in network order.
      ``total_num_cells`` is ``num_cells + 2 + 2`` in ``build_nasnet_mobile/large`` (two
      reduction cells, two stem cells) and ``num_cells + 2`` in ``build_pnasnet_large``
      (stem cells; its stride-2 cells are among ``num_cells``): in both, the number of cells
      in the plan (TF-slim always builds two reductions). The last cell keeps exactly ``p``.
    """
    p = float(training["drop_path_keep_prob"])
    schedule = training["drop_path_schedule"]
    total = len(plan["cells"])
    if schedule == "constant":
        return [p] * total
    if schedule == "layer_scaled":
        return [1.0 - (n + 1) / total * (1.0 - p) for n in range(total)]
    raise ValueError(f"unknown drop_path_schedule {schedule!r}")


class AmoebaNet(Scope):
    """A NASNet-family network built from its plan: the stem convolution, every cell in
    network order, and the head (ReLU -> global mean -> [dropout -> ``final_layer/FC``]).

    ``model(x)``: ``x`` NCHW in [0, 1] at the plan's image size; returns the logits, or the
    features for a feature-vector plan. ``forward_features(x)``: the pooled features.
    ``forward_cells(x)``: every cell's output (NCHW) by scope.
    """

    def __init__(self, plan: Mapping, conventions: Mapping, training: Mapping,
                 weight_shapes: Optional[Mapping[str, Sequence[int]]] = None):
        super().__init__()
        self.plan, self.training_settings = dict(plan), dict(training)
        names = Names(conventions)
        s = Settings(float(plan["batch_norm_epsilon"]), float(training["batch_norm_momentum"]))
        self.image_size = tuple(plan["image_size"])
        self.input_scale = float(plan["input_scale"])
        self.input_offset = float(plan["input_offset"])
        self.dense_dropout_keep = float(training["dense_dropout_keep_prob"])

        # Stem: 3x3 conv at stride 2, VALID (no padding), then BN, no ReLU. Its scope is the
        # plan's (`stem/conv0` in AmoebaNet, `conv0` in TF-slim), nested scopes and all.
        self.stem_conv_scope = plan["stem_scope"]
        self.stem_bn_scope = self.stem_conv_scope + names.stem_bn_suffix
        stem_filters = plan["stem_filters"]
        self.put(self.stem_conv_scope, nn.Conv2d(3, stem_filters, 3, stride=2, padding=0, bias=False))
        self.put(self.stem_bn_scope, s.bn(stem_filters))
        stem_hw = tuple((size - 3) // 2 + 1 for size in self.image_size)

        # Output k of the network: 0 = the stem, k = cell k-1 (the plan's numbering).
        shapes: List[Shape] = [(stem_filters,) + stem_hw]
        keeps = drop_path_keeps(plan, training)
        self.cell_wiring: List[Tuple[str, int, Optional[int]]] = []  # (scope, input, prev)
        genotype = plan["genotype"]
        for n, layout in enumerate(plan["cells"]):
            kind = "normal" if layout["kind"] == "normal" else "reduction"  # stem cells too
            source, prev = layout["input"], layout["prev"]
            if shapes[source] != (layout["input_channels"],) + tuple(layout["input_hw"]):
                raise ValueError(f"{layout['scope']}: its input is {shapes[source]}, the plan "
                                 f"says {layout['input_channels']}x{layout['input_hw']}")
            prev_shape = shapes[prev] if prev is not None else shapes[source]
            self[layout["scope"]] = Cell(names, s, layout, genotype[kind], prev_shape, keeps[n],
                                         weight_shapes)
            self.cell_wiring.append((layout["scope"], source, prev))
            shapes.append((layout["output_channels"],) + tuple(layout["output_hw"]))

        self.num_features = plan["num_features"]
        if shapes[-1][0] != self.num_features:
            raise ValueError(f"the last cell gives {shapes[-1][0]} features, the plan says "
                             f"{self.num_features}")
        self.num_classes = plan.get("num_classes")
        self.fc_scope: Optional[str] = None
        if self.num_classes is not None:
            self.fc_scope = names.scope_of(names.head["fc_weights"])  # final_layer/FC
            self.put(self.fc_scope, nn.Linear(self.num_features, self.num_classes))

    # ---------------------------------------------------------------------------------------

    def _cells(self, x: torch.Tensor, taps: Optional[Dict[str, torch.Tensor]] = None
               ) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.image_size or x.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, {self.image_size[0]}, "
                             f"{self.image_size[1]}] (NCHW), got {list(x.shape)}")
        # The hub module's own input scaling: [0, 1] -> [-1, 1].
        x = x * self.input_scale + self.input_offset
        outputs = [self.at(self.stem_bn_scope)(self.at(self.stem_conv_scope)(x))]
        for scope, source, prev in self.cell_wiring:
            # Without a previous layer the cell's own input stands in, as in the Rust forward
            # pass (`prev.unwrap_or(net)`).
            out = self[scope](outputs[source], outputs[prev if prev is not None else source])
            outputs.append(out)
            if taps is not None:
                taps[scope] = out
        return outputs[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, num_features]``: ReLU of the last cell, averaged over H and W (the hub
        module's feature vector, before dropout and the classifier)."""
        return F.relu(self._cells(x)).mean(dim=(2, 3))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier on pooled features: dropout (training only) then ``FC``."""
        if self.fc_scope is None:
            raise ValueError("this is a feature-vector network: it has no classifier")
        features = F.dropout(features, p=1.0 - self.dense_dropout_keep, training=self.training)
        return self.at(self.fc_scope)(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return features if self.fc_scope is None else self.logits(features)

    def forward_cells(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every cell's output (NCHW), keyed by its scope, in network order."""
        taps: Dict[str, torch.Tensor] = {}
        self._cells(x, taps)
        return taps
