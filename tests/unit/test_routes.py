"""Which of vLLM's routes s1serve serves (pure logic on route lists)."""

from __future__ import annotations

from server.http.routes import protocol_path, unserved_routes

VLLM_032_POST = [
    "/tokenize",
    "/detokenize",
    "/v1/systemone",
    "/ping",
    "/invocations",
    "/v1/chat/completions",
    "/v1/chat/completions/batch",
    "/v1/responses",
    "/v1/responses/{response_id}/cancel",
    "/v1/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/generative_scoring",
    "/scale_elastic_ep",
    "/is_scaling_elastic_ep",
    "/v1/chat/completions/render",
    "/inference/v1/generate",
    "/inference/v1/abort_requests",
]


def routes(*paths: str) -> list[tuple[str, set[str]]]:
    return [(path, {"POST"}) for path in paths] + [("/v1/models", {"GET"}), ("/health", {"GET"})]


def test_uncovered_generation_and_admin_routes_are_not_served_by_default() -> None:
    left_out = unserved_routes(routes(*VLLM_032_POST))
    assert set(left_out) == {
        "/v1/systemone",
        "/v1/chat/completions/batch",
        "/generative_scoring",
        "/inference/v1/generate",
        "/scale_elastic_ep",
        "/is_scaling_elastic_ep",
        "/inference/v1/abort_requests",
    }
    assert "generates outside the gateway" in left_out["/v1/systemone"]
    assert "--enable-admin-routes" in left_out["/scale_elastic_ep"]


def test_flags_bring_admin_and_named_uncovered_routes_back() -> None:
    left_out = unserved_routes(routes(*VLLM_032_POST), admin=True, uncovered=["/generative_scoring"])
    assert set(left_out) == {"/v1/systemone", "/v1/chat/completions/batch", "/inference/v1/generate"}


def test_an_unknown_post_route_is_not_served_and_get_routes_are_left_alone() -> None:
    left_out = unserved_routes([("/v1/decisions", {"POST"}), ("/v1/brand_new", {"POST"}), ("/load", {"GET"})])
    assert set(left_out) == {"/v1/decisions", "/v1/brand_new"}
    assert "does not know" in left_out["/v1/brand_new"]


def test_invocations_speak_chat_with_messages_and_completions_otherwise() -> None:
    assert protocol_path("/invocations", {"messages": []}) == "/v1/chat/completions"
    assert protocol_path("/invocations", {"prompt": "x"}) == "/v1/completions"
    assert protocol_path("/invocations", None) == "/v1/completions"
    assert protocol_path("/v1/messages", {"prompt": "x"}) == "/v1/messages"
