"""TF1 Hub module export with random weights, and golden outputs.

Everything numeric here is computed by TensorFlow (plus numpy for the random
weights and noise images); no Rust code takes part, so the goldens are an
independent reference for the project's own reader and forward pass.
"""

import os
import re
import tarfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from safetensors.numpy import save_file

import genotypes
import nasnet_graph
from tensorflow.core.framework import attr_value_pb2

v1 = tf.compat.v1

# Collections the official exporter dropped from the module (amoebanet.md §5).
DROP_COLLECTIONS = ["moving_vars", v1.GraphKeys.GLOBAL_STEP,
                    v1.GraphKeys.MOVING_AVERAGE_VARIABLES]


# The attachment that marks a module's weights as random (read by amoeba, which
# says so when it runs the module): a tensorflow.AttrValue whose `s` is the note.
WEIGHTS_ATTACHMENT = "amoeba_weights"


def random_weights_note(seed):
    """The weights attachment's text for modules made by export_module."""
    return (f"random: seeded numpy (seed {seed}), written by amoeba's fixture generator "
            "(xtask/python/hub_export.py); its predictions mean nothing")


def make_module_spec(genotype, num_cells, num_filters, image_size, num_classes,
                     family="amoebanet", weights_note=None):
    """A hub ModuleSpec with the inference ({}) and training ({"train"})
    graph variants; num_classes 0 makes the feature-vector module.  family
    (a key of nasnet_graph.FAMILIES) picks the network code lineage.
    weights_note, if given, is attached as WEIGHTS_ATTACHMENT."""
    genotypes.validate(genotype)
    fam = nasnet_graph.FAMILIES[family]

    def module_fn(is_training):
        shape = [None, image_size, image_size, 3]
        if fam["input_scope"]:
            with tf.name_scope(fam["input_scope"]):
                images = v1.placeholder(tf.float32, shape, name="images")
                # The module takes RGB in [0,1]; the network wants [-1,1].
                scaled = tf.subtract(tf.multiply(images, 2.0, name="Mul"), 1.0, name="Sub")
        else:
            # TF-slim's export: the placeholder and the scaling at the top level.
            images = v1.placeholder(tf.float32, shape, name="images")
            scaled = tf.subtract(tf.multiply(images, 2.0, name="mul"), 1.0, name="sub")
        global_pool, logits = nasnet_graph.build_network(
            scaled, genotype, num_cells, num_filters, num_classes, is_training, family)
        inputs = {"images": images}
        if fam["graph_style"] == "tf2":
            # The TF-slim export's signatures have only their `default` output.
            if logits is not None:
                hub.add_signature("default", inputs, {"default": logits})
                hub.add_signature("image_classification", inputs, {"default": logits})
            else:
                hub.add_signature("default", inputs, {"default": global_pool})
            hub.add_signature("image_feature_vector", inputs, {"default": global_pool})
        elif logits is not None:
            predictions = tf.nn.softmax(logits, name="predictions")
            hub.add_signature("default", inputs, {"default": logits})
            hub.add_signature("image_classification", inputs, {
                "default": logits, "logits": logits, "predictions": predictions,
                "global_pool": global_pool})
            hub.add_signature("image_feature_vector", inputs, {
                "default": global_pool, "global_pool": global_pool, "logits": logits,
                "predictions": predictions})
        else:
            hub.add_signature("default", inputs, {"default": global_pool})
            hub.add_signature("image_feature_vector", inputs, {
                "default": global_pool, "global_pool": global_pool})
        info = hub.ImageModuleInfo()
        info.default_image_size.height = image_size
        info.default_image_size.width = image_size
        hub.attach_image_module_info(info)
        if weights_note is not None:
            hub.attach_message(WEIGHTS_ATTACHMENT,
                               attr_value_pb2.AttrValue(s=weights_note.encode()))

    return hub.create_module_spec(
        module_fn,
        tags_and_args=[(set(), {"is_training": False}), ({"train"}, {"is_training": True})],
        drop_collections=DROP_COLLECTIONS)


def random_value(name, shape, rng):
    """Random weights that keep activations in a sane range, and random BN
    statistics so that every BN term is exercised (gamma and moving_variance
    uniform in [0.5,1.5], beta and moving_mean normal with sd 0.1)."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if leaf in ("beta", "moving_mean"):
        return rng.normal(0.0, 0.1, shape)
    if leaf == "biases":
        return rng.normal(0.0, 0.1, shape)
    if leaf == "depthwise_weights":      # [k,k,c,1]: fan-in k*k
        fan_in = shape[0] * shape[1]
    elif len(shape) == 4:                 # conv [kh,kw,in,out]
        fan_in = shape[0] * shape[1] * shape[2]
    elif len(shape) == 2:                 # FC [in,out]
        fan_in = shape[0]
    else:
        raise ValueError(f"no rule for random value of {name} {shape}")
    # Variance 1/fan_in (not He's 2/fan_in): the BN layers run on random, not
    # measured, statistics and so do not renormalise; with this gain the cell
    # outputs stay around 1 through the network instead of growing ~3x per
    # cell, which keeps float32 goldens meaningful at tight tolerances.
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)


def export_module(spec, out_dir, seed):
    """Instantiates the module, sets seeded random values, exports it."""
    with tf.Graph().as_default():
        module = hub.Module(spec, name="module")
        rng = np.random.default_rng(seed)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            # Sorted names: the values depend on the seed and names only.
            for name in sorted(module.variable_map):
                var = module.variable_map[name]
                shape = var.shape.as_list()
                var.load(random_value(name, shape, rng).astype(np.float32), sess)
            module.export(out_dir, sess)


def make_tar_gz(module_dir, out_path):
    """Packs a module the way the hub serves it: files at the archive root."""
    with tarfile.open(out_path, "w:gz") as tar:
        for root, _, files in sorted(os.walk(module_dir)):
            for f in sorted(files):
                full = os.path.join(root, f)
                arc = os.path.relpath(full, module_dir)
                info = tar.gettarinfo(full, arcname=arc)
                info.mtime = 0  # reproducible archive
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)


def noise_image(image_size, seed):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (image_size, image_size, 3)).astype(
        np.float32)


CELL_OUTPUT = re.compile(r"^(.*?)/([^/]+)/cell_output/concat$")


def apply_module(module_or_spec, images, checkpoint=None):
    """Runs `images` [N,H,W,3] through a module (path or ModuleSpec) with
    hub.Module in a fresh graph.  Returns logits (if the module classifies),
    features and every `<cell>/cell_output/concat` tensor.  With `checkpoint`
    (a variables prefix), the module's variables are loaded from it first."""
    with tf.Graph().as_default() as graph:
        module = hub.Module(module_or_spec)
        x = v1.placeholder(tf.float32, [None] + list(images.shape[1:]))
        fetch = {}
        names = module.get_signature_names()
        if "image_classification" in names:
            fetch["logits"] = module(x, signature="image_classification")
        if "image_feature_vector" in names:
            fetch["features"] = module(x, signature="image_feature_vector")
        else:
            fetch["features"] = module(x)
        # Cell outputs, taken from the feature-vector application only.
        apply_scope = fetch["features"].name.split("/")[0]
        for op in graph.get_operations():
            m = CELL_OUTPUT.match(op.name)
            if m and m.group(1) == apply_scope and op.type == "ConcatV2":
                fetch[f"cell_output/{m.group(2)}"] = op.outputs[0]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            if checkpoint is not None:
                reader = tf.train.load_checkpoint(checkpoint)
                for name, var in module.variable_map.items():
                    var.load(reader.get_tensor(name), sess)
            values = sess.run(fetch, {x: images})
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in values.items()}


def run_golden(module_path, images, out_path, metadata):
    """Writes images, logits, features and every cell output as safetensors."""
    tensors = {"images": images.astype(np.float32)}
    tensors.update(apply_module(module_path, images))
    meta = {"producer": f"TensorFlow {tf.__version__} hub.Module (tensorflow_hub "
                        f"{hub.__version__})"}
    meta.update(metadata)
    save_file(tensors, out_path, metadata=meta)
    return tensors


def expected_image_size(module_path):
    with tf.Graph().as_default():
        spec = hub.load_module_spec(module_path)
        return hub.get_expected_image_size(spec)
