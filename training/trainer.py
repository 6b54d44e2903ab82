"""The SFT trainer, in torchtitan's shape: build the job once, then `train_step` until the end.

Everything a checkpoint holds is one `TrainState` (model, optimizer, schedule, step; RNG per
rank). `train_step` is one optimizer step and nothing else; `train` is the loop, with logging,
checkpoints and the step hooks around it. Hooks (the resume tests' crash point is one) are
registered by whoever builds the Trainer, so nothing in the loop knows about tests.

The loss is the mean over every assistant-turn token of the global batch, whatever the number
of ranks and micro-batches, so a recipe trains the same on any cluster shape.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from tqdm import tqdm
from transformers import AutoTokenizer

from training.checkpoint import Checkpointer, TrainState
from training.config import ConfigError, JobConfig
from training.data import Batch, BatchPlan, build_dataset, micro_batches, read_records
from training.export import export_sharded
from training.loss import install_loss_forward, resolve_loss_impl
from training.metrics import MetricsLog, ScalarLoggers, flops_per_token, peak_flops, peak_memory_gb
from training.model import build_meta_model, load_base_weights, materialize, resolve_model_path
from training.parallelize import parallelize
from training.preflight import check_loggers, check_resume

logger = logging.getLogger("training")

StepHook = Callable[["Trainer"], None]
"""Called on every rank after each step, once its metrics are logged and its checkpoint started."""


def cosine_with_warmup(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Linear warmup then cosine decay to 0, stepped as in the s1 run (Hugging Face's schedule)."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return factor


def init_distributed() -> tuple[torch.device, int, int]:
    """Join the process group torchrun set up; returns (device, rank, world size)."""
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """One SFT job on this rank: data, sharded model, `state`, checkpoints and loggers.

    Building it joins the process group, checks the job, tokenizes the data, loads the sharded
    base weights and, with --resume, restores the latest checkpoint into `state`.
    """

    def __init__(self, job: JobConfig, *, hooks: Sequence[StepHook] = ()) -> None:
        self.given = copy.deepcopy(job)  # as the user gave it: checkpoints store it for resume checks
        self.job = job
        self.hooks: list[StepHook] = list(hooks)
        self.device, self.rank, self.world = init_distributed()
        self.out = Path(job.train.output_dir)
        check_loggers(job)
        resumed = check_resume(job)  # refused changes stop every rank here, before any weights load
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "job.json").write_text(json.dumps(job.to_dict(), indent=2))
            for line in resumed[2].allowed if resumed else []:
                logger.warning("resume: allowed change %s", line)
        seed_everything(job.train.seed + self.rank)
        mp = job.train.mixed_precision
        self.bf16 = mp == "bf16" or (mp == "auto" and self.device.type == "cuda")
        mesh = init_device_mesh(self.device.type, (self.world,))
        self._build_data()
        self.state = self._build_state(mesh)
        self.checkpointer = Checkpointer(
            self.out / "checkpoints",
            job.checkpoint.keep_last,
            contents=job.checkpoint.checkpoint_contents,
            async_save=job.checkpoint.async_checkpoint and job.checkpoint.checkpoint_every > 0,
        )
        self.checkpointer.clean_partial()
        self._resume()
        self._build_loggers()

    # ------------------------------------------------------------------------------ building

    def _build_data(self) -> None:
        """Tokenizer, tokenized examples, the batch plan and the step counts; logs what the run will do."""
        job = self.job
        job.model.path = resolve_model_path(job.model.path)
        tokenizer = AutoTokenizer.from_pretrained(job.model.path)
        pad = tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else tokenizer.eos_token_id or 0
        self.data = build_dataset(tokenizer, read_records(job.data.dataset, job.data.split), job.data)
        self.plan = BatchPlan(
            num_examples=len(self.data.examples),
            global_batch_size=job.train.global_batch_size,
            micro_batch_size=job.train.micro_batch_size,
            world_size=self.world,
            seed=job.train.seed,
        )
        self.total_steps = self.plan.schedule_steps(job.train.epochs)
        self.stop_step = self.plan.stop_step(job.train.epochs, job.train.max_steps)
        self.loss_impl = resolve_loss_impl(job.train.loss_impl, self.device.type)
        if self.rank != 0:
            return
        logger.info("data: %s (fingerprint %s)", self.data.summary(), self.data.fingerprint)
        if self.data.truncated:
            limit = job.data.block_size
            logger.warning("%d examples truncated to %d tokens; --drop-long drops them", self.data.truncated, limit)
        for level, line in self.plan.describe(job.train.epochs, job.train.max_steps):
            logger.log(logging.WARNING if level == "warning" else logging.INFO, line)
        chunk = f" ({job.train.loss_chunk_tokens} tokens per chunk)" if self.loss_impl == "chunked" else ""
        logger.info("loss: %s%s", self.loss_impl, chunk)

    def _build_state(self, mesh: DeviceMesh) -> TrainState:
        """The sharded model with its base weights, AdamW and the warmup-cosine schedule."""
        job = self.job
        model = build_meta_model(job.model.path, job.model.attn_implementation)
        self.model_config = model.config
        embeddings = model.get_input_embeddings().weight.numel()
        self.matmul_params = sum(p.numel() for p in model.parameters()) - embeddings
        if getattr(self.model_config, "tie_word_embeddings", False):
            self.matmul_params += embeddings
        parallelize(
            model,
            mesh,
            param_dtype=torch.bfloat16 if self.bf16 else None,
            activation_checkpointing=job.train.activation_checkpointing,
            cpu_offload=job.train.cpu_offload,
        )
        install_loss_forward(model, self.loss_impl, job.train.loss_chunk_tokens)
        materialize(model, torch.device("cpu") if job.train.cpu_offload else self.device)
        load_base_weights(model, job.model.path)
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=job.optim.lr,
            betas=(job.optim.beta1, job.optim.beta2),
            weight_decay=job.optim.weight_decay,
        )
        schedule = cosine_with_warmup(self.total_steps, job.optim.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return TrainState(model=model, optimizer=optimizer, scheduler=scheduler)

    def _resume(self) -> None:
        """With --resume, restore the latest checkpoint, refusing one trained on other data."""
        latest = self.checkpointer.latest() if self.job.checkpoint.resume else None
        if latest is None:
            if self.job.checkpoint.resume and self.rank == 0:
                logger.info("no checkpoint in %s; starting from the base model", self.checkpointer.root)
            return
        saved = self.checkpointer.load(latest, self.state)
        if saved["data_fingerprint"] != self.data.fingerprint:
            raise ConfigError(
                f"refusing to resume from {latest}: it was trained on different data (the tokenized examples' "
                f"fingerprint is {saved['data_fingerprint']}, this data's is {self.data.fingerprint})"
            )
        if self.rank == 0:
            start = self.state.step
            logger.info("resumed from %s at step %d", latest, start)
            if start >= self.stop_step:
                logger.info(
                    "the checkpoint is at step %d, the run's end is step %d: nothing to train", start, self.stop_step
                )

    def _build_loggers(self) -> None:
        """metrics.jsonl, TensorBoard/wandb and the progress bar: rank 0 writes, the others only step."""
        job, start = self.job, self.state.step
        self.metrics = MetricsLog(self.out / "metrics.jsonl", resume_step=start) if self.rank == 0 else None
        self.scalars = (
            ScalarLoggers(
                self.out,
                tensorboard=job.train.tensorboard,
                wandb=job.train.wandb,
                wandb_project=job.train.wandb_project,
                job=self.given.to_dict(),
                resume_step=start,
            )
            if self.rank == 0
            else None
        )
        self.peak = peak_flops(self.device) if self.bf16 else None
        disable = self.rank != 0 or not job.train.progress
        self.bar = tqdm(total=self.stop_step, initial=start, disable=disable, dynamic_ncols=True)

    # ------------------------------------------------------------------------------ the loop

    def train(self) -> None:
        """Step to the run's end, then wait for the last checkpoint to be complete."""
        while self.state.step < self.stop_step:
            row = self.train_step()
            self.log_step(row)
            self.checkpoint_step()
            for hook in self.hooks:
                hook(self)
        self.wait_for_checkpoint()
        self.bar.close()
        if self.scalars is not None:
            self.scalars.close()

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over this rank's micro-batches; returns the step's metrics row."""
        started = time.perf_counter()
        state, step = self.state, self.state.step + 1
        batches = list(micro_batches(self.data, self.plan, step - 1, self.rank, self.pad_id))
        label_tokens, input_tokens = self._global_token_counts(batches)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        for batch in batches:
            loss_sum += self._forward_backward(batch, label_tokens)
        grad_norm, lr = self._optimizer_step()
        state.step = step
        dist.all_reduce(loss_sum)
        memory = torch.tensor([peak_memory_gb(self.device)], dtype=torch.float64, device=self.device)
        dist.all_reduce(memory, op=dist.ReduceOp.MAX)
        loss = loss_sum.item() / label_tokens
        elapsed = time.perf_counter() - started
        return self._metrics_row(loss, lr, float(grad_norm), label_tokens, input_tokens, elapsed, memory.item())

    def _global_token_counts(self, batches: list[Batch]) -> tuple[float, float]:
        """(label tokens, input tokens) of the global batch: the loss's denominator and the throughput's numerator."""
        counts = torch.tensor(
            [sum(b.num_label_tokens for b in batches), sum(b.input_ids.numel() for b in batches)],
            dtype=torch.float64,
            device=self.device,
        )
        dist.all_reduce(counts)
        label_tokens, input_tokens = counts.tolist()
        return label_tokens, input_tokens

    def _forward_backward(self, batch: Batch, label_tokens: float) -> torch.Tensor:
        """Accumulate one micro-batch's gradients; returns its summed loss, detached."""
        device = self.device
        mask = batch.attention_mask.to(device) if batch.attention_mask is not None else None
        loss = self.state.model(
            input_ids=batch.input_ids.to(device), labels=batch.labels.to(device), attention_mask=mask
        )
        # FSDP averages gradients over ranks; scale so the result is the global per-token mean.
        (loss * self.world / label_tokens).backward()
        return loss.detach()

    def _optimizer_step(self) -> tuple[torch.Tensor, float]:
        """Clip, then step AdamW and the schedule; returns (the norm before clipping, the lr this step used)."""
        state = self.state
        max_norm = self.job.optim.max_grad_norm if self.job.optim.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), max_norm)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP2: the global norm
            grad_norm = grad_norm.full_tensor()
        lr = state.scheduler.get_last_lr()[0]
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        return grad_norm, lr

    def _metrics_row(
        self,
        loss: float,
        lr: float,
        grad_norm: float,
        label_tokens: float,
        input_tokens: float,
        elapsed: float,
        memory: float,
    ) -> dict[str, Any]:
        """The metrics.jsonl row of the step just taken (keys in the order they are written)."""
        step = self.state.step
        row: dict[str, Any] = {
            "step": step,
            "epoch": (step - 1) / self.plan.steps_per_epoch,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "label_tokens": int(label_tokens),
            "tokens_per_s": input_tokens / elapsed,
            "step_time_s": elapsed,
            "peak_memory_gb": float(memory),
        }
        if self.peak:
            seq_len = input_tokens / max(1, self.plan.global_batch_size)
            flops = flops_per_token(self.model_config, self.matmul_params, seq_len) * input_tokens
            row["mfu"] = flops / elapsed / (self.peak * self.world)
        return row

    # ------------------------------------------------------------------------------ around a step

    def say(self, line: str, level: int = logging.INFO) -> None:
        """Log a line from rank 0, above the progress bar when there is one."""
        if self.rank != 0:
            return
        if self.bar.disable:
            logger.log(level, line)
        else:
            self.bar.write(line)

    def log_step(self, row: dict[str, Any]) -> None:
        """Rank 0: metrics.jsonl, TensorBoard/wandb, the progress bar, and every --log-every steps a line."""
        if self.rank != 0:
            return
        assert self.metrics is not None and self.scalars is not None
        self.metrics.write(row)
        self.scalars.write(row)
        step, loss, lr = row["step"], row["loss"], row["lr"]
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if step % self.job.train.log_every == 0 or step == self.stop_step:
            line = (
                f"step {step}/{self.stop_step} | loss {loss:.4f} | lr {lr:.3e}"
                f" | grad_norm {row['grad_norm']:.3f} | tokens/s {row['tokens_per_s']:.0f}"
                f" | peak memory {row['peak_memory_gb']:.2f} GB"
            )
            if "mfu" in row:
                line += f" | mfu {100 * row['mfu']:.1f}%"
            self.say(line)

    def checkpoint_step(self) -> None:
        """Finish a background save that is done, and start one every --checkpoint-every steps and at the end."""
        done = self.checkpointer.poll()
        if done is not None:
            self.say(f"checkpoint: {done}")
        step, every = self.state.step, self.job.checkpoint.checkpoint_every
        if every > 0 and (step % every == 0 or step == self.stop_step):
            path = self.checkpointer.save(self.state, self.checkpoint_meta())
            background = " (writing in the background)" if self.checkpointer.async_save else ""
            self.say(f"checkpoint: {path}{background}")

    def checkpoint_meta(self) -> dict[str, Any]:
        """What trainer.json holds besides step and schedule: the data and job it continues."""
        step, plan = self.state.step, self.plan
        return {
            "data_fingerprint": self.data.fingerprint,
            "epoch": (step - 1) // plan.steps_per_epoch,
            "examples_seen": plan.examples_seen(step),
            "steps_per_epoch": plan.steps_per_epoch,
            "total_steps": self.total_steps,
            "world_size": self.world,
            "base_model": self.job.model.path,
            "thinking_format": self.job.data.thinking_format,
            "job": self.given.to_dict(),
        }

    def wait_for_checkpoint(self) -> None:
        """Block until an in-flight checkpoint is complete on every rank (and say so)."""
        done = self.checkpointer.wait()
        if done is not None:
            self.say(f"checkpoint: {done}")

    # ------------------------------------------------------------------------------ the end

    def export(self) -> None:
        """Write the consolidated Hugging Face folder (all ranks take part)."""
        job = self.job
        export_dir = job.checkpoint.export_dir or str(self.out / "final")
        export_sharded(
            self.state.model,
            base=job.model.path,
            out=export_dir,
            thinking_format=job.data.thinking_format,
            dtype=job.checkpoint.export_dtype,
        )
        if self.rank == 0:
            logger.info("exported to %s (thinking format %s)", export_dir, job.data.thinking_format)
        dist.barrier()

    def close(self) -> None:
        dist.destroy_process_group()
