"""Inference latency of one forward pass: the median of a few timed runs after a warm-up.

Used in chapter 4 to show that adapters (extra layers in series) add latency while a merged LoRA model
(the same matrices as the base) adds none.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from . import validate


@torch.no_grad()
def measure_latency(model: nn.Module, input_ids: torch.Tensor, repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds per ``model(input_ids=input_ids)`` under ``torch.no_grad()``.

    The warm-up runs are not timed (first calls pay for allocation and kernel selection); the median resists
    the odd slow run a mean would absorb. On CUDA the device is synchronised around each run, since kernels
    launch asynchronously and the clock would otherwise stop before the GPU is done.
    """
    validate.integer("repeats", repeats, "pass how many timed runs, e.g. repeats=10")
    validate.integer("warmup", warmup, "pass how many untimed runs first, e.g. warmup=2")
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a tensor, got {type(input_ids).__name__}: pass e.g. "
                        "tok(text, return_tensors='pt').input_ids.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}.")
    cuda = input_ids.is_cuda
    for _ in range(warmup):
        model(input_ids=input_ids)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(input_ids=input_ids)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def compare_latency(models: dict[str, nn.Module], input_ids: torch.Tensor, rounds: int = 5,
                    repeats: int = 5) -> dict[str, float]:
    """Seconds per forward of several models, measured fairly: the models take turns, ``rounds`` times.

    Timing one model after another lets a slow phase of the machine (another process, a CPU clock change) land on
    one of them; interleaving spreads it over all. Each model's time is the fastest of its per-round medians,
    the best estimate of what its computation costs.
    """
    if not isinstance(models, dict):
        raise TypeError(f"models must be a dict {{name: model}}, got {type(models).__name__}: pass e.g. "
                        "{'base': model, 'merged': merged}.")
    if not models:
        raise ValueError("compare_latency needs at least one model, e.g. {'base': model}.")
    validate.positive_int("rounds", rounds, "pass e.g. rounds=5")
    validate.positive_int("repeats", repeats, "pass e.g. repeats=5")
    best = {name: float("inf") for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            best[name] = min(best[name], measure_latency(model, input_ids, repeats=repeats, warmup=1))
    return best
