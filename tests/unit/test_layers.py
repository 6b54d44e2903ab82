"""The import graph of the shipped packages: arrows run one way, with no circle (static, no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("s1serve", "server", "budget", "training", "evals", "benchmarks")
# What each layer may import, besides itself (the packages below it, never above).
ALLOWED: dict[str, set[str]] = {
    "s1serve": {"server", "training", "evals", "benchmarks", "budget"},
    "server": set(),
    "server.cli": {
        "server.vllm_touch_points",
        "server.app",
        "server.http",
        "server.engine",
        "server.vllm_compat",
        "server.default_model",
        "budget",
    },
    "server.app": {
        "server.http",
        "server.engine",
        "server.vllm_compat",
        "server.reasoning_parsers",
        "server",
        "budget",
    },
    "server.http": {"server.engine", "budget"},
    "server.engine": {"server.vllm_compat", "budget"},
    "server.reasoning_parsers": {"server.engine.xargs", "server.vllm_compat", "budget"},
    "server.vllm_compat": {"server.vllm_touch_points"},
    "server.vllm_touch_points": set(),
    "server.default_model": set(),
    "budget": set(),
    "training": {"budget"},
    "evals": {"budget"},
    "benchmarks": {"budget", "server.default_model"},  # the embedded model, measured as served
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, function-local imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def shipped_modules() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[module_name(path)] = imports(path)
    return graph


def layer(name: str) -> str:
    return max((key for key in ALLOWED if name == key or name.startswith(key + ".")), key=len)


def project_target(name: str, graph: dict[str, set[str]]) -> str | None:
    """The shipped module an import name refers to (a module, or a name inside one)."""
    while name and name not in graph:
        name = name.rpartition(".")[0]
    return name or None


def test_no_shipped_module_imports_the_tests() -> None:
    offenders = {
        m for m, deps in shipped_modules().items() if any(d == "tests" or d.startswith("tests.") for d in deps)
    }
    assert offenders == set()


def test_arrows_run_from_higher_layers_to_lower_ones_only() -> None:
    graph = shipped_modules()
    wrong = []
    for module, deps in graph.items():
        own = layer(module)
        for dep in deps:
            target = project_target(dep, graph)
            if target is None or layer(target) == own or target == module:
                continue
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[own]):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_circle() -> None:
    graph = shipped_modules()
    edges = {m: {t for d in deps if (t := project_target(d, graph)) and t != m} for m, deps in graph.items()}
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        assert visit(node) is None, f"import circle: {' -> '.join(path)}"


def test_only_the_compat_module_imports_vllm_in_the_server() -> None:
    graph = shipped_modules()
    users = sorted(
        m
        for m, deps in graph.items()
        if (m == "server" or m.startswith("server.")) and any(d == "vllm" or d.startswith("vllm.") for d in deps)
    )
    assert users == ["server.vllm_compat"]


def test_no_source_file_is_over_450_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n}"
        for package in (*SHIPPED, "tests", "scripts")
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 450
    ]
    assert long == []
