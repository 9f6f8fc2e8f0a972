"""Chapter 1: the three architectures as attention masks, and the LM objective by hand.

One Transformer stack becomes a different architecture by the mask it uses (LLM Q&A §1):
an all-ones mask (全1) is bidirectional attention (BERT, the encoder of T5); a lower-triangular mask (下三角)
is causal attention (GPT, Llama); a prefix-LM mask lets the prefix see itself both ways and the target see the
prefix plus earlier targets (UniLM, GLM, the T5 paper's "prefix LM").

Masks here are boolean ``allowed[i, j]``: query ``i`` may attend to key ``j``. A model wants an *additive*
float mask (0 = attend, a very negative number = blocked): see :func:`to_additive_4d` and why it matters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import validate
from .device import encode, model_device

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and transformers) skips

# Region codes of :func:`mask_regions`, in the colours of the LLM Q&A's figure.
BLOCKED, PREFIX_PREFIX, TARGET_PREFIX, TARGET_TARGET, PREFIX_TARGET = range(5)


def _check_len(name: str, T: int) -> None:
    validate.positive_int(name, T, f"pass the sequence length in tokens, e.g. {name}=8")


def causal_mask(T: int) -> torch.Tensor:
    """Causal decoder (GPT / Llama): token ``i`` sees ``j <= i``. A lower-triangular boolean ``[T, T]``."""
    _check_len("T", T)
    return torch.ones(T, T, dtype=torch.bool).tril()


def bidirectional_mask(T: int) -> torch.Tensor:
    """Encoder (BERT, T5 encoder): every token sees every token. An all-ones boolean ``[T, T]``."""
    _check_len("T", T)
    return torch.ones(T, T, dtype=torch.bool)


def prefix_lm_mask(T: int, prefix_len: int) -> torch.Tensor:
    """Prefix decoder: ``allowed[i, j] = j <= i or j < prefix_len``.

    Prefix tokens see each other in both directions; target tokens see the whole prefix and earlier targets.

    Raises:
        ValueError: if ``prefix_len`` is not in ``0..T``.
    """
    _check_len("T", T)
    validate.integer("prefix_len", prefix_len, "pass the prefix length in tokens, e.g. prefix_len=3")
    if not 0 <= prefix_len <= T:
        raise ValueError(f"prefix_len must be between 0 and the sequence length {T}, got {prefix_len}.")
    allowed = causal_mask(T)
    allowed[:, :prefix_len] = True  # the GLM idiom: tril, then open the prefix columns
    return allowed


def encoder_decoder_masks(src_len: int, tgt_len: int) -> dict[str, torch.Tensor]:
    """The three masks of an encoder-decoder (T5 / BART) as boolean tensors.

    Returns:
        ``{"encoder self": [S, S] all ones, "decoder self": [T, T] causal, "cross": [T, S] all ones}``.
    """
    _check_len("src_len", src_len)
    _check_len("tgt_len", tgt_len)
    return {
        "encoder self": bidirectional_mask(src_len),
        "decoder self": causal_mask(tgt_len),
        "cross": torch.ones(tgt_len, src_len, dtype=torch.bool),
    }


def mask_regions(allowed: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """Label each cell of a ``[T, T]`` mask by region, for plotting like the LLM Q&A's figure.

    Codes: ``BLOCKED`` (masked), ``PREFIX_PREFIX`` (blue), ``TARGET_PREFIX`` (green), ``TARGET_TARGET``
    (yellow), ``PREFIX_TARGET`` (a prefix token seeing a target: only the bidirectional mask allows it).
    """
    _check_allowed(allowed)
    T = allowed.shape[-1]
    validate.integer("prefix_len", prefix_len, "pass the prefix length in tokens, e.g. prefix_len=3")
    if not 0 <= prefix_len <= T:
        raise ValueError(f"prefix_len must be between 0 and the mask's length {T}, got {prefix_len}.")
    q_prefix = (torch.arange(T) < prefix_len)[:, None]
    k_prefix = (torch.arange(T) < prefix_len)[None, :]
    regions = torch.full((T, T), BLOCKED, dtype=torch.long)
    regions[allowed & q_prefix & k_prefix] = PREFIX_PREFIX
    regions[allowed & ~q_prefix & k_prefix] = TARGET_PREFIX
    regions[allowed & ~q_prefix & ~k_prefix] = TARGET_TARGET
    regions[allowed & q_prefix & ~k_prefix] = PREFIX_TARGET
    return regions


def _check_allowed(allowed: torch.Tensor) -> None:
    if not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool or allowed.dim() != 2 or (
            allowed.shape[0] != allowed.shape[1]):
        raise ValueError("`allowed` must be a 2-D boolean mask [T, T] (e.g. from causal_mask(T)), got "
                         f"{getattr(allowed, 'shape', allowed)!r} of {getattr(allowed, 'dtype', type(allowed))}.")


def to_additive_4d(allowed: torch.Tensor, dtype: torch.dtype = torch.float32,
                   padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Turn a boolean ``[T, T]`` mask into the additive float ``[B, 1, T, T]`` mask a model accepts.

    Allowed cells become 0 and blocked cells ``torch.finfo(dtype).min``, which vanish after softmax.
    Pass this, not the boolean: eager attention *adds* the mask to the scores, so a boolean (0/1) mask adds
    +1 to allowed scores and blocks nothing — a silently wrong answer.

    Args:
        allowed: boolean ``[T, T]`` (query, key).
        dtype: the model's dtype (the blocking value must be representable in it).
        padding_mask: optional ``[B, T]`` tokenizer attention mask (1 = real token); padded keys are blocked.
    """
    _check_allowed(allowed)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype (the model's), got {dtype!r}: pass e.g. model.dtype.")
    if padding_mask is not None and (not isinstance(padding_mask, torch.Tensor) or padding_mask.dim() != 2
                                     or padding_mask.shape[1] != allowed.shape[1]):
        raise ValueError(f"padding_mask must be [B, {allowed.shape[1]}] (one row per sequence, one column per key), "
                         f"got {getattr(padding_mask, 'shape', padding_mask)!r}: pass the tokenizer's attention_mask.")
    full = allowed[None, None]  # [1, 1, T, T]
    if padding_mask is not None:
        full = full & padding_mask.bool()[:, None, None, :]
    return torch.zeros(full.shape, dtype=dtype).masked_fill(~full, torch.finfo(dtype).min)


def prefix_labels(input_ids: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """Labels for training on the target only: a copy of ``input_ids`` with the prefix set to ``IGNORE_INDEX``.

    The same trick masks the prompt in SFT (chapter 4) and the padding in any batch.
    """
    validate.integer("prefix_len", prefix_len, "pass the prefix length in tokens, e.g. prefix_len=3")
    if not 0 <= prefix_len <= input_ids.shape[-1]:
        raise ValueError(f"prefix_len must be between 0 and the sequence length {input_ids.shape[-1]}, got "
                         f"{prefix_len}: pass the prefix's token count (a negative one would count from the end).")
    labels = input_ids.clone()
    labels[..., :prefix_len] = IGNORE_INDEX
    return labels


def _check_logits(logits: torch.Tensor, ids: torch.Tensor, name: str) -> None:
    if logits.dim() != 3 or ids.shape != logits.shape[:2]:
        raise ValueError(f"logits must be [B, T, V] and {name} [B, T] for the same B and T, got "
                         f"{tuple(logits.shape)} and {tuple(ids.shape)}: pass the logits the model gave for {name}.")


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``log p(x_t | x_<t)`` for every position ``t >= 1``: ``[B, T-1]``.

    Logits at position ``t-1`` predict token ``t``, hence the shift by one.
    """
    _check_logits(logits, input_ids, "input_ids")
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """The LM objective by hand: mean negative log-likelihood of each next token (maximum likelihood).

    ``loss = -1/N * sum_t log p(x_t | x_<t)`` over the ``N`` positions whose label is not ``ignore_index``.
    Equals ``model(input_ids, labels=labels).loss`` in transformers.
    """
    _check_logits(logits, labels, "labels")
    targets = labels[:, 1:]
    keep = targets != ignore_index
    if not keep.any():
        raise ValueError("Every label is ignore_index: there is no token to compute the loss on.")
    logp = token_logprobs(logits, labels.clamp(min=0))  # ignored labels get a dummy id, dropped below
    return -logp[keep].mean()


def library_mask(T: int, prefix_len: int | None = None) -> torch.Tensor:
    """The same boolean mask built from transformers' own mask primitives (``masking_utils``), for checking.

    ``prefix_len=None`` gives the causal mask; otherwise the prefix-LM mask as the HF idiom builds it:
    ``or_masks(causal_mask_function, <key is in the prefix>)`` (how Gemma 3 / PaliGemma open their prefix).
    """
    from transformers.masking_utils import causal_mask_function, or_masks

    _check_len("T", T)
    if prefix_len is not None:
        validate.integer("prefix_len", prefix_len, "pass the prefix length in tokens, or None for causal")
        if not 0 <= prefix_len <= T:
            raise ValueError(f"prefix_len must be between 0 and the sequence length {T}, got {prefix_len}.")
    q, kv = torch.arange(T)[:, None], torch.arange(T)[None, :]
    fn = causal_mask_function
    if prefix_len is not None:
        fn = or_masks(causal_mask_function, lambda b, h, q_idx, kv_idx: kv_idx < prefix_len)
    return fn(0, 0, q, kv)


def forward_with_mask(model, input_ids: torch.Tensor, allowed: torch.Tensor, labels: torch.Tensor | None = None):
    """Run a transformers causal LM under a custom boolean ``[T, T]`` mask (passed as an additive 4D float).

    transformers v5 hands a 4D mask to attention as it is, so this swaps the model's architecture-level
    attention pattern without touching its code. Ids, mask and labels go to the model's device.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, T], got {getattr(input_ids, 'shape', input_ids)!r}: pass "
                         "encode(tok, text, model).input_ids.")
    _check_allowed(allowed)
    if allowed.shape[0] != input_ids.shape[1]:
        raise ValueError(f"allowed is [{allowed.shape[0]}, {allowed.shape[1]}] but input_ids has {input_ids.shape[1]} "
                         f"tokens: build the mask for the same length, e.g. causal_mask({input_ids.shape[1]}).")
    if labels is not None and labels.shape != input_ids.shape:
        raise ValueError(f"labels must have input_ids' shape {tuple(input_ids.shape)}, got {tuple(labels.shape)}: "
                         "pass e.g. prefix_labels(input_ids, prefix_len).")
    dev = model_device(model)
    mask = to_additive_4d(allowed, dtype=model.dtype).to(dev)
    labels = labels.to(dev) if labels is not None else None
    with torch.no_grad():
        return model(input_ids=input_ids.to(dev), attention_mask=mask, labels=labels)


def target_losses(model, tok, text: str, prefix_frac: float = 0.5) -> dict[str, float]:
    """Loss on the second part of ``text`` (the target) when the first part (the prefix) is read causally
    vs bidirectionally (prefix-LM mask). Same weights, same labels; only the mask differs.

    Returns:
        ``{"causal": loss, "prefix LM": loss}``.
    """
    validate.non_empty_str("text", text, "pass a sentence of a few words")
    if not 0 < validate.finite_float("prefix_frac", prefix_frac) < 1:
        raise ValueError(f"prefix_frac must be in (0, 1), got {prefix_frac!r}: pass e.g. prefix_frac=0.5 (the first "
                         "half is the prefix).")
    ids = encode(tok, text, model).input_ids
    T = ids.shape[1]
    P = max(1, int(T * prefix_frac))
    labels = prefix_labels(ids, P)
    return {name: forward_with_mask(model, ids, allowed, labels).loss.item()
            for name, allowed in (("causal", causal_mask(T)), ("prefix LM", prefix_lm_mask(T, P)))}


def text_loss(model, tok, text: str) -> float:
    """Mean next-token loss of ``text`` under the model (its exponential is the perplexity)."""
    validate.non_empty_str("text", text, "pass a sentence of a few words")
    ids = encode(tok, text, model).input_ids
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def shuffle_words(text: str, seed: int = 0) -> str:
    """The same words in a random order: same unigram content, broken word order."""
    import random

    validate.a_str("text", text, "pass the text whose words to shuffle")
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)
