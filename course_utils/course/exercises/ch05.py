"""Chapter 5's exercises: fine-tuning memory and scale.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call


@exercise("05.adam_bytes", "warm-up", "memory of full fine-tuning with mixed-precision AdamW")
def check_adam_bytes(fn: Callable[[int], float]) -> None:
    """``fn(n_params)``: bytes of weights, gradients, master copy and Adam states (``memory.bytes_per_param``)."""
    from course_utils.memory import bytes_per_param

    per = sum(bytes_per_param().values())
    for n in (1, 135_000_000, 7_000_000_000):
        out = call(fn, n)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number of bytes, got {type(out).__name__}.")
        if math.isclose(out, n * per, rel_tol=1e-9):
            continue
        if math.isclose(out, n * per / 2**30, rel_tol=1e-9):
            raise Hint("that is GiB; return bytes.")
        got = out / n
        raise Hint(f"you count {got:g} bytes per parameter. Add up the 16-bit weights, their gradients, the fp32 "
                   "master copy and AdamW's two fp32 moments.")


@exercise("05.micro_batch_losses", "core", "gradient accumulation that gives the large batch's update")
def check_micro_batch_losses(fn: Callable[[Sequence[torch.Tensor]], list]) -> None:
    """``fn(token_losses)``: one loss per micro-batch, each its tokens' sum over the whole step's token count."""
    torch.manual_seed(0)
    micro = [torch.rand(n) for n in (3, 9, 4)]  # micro-batches with different numbers of target tokens
    out = call(fn, micro)
    if not isinstance(out, (list, tuple)) or len(out) != len(micro):
        raise Hint(f"return one loss per micro-batch: a list of {len(micro)} scalars.")
    vals = [float(v) for v in out]
    total = sum(int(t.numel()) for t in micro)
    want = [float(t.sum()) / total for t in micro]
    if all(math.isclose(v, w, rel_tol=1e-5) for v, w in zip(vals, want)):
        return
    if all(math.isclose(v, float(t.mean()) / len(micro), rel_tol=1e-5) for v, t in zip(vals, micro)):
        raise Hint("each micro-batch's mean divided by the number of micro-batches weighs a token of a short "
                   "micro-batch more than one of a long one: divide every token sum by the whole step's tokens.")
    if all(math.isclose(v, float(t.mean()), rel_tol=1e-5) for v, t in zip(vals, micro)):
        raise Hint("the sum of the micro-batch means is not the batch's mean: divide every micro-batch's token "
                   "sum by the number of target tokens of the whole step.")
    raise Hint(f"for token counts {[t.numel() for t in micro]} the losses should add up to the mean over all "
               f"{total} tokens ({sum(want):.4f}); yours add up to {sum(vals):.4f}.")


@exercise("05.zero_bytes", "stretch", "memory per GPU under ZeRO sharding")
def check_zero_bytes(fn: Callable[[int, int, int], float]) -> None:
    """``fn(n_params, n_gpus, stage)``: bytes per GPU of mixed-precision AdamW with ZeRO stage 0-3."""
    for n, gpus in ((1_000_000, 1), (7_000_000_000, 8), (1_000, 4)):
        want = {0: 16 * n, 1: 4 * n + 12 * n / gpus, 2: 2 * n + 14 * n / gpus, 3: 16 * n / gpus}
        for stage, w in want.items():
            out = call(fn, n, gpus, stage)
            if isinstance(out, bool) or not isinstance(out, (int, float)):
                raise Hint(f"return a number of bytes, got {type(out).__name__}.")
            if math.isclose(out, w, rel_tol=1e-9):
                continue
            shards = {1: "the 12 bytes of optimiser states", 2: "the optimiser states and the 2 bytes of gradients",
                      3: "everything: weights, gradients and optimiser states"}
            raise Hint(f"stage {stage} with {gpus} GPUs: expected {w:g} bytes for {n:,} parameters, got {out:g}. "
                       + (f"Stage {stage} shards {shards[stage]} over the GPUs; the rest is replicated."
                          if stage else "Stage 0 is plain data parallelism: 16 bytes per parameter on every GPU."))
