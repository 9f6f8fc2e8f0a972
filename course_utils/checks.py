"""Auto-checks for the chapters' exercises: one checker per exercise, a hint on failure, and a progress record.

In ``lessons_src`` an exercise is a code cell tagged ``exercise`` (a function with ``# TODO`` lines) followed by a
cell tagged ``solution`` (the same function, filled in). Both end with ``checks.check("01.causal_mask", answer)``.
A checker calls the learner's function on small inputs and compares it with the course's own implementation
(``masks``, ``prompting``, ``lora``, ``positions``...). It says *what* is wrong, never what to write, and it never
raises on a wrong answer: a notebook whose exercises are still blank runs top to bottom.

Passes are recorded in a small JSON file (``~/.cache/sft-course/progress.json``, or ``$COURSE_PROGRESS_FILE``);
``python -m course_utils progress`` and :func:`progress_widget` show which exercises pass.

Adding an exercise to a chapter: write a checker below with ``@_exercise("NN.name", tier, title)`` that raises
:class:`Hint` for each way an answer can be wrong, then the two tagged cells in the lesson (see chapter 1).
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .lessons import CHAPTERS

PROGRESS_ENV = "COURSE_PROGRESS_FILE"
GRADE_ENV = "COURSE_GRADE_DIR"  # set by the grader in the kernels it runs (course_utils.grade)
TIERS = ("warm-up", "core", "stretch")


class Hint(Exception):
    """A wrong answer, with a hint about what to look at (raised inside checkers, caught by :func:`check`)."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``NN.name``), the chapter stem, its tier, a title, and the checker behind it."""

    id: str
    chapter: str
    tier: str
    title: str
    checker: Callable[[Any], None]


EXERCISES: dict[str, Exercise] = {}


def _chapter_of(exercise_id: str) -> str:
    num = exercise_id.split(".")[0]
    for ch in CHAPTERS:
        if ch.stem.split("_")[0] == num:
            return ch.stem
    raise ValueError(f"Exercise id {exercise_id!r} must start with a chapter number, e.g. '01.causal_mask'.")


def _exercise(exercise_id: str, tier: str, title: str) -> Callable:
    """Register a checker (a function that raises :class:`Hint`) and return its public ``answer -> bool`` form."""
    assert tier in TIERS, tier

    def register(checker: Callable[[Any], None]) -> Callable[[Any], bool]:
        EXERCISES[exercise_id] = Exercise(exercise_id, _chapter_of(exercise_id), tier, title, checker)

        @functools.wraps(checker)
        def run(answer: Any) -> bool:
            return check(exercise_id, answer)

        run.__annotations__ = {**checker.__annotations__, "return": bool}  # wraps copied the checker's "-> None"
        return run

    return register


def verdict(exercise_id: str, answer: Any) -> tuple[bool, str]:
    """Run one exercise's checker on ``answer``: ``(True, "")`` or ``(False, hint)``, never an exception.

    A wrong answer, a blank (``raise NotImplementedError``) or an answer that crashes gives False and a hint.
    This is what :func:`check` prints in a learner's notebook and what ``python -m course_utils grade`` writes.

    Raises:
        KeyError: an exercise id that does not exist (a typo in the lesson, not a wrong answer).
    """
    if exercise_id not in EXERCISES:
        raise KeyError(f"No exercise {exercise_id!r}; known: {', '.join(EXERCISES)}.")
    try:
        EXERCISES[exercise_id].checker(answer)
    except Hint as hint:
        return False, str(hint)
    except NotImplementedError:
        return False, ("this is still the blank. Replace `raise NotImplementedError` below the # TODO with your "
                       "code, then run the cell again.")
    except Exception as err:  # the learner's code crashed: a hint, and the notebook keeps running
        return False, f"your code raised {type(err).__name__}: {err}"
    return True, ""


def check(exercise_id: str, answer: Any, *, record: bool = True) -> bool:
    """Check ``answer`` for one exercise: print "✓ passed" (and record it) or a hint, and return True/False.

    When a grader runs the notebook (``$COURSE_GRADE_DIR`` set), the answer is handed in to it instead: the
    grader runs the checker in its own process, on the answer itself, not on what the notebook printed.

    Raises:
        KeyError: an exercise id that does not exist (a typo in the lesson, not a wrong answer).
    """
    if os.environ.get(GRADE_ENV):
        if exercise_id not in EXERCISES:
            raise KeyError(f"No exercise {exercise_id!r}; known: {', '.join(EXERCISES)}.")
        from .grade import hand_in

        hand_in(exercise_id, answer, Path(os.environ[GRADE_ENV]))
        return False
    passed, hint = verdict(exercise_id, answer)
    ex = EXERCISES[exercise_id]
    if not passed:
        print(f"✗ {ex.id} not yet: {hint}")
        return False
    print(f"✓ {ex.id} passed: {ex.title}")
    if record:
        record_pass(ex.id)
    return True


# ---- small helpers the checkers share ------------------------------------------------------------------------

def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    if not callable(fn):
        raise Hint(f"expected a function (or class), got {type(fn).__name__}.")
    out = fn(*args, **kwargs)
    if out is None:
        raise Hint("your function returned None: is the `return` missing?")
    return out


def _tensor(out: Any, shape: Sequence[int] | None = None, what: str = "the result") -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise Hint(f"{what} should be a torch.Tensor, got {type(out).__name__}.")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise Hint(f"{what} has shape {tuple(out.shape)}; expected {tuple(shape)}.")
    return out


def _bool_mask(out: Any, T: int, what: str) -> torch.Tensor:
    out = _tensor(out, (T, T), what)
    if out.dtype != torch.bool:
        raise Hint(f"{what} has dtype {out.dtype}: return a boolean mask (True = may attend).")
    return out


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


# ---- chapter 1: masks ----------------------------------------------------------------------------------------

@_exercise("01.causal_mask", "warm-up", "the causal (lower-triangular) mask")
def check_causal_mask(fn: Callable[[int], torch.Tensor]) -> None:
    """``fn(T)`` must equal ``masks.causal_mask(T)``."""
    from . import masks

    for T in (1, 4, 7):
        out = _bool_mask(_call(fn, T), T, f"causal_mask({T})")
        ref = masks.causal_mask(T)
        if torch.equal(out, ref):
            continue
        if torch.equal(out, ref.T):
            raise Hint("the mask is transposed: row i is the query, column j the key, and token i sees j <= i.")
        if (out & ~ref).any():
            raise Hint("a token can see a later token (a True above the diagonal): that is peeking at the future.")
        if not out.diagonal().all():
            raise Hint("the diagonal is blocked: a token may attend to itself.")
        raise Hint("some earlier tokens (j < i) are blocked: a causal decoder sees all of its past.")


@_exercise("01.sliding_window_mask", "core", "the sliding-window causal mask (Mistral)")
def check_sliding_window_mask(fn: Callable[[int, int], torch.Tensor]) -> None:
    """``fn(T, w)``: token i sees the last ``w`` tokens up to itself, ``i - w < j <= i`` (transformers' rule)."""
    from . import masks

    for T, w in ((6, 1), (7, 3), (5, 5), (4, 9)):
        out = _bool_mask(_call(fn, T, w), T, f"sliding_window_mask({T}, {w})")
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        ref = masks.causal_mask(T) & (i - j < w)
        if torch.equal(out, ref):
            continue
        if (out & ~masks.causal_mask(T)).any():
            raise Hint(f"with T={T}, w={w} a token sees a later token: the window is on top of the causal mask.")
        if torch.equal(out, masks.causal_mask(T)):
            raise Hint(f"that is the plain causal mask: with w={w}, keys {w} or more positions back are blocked.")
        if out.sum(1).max() == w + 1:
            raise Hint(f"the window is one too wide: with w={w} each token sees {w} tokens, itself included.")
        if w >= T:
            raise Hint(f"a window at least as long as the text (T={T}, w={w}) is just the causal mask.")
        raise Hint(f"wrong for T={T}, w={w}: token i should see exactly the tokens j with i - w < j <= i.")


@_exercise("01.packed_mask", "stretch", "the packed (block-diagonal causal) mask")
def check_packed_mask(fn: Callable[[Sequence[int]], torch.Tensor]) -> None:
    """``fn(lengths)``: several sequences packed in one row; each is causal and none sees another."""
    from . import masks

    for lengths in ([3], [3, 2], [2, 4, 1]):
        T = sum(lengths)
        out = _bool_mask(_call(fn, list(lengths)), T, f"packed_mask({lengths})")
        ref = torch.block_diag(*[masks.causal_mask(n) for n in lengths])
        if torch.equal(out, ref):
            continue
        if len(lengths) == 1:
            raise Hint("with a single sequence, the packed mask is the plain causal mask.")
        if (out & ~ref & masks.causal_mask(T)).any():
            raise Hint(f"for lengths {lengths} a token sees tokens of an earlier sequence: packed sequences must "
                       "not attend across their boundary.")
        raise Hint(f"wrong for lengths {lengths}: inside each sequence the mask should be causal.")


# ---- chapter 2: prompt learning -------------------------------------------------------------------------------

_WORDS = {"positive": ["great", "good"], "neutral": ["okay"], "negative": ["bad", "terrible"]}


@_exercise("02.verbalize", "warm-up", "answer mapping: answer word -> label")
def check_verbalize(fn: Callable[[dict, str], str]) -> None:
    """``fn(label_words, z)`` must equal ``prompting.Verbalizer(label_words)(z)``."""
    from .prompting import Verbalizer

    for words in (_WORDS, {"sports": ["football", "tennis"], "politics": ["election"]}):
        v = Verbalizer(words)
        for z in v.answers:
            out = _call(fn, words, z)
            if out in v.answers:
                raise Hint(f"for {z!r} you returned a word ({out!r}); return the label it maps to.")
            if out != v(z):
                raise Hint(f"v({z!r}) should be the label whose list of words contains {z!r}; you returned {out!r}.")


@_exercise("02.label_scores", "core", "label scores from answer log-probs (sum aggregation)")
def check_label_scores(fn: Callable[[torch.Tensor, list, dict], torch.Tensor]) -> None:
    """``fn(answer_logprobs, answers, label_words)``: ``Verbalizer.aggregate(how="sum")`` with answers in any order."""
    from .prompting import Verbalizer

    v = Verbalizer(_WORDS)
    answers = ["terrible", "okay", "great", "bad", "good"]  # not the verbalizer's order: look words up by name
    lp = torch.randn(4, len(answers), generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    out = _tensor(_call(fn, lp.clone(), list(answers), _WORDS), (4, len(v.labels)), "the label scores")
    by_name = lp[:, [answers.index(z) for z in v.answers]]
    ref = v.aggregate(by_name, "sum")
    if _close(out, ref):
        return
    for how in ("mean", "max", "first"):
        if _close(out, v.aggregate(by_name, how)):
            raise Hint(f"that is the {how!r} aggregation. 'sum' adds the words' probabilities: work in "
                       "probabilities, or use torch.logsumexp on the log-probs.")
    summed = torch.stack([by_name[:, [v.answers.index(w) for w in _WORDS[y]]].sum(1) for y in v.labels], 1)
    if _close(out, summed):
        raise Hint("adding log-probs multiplies probabilities; the label's probability is the sum of its words' "
                   "probabilities.")
    if _close(out, ref[:, [2, 1, 0]]) or _close(out.sort(1).values, ref.sort(1).values):
        raise Hint("the columns are in the wrong order: one column per label, in the order of label_words.")
    raise Hint("the scores differ from the reference: look each word up in `answers` by name (its column), "
               "and aggregate each label's words.")


@_exercise("02.calibrate", "stretch", "contextual calibration (Zhao et al. 2021)")
def check_calibrate(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(label_probs, p_cf)`` must equal ``prompting.contextual_calibration``."""
    from .prompting import contextual_calibration

    g = torch.Generator().manual_seed(1)
    probs = torch.rand(5, 3, generator=g).softmax(-1)
    p_cf = torch.tensor([0.7, 0.2, 0.1])
    out = _tensor(_call(fn, probs.clone(), p_cf.clone()), (5, 3), "the calibrated probabilities")
    if _close(out, contextual_calibration(probs, p_cf)):
        cf = _tensor(_call(fn, p_cf[None].clone(), p_cf.clone()), (1, 3), "calibrating p_cf itself")
        if _close(cf, torch.full((1, 3), 1 / 3)):
            return
    if not torch.allclose(out.sum(-1), torch.ones(5), atol=1e-4):
        raise Hint("each row should be a probability distribution again: renormalise so it sums to 1.")
    if _close(out, (probs * p_cf) / (probs * p_cf).sum(-1, keepdim=True)):
        raise Hint("you multiplied by p_cf; calibration removes the prompt's bias, so divide by it.")
    raise Hint("a content-free input (label_probs = p_cf) should come out uniform: p_cal ∝ p / p_cf.")


# ---- chapter 3: in-context learning ---------------------------------------------------------------------------

ICL_TEMPLATE = "Review: [X]\nSentiment: [Z]"
_DEMOS = [("A lovely film.", "positive"), ("It was fine.", "neutral"), ("Awful service.", "negative")]


def _icl_reference(demos: Sequence[tuple[str, str]], sep: str) -> str:
    from .data import Example
    from .icl import format_demonstrations
    from .prompting import Template, Verbalizer

    labels = {y: y for y in ("positive", "neutral", "negative")}
    return format_demonstrations(Template(ICL_TEMPLATE), Verbalizer(labels), [Example(t, y) for t, y in demos], sep)


@_exercise("03.format_demos", "warm-up", "the k-shot prefix")
def check_format_demos(fn: Callable[[list, str], str]) -> None:
    """``fn(demos, sep)`` must equal ``icl.format_demonstrations`` with chapter 3's template and label names."""
    for demos, sep in ((_DEMOS, "\n\n"), (_DEMOS[:1], "\n"), ([], "\n\n")):
        if not demos:
            out = fn(list(demos), sep)
            if out != "":
                raise Hint(f"with no demonstrations (k = 0) the prefix is the empty string, not {out!r}.")
            continue
        out = _call(fn, list(demos), sep)
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

    from .icl import select_knn

    n = len(pool_emb)
    return select_knn(list(range(n)), F.normalize(pool_emb, dim=-1), F.normalize(query_emb, dim=-1), k,
                      most_similar_first)


@_exercise("03.knn_indices", "core", "KATE: the k nearest demonstrations by cosine similarity")
def check_knn_indices(fn: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> None:
    """``fn(pool_emb, query_emb, k)``: ``[M, k]`` pool indices, most similar first (``icl.select_knn``)."""
    pool, query = _embeddings(12, 3)
    for k in (1, 4):
        out = _call(fn, pool.clone(), query.clone(), k)
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


@_exercise("03.knn_prompt", "stretch", "a KATE prompt: nearest demonstrations, the nearest right before the query")
def check_knn_prompt(fn: Callable[..., str]) -> None:
    """``fn(query, pool, pool_emb, query_emb, k)``: the k nearest demonstrations (nearest last, sep ``\\n\\n``), then
    the query with its answer slot open, ``"Review: <query>\\nSentiment:"``."""
    from .prompting import Template

    texts = [f"Review number {i}." for i in range(12)]
    pool = [(t, ("positive", "neutral", "negative")[i % 3]) for i, t in enumerate(texts)]
    pool_emb, query_emb = _embeddings(12, 1, seed=3)
    query = "Pretty good overall."
    context = Template(ICL_TEMPLATE).split(query)[0]
    for k in (1, 3):
        out = _call(fn, query, list(pool), pool_emb.clone(), query_emb[0].clone(), k)
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


# ---- chapter 4: parameter-efficient fine-tuning ---------------------------------------------------------------

@_exercise("04.adam_bytes", "warm-up", "memory of full fine-tuning with mixed-precision AdamW")
def check_adam_bytes(fn: Callable[[int], float]) -> None:
    """``fn(n_params)``: bytes of weights, gradients, master copy and Adam states (``memory.bytes_per_param``)."""
    from .memory import bytes_per_param

    per = sum(bytes_per_param().values())
    for n in (1, 135_000_000, 7_000_000_000):
        out = _call(fn, n)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number of bytes, got {type(out).__name__}.")
        if math.isclose(out, n * per, rel_tol=1e-9):
            continue
        if math.isclose(out, n * per / 2**30, rel_tol=1e-9):
            raise Hint("that is GiB; return bytes.")
        got = out / n
        raise Hint(f"you count {got:g} bytes per parameter. Add up the 16-bit weights, their gradients, the fp32 "
                   "master copy and AdamW's two fp32 moments.")


@_exercise("04.lora_layer", "core", "a LoRA layer from scratch")
def check_lora_layer(cls: Any) -> None:
    """``cls(base, r, alpha)`` must behave like ``lora.LoRALinear``: frozen base, B = 0 at init, ``alpha / r``."""
    from .lora import LoRALinear

    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    w0 = base.weight.detach().clone()
    layer = _call(cls, base, 2, 4.0)
    if not isinstance(layer, nn.Module):
        raise Hint(f"{getattr(cls, '__name__', cls)}(base, r, alpha) should build an nn.Module.")
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        raise Hint("W0 must stay frozen: set requires_grad to False on the base layer's parameters.")
    trainable = [p for p in layer.parameters() if p.requires_grad]
    A = next((p for p in trainable if tuple(p.shape) == (2, 6)), None)
    B = next((p for p in trainable if tuple(p.shape) == (5, 2)), None)
    if A is None or B is None or len(trainable) != 2:
        raise Hint("expected exactly two trainable matrices, A of shape (r, in) = (2, 6) and B of shape "
                   f"(out, r) = (5, 2); found shapes {[tuple(p.shape) for p in trainable]}.")
    x = torch.randn(3, 6)
    with torch.no_grad():
        out0 = _tensor(layer(x), (3, 5), "the layer's output")
        if not _close(out0, base(x)):
            raise Hint("your LoRA output differs from the frozen layer at init: is B zero?")
        if not A.abs().sum() > 0:
            raise Hint("A is all zeros: with A and B both zero neither gets a gradient. Initialise A randomly.")
        ref = LoRALinear(base, r=2, alpha=4.0)
        A.normal_()
        B.normal_()
        ref.lora_A.copy_(A)
        ref.lora_B.copy_(B)
        out = layer(x)
        if not torch.equal(base.weight, w0):
            raise Hint("W0 changed: LoRA adds B A to the output and never writes into the frozen weight.")
        if _close(out, ref(x), atol=1e-4):
            pass
        elif _close(out, base(x) + x @ A.T @ B.T, atol=1e-4):
            raise Hint("the update is not scaled: multiply B A x by alpha / r.")
        elif _close(out, base(x) + x @ A.T @ B.T * (2 / 4.0), atol=1e-4):
            raise Hint("the scale is upside down: it is alpha / r.")
        else:
            raise Hint("with trained (non-zero) A and B the output differs from W0 x + b + (B A x) * alpha / r.")
    layer(x).sum().backward()
    if A.grad is None or B.grad is None:
        raise Hint("A and B get no gradient: use them as parameters in forward (no .detach(), no torch.no_grad).")


@_exercise("04.effective_rank", "stretch", "effective rank of an update from its singular values")
def check_effective_rank(fn: Callable[[torch.Tensor, float], int]) -> None:
    """``fn(s, energy)`` must equal ``lora.effective_rank``."""
    from .lora import effective_rank

    cases = [(torch.tensor([3.0, 2.0, 1.0, 0.1]), 0.9), (torch.tensor([3.0, 2.0, 1.0, 0.1]), 0.5),
             (torch.tensor([1.0, 1.0, 1.0, 1.0]), 0.6), (torch.tensor([5.0, 0.0, 0.0]), 0.9),
             (torch.zeros(3), 0.9)]
    for s, energy in cases:
        out = _call(fn, s.clone(), energy)
        out = int(out.item()) if isinstance(out, torch.Tensor) else out
        ref = effective_rank(s, energy)
        if out == ref:
            continue
        if not s.any():
            raise Hint("a zero update has rank 0 (and no energy to divide by).")
        share = (s.cumsum(0) / s.sum() < energy - 1e-6).sum().item() + 1
        if out == share and share != ref:
            raise Hint("energy is measured in squared singular values: use s ** 2.")
        raise Hint(f"for s = {s.tolist()} and energy = {energy}: count the largest values until their share of "
                   "sum(s**2) reaches energy (the value that crosses it counts too).")


# ---- chapter 5: positions -------------------------------------------------------------------------------------

@_exercise("05.rotate_half", "warm-up", "rotate_half: [x1, x2] -> [-x2, x1]")
def check_rotate_half(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(x)`` must equal ``positions.rotate_half(x)`` on any leading shape."""
    from .positions import rotate_half

    x = torch.arange(1.0, 9.0)
    for inp in (x, torch.randn(2, 3, 8)):
        out = _tensor(_call(fn, inp.clone()), tuple(inp.shape), "rotate_half(x)")
        if _close(out, rotate_half(inp)):
            continue
        x1, x2 = inp.chunk(2, dim=-1)
        if _close(out, torch.cat((x2, -x1), -1)):
            raise Hint("the signs are swapped: the first half of the result is -x2.")
        inter = torch.stack((-inp[..., 1::2], inp[..., 0::2]), -1).flatten(-2)
        if _close(out, inter):
            raise Hint("that pairs neighbours (2i, 2i+1), Meta's layout; transformers pairs dimension i with i + d/2: "
                       "split the last dimension into two halves.")
        raise Hint(f"rotate_half({x.tolist()}) should pair dimension i with i + d/2 and swap the halves with one "
                   "sign change; check the last dimension is the one you split.")


@_exercise("05.apply_rope", "core", "RoPE from scratch")
def check_apply_rope(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(x, base)`` for ``x`` of shape ``[..., seq, d]`` at positions ``0..seq-1`` (``positions.apply_rope``)."""
    from .positions import apply_rope

    g = torch.Generator().manual_seed(0)
    for shape, base in (((5, 8), 10000.0), ((2, 3, 7, 16), 100.0)):
        x = torch.randn(*shape, generator=g)
        out = _tensor(_call(fn, x.clone(), base), shape, f"RoPE of a {shape} input")
        ref = apply_rope(x, base=base)
        if _close(out, ref, atol=1e-4):
            continue
        if not _close(out[..., 0, :], x[..., 0, :], atol=1e-4):
            raise Hint("position 0 has angle 0, so it must come out unchanged; check the positions start at 0.")
        if _close(out, apply_rope(x, base=10000.0), atol=1e-4):
            raise Hint(f"use the `base` argument ({base:g} here) in the frequencies, not a fixed 10,000.")
        raise Hint("position m turns pair i by m * theta_i with theta_i = base ** (-2i / d), i = 0 .. d/2 - 1; "
                   "both halves use the same angles: x * cos + rotate_half(x) * sin.")


@_exercise("05.alibi_slopes", "stretch", "ALiBi slopes for any number of heads")
def check_alibi_slopes(fn: Callable[[int], Any]) -> None:
    """``fn(num_heads)`` must equal ``positions.alibi_slopes`` (power of two or not)."""
    from .positions import alibi_slopes

    for n in (8, 1, 2, 16, 6, 12, 20):
        out = _call(fn, n)
        try:
            got = torch.as_tensor(out, dtype=torch.float32).flatten()
        except (TypeError, ValueError, RuntimeError):
            raise Hint(f"return the slopes as a list or a tensor, got {type(out).__name__}.")
        if got.shape != (n,):
            raise Hint(f"{n} heads need {n} slopes, got {got.numel()}.")
        if _close(got, alibi_slopes(n), atol=1e-6):
            continue
        if n & (n - 1) == 0:
            raise Hint(f"for {n} heads the slopes are 1/a, 1/a^2, ..., 1/a^{n} with a^{n} = 256 (8 heads: 1/2 .. "
                       "1/256).")
        raise Hint(f"{n} heads is not a power of two: take the slopes of the power of two just below, then every "
                   "other slope of twice that many heads until there are enough.")


# ---- chapter 6: instruction data ------------------------------------------------------------------------------

@_exercise("06.alpaca_prompt", "warm-up", "the Alpaca prompt template")
def check_alpaca_prompt(fn: Callable[..., str]) -> None:
    """``fn(instruction, input)`` must equal ``instructions.alpaca_prompt``."""
    from .instructions import alpaca_prompt

    for instruction, inp in (("Name three colours.", ""), ("Translate to French.", "Good morning"),
                             ("  Sum the numbers. ", " 3, 4 "), ("Say hi.", "   ")):
        out = _call(fn, instruction, inp)
        ref = alpaca_prompt(instruction, inp)
        if out == ref:
            continue
        if ("### Input:" in out) != ("### Input:" in ref):
            raise Hint(f"for input {inp!r} pick the other template: the with-input one only when the input has text "
                       "(whitespace alone counts as empty).")
        if out.strip() == ref.strip():
            raise Hint("keep the template's whitespace as it is, including the newline after '### Response:'.")
        raise Hint(f"for {instruction!r}: strip the spaces around the instruction and input before filling in.")


@_exercise("06.distinct_n", "core", "distinct-n: how diverse is a set of texts?")
def check_distinct_n(fn: Callable[[list, int], float]) -> None:
    """``fn(texts, n)`` on lists of words must equal ``decoding.distinct_n`` (pooled over all texts)."""
    from .decoding import distinct_n

    texts = [["write", "a", "poem", "about", "cats"], ["write", "a", "poem", "about", "dogs"],
             ["list", "three", "cats"], ["hi"]]
    for sample, n in ((texts, 1), (texts, 2), (texts, 3), ([["hi"]], 2), ([["a", "a", "a"]], 1)):
        out = _call(fn, [list(t) for t in sample], n)
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


@_exercise("06.rouge_filter", "stretch", "Self-Instruct's ROUGE-L filter")
def check_rouge_filter(fn: Callable[..., list]) -> None:
    """``fn(candidates, pool, threshold)``: keep a candidate whose ROUGE-L F with every pool text (and every candidate
    kept before it) is below ``threshold``; a kept candidate joins the pool (``rouge.RougePool.is_novel``)."""
    from .rouge import RougePool

    pool = ["Write a poem about the sea.", "Translate the sentence into French."]
    candidates = ["Write a short poem about the sea.", "List three prime numbers.", "List three prime numbers please.",
                  "Summarise the article in one sentence.", "Translate this sentence into German."]
    for threshold in (0.7, 0.5, 0.8):
        out = _call(fn, list(candidates), list(pool), threshold)
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


# ---- chapter 7: supervised fine-tuning ------------------------------------------------------------------------

class _IdTokenizer:
    """A stand-in tokenizer for checks: the text "5 6 7" is the ids [5, 6, 7]."""

    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [int(t) for t in text.split()]}


@_exercise("07.sft_labels", "warm-up", "SFT labels: train on the response only")
def check_sft_labels(fn: Callable[[list, list, int], tuple]) -> None:
    """``fn(prompt_ids, response_ids, eos_id)`` -> ``(input_ids, labels)`` as ``sft.tokenize_pair`` builds them."""
    from .sft import tokenize_pair

    tok = _IdTokenizer()
    for prompt, response in (([5, 6, 7], [8, 9]), ([11], [12, 13, 14])):
        out = _call(fn, list(prompt), list(response), tok.eos_token_id)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Hint("return a pair (input_ids, labels).")
        ids, labels = (list(x.tolist() if isinstance(x, torch.Tensor) else x) for x in out)
        ref = tokenize_pair(tok, " ".join(map(str, prompt)), " ".join(map(str, response)), max_len=64)
        if ids == ref["input_ids"] and labels == ref["labels"]:
            continue
        if len(ids) != len(labels):
            raise Hint("input_ids and labels must have the same length: one label per input token.")
        if ids != ref["input_ids"]:
            raise Hint("input_ids is the prompt, then the response, then EOS (so the model learns to stop).")
        if labels[:len(prompt)] != [-100] * len(prompt):
            raise Hint("the prompt's labels must be -100, the value the loss skips.")
        raise Hint("the response's tokens, and the EOS after them, keep their ids as labels.")


@_exercise("07.l2sp_penalty", "core", "the L2-SP penalty against forgetting")
def check_l2sp_penalty(fn: Callable[[nn.Module, dict, float], torch.Tensor]) -> None:
    """``fn(model, anchor, alpha)`` must equal ``forgetting.L2SP(model_at_start, alpha)(model)``."""
    from .forgetting import L2SP

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # a frozen weight: not anchored, not penalised
    penalty = L2SP(model, alpha=0.5)
    anchor = {n: t.clone() for n, t in penalty.anchor.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    out = _tensor(_call(fn, model, anchor, 0.5), None, "the penalty")
    ref = penalty(model)
    if out.numel() != 1:
        raise Hint(f"the penalty is one number (a 0-d tensor); got shape {tuple(out.shape)}.")
    if not out.requires_grad:
        raise Hint("the penalty must be differentiable (it is added to the loss): compute it from the parameters, "
                   "without .item(), .detach() or torch.no_grad().")
    if torch.allclose(out, ref, rtol=1e-5):
        return
    if torch.allclose(out, 2 * ref, rtol=1e-5):
        raise Hint("twice the reference: the penalty is alpha / 2 times the sum of squares.")
    raise Hint("sum (theta - theta0) ** 2 over every anchored weight (each name in `anchor`), times alpha / 2.")


@_exercise("07.hard_weights", "stretch", "hard-example mining weights")
def check_hard_weights(fn: Callable[[torch.Tensor, float, float], list]) -> None:
    """``fn(losses, top_fraction, boost)`` must equal ``sample_optimization.hard_example_weights``."""
    from .sample_optimization import hard_example_weights

    rng = random.Random(0)
    losses = torch.tensor([rng.uniform(0.5, 3.0) for _ in range(10)])
    for frac, boost in ((0.25, 3.0), (0.1, 2.0), (1.0, 3.0)):
        out = _call(fn, losses.clone(), frac, boost)
        got = torch.as_tensor(out, dtype=torch.float32).flatten()
        ref = torch.tensor(hard_example_weights(losses, frac, boost))
        if got.shape != ref.shape:
            raise Hint(f"one weight per example: expected {len(losses)}, got {got.numel()}.")
        if _close(got, ref):
            continue
        if not math.isclose(got.mean().item(), 1.0, abs_tol=1e-5):
            raise Hint("rescale the weights to mean 1, so the learning rate means the same as without mining.")
        if (got > 1).any() and losses[got > got.min()].mean() < losses.mean():
            raise Hint("you boosted the easy examples: the hard ones are those with the highest loss.")
        raise Hint(f"with top_fraction={frac}: boost the max(1, round(top_fraction * N)) highest-loss examples.")


# ---- chapter 0: setup and tour -------------------------------------------------------------------------------

@_exercise("00.weight_gib", "warm-up", "the memory of a model's weights, in GiB")
def check_weight_gib(fn: Callable[[int, torch.dtype], float]) -> None:
    """``fn(n_params, dtype)``: ``n_params`` times the dtype's bytes per element, in GiB (``2 ** 30`` bytes)."""
    for n, dtype in ((134_515_008, torch.float32), (1_711_376_384, torch.bfloat16), (6_738_415_616, torch.int8)):
        out = _call(fn, n, dtype)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number (GiB), got {type(out).__name__}.")
        size = torch.empty((), dtype=dtype).element_size()
        ref = n * size / 2**30
        if math.isclose(out, ref, rel_tol=1e-6):
            continue
        if math.isclose(out, n * size / 1e9, rel_tol=1e-6):
            raise Hint("that is GB (10 ** 9 bytes); a GiB is 2 ** 30 bytes, which is what torch and nvidia-smi use.")
        if math.isclose(out, n * size, rel_tol=1e-6):
            raise Hint("that is the number of bytes: divide by 2 ** 30 to get GiB.")
        if math.isclose(out, 8 * ref, rel_tol=1e-6) or math.isclose(out, 8 * n * size / 1e9, rel_tol=1e-6):
            raise Hint("that counts bits: a weight in this dtype takes element_size() bytes, 8 bits each.")
        raise Hint(f"for {n:,} weights in {dtype}: each takes torch.empty((), dtype=dtype).element_size() bytes.")


_SHAPES_00 = ("SmolLM2-135M", "Llama-2-7B", "Llama-2-70B")


@_exercise("00.param_count", "core", "the parameter count of a Llama-style config")
def check_param_count(fn: Callable[[dict], int]) -> None:
    """``fn(config)`` must equal ``memory.llama_param_count(**config)`` (keys as in ``memory.MODEL_SHAPES``)."""
    from .memory import MODEL_SHAPES, llama_param_count

    for name in _SHAPES_00:
        cfg = dict(MODEL_SHAPES[name])
        out = _call(fn, dict(cfg))
        ref = llama_param_count(**cfg)
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if out == ref:
            continue
        h, L, v = cfg["hidden_size"], cfg["num_layers"], cfg["vocab_size"]
        untied = llama_param_count(**{**cfg, "tie_embeddings": not cfg["tie_embeddings"]})
        no_gqa = llama_param_count(**{**cfg, "num_kv_heads": cfg["num_heads"]})
        if out == untied:
            raise Hint(f"{name}: tie_embeddings={cfg['tie_embeddings']}: a tied model shares one vocab x hidden "
                       "matrix between the embedding and the LM head; an untied one has two.")
        if out == no_gqa:
            raise Hint(f"{name} uses grouped-query attention: k_proj and v_proj have num_kv_heads * head_dim "
                       "outputs (head_dim = hidden_size // num_heads), not hidden_size.")
        if out in (ref - L * 2 * h - h, ref - L * 2 * h, ref - h):
            raise Hint("the RMSNorm weights are missing: two per layer and one final norm, hidden_size each.")
        if out == ref - L * h * cfg["intermediate_size"]:
            raise Hint("the MLP has three matrices (gate_proj, up_proj, down_proj): SwiGLU, not two.")
        raise Hint(f"{name}: expected {ref:,}, got {out!r}. Count the embeddings ({v} x {h}), per layer the 4 "
                   "attention and 3 MLP linears (no biases) and 2 norms, then the final norm.")


@_exercise("00.profile_name", "stretch", "which profile a notebook runs with")
def check_profile_name(fn: Callable[[Any, Any, bool], str]) -> None:
    """``fn(name, env, cuda)`` must equal ``config.profile_name(name)`` with ``$COURSE_PROFILE=env`` (``None``:
    unset) and CUDA available or not; an unknown name raises ``ValueError``."""
    from unittest import mock

    from . import config

    cases = [(None, None, False), (None, None, True), ("smoke", None, True), (None, "cpu", True),
             ("gpu", "smoke", False), (None, " Smoke ", False), ("AUTO", "smoke", True), (None, "", False),
             (None, "auto", True)]
    for name, env, cuda in cases:
        environ = {k: v for k, v in os.environ.items() if k != config.PROFILE_ENV}
        if env is not None:
            environ[config.PROFILE_ENV] = env
        with mock.patch.dict(os.environ, environ, clear=True), mock.patch.object(config, "_cuda_available",
                                                                                 lambda: cuda):
            ref = config.profile_name(name)
        out = _call(fn, name, env, cuda)
        if out == ref:
            continue
        where = f"name={name!r}, env={env!r}, cuda={cuda}"
        if name is not None and env is not None and out == env.strip().lower():
            raise Hint(f"{where}: an explicit argument wins over $COURSE_PROFILE.")
        if out in (name, env) and out is not None and out != out.strip().lower():
            raise Hint(f"{where}: names are case- and space-insensitive: strip() and lower() them.")
        if ref in ("gpu", "cpu") and out != ref:
            raise Hint(f"{where}: 'auto' (or nothing set) means 'gpu' when CUDA is available, else 'cpu'.")
        raise Hint(f"{where}: expected {ref!r}, got {out!r}.")
    try:
        out = fn("large", None, False)
    except ValueError:
        return
    raise Hint(f"an unknown profile name ('large') should raise ValueError, not return {out!r}: a typo in "
               "COURSE_PROFILE must not silently run another profile.")


# ---- chapter 8: alignment and decoding -----------------------------------------------------------------------

@_exercise("08.shift_kind", "warm-up", "URIAL's token-shift classes")
def check_shift_kind(fn: Callable[[int], str]) -> None:
    """``fn(rank)`` must equal ``alignment.shift_kind(rank)`` for ranks 1..12."""
    from .alignment import shift_kind

    for rank in range(1, 13):
        out = _call(fn, rank)
        ref = shift_kind(rank)
        if out == ref:
            continue
        if out not in ("unshifted", "marginal", "shifted"):
            raise Hint(f"return one of 'unshifted', 'marginal', 'shifted'; got {out!r} for rank {rank}.")
        if rank == 1:
            raise Hint("rank 1 means the base model's top token is the tuned model's choice: nothing shifted.")
        if rank in (2, 3):
            raise Hint(f"rank {rank}: the tuned token is among the base model's top 3 (but not its first): marginal.")
        raise Hint(f"rank {rank}: beyond the base model's top 3 the token is shifted.")


@_exercise("08.pass_at_k", "core", "the unbiased pass@k estimator (Chen et al. 2021)")
def check_pass_at_k(fn: Callable[[int, int, int], float]) -> None:
    """``fn(n, c, k)`` must equal ``alignment.pass_at_k(n, c, k)``."""
    from .alignment import pass_at_k

    for n, c, k in ((10, 3, 1), (10, 3, 5), (10, 0, 4), (10, 8, 3), (10, 10, 10), (200, 13, 10), (20, 5, 20)):
        out = _call(fn, n, c, k)
        ref = pass_at_k(n, c, k)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            out = float(out)
        if math.isclose(out, ref, abs_tol=1e-9):
            continue
        if math.isclose(out, 1 - (1 - c / n) ** k, abs_tol=1e-9):
            raise Hint(f"n={n}, c={c}, k={k}: 1 - (1 - c/n) ** k draws with replacement and is biased; pass@k "
                       "draws k of the n samples without replacement: use math.comb.")
        if k == 1:
            raise Hint("with k = 1, pass@1 is the share of correct samples, c / n.")
        if n - c < k:
            raise Hint(f"n={n}, c={c}, k={k}: fewer than k wrong samples, so every draw of k holds a correct one: 1.0.")
        raise Hint(f"n={n}, c={c}, k={k}: expected {ref:.4f}, got {out!r}: one minus the chance that all k drawn "
                   "samples are wrong.")


@_exercise("08.repetition_penalty", "stretch", "the CTRL repetition penalty as a logits processor")
def check_repetition_penalty(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(input_ids, scores, penalty)`` must equal transformers' ``RepetitionPenaltyLogitsProcessor(penalty)``."""
    from transformers import RepetitionPenaltyLogitsProcessor

    g = torch.Generator().manual_seed(8)
    ids = torch.tensor([[1, 4, 4, 7, 2], [0, 3, 3, 3, 9]])
    scores = torch.randn(2, 10, generator=g) * 3
    scores[0, 4], scores[0, 7], scores[1, 3] = -2.0, 2.5, 1.5  # seen tokens with negative and positive logits
    for penalty in (1.5, 1.0, 0.8):
        ref = RepetitionPenaltyLogitsProcessor(penalty)(ids.clone(), scores.clone())
        out = _tensor(_call(fn, ids.clone(), scores.clone(), penalty), tuple(scores.shape), "the scores")
        if _close(out, ref):
            continue
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, ids, True)
        if not _close(out[~seen], scores[~seen]):
            raise Hint(f"penalty={penalty}: tokens that are not in input_ids must keep their scores.")
        if _close(out, torch.where(seen, scores / penalty, scores)):
            raise Hint(f"penalty={penalty}: dividing a negative logit by the penalty makes it *more* likely; "
                       "divide positive logits, multiply negative ones.")
        if _close(out, torch.where(seen, scores * penalty, scores)) and penalty != 1.0:
            raise Hint(f"penalty={penalty}: multiplying a positive logit by the penalty makes it more likely; "
                       "divide positive logits, multiply negative ones.")
        raise Hint(f"penalty={penalty}: each token seen in its row is penalised once, however often it occurs "
                   "(row 1 has token 3 three times); other rows are independent.")


# ---- chapter 9: knowledge and hallucination ------------------------------------------------------------------

@_exercise("09.effective_data", "warm-up", "what repeated data is worth (Muennighoff et al. 2023)")
def check_effective_data(fn: Callable[[float, float], float]) -> None:
    """``fn(U, E)`` must equal ``data_scaling.effective_data(U, E)``: ``U + U R* (1 - exp(-(E - 1) / R*))``."""
    from .data_scaling import R_STAR, effective_data

    for u, e in ((1000.0, 1), (1000.0, 2), (1000.0, 4), (5e9, 16), (1000.0, 100)):
        out = _call(fn, u, e)
        ref = effective_data(u, e)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number (unique-token equivalents), got {type(out).__name__}.")
        if math.isclose(out, ref, rel_tol=1e-9):
            continue
        if math.isclose(out, u * R_STAR * (1 - math.exp(-(e - 1) / R_STAR)), rel_tol=1e-9):
            raise Hint("you return only the repeated part's worth: add the first epoch, U itself.")
        if math.isclose(out, u + u * R_STAR * (1 - math.exp(-e / R_STAR)), rel_tol=1e-9):
            raise Hint("the exponent counts the *repetitions* after the first epoch: R = E - 1, not E.")
        if math.isclose(out, u * e, rel_tol=1e-9):
            raise Hint(f"U x E counts every repeated token as fresh; the paper's point is that repeats are worth "
                       f"less and less (R* = {R_STAR}).")
        if e == 1:
            raise Hint("one epoch is the unique data itself: effective_data(U, 1) = U.")
        raise Hint(f"U={u:g}, E={e}: expected {ref:g}, got {out!r}.")


@_exercise("09.slick_category", "core", "the SliCK category of a fact")
def check_slick_category(fn: Callable[[float, float], str]) -> None:
    """``fn(p_greedy, p_sample)`` must equal ``slick.categorize``."""
    from .slick import CATEGORIES, categorize

    cases = ((1.0, 1.0), (1.0, 0.2), (2 / 3, 0.5), (1 / 3, 0.0), (0.0, 0.1), (0.0, 1 / 48), (0.0, 0.0))
    for pg, ps in cases:
        out = _call(fn, pg, ps)
        if out not in CATEGORIES:
            raise Hint(f"return one of {CATEGORIES}, got {out!r}.")
        ref = categorize(pg, ps)
        if out == ref:
            continue
        if ref == "MaybeKnown":
            raise Hint(f"P(greedy right) = {pg:.2f}: right under some exemplar sets but not all is MaybeKnown, "
                       "whatever the samples do.")
        if ref == "HighlyKnown":
            raise Hint("greedy right under every exemplar set (P = 1) is HighlyKnown.")
        if ref == "WeaklyKnown":
            raise Hint(f"greedy never right, but {ps:.3f} of the samples are: one right sample is enough for "
                       "WeaklyKnown.")
        raise Hint("never right, greedy or sampled, is Unknown.")


@_exercise("09.sample_probability", "stretch", "the probability that a sample is exactly the gold answer")
def check_sample_probability(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], Any]) -> None:
    """``fn(logits, answer, stop, T)`` must equal ``slick.sample_probability`` (section 3's scoring shortcut)."""
    from .slick import sample_probability

    g = torch.Generator().manual_seed(9)
    logits = torch.randn(4, 12, generator=g) * 2  # 3 answer tokens + the position after them
    answer = torch.tensor([3, 7, 1])
    stop = torch.zeros(12, dtype=torch.bool)
    stop[[0, 11]] = True
    for t in (1.0, 0.5, 2.0):
        out = _call(fn, logits.clone(), answer, stop, t)
        out = float(out) if isinstance(out, (torch.Tensor, int, float)) else out
        if not isinstance(out, float):
            raise Hint(f"return a probability (a float or a 0-d tensor), got {type(out).__name__}.")
        ref = float(sample_probability(logits, answer, stop, t))
        if math.isclose(out, ref, rel_tol=1e-4, abs_tol=1e-12):
            continue
        p = torch.softmax(logits / t, dim=-1)
        tokens = float(p[torch.arange(3), answer].prod())
        if math.isclose(out, tokens, rel_tol=1e-4):
            raise Hint("the sample must also *stop* after the answer: multiply by the probability of a stop token "
                       "at the last position (the sum over the stop mask).")
        plain = torch.softmax(logits, dim=-1)
        if t != 1.0 and math.isclose(out, float(plain[torch.arange(3), answer].prod() * plain[3][stop].sum()),
                                     rel_tol=1e-4):
            raise Hint(f"T = {t}: divide the logits by the temperature before the softmax.")
        if not 0 <= out <= 1:
            raise Hint(f"a probability lies in [0, 1]; got {out:g}: softmax (not log_softmax), or exp the sum of logs.")
        raise Hint(f"T = {t}: expected {ref:.3g}, got {out:.3g}: the product over answer positions j of "
                   "p_T(answer_j), times p_T(stop) after the last one.")


# ---- chapter 10: capstone ------------------------------------------------------------------------------------

@_exercise("10.merge_lora", "warm-up", "merge a LoRA update into the weight")
def check_merge_lora(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, int], torch.Tensor]) -> None:
    """``fn(W0, A, B, alpha, r)`` must equal the weight of ``lora.LoRALinear(...).merge()``."""
    from .lora import LoRALinear

    g = torch.Generator().manual_seed(10)
    for d_in, d_out, r, alpha in ((6, 4, 2, 4.0), (5, 7, 3, 3.0), (8, 8, 4, 16.0)):
        base = nn.Linear(d_in, d_out)
        with torch.no_grad():
            base.weight.copy_(torch.randn(d_out, d_in, generator=g))
        layer = LoRALinear(base, r, alpha)
        with torch.no_grad():
            layer.lora_A.copy_(torch.randn(r, d_in, generator=g))
            layer.lora_B.copy_(torch.randn(d_out, r, generator=g))
        W0, A, B = base.weight.detach().clone(), layer.lora_A.detach().clone(), layer.lora_B.detach().clone()
        ref = layer.merge().weight
        out = _tensor(_call(fn, W0.clone(), A.clone(), B.clone(), alpha, r), tuple(W0.shape), "the merged weight")
        if _close(out, ref, 1e-4):
            continue
        if _close(out, W0 + B @ A, 1e-4) and alpha != r:
            raise Hint(f"the update is not scaled: LoRA multiplies B A by alpha / r (here {alpha:g} / {r}).")
        if _close(out, W0 + B @ A * r / alpha, 1e-4):
            raise Hint("the scale is upside down: alpha / r, not r / alpha.")
        if _close(out, B @ A * alpha / r, 1e-4):
            raise Hint("that is only the update ΔW: the merged weight is W0 + ΔW.")
        raise Hint(f"expected W0 + (alpha / r) B A, shape (out, in) = {tuple(W0.shape)}.")


_INSTRUCTIONS = [
    "Give three tips for staying healthy.",
    "Summarize the text.",  # 3 words
    "Describe the image below in two sentences.",  # blacklisted
    "Explain why the sky looks blue at noon.",
    "Write a program that sorts a list of numbers.",
    "\"Quote\" the best line of the poem below.",  # punctuation start
    "Étudiez the history of the Roman calendar briefly.",  # non-ASCII start
    "Suggest a good name for a mapping startup.",  # 'mapping' is not the blacklisted 'map'
    "Plot the sales figures for the last quarter.",  # blacklisted
    "word " * 151,  # too long
    "Classify each sentence as positive or negative.",
    "List the files you would pack for a weekend trip.",  # blacklisted
    "write a program to check a palindrome, please.",  # lowercase: still rejected
]


@_exercise("10.keep_instruction", "core", "Self-Instruct's heuristic filter")
def check_keep_instruction(fn: Callable[[str], bool]) -> None:
    """``fn(instruction)`` -> keep? must equal ``self_instruct.instruction_filter(instruction) is None``."""
    from .self_instruct import instruction_filter

    for text in _INSTRUCTIONS:
        out = fn(text)
        if out is None:
            raise Hint("your function returned None: is the `return` missing? Return True (keep) or False.")
        reason = instruction_filter(text)
        if bool(out) == (reason is None):
            continue
        shown = text if len(text) < 60 else text[:40] + "..."
        if reason is None:
            if "mapping" in text:
                raise Hint(f"{shown!r} should be kept: match blacklisted words as whole words ('map' is not "
                           "'mapping'), e.g. with a regex \\b...\\b.")
            raise Hint(f"{shown!r} should be kept: it breaks none of the rules.")
        raise Hint(f"{shown!r} should be rejected: {reason}.")


@_exercise("10.alpaca_conversation", "stretch", "a multi-turn conversation in the Alpaca template")
def check_alpaca_conversation(fn: Callable[[list, str], str]) -> None:
    """``fn(history, message)`` must equal ``assistant.alpaca_conversation(history, message)``."""
    from .assistant import alpaca_conversation
    from .instructions import PROMPT_NO_INPUT

    turns = [{"role": "user", "content": "Hi, who are you?"}, {"role": "assistant", "content": "An assistant."},
             {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    head = PROMPT_NO_INPUT.split("### Instruction:")[0]
    for history, message in (([], "Give three tips for staying healthy."), (turns[:2], "What can you do?"),
                             (turns, "And another one?")):
        out = _call(fn, [dict(t) for t in history], message)
        ref = alpaca_conversation(history, message)
        if out == ref:
            continue
        if not isinstance(out, str):
            raise Hint(f"return the prompt as one string, got {type(out).__name__}.")
        if out.count(head.strip()) > 1:
            raise Hint("the header ('Below is an instruction...') comes once, at the top, not once per turn.")
        if not out.endswith("### Response:\n"):
            raise Hint("the prompt ends with '### Response:\\n', where the model writes its reply.")
        if " ".join(out.split()) == " ".join(ref.split()):
            raise Hint("the words are right but the whitespace differs: each block is '### Instruction:\\n...' "
                       "followed by a blank line, like the single-turn template.")
        if not history:
            raise Hint("with no history the conversation is the plain Alpaca prompt (instructions.PROMPT_NO_INPUT) "
                       "for the message.")
        raise Hint(f"with {len(history) // 2} earlier turn(s): each is an '### Instruction:' block with the user's "
                   "message and an '### Response:' block with the reply, in order, then the new message.")


# ---- progress ------------------------------------------------------------------------------------------------

def progress_file() -> Path:
    """Where passes are recorded: ``$COURSE_PROGRESS_FILE``, else ``~/.cache/sft-course/progress.json``."""
    env = os.environ.get(PROGRESS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sft-course" / "progress.json"


def load_progress() -> dict[str, str]:
    """``{exercise id: when it first passed (ISO time)}``; empty when there is no file or it is unreadable."""
    path = progress_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.get("passed", {}).items()} if isinstance(data, dict) else {}


def record_pass(exercise_id: str) -> None:
    """Record that an exercise passed (the first time counts). A file that cannot be written is only reported."""
    passed = load_progress()
    if exercise_id in passed:
        return
    passed[exercise_id] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = progress_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"passed": dict(sorted(passed.items()))}, indent=1) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves half a file
    except OSError as err:
        print(f"(progress not saved to {path}: {err})")


def _match_chapter(chapter: str | None, stem: str) -> bool:
    return chapter is None or stem == chapter or stem.split("_")[0] == chapter.zfill(2)


def progress_rows(chapter: str | None = None) -> list[dict]:
    """One row per exercise (``chapter``, ``id``, ``tier``, ``title``, ``passed``), optionally for one chapter
    (``"04"`` or ``"04_peft"``)."""
    passed = load_progress()
    return [{"chapter": ex.chapter, "id": ex.id, "tier": ex.tier, "title": ex.title, "passed": ex.id in passed}
            for ex in EXERCISES.values() if _match_chapter(chapter, ex.chapter)]


def progress_table(chapter: str | None = None) -> str:
    """The progress as a text table, chapter x exercise x passed / not yet, with a total."""
    rows = progress_rows(chapter)
    w = max([len(r["chapter"]) for r in rows] + [7])
    lines = [f"{'chapter':<{w}}  {'exercise':<24} {'tier':<8} status", "-" * (w + 48)]
    lines += [f"{r['chapter']:<{w}}  {r['id']:<24} {r['tier']:<8} {'✓ passed' if r['passed'] else '· not yet'}"
              for r in rows]
    lines.append(f"{sum(r['passed'] for r in rows)} of {len(rows)} exercises passed ({progress_file()})")
    return "\n".join(lines)


def progress_html(chapter: str | None = None) -> str:
    """The progress as an HTML table (what :func:`progress_widget` shows)."""
    rows = progress_rows(chapter)
    cells = "".join(f"<tr><td>{html.escape(r['chapter'])}</td><td>{html.escape(r['id'])}</td><td>{r['tier']}</td>"
                    f"<td>{html.escape(r['title'])}</td><td>{'✅ passed' if r['passed'] else '⬜ not yet'}</td></tr>"
                    for r in rows)
    head = "<tr><th>chapter</th><th>exercise</th><th>tier</th><th>what</th><th>status</th></tr>"
    total = f"<p>{sum(r['passed'] for r in rows)} of {len(rows)} exercises passed</p>"
    return f"<table>{head}{cells}</table>{total}"


def progress_widget(chapter: str | None = None):
    """An ipywidgets HTML table of :func:`progress_rows` (the text table is printed where ipywidgets is missing).

    Returns the widget, or ``None`` without ipywidgets.
    """
    try:
        import ipywidgets as w
    except ImportError:
        print(progress_table(chapter))
        return None
    return w.HTML(progress_html(chapter))


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils progress [--chapter NN]``: print which exercises pass."""
    parser = argparse.ArgumentParser(prog="python -m course_utils progress")
    parser.add_argument("--chapter", help="one chapter, e.g. 04 or 04_peft")
    args = parser.parse_args(argv)
    print(progress_table(args.chapter))
    return 0
