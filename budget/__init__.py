"""Engine-independent budget forcing: thinking formats, budget specs and the forcing policy.

Nothing here imports vLLM or the server, so the logic can be tested on scripted token
streams and reused by any engine loop.
"""

from budget.controller import Action, EndAttempt, Round, ThinkingController, ThinkingReport
from budget.formats import FORMATS, ThinkingFormat, detect_format, get_format
from budget.spec import BudgetError, BudgetSpec

__all__ = [
    "FORMATS",
    "Action",
    "BudgetError",
    "BudgetSpec",
    "EndAttempt",
    "Round",
    "ThinkingController",
    "ThinkingFormat",
    "ThinkingReport",
    "detect_format",
    "get_format",
]
