"""Sample-level optimisation for SFT (样本优化, LLM Q&A §20): change *which* examples the model learns from and
*how much* each counts, rather than the model or the optimiser.

* **data augmentation** (数据增强): new examples by rewriting old ones; here the model itself paraphrases the
  inputs (:func:`paraphrase`), labels unchanged (:func:`augment_pairs`);
* **hard-example mining** (硬负采样): find the examples the model still gets wrong, i.e. with the highest loss
  (:func:`example_losses`), and train on them more (:func:`hard_example_weights`);
* **sample weights** (样本权重调整): a weight per example in the loss; the engine's ``tokenize_pair(...,
  weight=)`` multiplies each example's token losses (:func:`with_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .device import to_model
from .validate import finite_float, non_empty, not_a_str, positive_float, positive_int, str_list

PARAPHRASE_PROMPT = "Rewrite the following text with different words, keeping its meaning and tone. Reply with " \
                    "the rewritten text only.\n\nText: {text}"


@torch.no_grad()
def example_losses(model, data: Sequence[dict], batch_size: int = 8, pad_id: int | None = None) -> torch.Tensor:
    """``[N]``: each tokenized example's mean loss per target token under ``model`` (eval mode, no weights).

    Raises:
        ValueError: no data.
    """
    from .sft import IGNORE_INDEX, SFTCollator, _pad_id, target_token_losses

    not_a_str("data", data, "pass tokenized examples (sft.build_dataset)")
    if not data:
        raise ValueError("No examples to score: pass tokenized examples (sft.build_dataset).")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    collate = SFTCollator(_pad_id(model, pad_id))
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(data), batch_size):
        b = to_model(model, collate(data[s:s + batch_size]))
        tok_loss = target_token_losses(model, b)
        n = (b["labels"][:, 1:] != IGNORE_INDEX).sum(1).clamp_min(1)
        out.append((tok_loss.sum(1) / n).cpu())
    model.train(was_training)
    return torch.cat(out)


def hard_example_weights(losses: torch.Tensor, top_fraction: float = 0.25, boost: float = 3.0) -> list[float]:
    """Weight ``boost`` for the ``top_fraction`` of examples with the highest loss, 1 for the rest, then
    rescaled to mean 1 (so the learning rate means the same as without mining).

    Raises:
        ValueError: a fraction outside (0, 1] or a boost below 1.
    """
    if not 0 < finite_float("top_fraction", top_fraction, "pass e.g. top_fraction=0.25") <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], not {top_fraction}: pass e.g. top_fraction=0.25.")
    if finite_float("boost", boost, "pass e.g. boost=3.0") < 1:
        raise ValueError(f"boost must be >= 1 (it up-weights the hard examples), not {boost}: pass e.g. boost=3.0.")
    if not isinstance(losses, torch.Tensor) or losses.ndim != 1:
        raise TypeError(f"losses must be a 1-D tensor, one loss per example, got {type(losses).__name__}: pass "
                        "example_losses(model, data).")
    if losses.numel() == 0 or not torch.isfinite(losses).all():
        raise ValueError(f"losses must be one finite loss per example, got {losses.tolist()[:5]}: pass "
                         "example_losses(model, data) of a non-empty dataset (nan: the model diverged).")
    k = max(1, round(top_fraction * len(losses)))
    w = torch.ones(len(losses))
    w[torch.topk(losses, k).indices] = boost
    return (w / w.mean()).tolist()


def with_weights(data: Sequence[dict], weights: Sequence[float]) -> list[dict]:
    """Copies of tokenized examples carrying the given loss weights.

    Raises:
        ValueError: one weight per example is needed; weights must be >= 0.
    """
    not_a_str("data", data, "pass tokenized examples (sft.build_dataset)")
    if len(weights) != len(data):
        raise ValueError(f"{len(weights)} weights for {len(data)} examples: give one weight per example.")
    for i, w in enumerate(weights):
        if finite_float(f"weights[{i}]", w, "give each example a number >= 0") < 0:
            raise ValueError(f"Weights must be >= 0 (a negative weight would train the model away from the "
                             f"example), got weights[{i}]={w}.")
    return [{**d, "weight": float(w)} for d, w in zip(data, weights)]


def paraphrase(model, tok, texts: Sequence[str], max_new_tokens: int = 48, batch_size: int = 8,
               seed: int = 0, progress: bool = False) -> list[str]:
    """One paraphrase per text, written by the (chat) model itself, sampled at temperature 0.7 with a fixed seed.

    An empty or identical rewrite falls back to the original text (so the caller can count how many changed).
    """
    from .models import generate_batch

    str_list("texts", texts, "pass the texts to rewrite, e.g. [e.text for e in train]")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=48")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    torch.manual_seed(seed)
    outs = generate_batch(model, tok, [PARAPHRASE_PROMPT.format(text=t) for t in texts],
                          max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=True, temperature=0.7,
                          top_p=0.9, progress=progress, desc="paraphrasing")
    return [o.split("\n")[0].strip().strip('"') or t for o, t in zip(outs, texts)]


def augment_pairs(examples: Sequence, paraphrases: Sequence[str]) -> list:
    """The examples plus one copy of each with its text replaced by the paraphrase (label kept); copies whose
    paraphrase equals the original are left out.

    ``examples`` are objects with ``text`` and ``label`` (``course_utils.data.Example``).

    Raises:
        ValueError: one paraphrase per example is needed.
    """
    from dataclasses import replace

    not_a_str("paraphrases", paraphrases, "pass one paraphrase per example")
    if len(paraphrases) != len(examples):
        raise ValueError(f"{len(paraphrases)} paraphrases for {len(examples)} examples.")
    extra = [replace(e, text=p) for e, p in zip(examples, paraphrases) if p.strip() and p.strip() != e.text.strip()]
    return list(examples) + extra


# ---------------------------------------------------------------------------------------------------------------
# The experiment: same model, same budget, different samples
# ---------------------------------------------------------------------------------------------------------------

def _pairs(examples: Sequence) -> list[tuple[str, str]]:
    from .prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, prompt_pairs

    return prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, examples)


def dev_accuracy(model, tok, dev: Sequence) -> float:
    """Sentiment accuracy on ``dev`` through the template the model was tuned with (chapter 2's classifier)."""
    from .prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, PromptClassifier

    return PromptClassifier(model, tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS).accuracy([e.text for e in dev],
                                                                                     [e.label for e in dev])


def _check_run(steps, lr, batch_size) -> None:
    """A training budget: steps and batch size (counts) and a learning rate."""
    positive_int("steps", steps, "pass e.g. steps=30")
    positive_float("lr", lr, "pass e.g. lr=1e-3")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")


def lora_run(model, tok, data: Sequence[dict], steps: int, lr: float = 1e-3, batch_size: int = 8, seed: int = 0,
             mine_after: int | None = None, mine_fraction: float = 0.25, boost: float = 3.0):
    """LoRA-tune a copy of ``model`` on tokenized ``data`` for ``steps``; with ``mine_after``, train that many
    steps, re-weight the hardest examples (:func:`hard_example_weights`) and train the rest of the budget on the
    re-weighted data. Returns the tuned copy."""
    import copy

    from .lora import inject_lora
    from .sft import TrainConfig, train

    _check_run(steps, lr, batch_size)
    not_a_str("data", data, "pass tokenized examples (sft.build_dataset)")
    non_empty("data", data, "pass tokenized examples (sft.build_dataset)")
    if mine_after is not None:
        positive_int("mine_after", mine_after, f"pass a step in 1..{steps - 1}, or None for no mining")
        if mine_after >= steps:
            raise ValueError(f"mine_after={mine_after} leaves no step to train on the re-weighted data (steps="
                             f"{steps}): pass mine_after in 1..{steps - 1}, e.g. {max(1, steps // 2)}.")
        hard_example_weights(torch.ones(1), mine_fraction, boost)  # checks both before any training
    tuned = inject_lora(copy.deepcopy(model), r=8, alpha=16)
    first = mine_after if mine_after else steps
    cfg = TrainConfig(steps=first, batch_size=batch_size, lr=lr, seed=seed, schedule="constant", plot=None,
                      progress=False)
    train(tuned, data, cfg)
    if mine_after:
        weights = hard_example_weights(example_losses(tuned, data), mine_fraction, boost)
        cfg = TrainConfig(steps=steps - mine_after, batch_size=batch_size, lr=lr, seed=seed + 1,
                          schedule="constant", plot=None, progress=False)
        train(tuned, with_weights(data, weights), cfg)
    return tuned


def compare_sample_strategies(model, tok, train: Sequence, dev: Sequence, steps: int, max_len: int = 64,
                              lr: float = 1e-3, batch_size: int = 8, seed: int = 0,
                              progress: bool = True) -> list[dict]:
    """Dev accuracy of the same LoRA budget with: the plain data, paraphrase-augmented data, hard-example mining
    (re-weighting after half the steps), and inverse-frequency label weights. Returns one row per strategy."""
    from collections import Counter

    from tqdm.auto import tqdm

    from .sft import build_dataset

    _check_run(steps, lr, batch_size)
    if steps < 2:
        raise ValueError(f"steps={steps}: hard-example mining re-weights after half the steps, so it needs at "
                         "least 2; pass e.g. steps=30.")
    for name, value in (("train", train), ("dev", dev)):
        not_a_str(name, value)
        non_empty(name, value, f"pass labelled examples, e.g. load_sentiment({name!r})")
    positive_int("max_len", max_len, "pass e.g. max_len=64")
    plain = build_dataset(tok, _pairs(train), max_len)
    freq = Counter(e.label for e in train)
    label_w = [len(train) / (len(freq) * freq[e.label]) for e in train]
    para = paraphrase(model, tok, [e.text for e in train], seed=seed)
    augmented = augment_pairs(train, para)
    runs = {
        "plain": lambda: lora_run(model, tok, plain, steps, lr, batch_size, seed),
        "augmented": lambda: lora_run(model, tok, build_dataset(tok, _pairs(augmented), max_len), steps, lr,
                                      batch_size, seed),
        "hard-example mining": lambda: lora_run(model, tok, plain, steps, lr, batch_size, seed,
                                                mine_after=steps // 2),
        "label weights": lambda: lora_run(model, tok, with_weights(plain, label_w), steps, lr, batch_size, seed),
    }
    rows = [{"strategy": "no fine-tuning", "examples": 0, "dev accuracy": dev_accuracy(model, tok, dev)}]
    for name, run in tqdm(runs.items(), desc="strategies", disable=not progress):
        tuned = run()
        n = len(augmented) if name == "augmented" else len(train)
        rows.append({"strategy": name, "examples": n, "dev accuracy": dev_accuracy(tuned, tok, dev)})
        del tuned
    return rows
