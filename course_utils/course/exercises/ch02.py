"""Chapter 2's exercises: prompt learning.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor
from course_utils.prompting import SEED_LABEL_WORDS


@exercise("02.verbalize", "warm-up", "answer mapping: answer word -> label")
def check_verbalize(fn: Callable[[dict, str], str]) -> None:
    """``fn(label_words, z)`` must equal ``prompting.Verbalizer(label_words)(z)``."""
    from course_utils.prompting import Verbalizer

    for words in (SEED_LABEL_WORDS, {"sports": ["football", "tennis"], "politics": ["election"]}):
        v = Verbalizer(words)
        for z in v.answers:
            out = call(fn, words, z)
            if out in v.answers:
                raise Hint(f"for {z!r} you returned a word ({out!r}); return the label it maps to.")
            if out != v(z):
                raise Hint(f"v({z!r}) should be the label whose list of words contains {z!r}; you returned {out!r}.")


@exercise("02.label_scores", "core", "label scores from answer log-probs (sum aggregation)")
def check_label_scores(fn: Callable[[torch.Tensor, list, dict], torch.Tensor]) -> None:
    """``fn(answer_logprobs, answers, label_words)``: ``Verbalizer.aggregate(how="sum")`` with answers in any order."""
    from course_utils.prompting import Verbalizer

    v = Verbalizer(SEED_LABEL_WORDS)
    answers = ["terrible", "okay", "great", "bad", "good"]  # not the verbalizer's order: look words up by name
    lp = torch.randn(4, len(answers), generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    out = tensor(call(fn, lp.clone(), list(answers), SEED_LABEL_WORDS), (4, len(v.labels)), "the label scores")
    by_name = lp[:, [answers.index(z) for z in v.answers]]
    ref = v.aggregate(by_name, "sum")
    if close(out, ref):
        return
    for how in ("mean", "max", "first"):
        if close(out, v.aggregate(by_name, how)):
            raise Hint(f"that is the {how!r} aggregation. 'sum' adds the words' probabilities: work in "
                       "probabilities, or use torch.logsumexp on the log-probs.")
    summed = torch.stack([by_name[:, [v.answers.index(w) for w in SEED_LABEL_WORDS[y]]].sum(1) for y in v.labels], 1)
    if close(out, summed):
        raise Hint("adding log-probs multiplies probabilities; the label's probability is the sum of its words' "
                   "probabilities.")
    if close(out, ref[:, [2, 1, 0]]) or close(out.sort(1).values, ref.sort(1).values):
        raise Hint("the columns are in the wrong order: one column per label, in the order of label_words.")
    raise Hint("the scores differ from the reference: look each word up in `answers` by name (its column), "
               "and aggregate each label's words.")


@exercise("02.calibrate", "stretch", "contextual calibration (Zhao et al. 2021)")
def check_calibrate(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(label_probs, p_cf)`` must equal ``prompting.contextual_calibration``."""
    from course_utils.prompting import contextual_calibration

    g = torch.Generator().manual_seed(1)
    probs = torch.rand(5, 3, generator=g).softmax(-1)
    p_cf = torch.tensor([0.7, 0.2, 0.1])
    out = tensor(call(fn, probs.clone(), p_cf.clone()), (5, 3), "the calibrated probabilities")
    if close(out, contextual_calibration(probs, p_cf)):
        cf = tensor(call(fn, p_cf[None].clone(), p_cf.clone()), (1, 3), "calibrating p_cf itself")
        if close(cf, torch.full((1, 3), 1 / 3)):
            return
    if not torch.allclose(out.sum(-1), torch.ones(5), atol=1e-4):
        raise Hint("each row should be a probability distribution again: renormalise so it sums to 1.")
    if close(out, (probs * p_cf) / (probs * p_cf).sum(-1, keepdim=True)):
        raise Hint("you multiplied by p_cf; calibration removes the prompt's bias, so divide by it.")
    raise Hint("a content-free input (label_probs = p_cf) should come out uniform: p_cal ∝ p / p_cf.")
