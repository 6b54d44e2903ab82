"""Both forcing paths of the engine client on one real engine (in this process, tiny s1 model).

The same `ForcingEngineClient` serves every test with `sessions` switched on or off, so the
two paths run on identical engine state. The expected ids come from the port of s1's
evaluation harness (benchmarks/harness_port.py, run by tests/oracle/), run on its own `vllm.LLM`
with the same engine settings: independent of the client under test. KV blocks held by a
request are observed through the engine itself: vLLM refuses to reset its prefix cache while
any block is in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from budget.controller import FormatTokens
from budget.formats import S1, THINK, ThinkingFormat
from server.engine.client import ForcingEngineClient
from server.engine.records import RequestRecord
from tests.integration.engine import Engine, running
from tests.oracle.results import oracle_results
from tests.oracle.run import CASE_NAMES

pytestmark = pytest.mark.engine

FORCED = [name for name in CASE_NAMES if name != "no-budget"]
PATHS = ("sessions", "resubmission")


@pytest.fixture(scope="module")
def eng(tiny_model: Path) -> Iterator[Engine]:
    yield from running(tiny_model)


@pytest.fixture(scope="module")
def oracle(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return oracle_results(tiny_model, "s1", tmp_path_factory)


def engine_requests(record: RequestRecord) -> tuple[int, int, int]:
    """(sessions, resubmitted rounds, session chunks) over the record's choices."""
    c = record.choices
    return (
        sum(x.engine_requests["session"] for x in c),
        sum(x.engine_requests["round"] for x in c),
        sum(x.session_chunks for x in c),
    )


def test_the_path_is_chosen_from_the_trigger_and_a_probe(eng: Engine) -> None:
    assert "one token" in eng.run(eng.client.choose_forcing_path("auto"))
    assert eng.client.forcing_path == "sessions"
    assert "requested" in eng.run(eng.client.choose_forcing_path("resubmission"))
    assert eng.client.forcing_path == "resubmission"
    # `</think>` is several tokens in this s1 tokenizer: sessions cannot stop on it.
    multi = ForcingEngineClient(eng.engine, FormatTokens.build(THINK, eng.codec.encode), eng.codec)
    assert len(multi.tokens.trigger_ids) > 1
    assert "tokens" in eng.run(multi.choose_forcing_path("auto"))
    assert multi.forcing_path == "resubmission"
    with pytest.raises(ValueError, match="not possible"):
        eng.run(multi.choose_forcing_path("sessions"))
    assert eng.holds_no_blocks()  # the probe's session ended


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", FORCED)
def test_both_paths_serve_the_oracle_ids(eng: Engine, oracle: dict[str, Any], name: str, path: str) -> None:
    case = oracle["cases"][name]
    assert oracle["prompt"] == eng.prompt
    exact, record = eng.complete(eng.params(case["budget"], case["max_gen"]), path)
    assert exact[0] == case["expected_exact"]
    harness, _ = eng.complete(eng.params({**case["budget"], "profile": "harness"}, case["max_gen"]), path)
    assert harness[0] == case["port"]["completion"]
    sessions, rounds, chunks = engine_requests(record)
    report = record.choices[0].report
    if path == "sessions":
        # One engine request for the choice, every later round a chunk; except that an end
        # ignored without wait text adds no token to send, and a chunk cannot be empty: the
        # next round starts a new session.
        assert rounds == 0
        assert sessions == 1 + report.ends_ignored - report.waits_inserted
        assert chunks >= 1 + report.ends_ignored
    else:
        assert sessions == 0 and rounds >= 1 + report.ends_ignored


def test_waits_and_a_forced_end_run_in_one_session(eng: Engine) -> None:
    budget = {"min_tokens": 80, "max_tokens": 80}  # every end attempt is overridden; the cap ends it
    ids, record = eng.complete(eng.params(budget, 160), "sessions")
    report = record.choices[0].report
    assert report.waits_inserted >= 2 and report.forced_end
    sessions, rounds, chunks = engine_requests(record)
    assert (sessions, rounds) == (1, 0)
    # a thinking round per wait, the one the cap ended (unless a wait filled it), the answer
    assert chunks in (report.waits_inserted + 1, report.waits_inserted + 2)
    again, record2 = eng.complete(eng.params(budget, 160), "resubmission")
    assert again == ids
    assert engine_requests(record2) == (0, chunks, 0)


def test_a_seeded_session_is_reproducible(eng: Engine) -> None:
    budget = {"min_tokens": 30, "max_tokens": 60}
    first, _ = eng.complete(eng.params(budget, 100, temperature=1.0, seed=11), "sessions")
    second, _ = eng.complete(eng.params(budget, 100, temperature=1.0, seed=11), "sessions")
    other, _ = eng.complete(eng.params(budget, 100, temperature=1.0, seed=12), "sessions")
    assert first == second
    assert other != first


def test_n_choices_run_one_session_each(eng: Engine) -> None:
    ids, record = eng.complete(eng.params({"max_tokens": 20}, 40, n=2, temperature=1.0, seed=3), "sessions")
    assert engine_requests(record)[:2] == (2, 0)
    assert all(len(x) > 20 for x in ids) and ids[0] != ids[1]


def test_a_round_with_stop_strings_leaves_the_session(eng: Engine) -> None:
    """A grace round stops on text, which streaming input refuses: it runs as its own request,
    with the same ids as on the resubmission path."""
    budget = {"max_tokens": 12, "grace_tokens": 8}
    ids, record = eng.complete(eng.params(budget, 60), "sessions")
    assert record.choices[0].report.forced_end
    # s1serve grants grace only to thinking that stops mid-line at the cap.
    assert not eng.codec.decode(ids[0][:12]).endswith("\n")
    # the thinking session, the grace round on its own, a new session for the answer
    assert engine_requests(record)[:2] == (2, 1)
    reference, _ = eng.complete(eng.params(budget, 60), "resubmission")
    assert ids == reference


@pytest.mark.parametrize("when", ["between chunks", "inside a chunk"])
def test_a_disconnect_frees_the_session_at_once(eng: Engine, when: str) -> None:
    """The consumer goes away; the session's KV blocks are free before anything else runs.

    "between chunks": the client yields the wait text before it sends the next chunk, so a
    consumer that stops on it leaves the session paused in the engine, holding its blocks.
    """
    wait_ids = eng.codec.encode("Wait")
    gen, record = eng.stream(eng.params({"min_tokens": 200, "max_tokens": 300}, 400), "sessions")

    async def consume_then_leave() -> bool:
        held_while_paused = False
        async for out in gen:
            ids = list(out.outputs[0].token_ids)
            if when == "inside a chunk" and ids:
                break
            if when == "between chunks" and ids == wait_ids:
                await asyncio.sleep(0.2)  # the stopped chunk's end reaches the engine
                held_while_paused = not await eng.engine.reset_prefix_cache()
                break
        await gen.aclose()
        return held_while_paused

    held = eng.run(consume_then_leave())
    if when == "between chunks":
        assert held, "a paused session holds its KV blocks"
    assert eng.holds_no_blocks()
    assert eng.engine.output_processor.get_num_unfinished_requests() == 0
    assert eng.client.in_flight == 0
    assert engine_requests(record)[0] == 1


def test_a_multi_token_trigger_runs_on_resubmission(eng: Engine) -> None:
    """A text end trigger (two tokens the model often writes in a row) is stopped on as a stop
    string, which sessions cannot do: the client picks resubmission, strips the trigger and
    never streams a piece of it."""
    from collections import Counter

    from vllm import SamplingParams
    from vllm.inputs.engine import tokens_input

    async def greedy() -> list[int]:
        params = SamplingParams(max_tokens=80, temperature=0.0, skip_special_tokens=False)
        ids: list[int] = []
        opened = list(eng.prompt) + list(eng.client.tokens.start_ids)  # as a forced choice starts
        async for out in eng.engine.generate(tokens_input(opened), params, "greedy"):
            ids = list(out.outputs[0].token_ids)
        return ids

    ids = eng.run(greedy())[:40]  # pairs written early, before the minimum is reached

    def clean(pair: list[int]) -> bool:
        text = eng.codec.decode(pair)
        return eng.codec.encode(text) == pair and "\ufffd" not in text and "<|" not in text

    pairs = Counter((a, b) for a, b in zip(ids, ids[1:], strict=False) if clean([a, b]))
    trigger = eng.codec.decode(list(pairs.most_common(1)[0][0]))
    fmt = ThinkingFormat("pair", S1.start, S1.end, trigger, S1.start_sep, S1.end_sep)
    client = ForcingEngineClient(eng.engine, FormatTokens.build(fmt, eng.codec.encode), eng.codec)
    client.keep_special_tokens = True
    assert "2 tokens" in eng.run(client.choose_forcing_path("auto"))
    saved, eng.client = eng.client, client
    try:
        gen, record = eng.stream(eng.params({"min_tokens": 40, "max_tokens": 60}, 120), "resubmission")

        async def collect() -> tuple[str, list[int]]:
            text, out_ids = "", []
            async for out in gen:
                text += out.outputs[0].text
                out_ids.extend(out.outputs[0].token_ids)
            return text, out_ids

        text, out_ids = eng.run(collect())
    finally:
        eng.client = saved
    report = record.choices[0].report
    assert report.ends_ignored >= 1 and report.waits_inserted >= 1
    assert engine_requests(record) == (0, record.choices[0].engine_requests["round"], 0)
    thinking = eng.codec.decode(out_ids[: report.thinking_tokens])
    assert trigger not in thinking
    # The streamed text is the ids' text: nothing held back is lost. (Random weights write lone
    # UTF-8 bytes; the engine's detokenizer shows an unfinished one as nothing, decode() as U+FFFD.)
    assert text.replace("\ufffd", "") == eng.codec.decode(out_ids).replace("\ufffd", "")
