"""Reading training rows from JSONL, JSON or Parquet files, a folder of them, or a hub dataset.

Each row keeps where it came from (file and line or row), so any later error about its
contents can point at it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Data that cannot be trained on; the message names the file and row."""


@dataclass
class Records:
    """Rows with where each came from, so an error can name the file and row."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, rows: list[dict[str, Any]], source: str, unit: str = "row", numbers: list[int] | None = None) -> None:
        self.sources.append(source)
        for i, row in enumerate(rows):
            self.rows.append(row)
            self.origins.append(f"{source} {unit} {numbers[i] if numbers else i + 1}")


def _read_jsonl(path: Path, out: Records) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON: {e}") from None
        out.add(rows, str(path), "row")
        return
    rows, numbers = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {number}: not valid JSON: {e}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
        numbers.append(number)
    out.add(rows, str(path), "line", numbers)


def _read_parquet(path: Path, out: Records) -> None:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DataError(f"reading {path} needs pyarrow: pip install pyarrow (or convert the data to JSONL)") from None
    out.add(pq.read_table(path).to_pylist(), str(path), "row")


def _read_file(path: Path, out: Records) -> None:
    if path.suffix in (".jsonl", ".json"):
        _read_jsonl(path, out)
    elif path.suffix == ".parquet":
        _read_parquet(path, out)
    else:
        raise DataError(f"unsupported data file {path}: use .jsonl, .json or .parquet")


def local_data_files(source: str, split: str = "train") -> list[Path] | None:
    """The files a local `source` stands for, or None when it is not a local path."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
        split_files = [p for p in files if p.name.startswith(split) or p.parent.name == split]
        files = split_files or files
        if not files:
            raise DataError(f"no .jsonl/.json/.parquet files under {path}")
        return files
    return None


def looks_local(source: str) -> bool:
    """A path rather than a hub id: hub ids are `name` or `owner/name`."""
    return (
        source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or "\\" in source
        or Path(source).suffix
        in (
            ".jsonl",
            ".json",
            ".parquet",
        )
    )


def read_records(source: str, split: str = "train") -> Records:
    """Rows from a local file, a folder of files (one split's files if named so), or a hub dataset id."""
    out = Records()
    files = local_data_files(source, split)
    if files is not None:
        for p in files:
            _read_file(p, out)
        return out
    if looks_local(source):
        raise DataError(f"--dataset {source}: no such file or folder")
    try:
        import datasets
    except ModuleNotFoundError:
        raise DataError(
            f"{source!r} is not a local file or folder; loading it as a Hugging Face dataset id needs the "
            "`datasets` package (pip install datasets) and access to the hub"
        ) from None
    out.add(list(datasets.load_dataset(source, split=split)), f"{source} ({split})", "row")
    return out


def load_records(source: str, split: str = "train") -> list[dict[str, Any]]:
    """The rows of `read_records`, without their origins."""
    return read_records(source, split).rows
