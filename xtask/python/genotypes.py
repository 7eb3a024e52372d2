"""NASNet-space cell genotypes, read from the project's one data file.

A genotype is what the AmoebaNet cell code consumes: for each of the two cell
kinds (normal, reduction) a list of 10 operations, the 10 hidden-state indices
they read, and the 7 `used_hiddenstates` flags that decide which states the
cell output concatenates (0 = concatenated).  The published lists live in
crates/nasnet-genotype/data/genotypes.json, the single source also embedded by
the Rust crate (known.rs); none are written here.  Nothing else of a network is
in a genotype, so the builder takes one of these dicts as data.

Exposes:
  GENOTYPES           name -> {"normal": cell, "reduction": cell}, every genotype
                      as the builder takes it (AmoebaNet-A..D, NASNet-A, and
                      PNASNet-5 with its one cell as both kinds);
  ONE_CELL_GENOTYPES  name -> {"cell": cell}, the genotypes with one cell type
                      used at every position (PNASNet-5);
  ALIASES             alias -> official name (evol_net_g -> amoeba_net_a, ...);
  PUBLISHED           the data file's entries as read (name, title, aliases,
                      source, cell_types, cells);
  validate(genotype)  the checks a builder input must pass.
Standard library only: importing this needs no TensorFlow.
"""

import json
import os

DATA_FILE = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "..", "crates", "nasnet-genotype", "data", "genotypes.json"))

# The data file's schema this code reads.
SCHEMA = 1

CELL_KEYS = ("operations", "hiddenstate_indices", "used_hiddenstates")


def _check_cell(where, cell):
    """The invariants every cell of the data file holds (the Rust side checks the same)."""
    ops, idx, used = (cell[k] for k in CELL_KEYS)
    if len(ops) < 2 or len(ops) % 2 or not all(isinstance(o, str) for o in ops):
        raise ValueError(f"{where}: need an even number (>= 2) of operation names")
    if len(idx) != len(ops):
        raise ValueError(f"{where}: need one hidden-state index per operation")
    if len(used) != len(ops) // 2 + 2:
        raise ValueError(f"{where}: need one used flag per state ({len(ops) // 2 + 2})")
    for i, j in enumerate(idx):
        # combination i//2 may only read h0, h1 and states made before it.
        if not isinstance(j, int) or not 0 <= j < 2 + i // 2:
            raise ValueError(f"{where}: index {j} at position {i} reads a future state")
    if any(u not in (0, 1) for u in used) or 0 not in used:
        raise ValueError(f"{where}: used flags are 0 or 1, and at least one is 0")


def _load(path=DATA_FILE):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, this code reads {SCHEMA}")
    two, one, aliases = {}, {}, {}
    for entry in data["genotypes"]:
        name, cells = entry["name"], entry["cells"]
        kinds = {"normal_and_reduction": ("normal", "reduction"), "one": ("cell",)}
        want = kinds.get(entry["cell_types"])
        if want is None or sorted(cells) != sorted(want):
            raise ValueError(f"{path}: {name}: cell_types {entry['cell_types']!r} "
                             f"does not match cells {sorted(cells)}")
        for kind in want:
            if sorted(cells[kind]) != sorted(CELL_KEYS):
                raise ValueError(f"{path}: {name}.{kind}: a cell has exactly the keys "
                                 f"{list(CELL_KEYS)}")
            _check_cell(f"{path}: {name}.{kind}", cells[kind])
        if name in two or name in one or name in aliases:
            raise ValueError(f"{path}: the name {name} is given twice")
        if len(want) == 2:
            two[name] = {k: cells[k] for k in want}
        else:
            one[name] = {"cell": cells["cell"]}
            two[name] = {"normal": cells["cell"], "reduction": cells["cell"]}
        for alias in entry["aliases"]:
            if alias in aliases:
                raise ValueError(f"{path}: the alias {alias} is given twice")
            aliases[alias] = name
    return data["genotypes"], two, one, aliases


PUBLISHED, GENOTYPES, ONE_CELL_GENOTYPES, ALIASES = _load()


def validate(genotype):
    """Fails loudly on a malformed genotype instead of building a wrong graph."""
    for kind in ("normal", "reduction"):
        cell = genotype[kind]
        ops, idx, used = cell["operations"], cell["hiddenstate_indices"], cell["used_hiddenstates"]
        # The graph builder makes exactly 5 combinations.
        if len(ops) != 10 or len(idx) != 10 or len(used) != 7:
            raise ValueError(f"{kind} cell: need 10 operations, 10 indices, 7 used flags")
        _check_cell(f"{kind} cell", cell)
    return genotype
