"""Builds an AmoebaNet / NASNet-space image network as a TF1 graph.

Written from the facts in /work/shared/spec/amoebanet.md (no official code is
copied).  The goal is a graph that a reader of the real hub module cannot tell
apart structurally: the same variable names and shapes, and in every cell the
same op types, wired the same way.  That is why the layers below are built
from raw ops with hand-placed names instead of tf.keras / tf.compat.v1.layers,
whose TF 2.15 graphs differ from the slim layers the official code used under
TF 1.x (kernel renames, SelectV2 dropout, missing constants, ...).
"""

import tensorflow as tf
# assign_moving_average(zero_debias=False) is what the official batch norm
# uses; TF exposes it publicly only through this module.
from tensorflow.python.training import moving_averages

v1 = tf.compat.v1

# hparams of the hub export (amoebanet.md section 2 and 4).
WEIGHT_DECAY = 4e-5
# The official flag says 1e-5; TF 1.x's fused_batch_norm raised any epsilon
# below 1.001e-5 to 1.001e-5, so that is what the real graphs hold.  TF 2.15
# no longer raises it, so the effective value is given directly.
BN_EPSILON = 1.001e-5
BN_DECAY = 0.9
DROP_PATH_KEEP_PROB = 0.7  # constant: the hub export has no burn-in
DENSE_KEEP_PROB = 0.5
STEM_FILTERS = 32
NUM_STEM_CELLS = 2
NUM_REDUCTION_LAYERS = 2


# The family is data: what differs between the network code lineages the hub
# modules were exported from (shared/spec/amoebanet.md, nasnet-family.md).
#   stem_scope      variable scope of conv0/conv0_bn ("" = the top level);
#   stem_multiplier stem conv filters = int(32 * stem_multiplier);
#   skip_reduction_layer_input  1: the normal cell after a reduction cell takes
#                   as prev_layer the output before the reduction cell's input;
#   bn_epsilon, bn_decay, weight_decay  the arg-scope values;
#   drop_path       "v1" (constant keep, AmoebaNet's hub export) or "v3"
#                   (TF-slim: keep scaled by layer and by step ratio);
#   graph_style     "tf1": op for op what TF 1.15 built for the official
#                   AmoebaNet export; "tf2": what TF-slim builds under TF 2.x
#                   tf.compat.v1 (the NASNet-A conformance export);
#   input_scope     scope of the images placeholder and the [0,1] -> [-1,1]
#                   scaling ("hub_input"), or "" for TF-slim's export (top-level
#                   `images`, `mul`, `sub`);
#   reduction_cells "separate": reduction cells `reduction_cell_K` inserted
#                   before the normal cells at the reduction positions (the
#                   stem cells are reduction cells); "strided_normal" (PNASNet):
#                   one cell type, numbered `cell_0..cell_{N-1}`, run with
#                   stride 2 at the reduction positions and as the stem cells.
FAMILIES = {
    "amoebanet": {
        "stem_scope": "stem", "stem_multiplier": 1.0, "skip_reduction_layer_input": 0,
        "bn_epsilon": BN_EPSILON, "bn_decay": BN_DECAY, "weight_decay": WEIGHT_DECAY,
        "drop_path": "v1", "drop_path_keep_prob": DROP_PATH_KEEP_PROB,
        "graph_style": "tf1", "input_scope": "hub_input", "reduction_cells": "separate"},
    # tensorflow/models research/slim/nets/nasnet/nasnet.py mobile_imagenet_config()
    # and nasnet_mobile_arg_scope().
    "nasnet_a_mobile": {
        "stem_scope": "", "stem_multiplier": 1.0, "skip_reduction_layer_input": 0,
        "bn_epsilon": 1e-3, "bn_decay": 0.9997, "weight_decay": 4e-5,
        "drop_path": "v3", "drop_path_keep_prob": 1.0, "total_training_steps": 250000,
        "graph_style": "tf2", "input_scope": "", "reduction_cells": "separate"},
    # large_imagenet_config() and nasnet_large_arg_scope().
    "nasnet_a_large": {
        "stem_scope": "", "stem_multiplier": 3.0, "skip_reduction_layer_input": 1,
        "bn_epsilon": 1e-3, "bn_decay": 0.9997, "weight_decay": 5e-5,
        "drop_path": "v3", "drop_path_keep_prob": 0.7, "total_training_steps": 250000,
        "graph_style": "tf2", "input_scope": "", "reduction_cells": "separate"},
    # pnasnet.py large_imagenet_config() and pnasnet_large_arg_scope() (which
    # passes its own weight_decay default, 4e-5, to nasnet_large_arg_scope).
    "pnasnet_large": {
        "stem_scope": "", "stem_multiplier": 3.0, "skip_reduction_layer_input": 1,
        "bn_epsilon": 1e-3, "bn_decay": 0.9997, "weight_decay": 4e-5,
        "drop_path": "v3", "drop_path_keep_prob": 0.6, "total_training_steps": 250000,
        "graph_style": "tf2", "input_scope": "", "reduction_cells": "strided_normal"},
}


def stem_filters(family):
    return int(STEM_FILTERS * FAMILIES[family]["stem_multiplier"])


def reduction_indices(num_cells, num_reduction_layers=NUM_REDUCTION_LAYERS):
    """Normal-cell numbers before which a reduction cell is inserted."""
    return [int(float(k) / (num_reduction_layers + 1) * num_cells)
            for k in range(1, num_reduction_layers + 1)]


def cell_scopes(num_cells, family="amoebanet"):
    """All cell scopes in graph order: stem cells, then normal/reduction cells."""
    scopes = [f"cell_stem_{i}" for i in range(NUM_STEM_CELLS)]
    if FAMILIES[family]["reduction_cells"] == "strided_normal":
        return scopes + [f"cell_{n}" for n in range(num_cells)]
    red = reduction_indices(num_cells)
    for n in range(num_cells):
        if n in red:
            scopes.append(f"reduction_cell_{red.index(n)}")
        scopes.append(f"cell_{n}")
    return scopes


def _channels(x):
    return int(x.shape[3])


def _width(x):
    # The official code compares shape[2], the width in NHWC.
    return int(x.shape[2])


# The two helpers below spell out what TF 1.x's truncated_normal and
# random_uniform built (ending in `Add`, where TF 2.15 emits `AddV2` or skips
# the min/max arithmetic).  What they compute is unchanged (initial values are
# overwritten by the exporter anyway, and the noise is uniform in [0,1) either
# way); the op types matter because the module's graph is compared op for op
# with one exported by TF 1.15.

def _fan_out_truncated_normal(shape, dtype=tf.float32, partition_info=None):
    """slim's variance_scaling_initializer(factor=2, mode='FAN_OUT')."""
    del partition_info
    fan_out = float(shape[-1]) if len(shape) == 2 else float(shape[0] * shape[1] * shape[3])
    stddev = (2.0 / max(1.0, fan_out)) ** 0.5 / 0.87962566103423978
    with tf.name_scope("truncated_normal") as scope:
        shape_t = tf.constant(list(shape), dtype=tf.int32, name="shape")
        mean = tf.constant(0.0, dtype=dtype, name="mean")
        std = tf.constant(stddev, dtype=dtype, name="stddev")
        rnd = tf.raw_ops.TruncatedNormal(shape=shape_t, dtype=dtype, name="TruncatedNormal")
        return tf.raw_ops.Add(x=tf.multiply(rnd, std, name="mul"), y=mean, name=scope)


def _fan_out_truncated_normal_v2(shape, dtype=tf.float32, partition_info=None):
    """The same initializer as TF 2.x builds it for TF-slim (AddV2)."""
    del partition_info
    fan_out = float(shape[-1]) if len(shape) == 2 else float(shape[0] * shape[1] * shape[3])
    stddev = (2.0 / max(1.0, fan_out)) ** 0.5 / 0.87962566103423978
    with tf.name_scope("truncated_normal") as scope:
        shape_t = tf.constant(list(shape), dtype=tf.int32, name="shape")
        mean = tf.constant(0.0, dtype=dtype, name="mean")
        std = tf.constant(stddev, dtype=dtype, name="stddev")
        rnd = tf.raw_ops.TruncatedNormal(shape=shape_t, dtype=dtype, name="TruncatedNormal")
        return tf.raw_ops.AddV2(x=tf.multiply(rnd, std, name="mul"), y=mean, name=scope)


def _random_uniform(shape):
    """Uniform [0,1) noise of a dynamic shape, as tf.random_uniform in TF 1.x."""
    with tf.name_scope("random_uniform") as scope:
        if isinstance(shape, list):
            shape = tf.stack(shape, name="shape")
        lo = tf.constant(0.0, name="min")
        hi = tf.constant(1.0, name="max")
        rnd = tf.raw_ops.RandomUniform(shape=shape, dtype=tf.float32, name="RandomUniform")
        return tf.raw_ops.Add(x=tf.multiply(rnd, tf.subtract(hi, lo, name="sub"), name="mul"),
                              y=lo, name=scope)


class NetBuilder:
    """One graph variant: is_training selects BN batch statistics, drop path
    and dense dropout (the hub `{"train"}` graph) or inference (tags `{}`)."""

    def __init__(self, is_training, family="amoebanet"):
        self.is_training = is_training
        self.family = FAMILIES[family]
        self.tf2 = self.family["graph_style"] == "tf2"
        # Drop path v3 (TF-slim): the cell being built and the step tensor.
        self.cell_num = -1
        self.total_num_cells = None
        self.current_step = None

    # ---- variables ---------------------------------------------------------

    def _weights(self, name, shape, regularizer_scope):
        """A conv/FC weight: variance-scaling (fan-out) truncated-normal init
        and an L2 regulariser, both as in the slim arg_scope of the official
        model.  The regulariser lives under `<kernel name>/Regularizer`
        because slim's layers named the variable `kernel` before renaming it."""
        var = v1.get_variable(
            name, shape, dtype=tf.float32,
            initializer=_fan_out_truncated_normal_v2 if self.tf2 else _fan_out_truncated_normal,
            collections=[v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES],
            trainable=True, use_resource=True)
        with tf.name_scope(f"{regularizer_scope}/Regularizer"):
            with tf.name_scope("l2_regularizer") as scope:
                scale = tf.constant(self.family["weight_decay"], dtype=tf.float32,
                                    name="scale")
                loss = tf.multiply(scale, tf.nn.l2_loss(var), name=scope)
        v1.add_to_collection(v1.GraphKeys.REGULARIZATION_LOSSES, loss)
        return var

    def _bn_variable(self, name, channels, initializer, trainable):
        return v1.get_variable(
            name, [channels], dtype=tf.float32, initializer=initializer,
            collections=[v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES],
            trainable=trainable, use_resource=True)

    # ---- layers ------------------------------------------------------------

    def conv(self, x, filters, kernel, scope, stride=(1, 1), padding="SAME", rate=1):
        """slim.conv2d without bias or activation."""
        kh, kw = kernel
        with v1.variable_scope(scope):
            w = self._weights("weights", [kh, kw, _channels(x), filters], "kernel")
            # TF 1.x slim's convolution left this (dead) constant in every conv
            # scope; kept so per-scope op lists equal the official graph's
            # (TF-slim under TF 2.x has none).
            if not self.tf2:
                tf.constant([rate, rate], dtype=tf.int32, name="dilation_rate")
            return tf.nn.conv2d(x, w, strides=[1, stride[0], stride[1], 1],
                                padding=padding, dilations=[1, rate, rate, 1],
                                name="Conv2D")

    def separable_conv(self, x, filters, k, stride, scope):
        """slim.separable_conv2d with depth multiplier 1: depthwise KxK (SAME,
        strided) then pointwise 1x1, nothing in between."""
        c = _channels(x)
        with v1.variable_scope(scope):
            dw = self._weights("depthwise_weights", [k, k, c, 1], "depthwise_kernel")
            pw = self._weights("pointwise_weights", [1, 1, c, filters], "pointwise_kernel")
            return v1.nn.separable_conv2d(x, dw, pw, [1, stride, stride, 1], "SAME",
                                          name="separable_conv2d")

    def batch_norm(self, x, scope):
        """The official custom batch_norm: fused BN with gamma and beta, moving
        statistics updated with zero_debias=False in training."""
        c = _channels(x)
        eps, decay = self.family["bn_epsilon"], self.family["bn_decay"]
        with v1.variable_scope(scope):
            beta = self._bn_variable("beta", c, v1.zeros_initializer(), True)
            gamma = self._bn_variable("gamma", c, v1.ones_initializer(), True)
            moving_mean = self._bn_variable("moving_mean", c, v1.zeros_initializer(), False)
            moving_var = self._bn_variable("moving_variance", c, v1.ones_initializer(), False)
            if self.is_training and self.tf2:
                # slim.batch_norm(fused=True) under TF 2.x: the moving
                # statistics are inputs of the op, the decay one constant.
                y, mean, var = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean,
                                                      variance=moving_var, epsilon=eps,
                                                      is_training=True)
                decay_t = tf.constant(decay, dtype=tf.float32, name="Const")
                for mv, value in ((moving_mean, mean), (moving_var, var)):
                    upd = moving_averages.assign_moving_average(mv, value, decay_t,
                                                                zero_debias=False)
                    v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, upd)
            elif self.is_training:
                y, mean, var = v1.nn.fused_batch_norm(x, gamma, beta, epsilon=eps,
                                                      is_training=True)
                for mv, value in ((moving_mean, mean), (moving_var, var)):
                    upd = moving_averages.assign_moving_average(mv, value, decay,
                                                                zero_debias=False)
                    v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, upd)
            else:
                y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean,
                                                 variance=moving_var, epsilon=eps,
                                                 is_training=False)
            return y

    def pool(self, x, kind, k, stride):
        """slim.{avg,max}_pool2d with SAME padding (AvgPool excludes padding)."""
        args = dict(ksize=[1, k, k, 1], strides=[1, stride, stride, 1], padding="SAME",
                    data_format="NHWC")
        if kind == "avg":
            with tf.name_scope("AvgPool2D"):
                return tf.raw_ops.AvgPool(value=x, name="AvgPool", **args)
        if kind == "max":
            with tf.name_scope("MaxPool2D"):
                return tf.raw_ops.MaxPool(input=x, name="MaxPool", **args)
        if kind == "min":
            neg = -1 * x
            with tf.name_scope("MaxPool2D"):
                neg = tf.raw_ops.MaxPool(input=neg, name="MaxPool", **args)
            return -1 * neg
        raise ValueError(f"unknown pooling {kind}")

    def factorized_reduction(self, x, out_filters, stride):
        """Halves H and W without losing the odd pixels: two 1x1 convs on the
        even and the odd (shifted, zero padded) pixel grids, concatenated."""
        if stride == 1:
            x = self.conv(x, out_filters, (1, 1), "path_conv")
            return self.batch_norm(x, "path_bn")
        sub = dict(ksize=[1, 1, 1, 1], strides=[1, stride, stride, 1], padding="VALID",
                   data_format="NHWC")
        path1 = tf.raw_ops.AvgPool(value=x, name="AvgPool", **sub)
        path1 = self.conv(path1, out_filters // 2, (1, 1), "path1_conv")
        path2 = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        path2 = tf.raw_ops.AvgPool(value=path2, name="AvgPool", **sub)
        path2 = self.conv(path2, out_filters // 2, (1, 1), "path2_conv")
        return self.batch_norm(tf.concat([path1, path2], axis=3), "final_path_bn")

    def drop_path(self, x):
        """Per-example drop of a whole branch; identity at inference.  v1:
        constant keep probability (the AmoebaNet hub export has no burn-in);
        v3 (TF-slim): keep = 1 - layer_ratio * step_ratio * (1 - keep), the
        layer ratio (cell_num + 1) / total_num_cells, the step ratio
        min(1, step / total_training_steps) of the step tensor."""
        keep_prob = self.family["drop_path_keep_prob"]
        if not self.is_training or keep_prob >= 1.0:
            return x
        if self.family["drop_path"] == "v1":
            batch = tf.shape(x)[0]
            keep = tf.cast(keep_prob, x.dtype)
            noise = keep + _random_uniform([batch, 1, 1, 1])
            return v1.div(x, keep) * tf.floor(noise)
        layer_ratio = (self.cell_num + 1) / float(self.total_num_cells)
        keep = 1 - layer_ratio * (1 - keep_prob)
        step = tf.cast(self.current_step, tf.float32)
        ratio = tf.minimum(1.0, step / self.family["total_training_steps"])
        keep = 1 - ratio * (1 - keep)
        batch = tf.shape(x)[0]
        noise = keep + v1.random_uniform([batch, 1, 1, 1], dtype=tf.float32)
        return v1.div(x, keep) * tf.floor(noise)

    def dense_dropout(self, x):
        """slim.dropout(keep 0.5) as TF 1.x built it (TF 2.15's nn.dropout
        uses SelectV2 instead)."""
        with tf.name_scope("dropout"):
            if not self.is_training:
                return tf.identity(x)
            if self.tf2:
                # TF 2.x's nn.dropout as slim.dropout builds it there.
                with tf.name_scope("dropout_1"):
                    scaled = tf.multiply(x, tf.constant(1.0 / DENSE_KEEP_PROB, name="Const"),
                                         name="Mul")
                    shape = tf.shape(x, name="Shape")
                    with tf.name_scope("random_uniform"):
                        uniform = tf.raw_ops.RandomUniform(shape=shape, dtype=tf.float32,
                                                           name="RandomUniform")
                    keep = tf.greater_equal(uniform, 1.0 - DENSE_KEEP_PROB, name="GreaterEqual")
                    zero = tf.constant(0.0, name="Const_1")
                    return tf.raw_ops.SelectV2(condition=keep, t=scaled, e=zero,
                                               name="SelectV2")
            with tf.name_scope("dropout_1"):
                rate = tf.constant(1.0 - DENSE_KEEP_PROB, name="rate")
                uniform = _random_uniform(tf.shape(x))
                scale = 1.0 / (1.0 - rate)
                keep = tf.cast(uniform >= rate, x.dtype)
                return x * scale * keep


class Cell:
    """One NASNet-space cell (normal or reduction) described by a genotype."""

    def __init__(self, b, num_filters, spec):
        self.b = b
        self.num_filters = num_filters
        self.ops = spec["operations"]
        self.idx = spec["hiddenstate_indices"]
        self.used = spec["used_hiddenstates"]

    def _reduce_prev_layer(self, prev, net):
        """Makes the cell before the previous one fit this cell's width."""
        b = self.b
        if prev is None:
            return net
        if _width(prev) != _width(net):
            return b.factorized_reduction(tf.nn.relu(prev), self.filter_size, 2)
        if _channels(prev) != self.filter_size:
            prev = b.conv(tf.nn.relu(prev), self.filter_size, (1, 1), "prev_1x1")
            return b.batch_norm(prev, "prev_bn")
        return prev

    def _apply_operation(self, x, op, stride, from_input):
        b, fs = self.b, self.filter_size
        if not from_input:
            stride = 1  # only the cell inputs h0/h1 are strided
        cin = _channels(x)
        if "separable" in op:
            # 'separable_KxK_N' and 'dil_D_separable_KxK_N': N stacked blocks of
            # ReLU -> separable conv -> BN; the name's dilation is not applied.
            k = int(op.split("x")[0][-1])
            n = int(op.split("_")[-1])
            for layer in range(1, n + 1):
                x = tf.nn.relu(x)
                x = b.separable_conv(x, fs, k, stride, f"separable_{k}x{k}_{layer}")
                x = b.batch_norm(x, f"bn_sep_{k}x{k}_{layer}")
                stride = 1
        elif op in ("3x3", "1x7_7x1", "1x3_3x1") or op.startswith("dilated_3x3_rate_"):
            reduced = int(3 * fs / 8) if op == "1x3_3x1" else int(fs / 4)
            if reduced < 1:
                x = self._conv_operation(tf.nn.relu(x), op, stride, fs)
                x = b.batch_norm(x, "bn")
            else:
                x = b.conv(tf.nn.relu(x), reduced, (1, 1), "pre_1x1")
                x = b.batch_norm(x, "pre_bn")
                x = self._conv_operation(tf.nn.relu(x), op, stride, reduced)
                x = b.batch_norm(x, "bn")
                x = b.conv(tf.nn.relu(x), fs, (1, 1), "post_1x1")
                x = b.batch_norm(x, "post_bn")
        elif op in ("none", "1x1"):
            if stride > 1 or op == "1x1" or cin != fs:
                x = b.conv(tf.nn.relu(x), fs, (1, 1), "1x1", stride=(stride, stride))
                x = b.batch_norm(x, "bn_1")
        elif "pool" in op:
            kind = op.split("_")[0]
            k = int(op.split("_")[-1].split("x")[0])
            x = b.pool(x, kind, k, stride)
            if cin != fs:
                x = b.conv(x, fs, (1, 1), "1x1")
                x = b.batch_norm(x, "bn_1")
        else:
            raise ValueError(f"unknown operation {op}")
        if op != "none":
            x = b.drop_path(x)
        return x

    def _conv_operation(self, x, op, stride, filters):
        b = self.b
        if op == "1x1":
            return b.conv(x, filters, (1, 1), "1x1")
        if op == "3x3":
            return b.conv(x, filters, (3, 3), "3x3", stride=(stride, stride))
        if op in ("1x7_7x1", "1x3_3x1"):
            k = int(op[2])
            x = b.conv(x, filters, (1, k), f"1x{k}", stride=(1, stride))
            x = tf.nn.relu(b.batch_norm(x, f"bn_1x{k}_{k}x1"))
            return b.conv(x, filters, (k, 1), f"{k}x1", stride=(stride, 1))
        if op.startswith("dilated_3x3_rate_"):
            rate = int(op.split("_")[-1])
            return b.conv(x, filters, (3, 3), "dilated_3x3", stride=(stride, stride), rate=rate)
        raise ValueError(f"unknown conv operation {op}")

    def _combine_unused_states(self, states):
        last = states[-1]
        for i, used in enumerate(self.used):
            s = states[i]
            differs = _width(s) != _width(last) or _channels(s) != _channels(last)
            if differs and not used:
                stride = 2 if _width(s) != _width(last) else 1
                with v1.variable_scope(f"reduction_{i}"):
                    states[i] = self.b.factorized_reduction(s, _channels(last), stride)
        keep = [s for s, used in zip(states, self.used) if not used]
        return tf.concat(keep, axis=3)

    def __call__(self, net, scope, filter_scaling, stride, prev, cell_num=-1):
        b = self.b
        self.filter_size = int(self.num_filters * filter_scaling)
        b.cell_num = cell_num
        with v1.variable_scope(scope):
            prev = self._reduce_prev_layer(prev, net)
            h0 = b.batch_norm(b.conv(tf.nn.relu(net), self.filter_size, (1, 1), "1x1"),
                              "beginning_bn")
            if b.tf2:
                # TF 2.x makes no op for a split into one piece.
                states = [h0, prev]
            else:
                # The official cell splits h0 into one piece (a no-op Split); TF
                # 1.x also materialised num_or_size_splits as a Const.
                tf.constant(1, dtype=tf.int32, name="Const")
                states = tf.split(h0, num_or_size_splits=1, axis=3) + [prev]
            for it in range(5):
                with v1.variable_scope(f"comb_iter_{it}"):
                    li, ri = self.idx[2 * it], self.idx[2 * it + 1]
                    with v1.variable_scope("left"):
                        left = self._apply_operation(states[li], self.ops[2 * it], stride, li < 2)
                    with v1.variable_scope("right"):
                        right = self._apply_operation(states[ri], self.ops[2 * it + 1], stride,
                                                      ri < 2)
                    with v1.variable_scope("combine"):
                        states.append(left + right)
            with v1.variable_scope("cell_output"):
                return self._combine_unused_states(states)


def _stem(b, images, filters):
    net = b.conv(images, filters, (3, 3), "conv0", stride=(2, 2), padding="VALID")
    return b.batch_norm(net, "conv0_bn")


def build_network(images, genotype, num_cells, num_filters, num_classes, is_training,
                  family="amoebanet"):
    """images: [N,H,W,3] in [-1,1].  Returns (global_pool, logits or None).

    num_classes None or 0 builds the feature-vector variant (no final FC).
    family: a key of FAMILIES."""
    b = NetBuilder(is_training, family)
    fam = b.family
    if b.tf2 and is_training:
        # The drop-path step tensor of the TF-slim export: the last training
        # step, so the keep probability is at its final value (a hub module
        # holds no global step).
        b.current_step = tf.constant(fam["total_training_steps"], dtype=tf.int64,
                                     name="drop_path_final_step")
    strided_normal = fam["reduction_cells"] == "strided_normal"
    # TF-slim's count for drop path: the stem cells, the reduction cells (NASNet:
    # 2 more; PNASNet's are among the num_cells) and the normal cells.
    b.total_num_cells = num_cells + NUM_STEM_CELLS + (0 if strided_normal else 2)
    if fam["stem_scope"]:
        with v1.variable_scope(fam["stem_scope"]):
            net = _stem(b, images, stem_filters(family))
    else:
        net = _stem(b, images, stem_filters(family))
    normal = Cell(b, num_filters, genotype["normal"])
    reduction = Cell(b, num_filters, genotype["reduction"])

    outputs = [None, net]
    scaling = 1.0 / (2 ** NUM_STEM_CELLS)
    true_cell_num = 0
    for i in range(NUM_STEM_CELLS):  # stem cells are reduction cells
        net = reduction(net, f"cell_stem_{i}", scaling, 2, outputs[-2], true_cell_num)
        outputs.append(net)
        scaling *= 2
        true_cell_num += 1
    red = reduction_indices(num_cells)
    if strided_normal:
        # _build_pnasnet_base: the one cell type (stem cells above are the same
        # cell, genotype["reduction"] == genotype["normal"]), stride 2 and doubled
        # width at the reduction positions, prev_layer always outputs[-2].
        for n in range(num_cells):
            stride = 2 if n in red else 1
            if n in red:
                scaling *= 2
            net = normal(net, f"cell_{n}", scaling, stride, outputs[-2], true_cell_num)
            outputs.append(net)
            true_cell_num += 1
        return _final_layer(b, net, num_classes)
    skip = fam["skip_reduction_layer_input"]
    for n in range(num_cells):
        # skip_reduction_layer_input: prev is picked before a reduction cell
        # is appended, so the normal cell after a reduction cell gets the
        # reduction cell's own prev_layer.
        prev = outputs[-2] if skip else None
        if n in red:
            scaling *= 2
            net = reduction(net, f"reduction_cell_{red.index(n)}", scaling, 2, outputs[-2],
                            true_cell_num)
            outputs.append(net)
            true_cell_num += 1
        if not skip:
            prev = outputs[-2]
        net = normal(net, f"cell_{n}", scaling, 1, prev, true_cell_num)
        outputs.append(net)
        true_cell_num += 1
    return _final_layer(b, net, num_classes)


def _final_layer(b, net, num_classes):
    """ReLU, global average pool, dropout and the FC: (global_pool, logits or None)."""
    with v1.variable_scope("final_layer"):
        net = tf.nn.relu(net)
        global_pool = tf.reduce_mean(net, [1, 2])
        logits = None
        if num_classes:
            x = b.dense_dropout(global_pool)
            with v1.variable_scope("FC"):
                w = b._weights("weights", [_channels_2d(x), num_classes], "kernel")
                bias = v1.get_variable(
                    "biases", [num_classes], initializer=v1.zeros_initializer(),
                    collections=[v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES],
                    trainable=True, use_resource=True)
                logits = tf.nn.bias_add(tf.linalg.matmul(x, w), bias)
            if b.tf2:
                # TF-slim names the softmax inside final_layer.
                tf.nn.softmax(logits, name="predictions")
    return global_pool, logits


def _channels_2d(x):
    return int(x.shape[1])
