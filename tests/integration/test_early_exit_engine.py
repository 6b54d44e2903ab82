"""Answer-convergence early exit on a real engine (in this process), on both forcing paths.

The model is the tiny random s1-format model with the lm_head row of `}` scaled up, so that a
greedy probe sometimes closes its `\\boxed{` within a few tokens. Probe requests are observed by
wrapping the engine's `generate`: their prompts, outputs and prefix-cache hits. Where a test
needs to know what a probe answers, it asks the engine itself with a plain greedy request built
from the documented probe shape (the thinking so far, the end delimiter, `Final Answer:
\\boxed{`), independent of the client under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from tests.integration.engine import Engine, running
from tests.integration.tiny_model import build_forcing_model

pytestmark = pytest.mark.engine

PATHS = ("sessions", "resubmission")
END = "<|im_start|>answer\nFinal Answer: \\boxed{"  # s1's end delimiter, then the default probe text
BLOCK = 32  # the engine's block size (tests/oracle/run.py)


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = build_forcing_model(tmp_path_factory.mktemp("models") / "tiny-braces", trigger_scale=25.0)
    brace = AutoTokenizer.from_pretrained(folder).encode("}", add_special_tokens=False)
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.weight"][brace[0]] *= 8.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    yield from running(folder, enable_prefix_caching=True)


class ProbeSpy:
    """Wraps the engine's `generate`: records each probe request; `hold` keeps the next probe
    waiting (in the engine) after its first output until the consumer goes away."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.inner = eng.engine.generate
        self.calls: list[dict[str, Any]] = []
        self.hold = False
        self.started: asyncio.Event | None = None
        eng.engine.generate = self.generate

    def restore(self) -> None:
        self.eng.engine.generate = self.inner

    def generate(self, prompt: Any, params: Any, request_id: str, **kw: Any) -> Any:
        if "-probe" not in request_id:
            return self.inner(prompt, params, request_id, **kw)
        return self._probe(prompt, params, request_id, **kw)

    async def _probe(self, prompt: Any, params: Any, request_id: str, **kw: Any) -> AsyncIterator[Any]:
        call = {"prompt": list(prompt["prompt_token_ids"]), "text": "", "tokens": 0, "cached": 0, "params": params}
        self.calls.append(call)
        async with aclosing(self.inner(prompt, params, request_id, **kw)) as outputs:
            async for out in outputs:
                call["cached"] = max(call["cached"], out.num_cached_tokens or 0)
                call["text"] += out.outputs[0].text
                call["tokens"] += len(out.outputs[0].token_ids)
                if self.hold and self.started is not None:
                    self.started.set()
                    await asyncio.Event().wait()  # until cancelled
                yield out


@pytest.fixture
def spy(eng: Engine) -> Iterator[ProbeSpy]:
    s = ProbeSpy(eng)
    yield s
    s.restore()


def probe_points(eng: Engine, call: dict[str, Any], out: list[int], every: int) -> list[int]:
    """The thinking lengths k (multiples of `every`) for which a probe's prompt is the prompt,
    the first k output ids and the end delimiter with the probe text."""
    prompt = call["prompt"]
    base = len(eng.prompt) + len(eng.codec.encode("<|im_start|>think"))
    rest = prompt[base:]
    return [
        k
        for k in range(every, len(rest) + 1, every)
        if rest[:k] == out[:k] and eng.codec.decode(rest[k:]).lstrip("\n") == END
    ]


def greedy_text(eng: Engine, ids: list[int], max_tokens: int) -> str:
    from vllm import SamplingParams
    from vllm.inputs.engine import tokens_input

    async def run() -> str:
        text = ""
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        async for out in eng.engine.generate(tokens_input(ids), params, f"oracle-{len(ids)}"):
            text += out.outputs[0].text
        return text

    return eng.run(run())


@pytest.mark.parametrize("path", PATHS)
def test_probes_come_every_n_thinking_tokens_from_the_min_budget(eng: Engine, spy: ProbeSpy, path: str) -> None:
    budget = {"max_tokens": 120, "min_tokens": 64, "wait_text": "", "early_exit": {"every": 16, "agree": 99}}
    (out,), record = eng.complete(eng.params(budget, 200), path)
    report = record.choices[0].report
    assert report.thinking_tokens >= 64
    due = [k for k in range(64, report.thinking_tokens + 1, 16) if k < 120]
    assert [probe_points(eng, c, out, 16) for c in spy.calls] == [[k] for k in due]  # none before 64
    assert report.probes == len(due) and report.early_exit is False
    assert report.probe_tokens == sum(c["tokens"] for c in spy.calls) > 0
    assert all(c["params"].temperature == 0.0 and c["params"].max_tokens == 32 for c in spy.calls)
    # The probe's prefill is served from the cache: every full block of prompt and thinking.
    for call in spy.calls:
        shared = len(call["prompt"]) - len(eng.codec.encode("\n" + END))
        assert call["cached"] >= (shared // BLOCK) * BLOCK - BLOCK, call["cached"]


@pytest.mark.parametrize("path", PATHS)
def test_probes_that_never_agree_leave_the_output_unchanged(eng: Engine, spy: ProbeSpy, path: str) -> None:
    budget = {"max_tokens": 120, "min_tokens": 48, "num_ignore": 1}  # the thinking reaches the point at 48
    plain, plain_record = eng.complete(eng.params(budget, 200), path)
    probed, record = eng.complete(eng.params({**budget, "early_exit": {"every": 16, "agree": 99}}, 200), path)
    assert spy.calls and record.choices[0].report.probes == len(spy.calls)
    assert probed == plain
    assert record.choices[0].report.thinking_tokens == plain_record.choices[0].report.thinking_tokens


@pytest.mark.parametrize("path", PATHS)
def test_one_agreeing_probe_ends_the_thinking_at_the_first_probe(eng: Engine, spy: ProbeSpy, path: str) -> None:
    first = 64  # the first probe point: min_tokens, a multiple of every
    budget = {"max_tokens": 150, "min_tokens": first, "wait_text": "", "early_exit": {"every": 32, "agree": 1}}
    (plain,), _ = eng.complete(eng.params({k: v for k, v in budget.items() if k != "early_exit"}, 200), path)
    (out,), record = eng.complete(eng.params(budget, 200), path)
    (call,) = spy.calls
    assert probe_points(eng, call, plain, 32) == [first]  # the documented probe shape, at the first point
    # What that probe answers, asked of the engine directly: a closed answer, not hesitating.
    text = greedy_text(eng, call["prompt"], 32)
    assert "}" in text, f"the fixture model closes the probe's brace at {first} thinking tokens"
    answer = text[: text.index("}")]
    assert answer.strip(" .\n") and "{" not in answer
    assert not any(w in answer.lower().split() for w in ("wait", "hold", "but", "okay", "no", "hmm"))

    report = record.choices[0].report
    assert (report.early_exit, report.forced_end, report.probes, report.thinking_tokens) == (True, True, 1, first)
    assert out[:first] == plain[:first]
    assert eng.codec.decode(out[first:]).startswith("\n<|im_start|>answer\nFinal Answer:")
    # no probe token in the output: thinking, the inserted delimiter and the answer only
    assert len(out) == report.thinking_tokens + report.inserted["delimiter"] + report.answer_tokens


@pytest.mark.parametrize("path", PATHS)
def test_a_disconnect_during_a_probe_aborts_it_and_the_session(eng: Engine, spy: ProbeSpy, path: str) -> None:
    # A long probe (512 tokens), held after its first output: still running when the client goes.
    early = {"every": 16, "agree": 99, "probe_tokens": 512}
    budget = {"max_tokens": 120, "min_tokens": 112, "wait_text": "", "early_exit": early}  # a probe at 112
    gen, _ = eng.stream(eng.params(budget, 200), path)
    spy.hold = True

    async def consume() -> None:
        async for _ in gen:
            pass

    async def leave_during_the_probe() -> int:
        spy.started = asyncio.Event()
        task = asyncio.create_task(consume())
        await asyncio.wait_for(spy.started.wait(), timeout=60)
        live = eng.engine.output_processor.get_num_unfinished_requests()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gen.aclose()
        return live

    live = eng.run(leave_during_the_probe())
    assert live == (2 if path == "sessions" else 1)  # the probe, and the paused session
    assert len(spy.calls) == 1
    assert eng.engine.output_processor.get_num_unfinished_requests() == 0
    assert eng.holds_no_blocks()
    assert eng.client.in_flight == 0 and not eng.client.live_rounds
