"""The evaluation harness: matching rules by hand, every probe on a tiny model, KL zero against itself."""

import copy

import pytest
import torch

from course_utils import evaluation as ev
from course_utils.config import sizes


def test_answer_matching_and_numbers():
    assert ev.answer_matches("The capital is Paris.", "Paris")
    assert ev.answer_matches("It's the U.S.A.!", "United States", ["USA", "U S A"])
    assert not ev.answer_matches("Parisian food", "Paris")  # whole words only
    assert not ev.answer_matches("anything", "", [])
    assert ev.final_number("The answer is -12, not 3") == "-12"
    assert ev.final_number("43 - 15 = 28") == "28"
    assert ev.final_number("We add 5 and 3 to get 8") == "8"
    assert ev.final_number("1,024 bytes") == "1024"
    assert ev.final_number("no digits") is None


def test_probe_data():
    qs = ev.arithmetic_questions(20, seed=1)
    assert qs == ev.arithmetic_questions(20, seed=1) and len(qs) == 20
    assert all(0 <= int(q["answer"]) <= 18 for q in qs)
    assert all(len(q["question"].split()[2]) == 2 for q in ev.arithmetic_questions(5, digits=2))
    for q in qs:
        a, op, b = q["question"][len("What is "):-1].split()
        assert int(q["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    facts = ev.load_facts()
    assert len(facts) >= 200 and ev.load_facts(5) == facts[:5]
    assert all(f["question"] and f["answer"] and isinstance(f["aliases"], list) for f in facts)
    assert len({f["category"] for f in facts[:40]}) >= 4  # shuffled: a prefix mixes categories
    with pytest.raises(ValueError, match="profile"):
        sizes("evaluation", "tpu")


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import AutoTokenizer

    from course_utils import models
    from course_utils.config import DEFAULT_MODEL

    tok = models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.ensure_cached(DEFAULT_MODEL)))
    return models.tiny_llama(vocab_size=len(tok), max_positions=1024).eval(), tok


def test_every_probe_runs_and_kl_is_zero_against_itself(tiny_lm, capsys):
    model, tok = tiny_lm
    held = [{"instruction": "Name a colour.", "input": "", "output": "Red."}]
    h = ev.Harness(tok, sizes("evaluation", "smoke"), instructions=held)
    with pytest.raises(ValueError, match="set_reference"):
        h.evaluate(model, "x", ["kl"])
    h.set_reference(model)
    row = h.evaluate(model, "tiny")
    assert "evaluating tiny" in capsys.readouterr().err  # a progress bar, named after the model
    assert set(row) == {"model", *ev.METRICS}
    assert row["perplexity"] > 100  # random weights: near-uniform over 49k tokens
    assert 0 <= row["sentiment"] <= 1 and 0 <= row["facts"] <= 1 and 0 <= row["arithmetic"] <= 1
    assert abs(row["kl"]) < 1e-6
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.lm_head.weight.add_(0.05 * torch.randn_like(moved.lm_head.weight))
    assert h.evaluate(moved, "moved", ["kl"], progress=False)["kl"] > 1e-3
    assert "evaluating" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown probe"):
        h.evaluate(model, "x", ["bleu"])
    assert not model.training


def test_results_table_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"model": "original", "perplexity": 12.0, "facts": 0.5}, {"model": "tuned", "facts": 0.25, "kl": 0.1}]
    text = ev.format_results(rows)
    assert "perplexity" in text and "kl" in text and text.count("\n") == 3 and "-" in text.splitlines()[2]
    fig = ev.plot_results(rows)
    assert len(fig.axes) == 3


def test_kl_per_position_and_most_shifted(tiny_lm):
    model, tok = tiny_lm
    ids = tok("The quick brown fox jumps over the lazy dog again and again.", return_tensors="pt").input_ids[0]
    ref = ev.next_token_logprobs(model, ids)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.lm_head.weight[:, :].add_(0.05 * torch.randn_like(moved.lm_head.weight))
    kl = ev.kl_per_position(moved, ids, ref)
    assert kl.shape == (len(ids) - 1,) and (kl >= -1e-6).all()
    assert ev.kl_to_reference(moved, ids, ref) == pytest.approx(kl.mean().item())
    top = ev.most_shifted(tok, ids, kl, k=3)
    assert len(top) == 3 and top[0][0] >= top[1][0] >= top[2][0] and isinstance(top[0][2], str)
    with pytest.raises(ValueError, match="same ids"):
        ev.kl_per_position(moved, ids[:-2], ref)


def test_standard_error():
    assert ev.standard_error(0.5, 100) == pytest.approx(0.05)
    assert ev.standard_error(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="n >= 1"):
        ev.standard_error(0.5, 0)
