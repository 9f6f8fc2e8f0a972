"""Fine-tuning on new knowledge (after Gekhman et al. 2024): does teaching a model facts it does not know make it
hallucinate on the facts it does?

The facts are first sorted into SliCK categories (:mod:`course_utils.slick`). Then the real model is fine-tuned on
closed-book QA (``Q: question\\nA: answer``, no exemplars) with training sets that differ only in *which* facts they
hold: mostly known vs mostly unknown, or one SliCK category each. Every few steps two things are measured with
greedy exact match (:func:`slick.score_answers`):

* **held-out accuracy**: facts the model knew (HighlyKnown / MaybeKnown) that are in no training set. If it falls
  while training goes on, the fine-tune is teaching the model to answer with things it does not know:
  hallucination;
* **training fit per category**: the share of each category's training examples the model now answers right.
  The paper's finding: Unknown examples are fitted much later than known ones, and the held-out accuracy falls
  as they are.

    rows = slick_categories(model, tok, load_facts(), sizes)
    train_pool, test = split_train_test(rows, n_test_per_category=12)
    data = training_set(train_pool, 48, unknown_fraction=0.75)
    curve = fine_tune_on_facts(model, tok, data, test, setup)
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_utils.slick import CATEGORIES, KNOWN, SliCKSizes, answer_variants, qa_line, score_answers, stop_token_mask
from course_utils.validate import non_negative_int, not_a_str, positive_float, positive_int, probability


@dataclass(frozen=True)
class NewKnowledgeSetup:
    """Sizes of the chapter's fine-tuning-on-new-knowledge experiment for one profile."""

    slick: SliCKSizes
    n_facts: int  # facts sorted into categories (the course has 240)
    n_test_per_category: int  # held out from every training set
    n_train: int  # examples in each training set
    steps: int
    eval_every: int
    batch_size: int = 8
    lr: float = 1e-3
    method: str = "lora"  # "lora" (r=16 on every linear layer) or "full"
    lora_r: int = 16
    unknown_fractions: tuple[float, ...] = (0.0, 1.0)
    single_categories: bool = False  # also one fine-tune per SliCK category (the paper's "which data helps most")

    def __post_init__(self):
        if isinstance(self.slick, dict):  # as written in config.SIZES
            object.__setattr__(self, "slick", SliCKSizes(**self.slick))
        if self.method not in ("lora", "full"):
            raise ValueError(f"method must be 'lora' or 'full', not {self.method!r}.")
        for name in ("n_facts", "n_train", "steps", "eval_every", "batch_size", "lora_r"):
            positive_int(name, getattr(self, name), "config.SIZES['new_knowledge'] has working values")
        non_negative_int("n_test_per_category", self.n_test_per_category, "pass e.g. n_test_per_category=12")
        positive_float("lr", self.lr, "pass e.g. lr=1e-3")
        not_a_str("unknown_fractions", self.unknown_fractions)
        for f in self.unknown_fractions:
            probability("unknown_fraction", f, "each share of Unknown facts is in [0, 1], e.g. (0.0, 1.0)")


# ---------------------------------------------------------------------------------------------------------------
# Splits and training sets
# ---------------------------------------------------------------------------------------------------------------

def split_train_test(rows: Sequence[dict], n_test_per_category: int, categories: Sequence[str] = KNOWN,
                     seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Hold out ``n_test_per_category`` facts of each of ``categories`` (default: the known ones, whose accuracy
    the experiment watches; at most half of a category); the rest is the pool training sets are drawn from.

    Raises:
        ValueError: rows without a ``slick`` category (run :func:`slick.slick_categories` first), an unknown
            category, or a negative ``n_test_per_category``.
    """
    if isinstance(n_test_per_category, bool) or not isinstance(n_test_per_category, int):
        raise TypeError(f"n_test_per_category must be an int >= 0 (0 = hold nothing out), not "
                        f"{n_test_per_category!r}: pass e.g. 12.")
    if n_test_per_category < 0:
        raise ValueError(f"n_test_per_category must be >= 0 (0 = hold nothing out), not {n_test_per_category}.")
    not_a_str("categories", categories, f"pass a list, e.g. categories=[{categories!r}]")
    if any("slick" not in r for r in rows):
        raise ValueError("Rows need a 'slick' category: sort them with slick.slick_categories(...) first.")
    bad = [c for c in categories if c not in CATEGORIES]
    if bad:
        raise ValueError(f"Unknown categories {bad}; choose from {CATEGORIES}.")
    rng = random.Random(seed)
    pool, test = [], []
    for c in CATEGORIES:
        rs = [r for r in rows if r["slick"] == c]
        rng.shuffle(rs)
        k = min(n_test_per_category, len(rs) // 2) if c in categories else 0
        test += rs[:k]
        pool += rs[k:]
    return pool, test


def _draw(pool: Sequence[dict], categories: Sequence[str], n: int, rng: random.Random, what: str) -> list[dict]:
    """``n`` facts spread as evenly as possible over ``categories`` (a category short of facts gives all it has)."""
    groups = {c: [r for r in pool if r["slick"] == c] for c in categories}
    available = sum(len(g) for g in groups.values())
    if n > available:
        counts = ", ".join(f"{c} {len(g)}" for c, g in groups.items())
        raise ValueError(f"{what} needs {n} facts from {list(categories)}, but the training pool has only "
                         f"{available} ({counts}). Ask for fewer (n_train) or hold out fewer (n_test_per_category).")
    for g in groups.values():
        rng.shuffle(g)
    out, i = [], 0
    while len(out) < n:  # round robin over the categories that still have facts
        c = categories[i % len(categories)]
        if groups[c]:
            out.append(groups[c].pop())
        i += 1
    return out


def _check_n(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"A training set needs a whole number of facts (n >= 1), not n={n!r}: pass e.g. n=32.")
    if n < 1:
        raise ValueError(f"A training set needs at least one fact (n >= 1), not n={n}.")


def training_set(pool: Sequence[dict], n: int, unknown_fraction: float, seed: int = 0) -> list[dict]:
    """``n`` training facts, ``round(n * unknown_fraction)`` of them Unknown and the rest known (HighlyKnown,
    MaybeKnown and WeaklyKnown, as evenly as the pool allows), shuffled.

    Raises:
        ValueError: ``n < 1``, a fraction outside [0, 1], or a pool too small for the request.
    """
    _check_n(n)
    if not 0 <= unknown_fraction <= 1:
        raise ValueError(f"unknown_fraction must be in [0, 1], not {unknown_fraction}.")
    rng = random.Random(seed)
    n_unknown = round(n * unknown_fraction)
    out = _draw(pool, ("Unknown",), n_unknown, rng, f"{unknown_fraction:.0%} Unknown") if n_unknown else []
    if n - n_unknown:
        out += _draw(pool, CATEGORIES[:3], n - n_unknown, rng, "The known part")
    rng.shuffle(out)
    return out


def category_set(pool: Sequence[dict], category: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` training facts all from one SliCK category.

    Raises:
        ValueError: an unknown category, ``n < 1`` or too few facts in it.
    """
    _check_n(n)
    if category not in CATEGORIES:
        raise ValueError(f"Unknown category {category!r}; choose one of {CATEGORIES}.")
    return _draw(pool, (category,), n, random.Random(seed), f"A {category}-only training set")


def qa_pairs(facts: Sequence[dict]) -> list[tuple[str, str]]:
    """Closed-book QA pairs ``("Q: question\\nA:", " answer")`` (the engine appends the end-of-sequence token)."""
    return [(qa_line(f["question"]), " " + f["answer"]) for f in facts]


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------

def accuracy_by_category(model, tok, facts: Sequence[dict], *, stop_mask=None, batch_size: int = 16) -> dict:
    """Zero-shot greedy exact-match accuracy of the ``Q: ...\\nA:`` prompts, per SliCK category present, over the
    known ones (``"known"``: HighlyKnown + MaybeKnown) and over all (``"all"``).

    Raises:
        ValueError: no facts, or facts without a ``slick`` category (sort them with slick.slick_categories).
    """
    not_a_str("facts", facts)
    if not facts:
        raise ValueError("No facts to score: pass a non-empty list (e.g. the held-out test_facts).")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    if any("slick" not in f for f in facts):
        raise ValueError("Facts need a 'slick' category: sort them with slick.slick_categories(...) first.")
    prompts, variants = [qa_line(f["question"]) for f in facts], [answer_variants(tok, f) for f in facts]
    scores = score_answers(model, tok, prompts, variants, batch_size=batch_size, stop_mask=stop_mask)
    right = [s.greedy for s in scores]
    out = {}
    for c in CATEGORIES:
        hits = [h for h, f in zip(right, facts) if f["slick"] == c]
        if hits:
            out[c] = sum(hits) / len(hits)
    known = [h for h, f in zip(right, facts) if f["slick"] in KNOWN]
    if known:
        out["known"] = sum(known) / len(known)
    out["all"] = sum(right) / len(right)
    return out


def fine_tune_on_facts(model, tok, train_facts: Sequence[dict], test_facts: Sequence[dict],
                       setup: NewKnowledgeSetup, *, seed: int = 0, progress: bool = True,
                       desc: str = "fine-tuning") -> list[dict]:
    """Fine-tune a copy of ``model`` on QA pairs of ``train_facts`` and measure it every ``eval_every`` steps.

    Returns:
        ``[{"step", "loss", "test": accuracy_by_category(test), "train": accuracy_by_category(train)}, ...]`` from
        step 0 (before training) to the last step. The original model is not changed.

    Raises:
        ValueError: no training facts or no test facts.
    """
    if not isinstance(setup, NewKnowledgeSetup):
        raise TypeError(f"setup must be a NewKnowledgeSetup, got {type(setup).__name__}: pass "
                        "config.sizes('new_knowledge').")
    if not train_facts or not test_facts:
        raise ValueError(f"Need training and held-out facts, got {len(train_facts)} and {len(test_facts)}: build "
                         "them with split_train_test(...) and training_set(...).")
    from tqdm.auto import tqdm

    from course_utils import sft
    from course_utils.lora import inject_lora

    tuned = copy.deepcopy(model)
    torch.manual_seed(seed)  # the LoRA initialisation too: the same curve wherever this is called from
    if setup.method == "lora":
        inject_lora(tuned, "all-linear", r=setup.lora_r, alpha=2 * setup.lora_r)
    else:
        tuned.requires_grad_(True)
    stop = stop_token_mask(tok)
    data = sft.build_dataset(tok, qa_pairs(train_facts), max_len=64)

    def measure(step: int, loss: float | None) -> dict:
        row = {"step": step, "loss": loss, "test": accuracy_by_category(tuned, tok, test_facts, stop_mask=stop),
               "train": accuracy_by_category(tuned, tok, train_facts, stop_mask=stop)}
        tuned.train()
        return row

    curve = [measure(0, None)]
    bar = tqdm(total=setup.steps, desc=desc, disable=not progress)

    def on_step(step: int, loss: float) -> None:
        bar.update(1)
        if step % setup.eval_every == 0 or step == setup.steps:
            curve.append(measure(step, loss))

    cfg = sft.TrainConfig(steps=setup.steps, batch_size=setup.batch_size, lr=setup.lr, seed=seed,
                          schedule="constant", plot=None, progress=False)
    try:
        sft.train(tuned, data, cfg, pad_id=tok.pad_token_id, on_step=on_step)
    finally:
        bar.close()
    return curve  # the tuned copy is freed with this frame


def early_stopping(curve: Sequence[dict], key: str = "known") -> dict:
    """Where the held-out ``key`` accuracy peaked (the earliest step on a tie) and where it ended:
    ``{"best_step", "best", "final"}``.

    Raises:
        ValueError: an empty curve, or a ``key`` the held-out set has no facts for.
    """
    if not curve:
        raise ValueError("Empty curve: pass what fine_tune_on_facts returned.")
    missing = [r["step"] for r in curve if key not in r["test"]]
    if missing:
        raise ValueError(f"No held-out {key!r} accuracy at steps {missing[:3]}; choose one of "
                         f"{list(curve[0]['test'])}.")
    vals = [(r["test"][key], r["step"]) for r in curve]
    best, step = max(vals, key=lambda v: (v[0], -v[1]))
    return {"best_step": step, "best": best, "final": vals[-1][0]}


def plot_held_out(curves: dict[str, Sequence[dict]], key: str = "known", ax=None):
    """Held-out accuracy (``key``: known facts by default) over fine-tuning steps, one line per training set."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for name, curve in curves.items():
        ax.plot([r["step"] for r in curve], [r["test"].get(key) for r in curve], "o-", label=name)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(f"held-out accuracy ({key} facts)")
    ax.set_title("Does learning new facts hurt the known ones?")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax


def plot_training_fit(curve: Sequence[dict], title: str = "How fast each category is fitted", ax=None):
    """Training-set accuracy per SliCK category over fine-tuning steps (one run)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for c in CATEGORIES:
        if c in curve[0]["train"]:
            ax.plot([r["step"] for r in curve], [r["train"][c] for r in curve], "o-", label=c)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("training examples answered right")
    ax.set_title(title)
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax
