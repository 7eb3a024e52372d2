"""NASNet-space cell genotypes, kept as plain data.

A genotype is what the AmoebaNet cell code consumes: for each of the two cell
kinds (normal, reduction) a list of 10 operations, the 10 hidden-state indices
they read, and the 7 `used_hiddenstates` flags that decide which states the
cell output concatenates (0 = concatenated).  The lists below are the public
model_specs values of tensorflow/tpu `models/official/amoeba_net` (facts, see
/work/shared/spec/amoebanet.md section 1 and 6); nothing else of a network is
in a genotype, so the builder takes one of these dicts as data.
"""

GENOTYPES = {
    # AmoebaNet-A (model_specs name 'evol_net_g'): the hub module's genotype.
    "amoeba_net_a": {
        "normal": {
            "operations": ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none",
                           "none", "avg_pool_3x3", "separable_3x3_2", "separable_5x5_2",
                           "avg_pool_3x3", "separable_3x3_2"],
            "hiddenstate_indices": [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
            "used_hiddenstates": [1, 0, 1, 0, 0, 1, 0],
        },
        "reduction": {
            "operations": ["separable_3x3_2", "avg_pool_3x3", "max_pool_3x3",
                           "separable_7x7_2", "max_pool_3x3", "max_pool_3x3",
                           "separable_3x3_2", "1x7_7x1", "avg_pool_3x3",
                           "separable_7x7_2"],
            "hiddenstate_indices": [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
            "used_hiddenstates": [1, 1, 0, 0, 0, 0, 0],
        },
    },
    # AmoebaNet-B ('evol_net_h'): uses 1x1, 3x3 bottleneck, max_pool_2x2 and the
    # misleadingly named dil_2_separable_5x5_2 (built without dilation).
    "amoeba_net_b": {
        "normal": {
            "operations": ["1x1", "max_pool_3x3", "none", "separable_3x3_2", "1x1",
                           "separable_3x3_2", "1x1", "none", "avg_pool_3x3", "1x1"],
            "hiddenstate_indices": [1, 1, 1, 0, 1, 0, 2, 2, 1, 5],
            "used_hiddenstates": [0, 1, 1, 0, 0, 1, 0],
        },
        "reduction": {
            "operations": ["max_pool_2x2", "max_pool_3x3", "none", "3x3",
                           "dil_2_separable_5x5_2", "max_pool_3x3", "none",
                           "separable_3x3_2", "avg_pool_3x3", "1x1"],
            "hiddenstate_indices": [0, 0, 2, 1, 2, 2, 3, 1, 4, 3],
            "used_hiddenstates": [1, 1, 1, 1, 1, 0, 0],
        },
    },
    # AmoebaNet-C ('evol_net_a'): its reduction cell concatenates h0, which has
    # the input size, so the cell output needs a factorized reduction
    # (`cell_output/reduction_0`), a path AmoebaNet-A never takes.
    "amoeba_net_c": {
        "normal": {
            "operations": ["avg_pool_3x3", "separable_3x3_2", "none", "separable_3x3_2",
                           "avg_pool_3x3", "separable_3x3_2", "none", "separable_3x3_2",
                           "avg_pool_3x3", "separable_3x3_2"],
            "hiddenstate_indices": [0, 0, 0, 0, 2, 1, 0, 1, 3, 0],
            "used_hiddenstates": [1, 0, 0, 1, 0, 0, 0],
        },
        "reduction": {
            "operations": ["max_pool_3x3", "max_pool_3x3", "separable_7x7_2",
                           "separable_3x3_2", "separable_7x7_2", "max_pool_3x3",
                           "separable_5x5_2", "separable_5x5_2", "max_pool_3x3",
                           "separable_3x3_2"],
            "hiddenstate_indices": [0, 0, 2, 0, 0, 1, 4, 4, 1, 1],
            "used_hiddenstates": [0, 1, 0, 0, 0, 0, 0],
        },
    },
    # AmoebaNet-D ('evol_net_x').
    "amoeba_net_d": {
        "normal": {
            "operations": ["1x1", "max_pool_3x3", "none", "1x7_7x1", "1x1", "1x7_7x1",
                           "max_pool_3x3", "none", "avg_pool_3x3", "1x1"],
            "hiddenstate_indices": [1, 1, 1, 0, 0, 0, 2, 2, 1, 5],
            "used_hiddenstates": [0, 1, 1, 0, 0, 1, 0],
        },
        "reduction": {
            "operations": ["max_pool_2x2", "max_pool_3x3", "none", "3x3", "1x7_7x1",
                           "max_pool_3x3", "none", "max_pool_2x2", "avg_pool_3x3",
                           "1x1"],
            "hiddenstate_indices": [0, 0, 2, 1, 2, 2, 3, 1, 2, 3],
            "used_hiddenstates": [1, 1, 1, 1, 0, 0, 0],
        },
    },
}


def validate(genotype):
    """Fails loudly on a malformed genotype instead of building a wrong graph."""
    for kind in ("normal", "reduction"):
        cell = genotype[kind]
        ops, idx, used = cell["operations"], cell["hiddenstate_indices"], cell["used_hiddenstates"]
        if len(ops) != 10 or len(idx) != 10 or len(used) != 7:
            raise ValueError(f"{kind} cell: need 10 operations, 10 indices, 7 used flags")
        for i, j in enumerate(idx):
            # combination i//2 may only read h0, h1 and states made before it.
            if not 0 <= j < 2 + i // 2:
                raise ValueError(f"{kind} cell: index {j} at position {i} reads a future state")
    return genotype
