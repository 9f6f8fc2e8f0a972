"""TinyGPT: shapes, each position encoding's defining property, bad input, training on the course engine."""

import math

import pytest
import torch

from course_utils.data.corpus import decode_bytes, encode_bytes, load_corpus
from course_utils.models import ContextLengthError
from course_utils.tinygpt import (
    POSITIONS,
    GPTConfig,
    TinyGPT,
    lm_examples,
    loss_by_position,
    perplexity_by_length,
    train_lm,
)


def tiny(position, **kw):
    return TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position=position, **kw)).eval()


@pytest.mark.parametrize("position", POSITIONS)
def test_forward_shapes_and_loss(position):
    m = tiny(position)
    ids = torch.randint(0, 256, (2, 16))
    out = m(input_ids=ids, labels=ids)
    assert out.logits.shape == (2, 16, 256)
    assert out.loss.item() == pytest.approx(5.545, abs=0.1)  # ~ ln 256 at init


@pytest.mark.parametrize("position", POSITIONS)
def test_causal(position):
    m = tiny(position)
    ids = torch.randint(0, 256, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 256
    assert torch.allclose(m(changed).logits[0, :8], m(ids).logits[0, :8], atol=1e-5)


def test_none_is_permutation_equivariant_over_the_prefix_but_rope_is_not():
    # With no position signal, the last token's output depends on the *set* of earlier tokens only.
    ids = torch.tensor([[5, 9, 17, 33, 65, 100]])
    swapped = torch.tensor([[9, 5, 17, 33, 65, 100]])
    none, rope = tiny("none"), tiny("rope")
    assert torch.allclose(none(ids).logits[0, -1], none(swapped).logits[0, -1], atol=1e-5)
    assert not torch.allclose(rope(ids).logits[0, -1], rope(swapped).logits[0, -1], atol=1e-5)


def test_learned_positions_cannot_go_past_the_table():
    m = tiny("learned")
    with pytest.raises(ContextLengthError, match="cannot extrapolate"):
        m(torch.zeros(1, 17, dtype=torch.long))
    for pos in ("none", "sinusoidal", "rope", "alibi"):
        assert tiny(pos)(torch.zeros(1, 40, dtype=torch.long)).logits.shape[1] == 40


@pytest.mark.parametrize("kw, msg", [({"position": "xpos"}, "Unknown position"),
                                     ({"n_head": 3}, "split evenly"),
                                     ({"n_head": 16, "position": "rope"}, "even head dimension"),
                                     ({"n_head": 0}, "split evenly")])
def test_bad_configs(kw, msg):
    args = {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16, **kw}
    with pytest.raises(ValueError, match=msg):
        TinyGPT(GPTConfig(**args))


def test_set_rope_and_errors():
    m = tiny("rope")
    ids = torch.randint(0, 256, (1, 10))
    before = m(ids).logits
    m.set_rope(scale=2.0)
    assert not torch.allclose(m(ids).logits, before)
    m.set_rope(scale=1.0)
    assert torch.allclose(m(ids).logits, before)
    with pytest.raises(ValueError, match="rope model"):
        tiny("alibi").set_rope(scale=2.0)
    with pytest.raises(ValueError, match="positive"):
        m.set_rope(scale=0)


def test_generate_and_describe():
    m = tiny("alibi")
    out = m.generate(torch.tensor([[72, 105]]), max_new_tokens=5)
    assert out.shape == (1, 7)
    assert out[0, :2].tolist() == [72, 105]  # the prompt is kept, 5 tokens follow
    # counted by hand for n_embd 16, vocab 256, one block: the tied embedding/head once (256 * 16), two
    # LayerNorms (2 * 32), qkv (16 * 48) and proj (16 * 16) without bias, the MLP (16 * 64 + 64 + 64 * 16 + 16),
    # the final LayerNorm (32)
    by_hand = 256 * 16 + 2 * 32 + 16 * 48 + 16 * 16 + (16 * 64 + 64 + 64 * 16 + 16) + 32
    assert m.describe()["parameters"] == by_hand == 7344
    assert m.describe()["position"] == "alibi" and m.describe()["n_embd"] == 16
    assert tiny("learned").num_parameters() == by_hand + 16 * 16  # plus the table of 16 positions


def test_corpus_splits_and_bytes():
    parts = {s: load_corpus(s) for s in ("train", "val", "test")}
    assert len(parts["train"]) > 250_000 and min(len(parts["val"]), len(parts["test"])) > 30_000
    para = parts["val"].split("\n\n")[3]
    assert para not in parts["train"]
    assert decode_bytes(encode_bytes("héllo 位置")) == "héllo 位置"
    with pytest.raises(ValueError, match="split"):
        load_corpus("dev")


def test_corpus_from_a_file(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("a" * 90 + "b" * 5 + "c" * 5)
    assert load_corpus("val", path=str(f)) == "b" * 5


def test_lm_examples_and_errors():
    ids = torch.arange(100)
    ex = lm_examples(ids, 10, 5)
    assert len(ex) == 5 and ex[0]["input_ids"] == ex[0]["labels"]
    assert ex[0]["input_ids"] == list(range(ex[0]["input_ids"][0], ex[0]["input_ids"][0] + 10))
    with pytest.raises(ValueError, match="too few"):
        lm_examples(ids[:5], 10, 1)


def test_training_lowers_loss_and_evaluation_by_length():
    ids = encode_bytes(load_corpus("train")[:20_000])
    m = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=32, position="alibi"))
    result = train_lm(m, ids, seq_len=16, steps=40, batch_size=8, lr=3e-3, progress=False)
    assert result.losses[-1] < result.losses[0] - 1.5
    curve = loss_by_position(m, ids, 32, n_windows=4)
    assert curve.shape == (31,)
    ppl = perplexity_by_length(m, ids, [16, 32], n_tokens=64)
    assert set(ppl) == {16, 32} and all(v > 1 for v in ppl.values())
    learned = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=32, position="learned"))
    learned_ppl = perplexity_by_length(learned, ids, [16, 32], n_tokens=64)
    assert math.isnan(learned_ppl[32]) and learned_ppl[16] > 1  # past its table it cannot run at all
    with pytest.raises(ValueError, match="n_windows"):
        loss_by_position(m, ids[:50], 32, n_windows=4)
    with pytest.raises(ValueError, match="multiple"):
        perplexity_by_length(m, ids, [16, 32], n_tokens=40)
