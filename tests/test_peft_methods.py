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


@pytest.mark.model
def test_chapter4_lora_beats_prompting_on_the_full_test_split(real_model):
    """The chapter's claim: 40 LoRA steps beat zero-shot and the best in-context result (0.62, chapter 3)."""
    model, tok = real_model
    test = load_sentiment("test")
    X, Y = [e.text for e in test], [e.label for e in test]
    zero = pm.prompt_accuracy(model, tok, X, Y, SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
    tuned = pm.METHODS["LoRA r=4"].build(model, tok)
    data = sft.build_dataset(tok, load_pairs("sentiment"), 64)
    sft.train(tuned, data, sft.TrainConfig(steps=40, batch_size=8, lr=1e-3, warmup_steps=4, plot=None,
                                           progress=False))
    acc = pm.prompt_accuracy(tuned, tok, X, Y, SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
    assert acc > max(zero, 0.62) + 0.1, (zero, acc)


@pytest.mark.model
def test_full_fine_tuning_update_is_low_rank(real_model):
    """Chapter 4 §6: a real update's energy sits in far fewer directions than a random matrix's."""
    import torch

    from course_utils.lora import effective_rank, singular_values

    model, tok = real_model
    tuned = pm.METHODS["full fine-tuning"].build(model, tok)
    data = sft.build_dataset(tok, load_pairs("sentiment", limit=32), 64)
    sft.train(tuned, data, sft.TrainConfig(steps=4, batch_size=4, lr=5e-5, plot=None, progress=False))
    i = len(model.model.layers) // 2
    delta = (tuned.model.layers[i].self_attn.q_proj.weight - model.model.layers[i].self_attn.q_proj.weight).detach()
    noise = torch.randn(delta.shape, generator=torch.Generator().manual_seed(0))
    assert effective_rank(singular_values(delta)) < effective_rank(singular_values(noise)) / 4
