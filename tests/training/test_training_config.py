"""Configuration, recipes and the torchrun launcher command."""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_qwen import build_model, synthetic_records, write_jsonl

from training.config import JobConfig, parse_args
from training.launch import build_command
from training.launch import main as launch_main
from training.resume import compare_jobs
from training.trainer import cosine_with_warmup

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_s1_hyperparameters() -> None:
    job = parse_args(["--model", "m", "--dataset", "d"])
    assert (job.optim.lr, job.optim.beta1, job.optim.beta2, job.optim.weight_decay) == (1e-5, 0.9, 0.95, 1e-4)
    assert (job.optim.warmup_ratio, job.train.epochs, job.train.global_batch_size) == (0.05, 5, 16)
    assert job.data.block_size == 32768 and job.data.thinking_format == "s1"


def test_recipe_then_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\npath = "base"\n[data]\ndataset = "d"\nblock-size = 4096\n[train]\nepochs = 3\n')
    job = parse_args(["--config", str(recipe), "--epochs", "2", "--no-export"])
    assert (job.model.path, job.data.block_size, job.train.epochs, job.checkpoint.export) == ("base", 4096, 2, False)
    recipe.write_text('[data]\nblok_size = 1\n[model]\npath = "m"\n')
    with pytest.raises(ValueError, match="unknown key 'blok_size'"):
        parse_args(["--config", str(recipe)])
    recipe.write_text('[train]\nepochs = "five"\n')
    with pytest.raises(ValueError, match=r"r.toml: \[train\] epochs = 'five': expected int"):
        parse_args(["--config", str(recipe)])
    with pytest.raises(ValueError, match="--model"):
        parse_args(["--dataset", "d"])
    with pytest.raises(ValueError, match="unknown --thinking-format 'r1'"):  # refused before any data is read
        parse_args(["--model", "m", "--dataset", "d", "--thinking-format", "r1"])


def test_s1_recipe_matches_the_paper() -> None:
    job = parse_args(["--config", str(REPO / "training" / "recipes" / "s1.1-32b.toml")])
    assert isinstance(job, JobConfig)
    assert (job.train.epochs, job.train.global_batch_size, job.data.block_size) == (5, 16, 32768)
    assert (job.optim.lr, job.optim.weight_decay, job.optim.warmup_ratio) == (1e-5, 1e-4, 0.05)
    assert job.data.thinking_format == "s1" and job.train.mixed_precision == "bf16"


def test_schedule_warmup_then_cosine_to_zero() -> None:
    f = cosine_with_warmup(315, 0.05)
    warmup = math.ceil(315 * 0.05)
    assert f(0) == 0.0 and f(warmup // 2) == pytest.approx((warmup // 2) / warmup)
    assert f(warmup) == pytest.approx(1.0)
    assert f(315) == pytest.approx(0.0, abs=1e-12)
    values = [f(s) for s in range(warmup, 316)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_launcher_single_node() -> None:
    cmd = build_command(["--nproc-per-node", "4", "--config", "r.toml", "--resume"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc-per-node") + 1] == "4" and "--standalone" in cmd
    assert cmd[cmd.index("-m", 3) :] == ["-m", "training.sft", "--config", "r.toml", "--resume"]


def test_launcher_multi_node() -> None:
    cmd = build_command(
        ["--nnodes", "2", "--nproc-per-node", "8", "--rdzv-endpoint", "node0:29500", "--rdzv-id", "s1", "--epochs", "5"]
    )
    head = cmd[: cmd.index("training.sft")]
    assert "--standalone" not in head
    assert head[head.index("--nnodes") + 1] == "2"
    assert head[head.index("--rdzv-backend") + 1] == "c10d"
    assert head[head.index("--rdzv-endpoint") + 1] == "node0:29500"
    assert head[head.index("--rdzv-id") + 1] == "s1"
    assert cmd[-2:] == ["--epochs", "5"]


# --------------------------------------------------------------------------- help and flag errors


def test_help_describes_every_user_flag_with_its_default() -> None:
    from training.config import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "Peak learning rate of AdamW. (default: 1e-05)" in text
    assert "Examples per optimizer step across all ranks (gradient accumulation fills the rest). (default: 16)" in text
    assert "Longest training sequence in tokens; longer examples are truncated (or dropped). (default: 32768)" in text
    assert "(default: 's1')" in text
    assert "debug-sigkill" not in text  # a testing aid, not a user flag
    # still accepted
    assert (
        parse_args(["--model", "m", "--dataset", "d", "--debug-sigkill-after-step", "3"]).train.debug_sigkill_after_step
        == 3
    )


@dataclass
class Launched:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def launch(capsys: pytest.CaptureFixture[str]):
    """`s1serve train ARGS` in this process: every path tested here returns before torchrun is exec'd."""

    def run(*argv: str) -> Launched:
        capsys.readouterr()
        code = launch_main(list(argv))
        out, err = capsys.readouterr()
        return Launched(code, out, err)

    return run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "x"], "s1serve train: error: argument --epochs: invalid int value: 'x' (see --help)"),
        (["--global-batch-size", "0"], "s1serve train: error: --global-batch-size must be at least 1 (got 0)"),
        (["--loss-impl", "fast"], "s1serve train: error: unknown --loss-impl 'fast'; choose one of"),
        (["--micro-batch-size", "32"], "--micro-batch-size 32 is larger than --global-batch-size 16"),
    ],
)
def test_flag_errors_are_one_line_before_torchrun(launch, tmp_path: Path, argv: list[str], message: str) -> None:
    model = tmp_path / "m"
    model.mkdir()
    proc = launch("--nproc-per-node", "2", "--model", str(model), "--dataset", str(tmp_path / "d.jsonl"), *argv)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr + proc.stdout


def test_missing_model_folder_is_named_before_any_hub_lookup(launch, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_records(2))
    for path in (tmp_path / "no-such-model", "./models/qwen-32b", "~/ckpts/base"):
        proc = launch("--model", str(path), "--dataset", str(data))
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"s1serve train: error: --model {path}: no such model folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = launch("--model", str(empty), "--dataset", str(data))
    assert "the folder has no config.json" in proc.stderr


def test_bad_data_rows_are_named_by_file_line_and_column(launch, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    rows = synthetic_records(4)
    del rows[2]["attempt"]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[2:]))
    proc = launch("--model", str(model), "--dataset", str(data))
    assert proc.returncode == 2
    want = f"s1serve train: error: {data} line 4: column 'attempt' is missing; format s1k needs"
    assert proc.stderr.startswith(want), proc.stderr
    assert "KeyError" not in proc.stderr
    (tmp_path / "empty.jsonl").write_text("\n")
    proc = launch("--model", str(model), "--dataset", str(tmp_path / "empty.jsonl"))
    assert f"no usable training examples: {tmp_path / 'empty.jsonl'} has no rows" in proc.stderr
    proc = launch("--model", str(model), "--dataset", str(tmp_path / "missing.jsonl"))
    assert f"--dataset {tmp_path / 'missing.jsonl'}: no such file or folder" in proc.stderr


# --------------------------------------------------------------------------- resume rules (pure logic)


def _job(*extra: str) -> JobConfig:
    return parse_args(["--model", "m", "--dataset", "d", *extra])


def test_resume_refuses_what_changes_the_run_and_names_each_field() -> None:
    saved = _job().to_dict()
    check = compare_jobs(
        saved,
        _job("--seed", "1", "--global-batch-size", "32", "--lr", "2e-5", "--block-size", "4096"),
        step=10,
        steps_per_epoch=63,
    )
    text = "\n".join(check.refused)
    assert "--seed 42 -> 1: it fixes the data order" in text
    assert "--global-batch-size 16 -> 32" in text
    assert "--lr 1e-05 -> 2e-05" in text
    assert "--block-size 32768 -> 4096" in text
    assert len(check.refused) == 4 and check.allowed == []


def test_resume_allows_more_epochs_and_logging_and_says_so() -> None:
    saved = _job().to_dict()
    check = compare_jobs(
        saved,
        _job("--epochs", "7", "--log-every", "10", "--no-progress", "--checkpoint-every", "5"),
        step=100,
        steps_per_epoch=63,
    )
    assert check.refused == []
    text = "\n".join(check.allowed)
    assert "--epochs 5 -> 7: the learning-rate schedule now spans 441 steps, stretched from step 100 on" in text
    assert "--log-every 1 -> 10" in text and "--checkpoint-every 50 -> 5" in text
    # fewer epochs than already trained (epoch 4.5 of 3): refused
    late = compare_jobs(saved, _job("--epochs", "3"), step=284, steps_per_epoch=63)
    assert late.refused and "epoch 4.50794" in late.refused[0] and "3 epochs x 63 steps = 189 steps" in late.refused[0]


# --------------------------------------------------------------------------- memory plan


@pytest.mark.parametrize("tie", [False, True])
def test_plan_counts_the_parameters_of_the_real_model(tmp_path: Path, tie: bool) -> None:
    """The plan reads config.json only; its count must equal the instantiated model's."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    from training.plan import Shapes

    folder = build_model(tmp_path / "m", tie=tie)
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config)
    assert Shapes.from_config(config).params() == sum(p.numel() for p in model.parameters())
    llama = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_bias=True,
    )
    assert Shapes.from_config(llama).params() == sum(
        p.numel() for p in AutoModelForCausalLM.from_config(llama).parameters()
    )


def test_plan_prints_before_any_weights_exist(launch, tmp_path: Path) -> None:
    """--plan needs only config.json: this folder has no weights and no tokenizer."""
    folder = tmp_path / "qwen2.5-32b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN25_32B))
    proc = launch("--nnodes", "2", "--nproc-per-node", "8", "--config", str(RECIPE), "--model", str(folder), "--plan")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "32.76B parameters" in out and "16 ranks" in out and "32768 tokens per micro-batch" in out
    # fp32 weights 4 B, gradients 4 B, Adam 8 B per parameter, over 16 ranks
    assert re.search(r"weights fp32 \(sharded\)\s+8\.2\b", out) and re.search(
        r"Adam moments fp32 \(sharded\)\s+16\.4\b", out
    )
    # the full logits of one 32k sequence: 32768 x 152064 x (2 + 4 + 4 + 2) bytes
    assert re.search(r"logits, full\s+59\.8\b", out)
    assert "fits in 80 GB" in out and "activations, activation checkpointing" in out
    no_ac = launch(
        "--nnodes",
        "2",
        "--nproc-per-node",
        "8",
        "--config",
        str(RECIPE),
        "--model",
        str(folder),
        "--plan",
        "--no-activation-checkpointing",
    )
    assert "does NOT fit in 80 GB" in no_ac.stdout


QWEN25_32B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 5120,
    "intermediate_size": 27648,
    "num_hidden_layers": 64,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
    "max_position_embeddings": 32768,
}
RECIPE = REPO / "training" / "recipes" / "s1.1-32b.toml"


def test_optional_packages_are_asked_for_by_name(launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb and Liger are never required: asking for them without the package is a one-line error."""
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "liger_kernel", None)
    folder = build_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "d.jsonl", synthetic_records(2))
    proc = launch("--model", str(folder), "--dataset", str(data), "--wandb")
    assert proc.returncode == 2 and "--wandb needs the wandb package: pip install wandb" in proc.stderr
    proc = launch("--model", str(folder), "--dataset", str(data), "--loss-impl", "liger")
    assert proc.returncode == 2 and "--loss-impl liger needs the liger-kernel package" in proc.stderr
    assert parse_args(["--model", "m", "--dataset", "d"]).train.wandb is False
