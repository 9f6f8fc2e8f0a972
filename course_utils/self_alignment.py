"""Self-alignment, closed into a loop (Lee GenAI §5): the model answers prompts, scores its own answers as its own
judge, and is trained on what it scored best (SFT on best-of-n, or DPO on best-vs-worst pairs). No human label
is used anywhere in the loop.

The result is measured twice on *held-out* prompts: by the same judge (what the loop optimised), and by a rule
the prompts define and the judge never sees. The prompts are one-digit arithmetic questions that ask for "the
number only", so the rule checks two things: is the final number right, and is the reply the number alone. A
self-trained model can please its own judge without getting better by the rule (reward hacking): only the
second measure can show that.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .validate import int_at_least, non_empty, not_a_str, one_of, positive_float, positive_int, str_list

SUFFIX = " Answer with the number only."
SCORES = ("relevance", "judge")
METHODS = ("sft", "dpo")
KINDS = ("best", "preference")
PICKS = ("best", "random")
#: learning rates that move a 135M model in a few dozen LoRA steps (at 1e-3, SFT memorised 8 odd answers in 16)
DEFAULT_LR = {"sft": 5e-4, "dpo": 5e-4}
MEASURES = ("own judge", "correct", "number only", "words")


# ---------------------------------------------------------------------------------------------------------------
# Prompts whose answers a rule can check
# ---------------------------------------------------------------------------------------------------------------

def question_split(n_train: int, n_heldout: int, seed: int = 0, digits: int = 1) -> tuple[list[dict], list[dict]]:
    """Distinct arithmetic questions (``evaluation.arithmetic_questions``: ``{question, answer}``), split into
    ``n_train`` to self-train on and ``n_heldout`` to measure on, no question in both. One digit allows 72
    distinct questions.

    Raises:
        ValueError: more questions asked for than there are distinct ones.
    """
    from .evaluation import arithmetic_questions

    n_train = positive_int("n_train", n_train, "pass e.g. n_train=16")
    n_heldout = positive_int("n_heldout", n_heldout, "pass e.g. n_heldout=16")
    need = n_train + n_heldout
    distinct = list({q["question"]: q for q in arithmetic_questions(max(500, 20 * need), seed, digits)}.values())
    if len(distinct) < need:
        raise ValueError(f"Only {len(distinct)} distinct {digits}-digit questions, but n_train + n_heldout = {need}: "
                         f"ask for at most {len(distinct)}, or pass digits={digits + 1}.")
    return distinct[:n_train], distinct[n_train:need]


def _check_rows(name: str, rows) -> list[Mapping]:
    not_a_str(name, rows, "pass question rows, e.g. question_split(16, 16)[0]")
    non_empty(name, rows, "pass question rows, e.g. question_split(16, 16)[0]")
    for i, r in enumerate(rows):
        if not (isinstance(r, Mapping) and isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)):
            raise TypeError(f"{name}[{i}] must be a dict with str 'question' and 'answer', got {r!r:.80}: pass rows "
                            "of evaluation.arithmetic_questions() or question_split().")
    return list(rows)


def ask(rows: Sequence[Mapping], suffix: str = SUFFIX) -> list[str]:
    """Each row's question with the answer-format instruction ``suffix`` (the prompt the model answers)."""
    _check_rows("rows", rows)
    if not isinstance(suffix, str):
        raise TypeError(f"suffix must be a str, got {suffix!r}: pass e.g. suffix={SUFFIX!r}, or '' for none.")
    return [r["question"] + suffix for r in rows]


def is_correct(reply: str, answer: str) -> bool:
    """The rule's correctness: the reply's final number (``evaluation.final_number``) is the answer."""
    from .evaluation import final_number

    return final_number(reply) == answer


def number_only(reply: str) -> bool:
    """The rule's format: the reply is one number and nothing else (a final full stop allowed)."""
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a str, got {reply!r}: pass the model's answer text.")
    return re.fullmatch(r"-?\d+\.?", reply.strip()) is not None


# ---------------------------------------------------------------------------------------------------------------
# The loop's three steps: sample, score, keep
# ---------------------------------------------------------------------------------------------------------------

def sample_answers(model, tok, prompts: Sequence[str], n: int = 4, temperature: float = 0.8,
                   max_new_tokens: int = 16, seed: int = 0, batch_size: int = 16, chat: bool = True,
                   progress: bool = False) -> list[list[str]]:
    """``n`` sampled answers per prompt (``[len(prompts)][n]``), in batches of ``batch_size`` generations on the
    model's device. The same seed and batch size give the same answers."""
    from .device import set_seed
    from .models import generate_batch

    str_list("prompts", prompts, "pass the questions as texts, e.g. ask(rows)")
    n = positive_int("n", n, "pass e.g. n=4 answers per prompt")
    positive_float("temperature", temperature, "pass e.g. temperature=0.8 (sampling needs T > 0)")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=16")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    set_seed(seed)
    flat = generate_batch(model, tok, [p for p in prompts for _ in range(n)], max_new_tokens=max_new_tokens,
                          chat=chat, batch_size=batch_size, do_sample=True, temperature=temperature, top_k=0,
                          progress=progress, desc="sampling")
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


def _check_answers(prompts, answers) -> int:
    """``answers`` is one non-empty list of str per prompt, all of one length; returns that length."""
    str_list("prompts", prompts, "pass the questions as texts, e.g. ask(rows)")
    not_a_str("answers", answers, "pass one list of answers per prompt, e.g. sample_answers(...)")
    if len(answers) != len(prompts):
        raise ValueError(f"{len(answers)} answer lists for {len(prompts)} prompts: pass one list per prompt "
                         "(sample_answers' output).")
    for i, a in enumerate(answers):
        str_list(f"answers[{i}]", a, "each prompt's answers are a list of texts, e.g. sample_answers(...)[i]")
    sizes = {len(a) for a in answers}
    if len(sizes) != 1:
        raise ValueError(f"Every prompt needs the same number of answers, got {sorted(sizes)}: sample them with one "
                         "n (sample_answers).")
    return sizes.pop()


def self_scores(judge, tok, prompts: Sequence[str], answers: Sequence[Sequence[str]], score: str = "relevance",
                batch_size: int = 8) -> torch.Tensor:
    """``[len(prompts), n]``: the judge's score of every answer, with chapter 9's judges
    (``alignment.relevance_scores``, the likelihood judge, or ``alignment.judge_scores``, the prompted 1-5
    judge). In self-alignment the judge is the model itself."""
    from .alignment import judge_scores, relevance_scores

    one_of("score", score, SCORES, "'relevance' is the likelihood judge, 'judge' the prompted 1-5 one")
    n = _check_answers(prompts, answers)
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    scorer = relevance_scores if score == "relevance" else judge_scores
    flat = scorer(judge, tok, [p for p in prompts for _ in range(n)], [x for a in answers for x in a],
                  batch_size=batch_size)
    return flat.float().view(len(prompts), n)


def best_and_worst(answers: Sequence[str], scores: torch.Tensor) -> tuple[int, int] | None:
    """The indices of one prompt's best- and worst-scored non-empty answers (the first on a tie); ``None`` when
    every answer is empty."""
    keep = torch.tensor([bool(a.strip()) for a in answers])
    if not keep.any():
        return None
    s = scores.float().cpu()
    return int(s.masked_fill(~keep, -float("inf")).argmax()), int(s.masked_fill(~keep, float("inf")).argmin())


def self_training_data(prompts: Sequence[str], answers: Sequence[Sequence[str]], scores: torch.Tensor,
                       kind: str = "best") -> list:
    """What the loop trains on. ``kind="best"``: one ``(prompt, best-scored answer)`` pair per prompt, for SFT
    (``sft.build_dataset``). ``kind="preference"``: ``{"prompt", "chosen", "rejected"}`` rows (best vs worst),
    for DPO (``dpo.tokenize_pairs``).

    Empty answers are never picked (there is nothing to train on); a prompt whose answers are all empty is left
    out, and so is a preference whose best and worst answers score the same or are the same text.

    Raises:
        ValueError: mismatched shapes, or no prompt left.
    """
    one_of("kind", kind, KINDS, "'best' gives SFT pairs, 'preference' DPO rows")
    n = _check_answers(prompts, answers)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a tensor [prompts, n], got {type(scores).__name__}: pass self_scores(...).")
    if tuple(scores.shape) != (len(prompts), n):
        raise ValueError(f"scores has shape {tuple(scores.shape)} but there are {len(prompts)} prompts with {n} "
                         "answers each: pass self_scores(...) of these answers.")
    out = []
    for p, a, s in zip(prompts, answers, scores.float().cpu()):
        picked = best_and_worst(a, s)
        if picked is None:
            continue
        best, worst = picked
        if kind == "best":
            out.append((p, a[best]))
        elif s[best] > s[worst] and a[best] != a[worst]:
            out.append({"prompt": p, "chosen": a[best], "rejected": a[worst]})
    if not out:
        raise ValueError("No training data: every prompt's answers were empty or scored alike. Sample more answers "
                         "(n), or a longer max_new_tokens.")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Measuring, and the whole loop
# ---------------------------------------------------------------------------------------------------------------

def measure(model, judge, tok, rows: Sequence[Mapping], score: str = "relevance", max_new_tokens: int = 16,
            suffix: str = SUFFIX, batch_size: int = 16) -> dict:
    """``model``'s greedy answers to the rows' questions, measured by ``judge`` (``"own judge"``: the mean self
    score) and by the rule (``"correct"``, ``"number only"``: shares of the answers), with their mean length in
    ``"words"``. ``"per question"`` holds each measure's values question by question, ``"questions"`` and
    ``"answers"`` the texts."""
    from .decoding import words
    from .models import generate_batch

    prompts = ask(rows, suffix)
    one_of("score", score, SCORES, "'relevance' is the likelihood judge, 'judge' the prompted 1-5 one")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=16")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    texts = generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    per = {"own judge": self_scores(judge, tok, prompts, [[t] for t in texts], score)[:, 0].tolist(),
           "correct": [float(is_correct(t, r["answer"])) for t, r in zip(texts, rows)],
           "number only": [float(number_only(t)) for t in texts], "words": [float(len(words(t))) for t in texts]}
    return {**{k: sum(v) / len(v) for k, v in per.items()}, "per question": per, "questions": prompts,
            "answers": texts}


@dataclass
class SelfAlignResult:
    """One run of the loop: the held-out measures ``before`` and ``after`` (:func:`measure`), what the judge picked
    on the training prompts (``picks``: the rule's shares, correct and number only, of all samples, of the best
    and of the worst picks; how many examples were kept; the samples and their scores), the training losses, the
    seconds of each phase, and the tuned copy."""

    before: dict
    after: dict
    picks: dict
    losses: list[float]
    seconds: dict
    method: str
    score: str
    pick: str = "best"
    model: object = field(default=None, repr=False)

    def change(self, measure: str) -> tuple[float, float]:
        """The mean change of one held-out measure (after - before, question by question) and its standard error
        (``std / sqrt(questions)``): a change within about two standard errors is noise."""
        one_of("measure", measure, MEASURES)
        d = torch.tensor(self.after["per question"][measure]) - torch.tensor(self.before["per question"][measure])
        return d.mean().item(), (d.std().item() / len(d) ** 0.5 if len(d) > 1 else 0.0)

    def table(self) -> str:
        """The held-out measures before and after, and the change with its standard error, as plain text."""
        lines = [f"{'held-out':14}{'before':>9}{'after':>9}{'change':>18}", "-" * 50]
        for k in MEASURES:
            d, se = self.change(k)
            lines.append(f"{k:14}{self.before[k]:9.3f}{self.after[k]:9.3f}{d:+11.3f} ± {se:.3f}")
        return "\n".join(lines)


def _pick_stats(rows, answers, scores) -> dict:
    """The rule's verdict on what the judge picked: are its best-scored samples right (or the number alone) more
    often than samples in general, and its worst less often?"""
    out = {}
    rules = {"correct": lambda a, r: is_correct(a, r["answer"]), "number only": lambda a, r: number_only(a)}
    for name, rule in rules.items():
        ok = [[rule(a, r) for a in ans] for r, ans in zip(rows, answers)]
        picked = [(o, bw) for o, bw in zip(ok, (best_and_worst(a, s) for a, s in zip(answers, scores))) if bw]
        m = max(len(picked), 1)
        out |= {f"samples {name}": sum(map(sum, ok)) / sum(map(len, ok)),
                f"best {name}": sum(o[b] for o, (b, _) in picked) / m,
                f"worst {name}": sum(o[w] for o, (_, w) in picked) / m}
    return out


def self_align(model, tok, prompts: Sequence[Mapping], heldout: Sequence[Mapping], *, n: int = 4, steps: int = 16,
               method: str = "sft", score: str = "relevance", temperature: float = 0.8, max_new_tokens: int = 16,
               lr: float | None = None, batch_size: int = 8, beta: float = 0.1, max_len: int = 128, seed: int = 0,
               suffix: str = SUFFIX, pick: str = "best", reuse: SelfAlignResult | None = None,
               progress: bool = False) -> SelfAlignResult:
    """The loop, once: sample ``n`` answers to each training question, score them with the model itself as judge
    (``score``), and LoRA-train a copy of the model on them for ``steps`` steps of ``batch_size``:
    ``method="sft"`` on the best answer of each question (rejection-sampling fine-tuning), ``"dpo"`` on best vs
    worst (``dpo.train_dpo``). The held-out questions are answered greedily before and after, and judged by the
    *original* model (the judge that scored the training answers) and by the rule (:func:`measure`).

    ``pick="random"`` is the control: the same training on randomly chosen samples (a random answer for SFT, two
    random ones for DPO), so a gain that the judge's choice did not cause shows up there too. ``reuse``: a
    previous result of the same model, questions and settings, whose held-out "before" and samples (with their
    scores) are taken instead of being measured again, so variants differ only in what they train on.

    ``model`` is a chat (instruction-tuned) model: it answers, and is trained, through its chat template.
    The rows' ``answer`` fields are read only by the rule, never by the loop. ``lr`` defaults to
    :data:`DEFAULT_LR` of the method. ``model`` is left unchanged; the tuned copy is the result's ``model``.

    Raises:
        ValueError: a bad size, an unknown method, score or pick, or a ``reuse`` of other questions.
    """
    from .dpo import tokenize_pairs, train_dpo
    from .finetune import lora_config
    from .lora import inject_lora
    from .sft import TrainConfig, build_dataset, train

    _check_rows("prompts", prompts)
    _check_rows("heldout", heldout)
    one_of("method", method, METHODS, "'sft' trains on the best answers, 'dpo' on best-vs-worst pairs")
    one_of("score", score, SCORES, "'relevance' is the likelihood judge, 'judge' the prompted 1-5 one")
    n = int_at_least("n", n, 2, "pass e.g. n=4 (best-of-n needs answers to choose from)")
    steps = positive_int("steps", steps, "pass e.g. steps=16")
    batch_size = positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    max_len = positive_int("max_len", max_len, "pass e.g. max_len=128")
    lr = positive_float("lr", DEFAULT_LR[method] if lr is None else lr, "pass e.g. lr=1e-3, or None for the default")
    positive_float("beta", beta, "pass e.g. beta=0.1")
    one_of("pick", pick, PICKS, "'best' trains on the judge's choice, 'random' is the control")
    questions = ask(prompts, suffix)
    seconds, t0 = {}, time.perf_counter()
    if reuse is None:
        before = measure(model, model, tok, heldout, score, max_new_tokens, suffix)
        seconds["measure before"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        answers = sample_answers(model, tok, questions, n, temperature, max_new_tokens, seed, progress=progress)
        scores = self_scores(model, tok, questions, answers, score)
        seconds["sample and score"] = time.perf_counter() - t0
    else:
        before, answers, scores = _reused(reuse, questions, ask(heldout, suffix), n, score)
    # the control keeps the samples and draws the choice at random
    chooser = scores if pick == "best" else torch.rand(scores.shape, generator=torch.Generator().manual_seed(seed))

    t0 = time.perf_counter()
    if method == "sft":
        pairs = self_training_data(questions, answers, chooser, "best")
        tuned = inject_lora(copy.deepcopy(model), r=8, alpha=16)
        cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, schedule="constant", plot=None,
                          progress=progress)
        losses = train(tuned, build_dataset(tok, pairs, max_len, chat=True), cfg).losses
        kept = len(pairs)
    else:
        from peft import get_peft_model

        rows = self_training_data(questions, answers, chooser, "preference")
        tuned = get_peft_model(copy.deepcopy(model), lora_config())
        data = tokenize_pairs(tok, rows, max_len)
        losses = train_dpo(tuned, data, tok.pad_token_id, steps, batch_size, lr, beta, seed, progress=progress).losses
        kept = len(data)
    tuned.eval()
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    after = measure(tuned, model, tok, heldout, score, max_new_tokens, suffix)
    seconds["measure after"] = time.perf_counter() - t0
    picks = {**_pick_stats(prompts, answers, chooser), "kept": kept, "questions": questions, "answers": answers,
             "scores": scores.tolist()}
    return SelfAlignResult(before, after, picks, losses, seconds, method, score, pick, tuned)


def _reused(reuse, questions: list[str], held_questions: list[str], n: int, score: str):
    """A previous result's held-out "before", samples and scores, once it is checked to be of these questions."""
    if not isinstance(reuse, SelfAlignResult):
        raise TypeError(f"reuse must be a SelfAlignResult, got {type(reuse).__name__}: pass an earlier self_align(...) "
                        "result, or None.")
    answers = reuse.picks["answers"]
    same = (reuse.score == score and reuse.picks["questions"] == questions and len(answers[0]) == n
            and reuse.before["questions"] == held_questions)
    if not same:
        raise ValueError(f"reuse holds {len(answers)} questions x {len(answers[0])} samples scored by "
                         f"{reuse.score!r} and {len(reuse.before['answers'])} held-out answers, but this run has "
                         f"{len(questions)} x n={n}, score={score!r} and {len(held_questions)} held-out questions (or "
                         "other ones): reuse a result of the same questions and settings.")
    return reuse.before, answers, torch.tensor(reuse.picks["scores"])


def describe(result: SelfAlignResult) -> str:
    """The result in words and numbers: the picks, then the held-out table."""
    if not isinstance(result, SelfAlignResult):
        raise TypeError(f"describe takes a SelfAlignResult, got {type(result).__name__}: pass self_align(...).")
    p = result.picks
    judge = "likelihood" if result.score == "relevance" else "prompted 1-5"
    how = (f"picked by its own {judge} judge" if result.pick == "best" else "picked at random (the control)")
    best, worst = ("the judge's best picks", "its worst") if result.pick == "best" else ("the picks", "the rejected")
    return (f"{result.method.upper()} on {p['kept']} self-made examples, {how}; on the training questions the rule "
            f"finds {p['samples correct']:.0%} of all samples correct, {p['best correct']:.0%} of {best}, "
            f"{p['worst correct']:.0%} of {worst} (the number alone: "
            f"{p['samples number only']:.0%}, {p['best number only']:.0%}, {p['worst number only']:.0%}).\n"
            f"{result.table()}\n"
            f"{sum(result.seconds.values()):.0f} s in all")
