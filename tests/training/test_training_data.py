"""Data pipeline: rendering, the loss mask, dataset formats and the data order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tiny_qwen import build_tokenizer, synthetic_records, write_jsonl
from transformers import AutoTokenizer

from budget.formats import get_format
from training.config import DataConfig
from training.data import (
    IGNORE_INDEX,
    BatchPlan,
    DataError,
    build_dataset,
    collate,
    load_records,
    read_records,
    to_conversation,
    tokenize,
)

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tok")
    build_tokenizer(folder)
    return AutoTokenizer.from_pretrained(folder)


def _assistant_text(tokenizer, ids: torch.Tensor, labels: torch.Tensor) -> str:
    return tokenizer.decode(ids[labels != IGNORE_INDEX].tolist(), skip_special_tokens=False)


@pytest.mark.parametrize("fmt_name", ["s1", "think"])
def test_mask_covers_exactly_the_assistant_turn(tokenizer, fmt_name: str) -> None:
    row = synthetic_records(3)[1]  # its attempt lacks "Answer:"
    cfg = DataConfig(dataset="-", thinking_format=fmt_name)
    ex = tokenize(tokenizer, to_conversation(row, cfg, get_format(fmt_name)))

    if fmt_name == "s1":
        turn = f"<|im_start|>think\n{row['thinking_trajectories'][0]}\n<|im_start|>answer\nAnswer: {row['attempt']}"
    else:
        turn = f"<think>\n{row['thinking_trajectories'][0]}\n</think>\n\nAnswer: {row['attempt']}"
    prompt = f"{SYSTEM}<|im_start|>user\n{row['question']}<|im_end|>\n<|im_start|>assistant\n"

    labelled = (ex.labels != IGNORE_INDEX).nonzero().flatten()
    # One contiguous span that runs to the end of the sequence.
    assert labelled.tolist() == list(range(int(labelled[0]), len(ex.input_ids)))
    assert _assistant_text(tokenizer, ex.input_ids, ex.labels) == turn + "<|im_end|>"
    assert tokenizer.decode(ex.input_ids[: int(labelled[0])].tolist()) == prompt
    assert torch.equal(ex.labels[labelled], ex.input_ids[labelled])


def test_answer_prefix_is_not_doubled(tokenizer) -> None:
    row = synthetic_records(1)[0]
    assert row["attempt"].startswith("Answer:")
    ex = tokenize(tokenizer, to_conversation(row, DataConfig(dataset="-"), get_format("s1")))
    text = _assistant_text(tokenizer, ex.input_ids, ex.labels)
    assert text.count("Answer:") == 1
    assert text.endswith(f"<|im_start|>answer\n{row['attempt']}<|im_end|>")


@pytest.mark.parametrize("source", ["deepseek", "gemini"])
def test_s1k_1_1_trace_source(tokenizer, source: str) -> None:
    row = {
        "question": "What is 1 plus 1?",
        "deepseek_thinking_trajectory": "deep trace",
        "deepseek_attempt": "deep answer 2",
        "gemini_thinking_trajectory": "gem trace",
        "gemini_attempt": "gem answer 2",
    }
    cfg = DataConfig(dataset="-", trace_source=source)
    conv = to_conversation(row, cfg, get_format("s1"))
    prefix = "deep" if source == "deepseek" else "gem"
    assert conv.assistant == f"<|im_start|>think\n{prefix} trace\n<|im_start|>answer\nAnswer: {prefix} answer 2"
    assert conv.prompt == [{"role": "user", "content": "What is 1 plus 1?"}]


def test_messages_format_trains_only_the_last_assistant_turn(tokenizer) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2 plus 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3 plus 3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "three and three"},
        ]
    }
    ex = tokenize(tokenizer, to_conversation(row, DataConfig(dataset="-"), get_format("think")))
    assert _assistant_text(tokenizer, ex.input_ids, ex.labels) == "<think>\nthree and three\n</think>\n\n6<|im_end|>"
    full = tokenizer.decode(ex.input_ids.tolist())
    assert full.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert "<|im_start|>assistant\n4<|im_end|>" in full  # earlier turn is context, not target


def test_long_examples_are_counted_then_truncated_or_dropped(tokenizer) -> None:
    rows = synthetic_records(6)
    rows[2]["thinking_trajectories"] = [" ".join(["we add and check"] * 200)]
    rows[4]["thinking_trajectories"] = [" ".join(["so the sum is"] * 200)]
    cut = build_dataset(tokenizer, rows, DataConfig(dataset="-", block_size=128))
    assert (cut.too_long, cut.truncated, cut.dropped, len(cut.examples)) == (2, 2, 0, 6)
    assert max(len(ex.input_ids) for ex in cut.examples) == 128
    dropped = build_dataset(tokenizer, rows, DataConfig(dataset="-", block_size=128, drop_long=True))
    assert (dropped.too_long, dropped.truncated, dropped.dropped, len(dropped.examples)) == (2, 0, 2, 4)
    assert "2 longer than the block size" in cut.summary()
    assert dropped.fingerprint != cut.fingerprint


def test_load_records_from_jsonl_and_folder(tmp_path: Path) -> None:
    rows = synthetic_records(5)
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:2])
    assert load_records(str(tmp_path / "train.jsonl")) == rows
    assert load_records(str(tmp_path), split="train") == rows
    assert load_records(str(tmp_path), split="test") == rows[:2]


def test_missing_optional_readers_give_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "datasets", None)
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="needs pyarrow"):
        load_records(str(tmp_path / "d.parquet"))
    with pytest.raises(DataError, match="`datasets` package"):
        load_records("simplescaling/s1K-1.1")


@pytest.mark.parametrize(("n", "batch", "micro", "world"), [(1000, 16, 1, 16), (23, 4, 1, 2), (23, 6, 2, 4)])
def test_batch_plan_visits_every_example_once_per_epoch(n: int, batch: int, micro: int, world: int) -> None:
    plan = BatchPlan(num_examples=n, global_batch_size=batch, micro_batch_size=micro, world_size=world, seed=3)
    for epoch in range(2):
        seen: list[int] = []
        for step in range(epoch * plan.steps_per_epoch, (epoch + 1) * plan.steps_per_epoch):
            for rank in range(world):
                mbs = plan.rank_micro_batches(step, rank)
                assert len(mbs) == plan.micro_steps
                assert all(len(mb) <= micro for mb in mbs)
                seen += [i for mb in mbs for i in mb]
        assert sorted(seen) == list(range(n))
        assert plan.examples_seen((epoch + 1) * plan.steps_per_epoch) == (epoch + 1) * n
    assert plan.global_batch(5) == BatchPlan(n, batch, micro, world, seed=3).global_batch(5)
    if n == 1000:
        assert plan.steps_per_epoch * 5 == 315  # the s1 run's step count


def test_collate_shifts_and_pads(tokenizer) -> None:
    rows = synthetic_records(2)
    exs = [tokenize(tokenizer, to_conversation(r, DataConfig(dataset="-"), get_format("s1"))) for r in rows]
    short = len(exs[0].input_ids) - 5
    exs[1].input_ids, exs[1].labels = exs[1].input_ids[:short], exs[1].labels[:short]
    batch = collate(exs, pad_id=0)
    n0 = len(exs[0].input_ids)
    assert batch.input_ids.shape == (2, n0 - 1)
    assert torch.equal(batch.input_ids[0], exs[0].input_ids[:-1])
    assert torch.equal(batch.labels[0], exs[0].labels[1:])
    assert batch.attention_mask is not None and int(batch.attention_mask[1].sum()) == len(exs[1].input_ids) - 1
    assert (batch.labels[1, len(exs[1].input_ids) - 1 :] == IGNORE_INDEX).all()


def test_a_prompt_that_fills_the_block_is_dropped_not_truncated(tokenizer) -> None:
    rows = synthetic_records(4)
    rows[1]["question"] = " ".join(["what is the sum of two and three"] * 40)  # the prompt alone passes 128 tokens
    rows[3]["thinking_trajectories"] = [" ".join(["we add and check"] * 200)]  # a long answer: truncated
    data = build_dataset(tokenizer, rows, DataConfig(dataset="-", block_size=128))
    assert (data.too_long, data.truncated, data.prompt_fills_block, data.dropped_long) == (2, 1, 1, 0)
    assert len(data.examples) == 3
    assert (
        "(1 truncated, cutting their answers; 0 dropped (--drop-long); "
        "1 dropped because the prompt alone fills the block)"
    ) in data.summary()


def test_no_usable_examples_says_why(tokenizer) -> None:
    rows = synthetic_records(3)
    with pytest.raises(DataError) as e:
        build_dataset(tokenizer, rows, DataConfig(dataset="d.jsonl", block_size=16, drop_long=True))
    message = str(e.value)
    assert message.startswith(
        "no usable training examples in d.jsonl: all 3 were dropped: 3 longer than --block-size 16"
    )
    assert "raise --block-size or leave out --drop-long" in message
    for row in rows:
        row["question"] = " ".join(["what is the sum"] * 40)
    with pytest.raises(DataError, match="3 whose prompt alone fills --block-size 32"):
        build_dataset(tokenizer, rows, DataConfig(dataset="d.jsonl", block_size=32))
    with pytest.raises(DataError, match="no usable training examples: d.jsonl has no rows"):
        build_dataset(tokenizer, [], DataConfig(dataset="d.jsonl"))


def test_a_row_missing_a_column_is_named_by_file_and_line(tokenizer, tmp_path: Path) -> None:
    rows = synthetic_records(3)
    rows[1] = {"question": "q", "deepseek_thinking_trajectory": "t"}  # s1K-1.1 without its attempt
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError) as e:
        build_dataset(tokenizer, read_records(str(path)), DataConfig(dataset=str(path)))
    assert str(e.value) == (
        f"{path} line 2: column 'deepseek_attempt' is missing; format s1k-1.1 needs "
        "['question', 'deepseek_thinking_trajectory', 'deepseek_attempt']"
    )
    (tmp_path / "bad.jsonl").write_text('{"question": "q"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl line 2: not valid JSON"):
        read_records(str(tmp_path / "bad.jsonl"))


def _lines(plan: BatchPlan, epochs: int, max_steps: int = 0) -> list[str]:
    return [line for _, line in plan.describe(epochs, max_steps)]


def test_summary_lines_are_true_for_uneven_batches() -> None:
    plan = BatchPlan(num_examples=16, global_batch_size=16, micro_batch_size=1, world_size=3, seed=0)
    lines = _lines(plan, 5)
    assert "3 ranks x 6 micro-batches" not in " ".join(lines)  # 3 x 6 = 18, not 16
    slots = sum(len(mb) for rank in range(3) for mb in plan.rank_micro_batches(0, rank))
    assert slots == 16 and plan.micro_steps == 6
    assert lines[1] == (
        "global batch 16 on 3 ranks: 6 micro-batches of 1 per rank fill 18 example slots, 2 of them empty each "
        "step (computed with no loss); a global batch divisible by 3 wastes none"
    )
    assert plan.describe(5, 0)[1][0] == "warning"
    even = BatchPlan(num_examples=1000, global_batch_size=16, micro_batch_size=1, world_size=16, seed=0)
    assert _lines(even, 5) == [
        "315 steps: 5 epochs x 63 steps",
        "global batch 16 = 16 ranks x 1 micro-batches x 1",
        "the last step of each epoch has 8 of 16 examples",  # 1000 = 62 x 16 + 8
    ]


def test_max_steps_stops_early_and_says_so() -> None:
    plan = BatchPlan(num_examples=16, global_batch_size=4, micro_batch_size=1, world_size=2, seed=0)
    assert _lines(plan, 5, max_steps=2)[0] == "2 steps (--max-steps) of a 20-step schedule: 5 epochs x 4 steps"
    assert (plan.stop_step(5, 2), plan.schedule_steps(5)) == (2, 20)
    assert _lines(plan, 5, max_steps=50)[1] == "--max-steps 50 is past the end; the run stops at step 20"
