"""Chapter 7: ROUGE-L from scratch, and the fast novelty filter of Self-Instruct (自指令).

Self-Instruct (Wang et al. 2023) grows a pool of instructions from a few seeds: the model proposes new ones,
and a candidate joins the pool only if its ROUGE-L with *every* instruction already there is below 0.7.

* **ROUGE-L** (Lin 2004) scores two token sequences by their longest common subsequence (LCS): the tokens
  both contain in the same order, gaps allowed. With ``a`` the target and ``b`` the prediction,
  ``P = LCS / len(b)``, ``R = LCS / len(a)`` and ``F = 2PR / (P + R)``, which simplifies to
  ``2 LCS / (len(a) + len(b))``. Here it matches ``rouge_score.rouge_scorer.RougeScorer(["rougeL"])``
  (no stemmer) to the last bit on Latin text.
* **Tokenization** is rouge-score's (lowercase, every run of ``[a-z0-9]`` is a token), except that each
  Chinese, Japanese or Korean character is a token of its own: rouge-score drops them all, see :func:`tokenize`.
* **RougePool** keeps the filter fast as the pool grows to thousands. Exact LCS is a quadratic dynamic
  programme in pure Python (tens of microseconds per pair), so comparing against every instruction costs
  ``O(pool)`` of them per candidate. The pool instead bounds every row at once with a bag-of-words overlap
  (vectorised with numpy over an inverted index) and runs the LCS only where the bound could still win.

The reference implementation is google-research's ``rouge_score`` (``rouge_scorer._score_lcs``,
``tokenize.tokenize``); Self-Instruct's filter is ``self_instruct/bootstrap_instructions.py``, which scores
``scorer.score(new_instruction, pool_instruction)``, i.e. the candidate is the target.
"""

from __future__ import annotations

import heapq
import numbers
import random
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from fractions import Fraction

import numpy as np
from tqdm.auto import tqdm

from . import validate

# Unicode blocks whose characters are one token each. Chinese and Japanese have no spaces between words, so
# a character is the only segmentation that needs no dictionary; Korean Hangul is split the same way so a
# mixed pool is scored consistently.
_CJK_RANGES = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005-\u3007"  # 々 〆 〇 (iteration mark, closing mark, ideographic zero)
    "\u3041-\u309f"  # Hiragana
    "\u30a1-\u30fa\u30fc-\u30ff"  # Katakana, without the ゠ and ・ punctuation
    "\u3130-\u318f"  # Hangul Compatibility Jamo
    "\u31f0-\u31ff"  # Katakana Phonetic Extensions
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\ua960-\ua97f"  # Hangul Jamo Extended-A
    "\uac00-\ud7af"  # Hangul Syllables
    "\ud7b0-\ud7ff"  # Hangul Jamo Extended-B
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\uff66-\uff9f"  # Halfwidth Katakana
    "\U00020000-\U0002ebef"  # CJK Extensions B to F and I
    "\U00030000-\U000323af"  # CJK Extensions G and H
)
# A run of [a-z0-9] is exactly what survives rouge-score's "replace [^a-z0-9]+ by a space, split" recipe.
_TOKEN_RE = re.compile(f"[a-z0-9]+|[{_CJK_RANGES}]")

# Pruning compares a float bound with float scores computed by a different formula; this slack keeps rounding
# from ever skipping a row whose exact score ties or beats the best (scores are multiples of 1/(la+lb) anyway).
_EPS = 1e-12


# ---------------------------------------------------------------------------------------------------------------
# Tokens and LCS
# ---------------------------------------------------------------------------------------------------------------

def tokenize(text: str) -> list[str]:
    """rouge-score's default tokens for Latin text, plus one token per CJK character, in reading order.

    Latin text gives exactly ``rouge_score.tokenize.tokenize(text, stemmer=None)``: lowercase, then every
    maximal run of ``[a-z0-9]`` is a token and everything else (punctuation, accents, other scripts) a
    separator. ``"LoRA 微调 is 好"`` gives ``["lora", "微", "调", "is", "好"]``.

    The pitfall this fixes: rouge-score's default tokenizer keeps only ``[a-z0-9]``, so a Chinese (or
    Japanese, Korean) instruction becomes the empty list. ROUGE of anything with an empty list is 0, so two
    *identical* Chinese instructions score 0.0, every candidate looks novel, and Self-Instruct's
    de-duplication silently does nothing. Pass ``tokenizer=`` to ``RougeScorer`` or use this function.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, not {type(text).__name__}; decode bytes first.")
    return _TOKEN_RE.findall(text.lower())


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of two token sequences.

    The classic dynamic programme ``L[i][j] = L[i-1][j-1] + 1`` if ``a[i] == b[j]`` else
    ``max(L[i-1][j], L[i][j-1])``: ``O(len(a) * len(b))`` time, one row of the shorter length in memory.
    """
    # A token missing from the other side can never be matched, so dropping it leaves the LCS unchanged and
    # shrinks the table (different instructions share few words).
    in_b = set(b)
    a = [t for t in a if t in in_b]
    in_a = set(a)
    b = [t for t in b if t in in_a]
    if len(a) < len(b):
        a, b = b, a  # the row runs over the shorter sequence
    if not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        left = 0  # cur[j], kept in a local: list lookups and max() dominate pure-Python time
        for j, y in enumerate(b):
            if x == y:
                left = prev[j] + 1
            else:
                up = prev[j + 1]
                if up > left:
                    left = up
            cur.append(left)
        prev = cur
    return prev[-1]


def _as_tokens(x: str | Sequence[str], name: str) -> Sequence[str]:
    if isinstance(x, str):
        return tokenize(x)
    if isinstance(x, (bytes, bytearray)):
        raise TypeError(f"{name} is {type(x).__name__}: decode it to str first.")
    if isinstance(x, Sequence) and all(isinstance(t, str) for t in x):
        return x
    raise TypeError(f"{name} must be a str or a sequence of str tokens (list, tuple), not {type(x).__name__}.")


def _scores(lcs: int, len_target: int, len_prediction: int) -> tuple[float, float, float]:
    # Same operations, in the same order, as rouge_score's _score_lcs and scoring.fmeasure: bit-identical.
    if lcs == 0 or len_target == 0 or len_prediction == 0:
        return 0.0, 0.0, 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    return precision, recall, 2 * precision * recall / (precision + recall)


def rouge_l_scores(a: str | Sequence[str], b: str | Sequence[str]) -> tuple[float, float, float]:
    """ROUGE-L ``(precision, recall, f)`` with ``a`` the target (reference) and ``b`` the prediction.

    The order of ``RougeScorer.score(target, prediction)``: precision divides the LCS by the prediction's
    length, recall by the target's. Strings go through :func:`tokenize`; token lists are used as given.
    """
    ta, tb = _as_tokens(a, "a"), _as_tokens(b, "b")
    return _scores(lcs_length(ta, tb), len(ta), len(tb))


def rouge_l(a: str | Sequence[str], b: str | Sequence[str]) -> float:
    """ROUGE-L F1: ``2 LCS / (len(a) + len(b))`` in tokens, 0.0 when either side is empty or nothing matches.

    Symmetric up to float rounding; this is the score Self-Instruct thresholds at 0.7.
    """
    return rouge_l_scores(a, b)[2]


# ---------------------------------------------------------------------------------------------------------------
# A pool with fast nearest-neighbour search
# ---------------------------------------------------------------------------------------------------------------

class _Postings:
    """One token's inverted list: the rows containing it and how often, in numpy arrays that grow by doubling."""

    __slots__ = ("rows", "counts", "size")

    def __init__(self) -> None:
        self.rows = np.empty(4, dtype=np.int64)
        self.counts = np.empty(4, dtype=np.int32)
        self.size = 0

    def append(self, row: int, count: int) -> None:
        if self.size == len(self.rows):
            self.rows = np.resize(self.rows, 2 * self.size)
            self.counts = np.resize(self.counts, 2 * self.size)
        self.rows[self.size] = row
        self.counts[self.size] = count
        self.size += 1


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise TypeError(f"threshold must be a number in (0, 1], not {type(threshold).__name__}.")
    if not 0 < threshold <= 1:  # also rejects NaN
        raise ValueError(f"threshold must be in (0, 1], not {threshold!r}; Self-Instruct uses 0.7.")


class RougePool:
    """A growing set of texts that answers "how close is the nearest one?" in ROUGE-L F, fast.

    The Self-Instruct loop::

        pool = RougePool(seed_instructions)
        for candidate in generated:
            if pool.is_novel(candidate):  # max ROUGE-L < 0.7
                pool.add(candidate)

    Every query is scored as ``rouge_l(query, pool_text)`` (the query is the target, as in Self-Instruct), and
    the answers equal a brute-force loop over the pool, ties going to the earliest text.

    Speed: an upper bound prunes almost every row before the quadratic LCS runs. A common subsequence uses
    each token at most as often as both texts contain it, so ``LCS <= overlap``, the size of the multiset
    intersection of the two bags of tokens (``sum over tokens of min(count_a, count_b)``). Since
    ``F = 2 LCS / (len_a + len_b)``, every row has ``F <= 2 overlap / (len_a + len_b)``. The overlaps of the
    whole pool come from an inverted index (token -> rows holding it, with counts) in a few numpy operations
    per query token; rows are then visited in descending bound, and the search stops as soon as the bound
    falls below the best exact score found (or below the threshold, for :meth:`is_novel`).
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._texts: list[str] = []
        self._ids: list[tuple[int, ...]] = []  # token ids of each row, what the LCS runs on
        self._vocab: dict[str, int] = {}
        self._postings: list[_Postings] = []  # indexed by token id
        self._lengths = np.empty(16, dtype=np.int64)
        self.extend(texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return f"RougePool({len(self)} texts, {len(self._vocab)} distinct tokens)"

    @property
    def texts(self) -> list[str]:
        """The pool's texts, in the order they were added (row ``i`` is ``texts[i]``)."""
        return list(self._texts)

    def add(self, text: str) -> int:
        """Add one text (it is not checked for novelty: call :meth:`is_novel` first); returns its row index."""
        if not isinstance(text, str):
            raise TypeError(f"RougePool holds str texts, not {type(text).__name__}.")
        row = len(self._texts)
        ids = []
        for token in tokenize(text):
            tid = self._vocab.get(token)
            if tid is None:
                tid = self._vocab[token] = len(self._postings)
                self._postings.append(_Postings())
            ids.append(tid)
        for tid, count in Counter(ids).items():
            self._postings[tid].append(row, count)
        if row == len(self._lengths):
            self._lengths = np.resize(self._lengths, 2 * row)
        self._lengths[row] = len(ids)
        self._texts.append(text)
        self._ids.append(tuple(ids))
        return row

    def extend(self, texts: Iterable[str]) -> None:
        """Add every text of ``texts``, in order."""
        if isinstance(texts, str):
            raise TypeError("extend expects an iterable of texts, not one str: use add(text).")
        for text in texts:
            self.add(text)

    def _candidates(self, text: str, floor: float) -> tuple[list[int], list[float], tuple[int, ...]]:
        """Rows whose bound reaches ``floor``, in descending bound (ties: earlier row first), with the bounds.

        Only rows sharing a token with ``text`` are returned: all others score exactly 0.
        """
        if not isinstance(text, str):
            raise TypeError(f"The query must be a str, not {type(text).__name__}.")
        n = len(self._texts)
        # Tokens the pool has never seen cannot match but still count in the query's length.
        tokens = tokenize(text)
        query = tuple(self._vocab.get(t, -1) for t in tokens)
        if n == 0 or not query:
            return [], [], query
        overlap = np.zeros(n, dtype=np.int64)
        for tid, count in Counter(query).items():
            if tid < 0:
                continue
            p = self._postings[tid]
            # A row appears once per posting list, so fancy-index += adds without collisions.
            overlap[p.rows[: p.size]] += np.minimum(p.counts[: p.size], count)
        rows = np.flatnonzero(overlap)
        bound = 2.0 * overlap[rows] / (len(query) + self._lengths[rows])
        keep = bound >= floor - _EPS
        rows, bound = rows[keep], bound[keep]
        order = np.argsort(-bound, kind="stable")  # stable: equal bounds keep ascending row order
        return rows[order].tolist(), bound[order].tolist(), query

    def _score(self, query: tuple[int, ...], row: int) -> float:
        ids = self._ids[row]
        return _scores(lcs_length(query, ids), len(query), len(ids))[2]

    def max_similarity(self, text: str) -> tuple[float, int]:
        """The highest ROUGE-L F of ``text`` against the pool and the row that reaches it.

        ``(0.0, -1)`` when the pool is empty or no text in it shares a token with ``text``.
        """
        rows, bounds, query = self._candidates(text, 0.0)
        best, best_row = 0.0, -1
        for row, bound in zip(rows, bounds):
            if bound < best - _EPS:
                break  # bounds only decrease from here: no later row can reach the best
            score = self._score(query, row)
            if score > best or (score == best and score > 0 and row < best_row):
                best, best_row = score, row
        return best, best_row

    def top_k(self, text: str, k: int = 10) -> list[tuple[float, str]]:
        """The ``k`` pool texts most similar to ``text`` as ``(rouge_l, text)``, best first (ties: earlier first).

        Texts sharing no token with ``text`` (score 0.0) are left out, so fewer than ``k`` may come back.
        """
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, not {k!r}.")
        rows, bounds, query = self._candidates(text, 0.0)
        k = int(k)
        heap: list[tuple[float, int]] = []  # the k best so far as (score, -row): heap[0] is the one to evict
        for row, bound in zip(rows, bounds):
            if len(heap) == k and bound < heap[0][0] - _EPS:
                break
            score = self._score(query, row)
            if score > 0:
                item = (score, -row)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
        return [(score, self._texts[-neg_row]) for score, neg_row in sorted(heap, reverse=True)]

    def is_novel(self, text: str, threshold: float = 0.7) -> bool:
        """Self-Instruct's rule: True when every pool text has ROUGE-L F ``< threshold`` with ``text``.

        A score of exactly ``threshold`` is a near-duplicate (not novel). Stops at the first offending row.
        ``threshold`` must be in (0, 1].
        """
        _check_threshold(threshold)
        # Decided in exact integer arithmetic, F = 2 LCS / (len_a + len_b) >= num / den: rouge-score's float
        # formula can land one ulp *below* an exact 0.7 (LCS 21 of 23 and 37 tokens gives 0.6999999999999998),
        # which would let a pair at the threshold through.
        num, den = Fraction(threshold).as_integer_ratio()
        rows, _, query = self._candidates(text, threshold)  # rows bounded below the threshold cannot offend
        for row in rows:
            ids = self._ids[row]
            if 2 * lcs_length(query, ids) * den >= num * (len(query) + len(ids)):
                return False
        return True


def pairwise_max_similarity(texts: Sequence[str], pool: Sequence[str], *, progress: bool = True) -> list[float]:
    """For each text, its highest ROUGE-L F against ``pool`` (0.0 for an empty pool): what a histogram plots.

    A text is *not* compared with itself unless it is also in ``pool``; to score a set against itself
    without the trivial 1.0, build a :class:`RougePool` incrementally and query before each ``add``.
    """
    if isinstance(texts, str) or isinstance(pool, str):
        raise TypeError("texts and pool must be sequences of str, not a single str.")
    index = RougePool(pool)
    return [index.max_similarity(t)[0] for t in tqdm(texts, desc="max ROUGE-L", disable=not progress)]


# ---------------------------------------------------------------------------------------------------------------
# Synthetic instructions, for speed tests of the pool (the benchmark, the tests, chapter 7)
# ---------------------------------------------------------------------------------------------------------------

_VERBS = ("write explain summarize describe list give classify translate generate create suggest compare find "
         "rewrite identify design plan draft outline evaluate").split()
_WORDS = ("a the an of to in for and with about on your my this that short long simple detailed poem story email "
         "essay list summary recipe plan tweet letter report title question answer sentence paragraph article "
         "review code function python program data table chart example reason way idea tip step benefit problem "
         "solution difference climate change history science health food travel music movie book sport team "
         "company product customer student teacher child friend city country world water energy money time day "
         "week year people computer phone internet machine learning model language english french three five "
         "ten two best most new old good bad important").split()
_ZIPF = [1 / (i + 1) ** 0.8 for i in range(len(_WORDS))]  # function words first, so they recur as in real text


def _check_rng(rng: random.Random) -> None:
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {rng!r}: pass e.g. random.Random(0).")


def random_instruction(rng: random.Random, lo: int = 10, hi: int = 20) -> str:
    """A random instruction of lo to hi words, with a capital, punctuation and the odd digit."""
    _check_rng(rng)
    validate.positive_int("lo", lo, "pass the fewest words, e.g. lo=10")
    validate.positive_int("hi", hi, "pass the most words, e.g. hi=20")
    if hi < lo:
        raise ValueError(f"hi={hi} is below lo={lo}: pass lo <= hi, e.g. lo=10, hi=20.")
    words = [rng.choice(_VERBS).capitalize()] + rng.choices(_WORDS, weights=_ZIPF, k=rng.randint(lo, hi) - 1)
    if rng.random() < 0.2:
        words.insert(rng.randint(1, len(words)), str(rng.randint(1, 99)))
    return " ".join(words) + rng.choice([".", "?", "!", ":"])


def perturb_instruction(rng: random.Random, text: str) -> str:
    """A near-duplicate: drop, replace or swap a few words (what a model re-proposing an instruction does)."""
    _check_rng(rng)
    validate.non_empty_str("text", text, "pass the instruction to perturb")
    words = text.split()
    for _ in range(rng.randint(0, 3)):
        op, i = rng.random(), rng.randrange(len(words))
        if op < 0.4 and len(words) > 2:
            del words[i]
        elif op < 0.8:
            words[i] = rng.choice(_WORDS)
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)
