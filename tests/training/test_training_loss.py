"""The chunked loss: the same value and gradients as the full-logits loss, at a fraction of the peak memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.loss import IGNORE_INDEX, chunked_cross_entropy
from training.loss_memory import measure


def _inputs(tokens: int, hidden: int, vocab: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(tokens, hidden, generator=gen, dtype=torch.float32).to(dtype).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=gen) * hidden**-0.5).to(dtype).requires_grad_()
    labels = torch.randint(0, vocab, (tokens,), generator=gen)
    labels[: tokens // 3] = IGNORE_INDEX  # a prompt
    labels[tokens // 2 : tokens // 2 + 5] = IGNORE_INDEX  # and a hole (padding)
    return h, w, labels


def _reference(h: torch.Tensor, w: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Independent of training.loss: the textbook formula, logits whole, in float64."""
    logits = h.double() @ w.double().t()
    keep = labels != IGNORE_INDEX
    return -(logits.log_softmax(-1)[keep].gather(1, labels[keep, None])).sum()


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_loss_and_gradients_equal_the_full_logits(chunk: int) -> None:
    h, w, labels = _inputs(90, 16, 50, torch.float32)
    loss = chunked_cross_entropy(h, w, labels, chunk)
    loss.backward()
    got = (loss.detach(), h.grad.clone(), w.grad.clone())
    h.grad, w.grad = None, None
    ref = _reference(h, w, labels)
    ref.backward()
    torch.testing.assert_close(got[0].double(), ref.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got[1], h.grad.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[2], w.grad.float(), rtol=1e-4, atol=1e-5)


def test_chunked_loss_in_bf16_matches_cross_entropy_of_bf16_logits() -> None:
    """Mixed precision: bf16 logits per chunk, fp32 cross-entropy, as the full path did."""
    h, w, labels = _inputs(64, 32, 40, torch.bfloat16, seed=1)
    got = chunked_cross_entropy(h, w, labels, 10)
    want = F.cross_entropy((h @ w.t()).float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


def test_a_batch_without_labels_still_reaches_every_parameter() -> None:
    """A padding micro-batch gives loss 0 with zero gradients, so FSDP's collectives still run on that rank."""
    h, w, labels = _inputs(20, 8, 30, torch.float32)
    labels[:] = IGNORE_INDEX
    loss = chunked_cross_entropy(h, w, labels, 4)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert h.grad is not None and w.grad is not None
    assert float(h.grad.abs().max()) == 0.0 and float(w.grad.abs().max()) == 0.0


def test_chunked_loss_needs_far_less_peak_memory() -> None:
    """Measured: peak resident memory of one forward + backward, each in a fresh process."""
    tokens, hidden, vocab, chunk = 1024, 64, 32768, 128
    full = measure("full", tokens, hidden, vocab, chunk)
    chunked = measure("chunked", tokens, hidden, vocab, chunk)
    logits_bytes = tokens * vocab * 4
    assert full["loss"] == pytest.approx(chunked["loss"], rel=1e-5)
    # The full path holds the logits, their log-softmax and their gradient: well over one logits tensor.
    assert full["peak_rise_bytes"] > 1.5 * logits_bytes, full
    # The chunked path holds a few chunks' worth (chunk / tokens = 1/8 of the logits each).
    assert chunked["peak_rise_bytes"] < 0.75 * logits_bytes, chunked
    assert chunked["peak_rise_bytes"] < full["peak_rise_bytes"] / 3
