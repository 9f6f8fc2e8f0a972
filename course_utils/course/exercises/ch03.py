"""Chapter 3's exercises: in-context learning.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call
from course_utils.prompting import SENTIMENT_TEMPLATE

_DEMOS = [("A lovely film.", "positive"), ("It was fine.", "neutral"), ("Awful service.", "negative")]


def _icl_reference(demos: Sequence[tuple[str, str]], sep: str) -> str:
    from course_utils.data import Example
    from course_utils.icl import format_demonstrations
    from course_utils.prompting import Template, Verbalizer

    labels = {y: y for y in ("positive", "neutral", "negative")}
    examples = [Example(t, y) for t, y in demos]
    return format_demonstrations(Template(SENTIMENT_TEMPLATE), Verbalizer(labels), examples, sep)


@exercise("03.format_demos", "warm-up", "the k-shot prefix")
def check_format_demos(fn: Callable[[list, str], str]) -> None:
    """``fn(demos, sep)`` must equal ``icl.format_demonstrations`` with chapter 3's template and label names."""
    for demos, sep in ((_DEMOS, "\n\n"), (_DEMOS[:1], "\n"), ([], "\n\n")):
        if not demos:
            out = fn(list(demos), sep)
            if out != "":
                raise Hint(f"with no demonstrations (k = 0) the prefix is the empty string, not {out!r}.")
            continue
        out = call(fn, list(demos), sep)
        ref = _icl_reference(demos, sep)
        if out == ref:
            continue
        if out + sep == ref:
            raise Hint("every demonstration ends with sep, the last one too: the query comes right after it.")
        if "[Z]" in out or "[X]" in out:
            raise Hint("a slot is still in the text: the review goes into [X] and its label into [Z].")
        raise Hint(f"for {len(demos)} demonstration(s) and sep={sep!r} expected a text like "
                   f"{_icl_reference(_DEMOS[:1], sep)!r} per demonstration; got {out!r}.")


def _embeddings(n: int, m: int, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.2, 5.0, n)[:, None]  # very different lengths: dot product != cosine ranking
    return torch.randn(n, d, generator=g) * scale, torch.randn(m, d, generator=g) * 3


def _knn_reference(pool_emb: torch.Tensor, query_emb: torch.Tensor, k: int, most_similar_first: bool) -> list:
    import torch.nn.functional as F

    from course_utils.icl import select_knn

    n = len(pool_emb)
    return select_knn(list(range(n)), F.normalize(pool_emb, dim=-1), F.normalize(query_emb, dim=-1), k,
                      most_similar_first)


@exercise("03.knn_indices", "core", "KATE: the k nearest demonstrations by cosine similarity")
def check_knn_indices(fn: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> None:
    """``fn(pool_emb, query_emb, k)``: ``[M, k]`` pool indices, most similar first (``icl.select_knn``)."""
    pool, query = _embeddings(12, 3)
    for k in (1, 4):
        out = call(fn, pool.clone(), query.clone(), k)
        try:
            got = torch.as_tensor(out).long().tolist()
        except (TypeError, ValueError, RuntimeError):
            raise Hint(f"return the indices as a tensor or a list of lists, [M, k]; got {type(out).__name__}.")
        if torch.as_tensor(got).shape != (3, k):
            raise Hint(f"expected one row of k={k} indices per query, shape (3, {k}); got "
                       f"{tuple(torch.as_tensor(got).shape)}.")
        ref = _knn_reference(pool, query, k, True)
        if got == ref:
            continue
        if got == _knn_reference(pool, query, k, False):
            raise Hint("the right neighbours in the reverse order: the most similar comes first.")
        if got == (query @ pool.T).topk(k, dim=-1).indices.tolist():
            raise Hint("that ranks by the dot product, which favours long vectors: normalise both sides to unit "
                       "length first (cosine similarity).")
        if [sorted(r) for r in got] == [sorted(r) for r in ref]:
            raise Hint("the right neighbours in the wrong order: sort by similarity, most similar first.")
        raise Hint("not the k most similar pool rows: compare every query with every pool row by cosine similarity "
                   "and keep the k highest.")


@exercise("03.knn_prompt", "stretch", "a KATE prompt: nearest demonstrations, the nearest right before the query")
def check_knn_prompt(fn: Callable[..., str]) -> None:
    """``fn(query, pool, pool_emb, query_emb, k)``: the k nearest demonstrations (nearest last, sep ``\\n\\n``), then
    the query with its answer slot open, ``"Review: <query>\\nSentiment:"``."""
    from course_utils.prompting import Template

    texts = [f"Review number {i}." for i in range(12)]
    pool = [(t, ("positive", "neutral", "negative")[i % 3]) for i, t in enumerate(texts)]
    pool_emb, query_emb = _embeddings(12, 1, seed=3)
    query = "Pretty good overall."
    context = Template(SENTIMENT_TEMPLATE).split(query)[0]
    for k in (1, 3):
        out = call(fn, query, list(pool), pool_emb.clone(), query_emb[0].clone(), k)
        if not isinstance(out, str):
            raise Hint(f"return the prompt as a str, got {type(out).__name__}.")
        nearest = [pool[i] for i in _knn_reference(pool_emb, query_emb, k, False)[0]]
        ref = _icl_reference(nearest, "\n\n") + context
        if out == ref:
            continue
        if not out.endswith(context):
            raise Hint(f"the prompt should end with the query and the open answer slot, {context!r} (no trailing "
                       "space: the answer word brings its own).")
        first = [pool[i] for i in _knn_reference(pool_emb, query_emb, k, True)[0]]
        if out == _icl_reference(first, "\n\n") + context:
            raise Hint("the right demonstrations, but the nearest one comes first: put it last, right before the "
                       "query.")
        raise Hint(f"for k={k} the demonstrations are not the query's nearest neighbours by cosine similarity, or "
                   "they are not formatted as 'Review: ...\\nSentiment: <label>' each followed by a blank line.")
