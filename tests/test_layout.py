"""The package's layout: a few top-level modules, one subpackage per concept whose ``__init__`` is its public
API (``__all__``) over private modules, no module past the size limit, and workshop, benchmarks, configs and
docs that use public names only."""

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

SRC = REPO / "src" / "reproai"
SUBPACKAGES = [
    "analysis",
    "cluster",
    "config",
    "data",
    "evaluation",
    "export",
    "models",
    "nested",
    "runtime",
    "tracking",
    "training",
]
PUBLIC_MODULES = {"config/hp.py"}  # search-space factories, used as a namespace: hp.float(...)
MAX_LINES = 450  # CONTRIBUTING.md: a module past ~400 lines of code is asking to be split


def test_at_most_eight_top_level_modules():
    modules = sorted(p.name for p in SRC.glob("*.py"))
    assert len(modules) <= 8, modules


def test_the_subpackages_are_the_concepts():
    assert sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists()) == SUBPACKAGES


def test_no_module_is_over_the_size_limit():
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_exports_its_api_over_private_modules(name):
    package = importlib.import_module(f"reproai.{name}")
    exported = list(package.__all__)
    assert exported, f"reproai.{name} exports nothing"
    assert [n for n in exported if not hasattr(package, n)] == []
    assert [n for n in exported if n.startswith("_")] == []
    assert len(set(exported)) == len(exported)
    modules = [f"{name}/{p.name}" for p in (SRC / name).glob("*.py") if p.name != "__init__.py"]
    assert [m for m in modules if not Path(m).name.startswith("_") and m not in PUBLIC_MODULES] == []


def private_imports(source: str) -> list[str]:
    """The imports of private reproai modules or names in Python ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            pairs = [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            pairs = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in pairs:
            if module.split(".")[0] != "reproai":
                continue
            if any(part.startswith("_") for part in module.split(".")[1:]) or name.startswith("_"):
                found.append(f"{module}:{name}" if name else module)
    return found


def _python_blocks(markdown: str) -> list[str]:
    """The import statements of a document's Python blocks (a block may be an excerpt that does not parse)."""
    blocks = re.findall(r"```python\n(.*?)```", markdown, flags=re.S)
    lines = [line.strip() for b in blocks for line in b.splitlines()]
    return [line for line in lines if re.match(r"(from|import) reproai\b", line) and "(" not in line]


def test_the_check_finds_private_imports():
    source = (
        "import reproai.nested._plan\nfrom reproai.training._fit import fit\nfrom reproai.training import _x, fit\n"
    )
    assert private_imports(source) == ["reproai.nested._plan", "reproai.training._fit:fit", "reproai.training:_x"]
    assert private_imports("from reproai.training import fit\nfrom reproai import hp\nimport os._x\n") == []


def test_workshop_benchmarks_configs_and_docs_use_public_names_only():
    offenders = {}
    for folder in ("workshop", "benchmarks", "configs"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if found := private_imports(path.read_text()):
                offenders[str(path.relative_to(REPO))] = found
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("workshop/**/*.md"))]:
        text = path.read_text()
        found = [f for block in _python_blocks(text) for f in private_imports(block)]
        # Prose too: the user's documents name public paths (reproai.models.register_backbone), never private ones.
        found += re.findall(r"\breproai(?:\.\w+)*\._\w+", text)
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}
