"""Every vLLM touch point exists on the installed vLLM, and the engine client declares vLLM's interface."""

from __future__ import annotations

import inspect

from server.engine.client import ForcingEngineClient
from server.engine.delegate import DelegatingEngineClient
from server.vllm_compat import EngineClient, missing_touch_points
from server.vllm_touch_points import TOUCH_POINTS, TouchPoint


def test_every_touch_point_exists_with_the_parameters_s1serve_passes() -> None:
    assert missing_touch_points() == []


def test_a_missing_name_or_parameter_is_reported() -> None:
    """The checker itself can fail: a renamed module, attribute or keyword is listed."""
    points = {
        "a": TouchPoint("vllm.entrypoints.no_such_module:thing"),
        "b": TouchPoint("vllm.outputs:RequestOutput.no_such_attribute"),
        "c": TouchPoint("vllm.inputs.engine:tokens_input", ("prompt_token_ids", "no_such_keyword")),
    }
    missing = missing_touch_points(points)
    assert len(missing) == 3
    assert "no_such_module" in missing[0] and "no_such_attribute" in missing[1] and "no_such_keyword" in missing[2]


def test_touch_points_name_the_private_patches() -> None:
    targets = {p.target for p in TOUCH_POINTS.values() if p.private}
    assert "vllm.v1.engine.async_llm:AsyncLLM.check_admission" in targets
    assert "vllm.v1.metrics.stats:IterationStats.update_from_events" in targets
    assert "vllm.v1.engine.output_processor:RequestState.apply_streaming_update" in targets


def test_the_engine_client_declares_every_member_of_vllms_interface() -> None:
    """No `__getattr__`: each member of EngineClient is written out, so none is left abstract."""
    members = {
        name
        for name, value in vars(EngineClient).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }
    assert members, "vLLM's EngineClient has members"
    assert members <= set(vars(DelegatingEngineClient)), members - set(vars(DelegatingEngineClient))
    assert not getattr(ForcingEngineClient, "__abstractmethods__", None)
    assert "__getattr__" not in vars(ForcingEngineClient) and "__getattr__" not in vars(DelegatingEngineClient)
    for name in ("generate", "abort", "shutdown"):
        assert name in vars(ForcingEngineClient), f"forcing overrides {name}"
    ours = inspect.signature(ForcingEngineClient.abort).parameters
    assert list(ours) == list(inspect.signature(EngineClient.abort).parameters)
