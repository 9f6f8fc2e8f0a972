"""Chapter 4: bottleneck adapters (Houlsby et al. 2019), written by hand.

An adapter is a small MLP with a residual connection, ``h + up(act(down(h)))``, inserted *in series* after a
sublayer: Houlsby puts two per Transformer layer, one after the attention output projection and one after the
feed-forward network, before each residual add. In a Llama layer those outputs are ``self_attn.o_proj`` and
``mlp.down_proj``, so :class:`AdapterLinear` wraps exactly those two Linears::

    h = h + adapter(o_proj(attn(norm(h))))       # adapter 1
    h = h + adapter(down_proj(ffn(norm(h))))     # adapter 2

``up`` starts at zero, so each adapter is the identity at step 0. Unlike LoRA, the nonlinearity means an adapter
cannot be folded into the frozen weights: it adds depth, and with it inference latency (see ``latency.py``).

(The ``adapters`` library from AdapterHub does this too, but it pins transformers 4.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .lora import match_linear_modules
from .validate import positive_int

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _check_sizes(hidden_size, bottleneck, activation: str = "gelu") -> None:
    positive_int("hidden_size", hidden_size, "pass the model's hidden size, e.g. hidden_size=576")
    fix = "pass e.g. bottleneck=16 (Houlsby et al. use 8 to 256)"
    if isinstance(bottleneck, bool) or not isinstance(bottleneck, int):  # True is an int, but not a size
        raise TypeError(f"bottleneck must be >= 1 and an integer, got {bottleneck!r}: {fix}.")
    if bottleneck < 1:
        raise ValueError(f"bottleneck must be >= 1, got {bottleneck!r}: {fix}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))`` with ``down: hidden -> bottleneck`` and ``up: bottleneck -> hidden``.

    ``up`` (weight and bias) starts at zero, so the adapter is exactly the identity at initialisation.
    Parameters: ``2 * hidden * bottleneck + bottleneck + hidden``.
    """

    def __init__(self, hidden_size: int, bottleneck: int = 16, activation: str = "gelu"):
        super().__init__()
        _check_sizes(hidden_size, bottleneck, activation)
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The residual bottleneck: ``h`` plus a learned correction that starts at zero."""
        return h + self.up(self.act(self.down(h)))


class AdapterLinear(nn.Module):
    """A frozen ``nn.Linear`` followed by a :class:`BottleneckAdapter` on its output: ``adapter(base(x))``.

    Wrapping a sublayer's output projection puts the adapter between the sublayer and its residual add,
    where Houlsby et al. place it.
    """

    wraps_linear = True  # lora.match_linear_modules skips the Linears inside (base, adapter.down, adapter.up)

    def __init__(self, base: nn.Linear, bottleneck: int = 16, activation: str = "gelu"):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"AdapterLinear wraps an nn.Linear, got {type(base).__name__}.")
        self.base = base.requires_grad_(False)
        # float32 whatever the base's dtype, like LoRA (and peft): small updates survive; forward casts in and out
        self.adapter = BottleneckAdapter(base.out_features, bottleneck, activation).to(device=base.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen projection, then the trainable adapter."""
        h = self.base(x)
        return self.adapter(h.to(self.adapter.up.weight.dtype)).to(h.dtype)


def inject_adapters(model: nn.Module, bottleneck: int = 16,
                    target_modules: str | Iterable[str] = ("o_proj", "down_proj"),
                    activation: str = "gelu") -> nn.Module:
    """Wrap every matching Linear in an :class:`AdapterLinear` and freeze everything else (in place).

    The default targets give Houlsby's two adapters per Llama layer (after attention, after the FFN).

    Returns:
        ``model`` itself, where only the adapters' parameters require grad.

    Raises:
        ValueError: no Linear matches ``target_modules`` (the message lists the names that exist).
    """
    _check_sizes(1, bottleneck, activation)  # before the model is changed
    names = match_linear_modules(model, target_modules)
    model.requires_grad_(False)
    for name in names:
        model.set_submodule(name, AdapterLinear(model.get_submodule(name), bottleneck, activation))
    return model


def adapter_parameter_count(hidden_size: int, bottleneck: int, num_adapters: int) -> int:
    """Trainable parameters of ``num_adapters`` bottleneck adapters: ``n * (2*h*b + b + h)``."""
    _check_sizes(hidden_size, bottleneck)
    num_adapters = positive_int("num_adapters", num_adapters, "pass e.g. num_adapters=2 * num_layers (Houlsby)")
    return num_adapters * (2 * hidden_size * bottleneck + bottleneck + hidden_size)
