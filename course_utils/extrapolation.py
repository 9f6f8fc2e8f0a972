"""Length extrapolation and context extension, measured on TinyGPTs trained from scratch (chapter 6).

Two experiments:

1. **Extrapolation** (after Press et al. 2022, Fig. 1): train one TinyGPT per position encoding at context L on
   the same bytes, then measure perplexity on windows of 1, 2, 4, 8 x L of the same held-out text.
2. **Context extension** (after Chen et al. 2023): take the RoPE model to 4 x L by extrapolation (positions as
   they are), position interpolation (positions / 4) or NTK-aware scaling (a larger base); measure each before
   and during a short fine-tune at the longer length.

Sizes come from the course profile (``config.sizes("extrapolation")``): seconds in ``smoke``, minutes in ``cpu``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from course_utils import validate
from course_utils.positions import ntk_base
from course_utils.tinygpt import POSITIONS, GPTConfig, TinyGPT, perplexity_by_length, train_lm

EXTENSION_METHODS = ("extrapolation", "interpolation", "ntk")


@dataclass(frozen=True)
class ExtrapolationSetup:
    """Sizes of the chapter-6 experiments for one profile."""

    seq_len: int  # L, the training context
    n_layer: int
    n_head: int
    n_embd: int
    steps: int
    batch_size: int
    lr: float
    factors: tuple[int, ...] = (1, 2, 4, 8)
    extend_factor: int = 4
    extend_steps: int = 60
    extend_batch: int = 16
    extend_lr: float = 5e-4
    extend_eval_every: int = 10
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("seq_len", "n_layer", "n_head", "n_embd", "steps", "batch_size", "extend_factor", "extend_steps",
                     "extend_batch", "extend_eval_every"):
            validate.positive_int(name, getattr(self, name), f"pass a whole number >= 1 for {name}")
        validate.int_at_least("seq_len", self.seq_len, 2, "a window needs 2 tokens, e.g. seq_len=64")
        for name in ("lr", "extend_lr"):
            validate.positive_float(name, getattr(self, name), f"pass a learning rate, e.g. {name}=1e-3")
        if isinstance(self.factors, (int, str)) or not self.factors:
            raise ValueError(f"factors must be a non-empty tuple of whole numbers, got {self.factors!r}: "
                             "pass e.g. factors=(1, 2, 4, 8).")
        for f in self.factors:
            validate.positive_int("each factor", f, "pass e.g. factors=(1, 2, 4, 8)")

    def config(self, position: str) -> GPTConfig:
        """The :class:`GPTConfig` of one variant."""
        return GPTConfig(block_size=self.seq_len, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         position=position, **self.model_kwargs)

    @property
    def lengths(self) -> list[int]:
        """The evaluation lengths, ``factor * L``."""
        return [f * self.seq_len for f in self.factors]


def train_variants(setup: ExtrapolationSetup, train_ids: torch.Tensor, positions=POSITIONS, *, seed: int = 0,
                   device: str | torch.device = "cpu", progress: bool = True) -> dict[str, tuple[TinyGPT, object]]:
    """One TinyGPT per position encoding, same seed, data and steps; returns ``{position: (model, result)}``."""
    validate.str_list("positions", positions, f"pass position encodings from {POSITIONS}, e.g. ['rope', 'alibi']")
    for pos in positions:
        validate.one_of("position encoding", pos, POSITIONS)
    out = {}
    for pos in positions:
        model = TinyGPT(setup.config(pos), seed=seed).to(device)
        result = train_lm(model, train_ids, seq_len=setup.seq_len, steps=setup.steps, batch_size=setup.batch_size,
                          lr=setup.lr, seed=seed, progress=progress, desc=f"position encoding: {pos}")
        out[pos] = (model, result)
    return out


def length_table(models: dict[str, TinyGPT], val_ids: torch.Tensor, setup: ExtrapolationSetup,
                 n_tokens: int | None = None) -> dict[str, dict[int, float]]:
    """Perplexity of every model at every evaluation length, all on the same held-out tokens."""
    return {name: perplexity_by_length(m, val_ids, setup.lengths, n_tokens) for name, m in models.items()}


def _check_table(table: dict[str, dict[int, float]], seq_len: int) -> None:
    if not isinstance(table, dict) or not table or not all(isinstance(r, dict) and r for r in table.values()):
        raise ValueError(f"table must be a non-empty {{encoding: {{length: perplexity}}}} dict, got {table!r}: "
                         "pass the result of length_table(...).")
    validate.positive_int("seq_len", seq_len, "pass the training length L, e.g. setup.seq_len")


def format_length_table(table: dict[str, dict[int, float]], seq_len: int) -> str:
    """The table as aligned text: one row per encoding, one column per length (``n/a`` = cannot run)."""
    _check_table(table, seq_len)
    lengths = sorted(next(iter(table.values())))
    head = f"{'position':12}" + "".join(f"{f'{n // seq_len}x L={n}':>14}" for n in lengths)
    rows = [head]
    for name, row in table.items():
        cells = "".join(f"{'n/a' if v != v else f'{v:.2f}':>14}" for v in (row[n] for n in lengths))
        rows.append(f"{name:12}{cells}")
    return "\n".join(rows)


def plot_length_table(table: dict[str, dict[int, float]], seq_len: int, ax=None):
    """Perplexity vs evaluation length (log-scaled), one line per encoding, the training length marked."""
    import matplotlib.pyplot as plt

    _check_table(table, seq_len)
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for name, row in table.items():
        xs = [n for n in sorted(row) if row[n] == row[n]]
        ax.plot(xs, [row[n] for n in xs], "o-", label=name)
    ax.axvline(seq_len, color="grey", ls="--", lw=1)
    ax.text(seq_len, ax.get_ylim()[1], " trained at L", va="top", color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("evaluation length (tokens)")
    ax.set_ylabel("perplexity (lower is better)")
    ax.set_title("Length extrapolation: trained at L, evaluated longer")
    ax.legend()
    return ax


def extended(model: TinyGPT, method: str, factor: float) -> TinyGPT:
    """A copy of a RoPE TinyGPT prepared to read ``factor`` x its training length by ``method``.

    ``extrapolation`` keeps RoPE as trained; ``interpolation`` divides positions by ``factor`` (Chen et al.);
    ``ntk`` raises the base to ``ntk_base(base, factor, head_dim)`` (bloc97's NTK-aware scaling).
    """
    if model.config.position != "rope":
        raise ValueError(f"Context extension here rescales RoPE; this model uses {model.config.position!r}.")
    if method not in EXTENSION_METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {EXTENSION_METHODS}.")
    factor = validate.float_at_least("factor", factor, 1, "factor is the extension ratio L'/L, e.g. factor=4")
    m = copy.deepcopy(model)  # the attention layers share m.config, so changing it changes them all
    head_dim = m.config.n_embd // m.config.n_head
    if method == "interpolation":
        m.set_rope(scale=factor)
    elif method == "ntk":
        m.set_rope(base=ntk_base(m.config.rope_base, factor, head_dim))
    m.config.block_size = int(model.config.block_size * factor)
    return m


def extension_experiment(model: TinyGPT, train_ids: torch.Tensor, val_ids: torch.Tensor,
                         setup: ExtrapolationSetup, methods=EXTENSION_METHODS, *, seed: int = 0,
                         progress: bool = True) -> dict[str, list[tuple[int, float]]]:
    """Perplexity at ``extend_factor`` x L of each method, at step 0 and during a short fine-tune at that length.

    Returns ``{method: [(step, perplexity), ...]}``; every method fine-tunes from the same model on the same
    windows. Also returns the original model's in-window perplexity under ``"trained at L"`` as a reference.
    """
    from course_utils import sft
    from course_utils.tinygpt import lm_examples

    validate.str_list("methods", methods, f"pass methods from {EXTENSION_METHODS}, e.g. ['ntk']")
    for method in methods:
        validate.one_of("method", method, EXTENSION_METHODS)
    long_len = setup.extend_factor * setup.seq_len
    out = {"trained at L": [(0, perplexity_by_length(model, val_ids, [setup.seq_len])[setup.seq_len])]}
    data = lm_examples(train_ids, long_len, setup.extend_steps * setup.extend_batch, seed=seed + 1)
    for method in methods:
        m = extended(model, method, setup.extend_factor)
        curve = [(0, perplexity_by_length(m, val_ids, [long_len])[long_len])]

        def record(step: int, _loss: float, m=m, curve=curve) -> None:
            if step % setup.extend_eval_every == 0:
                curve.append((step, perplexity_by_length(m, val_ids, [long_len])[long_len]))
                m.train()

        cfg = sft.TrainConfig(steps=setup.extend_steps, batch_size=setup.extend_batch, lr=setup.extend_lr,
                              warmup_steps=0, schedule="constant", seed=seed, plot=None, progress=progress)
        if progress:
            print(f"extending by {method}")
        sft.train(m, data, cfg, pad_id=0, on_step=record)
        out[method] = curve
    return out


def plot_extension(curves: dict[str, list[tuple[int, float]]], setup: ExtrapolationSetup, ax=None):
    """Perplexity at the extended length over fine-tuning steps, one line per method."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for name, curve in curves.items():
        if name == "trained at L":
            ax.axhline(curve[0][1], color="grey", ls="--", lw=1, label=f"original model at L={setup.seq_len}")
            continue
        ax.plot(*zip(*curve), "o-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel(f"fine-tuning steps at {setup.extend_factor}x L = {setup.extend_factor * setup.seq_len}")
    ax.set_ylabel("perplexity at the extended length")
    ax.set_title("Extending a RoPE model's context")
    ax.legend()
    return ax
