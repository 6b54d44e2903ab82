"""Check s1serve's vLLM touch points against a vLLM source tree, without importing vLLM.

    python scripts/check_vllm_touch_points.py                      # the installed vLLM
    python scripts/check_vllm_touch_points.py --source DIR         # DIR/vllm/... (an unpacked wheel)
    python scripts/check_vllm_touch_points.py --wheel vllm-X.whl   # reads the wheel in place

For each touch point in `server/vllm_touch_points.py` it finds the module file the release keeps
it in, the name (following re-exports and base classes) and the parameters s1serve passes, by
reading the source with `ast`. It prints one line per touch point and exits 1 when any is
missing, so it runs where the release cannot be installed (a GPU wheel on a CPU machine).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.vllm_touch_points import TOUCH_POINTS, TouchPoint  # noqa: E402


class SourceTree:
    """Python files of a vLLM release: a folder holding `vllm/`, or a wheel."""

    def __init__(self, folder: Path | None = None, wheel: Path | None = None) -> None:
        self.folder = folder
        self.zip = zipfile.ZipFile(wheel) if wheel else None
        self._parsed: dict[str, ast.Module | None] = {}

    def read(self, relative: str) -> str | None:
        if self.zip is not None:
            try:
                return self.zip.read(relative).decode()
            except KeyError:
                return None
        assert self.folder is not None
        path = self.folder / relative
        return path.read_text() if path.is_file() else None

    def module(self, name: str) -> ast.Module | None:
        if name not in self._parsed:
            base = name.replace(".", "/")
            text = self.read(f"{base}.py")
            if text is None:
                text = self.read(f"{base}/__init__.py")
            self._parsed[name] = None if text is None else ast.parse(text)
        return self._parsed[name]

    def version(self) -> str:
        text = self.read("vllm/_version.py") or ""
        found = re.search(r"""(?:__version__|version)\s*(?::\s*str)?\s*=\s*['"]([^'"]+)['"]""", text)
        return found.group(1) if found else "unknown"


@dataclass
class Found:
    node: ast.AST | None
    module: str
    lazy: bool = False  # provided by the module's __getattr__


def _package_of(module: str, tree_is_package: bool) -> str:
    return module if tree_is_package else module.rpartition(".")[0]


def find_top(tree: SourceTree, module: str, name: str, depth: int = 0) -> Found | None:
    """A top-level definition of `name` in `module`, following `from X import name` re-exports."""
    parsed = tree.module(module)
    if parsed is None or depth > 8:
        return None
    for node in parsed.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return Found(node, module)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return Found(node, module)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            if node.value is not None:
                return Found(node, module)
    for node in ast.walk(parsed):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = node.module
                    if node.level:
                        is_package = tree.read(module.replace(".", "/") + "/__init__.py") is not None
                        base = _package_of(module, is_package).split(".")
                        base = base[: len(base) - node.level + 1]
                        source = ".".join([*base, node.module])
                    found = find_top(tree, source, alias.name, depth + 1)
                    if found is not None:
                        return found
    lazy = any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in parsed.body)
    if lazy and re.search(rf"""['"]{re.escape(name)}['"]""", ast.unparse(parsed)):
        return Found(None, module, lazy=True)
    return None


def find_member(tree: SourceTree, cls: Found, name: str, depth: int = 0) -> Found | None:
    """A method or attribute of a class, in its body or its bases' bodies."""
    node = cls.node
    if not isinstance(node, ast.ClassDef) or depth > 8:
        return None
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
            return Found(item, cls.module)
    for base in node.bases:
        base_name = ast.unparse(base).split("[")[0].split(".")[-1]
        found = find_top(tree, cls.module, base_name)
        if found is not None and (member := find_member(tree, found, name, depth + 1)) is not None:
            return member
    return None


def parameters(tree: SourceTree, found: Found, depth: int = 0) -> tuple[set[str], bool] | None:
    """The parameter names a definition takes, and whether it takes any keyword (**kwargs)."""
    node = found.node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        return names, args.kwarg is not None
    if isinstance(node, ast.ClassDef) and depth <= 8:
        init = find_member(tree, found, "__init__")
        if init is not None:
            return parameters(tree, init, depth + 1)
        fields = {
            item.target.id
            for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
        for base in node.bases:
            base_found = find_top(tree, found.module, ast.unparse(base).split("[")[0].split(".")[-1])
            if base_found is not None and (inherited := parameters(tree, base_found, depth + 1)) is not None:
                fields |= inherited[0]
        return fields, False
    return None


def check(tree: SourceTree, point: TouchPoint, version: str) -> str | None:
    """None when the touch point is there with its parameters; else what is wrong."""
    target = point.target_for(version)
    module, _, qualname = target.partition(":")
    if tree.module(module) is None:
        return f"{target}: no module {module}"
    first, *rest = qualname.split(".")
    found = find_top(tree, module, first)
    if found is None:
        return f"{target}: {module} has no {first}"
    for part in rest:
        member = find_member(tree, found, part)
        if member is None:
            return f"{target}: {first} has no {part}"
        found = member
    if not point.params or found.lazy:
        return None
    taken = parameters(tree, found)
    if taken is None:
        return f"{target}: cannot read its parameters"
    names, any_keyword = taken
    absent = [p for p in point.params if p not in names]
    if absent and not any_keyword:
        return f"{target}: no parameter {', '.join(absent)}"
    return None


def installed_tree() -> SourceTree:
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        raise SystemExit("vllm is not installed; pass --source or --wheel")
    return SourceTree(folder=Path(spec.origin).parents[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--source", type=Path, help="a folder holding vllm/ (e.g. an unpacked wheel)")
    where.add_argument("--wheel", type=Path, help="a vLLM wheel, read in place")
    parser.add_argument("--version", help="the release to check as (default: read from vllm/_version.py)")
    args = parser.parse_args(argv)
    tree = SourceTree(args.source, args.wheel) if (args.source or args.wheel) else installed_tree()
    version = args.version or tree.version()
    problems = 0
    for name, point in TOUCH_POINTS.items():
        problem = check(tree, point, version)
        problems += problem is not None
        print(f"{'MISSING' if problem else 'ok':8} {name}: {problem or point.target_for(version)}")
    print(f"vLLM {version}: {len(TOUCH_POINTS) - problems} of {len(TOUCH_POINTS)} touch points found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
