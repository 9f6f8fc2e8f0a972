"""Catastrophic forgetting (灾难性遗忘, seed 001 §15) and the mitigations chapter 7 compares.

Fine-tuning moves the weights towards the new task and nothing holds them near what made the model good at
everything else. The remedies the seed lists, each a small piece here or a setting elsewhere:

* a smaller learning rate or fewer steps (``sft.TrainConfig``);
* **mixing general data** into the task data (:func:`mix_data`);
* **LoRA** instead of full fine-tuning (``lora.inject_lora``): few trainable weights, a low-rank change;
* **L2-SP** (Li et al. 2018): penalise the distance to the starting weights, ``alpha/2 * ||theta - theta0||^2``
  (:class:`L2SP`);
* **EWC** (Kirkpatrick et al. 2017): the same, weighted per weight by how much the old ability depends on it,
  the diagonal of the Fisher information ``F_i = E[(d log p / d theta_i)^2]`` on general data (:class:`EWC`).

Both penalties plug into the engine as ``sft.train(..., penalty=L2SP(model, alpha))``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import nn


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
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, not {alpha}.")
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

    if not data:
        raise ValueError("The Fisher information needs some general-data examples.")
    params = _trainable(model)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    collate, n_batches = SFTCollator(pad_id), 0
    was_training = model.training
    model.eval()  # no dropout: the gradient of the model we keep
    for s in range(0, min(len(data), batch_size * max_batches), batch_size):
        batch = {k: v.to(next(model.parameters()).device) for k, v in collate(data[s:s + batch_size]).items()}
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
    if not 0 <= general_fraction < 1:
        raise ValueError(f"general_fraction must be in [0, 1), not {general_fraction}.")
    n_general = round(len(task) * general_fraction / (1 - general_fraction))
    if n_general and not general:
        raise ValueError("Mixing needs general data: pass some general examples.")
    rng = random.Random(seed)
    extra = (rng.sample(list(general), n_general) if n_general <= len(general)
             else [rng.choice(general) for _ in range(n_general)])
    mixed = list(task) + extra
    rng.shuffle(mixed)
    return mixed
