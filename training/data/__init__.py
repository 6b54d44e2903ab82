"""Training data: s1K-style rows to token ids with a loss mask, and the order they are trained in.

- `records`: reading rows from files, folders or the hub, each with where it came from;
- `examples`: rows to conversations to token ids with the assistant-only loss mask;
- `batches`: the seeded per-epoch order, global batches, and each rank's micro-batches.

The package re-exports their public names, so callers import from `training.data` alone.
"""

from __future__ import annotations

from training.data.batches import Batch, BatchPlan, collate, micro_batches
from training.data.examples import (
    IGNORE_INDEX,
    REQUIRED_COLUMNS,
    Conversation,
    Example,
    SFTData,
    build_dataset,
    check_columns,
    detect_format,
    split_template,
    to_conversation,
    tokenize,
)
from training.data.records import DataError, Records, load_records, local_data_files, looks_local, read_records

__all__ = [
    "IGNORE_INDEX",
    "REQUIRED_COLUMNS",
    "Batch",
    "BatchPlan",
    "Conversation",
    "DataError",
    "Example",
    "Records",
    "SFTData",
    "build_dataset",
    "check_columns",
    "collate",
    "detect_format",
    "load_records",
    "local_data_files",
    "looks_local",
    "micro_batches",
    "read_records",
    "split_template",
    "to_conversation",
    "tokenize",
]
