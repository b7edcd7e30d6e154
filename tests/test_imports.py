"""The package's import graph: no cycles (counting imports deferred into functions) and one direction of layers.

The graph is read from the source with :mod:`ast`, so an import inside a function or under ``TYPE_CHECKING``
counts as much as one at the top of a module. ``from pkg import name`` counts as an import of ``pkg.name`` when
that is a module, else of ``pkg``; importing ``a.b.c`` from outside package ``a.b`` also counts as importing
``a.b`` (Python runs the package's ``__init__`` first).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(src: Path = SRC, package: str = "openfas") -> dict[str, set[str]]:
    """``{module: set of the package's modules it imports anywhere in its source}``."""
    modules = _modules(src, package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in modules.items():
        package = name.split(".") if is_pkg else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{mod}.{alias.name}"
                    targets.add(sub if sub in modules else mod)
        for target in list(targets):
            parts = target.split(".")
            for k in range(2, len(parts)):  # enclosing packages that ``name`` is not inside
                parent = ".".join(parts[:k])
                if not (name == parent or name.startswith(parent + ".")):
                    targets.add(parent)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_graph_reader_sees_deferred_relative_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("from . import sibling\n")
    (pkg / "sub" / "sibling.py").write_text("import os\n")
    (pkg / "top.py").write_text("def f():\n    from pkg.sub.sibling import x\n    return x\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.top\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.sub": {"pkg.sub.leaf"}, "pkg.sub.leaf": {"pkg.sub.sibling"},
                     "pkg.sub.sibling": set(), "pkg.top": {"pkg.sub.sibling", "pkg.sub"}, "pkg.typed": {"pkg.top"}}
    assert find_cycle(graph) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# Layers from the bottom up; a module may import its own layer and the ones below, never above.
LAYERS = [
    ("foundation", ["openfas._version", "openfas.errors", "openfas.conventions", "openfas.config", "openfas.io",
                    "openfas.optim"]),
    ("ops", ["openfas.ops"]),
    ("models", ["openfas.models"]),
    ("losses", ["openfas.losses"]),
    ("data", ["openfas.data"]),
    ("evaluation", ["openfas.eval", "openfas.recognition"]),
    ("methods", ["openfas.methods"]),
    ("engine", ["openfas.engine"]),
    ("deploy", ["openfas.deploy"]),
    ("commands", ["openfas", "openfas.cli", "openfas.cli_common", "openfas.data.commands", "openfas.eval.commands",
                  "openfas.deploy.commands"]),
]


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that names ``module`` or one of its packages."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def test_layers_only_import_downward() -> None:
    graph = import_graph()
    unplaced = sorted(m for m in graph if layer_of(m) < 0)
    assert unplaced == [], f"modules in no layer (add them to LAYERS): {unplaced}"
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)
    assert layer_of("openfas.eval.commands") == len(LAYERS) - 1 and layer_of("openfas.eval.scores") == 5
    assert layer_of("openfas.data.commands") == len(LAYERS) - 1 and layer_of("openfas.data.detectors") == 4


@pytest.mark.parametrize("layer", ["openfas.eval", "openfas.deploy"])
def test_eval_and_deploy_never_reach_the_trainer(layer: str) -> None:
    graph = import_graph()
    for mod in (m for m in graph if m == layer or m.startswith(layer + ".")):
        assert "openfas.engine.trainer" not in reachable(graph, mod), f"{mod} imports the trainer"


def test_command_line_help_loads_no_heavy_library() -> None:
    # `openfas --help` must stay fast (under a second): the CLI modules defer torch, OpenCV and friends into the
    # commands that need them, and `import openfas` imports no model.
    heavy = ("torch", "cv2", "albumentations", "matplotlib", "av", "lmdb")
    code = f"import sys, openfas.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]"


def _imports_inside_functions(node: ast.AST, package: str, inside: bool = False) -> list[int]:
    """Line numbers of the imports of ``package`` nested in a function (``if TYPE_CHECKING`` blocks skipped)."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
            continue
        if isinstance(child, ast.ImportFrom) and inside and not child.level:
            if (child.module or "").split(".")[0] == package:
                found.append(child.lineno)
        elif isinstance(child, ast.Import) and inside:
            if any(a.name.split(".")[0] == package for a in child.names):
                found.append(child.lineno)
        found += _imports_inside_functions(
            child, package, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return found


def _deferred_imports(src: Path = SRC, package: str = "openfas") -> list[tuple[Path, int, list[str]]]:
    """(file, line, the file's lines) of every import of the package inside a function."""
    out = []
    for path, _ in _modules(src, package).values():
        text = path.read_text()
        lines = text.splitlines()
        out += [(path, n, lines) for n in _imports_inside_functions(ast.parse(text, str(path)), package)]
    return out


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A ``# deferred: <reason>`` comment on the import's line or above its block of imports."""
    k = lineno - 1
    if "# deferred:" in lines[k]:
        return True
    indent = len(lines[k]) - len(lines[k].lstrip())
    while k > 0:
        above = lines[k - 1]
        stripped = above.strip()
        if stripped.startswith("# deferred:"):
            return True
        if not stripped or stripped.endswith(":") or len(above) - len(above.lstrip()) < indent:
            return False
        k -= 1
    return False


def test_deferred_import_reasons_are_found(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "m.py").write_text(
        "import pkg\n"
        "def f():\n    # deferred: a reason\n    from pkg import a\n    from pkg import (\n        b,\n    )\n"
        "def g():\n    x = 1\n    import pkg.m\n"
        "def h():\n    from pkg import c  # deferred: same line\n")
    found = {n: _has_reason(lines, n) for _, n, lines in _deferred_imports(tmp_path, "pkg")}
    assert found == {4: True, 5: True, 10: False, 12: True}


def test_every_deferred_import_says_why() -> None:
    missing = [f"{p.relative_to(SRC)}:{n}" for p, n, lines in _deferred_imports() if not _has_reason(lines, n)]
    assert missing == [], "deferred imports without a '# deferred: <reason>' comment: " + ", ".join(missing)
