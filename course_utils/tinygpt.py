"""TinyGPT: a small decoder-only Transformer (nanoGPT-sized) whose position encoding is a switch.

``position`` is one of

* ``none``: no position signal at all; only the causal mask tells tokens apart (NoPE);
* ``learned``: a trained vector per position 0 .. block_size-1 (GPT-2); undefined past the table;
* ``sinusoidal``: Vaswani et al.'s fixed vectors, added to the token embeddings;
* ``rope``: queries and keys rotated by their position (Llama); ``rope_scale`` > 1 interpolates positions;
* ``alibi``: a linear distance penalty on the attention scores (BLOOM, MPT); no position vectors.

Everything else is identical, so a comparison isolates the position encoding. The model speaks the
``transformers`` calling convention (``model(input_ids=...).logits``), so chapter 4's engine
(:func:`course_utils.sft.train`) trains it. Code after Karpathy's nanoGPT ``model.py`` (MIT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from course_utils.device import model_device
from course_utils.models import ContextLengthError
from course_utils.positions import alibi_bias, apply_rope, sinusoidal_positions
from course_utils.validate import (
    float_above,
    int_at_least,
    integer,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)

POSITIONS = ("none", "learned", "sinusoidal", "rope", "alibi")


@dataclass
class GPTConfig:
    """The shape of a :class:`TinyGPT`.

    ``block_size`` is the training context length L: the learned table's size, and the length every other
    variant was trained at (they can run longer; whether they still work is the experiment).
    """

    vocab_size: int = 256
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    position: str = "rope"
    rope_base: float = 10000.0
    rope_scale: float = 1.0
    dropout: float = 0.0

    def validate(self) -> None:
        """Raise a clear ``ValueError`` for a shape that cannot be built."""
        if self.position not in POSITIONS:
            raise ValueError(f"Unknown position encoding {self.position!r}; choose one of {POSITIONS}.")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            integer(name, getattr(self, name), f"pass a whole number, e.g. {name}={getattr(GPTConfig, name)}")
        if self.n_head < 1 or self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must split evenly over n_head={self.n_head} heads.")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE needs an even head dimension; n_embd / n_head = {self.n_embd // self.n_head}.")
        sizes = {n: getattr(self, n) for n in ("vocab_size", "block_size", "n_layer", "n_embd")}
        if min(sizes.values()) < 1:
            raise ValueError(f"vocab_size, block_size, n_layer and n_embd must be positive, got {sizes}.")
        float_above("rope_base", self.rope_base, 1, "pass e.g. rope_base=10000.0")
        positive_float("rope_scale", self.rope_scale, "pass 1.0 for plain RoPE, L'/L to interpolate")
        probability("dropout", self.dropout, "pass a drop probability, e.g. dropout=0.1 (0.0 for none)")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; RoPE rotates q and k here, ALiBi arrives as an additive bias."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        h = self.cfg.n_head
        q, k, v = (t.view(B, T, h, C // h).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        if self.cfg.position == "rope":
            q = apply_rope(q, base=self.cfg.rope_base, scale=self.cfg.rope_scale)
            k = apply_rope(k, base=self.cfg.rope_base, scale=self.cfg.rope_scale)
        drop = self.dropout if self.training else 0.0
        if bias is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:  # ALiBi: softmax(q k^T / sqrt(d) + bias), the causal -inf already inside the bias
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), bias)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only LM with a switchable position encoding (see the module docstring)."""

    def __init__(self, cfg: GPTConfig, seed: int = 0):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"TinyGPT takes a GPTConfig, got {type(cfg).__name__}: pass e.g. "
                            "TinyGPT(GPTConfig(n_layer=2, position='rope')).")
        cfg.validate()
        self.config = cfg
        torch.manual_seed(seed)
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.position == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def position_signal(self, T: int, device: torch.device) -> torch.Tensor | None:
        """What is added to the token embeddings for positions 0..T-1 (``None`` for none / rope / alibi)."""
        p = self.config.position
        if p == "learned":
            if T > self.config.block_size:
                raise ContextLengthError(
                    f"This model has learned position embeddings for {self.config.block_size} positions only; "
                    f"an input of {T} tokens has no vector for positions {self.config.block_size}..{T - 1}. "
                    "Learned positions cannot extrapolate: truncate the input, or use rope / alibi.")
            return self.wpe(torch.arange(T, device=device))
        if p == "sinusoidal":
            return sinusoidal_positions(T, self.config.n_embd).to(device)
        return None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> CausalLMOutput:
        """Logits ``[batch, seq, vocab]`` (and the shifted LM loss when ``labels`` are given).

        ``attention_mask`` is accepted for the transformers convention and ignored: with causal attention,
        right padding (the course collator's) cannot influence the real tokens, whose labels are all that count.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}: add a batch "
                             "dimension with input_ids[None].")
        T = input_ids.shape[1]
        x = self.wte(input_ids)
        pos = self.position_signal(T, input_ids.device)
        if self.config.position == "sinusoidal":
            # As Vaswani et al.: scale the token embeddings by sqrt(d) so the fixed, unit-sized sin/cos signal
            # does not swamp them (with std-0.02 embeddings it does, and the model barely trains).
            x = x * self.config.n_embd ** 0.5
        if pos is not None:
            x = x + pos
        bias = alibi_bias(self.config.n_head, T).to(x.device) if self.config.position == "alibi" else None
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, bias)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def num_parameters(self) -> int:
        """Parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def set_rope(self, *, scale: float | None = None, base: float | None = None) -> TinyGPT:
        """Change RoPE's interpolation scale or base in place (no weights change); returns the model."""
        if self.config.position != "rope":
            raise ValueError(f"set_rope needs a rope model, this one uses {self.config.position!r} positions.")
        if scale is not None:
            self.config.rope_scale = positive_float("scale", scale, "pass a positive factor, e.g. scale=4.0")
        if base is not None:
            self.config.rope_base = float_above("base", base, 1, "pass e.g. base=10000.0")
        return self

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 seed: int = 0) -> torch.Tensor:
        """Sample a continuation (no KV cache: the whole sequence is re-read each step, fine at this size).

        ``temperature`` 0 is greedy (the most likely byte every step).
        """
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError(f"input_ids must be a [batch, seq] tensor, got {getattr(input_ids, 'shape', input_ids)!r}"
                             ": pass e.g. torch.tensor([[72, 105]]).")
        non_negative_int("max_new_tokens", max_new_tokens, "pass how many tokens to add, e.g. max_new_tokens=50")
        non_negative_float("temperature", temperature, "pass e.g. temperature=1.0 (0 for greedy)")
        g = torch.Generator(device=input_ids.device).manual_seed(seed)
        ids = input_ids
        for _ in range(max_new_tokens):
            window = ids[:, -self.config.block_size:] if self.config.position == "learned" else ids
            logits = self(window).logits[:, -1] / max(temperature, 1e-6)
            nxt = torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=g)
            ids = torch.cat([ids, nxt], dim=1)
        return ids

    def describe(self) -> dict:
        """The config and parameter count, for tables."""
        return {**asdict(self.config), "parameters": self.num_parameters()}


# ---------------------------------------------------------------------------------------------------------------
# Training and per-length evaluation
# ---------------------------------------------------------------------------------------------------------------

def _check_stream(ids: torch.Tensor) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor of token ids, got {getattr(ids, 'shape', type(ids).__name__)}: "
                         "pass e.g. torch.tensor(encode_bytes(text)).")


def lm_examples(ids: torch.Tensor, length: int, n: int, seed: int = 0) -> list[dict]:
    """``n`` training windows of ``length`` tokens at random offsets of the token stream ``ids``.

    Each is an engine example (``input_ids`` = ``labels``): every token is a target (language modelling).

    Raises:
        ValueError: the stream is shorter than one window.
    """
    _check_stream(ids)
    int_at_least("length", length, 2, "a window needs 2 tokens to have a next-token target, e.g. length=64")
    positive_int("n", n, "pass how many windows to cut, e.g. n=100")
    if len(ids) <= length:
        raise ValueError(f"The token stream has {len(ids)} tokens, too few for windows of {length}.")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - length, (n,), generator=g).tolist()
    return [{"input_ids": ids[s:s + length].tolist(), "labels": ids[s:s + length].tolist()} for s in starts]


def train_lm(model: nn.Module, ids: torch.Tensor, *, seq_len: int, steps: int, batch_size: int = 16,
             lr: float = 1e-3, warmup_steps: int | None = None, seed: int = 0, progress: bool = True,
             desc: str | None = None):
    """Pre-train ``model`` on windows of ``seq_len`` tokens with chapter 4's engine; returns its ``TrainResult``.

    AdamW with warm-up and cosine decay, gradient clipping at 1.0; each window is seen once
    (``steps * batch_size`` windows at seeded random offsets).
    """
    from course_utils import sft

    positive_int("steps", steps, "pass e.g. steps=200")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    positive_float("lr", lr, "pass a learning rate, e.g. lr=1e-3")
    if warmup_steps is not None:
        non_negative_int("warmup_steps", warmup_steps, "pass e.g. warmup_steps=10, or None for 5% of the steps")
    data = lm_examples(ids, seq_len, steps * batch_size, seed=seed)
    warmup = max(1, steps // 20) if warmup_steps is None else warmup_steps
    cfg = sft.TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup, weight_decay=0.1,
                          seed=seed, plot=None, progress=progress)
    if desc and progress:
        print(desc)
    return sft.train(model, data, cfg, pad_id=0)


@torch.no_grad()
def loss_by_position(model: nn.Module, ids: torch.Tensor, length: int, n_windows: int = 16,
                     batch_size: int = 8) -> torch.Tensor:
    """Mean next-token loss at every position of ``n_windows`` non-overlapping windows of ``length`` tokens.

    Returns a tensor of ``length - 1`` values: entry ``t`` is the loss of predicting token ``t + 1`` from
    tokens ``0..t``. Flat past the training length = the model extrapolates; rising = it does not.

    Raises:
        ValueError: the stream holds fewer than ``n_windows`` windows (the message says how many fit).
        ContextLengthError: from a learned-position model asked to read past its table.
    """
    _check_stream(ids)
    int_at_least("length", length, 2, "a window needs 2 tokens to score one, e.g. length=64")
    positive_int("n_windows", n_windows, "pass e.g. n_windows=16")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    fit = len(ids) // length
    if fit < n_windows:
        raise ValueError(f"{len(ids)} tokens hold only {fit} windows of {length}; ask for n_windows <= {fit}.")
    windows = ids[: n_windows * length].view(n_windows, length)
    dev = model_device(model)
    was_training = model.training
    model.eval()
    total = torch.zeros(length - 1)
    for i in range(0, n_windows, batch_size):
        x = windows[i:i + batch_size].to(dev)
        logits = model(input_ids=x).logits[:, :-1].float()
        nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        total += nll.sum(0).cpu()
    model.train(was_training)
    return total / n_windows


def perplexity_by_length(model: nn.Module, ids: torch.Tensor, lengths: list[int], n_tokens: int | None = None,
                         batch_size: int = 8) -> dict[int, float]:
    """Perplexity on non-overlapping windows of each length, every token of a window scored.

    Every length reads the *same* ``n_tokens`` tokens (default: as many whole windows of the longest length as
    ``ids`` holds), cut into windows of that length, so the lengths differ only in how much context each token
    gets. A learned-position model asked for a length past its table gets ``nan`` (it cannot run at all).
    """
    _check_stream(ids)
    if isinstance(lengths, (int, str)) or not lengths:
        raise ValueError(f"lengths must be a non-empty list of window lengths, got {lengths!r}: pass e.g. [64, 128].")
    for n in lengths:
        int_at_least("each length", n, 2, "pass window lengths of 2 tokens or more, e.g. [64, 128]")
    longest = max(lengths)
    n_tokens = (len(ids) // longest) * longest if n_tokens is None else integer(
        "n_tokens", n_tokens, "pass a token count, or None for as many as fit")
    if n_tokens < longest or n_tokens > len(ids) or any(n_tokens % n for n in lengths):
        raise ValueError(f"n_tokens={n_tokens} must be a multiple of every length {lengths} and fit in the "
                         f"{len(ids)} tokens given.")
    out = {}
    for length in lengths:
        try:
            out[length] = float(loss_by_position(model, ids, length, n_tokens // length, batch_size).mean().exp())
        except ContextLengthError:
            out[length] = float("nan")
    return out
