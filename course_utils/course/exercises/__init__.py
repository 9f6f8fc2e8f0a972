"""The exercises' checkers, one module per chapter (``ch01`` ... ``ch11``), imported when a chapter's exercise is
first checked (:func:`course_utils.course.checks.load_chapter`); below, the small helpers they share.

Adding an exercise to a chapter: in ``chNN.py`` write a checker with ``@exercise("NN.name", tier, title)`` that
raises :class:`~course_utils.course.checks.Hint` for each way an answer can be wrong, then the two tagged cells in
the lesson (see chapter 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from course_utils.course.checks import Hint


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    if not callable(fn):
        raise Hint(f"expected a function (or class), got {type(fn).__name__}.")
    out = fn(*args, **kwargs)
    if out is None:
        raise Hint("your function returned None: is the `return` missing?")
    return out


def tensor(out: Any, shape: Sequence[int] | None = None, what: str = "the result") -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise Hint(f"{what} should be a torch.Tensor, got {type(out).__name__}.")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise Hint(f"{what} has shape {tuple(out.shape)}; expected {tuple(shape)}.")
    return out


def bool_mask(out: Any, T: int, what: str) -> torch.Tensor:
    out = tensor(out, (T, T), what)
    if out.dtype != torch.bool:
        raise Hint(f"{what} has dtype {out.dtype}: return a boolean mask (True = may attend).")
    return out


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)
