"""Position encodings from scratch: sinusoidal, RoPE (with interpolation and NTK scaling) and ALiBi.

A Transformer's attention is blind to order; these are the ways a decoder is told where each token sits.

* **Sinusoidal** (Vaswani et al. 2017): a fixed vector per position, added to the token embedding.
* **RoPE** (Su et al., RoFormer): rotate each (query, key) pair of dimensions by the angle ``m * theta_i``;
  the score ``<R_m q, R_n k>`` then depends only on ``m - n``. Written in the transformers convention, which
  pairs dimension ``i`` with ``i + d/2`` (``rotate_half``), not ``(2i, 2i+1)`` as Meta's and RoFormer's code do.
* **Position interpolation** (Chen et al. 2023, LLM-TAP §5.3): ``f'(x, m) = f(x, m L / L')``, i.e. divide the
  positions (equivalently the frequencies) by ``scale = L' / L`` so a longer input reuses the trained angles.
  ``transformers`` calls it ``rope_type="linear"``. **NTK-aware scaling** raises the base instead,
  ``base' = base * scale ** (d / (d - 2))``: high frequencies stay, low ones are interpolated.
* **ALiBi** (Press et al. 2022): no position vectors at all; add ``-m * (i - j)`` to the attention score of query
  ``i`` and key ``j``, with one slope ``m`` per head from ``{1/a, 1/a^2, ..., 1/256}``, ``a^num_heads = 256``.

Reference implementations: ofirpress/attention_with_linear_biases (``get_slopes``), transformers'
``LlamaRotaryEmbedding`` / ``rotate_half`` and ``modeling_rope_utils.py``, BLOOM's ``build_alibi_tensor``.
"""

from __future__ import annotations

import math

import torch

from . import validate

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3", "ntk")


# ---------------------------------------------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------------------------------------------

def _check_heads(num_heads: int) -> None:
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive integer, not {num_heads!r}: ALiBi gives one slope per head.")


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The ALiBi slope ``m`` of every head, shape ``[num_heads]``.

    For a power of two, the geometric sequence ``1/a, 1/a^2, ..., 1/a^n`` with ``a^n = 256`` (8 heads:
    1/2 ... 1/256). Otherwise the paper's rule: the slopes of the nearest lower power of two ``c``, then every
    other slope of ``2c`` heads (``[0::2]``) until there are ``num_heads``.
    """
    _check_heads(num_heads)

    def power_of_two(n: int) -> list[float]:
        a = 2 ** (8 / n)  # a^n = 256
        return [a ** -(h + 1) for h in range(n)]

    c = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = power_of_two(c)
    if c < num_heads:
        slopes += power_of_two(2 * c)[0::2][: num_heads - c]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(num_heads: int, q_len: int, k_len: int | None = None, *, causal: bool = True) -> torch.Tensor:
    """The bias ALiBi adds to the (scaled) attention scores, shape ``[num_heads, q_len, k_len]``.

    Entry ``[h, i, j]`` is ``-m_h * (i - j)``: zero on the diagonal, growing more negative with distance, so
    far keys are penalised linearly. With ``causal`` (a decoder) keys after the query get ``-inf``; without it
    the bias is symmetric, ``-m_h * |i - j|`` (the reference code's ``m * j`` shortcut is only valid causally).
    When ``k_len > q_len`` (a KV cache) the queries are the *last* ``q_len`` positions.
    """
    _check_heads(num_heads)
    validate.integer("q_len", q_len, "pass the number of query positions, e.g. q_len=8")
    k_len = q_len if k_len is None else validate.integer("k_len", k_len, "pass the number of key positions")
    if q_len < 1 or k_len < q_len:
        raise ValueError(f"Need 1 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}.")
    i = torch.arange(k_len - q_len, k_len).view(-1, 1)
    j = torch.arange(k_len).view(1, -1)
    distance = (i - j).float()
    bias = -alibi_slopes(num_heads).view(-1, 1, 1) * distance.abs()
    if causal:
        bias = bias.masked_fill(j > i, float("-inf"))
    return bias


# ---------------------------------------------------------------------------------------------------------------
# Sinusoidal
# ---------------------------------------------------------------------------------------------------------------

def sinusoidal_positions(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Vaswani et al.'s fixed position vectors, shape ``[n_positions, dim]``.

    ``PE[m, 2i] = sin(m / base^(2i/d))`` and ``PE[m, 2i+1] = cos(m / base^(2i/d))``. Defined for any ``m``:
    nothing stops a model from being run past its training length, which is exactly what chapter 6 tests.
    """
    validate.positive_int("n_positions", n_positions, "pass how many positions to encode, e.g. n_positions=64")
    validate.integer("dim", dim, "pass an even model width, e.g. dim=128")
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be even and >= 2 (sin and cos pairs), not {dim}.")
    _check_base(base)
    pos = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(n_positions, dim)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)
    return pe


# ---------------------------------------------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------------------------------------------

def _check_base(base: float) -> None:
    validate.float_above("base", base, 1, "pass the position base, e.g. base=10000.0")


def _check_head_dim(head_dim: int) -> None:
    if not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of dimensions, so head_dim must be even and >= 2, not {head_dim!r}.")


def rope_inv_freq(head_dim: int, base: float = 10000.0, scale: float = 1.0) -> torch.Tensor:
    """The rotation frequencies ``theta_i = base^(-2i/d) / scale``, shape ``[head_dim // 2]``.

    ``scale > 1`` is linear position interpolation: dividing every frequency by ``scale`` is the same as
    dividing every position by it.
    """
    _check_head_dim(head_dim)
    validate.positive_float("scale", scale, "pass the interpolation factor L'/L, e.g. scale=1.0 for none")
    _check_base(base)
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)) / scale


def rope_wavelengths(head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """How many positions each dimension pair needs for one full turn, ``2 pi / theta_i``."""
    return 2 * math.pi / rope_inv_freq(head_dim, base)


def ntk_base(base: float, scale: float, head_dim: int) -> float:
    """The NTK-aware base for extending the context ``scale`` times: ``base * scale^(d / (d - 2))``.

    The fastest pair (i = 0) keeps its frequency; the slowest is slowed by exactly ``scale`` (interpolated).
    ``transformers`` has no static NTK type: set ``rope_parameters["rope_theta"]`` to this value.
    """
    _check_head_dim(head_dim)
    if head_dim == 2:
        raise ValueError("NTK scaling needs head_dim > 2 (the exponent is d / (d - 2)).")
    _check_base(base)
    validate.float_at_least("scale", scale, 1, "scale is the extension ratio L'/L, e.g. scale=4.0 for 4x the "
                            "context (scale < 1 would shrink it)")
    return float(base * scale ** (head_dim / (head_dim - 2)))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension: pairs dimension ``i`` with ``i + d/2``."""
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"rotate_half pairs dimension i with i + d/2, so the last dimension must be even, got "
                         f"shape {tuple(x.shape)}: pass queries or keys of an even head_dim.")
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _check_positions(positions: torch.Tensor) -> None:
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a tensor, got {type(positions).__name__}: pass e.g. torch.arange(seq).")
    # Integer positions (the model's own) are always finite; only fractional ones are checked, once per call.
    if positions.is_floating_point() and not torch.isfinite(positions).all():
        raise ValueError("positions holds nan or inf: pass finite positions, e.g. torch.arange(seq) / scale.")


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float = 10000.0,
                 scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of the angles ``m * theta_i`` (fp32), shape ``positions.shape + (head_dim,)``."""
    _check_positions(positions)
    freqs = positions.float().unsqueeze(-1) * rope_inv_freq(head_dim, base, scale).to(positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)  # the same angle for dimension i and i + d/2
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0,
               scale: float = 1.0) -> torch.Tensor:
    """Rotate queries or keys ``x`` of shape ``[..., seq, head_dim]`` to their positions.

    Args:
        x: e.g. ``[batch, heads, seq, head_dim]``.
        positions: ``[seq]`` or ``[batch, seq]`` (integer or fractional); default ``0 .. seq-1``.
        base: the RoPE base (10,000 in RoFormer and Llama 2; SmolLM2 uses 100,000).
        scale: linear position interpolation factor ``L' / L`` (1 = plain RoPE).

    Returns:
        ``x * cos + rotate_half(x) * sin`` in ``x``'s dtype (the transformers formula).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"x must be a tensor [..., seq, head_dim], got {getattr(x, 'shape', type(x).__name__)}: "
                         "pass e.g. queries of shape [batch, heads, seq, head_dim].")
    _check_head_dim(x.shape[-1])
    seq = x.shape[-2]
    if positions is None:
        positions = torch.arange(seq, device=x.device)
    _check_positions(positions)
    if positions.shape[-1] != seq:
        raise ValueError(f"positions has {positions.shape[-1]} entries but x has {seq} positions (dim -2).")
    cos, sin = rope_cos_sin(positions, x.shape[-1], base, scale)
    if positions.dim() == 2 and x.dim() == 4:  # [batch, seq, d] -> [batch, 1, seq, d] to broadcast over heads
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (x.float() * cos + rotate_half(x.float()) * sin).to(x.dtype)


# ---------------------------------------------------------------------------------------------------------------
# Context extension on a transformers model
# ---------------------------------------------------------------------------------------------------------------

def rope_parameters(rope_type: str, factor: float = 1.0, *, base: float, head_dim: int | None = None,
                    original_max_position_embeddings: int | None = None) -> dict:
    """The transformers 5 ``config.rope_parameters`` dict for a context-extension method.

    ``rope_type`` is one of ``default | linear | dynamic | yarn | llama3`` (the library's) or ``ntk`` (static
    NTK-aware scaling, written as a ``default`` type with a raised ``rope_theta``: the library has no static
    NTK type). ``factor`` is ``L' / L``.
    """
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"Unknown rope_type {rope_type!r}; choose one of {ROPE_TYPES}.")
    validate.finite_float("factor", factor, "factor is L'/L, the extension ratio, e.g. factor=4.0")
    if not factor >= 1:
        raise ValueError(f"factor is L'/L, the extension ratio; it must be >= 1, not {factor}.")
    _check_base(base)
    if original_max_position_embeddings is not None:
        validate.positive_int("original_max_position_embeddings", original_max_position_embeddings,
                              "pass the context length the model was trained at, e.g. 2048")
    if rope_type == "default":
        return {"rope_type": "default", "rope_theta": base}
    if rope_type == "ntk":
        if head_dim is None:
            raise ValueError("Static NTK scaling needs head_dim (the exponent is d / (d - 2)).")
        return {"rope_type": "default", "rope_theta": ntk_base(base, factor, head_dim)}
    params = {"rope_type": rope_type, "factor": float(factor), "rope_theta": base}
    if rope_type in ("yarn", "llama3") and original_max_position_embeddings:
        params["original_max_position_embeddings"] = original_max_position_embeddings
    if rope_type == "llama3":
        params.update(low_freq_factor=1.0, high_freq_factor=4.0)
    return params


def set_rope_scaling(model, rope_type: str = "default", factor: float = 1.0, *, base: float | None = None):
    """Switch a loaded Llama-family model to another RoPE scaling, in place, and return it.

    Sets ``model.config.rope_parameters`` (the transformers 5 key; ``rope_scaling`` in 4.x) and rebuilds the
    rotary-embedding module that every layer reads its ``cos``/``sin`` from, so no reload is needed.
    ``base`` defaults to the model's original ``rope_theta`` (remembered on the first call).
    """
    cfg = model.config
    if not hasattr(cfg, "rope_parameters"):
        raise ValueError("This model's config has no rope_parameters: it does not use RoPE (or predates "
                         "transformers 5).")
    original = getattr(model, "_course_original_rope", None)
    if original is None:
        original = dict(cfg.rope_parameters)
        model._course_original_rope = original
    base = float(original["rope_theta"]) if base is None else base
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    cfg.rope_parameters = rope_parameters(rope_type, factor, base=base, head_dim=head_dim,
                                          original_max_position_embeddings=cfg.max_position_embeddings)
    inner = getattr(model, "model", model)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None:
        raise ValueError("Cannot find the model's rotary embedding (model.model.rotary_emb).")
    device = rotary.inv_freq.device
    inner.rotary_emb = type(rotary)(config=cfg).to(device)
    return model
