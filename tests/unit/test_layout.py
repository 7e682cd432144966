"""The package's layout holds: no import cycles, and each layer imports only below.

Every ``import`` in every module is read from its source, the ones inside
functions (lazy imports) included, so a cycle that only shows when a lazy
import runs is found too. Imports under ``if TYPE_CHECKING:`` never run and
are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "globus_auto"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    yield from _runtime_nodes(node)


def imported(module: str) -> set[str]:
    """The modules ``module`` imports when it runs, project and third-party."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


def project_graph() -> dict[str, set[str]]:
    """Module → project modules it imports (packages' own ``__init__`` left out:
    they hold only a docstring)."""
    return {
        name: {m for m in imported(name) if m in MODULES and m != name}
        for name in MODULES
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_lazy_imports_included() -> None:
    assert cycles(project_graph()) == []


def test_lazy_imports_are_seen() -> None:
    """The session imports the Globus login only inside a function; it counts."""
    assert "globus_auto.globus.login" in imported("globus_auto.engine.session")


def importers_of(prefix: str) -> set[str]:
    return {
        name
        for name in MODULES
        if any(m == prefix or m.startswith(prefix + ".") for m in imported(name))
    }


def test_only_the_command_line_imports_click() -> None:
    allowed = {n for n in MODULES if n.startswith("globus_auto.cli")}
    allowed.add("globus_auto.emulator.cli")
    assert importers_of("click") <= allowed


def test_only_the_globus_folder_and_the_emulator_import_globus_sdk() -> None:
    allowed = {
        n
        for n in MODULES
        if n.startswith(("globus_auto.globus", "globus_auto.emulator"))
    }
    assert importers_of("globus_sdk") <= allowed


@pytest.mark.parametrize(
    "layer", ["engine", "globus", "alerts", "settings", "datastore", "emulator"]
)
def test_nothing_below_the_command_line_imports_it(layer: str) -> None:
    below = {n for n in MODULES if n.startswith(f"globus_auto.{layer}")}
    assert not below & importers_of("globus_auto.cli")


BASE = {
    f"globus_auto.{name}"
    for name in ("errors", "problems", "text", "clock", "files", "lock", "logs")
}
# What each layer may import of the project besides itself and the base: the
# folder list read as the data flow, each layer only below it.
MAY_IMPORT = {
    "globus_auto.settings": set(),
    "globus_auto.datastore": set(),
    "globus_auto.alerts": {"globus_auto.datastore", "globus_auto.settings"},
    "globus_auto.globus": {"globus_auto.settings", "globus_auto.engine.plan"},
    "globus_auto.engine": {
        "globus_auto.datastore",
        "globus_auto.settings",
        "globus_auto.alerts",
        "globus_auto.globus",
    },
}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_below_it(layer: str) -> None:
    allowed = {layer, *MAY_IMPORT[layer]}
    wrong = {
        f"{name} -> {target}"
        for name, targets in project_graph().items()
        if _layer(name) == layer
        for target in targets
        if target not in BASE
        and _layer(target) not in allowed
        and target not in allowed
    }
    assert wrong == set()


def test_the_base_imports_only_the_base() -> None:
    graph = project_graph()
    assert {t for name in BASE for t in graph[name]} <= BASE


PURE = {
    "globus_auto.engine.plan",
    "globus_auto.alerts.policy",
    "globus_auto.alerts.message",
    "globus_auto.problems",
    "globus_auto.text",
}
# What a pure module may import: values and text, no I/O.
PURE_STDLIB = {
    "__future__",
    "collections.abc",
    "contextlib",
    "dataclasses",
    "datetime",
    "email.message",
    "email.utils",
    "enum",
    "fnmatch",
    "posixpath",
    "re",
    "typing",
    "urllib.parse",
}


@pytest.mark.parametrize("module", sorted(PURE))
def test_the_pure_modules_import_no_io(module: str) -> None:
    outside = {m for m in imported(module) if m not in MODULES}
    assert outside <= PURE_STDLIB
    assert {m for m in imported(module) if m in MODULES} <= PURE | {
        "globus_auto.settings.model",
        "globus_auto.datastore.records",
        "globus_auto.clock",
    }


def test_no_module_is_over_500_lines_outside_the_emulator() -> None:
    sizes = {
        name: len(path.read_text().splitlines())
        for name, path in MODULES.items()
        if not name.startswith("globus_auto.emulator")
    }
    assert {name: n for name, n in sizes.items() if n > 500} == {}


def test_a_run_with_nothing_to_send_imports_no_globus_sdk() -> None:
    """What the run command loads before it knows it must talk to Globus.

    Why it matters: a cron run every few minutes with nothing new should cost
    about what listing the tree costs; globus-sdk is imported only when a job
    has something to send (engine.session builds the gateway lazily).
    """
    import subprocess
    import sys

    code = (
        "import sys, globus_auto.cli.group, globus_auto.cli.run, "
        "globus_auto.engine.session; print('globus_sdk' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "False"
