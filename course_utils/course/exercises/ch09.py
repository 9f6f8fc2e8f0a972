"""Chapter 9's exercises: alignment and decoding.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor


@exercise("09.shift_kind", "warm-up", "URIAL's token-shift classes")
def check_shift_kind(fn: Callable[[int], str]) -> None:
    """``fn(rank)`` must equal ``alignment.shift_kind(rank)`` for ranks 1..12."""
    from course_utils.alignment import shift_kind

    for rank in range(1, 13):
        out = call(fn, rank)
        ref = shift_kind(rank)
        if out == ref:
            continue
        if out not in ("unshifted", "marginal", "shifted"):
            raise Hint(f"return one of 'unshifted', 'marginal', 'shifted'; got {out!r} for rank {rank}.")
        if rank == 1:
            raise Hint("rank 1 means the base model's top token is the tuned model's choice: nothing shifted.")
        if rank in (2, 3):
            raise Hint(f"rank {rank}: the tuned token is among the base model's top 3 (but not its first): marginal.")
        raise Hint(f"rank {rank}: beyond the base model's top 3 the token is shifted.")


@exercise("09.pass_at_k", "core", "the unbiased pass@k estimator (Chen et al. 2021)")
def check_pass_at_k(fn: Callable[[int, int, int], float]) -> None:
    """``fn(n, c, k)`` must equal ``alignment.pass_at_k(n, c, k)``."""
    from course_utils.alignment import pass_at_k

    for n, c, k in ((10, 3, 1), (10, 3, 5), (10, 0, 4), (10, 8, 3), (10, 10, 10), (200, 13, 10), (20, 5, 20)):
        out = call(fn, n, c, k)
        ref = pass_at_k(n, c, k)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            out = float(out)
        if math.isclose(out, ref, abs_tol=1e-9):
            continue
        if math.isclose(out, 1 - (1 - c / n) ** k, abs_tol=1e-9):
            raise Hint(f"n={n}, c={c}, k={k}: 1 - (1 - c/n) ** k draws with replacement and is biased; pass@k "
                       "draws k of the n samples without replacement: use math.comb.")
        if k == 1:
            raise Hint("with k = 1, pass@1 is the share of correct samples, c / n.")
        if n - c < k:
            raise Hint(f"n={n}, c={c}, k={k}: fewer than k wrong samples, so every draw of k holds a correct one: 1.0.")
        raise Hint(f"n={n}, c={c}, k={k}: expected {ref:.4f}, got {out!r}: one minus the chance that all k drawn "
                   "samples are wrong.")


@exercise("09.repetition_penalty", "stretch", "the CTRL repetition penalty as a logits processor")
def check_repetition_penalty(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(input_ids, scores, penalty)`` must equal transformers' ``RepetitionPenaltyLogitsProcessor(penalty)``."""
    from transformers import RepetitionPenaltyLogitsProcessor

    g = torch.Generator().manual_seed(8)
    ids = torch.tensor([[1, 4, 4, 7, 2], [0, 3, 3, 3, 9]])
    scores = torch.randn(2, 10, generator=g) * 3
    scores[0, 4], scores[0, 7], scores[1, 3] = -2.0, 2.5, 1.5  # seen tokens with negative and positive logits
    for penalty in (1.5, 1.0, 0.8):
        ref = RepetitionPenaltyLogitsProcessor(penalty)(ids.clone(), scores.clone())
        out = tensor(call(fn, ids.clone(), scores.clone(), penalty), tuple(scores.shape), "the scores")
        if close(out, ref):
            continue
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, ids, True)
        if not close(out[~seen], scores[~seen]):
            raise Hint(f"penalty={penalty}: tokens that are not in input_ids must keep their scores.")
        if close(out, torch.where(seen, scores / penalty, scores)):
            raise Hint(f"penalty={penalty}: dividing a negative logit by the penalty makes it *more* likely; "
                       "divide positive logits, multiply negative ones.")
        if close(out, torch.where(seen, scores * penalty, scores)) and penalty != 1.0:
            raise Hint(f"penalty={penalty}: multiplying a positive logit by the penalty makes it more likely; "
                       "divide positive logits, multiply negative ones.")
        raise Hint(f"penalty={penalty}: each token seen in its row is penalised once, however often it occurs "
                   "(row 1 has token 3 three times); other rows are independent.")
