"""Reading choices from response bodies shaped like s1serve's, vLLM's and a plain server's (hand-written JSON)."""

from __future__ import annotations

from evals.replies import read_replies


def test_s1serve_report_gives_the_counts() -> None:
    response = {
        "choices": [
            {
                "index": 0,
                "message": {"content": "Final Answer: 5", "reasoning_content": "2 + 3 Wait 5"},
                "finish_reason": "stop",
                "thinking": {"thinking_tokens": 16, "answer_tokens": 6, "waits_inserted": 1, "forced_end": True},
            }
        ],
        "usage": {"completion_tokens": 25, "completion_tokens_details": {"reasoning_tokens": 16}},
    }
    (reply,) = read_replies(response)
    assert (reply.thinking, reply.answer) == ("2 + 3 Wait 5", "Final Answer: 5")
    assert (reply.thinking_tokens, reply.answer_tokens, reply.completion_tokens) == (16, 6, 25)
    assert reply.report is not None and reply.report["waits_inserted"] == 1


def test_reasoning_tokens_from_usage_without_a_report() -> None:
    response = {
        "choices": [{"index": 0, "message": {"content": "5", "reasoning": "think"}, "finish_reason": "stop"}],
        "usage": {"completion_tokens": 30, "completion_tokens_details": {"reasoning_tokens": 20}},
    }
    (reply,) = read_replies(response)
    assert (reply.thinking, reply.thinking_tokens, reply.answer_tokens, reply.report) == ("think", 20, 10, None)


def test_think_tags_in_content_are_split_but_not_counted() -> None:
    response = {
        "choices": [{"index": 0, "message": {"content": "<think>hmm</think>\n\n42"}, "finish_reason": "stop"}],
        "usage": {"completion_tokens": 9},
    }
    (reply,) = read_replies(response)
    assert (reply.thinking, reply.answer) == ("hmm", "42")
    assert reply.thinking_tokens is None  # the client has no tokenizer and does not guess


def test_several_choices_share_the_usage_and_keep_their_order() -> None:
    response = {
        "choices": [
            {"index": 1, "message": {"content": "b"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": "a"}, "finish_reason": "length"},
        ],
        "usage": {"completion_tokens": 40},
    }
    first, second = read_replies(response)
    assert (first.answer, second.answer) == ("a", "b")
    assert first.thinking_tokens == 0 and first.completion_tokens == 20
