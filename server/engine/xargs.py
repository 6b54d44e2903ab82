"""A budget as `vllm_xargs` entries: what vLLM's serving layer carries into `extra_args`.

The gateway hands a request's budget to the engine client through the request's record, not
through the body. Two entries remain: `s1serve_budget` (a spec as a JSON string) is accepted
as a client spelling and read by `generate()` calls made outside an HTTP request;
`s1serve_forced` marks a budgeted request for the reasoning parser, which runs in vLLM's
serving layer and must know that the output starts inside the thinking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from budget.spec import BudgetError, BudgetSpec

BUDGET_KEY = "s1serve_budget"
FORCED_KEY = "s1serve_forced"
OWN_KEYS = (BUDGET_KEY, FORCED_KEY)


def spec_to_json(spec: BudgetSpec) -> str:
    return json.dumps(spec.to_dict(), separators=(",", ":"))


def spec_from_json(
    value: Any, param: str = f"vllm_xargs.{BUDGET_KEY}", default_profile: str | None = None
) -> BudgetSpec:
    if not isinstance(value, str):
        raise BudgetError(param, f"{param} must be a JSON string")
    try:
        data = json.loads(value)
    except ValueError:
        raise BudgetError(param, f"{param} is not valid JSON") from None
    return BudgetSpec.from_dict(data, param=param, default_profile=default_profile)


def spec_from_extra_args(extra: Mapping[str, Any] | None, default_profile: str | None = None) -> BudgetSpec | None:
    """The spec a `generate()` caller put into the sampling params' extra_args, if any."""
    if not extra or BUDGET_KEY not in extra:
        return None
    return spec_from_json(extra[BUDGET_KEY], default_profile=default_profile)


def without_own_keys(extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The caller's extra_args without s1serve's entries (engine rounds must not see them)."""
    rest = {k: v for k, v in (extra or {}).items() if k not in OWN_KEYS}
    return rest or None
