"""End to end on CPU: 2-process FSDP2 runs (gloo) of a tiny Qwen2 model, hard-kill and resume, export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
import torch.nn.functional as F
from safetensors.torch import load_file
from tiny_qwen import build_model, synthetic_records, write_jsonl
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.config import DataConfig
from training.data import IGNORE_INDEX, BatchPlan, build_dataset, collate

REPO = Path(__file__).resolve().parents[2]
STEPS = 12
COMMON = [
    "--epochs", "2", "--global-batch-size", "4", "--lr", "1e-3", "--warmup-ratio", "0.1",
    "--block-size", "256", "--checkpoint-every", "3", "--keep-last", "5", "--no-progress",
]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def torchrun(args: list[str], *, check: bool = True, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    proc = subprocess.run(
        [*cmd, "-m", "training.sft", *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sft")
    model = build_model(root / "base")
    data = write_jsonl(root / "s1k.jsonl", synthetic_records(24))
    return {"root": root, "model": model, "data": data}


@pytest.fixture(scope="module")
def full_run(setup: dict[str, Path]) -> Path:
    """An uninterrupted run, started through the `s1serve train` launcher."""
    run = setup["root"] / "full"
    argv = ["--nproc-per-node", "2", "--model", str(setup["model"]), "--dataset", str(setup["data"])]
    argv += ["--output-dir", str(run), *COMMON]
    code = f"from training.launch import main; raise SystemExit(main({argv!r}))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "step 12/12" in proc.stdout
    return run


def test_loss_falls(full_run: Path) -> None:
    rows = metrics(full_run)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    losses = [r["loss"] for r in rows]
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3, losses
    assert all(r["grad_norm"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    assert rows[0]["lr"] == 0.0 and max(r["lr"] for r in rows) == pytest.approx(1e-3)  # warmup, then decay
    assert rows[-1]["lr"] < rows[len(rows) // 2]["lr"]


def test_first_step_loss_matches_a_single_process_reference(setup: dict[str, Path], full_run: Path) -> None:
    """Sharded weight loading, data order and the token-mean loss, checked against plain transformers."""
    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    records = [json.loads(line) for line in setup["data"].read_text().splitlines()]
    data = build_dataset(tokenizer, records, DataConfig(dataset="-", block_size=256))
    plan = BatchPlan(len(data.examples), global_batch_size=4, micro_batch_size=1, world_size=2, seed=42)
    model = AutoModelForCausalLM.from_pretrained(setup["model"], dtype=torch.float32)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in plan.global_batch(0):
            batch = collate([data.examples[i]], pad_id=0)
            logits = model(input_ids=batch.input_ids).logits
            total += float(F.cross_entropy(logits[0], batch.labels[0], ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((batch.labels != IGNORE_INDEX).sum())
    assert metrics(full_run)[0]["loss"] == pytest.approx(total / count, rel=1e-4)


def test_sigkill_then_resume_reproduces_the_losses(setup: dict[str, Path], full_run: Path) -> None:
    run = setup["root"] / "killed"
    args = ["--model", str(setup["model"]), "--dataset", str(setup["data"]), "--output-dir", str(run), *COMMON]
    killed = torchrun([*args, "--debug-sigkill-after-step", "5"], check=False)
    assert killed.returncode != 0
    assert "checkpoint: " in killed.stdout and "(writing in the background)" in killed.stdout  # async by default
    assert "SIGKILL" in killed.stdout + killed.stderr
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4, 5]
    assert checkpoints(run) == ["step-00000003"]  # steps 4 and 5 are lost
    assert not (run / "final").exists()

    # A copy resumes on one process: the sharded checkpoint reshards, and the loss does not
    # depend on the number of ranks.
    single = setup["root"] / "killed-single"
    shutil.copytree(run, single)

    resumed = torchrun([*args, "--resume"])
    assert "resumed from" in resumed.stdout and "at step 3" in resumed.stdout
    expected = [r["loss"] for r in metrics(full_run)]
    got = [r["loss"] for r in metrics(run)]
    assert [r["step"] for r in metrics(run)] == list(range(1, STEPS + 1))
    # Same ranks, same data order, restored RNG and optimizer state: the very same floats.
    assert got == expected
    assert [r["lr"] for r in metrics(run)] == [r["lr"] for r in metrics(full_run)]
    args[args.index("--output-dir") + 1] = str(single)
    torchrun([*args, "--resume", "--no-export"], nproc=1)
    assert [r["loss"] for r in metrics(single)] == pytest.approx(expected, rel=1e-5, abs=1e-6)

    a, b = load_file(full_run / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-2, atol=1e-3)


def test_three_ranks_load_uneven_shards_and_match(setup: dict[str, Path], full_run: Path) -> None:
    """3 ranks: uneven shards read straight from safetensors, padding slots and --max-steps, same losses."""
    run = setup["root"] / "three"
    args = ["--model", str(setup["model"]), "--dataset", str(setup["data"]), "--output-dir", str(run), *COMMON]
    proc = torchrun([*args, "--max-steps", "2", "--no-export", "--checkpoint-every", "0"], nproc=3)
    assert "2 steps (--max-steps) of a 12-step schedule: 2 epochs x 6 steps" in proc.stdout
    assert "global batch 4 on 3 ranks: 2 micro-batches of 1 per rank fill 6 example slots, 2 of them empty" in (
        proc.stdout
    )
    assert "epochs x" not in proc.stdout.replace("2 epochs x 6 steps", "")
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    # The schedule spans both epochs whatever --max-steps says: the same lr as the full run.
    assert [r["lr"] for r in rows] == [r["lr"] for r in metrics(full_run)[:2]]
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in metrics(full_run)[:2]], rel=1e-5)


def test_export_folder(setup: dict[str, Path], full_run: Path) -> None:
    export = full_run / "final"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "generation_config.json"):
        assert (export / name).is_file(), name
    assert json.loads((export / "s1serve.json").read_text()) == {"thinking_format": "s1"}
    tokenizer = AutoTokenizer.from_pretrained(export)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert json.loads((export / "config.json").read_text())["dtype"] == "bfloat16"

    trained = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(setup["model"], dtype=torch.float32)
    moved = (trained.model.layers[0].mlp.up_proj.weight - base.model.layers[0].mlp.up_proj.weight).abs().max()
    assert moved > 1e-3

    # The export equals the weights of the last checkpoint, consolidated offline.
    from training.export import main as export_main

    offline = full_run / "offline"
    assert export_main(["--checkpoint", str(full_run / "checkpoints" / "step-00000012"), "--out", str(offline)]) == 0
    assert json.loads((offline / "s1serve.json").read_text()) == {"thinking_format": "s1"}
    a, b = load_file(export / "model.safetensors"), load_file(offline / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tensorboard_events_carry_the_metrics(full_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full_run / "tensorboard"))
    events.Reload()
    rows = metrics(full_run)
    for tag in ("loss", "lr", "grad_norm", "tokens_per_s", "peak_memory_gb"):
        scalars = events.Scalars(f"train/{tag}")
        assert [e.step for e in scalars] == [r["step"] for r in rows], tag
        assert [e.value for e in scalars] == pytest.approx([r[tag] for r in rows], rel=1e-6), tag
    assert all(r["peak_memory_gb"] > 0 for r in rows)


def _launch(argv: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    code = f"from training.launch import main; raise SystemExit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def test_resume_with_changed_settings_is_refused_before_torchrun(setup: dict[str, Path], full_run: Path) -> None:
    before = (full_run / "metrics.jsonl").read_text()
    argv = ["--nproc-per-node", "2", "--model", str(setup["model"]), "--dataset", str(setup["data"])]
    argv += ["--output-dir", str(full_run), *COMMON, "--resume"]
    changed = argv + ["--global-batch-size", "8", "--seed", "7", "--lr", "2e-3", "--epochs", "1"]
    proc = _launch(changed)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "refusing to resume from" in err and "step-00000012" in err
    for line in (
        "--global-batch-size 4 -> 8",
        "--seed 42 -> 7",
        "--lr 0.001 -> 0.002",
        # the checkpoint is at step 12 of 6 steps per epoch: 1 epoch would end before it
        "--epochs 2 -> 1: the checkpoint is at step 12, epoch 2, past the new end (1 epochs x 6 steps = 6 steps)",
    ):
        assert line in err, line
    assert "Traceback" not in err and "ChildFailedError" not in err and "torch.distributed" not in err
    assert (full_run / "metrics.jsonl").read_text() == before

    # torchrun started directly: the workers refuse too, in one message from rank 0.
    train_args = argv[2:] + ["--seed", "7"]
    direct = torchrun(train_args, check=False)
    assert direct.returncode != 0
    assert direct.stderr.count("training.sft: error: refusing to resume") == 1, direct.stderr[-3000:]
    assert "--seed 42 -> 7: it fixes the data order" in direct.stderr
    assert (full_run / "metrics.jsonl").read_text() == before


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_workers_die_with_a_killed_launcher(setup: dict[str, Path]) -> None:
    """SIGKILL to `s1serve train` (torchrun after exec) must not leave workers training on their own."""
    import signal
    import time

    run = setup["root"] / "orphans"
    argv = ["--nproc-per-node", "2", "--model", str(setup["model"]), "--dataset", str(setup["data"])]
    argv += ["--output-dir", str(run), "--epochs", "1000", "--global-batch-size", "4", "--block-size", "256"]
    argv += ["--checkpoint-every", "0", "--no-export", "--no-progress", "--no-tensorboard"]
    code = f"from training.launch import main; raise SystemExit(main({argv!r}))"
    launcher = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().strip():
                break
            assert launcher.poll() is None, "the launcher exited before training"
            time.sleep(0.5)
        else:
            raise AssertionError("no training step within 180 s")
        workers = _children(launcher.pid)
        assert len(workers) == 2, workers
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "workers outlived the launcher"
    finally:
        launcher.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def test_tied_embeddings_think_format_checkpointing_and_micro_batches(setup: dict[str, Path]) -> None:
    """Other code paths: tied LM head, bf16 mixed precision, activation checkpointing, CPU offload,
    padded micro-batches of 2, --drop-long."""
    root = setup["root"]
    model = build_model(root / "tied", tie=True, seed=1)
    rows = synthetic_records(20, seed=5)
    rows[0]["thinking_trajectories"] = [" ".join(["we add and check"] * 100)]
    data = write_jsonl(root / "tied.jsonl", rows)
    run = root / "tied-run"
    proc = torchrun(
        [
            "--model", str(model), "--dataset", str(data), "--output-dir", str(run), "--thinking-format", "think",
            "--epochs", "3", "--global-batch-size", "8", "--micro-batch-size", "2", "--lr", "2e-3",
            "--warmup-ratio", "0", "--block-size", "200", "--drop-long", "--activation-checkpointing",
            "--checkpoint-every", "4", "--checkpoint-contents", "model", "--keep-last", "1", "--no-progress",
            "--mixed-precision", "bf16", "--cpu-offload",
        ]
    )  # fmt: skip
    assert "1 longer than the block size (0 truncated, cutting their answers; 1 dropped (--drop-long))" in proc.stdout
    # 19 examples in batches of 8 over 2 ranks x 2 micro-batches of 2: every summary line holds.
    assert "9 steps: 3 epochs x 3 steps" in proc.stdout
    assert "global batch 8 = 2 ranks x 2 micro-batches x 2" in proc.stdout
    assert "the last step of each epoch has 3 of 8 examples" in proc.stdout
    rows_out = metrics(run)
    assert len(rows_out) == 9  # ceil(19 / 8) * 3
    losses = [r["loss"] for r in rows_out]
    assert losses[-1] < 0.85 * losses[0], losses
    # Model-only checkpoints: weights and no optimizer state; the last one kept.
    assert checkpoints(run) == ["step-00000009"]
    saved = dcp.FileSystemReader(str(run / "checkpoints" / "step-00000009")).read_metadata().state_dict_metadata
    assert any(k.startswith("model.") for k in saved) and not any(k.startswith("optim") for k in saved)
    export = run / "final"
    assert json.loads((export / "s1serve.json").read_text()) == {"thinking_format": "think"}
    assert "lm_head.weight" not in load_file(export / "model.safetensors")
    loaded = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def _vllm_greedy(export: str, prompt_ids: list[int], n: int) -> list[int]:
    from vllm import LLM, SamplingParams

    # A small fixed KV cache: the CPU backend would otherwise reserve 30% of host memory, which fails
    # when another engine runs on the machine.
    llm = LLM(
        model=export,
        gpu_memory_utilization=0.3,
        kv_cache_memory_bytes=256 * 2**20,
        max_model_len=512,
        enforce_eager=True,
        dtype="float32",
    )
    out = llm.generate([{"prompt_token_ids": prompt_ids}], SamplingParams(max_tokens=n, temperature=0.0))
    return list(out[0].outputs[0].token_ids)


@pytest.mark.engine
def test_export_loads_in_vllm_and_matches_transformers(full_run: Path) -> None:
    export = full_run / "final"
    tokenizer = AutoTokenizer.from_pretrained(export)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 3 plus 4?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt + "<|im_start|>think\n", add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    hf = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids) :].tolist()
    script = (
        "import json, sys\n"
        "from test_training_run import _vllm_greedy\n"
        "if __name__ == '__main__':\n"
        f"    print('IDS=' + json.dumps(_vllm_greedy({str(export)!r}, {ids!r}, 8)))\n"
    )
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join((str(Path(__file__).parent), env["PYTHONPATH"]))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("IDS="))
    assert json.loads(line[4:]) == hf


@pytest.mark.engine
def test_s1serve_serves_the_export_with_budget_forcing(full_run: Path, tmp_path: Path) -> None:
    """`s1serve serve --model <export>` picks the format from the export and forces budgets."""
    import httpx
    import openai

    from budget.formats import detect_format
    from tests.integration.conftest import ENGINE_ARGS
    from tests.integration.server_process import ServerProcess

    export = full_run / "final"
    recorded = json.loads((export / "s1serve.json").read_text())["thinking_format"]
    tokenizer = AutoTokenizer.from_pretrained(export)
    unrecorded = detect_format(model_name=str(export), chat_template=tokenizer.chat_template).name
    server = ServerProcess(["--model", str(export), "--served-model-name", "sft", *ENGINE_ARGS], tmp_path / "log")
    try:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        assert httpx.get(f"{server.base_url}/version", timeout=30).json()["thinking_format"] == recorded
        response = client.chat.completions.create(
            model="sft",
            messages=[{"role": "user", "content": "What is 3 plus 4?"}],
            max_tokens=40,
            temperature=0,
            extra_body={"thinking_budget": {"max_tokens": 6, "min_tokens": 6, "wait_text": ""}},
        )
        report = response.model_dump()["choices"][0]["thinking"]
        assert report["thinking_tokens"] == 6 and report["forced_end"]
        assert response.choices[0].message.content.startswith("Final Answer:")
    finally:
        server.stop()
    # Without the record the detector would have chosen differently: the export's file decided.
    assert recorded == "s1" and unrecorded == "think"
