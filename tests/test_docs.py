"""Every ```python block of docs/*.md runs, in order, in one fresh namespace per file."""

from __future__ import annotations

import re
import tempfile
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# A fence opening with exactly 'python' (not 'python-console' etc.), closed by a bare fence.
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    """The source of each ```python fenced block of ``path``, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


DOC_FILES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_block_extraction(tmp_path: Path):
    text = "x\n```python\na = 1\n```\n```\nnot python\n```\n```python\nb = a + 1\n```\n"
    path = tmp_path / "t.md"
    path.write_text(text, encoding="utf-8")
    assert python_blocks(path) == ["a = 1\n", "b = a + 1\n"]


def test_docs_with_python_blocks_exist():
    assert DOCS / "surgery.md" in DOC_FILES


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_doc_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # mkdtemp() lands under tmp_path
    namespace: dict = {"__name__": f"docs.{path.stem}"}
    for i, source in enumerate(python_blocks(path), start=1):
        try:
            code = compile(source, f"{path.name} block {i}", "exec")
            exec(code, namespace)
        except Exception:
            pytest.fail(
                f"docs/{path.name} python block {i} failed:\n{source}\n{traceback.format_exc()}",
                pytrace=False,
            )


def test_every_local_link_in_the_docs_and_readme_exists():
    import re

    missing = []
    for page in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            if not (page.parent / target).exists():
                missing.append(f"{page.name}: {target}")
    assert not missing, missing
