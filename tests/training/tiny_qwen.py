"""A tiny Qwen2 model with a chatml tokenizer, built from scratch so tests need no downloads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

WORDS = (
    "what is the sum of two and three think carefully about numbers first add then check answer "
    "the result equals five seven nine wait let me verify again so final boxed value is"
).split()


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """s1K-style rows: a question, one thinking trajectory and an attempt."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        a, b = (int(x) for x in torch.randint(0, 50, (2,), generator=gen))
        rows.append(
            {
                "question": f"What is {a} plus {b}?",
                "thinking_trajectories": [f"We add {a} and {b}. First {a}, then add {b}. So the sum is {a + b}."],
                "attempt": f"The sum is {a + b}." if i % 3 else f"Answer: {a + b}",
                "solution": str(a + b),
            }
        )
    return rows


def corpus() -> list[str]:
    lines = [" ".join(WORDS), "<think> </think> think answer Answer: plus sum is We add First then So"]
    for row in synthetic_records(64):
        lines += [row["question"], row["thinking_trajectories"][0], row["attempt"]]
    return lines


def build_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def build_model(folder: Path, *, tie: bool = False, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    vocab = ((len(tokenizer) + 63) // 64) * 64
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=1024,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
