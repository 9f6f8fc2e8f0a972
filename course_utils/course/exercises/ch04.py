"""Chapter 4's exercises: parameter-efficient fine-tuning.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor


@exercise("04.lora_params", "warm-up", "how many parameters LoRA trains")
def check_lora_params(fn: Callable[[list[tuple[int, int]], int], int]) -> None:
    """``fn(shapes, r)``: ``r * (d_in + d_out)`` summed over the (d_out, d_in) shapes."""
    for shapes, r in (([(5, 3)], 2), ([(576, 576), (192, 576)], 8), ([(4096, 4096)] * 64, 16)):
        out = call(fn, shapes, r)
        if isinstance(out, bool) or not isinstance(out, (int, float)):
            raise Hint(f"return a number of parameters, got {type(out).__name__}.")
        want = sum(r * (d_in + d_out) for d_out, d_in in shapes)
        if out == want:
            continue
        if out == sum(r * d_in for _, d_in in shapes) or out == sum(r * d_out for d_out, _ in shapes):
            raise Hint("you counted only one of the two matrices: A is r x d_in and B is d_out x r.")
        if out == sum(d_out * d_in for d_out, d_in in shapes):
            raise Hint("that is the full matrix d_out x d_in: LoRA trains the two thin factors instead.")
        raise Hint(f"for shapes {shapes[:2]}{'...' if len(shapes) > 2 else ''} and r={r} expected {want}, got {out}.")


@exercise("04.lora_layer", "core", "a LoRA layer from scratch")
def check_lora_layer(cls: Any) -> None:
    """``cls(base, r, alpha)`` must behave like ``lora.LoRALinear``: frozen base, B = 0 at init, ``alpha / r``."""
    from course_utils.lora import LoRALinear

    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    w0 = base.weight.detach().clone()
    layer = call(cls, base, 2, 4.0)
    if not isinstance(layer, nn.Module):
        raise Hint(f"{getattr(cls, '__name__', cls)}(base, r, alpha) should build an nn.Module.")
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        raise Hint("W0 must stay frozen: set requires_grad to False on the base layer's parameters.")
    trainable = [p for p in layer.parameters() if p.requires_grad]
    A = next((p for p in trainable if tuple(p.shape) == (2, 6)), None)
    B = next((p for p in trainable if tuple(p.shape) == (5, 2)), None)
    if A is None or B is None or len(trainable) != 2:
        raise Hint("expected exactly two trainable matrices, A of shape (r, in) = (2, 6) and B of shape "
                   f"(out, r) = (5, 2); found shapes {[tuple(p.shape) for p in trainable]}.")
    x = torch.randn(3, 6)
    with torch.no_grad():
        out0 = tensor(layer(x), (3, 5), "the layer's output")
        if not close(out0, base(x)):
            raise Hint("your LoRA output differs from the frozen layer at init: is B zero?")
        if not A.abs().sum() > 0:
            raise Hint("A is all zeros: with A and B both zero neither gets a gradient. Initialise A randomly.")
        ref = LoRALinear(base, r=2, alpha=4.0)
        A.normal_()
        B.normal_()
        ref.lora_A.copy_(A)
        ref.lora_B.copy_(B)
        out = layer(x)
        if not torch.equal(base.weight, w0):
            raise Hint("W0 changed: LoRA adds B A to the output and never writes into the frozen weight.")
        if close(out, ref(x), atol=1e-4):
            pass
        elif close(out, base(x) + x @ A.T @ B.T, atol=1e-4):
            raise Hint("the update is not scaled: multiply B A x by alpha / r.")
        elif close(out, base(x) + x @ A.T @ B.T * (2 / 4.0), atol=1e-4):
            raise Hint("the scale is upside down: it is alpha / r.")
        else:
            raise Hint("with trained (non-zero) A and B the output differs from W0 x + b + (B A x) * alpha / r.")
    layer(x).sum().backward()
    if A.grad is None or B.grad is None:
        raise Hint("A and B get no gradient: use them as parameters in forward (no .detach(), no torch.no_grad).")


@exercise("04.effective_rank", "stretch", "effective rank of an update from its singular values")
def check_effective_rank(fn: Callable[[torch.Tensor, float], int]) -> None:
    """``fn(s, energy)`` must equal ``lora.effective_rank``."""
    from course_utils.lora import effective_rank

    cases = [(torch.tensor([3.0, 2.0, 1.0, 0.1]), 0.9), (torch.tensor([3.0, 2.0, 1.0, 0.1]), 0.5),
             (torch.tensor([1.0, 1.0, 1.0, 1.0]), 0.6), (torch.tensor([5.0, 0.0, 0.0]), 0.9),
             (torch.zeros(3), 0.9)]
    for s, energy in cases:
        out = call(fn, s.clone(), energy)
        out = int(out.item()) if isinstance(out, torch.Tensor) else out
        ref = effective_rank(s, energy)
        if out == ref:
            continue
        if not s.any():
            raise Hint("a zero update has rank 0 (and no energy to divide by).")
        share = (s.cumsum(0) / s.sum() < energy - 1e-6).sum().item() + 1
        if out == share and share != ref:
            raise Hint("energy is measured in squared singular values: use s ** 2.")
        raise Hint(f"for s = {s.tolist()} and energy = {energy}: count the largest values until their share of "
                   "sum(s**2) reaches energy (the value that crosses it counts too).")
