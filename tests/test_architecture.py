"""The package's shape, checked from its source (docs/architecture.md):

- no import cycle among livestyle modules (every import: module level, inside functions and under
  ``TYPE_CHECKING``);
- the arrows run one way: ``livestyle.pipeline`` and ``livestyle.models`` never import the I/O and
  control layers or the CLI, and ``livestyle.models`` never imports ``livestyle.pipeline``;
- no file in ``livestyle/`` over 600 lines;
- no reference to a document that is not in the repository.

Imports are read with ``ast``, so nothing is imported and the optional extras need not be installed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "livestyle"
MAX_LINES = 600

LOWER_LAYERS = ("livestyle.pipeline", "livestyle.models")
"""Layers that must not reach up into the ones below (docs/architecture.md: control, server, ingest,
output -> pipeline -> models)."""
UPPER_LAYERS = (
    "livestyle.control",
    "livestyle.server",
    "livestyle.ingest",
    "livestyle.output",
    "livestyle.cli",
)

# Names of documents this repository once cited but never held; spelled in pieces so that this
# file does not cite them itself.
MISSING_DOCUMENTS = tuple(a + b for a, b in (
    ("MODEL", "_SPEC"), ("DESIGN", ".md"), ("TARGETS", ".md"), ("IO", "_NOTES"), ("STYLE", ".md"),
))
DOC_SCAN = ("livestyle", "docs", "README.md", "benchmarks", "scripts", "configs", "tests")
"""Where a reference to a document may appear."""
DOC_SCAN_SKIP = ("benchmarks/results",)
"""Recorded benchmark output: data written by earlier runs, kept as it was measured."""
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".js", ".html", ".css", ".sh", ".txt", ".toml"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported livestyle module
    line: int
    where: str  # "module level", "in a function", "TYPE_CHECKING"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


@cache
def _modules() -> dict[str, tuple[Path, bool]]:
    return {name: (path, pkg) for path in sorted(PACKAGE.rglob("*.py")) for name, pkg in [_module_name(path)]}


def _resolve(name: str) -> str | None:
    """The livestyle module ``name`` loads: itself, else its nearest enclosing module."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, is_package: bool, tree: ast.AST | None = None) -> list[Import]:
    """Every import of a livestyle module in ``path``, wherever it stands."""
    tree = tree if tree is not None else ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []

    def add(target: str | None, node: ast.stmt, where: str) -> None:
        if target is not None and target != module:
            found.append(Import(module, target, node.lineno, where))

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                here = "in a function"
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_one(stmt, "TYPE_CHECKING")
                for stmt in child.orelse:
                    visit_one(stmt, where)
                continue
            visit_one(child, here)

    def visit_one(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "livestyle" or alias.name.startswith("livestyle."):
                    add(_resolve(alias.name), node, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            if origin == "livestyle" or origin.startswith("livestyle."):
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    add(full if full in _modules() else _resolve(origin), node, where)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            where = "in a function"
        visit(node, where)

    visit(tree, "module level")
    return found


@cache
def _all_imports() -> tuple[Import, ...]:
    return tuple(imp for name, (path, pkg) in _modules().items() for imp in imports_of(name, path, pkg))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := dfs(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := dfs(start)) is not None:
            return cycle
    return None


def layer_violations(imports: tuple[Import, ...] | list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        forbidden = ()
        if imp.source.startswith(LOWER_LAYERS):
            forbidden = UPPER_LAYERS
        if imp.source.startswith("livestyle.models"):
            forbidden = (*forbidden, "livestyle.pipeline")
        if any(imp.target == f or imp.target.startswith(f + ".") for f in forbidden):
            bad.append(f"{imp.source} imports {imp.target} (line {imp.line}, {imp.where})")
    return bad


def long_files(root: Path = PACKAGE, limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out.append(f"{path.relative_to(root.parent).as_posix()}: {n} lines")
    return out


def _scanned_files(root: Path = ROOT) -> list[Path]:
    this = Path(__file__).resolve()
    files: list[Path] = []
    for entry in DOC_SCAN:
        base = root / entry
        candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in candidates:
            rel = path.relative_to(root).as_posix()
            if path.resolve() == this or path.suffix not in TEXT_SUFFIXES:
                continue
            if any(rel == s or rel.startswith(s + "/") for s in DOC_SCAN_SKIP) or "__pycache__" in rel:
                continue
            files.append(path)
    return files


_REPO_DOC = re.compile(r"(?<![\w/.-])((?:docs|benchmarks)/[\w./-]+\.md)\b")
_MD_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def missing_documents(root: Path = ROOT) -> list[str]:
    """References to documents the repository does not hold: names it never held, ``docs/…md`` and
    ``benchmarks/…md`` paths that do not exist, and relative markdown links that lead nowhere."""
    out = []
    for path in _scanned_files(root):
        rel = path.relative_to(root).as_posix()
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for name in MISSING_DOCUMENTS:
                if name in line:
                    out.append(f"{rel}:{lineno}: cites {name}, which is not in the repository")
            for ref in _REPO_DOC.findall(line):
                if not (root / ref).is_file():
                    out.append(f"{rel}:{lineno}: {ref} does not exist")
            if path.suffix == ".md":
                for link in _MD_LINK.findall(line):
                    if "://" not in link and not (path.parent / link).is_file():
                        out.append(f"{rel}:{lineno}: link {link} leads nowhere")
    return out


# ------------------------------------------------------------------------------------------ tests


def test_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for imp in _all_imports():
        edges.setdefault(imp.source, set()).add(imp.target)
    cycle = find_cycle(edges)
    if cycle is not None:
        lines = {(i.source, i.target): f"line {i.line}, {i.where}" for i in _all_imports()}
        steps = [f"{a} -> {b} ({lines[a, b]})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle:\n  " + "\n  ".join(steps))


def test_pipeline_and_models_do_not_import_the_layers_above() -> None:
    bad = layer_violations(_all_imports())
    assert not bad, "imports against the layering (control/server/ingest/output/cli -> pipeline -> models):\n  " + "\n  ".join(bad)


def test_no_file_over_600_lines() -> None:
    long = long_files()
    assert not long, f"split these along their seams (at most {MAX_LINES} lines a file):\n  " + "\n  ".join(long)


def test_no_reference_to_a_document_not_in_the_repository() -> None:
    missing = missing_documents()
    assert not missing, "references to documents that are not in the repository:\n  " + "\n  ".join(missing)


# ------------------------------------------------------------------- the checks catch what they claim


def test_the_checks_catch_planted_violations(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from livestyle.control.wire import x\n" \
          "def f():\n    from livestyle.server import app\n    import livestyle.ingest.camera\n"
    path = PACKAGE / "pipeline" / "planted.py"
    found = imports_of("livestyle.pipeline.planted", path, False, ast.parse(src))
    assert [(i.target, i.where) for i in found] == [
        ("livestyle.control.wire", "TYPE_CHECKING"),
        ("livestyle.server.app", "in a function"),
        ("livestyle.ingest.camera", "in a function"),
    ]
    assert len(layer_violations(found)) == 3
    up = imports_of("livestyle.models.planted", path, False, ast.parse("from ..pipeline import stream\n"))
    assert [i.target for i in up] == ["livestyle.pipeline.stream"] and layer_violations(up)

    (tmp_path / "livestyle").mkdir()
    (tmp_path / "livestyle" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "livestyle" / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert long_files(tmp_path / "livestyle") == [f"livestyle/big.py: {MAX_LINES + 1} lines"]

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.md").write_text("[ok](real.md) [gone](gone.md)\n")
    (tmp_path / "README.md").write_text(f"see docs/real.md and docs/nope.md; {MISSING_DOCUMENTS[0]} §3\n")
    problems = missing_documents(tmp_path)
    assert any("docs/nope.md does not exist" in p for p in problems)
    assert any("link gone.md leads nowhere" in p for p in problems)
    assert any(f"cites {MISSING_DOCUMENTS[0]}" in p for p in problems)
    assert not any("real.md" in p and "nope" not in p and "gone" not in p for p in problems)
