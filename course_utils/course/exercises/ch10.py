"""Chapter 10's exercises: knowledge and hallucination.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call


@exercise("10.effective_data", "warm-up", "what repeated data is worth (Muennighoff et al. 2023)")
def check_effective_data(fn: Callable[[float, float], float]) -> None:
    """``fn(U, E)`` must equal ``data_scaling.effective_data(U, E)``: ``U + U R* (1 - exp(-(E - 1) / R*))``."""
    from course_utils.data_scaling import R_STAR, effective_data

    for u, e in ((1000.0, 1), (1000.0, 2), (1000.0, 4), (5e9, 16), (1000.0, 100)):
        out = call(fn, u, e)
        ref = effective_data(u, e)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number (unique-token equivalents), got {type(out).__name__}.")
        if math.isclose(out, ref, rel_tol=1e-9):
            continue
        if math.isclose(out, u * R_STAR * (1 - math.exp(-(e - 1) / R_STAR)), rel_tol=1e-9):
            raise Hint("you return only the repeated part's worth: add the first epoch, U itself.")
        if math.isclose(out, u + u * R_STAR * (1 - math.exp(-e / R_STAR)), rel_tol=1e-9):
            raise Hint("the exponent counts the *repetitions* after the first epoch: R = E - 1, not E.")
        if math.isclose(out, u * e, rel_tol=1e-9):
            raise Hint(f"U x E counts every repeated token as fresh; the paper's point is that repeats are worth "
                       f"less and less (R* = {R_STAR}).")
        if e == 1:
            raise Hint("one epoch is the unique data itself: effective_data(U, 1) = U.")
        raise Hint(f"U={u:g}, E={e}: expected {ref:g}, got {out!r}.")


@exercise("10.slick_category", "core", "the SliCK category of a fact")
def check_slick_category(fn: Callable[[float, float], str]) -> None:
    """``fn(p_greedy, p_sample)`` must equal ``slick.categorize``."""
    from course_utils.slick import CATEGORIES, categorize

    cases = ((1.0, 1.0), (1.0, 0.2), (2 / 3, 0.5), (1 / 3, 0.0), (0.0, 0.1), (0.0, 1 / 48), (0.0, 0.0))
    for pg, ps in cases:
        out = call(fn, pg, ps)
        if out not in CATEGORIES:
            raise Hint(f"return one of {CATEGORIES}, got {out!r}.")
        ref = categorize(pg, ps)
        if out == ref:
            continue
        if ref == "MaybeKnown":
            raise Hint(f"P(greedy right) = {pg:.2f}: right under some exemplar sets but not all is MaybeKnown, "
                       "whatever the samples do.")
        if ref == "HighlyKnown":
            raise Hint("greedy right under every exemplar set (P = 1) is HighlyKnown.")
        if ref == "WeaklyKnown":
            raise Hint(f"greedy never right, but {ps:.3f} of the samples are: one right sample is enough for "
                       "WeaklyKnown.")
        raise Hint("never right, greedy or sampled, is Unknown.")


@exercise("10.sample_probability", "stretch", "the probability that a sample is exactly the gold answer")
def check_sample_probability(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], Any]) -> None:
    """``fn(logits, answer, stop, T)`` must equal ``slick.sample_probability`` (section 3's scoring shortcut)."""
    from course_utils.slick import sample_probability

    g = torch.Generator().manual_seed(9)
    logits = torch.randn(4, 12, generator=g) * 2  # 3 answer tokens + the position after them
    answer = torch.tensor([3, 7, 1])
    stop = torch.zeros(12, dtype=torch.bool)
    stop[[0, 11]] = True
    for t in (1.0, 0.5, 2.0):
        out = call(fn, logits.clone(), answer, stop, t)
        out = float(out) if isinstance(out, (torch.Tensor, int, float)) else out
        if not isinstance(out, float):
            raise Hint(f"return a probability (a float or a 0-d tensor), got {type(out).__name__}.")
        ref = float(sample_probability(logits, answer, stop, t))
        if math.isclose(out, ref, rel_tol=1e-4, abs_tol=1e-12):
            continue
        p = torch.softmax(logits / t, dim=-1)
        tokens = float(p[torch.arange(3), answer].prod())
        if math.isclose(out, tokens, rel_tol=1e-4):
            raise Hint("the sample must also *stop* after the answer: multiply by the probability of a stop token "
                       "at the last position (the sum over the stop mask).")
        plain = torch.softmax(logits, dim=-1)
        if t != 1.0 and math.isclose(out, float(plain[torch.arange(3), answer].prod() * plain[3][stop].sum()),
                                     rel_tol=1e-4):
            raise Hint(f"T = {t}: divide the logits by the temperature before the softmax.")
        if not 0 <= out <= 1:
            raise Hint(f"a probability lies in [0, 1]; got {out:g}: softmax (not log_softmax), or exp the sum of logs.")
        raise Hint(f"T = {t}: expected {ref:.3g}, got {out:.3g}: the product over answer positions j of "
                   "p_T(answer_j), times p_T(stop) after the last one.")
