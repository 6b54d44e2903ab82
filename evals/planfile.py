"""Plan files (`--plan plan.toml`: each method with its own budgets) and the record of what an --out holds.

A plan file has one table per method; its keys are the budget flags (`max_thinking`, `num_ignore`,
`steps`, `samples`, `max_tries`, ...; `-` and `_` alike). What a table leaves out comes from the
command line:

    [budget]
    max_thinking = [512, 1024, 2048, 4096, 8192]
    num_ignore = [1, 2, 4, 6]

    [rejection]
    max_thinking = [3500, 4000, 5000, 8000, 16000]

`runs.json` in --out records, per method, the points and generation settings it was last run with,
so that the summary of a later run into the same folder covers every method run there, each over
its own rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from evals.methods import REGISTRY, PlanError, Point, Sweep

RECORD = "runs.json"


def read_plan(path: Path, base: Sweep) -> list[tuple[str, Sweep]]:
    """(method, its sweep) for each table of the plan file, in file order."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise PlanError("--plan needs Python 3.11 or later (tomllib)") from None
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"--plan {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"--plan {path}: not TOML: {e}") from None
    known = {f.name: f for f in fields(Sweep)}
    plan: list[tuple[str, Sweep]] = []
    for name, table in tables.items():
        if name not in REGISTRY:
            raise PlanError(f"--plan {path}: unknown method [{name}]; choose from {', '.join(REGISTRY)}")
        if not isinstance(table, dict):
            raise PlanError(f"--plan {path}: [{name}] must be a table of budgets")
        changes: dict[str, Any] = {}
        for key, value in table.items():
            field = key.replace("-", "_")
            if field not in known:
                raise PlanError(f"--plan {path}: [{name}] has unknown key {key}; use {', '.join(known)}")
            default = getattr(base, field)
            if isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
                    raise PlanError(f"--plan {path}: [{name}] {key} must be a list of non-negative integers")
                value = tuple(value)
            elif isinstance(default, str) != isinstance(value, str) or isinstance(value, (list, dict, bool)):
                raise PlanError(f"--plan {path}: [{name}] {key} has the wrong type ({type(value).__name__})")
            changes[field] = value
        plan.append((name, replace(base, **changes)))
    if not plan:
        raise PlanError(f"--plan {path}: no method tables")
    return plan


def read_record(out: Path) -> dict[str, Any]:
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"methods": {}}
    return record if isinstance(record.get("methods"), dict) else {"methods": {}}


def record_run(out: Path, record: dict[str, Any], points: list[Point], settings: Any, source: dict[str, Any]) -> None:
    """Replace the entries of this run's methods with its points, generation settings and data source."""
    for name in dict.fromkeys(p.method for p in points):
        record["methods"][name] = {
            "points": [p.to_json() for p in points if p.method == name],
            "settings": asdict(settings),
            **source,
        }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def earlier_methods(record: dict[str, Any], current: set[str], source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Methods an earlier run recorded on the same data source that this run does not run itself."""
    return {
        name: entry
        for name, entry in record["methods"].items()
        if name not in current and all(entry.get(k) == v for k, v in source.items())
    }
