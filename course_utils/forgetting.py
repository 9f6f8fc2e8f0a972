"""Catastrophic forgetting (灾难性遗忘, LLM Q&A §15) and the mitigations chapter 8 compares.

Fine-tuning moves the weights towards the new task and nothing holds them near what made the model good at
everything else. The remedies the LLM Q&A lists, each a small piece here or a setting elsewhere:

* a smaller learning rate, weight decay or early stopping (``sft.TrainConfig``; LLM Q&A §13);
* **mixing general data** into the task data (:func:`mix_data`);
* **LoRA** instead of full fine-tuning (``lora.inject_lora``): few trainable weights, a low-rank change;
* **L2-SP** (Li et al. 2018): penalise the distance to the starting weights, ``alpha/2 * ||theta - theta0||^2``
  (:class:`L2SP`);
* **EWC** (Kirkpatrick et al. 2017): the same, weighted per weight by how much the old ability depends on it,
  the diagonal of the Fisher information ``F_i = E[(d log p / d theta_i)^2]`` on general data (:class:`EWC`).

Both penalties plug into the engine as ``sft.train(..., penalty=L2SP(model, alpha))``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .device import to_model
from .validate import (
    finite_float,
    non_empty,
    non_empty_str,
    non_negative_float,
    not_a_str,
    positive_float,
    positive_int,
)


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("The model has no trainable parameters: unfreeze some (or inject LoRA) before fine-tuning.")
    return params


class L2SP:
    """``alpha / 2 * sum_i (theta_i - theta0_i)^2`` over the trainable weights, ``theta0`` copied at creation.

    Create it *before* training (it snapshots the starting point). With LoRA the starting point of the adapter
    weights is the adapter's init, so the penalty only keeps ``B A`` small.
    """

    def __init__(self, model: nn.Module, alpha: float):
        non_negative_float("alpha", alpha, "pass e.g. alpha=1.0 (0 turns the penalty off)")
        self.alpha = alpha
        self.anchor = {n: p.detach().clone() for n, p in _trainable(model).items()}

    def weights(self, name: str) -> torch.Tensor | float:
        """The per-weight importance (1 for L2-SP; EWC overrides it with the Fisher diagonal)."""
        return 1.0

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = None
        for n, p in model.named_parameters():
            if n in self.anchor:
                term = (self.weights(n) * (p - self.anchor[n].to(p.device)) ** 2).sum()
                total = term if total is None else total + term
        if total is None:
            raise ValueError("None of the anchored weights are in this model: create the penalty from the same "
                             "model you train.")
        return 0.5 * self.alpha * total


def fisher_diagonal(model: nn.Module, data: Sequence[dict], batch_size: int = 4, max_batches: int = 8,
                    pad_id: int = 0) -> dict[str, torch.Tensor]:
    """The diagonal of the empirical Fisher information of the trainable weights on ``data`` (tokenized
    examples, as ``sft.build_dataset`` makes): the mean squared gradient of the per-batch loss.

    Raises:
        ValueError: no data.
    """
    from .sft import SFTCollator, token_loss_sum

    not_a_str("data", data, "pass tokenized examples (sft.build_dataset)")
    if not data:
        raise ValueError("The Fisher information needs some general-data examples.")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=4")
    positive_int("max_batches", max_batches, "pass e.g. max_batches=8")
    params = _trainable(model)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    collate, n_batches = SFTCollator(pad_id), 0
    was_training = model.training
    model.eval()  # no dropout: the gradient of the model we keep
    for s in range(0, min(len(data), batch_size * max_batches), batch_size):
        batch = to_model(model, collate(data[s:s + batch_size]))
        model.zero_grad(set_to_none=True)
        loss_sum, n_tok = token_loss_sum(model, batch)
        (loss_sum / max(1, int(n_tok))).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        n_batches += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / n_batches for n, f in fisher.items()}


class EWC(L2SP):
    """Elastic weight consolidation: L2-SP with each weight's term scaled by its Fisher information on general
    data, so weights the old abilities depend on are held firmly and the others move freely.

    The Fisher values are normalised to mean 1 over all weights, so ``alpha`` is on the same scale as L2-SP's.
    """

    def __init__(self, model: nn.Module, alpha: float, general_data: Sequence[dict], pad_id: int = 0,
                 max_batches: int = 8):
        super().__init__(model, alpha)
        fisher = fisher_diagonal(model, general_data, max_batches=max_batches, pad_id=pad_id)
        mean = torch.cat([f.flatten() for f in fisher.values()]).mean().clamp_min(1e-20)
        self.fisher = {n: f / mean for n, f in fisher.items()}

    def weights(self, name: str) -> torch.Tensor:
        return self.fisher[name]


def mix_data(task: Sequence, general: Sequence, general_fraction: float, seed: int = 0) -> list:
    """Task examples plus general ones so that ``general_fraction`` of the result is general data (replay).

    The task examples are all kept; general examples are drawn (with repetition only if there are too few).

    Raises:
        ValueError: a fraction outside [0, 1), or general data needed but none given.
    """
    if not 0 <= finite_float("general_fraction", general_fraction, "pass e.g. general_fraction=0.5") < 1:
        raise ValueError(f"general_fraction must be in [0, 1), not {general_fraction}: pass e.g. 0.5 (half the "
                         "result general data).")
    not_a_str("task", task)
    not_a_str("general", general)
    non_empty("task", task, "pass the task's examples; mixing adds general ones to them")
    n_general = round(len(task) * general_fraction / (1 - general_fraction))
    if n_general and not general:
        raise ValueError("Mixing needs general data: pass some general examples.")
    rng = random.Random(seed)
    extra = (rng.sample(list(general), n_general) if n_general <= len(general)
             else [rng.choice(general) for _ in range(n_general)])
    mixed = list(task) + extra
    rng.shuffle(mixed)
    return mixed


# ---------------------------------------------------------------------------------------------------------------
# The experiment: one narrow fine-tune, each mitigation with the same budget
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mitigation:
    """One way to fine-tune: full or LoRA, a learning rate, a share of general data, a weight penalty."""

    name: str
    method: str = "full"  # "full" or "lora"
    lr: float = 1e-4
    general_fraction: float = 0.0
    penalty: str | None = None  # None, "l2sp" or "ewc"
    alpha: float = 0.0
    weight_decay: float = 0.0  # AdamW's: pulls towards zero, not towards the pretrained weights (unlike L2-SP)

    def __post_init__(self):
        non_empty_str("name", self.name, "name the mitigation, e.g. Mitigation('smaller lr', lr=1e-5)")
        positive_float("lr", self.lr, "pass e.g. lr=1e-4")
        if not 0 <= finite_float("general_fraction", self.general_fraction) < 1:
            raise ValueError(f"general_fraction must be in [0, 1), not {self.general_fraction}: pass e.g. 0.5.")
        non_negative_float("alpha", self.alpha, "pass e.g. alpha=1.0")
        non_negative_float("weight_decay", self.weight_decay, "pass e.g. weight_decay=0.1")
        if self.method not in ("full", "lora"):
            raise ValueError(f"method must be 'full' or 'lora', not {self.method!r}.")
        if self.penalty not in (None, "l2sp", "ewc"):
            raise ValueError(f"penalty must be None, 'l2sp' or 'ewc', not {self.penalty!r}.")


#: The LLM Q&A's mitigations (§15), against the plain full fine-tune they are meant to improve on.
MITIGATIONS = (
    Mitigation("full fine-tune", lr=1e-4),
    Mitigation("smaller lr", lr=1e-5),
    Mitigation("mix general data", lr=1e-4, general_fraction=0.5),
    Mitigation("LoRA", method="lora", lr=1e-3),
    Mitigation("L2-SP", lr=1e-4, penalty="l2sp", alpha=1.0),
    Mitigation("EWC", lr=1e-4, penalty="ewc", alpha=1.0),
    Mitigation("weight decay", lr=1e-4, weight_decay=0.1),
)


def _check_budget(m, steps, batch_size) -> None:
    if not isinstance(m, Mitigation):
        raise TypeError(f"Expected a Mitigation, got {type(m).__name__}: pass e.g. MITIGATIONS[0] or "
                        "Mitigation('full fine-tune', lr=1e-4).")
    positive_int("steps", steps, "pass e.g. steps=30")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")


def run_mitigation(model: nn.Module, m: Mitigation, task_data: Sequence[dict], general_data: Sequence[dict],
                   steps: int, batch_size: int = 8, seed: int = 0, pad_id: int | None = None):
    """Fine-tune a copy of ``model`` on the task the way ``m`` says; returns ``(tuned_copy, TrainResult)``.

    The original is left untouched, so every mitigation starts from the same weights with the same budget.
    """
    from .lora import inject_lora
    from .sft import TrainConfig, train

    _check_budget(m, steps, batch_size)
    tuned = copy.deepcopy(model)
    if m.method == "lora":
        inject_lora(tuned, r=8, alpha=16)
    else:
        tuned.requires_grad_(True)
    data = mix_data(task_data, general_data, m.general_fraction, seed) if m.general_fraction else list(task_data)
    pad = pad_id if pad_id is not None else (getattr(tuned.config, "pad_token_id", None) or 0)
    penalty = None
    if m.penalty == "l2sp":
        penalty = L2SP(tuned, m.alpha)
    elif m.penalty == "ewc":
        penalty = EWC(tuned, m.alpha, general_data, pad_id=pad)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=m.lr, weight_decay=m.weight_decay, seed=seed,
                      plot=None, progress=False)
    return tuned, train(tuned, data, cfg, pad_id=pad_id, penalty=penalty)


def compare_mitigations(model: nn.Module, harness, task_data: Sequence[dict], general_data: Sequence[dict],
                        mitigations: Sequence[Mitigation] = MITIGATIONS, steps: int = 30, batch_size: int = 8,
                        seed: int = 0, probes: Sequence[str] | None = None, progress: bool = True) -> list[dict]:
    """Evaluate the original, then each mitigation's fine-tune, with the same probes (``evaluation.Harness``,
    whose KL reference is set here; ``probes`` picks some). Returns one row per model: the harness's metrics plus
    ``train_s`` and the final training loss."""
    from tqdm.auto import tqdm

    not_a_str("mitigations", mitigations)
    non_empty("mitigations", mitigations, "pass e.g. MITIGATIONS")
    for m in mitigations:
        _check_budget(m, steps, batch_size)
    harness.set_reference(model)
    rows = [harness.evaluate(model, "original", probes)]
    for m in tqdm(mitigations, desc="mitigations", disable=not progress):
        tuned, result = run_mitigation(model, m, task_data, general_data, steps, batch_size, seed)
        rows.append({**harness.evaluate(tuned, m.name, probes), "train_s": result.seconds,
                     "train_loss": result.losses[-1]})
        del tuned
    return rows


def training_curve(model: nn.Module, harness, m: Mitigation, task_data: Sequence[dict],
                   general_data: Sequence[dict], steps: int, every: int, probes: Sequence[str] = ("sentiment", "kl"),
                   batch_size: int = 8, seed: int = 0) -> list[dict]:
    """The probes every ``every`` optimiser steps of one fine-tune (a copy of ``model``): what early stopping
    watches. The harness's KL reference must be the original model (:meth:`Harness.set_reference`).

    Returns:
        ``[{"step": 0, probe: value, ...}, ...]`` from before training to the last step.
    """
    from .lora import inject_lora
    from .sft import TrainConfig, train

    positive_int("every", every, "pass e.g. every=5 (steps between two evaluations)")
    _check_budget(m, steps, batch_size)
    tuned = copy.deepcopy(model)
    if m.method == "lora":
        inject_lora(tuned, r=8, alpha=16)
    else:
        tuned.requires_grad_(True)
    curve = [{"step": 0, **{k: v for k, v in harness.evaluate(tuned, "", probes).items() if k != "model"}}]

    def on_step(step: int, loss: float) -> None:
        if step % every == 0:
            row = harness.evaluate(tuned, "", probes)
            tuned.train()  # evaluate() restores the mode it found; training continues in train mode
            curve.append({"step": step, **{k: v for k, v in row.items() if k != "model"}})

    data = mix_data(task_data, general_data, m.general_fraction, seed) if m.general_fraction else list(task_data)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=m.lr, weight_decay=m.weight_decay, seed=seed,
                      plot=None, progress=False)
    train(tuned, data, cfg, on_step=on_step)
    return curve


def plot_curve(curve: Sequence[dict], left: str = "sentiment", right: str = "kl", ax=None):
    """Two probes over training steps on twin axes (task up, drift up: where to stop)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    steps = [c["step"] for c in curve]
    ax.plot(steps, [c[left] for c in curve], "o-", color="C0", label=left)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(left, color="C0")
    twin = ax.twinx()
    twin.plot(steps, [c[right] for c in curve], "s--", color="C3", label=right)
    twin.set_ylabel(right, color="C3")
    ax.set_title(f"{left} and {right} during fine-tuning")
    return ax


def plot_tradeoff(rows: Sequence[dict], task: str = "sentiment", general: str = "facts", ax=None):
    """Task gain (y) against the change of a general probe (x), both relative to the first row (the original):
    the ideal mitigation sits top right (task learned, nothing lost)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4.2))[1]
    base = rows[0]
    for i, r in enumerate(rows[1:], 1):
        x, y = r[general] - base[general], r[task] - base[task]
        ax.scatter(x, y, s=60, color=f"C{i}")
        ax.annotate(str(r["model"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"change in {general} (general ability)")
    ax.set_ylabel(f"gain in {task} (the fine-tuned task)")
    ax.set_title("Task gain vs general loss")
    return ax
