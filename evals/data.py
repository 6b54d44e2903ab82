"""Reading evaluation records from a local JSONL, JSON or Parquet file, or a Hugging Face dataset id."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

# Short names for the s1 paper's three benchmarks, resolved to their usual hub ids and splits.
HUB_ALIASES: dict[str, tuple[str, str | None, str]] = {
    "aime24": ("simplescaling/aime24_nofigures", None, "train"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "gpqa": ("Idavidrein/gpqa", "gpqa_diamond", "train"),
}


class DataError(ValueError):
    """A data set that cannot be read or lacks what its task needs; the message is one line."""


def load_records(source: str, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of `source`: a local .jsonl/.json/.parquet file, an alias above, or a hub id (optionally id:config)."""
    path = Path(source)
    if path.exists():
        return _read_file(path)
    if source in HUB_ALIASES:
        hub_id, config, default_split = HUB_ALIASES[source]
        return _read_hub(hub_id, config, split or default_split)
    if (
        "/" in source
        and not source.startswith((".", "/"))
        and path.suffix.lower() not in {".jsonl", ".json", ".parquet"}
    ):
        hub_id, _, config = source.partition(":")
        return _read_hub(hub_id, config or None, split or "test")
    raise DataError(f"--dataset {source}: no such file")


def _read_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}: not JSON ({e.msg})") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        rows = data.get("data", data.get("rows")) if isinstance(data, dict) else data
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        rows = pq.read_table(path).to_pylist()
    else:
        raise DataError(f"{path}: unknown file type {suffix or '(none)'}; use .jsonl, .json or .parquet")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: expected a list of objects (or {{'data': [...]}})")
    if not rows:
        raise DataError(f"{path}: no records")
    return rows


def _read_hub(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"--dataset {hub_id}: loading from the hub needs the 'datasets' package") from None
    datasets.logging.set_verbosity_error()  # its retry warnings would bury the one-line error below
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        loaded = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # the hub unreachable, gated, or the id unknown: all reported the same way
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"--dataset {hub_id}: cannot load from the hub ({first})") from None
    return [dict(row) for row in loaded]
