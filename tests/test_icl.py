import pytest
import torch

from course_utils import icl
from course_utils import prompting as pr
from course_utils.data import Example, load_sentiment

POOL = [Example(f"text {i}", ["positive", "neutral", "negative"][i % 3]) for i in range(30)]
TPL = pr.Template("[X] I feel [Z].")
VERB = pr.Verbalizer({"positive": ["great", "good"], "neutral": "okay", "negative": "terrible"})


def test_demonstrations_use_the_first_label_word():
    demos = [Example("Sunny day.", "positive"), Example("Lost my keys.", "negative")]
    assert icl.format_demonstrations(TPL, VERB, demos) == "Sunny day. I feel great.\nLost my keys. I feel terrible.\n"
    assert icl.format_demonstrations(TPL, VERB, []) == ""
    with pytest.raises(ValueError, match="Unknown label 'mixed'"):
        icl.format_demonstrations(TPL, VERB, [Example("x", "mixed")])


def test_selection_random_and_balanced():
    assert icl.select_random(POOL, 5, seed=1) == icl.select_random(POOL, 5, seed=1)
    assert len(set(map(id, icl.select_random(POOL, 5)))) == 5
    picks = icl.select_balanced(POOL, 6, seed=3)
    assert sorted(e.label for e in picks) == sorted(["positive", "neutral", "negative"] * 2)
    assert icl.select_balanced(POOL, 0) == []
    with pytest.raises(ValueError, match="k=31 demonstrations"):
        icl.select_balanced(POOL, 31)


def test_knn_picks_the_nearest_in_kate_order():
    pool_emb = torch.eye(4)
    query = torch.tensor([[0.9, 0.1, 0.0, 0.0]])
    pool = POOL[:4]
    assert icl.select_knn(pool, pool_emb, query, 2) == [[pool[0], pool[1]]]
    assert icl.select_knn(pool, pool_emb, query, 2, most_similar_first=False) == [[pool[1], pool[0]]]
    assert icl.select_knn(pool, pool_emb, query, 0) == [[]]


def test_orderings_are_distinct_permutations():
    demos = POOL[:3]
    orders = icl.orderings(demos, 10)
    assert len(orders) == 6 and len({tuple(map(id, o)) for o in orders}) == 6
    big = icl.orderings(POOL[:8], 5, seed=2)
    assert len(big) == 5 and all(sorted(map(id, o)) == sorted(map(id, POOL[:8])) for o in big)


def test_corrupt_labels_keeps_inputs_and_label_space():
    demos = POOL[:12]
    bad = icl.corrupt_labels(demos, VERB.labels, 1.0, seed=0)
    assert [e.text for e in bad] == [e.text for e in demos]
    assert {e.label for e in bad} <= set(VERB.labels)
    assert bad == icl.corrupt_labels(demos, VERB.labels, 1.0, seed=0)  # seeded
    assert icl.corrupt_labels(demos, VERB.labels, 0.0) == demos
    with pytest.raises(ValueError, match="fraction"):
        icl.corrupt_labels(demos, VERB.labels, 1.5)


def test_corrupt_labels_redraws_the_asked_fraction_uniformly():
    """A redrawn label is uniform over the 3 labels, so it changes with probability 2/3: over 20 seeds of 30
    demonstrations, fraction f changes about 2f/3 of the labels, and every label is drawn about equally often."""
    changed = {1.0: 0, 0.5: 0}
    drawn = dict.fromkeys(VERB.labels, 0)
    for seed in range(20):
        for fraction in changed:
            bad = icl.corrupt_labels(POOL, VERB.labels, fraction, seed=seed)
            changed[fraction] += sum(b.label != d.label for b, d in zip(bad, POOL))
            if fraction == 1.0:
                for e in bad:
                    drawn[e.label] += 1
    n = 20 * len(POOL)
    assert changed[1.0] / n == pytest.approx(2 / 3, abs=0.06)  # a no-op changes none; all 600 draws: sd 0.02
    assert changed[0.5] / n == pytest.approx(1 / 3, abs=0.06)  # half of them redrawn, not all
    assert all(abs(c / n - 1 / 3) < 0.06 for c in drawn.values()), drawn


def test_embed_with_the_shipped_encoder():
    emb = icl.embed(["The food was delicious.", "The meal tasted wonderful.", "The train leaves at six."])
    assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # paraphrases are nearer than unrelated sentences


def test_embed_equals_sentence_transformers():
    """The hand pooling (mean of the token states over the mask, then unit length) is what sentence-transformers
    computes from the shipped folder's own modules (Transformer -> Pooling(mean) -> Normalize)."""
    from sentence_transformers import SentenceTransformer

    from course_utils import models

    texts = ["The food was delicious.", "A much longer sentence, so that the batch has padding in it.", "Six."]
    st = SentenceTransformer(str(models.package_dir(models.SENTENCE_ENCODER[0]) / "model"), device="cpu")
    theirs = st.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(icl.embed(texts), theirs.float().cpu(), atol=1e-5, rtol=0)


@pytest.mark.model
def test_icl_accuracy_shared_and_per_example_demos(real_model):
    model, tok = real_model
    clf = pr.PromptClassifier(model, tok, TPL, VERB)
    test, pool = load_sentiment("test", limit=9), load_sentiment("train")
    demos = icl.select_balanced(pool, 3, seed=0)
    shared = icl.icl_accuracy(clf, test, demos)
    per = icl.icl_accuracy(clf, test, [demos] * len(test))  # the same demos, as per-example lists
    assert shared == pytest.approx(per, abs=1e-6)
    with pytest.raises(ValueError, match="2 demonstration lists for 9"):
        icl.icl_accuracy(clf, test, [demos, demos])


@pytest.mark.model
def test_chapter3_claims_on_the_full_test_split(real_model):
    """Chapter 3's measured claims that hold for a 135M model: the order of the same demonstrations moves
    accuracy by 10+ points (Lu et al.); random labels cost little (Min et al.); kNN demonstrations beat random
    ones on average (KATE)."""
    import statistics

    model, tok = real_model
    test, pool = load_sentiment("test"), load_sentiment("train")
    clf = pr.PromptClassifier(model, tok, "Review: [X]\nSentiment: [Z]",
                              {"positive": "positive", "neutral": "neutral", "negative": "negative"}, batch_size=32)
    orders = icl.orderings(icl.select_balanced(pool, 4, seed=0), n=6)
    order_accs = [icl.icl_accuracy(clf, test, o, "\n\n") for o in orders]
    assert max(order_accs) - min(order_accs) >= 0.1
    gold, rand = [], []
    for s in range(3):
        d = icl.select_balanced(pool, 8, seed=s)
        gold.append(icl.icl_accuracy(clf, test, d, "\n\n"))
        rand.append(icl.icl_accuracy(clf, test, icl.corrupt_labels(d, clf.verbalizer.labels, 1.0, seed=s), "\n\n"))
    assert statistics.mean(rand) >= statistics.mean(gold) - 0.05
    knn = icl.select_knn(pool, icl.embed([e.text for e in pool]), icl.embed([e.text for e in test]), 4)
    knn_acc = icl.icl_accuracy(clf, test, knn, "\n\n")
    random_accs = [icl.icl_accuracy(clf, test, icl.select_random(pool, 4, seed=s), "\n\n") for s in range(3)]
    assert knn_acc > statistics.mean(random_accs)
