"""Structural comparison of TF1 Hub modules (directories or .tar.gz).

Structure = per graph variant (tag set): the variables (name, shape), the
multiset of op types under every top-level scope (cells, stem, final_layer,
hub_input, ...), the signatures (keys, tensor names, shapes) and the hub
attachments (key, serialized value).  Reading is
done with TF's own protobuf classes on saved_model.pb.
"""

import collections
import io
import os
import tarfile

from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_hub import module_attachment_pb2

VARIABLE_OPS = ("VarHandleOp", "VariableV2", "Variable")
ATTACHMENTS = "hub_module_attachments"


def load_saved_model(path):
    sm = saved_model_pb2.SavedModel()
    if os.path.isdir(path):
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            sm.ParseFromString(f.read())
        return sm
    with tarfile.open(path, "r:*") as tar:
        for member in tar.getmembers():
            if os.path.normpath(member.name) == "saved_model.pb":
                sm.ParseFromString(tar.extractfile(member).read())
                return sm
    raise FileNotFoundError(f"no saved_model.pb in {path}")


def _scope(node_name):
    return node_name.split("/", 1)[0]


def structure(path):
    """{tags: {"variables": {name: shape}, "ops": {scope: Counter}, "signatures": {...}}}"""
    sm = load_saved_model(path)
    out = {}
    for mg in sm.meta_graphs:
        tags = ",".join(sorted(mg.meta_info_def.tags)) or "{}"
        variables, ops = {}, collections.defaultdict(collections.Counter)
        for node in mg.graph_def.node:
            ops[_scope(node.name)][node.op] += 1
            if node.op in VARIABLE_OPS:
                dims = node.attr["shape"].shape.dim
                variables[node.name] = tuple(d.size for d in dims)
        sigs = {}
        for key, sig in mg.signature_def.items():
            def info(m):
                return {k: (t.name, tuple(d.size for d in t.tensor_shape.dim))
                        for k, t in m.items()}
            sigs[key] = {"inputs": info(sig.inputs), "outputs": info(sig.outputs)}
        attachments = {}
        if ATTACHMENTS in mg.collection_def:
            for raw in mg.collection_def[ATTACHMENTS].bytes_list.value:
                a = module_attachment_pb2.ModuleAttachment()
                a.ParseFromString(raw)
                attachments[a.key] = a.value
        out[tags] = {"variables": variables, "ops": dict(ops), "signatures": sigs,
                     "attachments": attachments}
    return out


def compare(a_path, b_path, what=("variables", "ops", "signatures", "attachments"), scopes=None,
            a_label="a", b_label="b"):
    """Returns a list of human-readable mismatch lines (empty = identical).

    scopes: optional predicate on a top-level scope name, limiting the op
    comparison (e.g. to cell scopes)."""
    a, b = structure(a_path), structure(b_path)
    problems = []
    if set(a) != set(b):
        problems.append(f"graph variants differ: {a_label} {sorted(a)} vs {b_label} {sorted(b)}")
    for tags in sorted(set(a) & set(b)):
        ga, gb = a[tags], b[tags]
        if "variables" in what:
            va, vb = ga["variables"], gb["variables"]
            for n in sorted(set(va) - set(vb)):
                problems.append(f"[{tags}] variable only in {a_label}: {n} {list(va[n])}")
            for n in sorted(set(vb) - set(va)):
                problems.append(f"[{tags}] variable only in {b_label}: {n} {list(vb[n])}")
            for n in sorted(set(va) & set(vb)):
                if va[n] != vb[n]:
                    problems.append(f"[{tags}] variable {n}: shape {list(va[n])} in {a_label}, "
                                    f"{list(vb[n])} in {b_label}")
        if "ops" in what:
            oa, ob = ga["ops"], gb["ops"]
            for s in sorted(set(oa) | set(ob)):
                if scopes is not None and not scopes(s):
                    continue
                ca, cb = oa.get(s, collections.Counter()), ob.get(s, collections.Counter())
                if ca != cb:
                    diff = []
                    for op in sorted(set(ca) | set(cb)):
                        if ca[op] != cb[op]:
                            diff.append(f"{op} {ca[op]} vs {cb[op]}")
                    problems.append(f"[{tags}] op types in scope {s} ({a_label} vs {b_label}): "
                                    + ", ".join(diff))
        if "signatures" in what:
            sa, sb = ga["signatures"], gb["signatures"]
            if sa != sb:
                for k in sorted(set(sa) | set(sb)):
                    if sa.get(k) != sb.get(k):
                        problems.append(f"[{tags}] signature {k}: {sa.get(k)} in {a_label}, "
                                        f"{sb.get(k)} in {b_label}")
        if "attachments" in what:
            aa, ab = ga["attachments"], gb["attachments"]
            for k in sorted(set(aa) | set(ab)):
                if aa.get(k) != ab.get(k):
                    problems.append(f"[{tags}] attachment {k}: {aa.get(k)!r} in {a_label}, "
                                    f"{ab.get(k)!r} in {b_label}")
    return problems


def is_cell_scope(scope):
    return scope.startswith("cell_") or scope.startswith("reduction_cell_")


# Attributes that decide what a node computes (others, like _class or the
# TF version's default attrs, are bookkeeping).
SEMANTIC_ATTRS = ("strides", "padding", "ksize", "epsilon", "dilations", "is_training",
                  "data_format", "N", "T", "dtype", "shape", "transpose_a", "transpose_b")


def nodes(path):
    """{tags: {node name: (op, inputs, semantic attrs)}} of every graph variant."""
    sm = load_saved_model(path)
    out = {}
    for mg in sm.meta_graphs:
        tags = ",".join(sorted(mg.meta_info_def.tags)) or "{}"
        table = {}
        for n in mg.graph_def.node:
            attrs = tuple((k, str(n.attr[k]).strip()) for k in SEMANTIC_ATTRS if k in n.attr)
            table[n.name] = (n.op, tuple(n.input), attrs)
        out[tags] = table
    return out


def compare_nodes(a_path, b_path, a_label="a", b_label="b", limit=20):
    """Node-for-node comparison (names, op types, inputs, semantic attrs)."""
    a, b = nodes(a_path), nodes(b_path)
    problems = []
    for tags in sorted(set(a) & set(b)):
        na, nb = a[tags], b[tags]
        diff = []
        for name in sorted(set(na) | set(nb)):
            if name not in nb:
                diff.append(f"[{tags}] node only in {a_label}: {name} ({na[name][0]})")
            elif name not in na:
                diff.append(f"[{tags}] node only in {b_label}: {name} ({nb[name][0]})")
            elif na[name] != nb[name]:
                diff.append(f"[{tags}] node {name} differs: {a_label} {na[name]} vs "
                            f"{b_label} {nb[name]}")
        if len(diff) > limit:
            diff = diff[:limit] + [f"[{tags}] ... and {len(diff) - limit} more node differences"]
        problems += diff
    return problems
