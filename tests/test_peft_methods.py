"""Chapter 4's comparison runner, on the tiny model; and the chapter's headline claim on the real model."""

import copy

import pytest

from course_utils import peft_methods as pm
from course_utils import sft
from course_utils.data import load_sentiment
from course_utils.finetune import build_model, load_pairs
from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS


@pytest.fixture(scope="module")
def setup():
    model, tok = build_model("tiny", "full")
    test = load_sentiment("test", limit=6)
    return model, tok, sft.build_dataset(tok, load_pairs("sentiment", limit=16), 64), test


def test_every_method_trains_and_reports_a_row(setup):
    model, tok, data, test = setup
    rows, tuned = pm.compare_methods(model, tok, data, [e.text for e in test], [e.label for e in test], steps=1,
                                     batch_size=4, template=SENTIMENT_TEMPLATE, label_words=SENTIMENT_WORDS,
                                     measure_memory=False, latency_tokens=8)
    assert [r["method"] for r in rows] == list(pm.METHODS) and set(tuned) == set(pm.METHODS)
    by = {r["method"]: r for r in rows}
    total = sum(p.numel() for p in model.parameters())
    assert by["full fine-tuning"]["trainable"] == total
    assert by["LoRA r=4"]["trainable"] * 4 == by["LoRA r=16"]["trainable"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["latency ms"] > 0 and r["peak MB"] is None for r in rows)
    assert "LoRA r=4" in pm.format_rows(rows)


def test_deployable_lora_is_merged_and_the_base_is_untouched(setup):
    model, tok, _, _ = setup
    before = copy.deepcopy(model.state_dict())
    m = pm.METHODS["LoRA r=4"].build(model, tok)
    served = pm.METHODS["LoRA r=4"].deployable(m)
    assert not any("lora" in n for n, _ in served.named_parameters())
    assert all((before[k] == v).all() for k, v in model.state_dict().items())


def test_unknown_method_kind_is_refused(setup):
    model, tok, _, _ = setup
    with pytest.raises(ValueError, match="Unknown method kind 'ia3'"):
        pm.Method("ia3").build(model, tok)


def test_peak_memory_column_orders_full_above_lora(setup):
    model, tok, data, test = setup
    methods = {k: pm.METHODS[k] for k in ("full fine-tuning", "LoRA r=4")}
    rows, _ = pm.compare_methods(model, tok, data, [e.text for e in test], [e.label for e in test], steps=1,
                                 batch_size=2, template=SENTIMENT_TEMPLATE, label_words=SENTIMENT_WORDS,
                                 methods=methods, latency_tokens=8)
    full, lora_row = rows
    weights_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    assert full["peak MB"] > 3 * weights_mb  # weights + gradients + Adam's m and v
    assert weights_mb < lora_row["peak MB"] < full["peak MB"]


def _check_low_rank(model, tuned, factor: float) -> int:
    """The middle layer's q_proj update: it is not zero, :func:`effective_rank` is the smallest k whose explicit
    rank-k construction (truncated SVD, Eckart-Young: LoRA's B @ A at its best) keeps 90% of its energy, and that k
    is under 1/factor of a random matrix's of the same shape. Returns k."""
    import torch

    from course_utils.lora import effective_rank, singular_values

    i = len(model.model.layers) // 2
    w0 = model.model.layers[i].self_attn.q_proj.weight.detach()
    delta = tuned.model.layers[i].self_attn.q_proj.weight.detach() - w0
    assert delta.norm() > 1e-4 * w0.norm(), "the weights did not move: nothing was trained"
    k = effective_rank(singular_values(delta))
    U, S, Vh = torch.linalg.svd(delta.double())

    def kept(r):  # share of ||delta||^2 that the best rank-r matrix B @ A reproduces
        B, A = U[:, :r] * S[:r], Vh[:r]
        return 1 - float(((delta.double() - B @ A).norm() / delta.double().norm()) ** 2)

    assert kept(k) >= 0.9 - 1e-6 and kept(k - 1) < 0.9, (k, kept(k - 1), kept(k))
    noise = torch.randn(delta.shape, generator=torch.Generator().manual_seed(0))
    assert 1 <= k < effective_rank(singular_values(noise)) / factor, (k, effective_rank(singular_values(noise)))
    return k


def test_full_update_is_low_rank_on_the_tiny_model(setup):
    """Chapter 4 section 6 on the tiny model: 12 steps of full fine-tuning move q_proj by a matrix that a rank-k
    product reproduces (90% of its energy), with k under a quarter of a random matrix's."""
    model, tok, data, _ = setup
    tuned = pm.METHODS["full fine-tuning"].build(model, tok)
    sft.train(tuned, data, sft.TrainConfig(steps=12, batch_size=4, lr=5e-5, plot=None, progress=False))
    _check_low_rank(model, tuned, factor=4)


@pytest.mark.model
def test_chapter4_lora_beats_prompting_on_the_full_test_split(real_model):
    """The chapter's claim: 40 LoRA steps beat zero-shot and the best in-context result, chapter 3's kNN
    demonstrations (k = 4), measured here with chapter 3's template, labels and separator."""
    from course_utils import icl
    from course_utils.prompting import PromptClassifier

    model, tok = real_model
    test, pool = load_sentiment("test"), load_sentiment("train")
    X, Y = [e.text for e in test], [e.label for e in test]
    zero = pm.prompt_accuracy(model, tok, X, Y, SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
    clf = PromptClassifier(model, tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, batch_size=32)
    knn = icl.select_knn(pool, icl.embed([e.text for e in pool]), icl.embed(X), 4)
    in_context = icl.icl_accuracy(clf, test, knn, "\n\n")
    tuned = pm.METHODS["LoRA r=4"].build(model, tok)
    data = sft.build_dataset(tok, load_pairs("sentiment"), 64)
    sft.train(tuned, data, sft.TrainConfig(steps=40, batch_size=8, lr=1e-3, warmup_steps=4, plot=None,
                                           progress=False))
    acc = pm.prompt_accuracy(tuned, tok, X, Y, SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
    assert acc > max(zero, in_context) + 0.1, (zero, in_context, acc)


@pytest.mark.model
def test_full_fine_tuning_update_is_low_rank(real_model):
    """Chapter 4 section 6 on the real model: after 12 steps of full fine-tuning, the update's energy sits in far
    fewer directions than a random matrix's (checked against the explicit rank-k construction)."""
    model, tok = real_model
    tuned = pm.METHODS["full fine-tuning"].build(model, tok)
    data = sft.build_dataset(tok, load_pairs("sentiment", limit=48), 64)
    sft.train(tuned, data, sft.TrainConfig(steps=12, batch_size=4, lr=5e-5, plot=None, progress=False))
    _check_low_rank(model, tuned, factor=4)
