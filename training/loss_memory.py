"""Measure the peak host memory of one loss forward + backward, full logits against chunked.

    python -m training.loss_memory --tokens 2048 --hidden 256 --vocab 152064 --chunk-tokens 256

Each variant runs in a fresh process and reports how far its peak resident set size rose above
the size it had once the inputs existed, so the numbers are what the loss itself needed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_PAGE = 4096


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _peak_rss_bytes() -> int:
    """VmHWM: this process image's high-water mark. (ru_maxrss is not: it keeps the peak of the
    parent process the child was forked from, across exec.)"""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def measure_one(impl: str, tokens: int, hidden: int, vocab: int, chunk_tokens: int, dtype: str) -> dict:
    """Run in this process: build inputs, then one forward + backward of the chosen loss."""
    import torch

    from training.loss import chunked_cross_entropy, full_cross_entropy

    torch.manual_seed(0)
    kind = getattr(torch, dtype)
    torch.set_num_threads(1)
    # Warm up on small inputs: the first call faults in kernel code pages, which would
    # otherwise count as the loss's memory.
    small_h = torch.randn(64, hidden, dtype=kind, requires_grad=True)
    small_w = torch.randn(256, hidden, dtype=kind, requires_grad=True)
    small_labels = torch.randint(0, 256, (64,))
    full_cross_entropy(small_h, small_w, small_labels).backward()
    chunked_cross_entropy(small_h, small_w, small_labels, 16).backward()
    h = torch.randn(tokens, hidden, dtype=kind).requires_grad_()
    w = (torch.randn(vocab, hidden, dtype=kind) * hidden**-0.5).requires_grad_()
    labels = torch.randint(0, vocab, (tokens,))
    h.grad = torch.zeros_like(h)  # gradients of the inputs are not the loss's own memory
    w.grad = torch.zeros_like(w)
    baseline = _rss_bytes()
    if impl == "full":
        loss = full_cross_entropy(h, w, labels)
    else:
        loss = chunked_cross_entropy(h, w, labels, chunk_tokens)
    loss.backward()
    peak = _peak_rss_bytes()
    return {"impl": impl, "loss": float(loss), "peak_rise_bytes": max(0, peak - baseline)}


def measure(impl: str, tokens: int, hidden: int, vocab: int, chunk_tokens: int, dtype: str = "float32") -> dict:
    """`measure_one` in a fresh interpreter, so earlier allocations do not hide the peak."""
    cmd = [sys.executable, "-m", "training.loss_memory", "--one", impl, "--tokens", str(tokens)]
    cmd += ["--hidden", str(hidden), "--vocab", str(vocab), "--chunk-tokens", str(chunk_tokens), "--dtype", dtype]
    # Every large block gets its own mapping and goes back to the system when freed, so the
    # resident set follows the live tensors instead of glibc's retained heap.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="training.loss_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=152064)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--one", choices=("full", "chunked"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = (args.tokens, args.hidden, args.vocab, args.chunk_tokens, args.dtype)
    if args.one:
        print(json.dumps(measure_one(args.one, *shape)))
        return 0
    logits_gb = args.tokens * args.vocab * torch_itemsize(args.dtype) / 1e9
    print(f"{args.tokens} tokens x {args.vocab} vocabulary ({args.dtype}): the logits alone are {logits_gb:.2f} GB")
    for impl in ("full", "chunked"):
        r = measure(impl, *shape)
        label = impl if impl == "full" else f"chunked ({args.chunk_tokens} tokens)"
        print(f"{label:<24} loss {r['loss']:.4f}  peak rise {r['peak_rise_bytes'] / 1e9:.3f} GB")
    return 0


def torch_itemsize(dtype: str) -> int:
    import torch

    return getattr(torch, dtype).itemsize


if __name__ == "__main__":
    raise SystemExit(main())
