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

from .device import encode, model_device

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy (and transformers) skips

# Region codes of :func:`mask_regions`, in the colours of the LLM Q&A's figure.
BLOCKED, PREFIX_PREFIX, TARGET_PREFIX, TARGET_TARGET, PREFIX_TARGET = range(5)


def causal_mask(T: int) -> torch.Tensor:
    """Causal decoder (GPT / Llama): token ``i`` sees ``j <= i``. A lower-triangular boolean ``[T, T]``."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def bidirectional_mask(T: int) -> torch.Tensor:
    """Encoder (BERT, T5 encoder): every token sees every token. An all-ones boolean ``[T, T]``."""
    return torch.ones(T, T, dtype=torch.bool)


def prefix_lm_mask(T: int, prefix_len: int) -> torch.Tensor:
    """Prefix decoder: ``allowed[i, j] = j <= i or j < prefix_len``.

    Prefix tokens see each other in both directions; target tokens see the whole prefix and earlier targets.

    Raises:
        ValueError: if ``prefix_len`` is not in ``0..T``.
    """
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
    T = allowed.shape[-1]
    q_prefix = (torch.arange(T) < prefix_len)[:, None]
    k_prefix = (torch.arange(T) < prefix_len)[None, :]
    regions = torch.full((T, T), BLOCKED, dtype=torch.long)
    regions[allowed & q_prefix & k_prefix] = PREFIX_PREFIX
    regions[allowed & ~q_prefix & k_prefix] = TARGET_PREFIX
    regions[allowed & ~q_prefix & ~k_prefix] = TARGET_TARGET
    regions[allowed & q_prefix & ~k_prefix] = PREFIX_TARGET
    return regions


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
    if allowed.dtype != torch.bool or allowed.dim() != 2:
        raise ValueError("`allowed` must be a 2-D boolean mask [T, T] (e.g. from causal_mask(T)).")
    full = allowed[None, None]  # [1, 1, T, T]
    if padding_mask is not None:
        full = full & padding_mask.bool()[:, None, None, :]
    return torch.zeros(full.shape, dtype=dtype).masked_fill(~full, torch.finfo(dtype).min)


def prefix_labels(input_ids: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """Labels for training on the target only: a copy of ``input_ids`` with the prefix set to ``IGNORE_INDEX``.

    The same trick masks the prompt in SFT (chapter 7) and the padding in any batch.
    """
    labels = input_ids.clone()
    labels[..., :prefix_len] = IGNORE_INDEX
    return labels


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``log p(x_t | x_<t)`` for every position ``t >= 1``: ``[B, T-1]``.

    Logits at position ``t-1`` predict token ``t``, hence the shift by one.
    """
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """The LM objective by hand: mean negative log-likelihood of each next token (maximum likelihood).

    ``loss = -1/N * sum_t log p(x_t | x_<t)`` over the ``N`` positions whose label is not ``ignore_index``.
    Equals ``model(input_ids, labels=labels).loss`` in transformers.
    """
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
    ids = encode(tok, text, model).input_ids
    T = ids.shape[1]
    P = max(1, int(T * prefix_frac))
    labels = prefix_labels(ids, P)
    return {name: forward_with_mask(model, ids, allowed, labels).loss.item()
            for name, allowed in (("causal", causal_mask(T)), ("prefix LM", prefix_lm_mask(T, P)))}


def text_loss(model, tok, text: str) -> float:
    """Mean next-token loss of ``text`` under the model (its exponential is the perplexity)."""
    ids = encode(tok, text, model).input_ids
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def shuffle_words(text: str, seed: int = 0) -> str:
    """The same words in a random order: same unigram content, broken word order."""
    import random

    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)
