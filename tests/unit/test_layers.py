"""Imports point inward: the layer table of docs/ARCHITECTURE.md, checked over the source's AST.

Every import counts: module level, inside functions (sig imports lazily for start-up time, so most
arrows hide there) and under `if TYPE_CHECKING:`. Type-only imports count too: a lower module that names
a higher module's type knows that module's shape, and a cycle through a type-only import is still a
cycle a reader has to untangle (mypy follows it the same way).

`importlib.import_module(...)` is not an import here: the command table (cli/main.py) and the strategy
table (core/strategies.py, resolved in auth/strategies/) name their modules as data, and only a module of
the right layer turns the name into an import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sigcli"

# Top to bottom. A package may import its own modules and any package listed after it; never one before
# it. The services and the base layer have an order of their own, so no two packages of one layer import
# each other both ways. "(root)" is sigcli/__init__.py, "__main__" sigcli/__main__.py.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry", ("__main__", "(root)")),
    ("cli", ("cli",)),
    ("services", ("doctor", "sdk", "sandbox", "proxy", "watch", "sync", "inject", "auth", "browser")),
    ("base", ("config", "rules", "net", "store")),
    ("core", ("core", "_version")),
)
ORDER = [package for _layer, packages in LAYERS for package in packages]


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("sigcli", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The sig modules `module` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for name in candidates:
            # `import sigcli.a.b` also imports sigcli.a: count the deepest sig module named.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name not in (module, "sigcli"):  # the root package's lazy facade is imported by nobody
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {module: _imports(module, path, known) for module, path in known.items()}


def test_every_package_has_a_place_in_the_table() -> None:
    packages = {_package(m) for m in _modules()}
    assert packages - set(ORDER) == set(), "add the new package to LAYERS (and to docs/ARCHITECTURE.md)"
    assert len(ORDER) == len(set(ORDER))


def test_imports_point_inward() -> None:
    rank = {package: i for i, package in enumerate(ORDER)}
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in targets
        if rank[_package(target)] < rank[_package(source)]
    )
    assert wrong == [], "imports that point outward (see LAYERS):\n  " + "\n  ".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycles_between_packages() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for source, targets in _graph().items():
        for target in targets:
            if _package(source) != _package(target):
                packages[_package(source)].add(_package(target))
    assert _cycles(dict(packages)) == []


def test_no_package_imports_another_packages_private_names() -> None:
    """A `_name` is its package's own: another package (the CLI above all) asks through a public one."""
    known = _modules()
    wrong = []
    for module, path in known.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])]) if node.level else node.module or ""
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private and target.startswith("sigcli") and _package(target) != _package(module):
                wrong.append(f"{module}: {target}.{', '.join(private)}")
    assert wrong == []


def test_the_checker_sees_local_and_type_only_imports(tmp_path: Path) -> None:
    """The walk must not miss the imports that hide cycles: inside functions and under TYPE_CHECKING."""
    pkg = tmp_path / "sigcli"
    (pkg / "core").mkdir(parents=True)
    (pkg / "cli").mkdir()
    for init in (pkg / "__init__.py", pkg / "core" / "__init__.py", pkg / "cli" / "__init__.py"):
        init.write_text("")
    (pkg / "cli" / "app.py").write_text("")
    (pkg / "core" / "a.py").write_text(
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from ..cli.app import App\n"
        "def f():\n    from ..cli import app\n")
    known = {"sigcli": pkg / "__init__.py", "sigcli.core": pkg / "core" / "__init__.py",
             "sigcli.cli": pkg / "cli" / "__init__.py", "sigcli.cli.app": pkg / "cli" / "app.py",
             "sigcli.core.a": pkg / "core" / "a.py"}
    assert _imports("sigcli.core.a", pkg / "core" / "a.py", known) == {"sigcli.cli", "sigcli.cli.app"}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
