"""SliCK: the category rules, prompts, exact teacher-forced scoring checked against generation on the real model."""

import types

import pytest
import torch

from course_utils import slick as SK
from course_utils.config import sizes
from course_utils.evaluation import load_facts


@pytest.mark.parametrize("pg, ps, cat", [(1.0, 0.0, "HighlyKnown"), (1.0, 1.0, "HighlyKnown"),
                                         (0.5, 0.0, "MaybeKnown"), (0.1, 0.9, "MaybeKnown"),
                                         (0.0, 0.01, "WeaklyKnown"), (0.0, 0.0, "Unknown")])
def test_categorize(pg, ps, cat):
    assert SK.categorize(pg, ps) == cat


def test_categorize_and_sizes_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SK.categorize(1.5, 0)
    with pytest.raises(ValueError, match="temperature"):
        SK.SliCKSizes(n_sets=2, temperature=0)
    with pytest.raises(ValueError, match="n_sets"):
        SK.SliCKSizes(n_sets=0)


def test_prompts_and_exemplar_sets():
    facts = load_facts()
    sets = SK.exemplar_sets(facts, n_sets=3, k=4)
    assert len(sets) == 3 and all(len(s) == 4 and len({e["question"] for e in s}) == 4 for s in sets)
    assert sets == SK.exemplar_sets(facts, n_sets=3, k=4)  # seeded
    assert sets[0] != sets[1]
    f = facts[-1]
    prompt = SK.few_shot_prompt(sets[0], f["question"])
    assert prompt.endswith(f"Q: {f['question']}\nA:") and prompt.count("Q: ") == 5
    assert f"A: {sets[0][0]['answer']}\n\n" in prompt
    assert prompt == SK.few_shot_prefix(sets[0]) + SK.qa_line(f["question"])
    with pytest.raises(ValueError, match="more than 4 facts"):
        SK.exemplar_sets(facts[:4], n_sets=1, k=4)


def test_a_question_is_never_its_own_exemplar():
    facts = load_facts()
    ex = SK.exemplar_sets(facts, 1, 4)[0]
    own = ex[2]
    swapped = SK.without(ex, own, facts)
    assert len(swapped) == 4 and own["question"] not in {e["question"] for e in swapped}
    assert swapped[:2] == ex[:2] and swapped[3] == ex[3]  # only the question itself is replaced
    other = next(f for f in facts if f not in ex)
    assert SK.without(ex, other, facts) == ex  # not in the set: unchanged
    assert SK.without(ex, own, facts) == swapped  # seeded


# A hand-built case for the exact probabilities. Tokens: 0 pad, 1 "\n" and 2 EOS (the stop tokens), 3 "A",
# 4 "B". The "model" is a bigram table: the next-token distribution depends on the last token only.
_NEXT = {3: [0.05, 0.30, 0.20, 0.25, 0.20],  # after "A": stops with 0.30 + 0.20, "\n" the likeliest token
         4: [0.05, 0.10, 0.05, 0.60, 0.20]}  # after "B": "A" the likeliest token
_STOP = torch.tensor([False, True, True, False, False])


class _Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        table = torch.full((5, 5), 0.2)
        for token, row in _NEXT.items():
            table[token] = torch.tensor(row)
        self.logp = torch.nn.Parameter(table.log())

    def forward(self, input_ids, **kw):
        return types.SimpleNamespace(logits=self.logp[input_ids])


class _DigitTok:
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [int(c) for c in text]}


def _p(dist, token, temperature):
    """p_T(token) from a hand distribution: p ** (1/T), renormalised."""
    w = [q ** (1 / temperature) for q in dist]
    return w[token] / sum(w)


def _p_stop(dist, temperature):
    return _p(dist, 1, temperature) + _p(dist, 2, temperature)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_exact_sample_probability_by_hand(temperature):
    """P(a sample writes exactly the answer, then stops) = prod_j p_T(answer_j | before) * p_T(stop | answer),
    summed over the accepted answers; against the same product computed by hand from the table, to 1e-6."""
    t = temperature
    prompts, variants = ["34", "3"], [[[3], [4, 3]], [[4]]]  # prompt 1 ends with "B": "A" or "BA" then stop
    scores = SK.score_answers(_Bigram(), _DigitTok(), prompts, variants, (t,), stop_mask=_STOP)
    a, b = _NEXT[3], _NEXT[4]
    p_a = _p(b, 3, t) * _p_stop(a, t)  # "A" after "B", then stop
    p_ba = _p(b, 4, t) * _p(b, 3, t) * _p_stop(a, t)  # "B", "A", stop
    assert scores[0].p_sample[t] == pytest.approx(p_a + p_ba, abs=1e-6)
    assert scores[1].p_sample[t] == pytest.approx(_p(a, 4, t) * _p_stop(b, t), abs=1e-6)  # "B" after "A"
    # greedy writes "A" after "B" and then "\n": a hit; after "A" it writes "\n" at once, not "B"
    assert [s.greedy for s in scores] == [True, False]
    logits = _Bigram().logp.detach()[torch.tensor([4, 3])]
    assert float(SK.sample_probability(logits, torch.tensor([3]), _STOP, t)) == pytest.approx(p_a, abs=1e-6)


def _own_exemplars(f, pool):
    return SK.without(SK.exemplar_sets(pool, 1, 4)[0], f, pool)


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from course_utils.models import ensure_cached, prepare_tokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(ensure_cached("smollm2-135m-instruct")))


def test_answer_variants_and_stop_tokens(tok):
    fact = {"question": "?", "answer": "Pacific Ocean", "aliases": ["Pacific", "the Pacific", "Pacific Ocean"]}
    vs = SK.answer_variants(tok, fact)
    assert len(vs) == 4 and vs[0] == tok(" Pacific Ocean", add_special_tokens=False)["input_ids"]  # + "The Pacific"
    stop = SK.stop_token_mask(tok)
    for text in ("\n", "\n\n"):
        assert stop[tok(text, add_special_tokens=False)["input_ids"][0]]
    assert stop[tok.eos_token_id] and not stop[vs[1][0]]
    with pytest.raises(ValueError, match="empty answer"):
        SK.answer_variants(tok, {"question": "?", "answer": " "})
    lower = {"question": "?", "answer": "hydrogen", "aliases": ["H"]}
    assert SK.accepted_answers(lower) == ["hydrogen", "Hydrogen", "H"]
    assert len(SK.answer_variants(tok, lower)) == 3  # the capitalised reply is a distinct, accepted answer
    assert SK.is_exact_match(" Hydrogen\nQ: next", lower) and not SK.is_exact_match("HYDROGEN", lower)
    assert not SK.is_exact_match("hydrogen gas", lower)


@pytest.mark.model
def test_teacher_forced_greedy_equals_generation(real_model):
    """score_answers' greedy verdict is what generating greedily and exact-matching the first line gives."""
    from course_utils.models import generate_batch

    model, tok = real_model
    facts = load_facts(12)
    prompts = [SK.few_shot_prompt(_own_exemplars(f, load_facts()), f["question"]) for f in facts]
    scores = SK.score_answers(model, tok, prompts, [SK.answer_variants(tok, f) for f in facts], (0.5,))
    replies = generate_batch(model, tok, prompts, max_new_tokens=10, chat=False)
    for f, s, r in zip(facts, scores, replies):
        assert s.greedy == SK.is_exact_match(r, f), (f["question"], r)
        assert 0 <= s.p_sample[0.5] <= 1
    assert any(s.greedy for s in scores) and not all(s.greedy for s in scores)


@pytest.mark.model
def test_exact_sample_probability_matches_real_sampling(real_model):
    """The probability that one sample is right equals the share of sampled answers that are right (within noise)."""
    model, tok = real_model
    facts = load_facts(24)
    prompts = [SK.few_shot_prompt(_own_exemplars(f, load_facts()), f["question"]) for f in facts]
    scores = SK.score_answers(model, tok, prompts, [SK.answer_variants(tok, f) for f in facts], (1.0,))
    i = min(range(len(facts)), key=lambda j: abs(scores[j].p_sample[1.0] - 0.5))
    p, f = scores[i].p_sample[1.0], facts[i]
    n = 48  # 4 sigma at p = 0.5 is 0.29: enough to catch a wrong formula, half the time of 96
    answers = SK.sample_answers(model, tok, prompts[i], n, temperature=1.0, max_new_tokens=8)
    freq = sum(SK.is_exact_match(a, f) for a in answers) / n
    assert 0.1 < p < 0.9, "no fact with an uncertain answer among the first 24"
    assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 0.02, (f["question"], p, freq, answers[:8])


@pytest.mark.model
def test_slick_categories_on_the_real_model(real_model):
    model, tok = real_model
    facts = load_facts(10)
    sizes = SK.SliCKSizes(n_sets=2, n_samples=4)
    rows = SK.slick_categories(model, tok, facts, sizes, pool=load_facts(), progress=False)
    assert [r["id"] for r in rows] == [f["id"] for f in facts]
    for r in rows:
        assert r["slick"] == SK.categorize(r["p_greedy"], r["p_sample"])
        assert r["p_greedy"] in (0, 0.5, 1)
    assert sum(SK.category_counts(rows).values()) == 10 and set(SK.by_category(rows)) == set(SK.CATEGORIES)
    again = SK.slick_categories(model, tok, facts, sizes, pool=load_facts(), progress=False)
    assert again == rows  # seeded: the sampled verdicts repeat
    with pytest.raises(ValueError, match="No facts"):
        SK.slick_categories(model, tok, [], sizes)
    import matplotlib

    matplotlib.use("Agg")
    SK.plot_categories(rows)
    torch.manual_seed(0)


@pytest.mark.slow
@pytest.mark.model
def test_all_four_categories_occur_at_the_cpu_size(real_model):
    """The chapter's SliCK claim on a third of the questions (about a minute): with the cpu profile's 3 exemplar
    sets and 16 samples, the course's facts fill all four categories. The exemplar set changes the greedy answer
    (MaybeKnown) and sampling rescues some facts greedy decoding misses (WeaklyKnown). Recorded cpu run on all 240
    facts: HighlyKnown 71, MaybeKnown 55, WeaklyKnown 53, Unknown 61."""

    model, tok = real_model
    facts = load_facts()
    rows = SK.slick_categories(model, tok, facts[:80], sizes("new_knowledge", "cpu").slick, pool=facts, progress=False)
    counts = SK.category_counts(rows)
    assert all(n >= 4 for n in counts.values()), counts
    assert all(r["p_sample_exact"] > 0 for r in rows if r["slick"] == "WeaklyKnown")
