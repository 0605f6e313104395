"""Import guard: no import cycle between modules, no upward import between packages.

Every module under the service's packages is parsed with :mod:`ast` (never imported), and every import
counts: module-level, inside functions, under ``if TYPE_CHECKING:``, and ``importlib.import_module("…")`` /
``importlib.util.find_spec("…")`` with a literal name. A string literal that is exactly the dotted name of a
module in another package counts too, for the layering only: the string import that once hid a loop from
``sim`` back up to ``policy`` was such a table, while a package naming its own modules by string is
configuration (Celery's ``include=[…]``). An import names the most specific module it reaches (``from policy
import prompt`` is an edge to ``policy.prompt``); the parent packages a dotted import initialises are not
edges, or every package whose ``__init__`` imports its own sub-modules would be a cycle.

The layering (a package may import itself and what its row lists; ``app.core`` means that sub-package only):

================  ===========================================
``domain``        nothing
``sim``           domain
``policy``        domain, sim
``bridges``       domain, app.core, app.models (never fastapi or an ``app.<domain>.endpoints``)
``app``           domain, sim, policy, bridges (never workers: producers enqueue through ``app.core``)
``workers``       app, bridges, domain, policy, sim
``migrations``    app, domain
================  ===========================================
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "sim", "policy", "bridges", "app", "workers", "migrations")

ALLOWED: dict[str, tuple[str, ...]] = {
    "domain": (),
    "sim": ("domain",),
    "policy": ("domain", "sim"),
    "bridges": ("domain", "app.core", "app.models"),
    "app": ("domain", "sim", "policy", "bridges"),
    "workers": ("app", "bridges", "domain", "policy", "sim"),
    "migrations": ("app", "domain"),
}
# Third-party imports that mark the web layer: the packages below the HTTP surface stay usable without it.
FORBIDDEN_EXTERNAL: dict[str, tuple[str, ...]] = {
    "domain": ("fastapi", "starlette"),
    "sim": ("fastapi", "starlette"),
    "policy": ("fastapi", "starlette"),
    "bridges": ("fastapi", "starlette"),
}
# Edges of the integration base that break a rule in files this branch does not own, as
# (importing module, imported module). Each is somebody's open work item; remove the line when it is fixed (a
# test fails while a listed edge no longer exists, so the list only shrinks).
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # `rhythm db upgrade` finds the Alembic scripts through the package's __path__; it runs no code of
        # migrations/, but the import points from app up to the package that imports app (migrations/env.py).
        ("app.core.migrate", "migrations"),
        # `rhythm bench webhooks` starts real worker processes (`celery -A workers.celery_app worker`) to
        # drain what it accepted, as scripts/run.sh does; it imports nothing of workers/: a command line.
        ("app.benchmarks.webhooks", "workers.celery_app"),
        # `rhythm simulate --spawn/--faults` starts (and SIGKILLs) real worker and beat processes, as
        # scripts/run.sh does; it imports nothing of workers/: a command line.
        ("app.simulate.stack", "workers.celery_app"),
    }
)

_DYNAMIC_IMPORTERS = frozenset({"import_module", "find_spec", "__import__"})


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # an internal module, or the dotted name as written for a third-party import
    path: Path
    line: int
    internal: bool
    by_string: bool = False  # a module name in a string literal, not an import statement

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.path}:{self.line})"


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the given top-level packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``app.core.config.Settings`` -> module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from pkg import name``: ``pkg.name`` when that is a module, else ``pkg`` (resolved later).
                yield (f"{base}.{alias.name}" if alias.name != "*" else base), node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                called in _DYNAMIC_IMPORTERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield first.value, node.lineno


def _module_strings(tree: ast.AST, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """String literals that are exactly the dotted name of one of our modules (``"policy.sim_policy"`` in a
    table that something later hands to ``import_module``): a string import in waiting."""
    for node in ast.walk(tree):
        # Dotted names only: a bare "policy" or "app" is far more often a word than a module.
        if not isinstance(node, ast.Constant):
            continue
        if isinstance(node.value, str) and "." in node.value and node.value in modules:
            yield node.value, node.lineno


def collect_edges(root: Path, packages: Iterable[str]) -> list[Edge]:
    """Every import of every module under ``packages``, internal ones resolved to the module they reach."""
    modules = find_modules(root, packages)
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        relative = path.relative_to(root)
        for name, line in _imported_names(tree, module, path.name == "__init__.py"):
            target = _resolve(name, modules)
            if target is None:
                edges.append(Edge(module, name, relative, line, internal=False))
            elif target != module:
                edges.append(Edge(module, target, relative, line, internal=True))
        for name, line in _module_strings(tree, modules):
            if name.split(".")[0] != module.split(".")[0]:
                edges.append(Edge(module, name, relative, line, internal=True, by_string=True))
    return edges


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """The edges inside each strongly connected component of the internal import graph (Tarjan); string
    references are left out (see the module docstring)."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.internal and not edge.by_string:
            graph.setdefault(edge.source, []).append(edge)
            graph.setdefault(edge.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        # Recursive: the graph is a few hundred modules, far below the recursion limit.
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [
        sorted((e for m in sorted(c) for e in graph[m] if e.target in c), key=lambda e: (e.source, e.target))
        for c in components
    ]


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layering_violations(edges: Iterable[Edge]) -> list[Edge]:
    """Imports of a package its row in :data:`ALLOWED` does not list, and forbidden third-party imports."""
    bad = []
    for edge in edges:
        source_package = edge.source.split(".")[0]
        if edge.internal:
            target_package = edge.target.split(".")[0]
            if target_package != source_package and not _matches(edge.target, ALLOWED[source_package]):
                bad.append(edge)
        elif _matches(edge.target, FORBIDDEN_EXTERNAL.get(source_package, ())):
            bad.append(edge)
    return bad


def _report(title: str, edges: Iterable[Edge]) -> str:
    return title + "\n" + "\n".join(f"  {edge}" for edge in edges)


def _without_known(edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in edges if (e.source, e.target) not in KNOWN_EXCEPTIONS]


# --- the service's tree ---------------------------------------------------------------------------------


def test_the_tree_has_no_import_cycle() -> None:
    edges = _without_known(collect_edges(ROOT, PACKAGES))
    cycles = find_cycles(edges)
    assert not cycles, "\n".join(_report("import cycle:", cycle) for cycle in cycles)


def test_no_package_imports_above_its_layer() -> None:
    bad = _without_known(layering_violations(collect_edges(ROOT, PACKAGES)))
    assert not bad, _report("imports that break the layering (tests/test_architecture.py, ALLOWED):", bad)


# Inside app/: the shared layers serve every domain package (users, recommend, feedback, webhooks, ops, …) and
# import none of them, so that no domain package reaches another through core (the old auth -> users loop).
APP_SHARED_LAYERS = ("app.core", "app.models")


def app_layer_violations(edges: Iterable[Edge]) -> list[Edge]:
    """Imports from ``app.core`` / ``app.models`` into any other ``app`` sub-package."""
    return [
        e
        for e in edges
        if e.internal
        and _matches(e.source, APP_SHARED_LAYERS)
        and e.target.startswith("app.")
        and not _matches(e.target, APP_SHARED_LAYERS)
    ]


def test_app_core_and_models_import_no_domain_package() -> None:
    bad = app_layer_violations(collect_edges(ROOT, ("app",)))
    assert not bad, _report("app.core / app.models importing a domain package of app:", bad)


def test_the_app_layer_check_finds_core_importing_a_domain_package(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/core/__init__.py": "",
            "app/core/auth.py": "def f():\n    from app.users.repository import TokenRepository\n",
            "app/users/__init__.py": "",
            "app/users/repository.py": "from app.core import auth\n",
        },
    )
    bad = app_layer_violations(collect_edges(root, ("app",)))
    assert [(e.source, e.target) for e in bad] == [("app.core.auth", "app.users.repository")]


def test_every_known_exception_still_exists() -> None:
    present = {(e.source, e.target) for e in collect_edges(ROOT, PACKAGES)}
    stale = sorted(KNOWN_EXCEPTIONS - present)
    assert not stale, f"fixed, remove from KNOWN_EXCEPTIONS: {stale}"


def test_every_package_has_a_row_and_the_scan_sees_them() -> None:
    modules = find_modules(ROOT, PACKAGES)
    assert set(ALLOWED) == set(PACKAGES)
    for package in PACKAGES:
        assert package in modules, f"{package}/__init__.py missing"
    # Function-level imports are seen: sim.policies' registry is filled by its callers, policy.cli is one.
    edges = collect_edges(ROOT, PACKAGES)
    assert any(e.source == "policy.cli" and e.target.startswith("sim.") for e in edges)


# Producers and queues: one helper sends every message (``app.core.jobs``: after the commit, or at once for a
# producer without a transaction) and one module defines the queues and routing (``app.core.tasks``).
SENDS = frozenset({"delay", "apply_async", "send_task"})
SENDER = "app.core.jobs"
QUEUE_CONFIG = frozenset({"task_queues", "task_routes", "task_default_queue"})
QUEUE_DEFINER = "app.core.tasks"


def producer_violations(root: Path, packages: Iterable[str]) -> list[str]:
    """Calls that send a Celery message outside :data:`SENDER`, and queue definitions or routing outside
    :data:`QUEUE_DEFINER` (a ``kombu`` ``Queue(...)``, or a ``task_queues`` / ``task_routes`` setting)."""
    found = []
    for module, path in find_modules(root, packages).items():
        relative = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in SENDS and isinstance(func, ast.Attribute) and module != SENDER:
                    found.append(f"{relative}:{node.lineno}: .{name}(...) outside {SENDER}")
                if name == "Queue" and module != QUEUE_DEFINER:
                    found.append(f"{relative}:{node.lineno}: Queue(...) outside {QUEUE_DEFINER}")
                if name == "update" or name == "dict":
                    keys = {k.arg for k in node.keywords}
                    if keys & QUEUE_CONFIG and module != QUEUE_DEFINER:
                        found.append(f"{relative}:{node.lineno}: queue settings outside {QUEUE_DEFINER}")
            elif isinstance(node, ast.Constant) and node.value in QUEUE_CONFIG and module != QUEUE_DEFINER:
                found.append(f"{relative}:{node.lineno}: {node.value!r} outside {QUEUE_DEFINER}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in QUEUE_CONFIG
                and isinstance(node.ctx, ast.Store)
                and module != QUEUE_DEFINER
            ):
                found.append(f"{relative}:{node.lineno}: .{node.attr} set outside {QUEUE_DEFINER}")
    return found


def test_every_producer_sends_through_the_one_helper_and_queues_are_defined_once() -> None:
    bad = producer_violations(ROOT, PACKAGES)
    assert not bad, "send through app.core.jobs, define queues in app.core.tasks:\n" + "\n".join(bad)


# The maps: docs/architecture.md names every package of the tree, README's layout table every top-level one,
# so a package added later shows up on the page a newcomer reads first (or this fails).
def undocumented(root: Path) -> list[str]:
    doc = (root / "docs" / "architecture.md").read_text()
    readme = (root / "README.md").read_text()
    missing = [f"README.md: `{p}/`" for p in PACKAGES if f"`{p}/`" not in readme]
    missing += [f"docs/architecture.md: `{p}/`" for p in PACKAGES if f"`{p}/`" not in doc]
    for parent in ("app", "bridges"):
        for child in sorted((root / parent).iterdir()):
            if child.is_dir() and any(child.glob("*.py")) and f"{child.name}/`" not in doc:
                missing.append(f"docs/architecture.md: `{parent}/{child.name}/`")
    for module in sorted((root / "workers").glob("*.py")):
        if module.name != "__init__.py" and f"`{module.name}`" not in doc:
            missing.append(f"docs/architecture.md: `workers/{module.name}`")
    return missing


def test_every_folder_of_modules_is_a_regular_package() -> None:
    # A folder without __init__.py is a namespace package: imports still work, but tools and readers take it
    # for loose files (app/finetune and app/recommend/backends were such folders).
    folders = {path.parent for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert missing == [], f"add an __init__.py (with a docstring saying what the package is): {missing}"


def test_the_docs_name_every_package() -> None:
    assert undocumented(ROOT) == []


# --- the checker itself ---------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_producer_check_finds_a_direct_send_and_a_second_queue_definition(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/core/__init__.py": "",
            "app/core/jobs.py": "def _publish(celery, job):\n    celery.send_task(job.name)\n",
            "app/core/tasks.py": "from kombu import Queue\nQUEUES = [Queue('ingest')]\n",
            "app/feedback/__init__.py": "",
            "app/feedback/service.py": "def give(task):\n    task.delay(1)\n    task.apply_async((1,))\n",
            "workers/__init__.py": "",
            "workers/extra.py": """
                from kombu import Queue

                def configure(app):
                    app.conf.task_queues = [Queue("urgent")]
                    app.conf.update(task_routes={"x.*": {"queue": "urgent"}})
                    app.send_task("x.y")
                """,
        },
    )
    bad = producer_violations(root, ["app", "workers"])
    assert sorted(line.split(": ", 1)[0] for line in bad) == [
        "app/feedback/service.py:2",
        "app/feedback/service.py:3",
        "workers/extra.py:5",
        "workers/extra.py:5",
        "workers/extra.py:6",
        "workers/extra.py:7",
    ]


def test_the_docs_check_finds_a_new_package(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"README.md": "", "docs/architecture.md": "`users/` `ingest.py`"})
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    _tree(
        root,
        {
            "app/users/service.py": "",
            "app/billing/service.py": "",
            "workers/ingest.py": "",
            "workers/mail.py": "",
        },
    )
    missing = undocumented(root)
    assert (
        "docs/architecture.md: `app/billing/`" in missing
        and "docs/architecture.md: `workers/mail.py`" in missing
    )
    assert not any("users" in m or "ingest" in m for m in missing)
    assert "README.md: `domain/`" in missing


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "policy/__init__.py": "",
            "policy/a.py": "from policy.b import f\n",
            "policy/b.py": "def f():\n    from . import c\n",
            "policy/c.py": "import policy.a as again\n",
            "policy/d.py": "from policy import a\n",  # reaches the cycle, is not part of it
        },
    )
    cycles = find_cycles(collect_edges(root, ["policy"]))
    assert len(cycles) == 1
    assert [(e.source, e.target) for e in cycles[0]] == [
        ("policy.a", "policy.b"),
        ("policy.b", "policy.c"),
        ("policy.c", "policy.a"),
    ]
    assert "policy/b.py:2" in _report("cycle", cycles[0])


def test_checker_finds_upward_and_string_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "domain/__init__.py": "",
            "sim/__init__.py": "import domain\n",
            "sim/registry.py": """
                import importlib

                def load():
                    importlib.import_module("policy.model")
                """,
            "policy/__init__.py": "",
            "policy/model.py": "from sim import registry\n",
            "sim/lazy.py": 'LAZY = {"model": "policy.model"}\n',
            "bridges/__init__.py": "from app.core import config\nfrom app.users import endpoints\n",
            "bridges/web.py": "from fastapi import APIRouter\n",
            "app/__init__.py": "",
            "app/core/__init__.py": "",
            "app/core/config.py": "",
            "app/users/__init__.py": "",
            "app/users/endpoints.py": "import workers.tasks\n",
            "workers/__init__.py": "",
            "workers/tasks.py": "from app.core.config import x\n",
            "migrations/__init__.py": "",
        },
    )
    edges = collect_edges(root, ["domain", "sim", "policy", "bridges", "app", "workers", "migrations"])
    bad = {(e.source, e.target) for e in layering_violations(edges)}
    assert bad == {
        ("sim.registry", "policy.model"),
        ("sim.lazy", "policy.model"),
        ("bridges", "app.users.endpoints"),
        ("bridges.web", "fastapi.APIRouter"),
        ("app.users.endpoints", "workers.tasks"),
    }
    # The string import closes a loop that plain imports would not show.
    assert [{e.source for e in cycle} for cycle in find_cycles(edges)] == [{"policy.model", "sim.registry"}]
