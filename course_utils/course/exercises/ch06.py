"""Chapter 6's exercises: positions.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor


@exercise("06.rotate_half", "warm-up", "rotate_half: [x1, x2] -> [-x2, x1]")
def check_rotate_half(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(x)`` must equal ``positions.rotate_half(x)`` on any leading shape."""
    from course_utils.positions import rotate_half

    x = torch.arange(1.0, 9.0)
    for inp in (x, torch.randn(2, 3, 8)):
        out = tensor(call(fn, inp.clone()), tuple(inp.shape), "rotate_half(x)")
        if close(out, rotate_half(inp)):
            continue
        x1, x2 = inp.chunk(2, dim=-1)
        if close(out, torch.cat((x2, -x1), -1)):
            raise Hint("the signs are swapped: the first half of the result is -x2.")
        inter = torch.stack((-inp[..., 1::2], inp[..., 0::2]), -1).flatten(-2)
        if close(out, inter):
            raise Hint("that pairs neighbours (2i, 2i+1), Meta's layout; transformers pairs dimension i with i + d/2: "
                       "split the last dimension into two halves.")
        raise Hint(f"rotate_half({x.tolist()}) should pair dimension i with i + d/2 and swap the halves with one "
                   "sign change; check the last dimension is the one you split.")


@exercise("06.apply_rope", "core", "RoPE from scratch")
def check_apply_rope(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(x, base)`` for ``x`` of shape ``[..., seq, d]`` at positions ``0..seq-1`` (``positions.apply_rope``)."""
    from course_utils.positions import apply_rope

    g = torch.Generator().manual_seed(0)
    for shape, base in (((5, 8), 10000.0), ((2, 3, 7, 16), 100.0)):
        x = torch.randn(*shape, generator=g)
        out = tensor(call(fn, x.clone(), base), shape, f"RoPE of a {shape} input")
        ref = apply_rope(x, base=base)
        if close(out, ref, atol=1e-4):
            continue
        if not close(out[..., 0, :], x[..., 0, :], atol=1e-4):
            raise Hint("position 0 has angle 0, so it must come out unchanged; check the positions start at 0.")
        if close(out, apply_rope(x, base=10000.0), atol=1e-4):
            raise Hint(f"use the `base` argument ({base:g} here) in the frequencies, not a fixed 10,000.")
        raise Hint("position m turns pair i by m * theta_i with theta_i = base ** (-2i / d), i = 0 .. d/2 - 1; "
                   "both halves use the same angles: x * cos + rotate_half(x) * sin.")


@exercise("06.alibi_slopes", "stretch", "ALiBi slopes for any number of heads")
def check_alibi_slopes(fn: Callable[[int], Any]) -> None:
    """``fn(num_heads)`` must equal ``positions.alibi_slopes`` (power of two or not)."""
    from course_utils.positions import alibi_slopes

    for n in (8, 1, 2, 16, 6, 12, 20):
        out = call(fn, n)
        try:
            got = torch.as_tensor(out, dtype=torch.float32).flatten()
        except (TypeError, ValueError, RuntimeError):
            raise Hint(f"return the slopes as a list or a tensor, got {type(out).__name__}.")
        if got.shape != (n,):
            raise Hint(f"{n} heads need {n} slopes, got {got.numel()}.")
        if close(got, alibi_slopes(n), atol=1e-6):
            continue
        if n & (n - 1) == 0:
            raise Hint(f"for {n} heads the slopes are 1/a, 1/a^2, ..., 1/a^{n} with a^{n} = 256 (8 heads: 1/2 .. "
                       "1/256).")
        raise Hint(f"{n} heads is not a power of two: take the slopes of the power of two just below, then every "
                   "other slope of twice that many heads until there are enough.")
