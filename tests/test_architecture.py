"""The package's shape, checked from its source (docs/architecture.md):

- no import cycle among livestyle modules (every import: module level, inside functions and under
  ``TYPE_CHECKING``);
- the arrows run one way (``LAYER_RULES``): the engine, the diffusion pipeline, planning, effects
  and the models never import the I/O and control layers or the CLI; the engine imports neither
  ``torch`` (anywhere in a file) nor ``livestyle.models``, the diffusion pipeline nor planning;
  ``livestyle.models`` imports none of the packages above it;
- no module is imported by name at run time (``importlib.import_module``, ``__import__``) unless
  it is a third-party module: every arrow between livestyle modules is an import statement;
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

UPPER_LAYERS = (
    "livestyle.control",
    "livestyle.server",
    "livestyle.ingest",
    "livestyle.output",
    "livestyle.cli",
)
_ABOVE_ENGINE = ("livestyle.models", "livestyle.diffusion", "livestyle.planning", "livestyle.effects",
                 "livestyle.parallel", "livestyle.generators")
LAYER_RULES: dict[str, tuple[str, ...]] = {
    "livestyle.engine": (*UPPER_LAYERS, *_ABOVE_ENGINE),
    "livestyle.parallel": (*UPPER_LAYERS, "livestyle.effects", "livestyle.generators"),
    "livestyle.diffusion": (*UPPER_LAYERS, "livestyle.effects", "livestyle.parallel", "livestyle.generators"),
    "livestyle.planning": (*UPPER_LAYERS, "livestyle.engine", "livestyle.diffusion", "livestyle.effects",
                           "livestyle.parallel", "livestyle.generators"),
    "livestyle.effects": (*UPPER_LAYERS, "livestyle.diffusion", "livestyle.planning", "livestyle.parallel",
                          "livestyle.generators"),
    "livestyle.models": (*UPPER_LAYERS, "livestyle.engine", "livestyle.diffusion", "livestyle.planning",
                         "livestyle.effects", "livestyle.parallel", "livestyle.generators"),
}
"""Package -> the packages it must never import (docs/architecture.md): control, server, ingest,
output, cli -> generators -> parallel (the pipeline-parallel stages) -> effects, diffusion,
planning -> engine, models."""
NO_TORCH = ("livestyle.engine",)
"""Packages whose files never import torch, not even inside a function."""
DYNAMIC_IMPORTERS = ("livestyle/optional.py",)
"""Files that may import a module named by a variable (the optional extras: av, cv2, ...)."""

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


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(imports: tuple[Import, ...] | list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        for layer, forbidden in LAYER_RULES.items():
            if _within(imp.source, layer) and any(_within(imp.target, f) for f in forbidden):
                bad.append(f"{imp.source} imports {imp.target} (line {imp.line}, {imp.where})")
    return bad


def torch_imports(rel: str, tree: ast.AST) -> list[str]:
    """``import torch`` / ``from torch... import`` anywhere in ``tree`` (file ``rel``)."""
    out = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n == "torch" or n.startswith("torch.") for n in names):
            out.append(f"{rel}:{node.lineno}: imports torch")  # type: ignore[attr-defined]
    return out


def dynamic_imports(rel: str, tree: ast.AST) -> list[str]:
    """Run-time imports by name that are not of a third-party module given as a literal."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name not in ("import_module", "__import__") or not node.args:
            continue
        arg = node.args[0]
        literal = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        if isinstance(arg, ast.JoinedStr):
            first = arg.values[0] if arg.values else None
            literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
        if literal is None and rel in DYNAMIC_IMPORTERS:
            continue
        if literal is None or literal == "livestyle" or literal.startswith("livestyle."):
            out.append(f"{rel}:{node.lineno}: {name}({ast.unparse(arg)}): import it with an import statement")
    return out


def _package_trees() -> list[tuple[str, str, ast.AST]]:
    return [(name, path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path)))
            for name, (path, _) in _modules().items()]


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


def test_no_package_imports_the_layers_above_it() -> None:
    bad = layer_violations(_all_imports())
    assert not bad, "imports against the layering (docs/architecture.md):\n  " + "\n  ".join(bad)


def test_the_engine_never_imports_torch() -> None:
    bad = [line for name, rel, tree in _package_trees() if name.startswith(NO_TORCH) for line in torch_imports(rel, tree)]
    assert not bad, "the real-time engine runs any generator without torch:\n  " + "\n  ".join(bad)


def test_no_livestyle_module_is_imported_by_name_at_run_time() -> None:
    bad = [line for _, rel, tree in _package_trees() for line in dynamic_imports(rel, tree)]
    assert not bad, "imports the architecture test cannot see:\n  " + "\n  ".join(bad)


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
    path = PACKAGE / "engine" / "planted.py"
    found = imports_of("livestyle.engine.planted", path, False, ast.parse(src))
    assert [(i.target, i.where) for i in found] == [
        ("livestyle.control.wire", "TYPE_CHECKING"),
        ("livestyle.server.app", "in a function"),
        ("livestyle.ingest.camera", "in a function"),
    ]
    assert len(layer_violations(found)) == 3
    up = imports_of("livestyle.models.planted", path, False, ast.parse("from ..diffusion import stream\n"))
    assert [i.target for i in up] == ["livestyle.diffusion.stream"] and layer_violations(up)
    eng = imports_of("livestyle.engine.planted", path, False, ast.parse("def f():\n    from livestyle.models import dit\n"))
    assert layer_violations(eng) and not layer_violations(
        imports_of("livestyle.diffusion.planted", path, False, ast.parse("from livestyle.engine import frames\n")))
    assert torch_imports("x.py", ast.parse("def f():\n    import torch.nn as nn\n")) == ["x.py:2: imports torch"]
    assert torch_imports("x.py", ast.parse("from torchvision import io\nimport numpy\n")) == []
    dyn = ast.parse("import importlib\nimportlib.import_module('livestyle.cli.run')\n"
                    "importlib.import_module(f'livestyle.cli.{n}')\nimportlib.import_module(name)\n"
                    "__import__('livestyle')\nimportlib.import_module('av')\n")
    assert [p.split(":")[1] for p in dynamic_imports("livestyle/x.py", dyn)] == ["2", "3", "4", "5"]
    assert [p.split(":")[1] for p in dynamic_imports("livestyle/optional.py", dyn)] == ["2", "3", "5"]

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
