"""The package's layering (docs/design.md): cli, main → studies, explain → train → tasks → models,
surgery, data, eval, losses → checkpoint → atomic, locking, plotting, xla_flags, abslrun. No
module imports a higher layer, not even lazily inside a function (every import statement is
scanned)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

PACKAGE = REPO / "jaxseg"
LAYERS = [  # lowest first; a module may import its own layer and the layers below
    {"__init__", "atomic", "locking", "plotting", "xla_flags", "abslrun"},
    {"checkpoint"},
    {"models", "surgery", "data", "eval", "losses"},
    {"tasks"},
    {"train"},
    {"studies", "explain", "infer"},
    {"main", "cli", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_level(path: Path) -> str:
    """The jaxseg subpackage or module a file belongs to: 'eval' for jaxseg/eval/weights.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def jaxseg_imports(source: str) -> set[str]:
    """The jaxseg subpackages/modules (second name component) that ``source`` imports anywhere,
    e.g. {'studies'} for ``from jaxseg.studies.figures import heatmap`` inside a function."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "jaxseg":  # from jaxseg import plotting, checkpoint
                names += [f"jaxseg.{a.name}" for a in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("jaxseg.")}
    return found


def test_jaxseg_imports_sees_lazy_and_from_imports():
    source = (
        "import jaxseg.train.loop\nfrom jaxseg import plotting\ndef f():\n    import jaxseg.main\n"
    )
    assert jaxseg_imports(source) == {"train", "plotting", "main"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_imports_a_higher_layer(path):
    name = top_level(path)
    assert name in RANK, f"{name} is in no layer: add it to LAYERS (and docs/design.md)"
    higher = {m for m in jaxseg_imports(path.read_text()) if RANK.get(m, 0) > RANK[name]}
    assert not higher, f"{path.relative_to(REPO)} ({name}) imports the higher layer(s) {higher}"


def test_data_imports_neither_jax_nor_tensorflow():
    """Importing and inspecting data needs no jax or TensorFlow (data.augment, which runs in the
    jitted train step, is the one exception)."""
    modules = ["jaxseg.data"] + [
        f"jaxseg.data.{p.stem}" for p in (PACKAGE / "data").glob("*.py")
        if p.stem not in ("__init__", "augment")
    ]  # fmt: skip
    code = f"import sys\nfor m in {sorted(modules)!r}: __import__(m)\n" + (
        "print(sorted(k for k in ('jax', 'tensorflow') if k in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
