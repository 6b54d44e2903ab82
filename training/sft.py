"""Supervised fine-tuning in an s1 thinking format, with FSDP2.

    torchrun --nproc-per-node 8 -m training.sft --config training/recipes/s1.1-32b.toml

The loss is the mean over every assistant-turn token of the global batch, whatever the
number of ranks and micro-batches, so a recipe trains the same on any cluster shape.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from tqdm import tqdm
from transformers import AutoTokenizer

from training.checkpoint import Checkpointer
from training.config import ConfigError, JobConfig, parse_args
from training.data import BatchPlan, DataError, build_dataset, micro_batches, read_records
from training.export import export_sharded
from training.loss import install_loss_forward, resolve_loss_impl
from training.metrics import MetricsLog, ScalarLoggers, flops_per_token, peak_flops, peak_memory_gb
from training.model import build_meta_model, load_base_weights, materialize, resolve_model_path
from training.parallelize import parallelize
from training.preflight import check_loggers, check_resume

logger = logging.getLogger("training")


def cosine_with_warmup(total_steps: int, warmup_ratio: float):
    """Linear warmup then cosine decay to 0, stepped as in the s1 run (Hugging Face's schedule)."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def die_with_parent() -> None:
    """Have the kernel SIGKILL this worker when its parent dies, however it dies.

    torchrun starts each worker in a session of its own, so a worker outlives a torchrun (or
    `s1serve train`, which becomes torchrun) that is killed with SIGKILL or loses its terminal,
    and would go on training and writing checkpoints unseen. Linux only; elsewhere stop a run
    with SIGINT or SIGTERM, which torchrun forwards to its workers.
    """
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was already gone before the request took effect
        os._exit(1)


def init_distributed() -> tuple[torch.device, int, int]:
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        # gloo serves collectives on CPU tensors (CPU-offloaded gradients' norm, async checkpoints).
        backend = "cuda:nccl,cpu:gloo"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return device, dist.get_rank(), dist.get_world_size()


def _log(bar: tqdm, line: str, level: int = logging.INFO) -> None:
    """Log lines go above the progress bar when there is one."""
    if bar.disable:
        logger.log(level, line)
    else:
        bar.write(line)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def train(job: JobConfig) -> None:
    given = copy.deepcopy(job)  # as the user gave it: checkpoints store it for resume checks
    device, rank, world = init_distributed()
    out = Path(job.train.output_dir)
    check_loggers(job)
    resumed = check_resume(job)  # refused changes stop every rank here, before any weights load
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "job.json").write_text(json.dumps(job.to_dict(), indent=2))
        for line in resumed[2].allowed if resumed else []:
            logger.warning("resume: allowed change %s", line)
    seed_everything(job.train.seed + rank)
    bf16 = job.train.mixed_precision == "bf16" or (job.train.mixed_precision == "auto" and device.type == "cuda")
    mesh = init_device_mesh(device.type, (world,))

    job.model.path = resolve_model_path(job.model.path)
    tokenizer = AutoTokenizer.from_pretrained(job.model.path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    data = build_dataset(tokenizer, read_records(job.data.dataset, job.data.split), job.data)
    plan = BatchPlan(
        num_examples=len(data.examples),
        global_batch_size=job.train.global_batch_size,
        micro_batch_size=job.train.micro_batch_size,
        world_size=world,
        seed=job.train.seed,
    )
    total_steps = plan.schedule_steps(job.train.epochs)
    stop_step = plan.stop_step(job.train.epochs, job.train.max_steps)
    loss_impl = resolve_loss_impl(job.train.loss_impl, device.type)
    if rank == 0:
        logger.info("data: %s (fingerprint %s)", data.summary(), data.fingerprint)
        if data.truncated:
            limit = job.data.block_size
            logger.warning("%d examples truncated to %d tokens; --drop-long drops them", data.truncated, limit)
        for level, line in plan.describe(job.train.epochs, job.train.max_steps):
            logger.log(logging.WARNING if level == "warning" else logging.INFO, line)
        chunk = f" ({job.train.loss_chunk_tokens} tokens per chunk)" if loss_impl == "chunked" else ""
        logger.info("loss: %s%s", loss_impl, chunk)

    model = build_meta_model(job.model.path, job.model.attn_implementation)
    config = model.config
    matmul_params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    if getattr(config, "tie_word_embeddings", False):
        matmul_params += model.get_input_embeddings().weight.numel()
    parallelize(
        model,
        mesh,
        param_dtype=torch.bfloat16 if bf16 else None,
        activation_checkpointing=job.train.activation_checkpointing,
        cpu_offload=job.train.cpu_offload,
    )
    install_loss_forward(model, loss_impl, job.train.loss_chunk_tokens)
    materialize(model, torch.device("cpu") if job.train.cpu_offload else device)
    load_base_weights(model, job.model.path)
    model.train()

    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=job.optim.lr,
        betas=(job.optim.beta1, job.optim.beta2),
        weight_decay=job.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(total_steps, job.optim.warmup_ratio))

    checkpointer = Checkpointer(
        out / "checkpoints",
        job.checkpoint.keep_last,
        contents=job.checkpoint.checkpoint_contents,
        async_save=job.checkpoint.async_checkpoint and job.checkpoint.checkpoint_every > 0,
    )
    checkpointer.clean_partial()
    start_step = 0
    latest = checkpointer.latest() if job.checkpoint.resume else None
    if latest is not None:
        trainer_state = checkpointer.load(latest, model, optimizer, scheduler)
        if trainer_state["data_fingerprint"] != data.fingerprint:
            raise ConfigError(
                f"refusing to resume from {latest}: it was trained on different data (the tokenized examples' "
                f"fingerprint is {trainer_state['data_fingerprint']}, this data's is {data.fingerprint})"
            )
        start_step = trainer_state["step"]
        if rank == 0:
            logger.info("resumed from %s at step %d", latest, start_step)
            if start_step >= stop_step:
                logger.info(
                    "the checkpoint is at step %d, the run's end is step %d: nothing to train", start_step, stop_step
                )
    elif job.checkpoint.resume and rank == 0:
        logger.info("no checkpoint in %s; starting from the base model", checkpointer.root)
    metrics = MetricsLog(out / "metrics.jsonl", resume_step=start_step) if rank == 0 else None
    scalars = (
        ScalarLoggers(
            out,
            tensorboard=job.train.tensorboard,
            wandb=job.train.wandb,
            wandb_project=job.train.wandb_project,
            job=given.to_dict(),
            resume_step=start_step,
        )
        if rank == 0
        else None
    )

    peak = peak_flops(device) if bf16 else None
    bar = tqdm(total=stop_step, initial=start_step, disable=rank != 0 or not job.train.progress, dynamic_ncols=True)
    max_norm = job.optim.max_grad_norm if job.optim.max_grad_norm > 0 else float("inf")
    for step in range(start_step + 1, stop_step + 1):
        started = time.perf_counter()
        batches = list(micro_batches(data, plan, step - 1, rank, pad_id))
        counts = torch.tensor(
            [sum(b.num_label_tokens for b in batches), sum(b.input_ids.numel() for b in batches)],
            dtype=torch.float64,
            device=device,
        )
        dist.all_reduce(counts)
        label_tokens, input_tokens = counts.tolist()
        loss_sum = torch.zeros((), device=device, dtype=torch.float32)
        for batch in batches:
            mask = batch.attention_mask.to(device) if batch.attention_mask is not None else None
            loss = model(input_ids=batch.input_ids.to(device), labels=batch.labels.to(device), attention_mask=mask)
            # FSDP averages gradients over ranks; scale so the result is the global per-token mean.
            (loss * world / label_tokens).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        dist.all_reduce(loss_sum)
        memory = torch.tensor([peak_memory_gb(device)], dtype=torch.float64, device=device)
        dist.all_reduce(memory, op=dist.ReduceOp.MAX)
        loss_value = loss_sum.item() / label_tokens
        elapsed = time.perf_counter() - started

        row = {
            "step": step,
            "epoch": (step - 1) / plan.steps_per_epoch,
            "loss": loss_value,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "label_tokens": int(label_tokens),
            "tokens_per_s": input_tokens / elapsed,
            "step_time_s": elapsed,
            "peak_memory_gb": float(memory.item()),
        }
        if peak:
            seq_len = input_tokens / max(1, plan.global_batch_size)
            row["mfu"] = flops_per_token(config, matmul_params, seq_len) * input_tokens / elapsed / (peak * world)
        if rank == 0:
            assert metrics is not None and scalars is not None
            metrics.write(row)
            scalars.write(row)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if step % job.train.log_every == 0 or step == stop_step:
                line = (
                    f"step {step}/{stop_step} | loss {loss_value:.4f} | lr {lr:.3e}"
                    f" | grad_norm {row['grad_norm']:.3f} | tokens/s {row['tokens_per_s']:.0f}"
                    f" | peak memory {row['peak_memory_gb']:.2f} GB"
                )
                if "mfu" in row:
                    line += f" | mfu {100 * row['mfu']:.1f}%"
                _log(bar, line)

        done = checkpointer.poll()
        if done is not None and rank == 0:
            _log(bar, f"checkpoint: {done}")
        every = job.checkpoint.checkpoint_every
        if every > 0 and (step % every == 0 or step == stop_step):
            trainer_state = {
                "data_fingerprint": data.fingerprint,
                "epoch": (step - 1) // plan.steps_per_epoch,
                "examples_seen": plan.examples_seen(step),
                "steps_per_epoch": plan.steps_per_epoch,
                "total_steps": total_steps,
                "world_size": world,
                "base_model": job.model.path,
                "thinking_format": job.data.thinking_format,
                "job": given.to_dict(),
            }
            path = checkpointer.save(step, model, optimizer, scheduler, trainer_state)
            if rank == 0:
                _log(bar, f"checkpoint: {path}" + (" (writing in the background)" if checkpointer.async_save else ""))
        if step == job.train.debug_sigkill_after_step:
            # A deterministic crash point for tests: in-flight checkpoints are complete first.
            done = checkpointer.wait()
            if done is not None and rank == 0:
                _log(bar, f"checkpoint: {done}")
            dist.barrier()
            os.kill(os.getpid(), signal.SIGKILL)
    done = checkpointer.wait()
    if done is not None and rank == 0:
        _log(bar, f"checkpoint: {done}")
    bar.close()
    if scalars is not None:
        scalars.close()

    if job.checkpoint.export:
        export_dir = job.checkpoint.export_dir or str(out / "final")
        export_sharded(
            model,
            base=job.model.path,
            out=export_dir,
            thinking_format=job.data.thinking_format,
            dtype=job.checkpoint.export_dtype,
        )
        if rank == 0:
            logger.info("exported to %s (thinking format %s)", export_dir, job.data.thinking_format)
        dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    die_with_parent()
    try:
        job = parse_args(argv)
        train(job)
    except (ConfigError, DataError) as e:
        # One line per problem, from rank 0 only: the other ranks hit the same check.
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"training.sft: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
