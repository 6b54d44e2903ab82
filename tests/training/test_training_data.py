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
