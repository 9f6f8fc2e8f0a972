"""Chapter 7's exercises: instruction data.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call


@exercise("07.alpaca_prompt", "warm-up", "the Alpaca prompt template")
def check_alpaca_prompt(fn: Callable[..., str]) -> None:
    """``fn(instruction, input)`` must equal ``instructions.alpaca_prompt``."""
    from course_utils.instructions import alpaca_prompt

    for instruction, inp in (("Name three colours.", ""), ("Translate to French.", "Good morning"),
                             ("  Sum the numbers. ", " 3, 4 "), ("Say hi.", "   ")):
        out = call(fn, instruction, inp)
        ref = alpaca_prompt(instruction, inp)
        if out == ref:
            continue
        if ("### Input:" in out) != ("### Input:" in ref):
            raise Hint(f"for input {inp!r} pick the other template: the with-input one only when the input has text "
                       "(whitespace alone counts as empty).")
        if out.strip() == ref.strip():
            raise Hint("keep the template's whitespace as it is, including the newline after '### Response:'.")
        raise Hint(f"for {instruction!r}: strip the spaces around the instruction and input before filling in.")


@exercise("07.distinct_n", "core", "distinct-n: how diverse is a set of texts?")
def check_distinct_n(fn: Callable[[list, int], float]) -> None:
    """``fn(texts, n)`` on lists of words must equal ``decoding.distinct_n`` (pooled over all texts)."""
    from course_utils.decoding import distinct_n

    texts = [["write", "a", "poem", "about", "cats"], ["write", "a", "poem", "about", "dogs"],
             ["list", "three", "cats"], ["hi"]]
    for sample, n in ((texts, 1), (texts, 2), (texts, 3), ([["hi"]], 2), ([["a", "a", "a"]], 1)):
        out = call(fn, [list(t) for t in sample], n)
        ref = distinct_n(sample, n)
        if isinstance(out, (int, float)) and math.isclose(out, ref, abs_tol=1e-9):
            continue
        if not sample or all(len(t) < n for t in sample):
            raise Hint(f"texts shorter than n={n} have no n-grams: return 0.0 (and do not divide by zero).")
        per_text = [len(set(map(tuple, (t[i:i + n] for i in range(len(t) - n + 1))))) / (len(t) - n + 1)
                    for t in sample if len(t) >= n]
        if isinstance(out, (int, float)) and math.isclose(out, sum(per_text) / len(per_text), abs_tol=1e-9):
            raise Hint("that averages the texts one by one; distinct-n pools the n-grams of all texts, so repeats "
                       "across texts count.")
        raise Hint(f"for n={n}: count the n-grams (n consecutive words) of every text, and divide the number of "
                   "distinct ones by the total.")


@exercise("07.rouge_filter", "stretch", "Self-Instruct's ROUGE-L filter")
def check_rouge_filter(fn: Callable[..., list]) -> None:
    """``fn(candidates, pool, threshold)``: keep a candidate whose ROUGE-L F with every pool text (and every candidate
    kept before it) is below ``threshold``; a kept candidate joins the pool (``rouge.RougePool.is_novel``)."""
    from course_utils.rouge import RougePool

    pool = ["Write a poem about the sea.", "Translate the sentence into French."]
    candidates = ["Write a short poem about the sea.", "List three prime numbers.", "List three prime numbers please.",
                  "Summarise the article in one sentence.", "Translate this sentence into German."]
    for threshold in (0.7, 0.5, 0.8):
        out = call(fn, list(candidates), list(pool), threshold)
        index, ref = RougePool(pool), []
        for c in candidates:
            if index.is_novel(c, threshold):
                ref.append(c)
                index.add(c)
        if list(out) == ref:
            continue
        unchained = [c for c in candidates if RougePool(pool).is_novel(c, threshold)]
        if list(out) == unchained:
            raise Hint("a kept candidate joins the pool: a later near-duplicate of it must be rejected too.")
        if sorted(out) == sorted(ref):
            raise Hint("keep the candidates in their original order.")
        raise Hint(f"at threshold {threshold}: keep a candidate only if its ROUGE-L F (rouge.rouge_l) with every "
                   "text already in the pool is below the threshold.")
