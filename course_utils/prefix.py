"""Chapter 4: prefix tuning (Li & Liang 2021) and soft prompts (Lester et al. 2021), with HF ``peft``.

Both freeze the whole model and learn ``n`` "virtual tokens":

* **Soft prompt** (prompt tuning): ``n`` trainable vectors prepended to the *input embeddings*. The model sees
  ``n + T`` positions, so peft's logits have shape ``(B, n + T, V)``: :func:`strip_virtual_tokens` drops the
  first ``n``. Trainable parameters: ``n * hidden``.
* **Prefix tuning**: trainable keys and values prepended in *every* layer, handed to the model as a
  ``past_key_values`` cache. The logits keep shape ``(B, T, V)``. Trainable parameters:
  ``n * layers * 2 * kv_dim`` where ``kv_dim = num_key_value_heads * head_dim``: with grouped-query attention
  (SmolLM2: 3 KV heads for 9 query heads) the prefix is that much smaller than ``n * layers * 2 * hidden``.

Both use up context. Measured with transformers 5.23 + peft 0.21: under prefix tuning the real tokens get
positions ``n, n+1, ..., n+T-1`` (the model counts the prefix as ``n`` already-seen tokens; an explicit
``position_ids`` is shifted by ``n`` too), and a soft prompt occupies positions ``0..n-1`` itself. Either way a
``T``-token input reaches position ``n + T - 1``, so only :func:`remaining_context` tokens fit. RoPE models do
not crash past their window (they silently degrade), so the models built here carry a forward pre-hook,
:class:`ContextGuard`, that raises a clear error instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .device import model_device
from .models import ContextLengthError, context_window
from .validate import non_negative_int

if TYPE_CHECKING:
    from peft import PeftModel


def _get_peft_model(model: nn.Module, config) -> PeftModel:
    from peft import get_peft_model

    with warnings.catch_warnings():
        # peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`: noise, not the learner's concern.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def _uses_checkpointing(model: nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


class ContextGuard:
    """Forward pre-hook for a prompt-learning peft model: input + virtual tokens must fit the context window.

    Prefix tuning also refuses gradient checkpointing in training mode: transformers then drops the
    ``past_key_values`` that carry the prefix and fails later with an opaque shape mismatch. (Only ``forward``
    is guarded; ``generate`` bypasses it, so check ``prompt + max_new_tokens + n`` yourself there.)
    """

    def __init__(self, num_virtual_tokens: int, window: int, prefix: bool):
        self.n, self.window, self.prefix = num_virtual_tokens, window, prefix

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Check the forward's input (``input_ids`` or ``inputs_embeds``) before peft adds the virtual tokens."""
        x = kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None and args:
            x = args[0]
        if x is not None and x.shape[1] + self.n > self.window:
            raise ContextLengthError(
                f"The input has {x.shape[1]} tokens plus {self.n} virtual tokens = {x.shape[1] + self.n}, but the "
                f"context window is {self.window}: virtual tokens use up context. Truncate inputs to "
                f"remaining_context(model, {self.n}) = {self.window - self.n} tokens, or use fewer virtual tokens.")
        if self.prefix and module.training and _uses_checkpointing(module):
            raise ValueError("Prefix tuning does not work with gradient checkpointing (transformers drops the "
                             "prefix cache). Call model.gradient_checkpointing_disable(), or use LoRA.")


def _check_n(model: nn.Module, num_virtual_tokens: int) -> int:
    window = context_window(model)
    message = (f"num_virtual_tokens must be an integer in [1, {window}) for a context window of {window}, got "
               f"{num_virtual_tokens!r}: pass e.g. num_virtual_tokens=20 (typical values: 8 to 100).")
    if isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int):  # True is not a count
        raise TypeError(message)
    if not 1 <= num_virtual_tokens < window:
        raise ValueError(message)
    return window


def _check_init_text(init_text, tokenizer) -> None:
    if init_text is None:
        return
    if not isinstance(init_text, str):
        raise TypeError(f"init_text must be a str (words to start the virtual tokens from), got {init_text!r}: pass "
                        "e.g. init_text='Classify the sentiment of the review.'")
    if not init_text.strip():
        raise ValueError("init_text is empty: pass words that describe the task, or init_text=None for a random "
                         "start.")
    if tokenizer is None:
        raise ValueError("init_text needs the tokenizer: pass tokenizer=tok (the model's own).")


def prefix_tuning(model: nn.Module, num_virtual_tokens: int = 20, prefix_projection: bool = False,
                  init_text: str | None = None, tokenizer: Callable | None = None) -> PeftModel:
    """Wrap ``model`` (frozen, modified in place) with peft prefix tuning; returns the ``PeftModel``.

    Args:
        num_virtual_tokens: prefix length ``n``; each layer gets ``n`` trainable keys and values.
        prefix_projection: train the prefix through an MLP (``Embedding -> Linear -> Tanh -> Linear``, the
            paper's reparameterisation for stable training) instead of as a plain table.
        init_text: start the prefix as the keys and values the model computes for this text (Li & Liang's
            "initialise with activations of real words"; see :func:`init_prefix_from_text`). Without it peft
            draws them from N(0, 1), which disturbs the frozen model badly at step 0.

    Raises:
        ValueError: bad ``num_virtual_tokens``, or gradient checkpointing is on (peft cannot support it).
    """
    from peft import PrefixTuningConfig

    window = _check_n(model, num_virtual_tokens)
    if init_text is not None:
        if prefix_projection:
            raise ValueError("init_text sets the prefix table directly; use it with prefix_projection=False.")
        if tokenizer is None:
            raise ValueError("init_text needs the tokenizer: prefix_tuning(model, n, init_text=..., tokenizer=tok).")
        _check_init_text(init_text, tokenizer)
    if _uses_checkpointing(model):
        raise ValueError("Prefix tuning does not work with gradient checkpointing: call "
                         "model.gradient_checkpointing_disable() first, or use LoRA.")
    config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=num_virtual_tokens,
                                prefix_projection=prefix_projection)
    peft_model = _get_peft_model(model, config)
    if init_text is not None:
        init_prefix_from_text(peft_model, tokenizer, init_text)
    peft_model.register_forward_pre_hook(ContextGuard(num_virtual_tokens, window, prefix=True), with_kwargs=True)
    return peft_model


@torch.no_grad()
def init_prefix_from_text(peft_model: PeftModel, tokenizer: Callable | None, text: str) -> None:
    """Set a prefix-tuning table to the per-layer keys and values of ``text`` (cut or repeated to ``n`` tokens).

    peft lays the table out as ``[n, layers * 2 * kv_heads * head_dim]``, reshaped to ``[n, layers * 2, kv_heads,
    head_dim]``: entry ``2l`` is layer ``l``'s keys and ``2l + 1`` its values. The cache holds keys after RoPE at
    positions ``0..n-1``, exactly the positions the prefix occupies, so at step 0 the model reads the prefix as if
    ``text`` preceded the input.

    Raises:
        ValueError: no tokenizer, or an empty text.
    """
    if tokenizer is None:
        raise ValueError("init_text needs the tokenizer: prefix_tuning(model, n, init_text=..., tokenizer=tok).")
    n = peft_model.peft_config[peft_model.active_adapter].num_virtual_tokens
    ids = list(tokenizer(text)["input_ids"])
    if not ids:
        raise ValueError(f"init_text {text!r} gave no tokens; use a non-empty text.")
    ids = (ids * -(-n // len(ids)))[:n]
    base = peft_model.get_base_model()
    table = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
    cache = base(input_ids=torch.tensor([ids], device=model_device(base)), use_cache=True).past_key_values
    kv = [t for layer in cache.layers for t in (layer.keys, layer.values)]  # each [1, kv_heads, n, head_dim]
    table.copy_(torch.stack(kv, dim=0)[:, 0].permute(2, 0, 1, 3).reshape(n, -1).to(table.dtype))


def soft_prompt(model: nn.Module, num_virtual_tokens: int = 8, init_text: str | None = None,
                tokenizer: Callable | None = None) -> PeftModel:
    """Wrap ``model`` (frozen, modified in place) with a peft soft prompt of ``num_virtual_tokens`` vectors.

    Without ``init_text`` the prompt starts random (peft's ``RANDOM``: ``N(0, 1)``, far larger than typical
    word embeddings). With ``init_text`` it starts as the embeddings of that text's tokens, cut or repeated to
    ``n``: the same rows as peft's ``TEXT`` init. peft's ``TEXT`` init reloads a tokenizer from a Hub or local
    path (``tokenizer_name_or_path``); here the tokenizer object is passed in, so it works offline and with any
    callable returning ``{"input_ids": [...]}``.

    Raises:
        ValueError: ``init_text`` without a tokenizer, an empty text, or token ids outside the vocabulary.
    """
    from peft import PromptTuningConfig

    window = _check_n(model, num_virtual_tokens)
    if init_text is not None and tokenizer is None:
        raise ValueError("soft_prompt(init_text=...) needs the tokenizer too: soft_prompt(model, n, init_text, tok).")
    _check_init_text(init_text, tokenizer)
    ids = None
    if init_text is not None:
        ids = list(tokenizer(init_text)["input_ids"])  # the same call peft makes, special tokens included
        if not ids:
            raise ValueError(f"init_text {init_text!r} gave no tokens; use a non-empty text.")
        ids = (ids * -(-num_virtual_tokens // len(ids)))[:num_virtual_tokens]  # repeat, then cut, like peft
        vocab = model.get_input_embeddings().num_embeddings
        if max(ids) >= vocab:
            raise ValueError(f"The tokenizer gave id {max(ids)} but the model's vocabulary has {vocab} entries: "
                             "pass the model's own tokenizer.")
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=num_virtual_tokens)
    peft_model = _get_peft_model(model, config)
    if ids is not None:
        embedding = peft_model.prompt_encoder[peft_model.active_adapter].embedding
        with torch.no_grad():
            words = peft_model.word_embeddings
            rows = words(torch.tensor(ids, device=words.weight.device))
            embedding.weight.copy_(rows.to(embedding.weight.dtype))
    peft_model.register_forward_pre_hook(ContextGuard(num_virtual_tokens, window, prefix=False), with_kwargs=True)
    return peft_model


def remaining_context(model: nn.Module, num_virtual_tokens: int) -> int:
    """Tokens of real input that still fit: the context window minus the ``num_virtual_tokens`` it loses."""
    window = context_window(model)
    if isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int):
        raise TypeError(f"num_virtual_tokens must be an integer >= 0, got {num_virtual_tokens!r}: pass the n given "
                        "to prefix_tuning / soft_prompt, e.g. 20.")
    if num_virtual_tokens < 0:
        raise ValueError(f"num_virtual_tokens must be >= 0, got {num_virtual_tokens}: pass the n given to "
                         "prefix_tuning / soft_prompt, e.g. 20.")
    if num_virtual_tokens >= window:
        raise ValueError(f"{num_virtual_tokens} virtual tokens leave no room in a context window of {window}.")
    return window - num_virtual_tokens


def strip_virtual_tokens(logits: torch.Tensor, num_virtual_tokens: int) -> torch.Tensor:
    """Drop the soft prompt's positions from peft prompt-tuning logits: ``(B, n + T, V) -> (B, T, V)``.

    Needed before scoring by hand (log-probs of the real tokens); prefix-tuning logits are already ``(B, T, V)``.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"Expected the logits tensor (model(...).logits), got {type(logits).__name__}.")
    if isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int):
        raise TypeError(f"num_virtual_tokens must be an integer >= 0, got {num_virtual_tokens!r}: pass the n given "
                        "to soft_prompt, e.g. 8.")
    if logits.ndim != 3:
        raise ValueError(f"Expected logits of shape (batch, n_virtual + T, vocab), got {tuple(logits.shape)}.")
    if not 0 <= num_virtual_tokens < logits.shape[1]:
        raise ValueError(f"Cannot strip {num_virtual_tokens} virtual tokens from {logits.shape[1]} positions: "
                         "are these prefix-tuning logits (nothing to strip) or the wrong n?")
    return logits[:, num_virtual_tokens:]


def prefix_parameter_count(config, num_virtual_tokens: int) -> int:
    """Prefix-tuning parameters without projection: ``n * layers * 2 * num_key_value_heads * head_dim``.

    ``config`` is the model's ``PretrainedConfig``; with grouped-query attention the keys and values (hence the
    prefix) are ``num_attention_heads / num_key_value_heads`` times smaller than ``hidden_size``.
    """
    non_negative_int("num_virtual_tokens", num_virtual_tokens, "pass the n given to prefix_tuning, e.g. 20")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return num_virtual_tokens * config.num_hidden_layers * 2 * kv_heads * head_dim
