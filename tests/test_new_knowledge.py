"""Fine-tuning on new knowledge: held-out splits, training-set mixes, the bookkeeping of the curves, and a tiny
fine-tune on a tiny and on the real model."""

import dataclasses
from collections import Counter

import matplotlib
import pytest
import torch

from course_utils import new_knowledge as NK
from course_utils import slick as SK
from course_utils.config import sizes

matplotlib.use("Agg")


def _rows(per_category: int = 10) -> list[dict]:
    return [{"id": f"{c}_{i}", "question": f"Question {c} {i}?", "answer": f"answer {i}", "aliases": [], "slick": c}
            for c in SK.CATEGORIES for i in range(per_category)]


def test_setups():
    for name in ("smoke", "cpu", "gpu"):
        S = sizes("new_knowledge", name)
        assert S.steps % S.eval_every == 0 and S.n_train >= S.batch_size
    with pytest.raises(ValueError, match="profile"):
        sizes("new_knowledge", "tpu")
    S = sizes("new_knowledge", "smoke")
    with pytest.raises(ValueError, match="'lora' or 'full'"):
        dataclasses.replace(S, method="qlora")
    with pytest.raises(ValueError, match="eval_every"):
        dataclasses.replace(S, eval_every=0)


def test_split_train_test_holds_out_known_facts_only():
    rows = _rows()
    pool, test = NK.split_train_test(rows, 3)
    assert Counter(r["slick"] for r in test) == {"HighlyKnown": 3, "MaybeKnown": 3}
    assert sorted(r["id"] for r in pool + test) == sorted(r["id"] for r in rows)  # a partition
    assert not {r["id"] for r in pool} & {r["id"] for r in test}
    assert NK.split_train_test(rows, 3) == (pool, test)  # seeded
    assert NK.split_train_test(rows, 3, seed=1)[1] != test
    _, at_most_half = NK.split_train_test(rows, 8)
    assert Counter(r["slick"] for r in at_most_half) == {"HighlyKnown": 5, "MaybeKnown": 5}
    _, every = NK.split_train_test(rows, 2, categories=SK.CATEGORIES)
    assert Counter(r["slick"] for r in every) == dict.fromkeys(SK.CATEGORIES, 2)


def test_split_train_test_errors():
    with pytest.raises(ValueError, match="slick_categories"):
        NK.split_train_test([{"question": "?"}], 1)
    with pytest.raises(ValueError, match="Unknown categories"):
        NK.split_train_test(_rows(), 1, categories=("Famous",))
    with pytest.raises(ValueError, match=">= 0"):
        NK.split_train_test(_rows(), -1)


@pytest.mark.parametrize("frac, n_unknown", [(0.0, 0), (0.25, 3), (0.5, 6), (1.0, 12)])
def test_training_set_fractions(frac, n_unknown):
    pool, _ = NK.split_train_test(_rows(20), 2)
    data = NK.training_set(pool, 12, frac)
    counts = Counter(r["slick"] for r in data)
    assert len(data) == 12 and len({r["id"] for r in data}) == 12 and counts["Unknown"] == n_unknown
    known = [counts[c] for c in SK.CATEGORIES[:3]]
    if n_unknown < 12:
        assert max(known) - min(known) <= 1  # the known part is spread evenly over three categories
    assert NK.training_set(pool, 12, frac) == data


def test_training_set_uses_what_a_short_category_has_and_errors():
    pool = [r for r in _rows() if not (r["slick"] == "WeaklyKnown" and r["id"] != "WeaklyKnown_0")]
    data = NK.training_set(pool, 15, 0.0)
    assert Counter(r["slick"] for r in data) == {"HighlyKnown": 7, "MaybeKnown": 7, "WeaklyKnown": 1}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NK.training_set(pool, 4, 1.5)
    with pytest.raises(ValueError, match="n >= 1"):
        NK.training_set(pool, 0, 0.5)
    with pytest.raises(ValueError, match="Ask for fewer"):
        NK.training_set(pool, 12, 1.0)  # only 10 Unknown
    with pytest.raises(ValueError, match="Ask for fewer"):
        NK.training_set(pool, 40, 0.0)  # 21 known


def test_category_set():
    pool, _ = NK.split_train_test(_rows(), 2)
    data = NK.category_set(pool, "MaybeKnown", 8)
    assert len(data) == 8 and {r["slick"] for r in data} == {"MaybeKnown"}
    with pytest.raises(ValueError, match="choose one of"):
        NK.category_set(pool, "Famous", 2)
    with pytest.raises(ValueError, match="only 8"):
        NK.category_set(pool, "MaybeKnown", 9)
    with pytest.raises(ValueError, match="n >= 1"):
        NK.category_set(pool, "MaybeKnown", 0)


def test_qa_pairs():
    assert NK.qa_pairs([{"question": "What is the capital of Peru?", "answer": "Lima"}]) == [
        ("Q: What is the capital of Peru?\nA:", " Lima")]


def _curve(known: list[float]) -> list[dict]:
    return [{"step": 5 * i, "loss": None, "test": {"known": k, "all": k / 2}, "train": {}} for i, k in enumerate(known)]


def test_early_stopping_by_hand():
    assert NK.early_stopping(_curve([0.5, 0.7, 0.7, 0.4])) == {"best_step": 5, "best": 0.7, "final": 0.4}
    assert NK.early_stopping(_curve([0.9, 0.3])) == {"best_step": 0, "best": 0.9, "final": 0.3}
    assert NK.early_stopping(_curve([0.1, 0.2, 0.6]), key="all") == {"best_step": 10, "best": 0.3, "final": 0.3}
    with pytest.raises(ValueError, match="Empty curve"):
        NK.early_stopping([])
    with pytest.raises(ValueError, match="choose one of"):
        NK.early_stopping(_curve([0.5]), key="Unknown")


def test_accuracy_by_category_aggregates(monkeypatch):
    rows = _rows(2)  # HK, HK, MK, MK, WK, WK, U, U
    right = [True, True, True, False, False, False, False, True]
    monkeypatch.setattr(NK, "score_answers", lambda *a, **k: [SK.AnswerScore(g, {}) for g in right])
    monkeypatch.setattr(NK, "answer_variants", lambda tok, f: [[1]])
    acc = NK.accuracy_by_category(None, None, rows)
    assert acc == {"HighlyKnown": 1.0, "MaybeKnown": 0.5, "WeaklyKnown": 0.0, "Unknown": 0.5, "known": 0.75,
                   "all": 0.5}
    assert set(NK.accuracy_by_category(None, None, rows[:2])) == {"HighlyKnown", "known", "all"}
    with pytest.raises(ValueError, match="No facts"):
        NK.accuracy_by_category(None, None, [])
    with pytest.raises(ValueError, match="slick_categories"):
        NK.accuracy_by_category(None, None, [{"question": "?", "answer": "a"}])


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from course_utils.models import ensure_cached, prepare_tokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(ensure_cached("smollm2-135m-instruct")))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fine_tune_on_facts_plumbing_on_a_tiny_llama(tok, method):
    """The real tokenizer, a random 2-layer Llama: the curve's shape, the copy, both methods."""
    from course_utils.models import tiny_llama

    model = tiny_llama(vocab_size=len(tok))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pool, test = NK.split_train_test(_rows(4), 1)
    train = NK.training_set(pool, 4, 0.5)
    S = dataclasses.replace(sizes("new_knowledge", "smoke"), steps=4, eval_every=2, batch_size=2, method=method)
    curve = NK.fine_tune_on_facts(model, tok, train, test, S, progress=False)
    assert [r["step"] for r in curve] == [0, 2, 4] and curve[0]["loss"] is None and curve[-1]["loss"] > 0
    assert set(curve[0]["test"]) == {"HighlyKnown", "MaybeKnown", "known", "all"}
    assert Counter(r["slick"] for r in train) == {"Unknown": 2, "HighlyKnown": 1, "MaybeKnown": 1}
    assert set(curve[0]["train"]) == {"HighlyKnown", "MaybeKnown", "Unknown", "known", "all"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    assert not any(type(m).__name__ == "LoRALinear" for m in model.modules())
    assert set(NK.early_stopping(curve)) == {"best_step", "best", "final"}
    NK.plot_held_out({"a": curve})
    NK.plot_training_fit(curve)
    with pytest.raises(ValueError, match="training and held-out"):
        NK.fine_tune_on_facts(model, tok, [], test, S, progress=False)


@pytest.mark.model
def test_fine_tune_on_facts_learns_on_the_real_model(real_model):
    """A few full-batch LoRA steps on four facts the model did not answer make it answer some of them."""
    from course_utils.evaluation import load_facts

    model, tok = real_model
    facts = [{**f, "slick": "Unknown"} for f in load_facts(40)]
    start = SK.score_answers(model, tok, [SK.qa_line(f["question"]) for f in facts],
                             [SK.answer_variants(tok, f) for f in facts])
    unknown = [f for f, s in zip(facts, start) if not s.greedy][:4]
    known = [{**f, "slick": "HighlyKnown"} for f, s in zip(facts, start) if s.greedy][:2]
    assert len(unknown) == 4 and len(known) == 2, "the first 40 facts should hold some of each"
    S = dataclasses.replace(sizes("new_knowledge", "smoke"), steps=8, eval_every=8, batch_size=4, lr=3e-3)
    curve = NK.fine_tune_on_facts(model, tok, unknown, known, S, progress=False)
    assert curve[0]["train"]["Unknown"] == 0 and curve[0]["test"]["known"] == 1
    assert curve[-1]["train"]["Unknown"] > 0, curve


@pytest.mark.slow
@pytest.mark.model
def test_unknown_facts_hurt_held_out_known_facts_at_the_cpu_size(real_model):
    """The chapter's claims, end to end at the cpu profile's size (about 7 minutes; the lesson's section 4 gives the
    same numbers, since every step is seeded): sort the 240 facts with SliCK, fine-tune once on known and once on
    Unknown facts. Training on Unknown facts ends with lower held-out accuracy on known facts than training on
    known ones, and its Unknown training examples are fitted later than the known run's known ones."""
    from course_utils.evaluation import load_facts

    model, tok = real_model
    S = sizes("new_knowledge", "cpu")
    rows = SK.slick_categories(model, tok, load_facts(S.n_facts), S.slick, progress=False)
    pool, test = NK.split_train_test(rows, S.n_test_per_category)
    curves = {frac: NK.fine_tune_on_facts(model, tok, NK.training_set(pool, S.n_train, frac), test, S,
                                          progress=False) for frac in (0.0, 1.0)}
    for frac, curve in curves.items():  # shown with `pytest -s`: the numbers the lesson quotes
        print(f"{frac:.0%} Unknown:", NK.early_stopping(curve),
              [(r["step"], round(r["test"]["known"], 3), {k: round(v, 2) for k, v in r["train"].items()})
               for r in curve])
    known, unknown = NK.early_stopping(curves[0.0]), NK.early_stopping(curves[1.0])
    assert known["final"] - unknown["final"] >= 2 / len(test), (known, unknown)  # two facts or more
    first = curves[0.0][1]["train"]["known"], curves[1.0][1]["train"]["Unknown"]  # fit after the first interval
    assert first[0] - first[1] >= 0.2, first
