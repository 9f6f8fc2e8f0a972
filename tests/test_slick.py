"""SliCK: the category rules, prompts, exact teacher-forced scoring checked against generation on the real model."""

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
