"""Reading a text longer than the context window: chunking and sliding windows (LLM Q&A §11).

A model with window W cannot read a long document at once. Two standard ways to still score (or process) it:

* **chunking**: cut it into independent pieces of W tokens. Cheap (each token read once), but the first tokens of
  every chunk are predicted with almost no context.
* **sliding window**: move a window of W tokens forward by ``stride`` tokens and score only the tokens new to
  each window, so every token (after the first window) has at least ``W - stride`` tokens of context. Smaller
  strides give more context and cost ``W / stride`` times more compute. ``stride = W`` is chunking.

This is the evaluation in Hugging Face's "Perplexity of fixed-length models" guide; Transformer-XL's segment
memory (Dai et al. 2019) is the trained version of the same idea: reuse the previous window's hidden states.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import validate
from .device import model_device


@dataclass(frozen=True)
class WindowedPerplexity:
    """What one windowed pass over a document measured."""

    window: int
    stride: int
    perplexity: float
    tokens_scored: int
    forward_passes: int
    tokens_read: int  # compute paid: sum of window lengths
    seconds: float

    @property
    def mean_context(self) -> float:
        """Read tokens per scored token: how many times each token was processed."""
        return self.tokens_read / max(self.tokens_scored, 1)


@torch.no_grad()
def sliding_window_perplexity(model, ids: torch.Tensor, window: int, stride: int | None = None, *,
                              progress: bool = False) -> WindowedPerplexity:
    """Perplexity of a long token sequence read through windows of ``window`` tokens, ``stride`` apart.

    Each token is scored at most once, in the first window that has it as a *new* token, with all the window's
    earlier tokens as its context. A token that opens a window has no context in it and is skipped, so
    chunking (``stride = window``) scores ``window - 1`` tokens per chunk, as the Hugging Face guide does.

    Args:
        model: any causal LM called as ``model(input_ids=...).logits`` (transformers models, TinyGPT).
        ids: the document, 1-D token ids.
        window: tokens per forward pass (at most the model's context window).
        stride: how far the window moves; default ``window`` (chunking). ``1 <= stride <= window``.

    Raises:
        ValueError: bad window / stride, or a document shorter than two tokens.
    """
    ids = torch.as_tensor(ids)
    if ids.dim() > 2 or (ids.dim() == 2 and len(ids) != 1):
        raise ValueError(f"ids must be one document, 1-D (or [1, T]), got shape {tuple(ids.shape)}: score each row "
                         "of a batch separately.")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}: pass tok(text).input_ids.")
    ids = ids.flatten()
    validate.integer("window", window, "pass the window in tokens, e.g. window=512")
    stride = window if stride is None else validate.integer("stride", stride, "pass e.g. stride=window // 2")
    if window < 2 or not 1 <= stride <= window:
        raise ValueError(f"Need window >= 2 and 1 <= stride <= window, got window={window}, stride={stride}.")
    if len(ids) < 2:
        raise ValueError("The document needs at least two tokens to score one.")
    dev = model_device(model)
    nll, scored, passes, read, prev_end = 0.0, 0, 0, 0, 1  # token 0 has nothing before it: never scored
    t0 = time.perf_counter()
    starts = range(0, len(ids) - 1, stride)
    for begin in tqdm(starts, desc=f"window {window} stride {stride}", disable=not progress):
        end = min(begin + window, len(ids))
        if end <= prev_end:
            break
        x = ids[begin:end].unsqueeze(0).to(dev)
        logits = model(input_ids=x).logits[0, :-1].float()
        losses = F.cross_entropy(logits, x[0, 1:], reduction="none")  # losses[t] scores token begin + t + 1
        new = losses[max(prev_end - begin - 1, 0):]  # only tokens no earlier window scored
        nll += float(new.sum())
        scored += new.numel()
        passes += 1
        read += end - begin
        prev_end = end
        if end == len(ids):
            break
    return WindowedPerplexity(window, stride, math.exp(nll / scored), scored, passes, read,
                              time.perf_counter() - t0)


def chunked_perplexity(model, ids: torch.Tensor, window: int) -> WindowedPerplexity:
    """Perplexity with independent chunks of ``window`` tokens (a sliding window with ``stride = window``)."""
    return sliding_window_perplexity(model, ids, window, window)


def stride_sweep(model, ids: torch.Tensor, window: int, strides: list[int],
                 progress: bool = True) -> list[WindowedPerplexity]:
    """:func:`sliding_window_perplexity` for several strides: the context-vs-compute trade-off."""
    if isinstance(strides, (int, str)) or not strides:
        raise ValueError(f"strides must be a non-empty list of strides, got {strides!r}: pass e.g. [64, 128, 256].")
    return [sliding_window_perplexity(model, ids, window, s) for s in tqdm(strides, desc="strides",
                                                                              disable=not progress)]


def plot_stride_sweep(results: list[WindowedPerplexity], ax=None):
    """Perplexity (left axis) and compute (right axis: tokens read per token scored) vs stride."""
    import matplotlib.pyplot as plt

    validate.non_empty("results", results, "pass the list that stride_sweep returns")
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    strides = [r.stride for r in results]
    ax.plot(strides, [r.perplexity for r in results], "o-", color="C0")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"stride (window = {results[0].window} tokens; stride = window is chunking)")
    ax.set_ylabel("perplexity", color="C0")
    twin = ax.twinx()
    twin.plot(strides, [r.mean_context for r in results], "s--", color="C1")
    twin.set_ylabel("compute: tokens read per token scored", color="C1")
    ax.set_title("Sliding window: more overlap = more context = more compute")
    return ax
