"""Engine-independent budget forcing: thinking formats, budget specs and the forcing policy.

Nothing here imports vLLM or the server, so the logic can be tested on scripted token
streams and reused by any engine loop.
"""

from budget.controller import (
    Action,
    EndAttempt,
    FormatTokens,
    Insertion,
    Round,
    ThinkingController,
    ThinkingReport,
    auto_thinking_cap,
)
from budget.formats import FORMATS, ThinkingFormat, detect_format, get_format
from budget.spec import PROFILES, BudgetError, BudgetSpec, parse_thinking_budget

__all__ = [
    "FORMATS",
    "PROFILES",
    "Action",
    "BudgetError",
    "BudgetSpec",
    "EndAttempt",
    "FormatTokens",
    "Insertion",
    "Round",
    "ThinkingController",
    "ThinkingFormat",
    "ThinkingReport",
    "auto_thinking_cap",
    "detect_format",
    "get_format",
    "parse_thinking_budget",
]
