"""Self-alignment closed into a loop: each step on a tiny random model (shapes, seeding, best-of-n picks the
maximum, the training data's format), bad input refused, and the loop's measured effect on the default model."""

import pytest
import torch

from course_utils import self_alignment as sa
from course_utils.finetune import build_model
from course_utils.models import tiny_llama


@pytest.fixture(scope="module")
def tiny_lm():
    """A random tiny Llama with the default model's tokenizer (its chat template included)."""
    torch.manual_seed(0)
    return build_model("tiny", "full", device=torch.device("cpu"))


def test_question_split_is_disjoint_and_checkable():
    train, held = sa.question_split(10, 30, seed=3)
    assert len(train) == 10 and len(held) == 30
    assert not {q["question"] for q in train} & {q["question"] for q in held}
    assert len({q["question"] for q in train + held}) == 40
    assert sa.question_split(10, 30, seed=3) == (train, held)
    q = train[0]
    assert sa.ask([q]) == [q["question"] + sa.SUFFIX] and sa.ask([q], "") == [q["question"]]
    a, op, b = q["question"].removeprefix("What is ").removesuffix("?").split()
    assert q["answer"] == str(int(a) + int(b) if op == "+" else int(a) - int(b))
    with pytest.raises(ValueError, match="Only 72 distinct 1-digit questions.*digits=2"):
        sa.question_split(40, 40)


def test_the_rule_by_hand():
    assert sa.is_correct("7 + 5 = 12.", "12") and sa.is_correct("The answer is 3", "3")
    assert not sa.is_correct("7 + 5 = 13", "12") and not sa.is_correct("To solve this, we", "12")
    assert sa.number_only(" 12.") and sa.number_only("-3") and not sa.number_only("7 + 5 = 12")
    assert not sa.number_only("The answer is 12.") and not sa.number_only("")


def test_sample_answers_shapes_and_seeding(tiny_lm):
    model, tok = tiny_lm
    prompts = ["What is 2 + 3?", "What is 9 - 4?", "What is 5 + 5?"]
    a = sa.sample_answers(model, tok, prompts, n=3, max_new_tokens=4, seed=0, batch_size=4)
    assert len(a) == 3 and all(len(x) == 3 and all(isinstance(t, str) for t in x) for x in a)
    assert a == sa.sample_answers(model, tok, prompts, n=3, max_new_tokens=4, seed=0, batch_size=4)
    assert a != sa.sample_answers(model, tok, prompts, n=3, max_new_tokens=4, seed=1, batch_size=4)
    assert len({t for x in a for t in x}) > 3  # sampled, not greedy: the copies of a prompt differ


@pytest.mark.parametrize("score", sa.SCORES)
def test_self_scores_one_per_answer(tiny_lm, score):
    model, tok = tiny_lm
    prompts = ["What is 2 + 3?", "What is 9 - 4?"]
    answers = [["5", "2 + 3 = 5", "six"], ["5", "", "9 - 4 = 5"]]
    s = sa.self_scores(model, tok, prompts, answers, score)
    assert s.shape == (2, 3) and torch.isfinite(s).all()
    if score == "judge":
        assert ((s >= 1) & (s <= 5)).all()  # an expected 1-5 rating
    flat = sa.self_scores(model, tok, prompts[:1], [answers[0][1:2]], score)
    assert flat[0, 0].item() == pytest.approx(s[0, 1].item(), abs=1e-4)  # each answer scored on its own


def test_best_of_n_picks_the_maximum_and_skips_empty_answers():
    prompts = ["p0", "p1", "p2", "p3"]
    answers = [["a", "b", "c"], ["", "x", "y"], ["", " ", ""], ["same", "same", "other"]]
    scores = torch.tensor([[0.1, 0.9, 0.5], [9.0, 1.0, 2.0], [1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    assert sa.best_and_worst(answers[0], scores[0]) == (1, 0)
    assert sa.best_and_worst(answers[1], scores[1]) == (2, 1)  # the empty answer scored 9 is never picked
    assert sa.best_and_worst(answers[2], scores[2]) is None
    best = sa.self_training_data(prompts, answers, scores, "best")
    assert best == [("p0", "b"), ("p1", "y"), ("p3", "same")]  # p2 has nothing to train on
    prefs = sa.self_training_data(prompts, answers, scores, "preference")
    assert prefs == [{"prompt": "p0", "chosen": "b", "rejected": "a"}, {"prompt": "p1", "chosen": "y", "rejected": "x"}]
    with pytest.raises(ValueError, match="No training data"):
        sa.self_training_data(["p"], [["", ""]], torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*1 prompts with 3"):
        sa.self_training_data(["p"], [["a", "b", "c"]], torch.zeros(2, 2))


@pytest.mark.parametrize("method", sa.METHODS)
def test_self_align_runs_the_loop_on_a_tiny_model(tiny_lm, method):
    model, tok = tiny_lm
    train, held = sa.question_split(3, 2)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    r = sa.self_align(model, tok, train, held, n=3, steps=2, method=method, batch_size=2, max_new_tokens=4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # the original is untouched
    assert r.model is not model and len(r.losses) == 2 and r.method == method
    for m in (r.before, r.after):
        assert set(sa.MEASURES) <= set(m) and len(m["answers"]) == 2
        assert all(len(v) == 2 for v in m["per question"].values()) and 0 <= m["correct"] <= 1
    assert len(r.picks["answers"]) == 3 and all(len(a) == 3 for a in r.picks["answers"])
    assert 1 <= r.picks["kept"] <= 3 and 0 <= r.picks["best correct"] <= 1 and 0 <= r.picks["worst number only"] <= 1
    assert set(r.seconds) == {"measure before", "sample and score", "train", "measure after"}
    d, se = r.change("own judge")
    assert d == pytest.approx(r.after["own judge"] - r.before["own judge"], abs=1e-5) and se >= 0
    assert "own judge" in r.table() and "picked by its own likelihood judge" in sa.describe(r)
    # the control reuses the samples and the "before", and trains on a random pick instead of the judge's
    control = sa.self_align(model, tok, train, held, n=3, steps=2, method=method, batch_size=2, max_new_tokens=4,
                            pick="random", reuse=r)
    assert control.before is r.before and control.picks["answers"] == r.picks["answers"]
    assert control.picks["scores"] == r.picks["scores"] and set(control.seconds) == {"train", "measure after"}
    assert control.pick == "random" and "at random" in sa.describe(control)
    with pytest.raises(ValueError, match="reuse a result of the same questions"):
        sa.self_align(model, tok, train[:2], held, n=3, steps=1, method=method, reuse=r)
    with pytest.raises(ValueError, match="reuse a result of the same questions"):
        sa.self_align(model, tok, train, held, n=3, steps=1, method=method, reuse=r, suffix="")


class _Stop(Exception):
    pass


@pytest.mark.parametrize("step", ["sample", "relevance", "judge", "measure", "loop"])
def test_each_step_gives_the_model_tensors_on_its_device(tiny_lm, step):
    """On the ``meta`` device (shapes, no values): whatever the model or its ``generate`` is called with must be
    there too, or a GPU run stops with a device mismatch. The first call is recorded, then stopped."""
    _, tok = tiny_lm
    model, seen = tiny_llama(vocab_size=len(tok), max_positions=256).to("meta"), []

    def record(args, kwargs):
        seen.extend(v.device for v in [*args, *kwargs.values()] if isinstance(v, torch.Tensor))
        raise _Stop

    model.register_forward_pre_hook(lambda _m, args, kwargs: record(args, kwargs), with_kwargs=True)
    model.generate = lambda *args, **kwargs: record(args, kwargs)
    train, held = sa.question_split(2, 2)
    calls = {"sample": lambda: sa.sample_answers(model, tok, sa.ask(train), n=2, max_new_tokens=4),
             "relevance": lambda: sa.self_scores(model, tok, ["q"], [["a", "b"]], "relevance"),
             "judge": lambda: sa.self_scores(model, tok, ["q"], [["a", "b"]], "judge"),
             "measure": lambda: sa.measure(model, model, tok, held, max_new_tokens=4),
             "loop": lambda: sa.self_align(model, tok, train, held, n=2, steps=1, max_new_tokens=4)}
    with pytest.raises(_Stop):
        calls[step]()
    assert seen and all(d.type == "meta" for d in seen), seen


def test_bad_inputs_are_refused(tiny_lm):
    model, tok = tiny_lm
    train, held = sa.question_split(2, 2)
    with pytest.raises(TypeError, match="prompts must be a list of str, got the single str"):
        sa.sample_answers(model, tok, "What is 2 + 2?")
    with pytest.raises(ValueError, match="n must be a positive int"):
        sa.sample_answers(model, tok, ["q"], n=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sa.sample_answers(model, tok, ["q"], temperature=0)
    with pytest.raises(ValueError, match="Unknown score 'vibes'"):
        sa.self_scores(model, tok, ["q"], [["a"]], score="vibes")
    with pytest.raises(ValueError, match="2 answer lists for 1 prompts"):
        sa.self_scores(model, tok, ["q"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="same number of answers"):
        sa.self_scores(model, tok, ["q", "r"], [["a"], ["b", "c"]])
    with pytest.raises(TypeError, match="answers\\[0\\] must be a list of str"):
        sa.self_training_data(["q"], ["abc"], torch.zeros(1, 3))
    with pytest.raises(TypeError, match="scores must be a tensor"):
        sa.self_training_data(["q"], [["a"]], [[1.0]])
    with pytest.raises(ValueError, match="Unknown kind"):
        sa.self_training_data(["q"], [["a"]], torch.zeros(1, 1), kind="worst")
    with pytest.raises(TypeError, match=r"heldout\[0\] must be a dict with str 'question' and 'answer'"):
        sa.self_align(model, tok, train, [{"question": "What is 2 + 2?", "answer": 4}])
    with pytest.raises(TypeError, match="prompts must be a list"):
        sa.self_align(model, tok, "What is 2 + 2?", held)
    with pytest.raises(ValueError, match="prompts is empty"):
        sa.self_align(model, tok, [], held)
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        sa.self_align(model, tok, train, held, n=1)
    with pytest.raises(TypeError, match="steps must be an int, got True"):
        sa.self_align(model, tok, train, held, steps=True)
    with pytest.raises(ValueError, match="Unknown method 'ppo'"):
        sa.self_align(model, tok, train, held, method="ppo")
    with pytest.raises(ValueError, match="lr must be > 0"):
        sa.self_align(model, tok, train, held, lr=-1e-3)
    with pytest.raises(ValueError, match="Unknown pick 'worst'"):
        sa.self_align(model, tok, train, held, pick="worst")
    with pytest.raises(TypeError, match="reuse must be a SelfAlignResult, got dict"):
        sa.self_align(model, tok, train, held, reuse={})
    with pytest.raises(TypeError, match="suffix must be a str"):
        sa.ask(train, suffix=None)
    with pytest.raises(TypeError, match="describe takes a SelfAlignResult"):
        sa.describe({})


@pytest.mark.model
def test_self_training_pleases_its_own_judge_real_model(real_model):
    """The loop's one effect that is clear at this size (measured with seeds 0-2 at these sizes: every run): the
    model's own likelihood judge scores its held-out answers higher after SFT on its self-picked answers (+0.27 to
    +0.60), and the answers get shorter (the judge favours short, on-topic text). The rule's correctness moved by
    noise (-0.13 to +0.19 over 16 questions), so no claim is made about it here."""
    model, tok = real_model
    train, held = sa.question_split(8, 16)
    r = sa.self_align(model, tok, train, held, n=4, steps=8, batch_size=4, max_new_tokens=12)
    gain, se = r.change("own judge")
    assert gain > se > 0, (gain, se)
    assert r.after["words"] < r.before["words"]
