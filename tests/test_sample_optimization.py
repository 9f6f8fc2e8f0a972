"""Sample-level optimisation: per-example losses, hard-example weights, weights in the loss, augmentation."""

import pytest
import torch

from course_utils import sample_optimization as so
from course_utils import sft
from course_utils.data import Example
from course_utils.models import tiny_llama


def _data(n=10):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": ids, "labels": [-100] * 3 + ids[3:], "weight": 1.0}
            for ids in (torch.randint(1, 250, (6 + i % 4,), generator=g).tolist() for i in range(n))]


def test_example_losses_match_the_engine_one_by_one():
    m, data = tiny_llama(), _data()
    losses = so.example_losses(m, data, batch_size=4, pad_id=0)
    assert losses.shape == (10,)
    for i in (0, 7):
        assert losses[i].item() == pytest.approx(sft.evaluate_loss(m, [data[i]], pad_id=0), rel=1e-5)
    with pytest.raises(ValueError, match="No examples"):
        so.example_losses(m, [])


def test_hard_example_weights():
    w = so.hard_example_weights(torch.tensor([0.1, 2.0, 0.3, 5.0]), top_fraction=0.5, boost=3.0)
    assert w == pytest.approx([0.5, 1.5, 0.5, 1.5]) and sum(w) == pytest.approx(4)
    with pytest.raises(ValueError, match="top_fraction"):
        so.hard_example_weights(torch.ones(3), top_fraction=0)
    with pytest.raises(ValueError, match="boost"):
        so.hard_example_weights(torch.ones(3), boost=0.5)


def test_weights_reach_the_loss():
    m, data = tiny_llama(), _data(4)
    batch = sft.SFTCollator(0)(so.with_weights(data, [0.0, 0.0, 0.0, 2.0]))
    s, _ = sft.token_loss_sum(m, batch)
    only = sft.SFTCollator(0)([data[3]])
    s3, _ = sft.token_loss_sum(m, only)
    assert s.item() == pytest.approx(2 * s3.item(), rel=1e-4)
    with pytest.raises(ValueError, match="one weight per example"):
        so.with_weights(data, [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        so.with_weights(data, [1.0, -1.0, 1.0, 1.0])


def test_augment_pairs_keeps_labels_and_drops_unchanged():
    ex = [Example("I loved it.", "positive"), Example("It broke.", "negative")]
    out = so.augment_pairs(ex, ["I really enjoyed it.", "It broke."])
    assert out[:2] == ex and out[2] == Example("I really enjoyed it.", "positive") and len(out) == 3
    with pytest.raises(ValueError, match="paraphrases"):
        so.augment_pairs(ex, ["x"])


@pytest.mark.model
def test_paraphrase_with_the_real_model(real_model):
    model, tok = real_model
    out = so.paraphrase(model, tok, ["The train was late again this morning."], max_new_tokens=24)
    assert len(out) == 1 and out[0]


def test_compare_sample_strategies_on_a_tiny_model():
    from transformers import AutoTokenizer

    from course_utils import models
    from course_utils.config import DEFAULT_MODEL
    from course_utils.data import load_sentiment

    tok = models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.ensure_cached(DEFAULT_MODEL)))
    model = models.tiny_llama(vocab_size=len(tok), max_positions=256).eval()
    train, dev = load_sentiment("train", limit=6), load_sentiment("dev", limit=6)
    rows = so.compare_sample_strategies(model, tok, train, dev, steps=2, batch_size=2, progress=False)
    assert [r["strategy"] for r in rows] == ["no fine-tuning", "plain", "augmented", "hard-example mining",
                                             "label weights"]
    assert all(0 <= r["dev accuracy"] <= 1 for r in rows) and rows[2]["examples"] >= 6
