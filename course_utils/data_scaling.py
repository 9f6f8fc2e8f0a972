"""Data-constrained scaling in miniature (after Muennighoff et al. 2023, "Scaling Data-Constrained Language Models").

With a fixed compute budget of ``D`` training tokens, is it better to read ``D`` unique tokens once or ``D / E``
unique tokens ``E`` times? The paper: up to about 4 epochs, repeated data is almost as good as unique data; beyond
that, the value of each extra repetition decays (around 16 epochs and more it is worth little).

Here: TinyGPTs (chapter 6), same seed, same number of steps and tokens, trained on ``D / E`` unique tokens of the
Python reference repeated exactly ``E`` times (the engine walks the windows epoch by epoch), E in 1, 2, 4, 8, 16;
validation loss on held-out text. The paper's fitted "effective data" formula is given for comparison:
``D' = U + U R* (1 - exp(-R / R*))`` with ``U`` the unique tokens, ``R = E - 1`` the repetitions and R* ≈ 15.4.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_utils.tinygpt import GPTConfig, TinyGPT, loss_by_position
from course_utils.validate import finite_float, positive_float, positive_int

R_STAR = 15.4  # Muennighoff et al.'s fitted half-life-like constant for repeated data (R*_D)


@dataclass(frozen=True)
class DataScalingSetup:
    """Sizes of the repetition experiment for one profile; ``budget_tokens`` is the same for every run."""

    seq_len: int
    n_layer: int
    n_head: int
    n_embd: int
    budget_tokens: int
    batch_size: int
    lr: float
    repetitions: tuple[int, ...] = (1, 2, 4, 8, 16)
    n_evals: int = 8  # validation points along each run
    val_windows: int = 64

    def __post_init__(self):
        for name in ("seq_len", "n_layer", "n_head", "n_embd", "budget_tokens", "batch_size", "n_evals",
                     "val_windows"):
            positive_int(name, getattr(self, name), "config.SIZES['data_scaling'] has working values")
        positive_float("lr", self.lr, "pass e.g. lr=2e-3")
        _check_repetitions(self.repetitions)
        if self.steps < 1:
            raise ValueError(f"budget_tokens={self.budget_tokens} is less than one batch ({self.batch_size} windows "
                             f"of {self.seq_len} tokens): raise budget_tokens to at least "
                             f"{self.batch_size * self.seq_len}.")

    def config(self) -> GPTConfig:
        """The :class:`GPTConfig` every run uses (RoPE, as chapter 6's best in-window model)."""
        return GPTConfig(block_size=self.seq_len, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         position="rope")

    @property
    def budget_windows(self) -> int:
        """Training windows of ``seq_len`` tokens in the budget."""
        return self.budget_tokens // self.seq_len

    @property
    def steps(self) -> int:
        """Optimiser steps of every run."""
        return self.budget_windows // self.batch_size


def _check_repetitions(repetitions: Sequence[int]) -> None:
    if isinstance(repetitions, (str, bytes)) or not isinstance(repetitions, Sequence):
        raise TypeError(f"repetitions must be a list of counts, got {repetitions!r}: pass e.g. (1, 2, 4, 8, 16).")
    if not repetitions:
        raise ValueError("Give at least one repetition count, e.g. (1, 2, 4, 8, 16).")
    # True is an int in Python, but not a number of epochs
    bad = [r for r in repetitions if isinstance(r, bool) or not isinstance(r, int) or r < 1]
    if bad:
        raise ValueError(f"Repetition counts must be integers >= 1 (1 = every token unique), got {bad}; zero "
                         "repetitions would mean no training data at all. Pass e.g. (1, 2, 4, 8, 16).")


def unique_windows(ids: torch.Tensor, seq_len: int, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct, non-overlapping windows of ``seq_len`` tokens from the stream, as engine examples.

    The windows are the first ``n`` of one seeded permutation of all windows, so a smaller set is always a subset
    of a larger one and every set samples the whole corpus (not just its first topics).

    Raises:
        ValueError: the stream holds fewer than ``n`` windows.
    """
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1:
        raise TypeError(f"ids must be a 1-D tensor of token ids, got {type(ids).__name__}"
                        f"{'' if not isinstance(ids, torch.Tensor) else f' of shape {tuple(ids.shape)}'}: pass "
                        "e.g. encode_bytes(load_corpus('train')).")
    positive_int("seq_len", seq_len, "pass e.g. seq_len=64")
    positive_int("n", n, "pass the number of windows wanted, e.g. n=16")
    fit = len(ids) // seq_len
    if n > fit:
        raise ValueError(f"The corpus holds {fit} windows of {seq_len} tokens; asked for {n}. Lower budget_tokens "
                         "(or the largest unique share), or use a longer corpus (load_corpus(path=...)).")
    order = torch.randperm(fit, generator=torch.Generator().manual_seed(seed))[:n].tolist()
    return [{"input_ids": ids[i * seq_len:(i + 1) * seq_len].tolist(),
             "labels": ids[i * seq_len:(i + 1) * seq_len].tolist()} for i in order]


def repeated_data(ids: torch.Tensor, setup: DataScalingSetup, repetitions: int, seed: int = 0) -> list[dict]:
    """The unique windows of one run: ``budget_windows / repetitions`` of them (each will be read ``repetitions``
    times in the budget).

    Raises:
        ValueError: a repetition count < 1, or one that does not divide the budget into whole windows.
    """
    _check_repetitions([repetitions])
    if setup.budget_windows % repetitions:
        raise ValueError(f"The budget of {setup.budget_windows} windows does not split into {repetitions} equal "
                         "epochs; use powers of two or a budget divisible by every repetition count.")
    return unique_windows(ids, setup.seq_len, setup.budget_windows // repetitions, seed)


def validation_loss(model: TinyGPT, val_ids: torch.Tensor, setup: DataScalingSetup) -> float:
    """Mean next-token loss (nats per token) on ``val_windows`` held-out windows."""
    return float(loss_by_position(model, val_ids, setup.seq_len, setup.val_windows).mean())


def effective_data(unique_tokens: float, repetitions: float, r_star: float = R_STAR) -> float:
    """Muennighoff et al.'s effective data ``U + U R* (1 - exp(-R / R*))`` with ``R = repetitions - 1``: what
    ``repetitions`` epochs over ``unique_tokens`` are worth in unique tokens.

    Raises:
        ValueError: repetitions < 1 or a non-positive ``r_star``.
    """
    if finite_float("unique_tokens", unique_tokens, "pass a token count, e.g. 1e6") < 0:
        raise ValueError(f"unique_tokens must be >= 0, got {unique_tokens!r}: pass a token count, e.g. 1e6.")
    if finite_float("repetitions", repetitions, "pass e.g. repetitions=4") < 1:
        raise ValueError(f"Need repetitions >= 1 (1 = every token read once), got {repetitions!r}: pass e.g. "
                         "repetitions=4.")
    positive_float("r_star", r_star, f"keep the paper's r_star={R_STAR}")
    r = repetitions - 1
    return unique_tokens + unique_tokens * r_star * (1 - math.exp(-r / r_star))


def repetition_experiment(setup: DataScalingSetup, train_ids: torch.Tensor, val_ids: torch.Tensor, *,
                          repetitions: Sequence[int] | None = None, seed: int = 0,
                          device: str | torch.device = "cpu", progress: bool = True) -> dict[int, dict]:
    """Train one TinyGPT per repetition count with the same budget; returns ``{E: result}``.

    Each result has ``unique_tokens``, ``val_loss`` (at the end), ``curve`` (``[(tokens seen, val loss)]``),
    ``train_loss`` (the last step's) and ``seconds``.

    Raises:
        ValueError: no or bad repetition counts, or a budget whose unique share does not fit in ``train_ids``.
    """
    from tqdm.auto import tqdm

    from course_utils import sft

    reps = tuple(setup.repetitions if repetitions is None else repetitions)
    _check_repetitions(reps)
    unique_windows(train_ids, setup.seq_len, setup.budget_windows // min(reps), seed)  # fails early if too big
    every = max(1, setup.steps // setup.n_evals)
    out = {}
    for e in tqdm(reps, desc="repetitions", disable=not progress):
        data = repeated_data(train_ids, setup, e, seed)
        model = TinyGPT(setup.config(), seed=seed).to(device)
        curve = [(0, validation_loss(model, val_ids, setup))]

        def record(step: int, _loss: float, model=model, curve=curve) -> None:
            if step % every == 0 or step == setup.steps:
                curve.append((step * setup.batch_size * setup.seq_len, validation_loss(model, val_ids, setup)))
                model.train()

        cfg = sft.TrainConfig(steps=setup.steps, batch_size=setup.batch_size, lr=setup.lr,
                              warmup_steps=max(1, setup.steps // 20), weight_decay=0.1, seed=seed, plot=None,
                              progress=False)
        t0 = time.perf_counter()
        result = sft.train(model, data, cfg, pad_id=0, on_step=record)
        out[e] = {"unique_tokens": len(data) * setup.seq_len, "val_loss": curve[-1][1], "curve": curve,
                  "train_loss": result.losses[-1], "seconds": time.perf_counter() - t0}
    return out


def format_results(results: dict[int, dict]) -> str:
    """One line per repetition count: unique tokens, final train and validation loss, the paper's effective data."""
    lines = [f"{'epochs':>6} {'unique tokens':>14} {'train loss':>11} {'val loss':>9} {'effective data (paper)':>23}"]
    for e, r in results.items():
        eff = effective_data(r["unique_tokens"], e)
        lines.append(f"{e:>6} {r['unique_tokens']:>14,} {r['train_loss']:>11.3f} {r['val_loss']:>9.3f} "
                     f"{eff / (r['unique_tokens'] * e):>22.0%}")
    return "\n".join(lines)


def plot_repetitions(results: dict[int, dict], axes=None):
    """Left: final validation loss vs epochs over the same budget. Right: validation loss along each run."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    reps = sorted(results)
    axes[0].plot(reps, [results[e]["val_loss"] for e in reps], "o-")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(reps, [str(e) for e in reps])
    axes[0].set_xlabel("epochs over the unique data (same total tokens)")
    axes[0].set_ylabel("validation loss (nats / token)")
    axes[0].set_title("Repeating data vs unique data at equal compute")
    for e in reps:
        xs, ys = zip(*results[e]["curve"][1:])
        axes[1].plot(xs, ys, "o-", ms=3, label=f"{e} epoch{'s' if e > 1 else ''}")
    axes[1].set_xlabel("training tokens seen")
    axes[1].set_ylabel("validation loss")
    axes[1].set_title("Validation loss during training")
    axes[1].legend()
    return axes
