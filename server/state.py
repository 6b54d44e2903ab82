"""What the routers share: configuration, the engine loop, the tokenizer and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from budget.formats import ThinkingFormat
from server.budget_policy import EffortBudgets
from server.engine_loop import EngineLoop
from server.metrics import Metrics


@dataclass
class ServerConfig:
    served_model_name: str
    model_path: str
    thinking_format: ThinkingFormat
    efforts: EffortBudgets = field(default_factory=EffortBudgets)
    api_keys: dict[str, str] = field(default_factory=dict)  # secret -> configured name
    drain_timeout: float = 30.0
    log_json: bool = False
    log_requests: bool = True


@dataclass
class ServerState:
    config: ServerConfig
    engine: Any
    tokenizer: Any
    loop: EngineLoop
    metrics: Metrics
    max_model_len: int
    default_sampling: dict[str, Any]
    created: int = field(default_factory=lambda: int(time.time()))
    draining: bool = False
