"""Chapter 8's exercises: supervised fine-tuning.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
from torch import nn

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor


class _IdTokenizer:
    """A stand-in tokenizer for checks: the text "5 6 7" is the ids [5, 6, 7]."""

    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [int(t) for t in text.split()]}


@exercise("08.sft_labels", "warm-up", "SFT labels: train on the response only")
def check_sft_labels(fn: Callable[[list, list, int], tuple]) -> None:
    """``fn(prompt_ids, response_ids, eos_id)`` -> ``(input_ids, labels)`` as ``sft.tokenize_pair`` builds them."""
    from course_utils.sft import tokenize_pair

    tok = _IdTokenizer()
    for prompt, response in (([5, 6, 7], [8, 9]), ([11], [12, 13, 14])):
        out = call(fn, list(prompt), list(response), tok.eos_token_id)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Hint("return a pair (input_ids, labels).")
        ids, labels = (list(x.tolist() if isinstance(x, torch.Tensor) else x) for x in out)
        ref = tokenize_pair(tok, " ".join(map(str, prompt)), " ".join(map(str, response)), max_len=64)
        if ids == ref["input_ids"] and labels == ref["labels"]:
            continue
        if len(ids) != len(labels):
            raise Hint("input_ids and labels must have the same length: one label per input token.")
        if ids != ref["input_ids"]:
            raise Hint("input_ids is the prompt, then the response, then EOS (so the model learns to stop).")
        if labels[:len(prompt)] != [-100] * len(prompt):
            raise Hint("the prompt's labels must be -100, the value the loss skips.")
        raise Hint("the response's tokens, and the EOS after them, keep their ids as labels.")


@exercise("08.l2sp_penalty", "core", "the L2-SP penalty against forgetting")
def check_l2sp_penalty(fn: Callable[[nn.Module, dict, float], torch.Tensor]) -> None:
    """``fn(model, anchor, alpha)`` must equal ``forgetting.L2SP(model_at_start, alpha)(model)``."""
    from course_utils.forgetting import L2SP

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # a frozen weight: not anchored, not penalised
    penalty = L2SP(model, alpha=0.5)
    anchor = {n: t.clone() for n, t in penalty.anchor.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    out = tensor(call(fn, model, anchor, 0.5), None, "the penalty")
    ref = penalty(model)
    if out.numel() != 1:
        raise Hint(f"the penalty is one number (a 0-d tensor); got shape {tuple(out.shape)}.")
    if not out.requires_grad:
        raise Hint("the penalty must be differentiable (it is added to the loss): compute it from the parameters, "
                   "without .item(), .detach() or torch.no_grad().")
    if torch.allclose(out, ref, rtol=1e-5):
        return
    if torch.allclose(out, 2 * ref, rtol=1e-5):
        raise Hint("twice the reference: the penalty is alpha / 2 times the sum of squares.")
    raise Hint("sum (theta - theta0) ** 2 over every anchored weight (each name in `anchor`), times alpha / 2.")


@exercise("08.hard_weights", "stretch", "hard-example mining weights")
def check_hard_weights(fn: Callable[[torch.Tensor, float, float], list]) -> None:
    """``fn(losses, top_fraction, boost)`` must equal ``sample_optimization.hard_example_weights``."""
    from course_utils.sample_optimization import hard_example_weights

    rng = random.Random(0)
    losses = torch.tensor([rng.uniform(0.5, 3.0) for _ in range(10)])
    for frac, boost in ((0.25, 3.0), (0.1, 2.0), (1.0, 3.0)):
        out = call(fn, losses.clone(), frac, boost)
        got = torch.as_tensor(out, dtype=torch.float32).flatten()
        ref = torch.tensor(hard_example_weights(losses, frac, boost))
        if got.shape != ref.shape:
            raise Hint(f"one weight per example: expected {len(losses)}, got {got.numel()}.")
        if close(got, ref):
            continue
        if not math.isclose(got.mean().item(), 1.0, abs_tol=1e-5):
            raise Hint("rescale the weights to mean 1, so the learning rate means the same as without mining.")
        if (got > 1).any() and losses[got > got.min()].mean() < losses.mean():
            raise Hint("you boosted the easy examples: the hard ones are those with the highest loss.")
        raise Hint(f"with top_fraction={frac}: boost the max(1, round(top_fraction * N)) highest-loss examples.")
