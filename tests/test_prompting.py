import dataclasses

import pytest
import torch

from course_utils import prompting as pr
from course_utils.data import load_sentiment

SEED_EXAMPLE = "I accidentally missed the bus."
VERB = {"positive": ["great", "good"], "neutral": ["okay"], "negative": ["bad", "terrible"]}


# ---- templates ---------------------------------------------------------------------------------------------------

def test_template_fill_follows_the_seed_notation():
    t = pr.Template("[X] I feel [Z].")
    assert t.fill(SEED_EXAMPLE) == "I accidentally missed the bus. I feel [Z]."
    assert t.fill_answer(SEED_EXAMPLE, "bad") == "I accidentally missed the bus. I feel bad."
    assert t.split(SEED_EXAMPLE) == ("I accidentally missed the bus. I feel", " ", ".")


def test_answer_slot_anywhere():
    t = pr.Template("[Z] news: [X]")
    assert t.fill_answer("Rain tomorrow.", "Weather") == "Weather news: Rain tomorrow."
    assert t.split("Rain tomorrow.") == ("", "", " news: Rain tomorrow.")


@pytest.mark.parametrize("text,msg", [("I feel [Z].", r"0 input slots \[X\]"), ("[X] I feel", r"0 answer slots"),
                                      ("[X] [X] [Z]", r"2 input slots"), ("[X] [Z] [Z]", r"2 answer slots")])
def test_template_without_or_with_a_doubled_slot_is_an_error(text, msg):
    with pytest.raises(ValueError, match=msg):
        pr.Template(text)


# ---- verbalizer --------------------------------------------------------------------------------------------------

def test_verbalizer_answer_space_and_mapping():
    v = pr.Verbalizer(VERB)
    assert v.labels == ["positive", "neutral", "negative"]
    assert v.answers == ["great", "good", "okay", "bad", "terrible"]
    assert v("terrible") == "negative" and v.label_index("neutral") == 1
    assert pr.Verbalizer({"yes": "yes", "no": "no"}).answers == ["yes", "no"]
    assert "Verbalizer(" in repr(v)


@pytest.mark.parametrize("words,msg", [({}, "at least one label"), ({"a": []}, "no .*label word"),
                                       ({"a": [""]}, "no .*label word"),
                                       ({"a": ["x"], "b": ["x"]}, "both 'a' and 'b'")])
def test_bad_verbalizers_are_clear_errors(words, msg):
    with pytest.raises(ValueError, match=msg):
        pr.Verbalizer(words)


def test_unknown_label_and_answer():
    v = pr.Verbalizer(VERB)
    with pytest.raises(ValueError, match="Unknown label 'happy'.*positive"):
        v.label_index("happy")
    with pytest.raises(KeyError, match="not in the answer space"):
        v("fine")


def test_aggregation_modes():
    v = pr.Verbalizer(VERB)
    z = torch.log(torch.tensor([[0.1, 0.3, 0.2, 0.25, 0.15]]))
    assert torch.allclose(v.aggregate(z, "sum").exp(), torch.tensor([[0.4, 0.2, 0.4]]))
    assert torch.allclose(v.aggregate(z, "max").exp(), torch.tensor([[0.3, 0.2, 0.25]]))
    assert torch.allclose(v.aggregate(z, "first").exp(), torch.tensor([[0.1, 0.2, 0.25]]))
    assert torch.allclose(v.aggregate(z, "mean"), torch.stack([z[0, :2].mean(), z[0, 2], z[0, 3:].mean()])[None])
    with pytest.raises(ValueError, match="Unknown aggregation"):
        v.aggregate(z, "median")


# ---- calibration and ensembling ------------------------------------------------------------------------------------

def test_calibration_makes_the_content_free_input_uniform():
    p_cf = torch.tensor([0.7, 0.2, 0.1])  # a prompt biased towards label 0
    assert torch.allclose(pr.contextual_calibration(p_cf[None], p_cf), torch.full((1, 3), 1 / 3))
    p = torch.tensor([[0.5, 0.3, 0.2]])  # label 0 before; relative to the bias, label 2 gained most
    assert p.argmax().item() == 0 and pr.contextual_calibration(p, p_cf).argmax().item() == 2
    assert torch.allclose(pr.contextual_calibration(p, p_cf).sum(-1), torch.ones(1))


# ---- the engine on a tiny random model (fast) ---------------------------------------------------------------------

class CharTok:
    """A minimal tokenizer (one id per character) so the engine can be tested on tiny_llama."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __call__(self, text, add_special_tokens=True):
        ids = [3 + (ord(c) % 250) for c in text]
        return type("Enc", (), {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids})()


@pytest.mark.parametrize("template", ["[X] I feel [Z].", "[Z] news: [X]", "Q: [X] A: [Z]"])
@pytest.mark.parametrize("prefix", ["", "demo one. I feel good.\n"])
def test_batched_search_equals_naive_on_tiny_model(tiny, template, prefix):
    tok, t = CharTok(), pr.Template(template)
    texts = ["a", "bb ccc", "longer text here", "x y"]
    answers = ["great", "ok", "no"]  # different lengths: multi-token, padded continuations
    for normalize in (False, True):
        naive = pr.answer_search_naive(tiny, tok, t, texts, answers, normalize, shared_prefix=prefix)
        fast = pr.answer_search(tiny, tok, t, texts, answers, normalize, batch_size=3, shared_prefix=prefix)
        assert (naive - fast).abs().max() < 1e-4
    assert pr.answer_search(tiny, tok, t, [], answers).shape == (0, 3)


# ---- the real model -------------------------------------------------------------------------------------------------

@pytest.mark.model
def test_batched_search_equals_naive_on_the_real_model(real_model):
    model, tok = real_model
    texts = [SEED_EXAMPLE, "My sister surprised me with concert tickets!", "The meeting is on Thursday."]
    answers = pr.Verbalizer(VERB).answers
    for template in ("[X] I feel [Z].", "Review: [X]\nSentiment: [Z]", "[Z] news: [X]"):
        t = pr.Template(template)
        naive = pr.answer_search_naive(model, tok, t, texts, answers, normalize=True)
        fast = pr.answer_search(model, tok, t, texts, answers, normalize=True, batch_size=2)
        assert (naive - fast).abs().max() < 1e-4


@pytest.mark.model
def test_seed_example_is_negative_and_classifier_beats_chance(real_model):
    model, tok = real_model
    clf = pr.PromptClassifier(model, tok, "[X] I feel [Z].", VERB)
    assert clf.predict([SEED_EXAMPLE]) == ["negative"]
    test = load_sentiment("test")
    acc = clf.accuracy([e.text for e in test], [e.label for e in test])
    assert acc > 0.45  # three balanced classes: chance is 1/3
    with pytest.raises(ValueError, match="Unknown label 'mixed'"):
        clf.accuracy([SEED_EXAMPLE], ["mixed"])


@pytest.mark.model
def test_calibration_and_ensembling_on_the_real_model(real_model):
    model, tok = real_model
    clf = pr.PromptClassifier(model, tok, "Review: [X]\nSentiment: [Z]",
                              {"positive": "great", "neutral": "okay", "negative": "terrible"})
    cal = dataclasses.replace(clf, calibrate=True)
    cf = cal.scores(list(pr.CONTENT_FREE)).exp().mean(0)
    assert (cf - 1 / 3).abs().max() < 0.15  # calibration roughly equalises the content-free prediction
    assert cal.content_free_probs().sum().item() == pytest.approx(1.0, abs=1e-5)
    texts = [SEED_EXAMPLE, "What a lovely day at the beach."]
    both = pr.ensemble_scores([clf, dataclasses.replace(clf, template=pr.Template("[X] I feel [Z]."))], texts)
    assert both.shape == (2, 3) and torch.allclose(both.exp().sum(-1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="same labels"):
        pr.ensemble_scores([clf, dataclasses.replace(clf, verbalizer=pr.Verbalizer({"a": "x", "b": "y"}))], texts)
    with pytest.raises(ValueError, match="one shared prefix"):
        cal.scores(texts, prefixes=["", ""])


def test_verbalizer_from_string():
    v = pr.Verbalizer.from_string("positive: great, good; neutral: okay ;negative: bad")
    assert v.label_words == {"positive": ["great", "good"], "neutral": ["okay"], "negative": ["bad"]}
    with pytest.raises(ValueError, match="label: word, word"):
        pr.Verbalizer.from_string("positive great")


def test_accuracy_from_scores():
    v = pr.Verbalizer(VERB)
    scores = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    assert pr.accuracy(scores, ["positive", "neutral"], v) == 0.5


def test_label_word_search_keeps_the_best_dev_word(tiny):
    clf = pr.PromptClassifier(tiny, CharTok(), "[X] is [Z]", {"a": "x", "b": "y"})
    texts, labels = ["p", "q", "r", "s"], ["a", "b", "a", "b"]
    found, acc = pr.search_label_words(clf, texts, labels, {"a": ["x", "z", "y"], "b": ["y", "w"]})
    assert set(found.labels) == {"a", "b"} and 0.0 <= acc <= 1.0
    assert acc == dataclasses.replace(clf, verbalizer=found).accuracy(texts, labels)


def test_playground_draws_and_reports_bad_input(real_model, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.widgets import prompt_learning_playground

    model, tok = real_model
    ui = prompt_learning_playground(model, tok, SEED_EXAMPLE, pr.SEED_TEMPLATE, "positive: great; negative: bad")
    assert ui is not None and len(ui.children) == 5
    prompt_learning_playground(model, tok, SEED_EXAMPLE, "no slots here", "positive: great")
    assert "needs exactly one" in capsys.readouterr().out


@pytest.mark.model
def test_chapter2_claims_on_the_full_test_split(real_model):
    """Chapter 2's measured claims, at the scale where they were measured (the whole test split, 1 label word):
    the template moves accuracy, calibration raises the mean, and the ensemble beats every single template."""
    model, tok = real_model
    test = load_sentiment("test")
    X, Y = [e.text for e in test], [e.label for e in test]
    v = pr.Verbalizer(pr.ONE_WORD_LABELS)
    raw, cal = [], []
    for t in pr.SENTIMENT_TEMPLATES:
        clf = pr.PromptClassifier(model, tok, t, v, batch_size=32)
        s = clf.scores(X)
        raw.append(s)
        cal.append(pr.contextual_calibration(s.exp(), clf.content_free_probs()).log())
    acc = [pr.accuracy(s, Y, v) for s in raw]
    acc_cal = [pr.accuracy(s, Y, v) for s in cal]
    ens = pr.accuracy(torch.stack([s.exp() for s in raw]).mean(0).log(), Y, v)
    assert max(acc) - min(acc) >= 0.05
    assert sum(acc_cal) / len(acc_cal) > sum(acc) / len(acc)
    assert ens > max(acc)


def test_prompt_longer_than_the_context_window_is_a_clear_error(tiny):
    from course_utils.models import ContextLengthError

    with pytest.raises(ContextLengthError, match="context window is 128"):
        pr.answer_search(tiny, CharTok(), pr.Template("[X] is [Z]"), ["x" * 200], ["a", "b"])


@pytest.mark.model
def test_length_normalisation_moves_predictions_to_the_long_answer(real_model):
    """Chapter 2, answers of 1, 4 and 1 tokens. Measured (test split, 120 sentences, SmolLM2 float32 on CPU): the
    summed log-prob never picks the 4-token neutral answer (0 of 120), the mean picks it 76 times. Accuracy moves
    from 0.583 (sum) to 0.508 (mean), but that gap is within the noise (73 sentences change, 41 vs 32; sign test
    p = 0.35), so only the shift of the predictions is asserted: normalising trades one length bias for another."""
    model, tok = real_model
    X = [e.text for e in load_sentiment("test")]
    words = {"positive": "positive", "neutral": "neither positive nor negative", "negative": "negative"}
    clf = pr.PromptClassifier(model, tok, pr.SENTIMENT_TEMPLATE, words, batch_size=32)
    summed = clf.predict(X)
    mean = dataclasses.replace(clf, normalize=True).predict(X)
    assert summed.count("neutral") <= 10 and mean.count("neutral") >= 50
