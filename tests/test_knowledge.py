"""Synthetic biographies, the word tokenizer, QA data, the engine plumbing, and the chapter's extraction claims."""

import dataclasses

import pytest
import torch

from course_utils import knowledge as K
from course_utils.config import sizes


def test_people_are_distinct_seeded_and_complete():
    people = K.make_people(50, seed=1)
    assert len({p.name for p in people}) == 50
    assert K.make_people(50, seed=1) == people and K.make_people(50, seed=2) != people
    p = people[0]
    assert all(p.value(a) for a in K.ATTRIBUTES) and p.pronoun in ("he", "she")
    day, month, year = p.birth_date.split()
    assert 1 <= int(day) <= 28 and month in K.MONTHS and 1950 <= int(year) <= 1999


@pytest.mark.parametrize("n, msg", [(0, "at least one"), (K.max_people() + 1, "distinct names")])
def test_make_people_errors(n, msg):
    with pytest.raises(ValueError, match=msg):
        K.make_people(n)


def test_biographies_single_and_augmented():
    people = K.make_people(4)
    single = K.bio_corpus(people)
    assert list(single) == [p.name for p in people] and single == K.bio_corpus(people)  # seeded
    p, bio = people[0], single[people[0].name][0]
    assert bio.startswith(p.name) and bio.count(p.name) == 1  # pronouns after the first sentence
    assert all(p.value(a) in bio for a in K.ATTRIBUTES)
    positions = [bio.index(p.value(a)) for a in K.ATTRIBUTES]
    assert positions == sorted(positions)  # fixed order without permute
    aug = K.bio_corpus(people, rewrites=6, permute=True, fullname=True)
    mine = aug[p.name]
    assert len(K.flatten(aug)) == 24 and all(b.count(p.name) == 5 for b in mine)
    assert len(set(mine)) == 6  # different wordings and orders
    orders = {tuple(sorted(K.ATTRIBUTES, key=lambda a: b.index(p.value(a)))) for b in mine}
    assert len(orders) > 1
    with pytest.raises(ValueError, match="rewrites"):
        K.bio_corpus(people, rewrites=0)
    with pytest.raises(ValueError, match="No people"):
        K.bio_corpus([])
    with pytest.raises(ValueError, match="fraction"):
        K.bio_corpus(people, fraction=2)
    partial = K.bio_corpus(people, rewrites=3, permute=True, fullname=True, fraction=0.5)
    assert [len(v) for v in partial.values()] == [3, 3, 1, 1]


def test_qa_pairs_and_bad_attributes():
    p = K.make_people(1)[0]
    pairs = K.qa_pairs([p])
    assert len(pairs) == len(K.ATTRIBUTES)
    assert pairs[0] == (f"Q: When was {p.name} born?\nA:", f" {p.birth_date}\n")
    with pytest.raises(ValueError, match="Unknown attribute"):
        K.qa_pairs([p], ["shoe_size"])
    with pytest.raises(ValueError, match="Unknown attribute"):
        p.value("shoe_size")


def test_split_people():
    people = K.make_people(10)
    a, b = K.split_people(people)
    assert len(a) == len(b) == 5 and not {x.name for x in a} & {x.name for x in b}
    with pytest.raises(ValueError, match="empty"):
        K.split_people(people[:1])


def test_word_tokenizer_round_trip_and_examples():
    tok = K.WordTokenizer()
    people = K.make_people(30)
    for text in K.flatten(K.bio_corpus(people, rewrites=3, permute=True)) + [p for p, _ in K.qa_pairs(people)]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("\n") == [tok.eos_id] and tok.pad_id == 0 and len(tok) < 600
    with pytest.raises(ValueError, match="not in the biography vocabulary"):
        tok.encode("Paris Hilton")
    ex = K.qa_examples(tok, K.qa_pairs(people[:1], ["major"]))[0]
    n_answer = len(tok.encode(f" {people[0].major}\n"))
    assert ex["labels"][:-n_answer] == [-100] * (len(ex["labels"]) - n_answer)
    assert ex["labels"][-1] == tok.eos_id
    text = K.text_examples(tok, ["Alma Ash Abbot studied at MIT."])[0]
    assert text["input_ids"] == text["labels"] and text["input_ids"][-1] == tok.eos_id


def test_setups():
    assert sizes("knowledge", "cpu").n_people >= 100
    assert sizes("knowledge", "smoke").augmentation("rewrites")["rewrites"] == sizes("knowledge", "smoke").rewrites
    assert sizes("knowledge", "smoke").augmentation("single")["rewrites"] == 1
    with pytest.raises(ValueError, match="profile"):
        sizes("knowledge", "tpu")
    with pytest.raises(ValueError, match="augmentation"):
        sizes("knowledge", "cpu").augmentation("translated")


def test_exact_match_is_greedy_decoding():
    """Teacher-forced exact match agrees with generating greedily token by token."""
    tok = K.WordTokenizer()
    people = K.make_people(6)
    setup = sizes("knowledge", "smoke")
    run = K.pretrain_bios(people, setup, progress=False)
    examples = K.qa_examples(tok, K.qa_pairs(people))
    # Make some answers right: the model's own greedy continuation is, by definition, greedy.
    m = run.model
    for e in examples[:6]:
        n_prompt = e["labels"].count(-100)
        ids = torch.tensor([e["input_ids"][:n_prompt]])
        n_answer = len(e["input_ids"]) - n_prompt
        for _ in range(n_answer):
            ids = torch.cat([ids, m(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
        own = {"input_ids": ids[0].tolist(), "labels": [-100] * n_prompt + ids[0, n_prompt:].tolist()}
        assert K.exact_match(m, [own]) == [True]
        assert K.exact_match(m, [e]) == [ids[0].tolist() == e["input_ids"]]


def test_pipeline_and_errors_at_smoke_size():
    people = K.make_people(20)
    setup = sizes("knowledge", "smoke")
    train_p, test_p = K.split_people(people)
    run = K.pretrain_bios(people, setup, "rewrites", progress=False)
    assert len(K.flatten(run.corpus)) == 20 * setup.rewrites and run.final_loss < 6
    tuned, curve = K.qa_finetune(run, train_p, setup, test_people=test_p, progress=False)
    assert [s for s, _, _ in curve] == [5, 10] and all(0 <= a <= 1 for _, a, b in curve)
    acc = K.qa_accuracy(tuned, test_p)
    assert set(acc) == {*K.ATTRIBUTES, "mean"}
    assert 0 <= K.recall_accuracy(run, test_p) <= 1
    assert not torch.equal(tuned.model.wte.weight, run.model.wte.weight)  # a copy was tuned
    strangers = K.make_people(3, seed=99)
    with pytest.raises(ValueError, match="not in the pretraining"):
        K.qa_accuracy(run, strangers)
    with pytest.raises(ValueError, match="not in the pretraining"):
        K.qa_finetune(run, strangers, setup, progress=False)


def test_smoke_numbers_repeat_exactly():
    people = K.make_people(20)
    setup = dataclasses.replace(sizes("knowledge", "smoke"), steps=5)
    a = K.pretrain_bios(people, setup, progress=False)
    b = K.pretrain_bios(people, setup, progress=False)
    assert a.final_loss == b.final_loss


def test_majority_baseline():
    people = K.make_people(40)
    train_p, test_p = K.split_people(people)
    base = K.majority_baseline(train_p, test_p)
    assert 0 <= base < 0.2
    same = K.majority_baseline(train_p, train_p)
    assert same >= 1 / len(K.CITIES)


def test_extraction_experiment_smoke():
    setup = dataclasses.replace(sizes("knowledge", "smoke"), n_people=10, steps=4, qa_steps=2, qa_evals=1)
    results, base = K.extraction_experiment(setup, ("single", "rewrites + mixed QA"), progress=False)
    assert list(results) == ["single", "rewrites + mixed QA"] and 0 <= base <= 1
    r = results["rewrites + mixed QA"]
    assert r.tuned.mixed_qa == 5 * len(K.ATTRIBUTES) and len(r.curve) == 1 and 0 <= r.recall <= 1
    text = K.format_extraction(results, base)
    assert "majority answer" in text and "single" in text
    import matplotlib

    matplotlib.use("Agg")
    K.plot_extraction(results, base)
    with pytest.raises(ValueError, match="variant"):
        K.extraction_experiment(setup, ("translated",))
    with pytest.raises(ValueError, match="without a biography"):
        K.pretrain_bios(K.make_people(4), setup, mix_qa=K.make_people(2, seed=5), progress=False)


@pytest.mark.slow
def test_rewrites_make_stored_facts_extractable():
    """The chapter's claim at the cpu size (about 5 minutes): both corpora store the held-out people's facts, the
    single biographies leave them near the majority baseline, the rewrites make clearly more of them extractable.
    Recorded cpu run: recall 1.00 / 0.99, held-out QA 0.08 (single) vs 0.21 (rewrites), majority 0.04."""
    results, base = K.extraction_experiment(sizes("knowledge", "cpu"), ("single", "rewrites"), progress=False)
    single, rewrites = results["single"], results["rewrites"]
    assert single.recall > 0.95 and rewrites.recall > 0.95  # stored
    assert single.test_qa["mean"] < base + 0.1  # not extractable
    assert rewrites.test_qa["mean"] > single.test_qa["mean"] + 0.08  # extractable, at least partly
