"""Chapter 1's exercises: masks.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import bool_mask, call


@exercise("01.causal_mask", "warm-up", "the causal (lower-triangular) mask")
def check_causal_mask(fn: Callable[[int], torch.Tensor]) -> None:
    """``fn(T)`` must equal ``masks.causal_mask(T)``."""
    from course_utils import masks

    for T in (1, 4, 7):
        out = bool_mask(call(fn, T), T, f"causal_mask({T})")
        ref = masks.causal_mask(T)
        if torch.equal(out, ref):
            continue
        if torch.equal(out, ref.T):
            raise Hint("the mask is transposed: row i is the query, column j the key, and token i sees j <= i.")
        if (out & ~ref).any():
            raise Hint("a token can see a later token (a True above the diagonal): that is peeking at the future.")
        if not out.diagonal().all():
            raise Hint("the diagonal is blocked: a token may attend to itself.")
        raise Hint("some earlier tokens (j < i) are blocked: a causal decoder sees all of its past.")


@exercise("01.sliding_window_mask", "core", "the sliding-window causal mask (Mistral)")
def check_sliding_window_mask(fn: Callable[[int, int], torch.Tensor]) -> None:
    """``fn(T, w)``: token i sees the last ``w`` tokens up to itself, ``i - w < j <= i`` (transformers' rule)."""
    from course_utils import masks

    for T, w in ((6, 1), (7, 3), (5, 5), (4, 9)):
        out = bool_mask(call(fn, T, w), T, f"sliding_window_mask({T}, {w})")
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        ref = masks.causal_mask(T) & (i - j < w)
        if torch.equal(out, ref):
            continue
        if (out & ~masks.causal_mask(T)).any():
            raise Hint(f"with T={T}, w={w} a token sees a later token: the window is on top of the causal mask.")
        if torch.equal(out, masks.causal_mask(T)):
            raise Hint(f"that is the plain causal mask: with w={w}, keys {w} or more positions back are blocked.")
        if out.sum(1).max() == w + 1:
            raise Hint(f"the window is one too wide: with w={w} each token sees {w} tokens, itself included.")
        if w >= T:
            raise Hint(f"a window at least as long as the text (T={T}, w={w}) is just the causal mask.")
        raise Hint(f"wrong for T={T}, w={w}: token i should see exactly the tokens j with i - w < j <= i.")


@exercise("01.packed_mask", "stretch", "the packed (block-diagonal causal) mask")
def check_packed_mask(fn: Callable[[Sequence[int]], torch.Tensor]) -> None:
    """``fn(lengths)``: several sequences packed in one row; each is causal and none sees another."""
    from course_utils import masks

    for lengths in ([3], [3, 2], [2, 4, 1]):
        T = sum(lengths)
        out = bool_mask(call(fn, list(lengths)), T, f"packed_mask({lengths})")
        ref = torch.block_diag(*[masks.causal_mask(n) for n in lengths])
        if torch.equal(out, ref):
            continue
        if len(lengths) == 1:
            raise Hint("with a single sequence, the packed mask is the plain causal mask.")
        if (out & ~ref & masks.causal_mask(T)).any():
            raise Hint(f"for lengths {lengths} a token sees tokens of an earlier sequence: packed sequences must "
                       "not attend across their boundary.")
        raise Hint(f"wrong for lengths {lengths}: inside each sequence the mask should be causal.")
