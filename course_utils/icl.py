"""Chapter 3: in-context learning (语境学习): learning from demonstrations, with no parameter update.

A k-shot prompt is k solved examples ("demonstrations") written with the same template, followed by the
query. The model is scored with chapter 2's engine (``prompting.PromptClassifier``), the demonstrations
passed as its ``prefix``. This module chooses, orders and corrupts demonstrations:

- selection: :func:`select_random`, :func:`select_balanced`, :func:`select_knn` (KATE, Liu et al. 2022:
  the nearest training examples by sentence-embedding similarity);
- order: :func:`orderings` (Lu et al. 2022: the order alone moves accuracy);
- labels: :func:`corrupt_labels` (Min et al. 2022: random labels cost little).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import validate
from .data import Example
from .device import encode
from .prompting import PromptClassifier, Template, Verbalizer


def demonstration(template: Template, verbalizer: Verbalizer, ex: Example) -> str:
    """One solved example: the template filled with the text and the first label word of its label."""
    verbalizer.label_index(ex.label)  # a clear error for a label the verbalizer does not know
    return template.fill_answer(ex.text, verbalizer.label_words[ex.label][0])


def format_demonstrations(template: Template, verbalizer: Verbalizer, demos: Sequence[Example],
                          sep: str = "\n") -> str:
    """The k-shot prefix: each demonstration followed by ``sep`` (empty for k = 0)."""
    validate.not_a_str("demos", demos, "pass a list of Example(text, label)")
    validate.a_str("sep", sep, "pass the text between demonstrations, e.g. sep='\\n'")
    for ex in demos:
        verbalizer.label_index(ex.label)  # a clear error for a label the verbalizer does not know
    return "".join(demonstration(template, verbalizer, ex) + sep for ex in demos)


def with_demonstrations(clf: PromptClassifier, demos: Sequence[Example], sep: str = "\n") -> PromptClassifier:
    """A copy of ``clf`` that puts the same k demonstrations before every query."""
    return dataclasses.replace(clf, prefix=format_demonstrations(clf.template, clf.verbalizer, demos, sep))


def select_random(pool: Sequence[Example], k: int, seed: int = 0) -> list[Example]:
    """k demonstrations drawn uniformly without replacement."""
    _check_k(pool, k)
    return random.Random(seed).sample(list(pool), k)


def select_balanced(pool: Sequence[Example], k: int, seed: int = 0) -> list[Example]:
    """k demonstrations with the labels as equal as possible (round-robin over labels), in a shuffled order."""
    _check_k(pool, k)
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for ex in pool:
        by_label.setdefault(ex.label, []).append(ex)
    for exs in by_label.values():
        rng.shuffle(exs)
    labels = sorted(by_label)
    rng.shuffle(labels)
    picks = [ex for group in itertools.zip_longest(*(by_label[y] for y in labels)) for ex in group if ex][:k]
    rng.shuffle(picks)
    return picks


def _check_k(pool: Sequence[Example], k: int) -> None:
    validate.not_a_str("pool", pool, "pass a list of Example(text, label)")
    validate.integer("k", k, "pass the number of demonstrations, e.g. k=4")
    if not 0 <= k <= len(pool):
        raise ValueError(f"k={k} demonstrations requested from a pool of {len(pool)}; use 0 <= k <= {len(pool)}.")


def embed(texts: Sequence[str], encoder=None, batch_size: int = 64) -> torch.Tensor:
    """Sentence embeddings ``[N, d]``, unit length: mean-pooled encoder states, the key lines of what
    ``sentence_transformers.SentenceTransformer(folder).encode(texts, normalize_embeddings=True)`` computes (equal
    to 1e-5, tested).

    Args:
        encoder: ``(model, tokenizer)``; default ``models.load_sentence_encoder()`` (all-MiniLM-L6-v2).
    """
    from .models import load_sentence_encoder

    validate.str_list("texts", texts, "pass a list of texts to embed, e.g. [ex.text for ex in pool]")
    batch_size = validate.positive_int("batch_size", batch_size, "pass e.g. batch_size=64")
    model, tok = encoder if encoder is not None else load_sentence_encoder()
    chunks = []
    for s in range(0, len(texts), batch_size):
        enc = encode(tok, list(texts[s:s + batch_size]), model, padding=True, truncation=True)
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        m = enc["attention_mask"][..., None].to(hidden.dtype)
        chunks.append(F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).float().cpu())
    return torch.cat(chunks)


def select_knn(pool: Sequence[Example], pool_emb: torch.Tensor, query_emb: torch.Tensor, k: int,
               most_similar_first: bool = True) -> list[list[Example]]:
    """KATE: for each query, the k pool examples with the highest cosine similarity.

    Order follows KATE's code (``most_similar_first=True``): the nearest example comes first, i.e. furthest
    from the query; ``False`` puts it right before the query. The pool must not contain the queries.
    """
    _check_k(pool, k)
    for name, emb in (("pool_emb", pool_emb), ("query_emb", query_emb)):
        if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor [N, d], got {getattr(emb, 'shape', type(emb).__name__)}"
                             ": compute it with embed(texts).")
    if len(pool_emb) != len(pool):
        raise ValueError(f"pool_emb has {len(pool_emb)} rows but the pool has {len(pool)} examples: embed the same "
                         "pool, e.g. pool_emb = embed([ex.text for ex in pool]).")
    if pool_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(f"pool_emb has {pool_emb.shape[1]} dimensions but query_emb has {query_emb.shape[1]}: "
                         "embed queries and pool with the same encoder.")
    sims = query_emb @ pool_emb.T
    top = sims.topk(k, dim=-1).indices.tolist() if k else [[] for _ in range(len(query_emb))]
    return [[pool[i] for i in (row if most_similar_first else row[::-1])] for row in top]


def orderings(demos: Sequence[Example], n: int, seed: int = 0) -> list[list[Example]]:
    """Up to ``n`` distinct orders of the same demonstrations (all of them when k! <= n), in a seeded order."""
    validate.not_a_str("demos", demos, "pass a list of Example(text, label)")
    n = validate.positive_int("n", n, "pass how many orders to try, e.g. n=6")
    perms = list(itertools.permutations(demos)) if len(demos) <= 6 else None
    rng = random.Random(seed)
    if perms is not None:
        rng.shuffle(perms)
        return [list(p) for p in perms[:n]]
    n = min(n, math.factorial(len(demos)))  # never wait for more orders than exist
    out: list[list[Example]] = []
    seen = set()
    while len(out) < n:
        p = list(demos)
        rng.shuffle(p)
        key = tuple(id(e) for e in p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def corrupt_labels(demos: Sequence[Example], labels: Sequence[str], fraction: float = 1.0,
                   seed: int = 0) -> list[Example]:
    """Min et al.'s "random labels": a ``fraction`` of the demonstrations get a label drawn uniformly from
    ``labels`` (so some stay correct by chance, as in the paper). Inputs, format and label space are kept."""
    validate.probability("fraction", fraction, "pass the share of labels to corrupt, e.g. fraction=0.5")
    validate.not_a_str("demos", demos, "pass a list of Example(text, label)")
    labels = validate.str_list("labels", labels, "pass the label space, e.g. ['positive', 'negative']")
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(demos)), round(fraction * len(demos))))
    return [Example(ex.text, rng.choice(list(labels))) if i in chosen else ex for i, ex in enumerate(demos)]


def icl_accuracy(clf: PromptClassifier, test: Sequence[Example],
                 demos: Sequence[Example] | Sequence[Sequence[Example]], sep: str = "\n") -> float:
    """Accuracy of ``clf`` on ``test`` with demonstrations: one shared list, or one list per test example."""
    validate.not_a_str("test", test, "pass a list of Example(text, label)")
    validate.non_empty("test", test, "pass at least one test Example to measure accuracy on")
    validate.not_a_str("demos", demos, "pass a list of Example(text, label), or one such list per test example")
    texts, gold = [ex.text for ex in test], [ex.label for ex in test]
    if demos and not isinstance(demos[0], Example):  # per-example demonstrations (kNN)
        if len(demos) != len(test):
            raise ValueError(f"Got {len(demos)} demonstration lists for {len(test)} test examples.")
        prefixes = [format_demonstrations(clf.template, clf.verbalizer, d, sep) for d in demos]
        return clf.accuracy(texts, gold, prefixes)
    return with_demonstrations(clf, demos, sep).accuracy(texts, gold)
