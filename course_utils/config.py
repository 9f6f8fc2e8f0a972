"""Course profiles: one small frozen dataclass of sizes per scale.

Chapters read their sizes from ``profile()`` instead of writing literals, so the same notebook runs in CI
(``smoke``), on a laptop (``cpu``) and on a Colab / workstation GPU (``gpu``)::

    from course_utils.config import profile
    P = profile()            # COURSE_PROFILE=smoke|cpu|gpu, default: gpu if CUDA else cpu
    P.train_steps, P.batch_size

The numbers are sized from measurements of SmolLM2-135M on a 2-core CPU: about 15 generated tokens/s and
about 3 s per LoRA step at batch 8 x 64 tokens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TypeVar

T = TypeVar("T")

PROFILE_ENV = "COURSE_PROFILE"
PROFILE_NAMES = ("smoke", "cpu", "gpu")

#: The offline default model (see ``course_utils.models``).
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Profile:
    """Sizes a chapter reads instead of literals.

    Attributes:
        name: ``smoke`` (CI, seconds), ``cpu`` (laptop, minutes) or ``gpu`` (Colab / workstation).
        model_name: the real model chapters load (``course_utils.models.load_model`` name).
        n_examples: examples a chapter scores or trains on.
        eval_examples: held-out examples for evaluation.
        train_steps: optimiser steps of a fine-tuning run.
        batch_size: examples per step.
        seq_len: tokens per training example (truncation length).
        max_new_tokens: tokens generated per prompt in demos.
        tiny_model: shape-only chapters may use a random-init model (``models.tiny_llama``) instead.
        n_seeds: repetitions of a random experiment (error bars over seeds).
    """

    name: str
    model_name: str = DEFAULT_MODEL
    n_examples: int = 16
    eval_examples: int = 16
    train_steps: int = 4
    batch_size: int = 4
    seq_len: int = 64
    max_new_tokens: int = 24
    tiny_model: bool = True
    n_seeds: int = 2

    def to_dict(self) -> dict:
        """The profile as a plain dict (for printing as a table)."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    # CI / nbmake: every notebook under ~3 minutes on 2 cores; the real model only where behaviour matters.
    "smoke": Profile("smoke", n_examples=16, eval_examples=16, train_steps=4, batch_size=4, seq_len=64,
                     max_new_tokens=24, tiny_model=True, n_seeds=2),
    # A laptop learner: minutes per chapter, real results.
    "cpu": Profile("cpu", n_examples=200, eval_examples=100, train_steps=60, batch_size=8, seq_len=128,
                   max_new_tokens=64, tiny_model=False, n_seeds=5),
    # Colab T4 / workstation: larger models when online, more data and steps.
    "gpu": Profile("gpu", n_examples=2000, eval_examples=500, train_steps=600, batch_size=16, seq_len=256,
                   max_new_tokens=128, tiny_model=False, n_seeds=10),
}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def profile_name(name: str | None = None) -> str:
    """Resolve a profile name: the argument, else ``$COURSE_PROFILE``, else ``gpu`` if CUDA else ``cpu``.

    Raises:
        ValueError: for a name that is not ``smoke``, ``cpu``, ``gpu`` or ``auto``.
    """
    raw = name if name is not None else os.environ.get(PROFILE_ENV, "auto")
    key = raw.strip().lower()
    if key in ("", "auto"):
        return "gpu" if _cuda_available() else "cpu"
    if key not in PROFILES:
        source = "argument" if name is not None else f"${PROFILE_ENV}"
        raise ValueError(
            f"Unknown course profile {raw!r} (from {source}). Choose one of {', '.join(PROFILE_NAMES)} "
            f"or 'auto', e.g. `export {PROFILE_ENV}=smoke`."
        )
    return key


def profile(name: str | None = None) -> Profile:
    """The active :class:`Profile` (see :func:`profile_name` for how it is chosen)."""
    return PROFILES[profile_name(name)]


def sizes_for_profile(table: Mapping[str, T], profile_name: str) -> T:
    """A chapter's own sizes for a profile, from its ``{"smoke": ..., "cpu": ..., "gpu": ...}`` table.

    Raises:
        ValueError: an unknown profile, naming the known ones.
    """
    if profile_name not in table:
        raise ValueError(f"Unknown profile {profile_name!r}; choose one of {sorted(table)}.")
    return table[profile_name]
