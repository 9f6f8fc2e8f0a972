"""Chapter 4: LoRA from scratch (after microsoft/LoRA ``loralib``), checked against HF ``peft``.

A frozen weight ``W0`` (out x in) gets a trainable low-rank update ``ΔW = B @ A * (alpha / r)`` with
``A`` (r x in) and ``B`` (out x r)::

    h = W0 x + (B A x) * alpha / r

``B`` starts at zero, so the model is unchanged at step 0. After training, ``W0 + ΔW`` is one plain matrix
again (:func:`merge_lora`), so a merged LoRA model has exactly the architecture, size and latency of the base.

Initialisation: the paper says "random Gaussian for A, zero for B"; loralib and peft actually run
``kaiming_uniform_(A, a=sqrt(5))`` (the ``nn.Linear`` default). Both are offered (``init=``); kaiming is the default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .validate import finite_float, positive_float

INITS = ("kaiming", "gaussian")


def _check_lora_args(r, alpha, dropout, init) -> int:
    """Refuse a bad rank, scale, dropout or init before any layer is touched; returns the rank as an int."""
    fix = "pass e.g. r=8 (typical values: 4, 8, 16)"
    if isinstance(r, bool) or not isinstance(r, int):  # True is an int in Python, but not a rank
        raise TypeError(f"LoRA rank r must be an integer >= 1, got {r!r} ({type(r).__name__}): {fix}.")
    if r < 1:
        raise ValueError(f"LoRA rank r must be an integer >= 1, got {r!r}: {fix}.")
    positive_float("LoRA alpha", alpha, f"pass e.g. alpha={2 * r} (a common choice is alpha = 2 * r)")
    if not 0.0 <= finite_float("dropout", dropout, "pass e.g. dropout=0.05") < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}: pass e.g. dropout=0.05 (0 turns it off).")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}: pass init='kaiming' (peft's default).")
    return r


def _check_rank_fits(r: int, layer: nn.Linear, name: str = "the layer") -> None:
    """A rank above min(in, out) adds parameters but no expressiveness: the update's rank cannot exceed it."""
    limit = min(layer.in_features, layer.out_features)
    if r > limit:
        raise ValueError(f"LoRA rank r={r} is larger than {name} allows ({layer.in_features} inputs x "
                         f"{layer.out_features} outputs: rank at most {limit}): pass r <= {limit}, e.g. "
                         f"r={min(8, limit)}.")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update: ``base(x) + dropout(x) @ A.T @ B.T * alpha / r``.

    Args:
        base: the layer to adapt; its parameters are frozen in place (not copied).
        r: the rank of the update, ``>= 1``.
        alpha: the scale numerator, ``> 0``; the update is multiplied by ``alpha / r``.
        dropout: dropout probability on the LoRA branch's input (active in ``train()`` mode only).
        init: ``"kaiming"`` (loralib / peft default) or ``"gaussian"`` (the paper's text; ``N(0, 1/r)`` like peft's
            ``init_lora_weights="gaussian"``) for ``A``. ``B`` is always zero.
    """

    wraps_linear = True  # match_linear_modules skips the Linears inside, so injecting twice cannot nest

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, *, init: str = "kaiming"):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        r = _check_lora_args(r, alpha, dropout, init)
        _check_rank_fits(r, base)
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        # float32 on the frozen weight's device, whatever the base's dtype (peft does the same): a bf16 update
        # of 1e-5 relative size would round away; the forward casts in and out.
        factory = {"dtype": torch.float32, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))  # zero: ΔW = 0 at step 0
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        else:
            nn.init.normal_(self.lora_A, std=1 / r)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``W0 x + b`` plus the low-rank path; ``x @ A.T @ B.T`` never forms the full (out x in) ``ΔW``."""
        out = self.base(x)
        update = (self.dropout(x).to(self.lora_A.dtype) @ self.lora_A.T @ self.lora_B.T) * self.scaling
        return (out + update).to(out.dtype)  # add in float32, round once (as peft does)

    def delta_weight(self) -> torch.Tensor:
        """The update ``ΔW = B @ A * alpha / r``, shape (out_features, in_features), rank at most ``r``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain ``nn.Linear`` with weight ``W0 + ΔW`` (bias kept): same outputs, no extra latency.

        The new layer is frozen like ``base``; this module is left untouched.
        """
        base = self.base
        # skip_init: no random initialisation to overwrite (and no draw from the global RNG)
        merged = torch.nn.utils.skip_init(nn.Linear, base.in_features, base.out_features, bias=base.bias is not None,
                                          dtype=base.weight.dtype, device=base.weight.device)
        merged.weight.copy_(base.weight.float() + self.delta_weight())  # add in float32, store as the base
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged.requires_grad_(False)

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def match_linear_modules(model: nn.Module, target_modules: str | Iterable[str]) -> list[str]:
    """Names of the ``nn.Linear`` modules whose name ends with one of ``target_modules`` (peft's rule).

    ``"q_proj"`` matches ``model.layers.0.self_attn.q_proj`` (a whole dotted component, not ``xq_proj``).
    ``"all-linear"`` (as in peft) matches every Linear except the output head. Linears inside a wrapper
    (a module with ``wraps_linear = True``: :class:`LoRALinear`, ``adapters.AdapterLinear``) are skipped.

    Raises:
        ValueError: nothing matched; the message lists the Linear leaf names that exist.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected a torch model (nn.Module), got {type(model).__name__}: pass the loaded model.")
    targets = _check_targets(target_modules)
    wrappers = [n for n, m in model.named_modules() if getattr(m, "wraps_linear", False)]
    linears = [(n, m) for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and not any(n.startswith(w + ".") for w in wrappers)]
    if target_modules == "all-linear":
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        names = [n for n, m in linears if m is not head]
    else:
        names = [n for n, _ in linears if any(n == t or n.endswith("." + t) for t in targets)]
    if not names:
        available = sorted({n.rpartition(".")[2] for n, _ in linears})
        hint = " Layers already wrapped (LoRA, adapters) are not matched again." if wrappers else ""
        raise ValueError(f"No nn.Linear module matches target_modules={target_modules!r}. "
                         f"Linear names in this model: {available}.{hint}")
    return names


def _check_targets(target_modules) -> tuple[str, ...]:
    """``target_modules`` as a tuple of names: one str, or a non-empty list / tuple / set of str."""
    if isinstance(target_modules, str):
        return (target_modules,)
    if target_modules is None or not isinstance(target_modules, Iterable):
        raise TypeError(f"target_modules must be a name or a list of names, got {target_modules!r}: pass e.g. "
                        "target_modules=('q_proj', 'v_proj') or 'all-linear'.")
    targets = tuple(target_modules)
    bad = [t for t in targets if not isinstance(t, str)]
    if bad or not targets:
        raise (TypeError if bad else ValueError)(
            f"target_modules must hold layer names (str), got {target_modules!r}: pass e.g. "
            "target_modules=('q_proj', 'v_proj') or 'all-linear'.")
    return targets


def inject_lora(model: nn.Module, target_modules: str | Iterable[str] = ("q_proj", "v_proj"), r: int = 8,
                alpha: float = 16, dropout: float = 0.0, *, init: str = "kaiming") -> nn.Module:
    """Replace every matching ``nn.Linear`` by a :class:`LoRALinear` and freeze everything else (in place).

    Args:
        target_modules: name suffixes (``("q_proj", "v_proj")`` is the paper's and peft's Llama default), one
            suffix as a string (peft would read a string as a regex), or ``"all-linear"``.
        r, alpha, dropout, init: see :class:`LoRALinear`.

    Returns:
        ``model`` itself, where only ``lora_A`` / ``lora_B`` require grad.
    """
    r = _check_lora_args(r, alpha, dropout, init)
    names = match_linear_modules(model, target_modules)
    for name in names:  # every layer checked before the model is changed
        _check_rank_fits(r, model.get_submodule(name), name)
    model.requires_grad_(False)  # freeze first: the LoRA parameters created below are the only trainable ones
    for name in names:
        model.set_submodule(name, LoRALinear(model.get_submodule(name), r, alpha, dropout, init=init))
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every :class:`LoRALinear` in ``model``, by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by its merged plain ``nn.Linear`` (in place); returns ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"merge_lora expects a torch model (nn.Module), got {type(model).__name__}.")
    layers = lora_layers(model)
    if not layers:
        raise ValueError("merge_lora found no LoRALinear in the model; call inject_lora first.")
    for name, layer in layers.items():
        model.set_submodule(name, layer.merge())
    return model


def count_parameters(model: nn.Module) -> dict[str, int | float]:
    """``{"trainable", "total", "percent"}``: parameter counts (tied weights counted once) and 100*trainable/total."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects a torch model (nn.Module), got {type(model).__name__}.")
    params = list(model.parameters())  # .parameters() de-duplicates shared tensors (tied embeddings)
    total = sum(p.numel() for p in params)
    if total == 0:
        raise ValueError("The model has no parameters.")
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": trainable, "total": total, "percent": 100 * trainable / total}


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors (``...lora_A`` / ``...lora_B``): the whole checkpoint of a LoRA fine-tune.

    Load it back into a model with the same injected layers via ``model.load_state_dict(sd, strict=False)``.
    """
    sd = {k: v for k, v in model.state_dict().items() if k.endswith((".lora_A", ".lora_B"))}
    if not sd:
        raise ValueError("The model has no LoRA parameters; call inject_lora first.")
    return sd


@torch.no_grad()
def copy_lora_to_peft(model: nn.Module, peft_model: nn.Module) -> None:
    """Copy our ``A`` and ``B`` into a peft LoRA model of the same base, so their logits can be compared.

    ``peft_model`` must come from ``get_peft_model(copy_of_base, LoraConfig(r=r, lora_alpha=alpha,
    target_modules=<same>))``: peft stores our ``lora_A`` as ``<name>.lora_A.default.weight`` (an ``nn.Linear``
    weight, same shape) and our ``lora_B`` as ``<name>.lora_B.default.weight``.

    Raises:
        ValueError: the two models do not have LoRA on the same modules with the same shapes and scaling.
    """
    ours = lora_layers(model)
    if not ours:
        raise ValueError("The first model has no LoRALinear; call inject_lora on it first.")
    if not hasattr(peft_model, "get_base_model"):
        raise TypeError(f"Expected a peft model (from peft.get_peft_model), got {type(peft_model).__name__}.")
    adapter = peft_model.active_adapter
    base = peft_model.get_base_model()
    theirs = {n: m for n, m in base.named_modules()
              if hasattr(m, "lora_A") and isinstance(m.lora_A, nn.ModuleDict) and adapter in m.lora_A}
    if set(ours) != set(theirs):
        raise ValueError(f"LoRA sits on different modules. Only ours: {sorted(set(ours) - set(theirs))}; only "
                         f"peft's: {sorted(set(theirs) - set(ours))}. Build LoraConfig with the same target_modules.")
    for name, layer in ours.items():
        peft_layer = theirs[name]
        a, b = peft_layer.lora_A[adapter].weight, peft_layer.lora_B[adapter].weight
        if a.shape != layer.lora_A.shape or b.shape != layer.lora_B.shape:
            raise ValueError(f"{name}: peft has A {tuple(a.shape)}, B {tuple(b.shape)} but ours are A "
                             f"{tuple(layer.lora_A.shape)}, B {tuple(layer.lora_B.shape)}: use the same r.")
        if not math.isclose(peft_layer.scaling[adapter], layer.scaling):
            raise ValueError(f"{name}: peft's scaling is {peft_layer.scaling[adapter]:g}, ours {layer.scaling:g}: "
                             "use lora_alpha equal to our alpha (and use_rslora=False).")
        a.copy_(layer.lora_A)
        b.copy_(layer.lora_B)


def singular_values(delta: torch.Tensor) -> torch.Tensor:
    """Singular values of a 2-D matrix (e.g. ``LoRALinear.delta_weight()``), largest first, in float32."""
    if not isinstance(delta, torch.Tensor):
        raise TypeError(f"singular_values expects a 2-D torch.Tensor, got {type(delta).__name__}: pass e.g. "
                        "layer.delta_weight().")
    if delta.ndim != 2:
        raise ValueError(f"singular_values expects a 2-D matrix, got shape {tuple(delta.shape)}.")
    return torch.linalg.svdvals(delta.detach().float())


def effective_rank(s: torch.Tensor, energy: float = 0.9) -> int:
    """How many of the (descending) singular values ``s`` hold ``energy`` of ``sum(s**2)``; 0 for a zero matrix.

    ``energy=0.9`` answers "how many directions carry 90% of the update?". A tiny tolerance keeps float noise
    in the tail (values ~1e-7 of an exactly rank-k matrix) from counting.
    """
    if not 0.0 < finite_float("energy", energy, "pass e.g. energy=0.9") <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy!r}: pass e.g. energy=0.9 (90% of the update).")
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"effective_rank expects a 1-D torch.Tensor of singular values, got {type(s).__name__}: "
                        "pass singular_values(delta).")
    if s.ndim != 1:
        raise ValueError(f"effective_rank expects a 1-D vector of singular values, got shape {tuple(s.shape)}.")
    sq = s.detach().double().sort(descending=True).values ** 2
    total = sq.sum()
    if total == 0:
        return 0
    cumulative = sq.cumsum(0) / total
    return min(int((cumulative < energy - 1e-6).sum()) + 1, len(s))
