"""Position encodings from scratch vs the reference implementations (BLOOM's ALiBi, Llama's rotary embedding)."""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from course_utils import positions as P


def test_alibi_slopes_power_of_two_is_the_seed_formula():
    # seed 000 §5.3: {1/a, 1/a^2, ..., 1/256} with a^num_heads = 256
    s = P.alibi_slopes(8)
    assert torch.allclose(s, torch.tensor([2.0 ** -(h + 1) for h in range(8)]))
    assert s[-1].item() == pytest.approx(1 / 256)
    assert torch.allclose(P.alibi_slopes(16), torch.tensor([2 ** (-(h + 1) / 2) for h in range(16)]))


def test_alibi_slopes_twelve_heads_append():
    s = P.alibi_slopes(12)
    assert torch.allclose(s[:8], P.alibi_slopes(8))
    assert torch.allclose(s[8:], torch.tensor([0.7071, 0.3536, 0.1768, 0.0884]), atol=1e-4)


@pytest.mark.parametrize("heads", [1, 3, 4, 6, 8, 12, 16, 20])
def test_alibi_slopes_match_bloom(heads):
    mask = torch.ones(1, 5)
    bloom = build_alibi_tensor(mask, heads, torch.float32)  # [heads, 1, 5] = slope * position
    assert torch.allclose(bloom[:, 0, 1], P.alibi_slopes(heads), atol=1e-6)


def test_alibi_bias_values_and_causal_mask():
    b = P.alibi_bias(2, 4)
    m = P.alibi_slopes(2)
    assert b.shape == (2, 4, 4)
    assert b[0, 3, 0].item() == pytest.approx(-3 * m[0].item())  # -m (i - j)
    assert torch.all(b[:, range(4), range(4)] == 0)
    assert torch.isinf(b[0, 0, 1]) and b[0, 0, 1] < 0
    sym = P.alibi_bias(2, 4, causal=False)
    assert sym[1, 0, 3].item() == sym[1, 3, 0].item() == pytest.approx(-3 * m[1].item())


def test_alibi_bias_equals_bloom_after_softmax():
    # BLOOM adds m * j (same row for every query); under a causal mask the softmax is the same.
    heads, T = 4, 6
    scores = torch.randn(heads, T, T)
    ours = torch.softmax(scores + P.alibi_bias(heads, T), -1)
    bloom = build_alibi_tensor(torch.ones(1, T), heads, torch.float32)  # [heads, 1, T]
    causal = torch.full((T, T), float("-inf")).triu(1)
    theirs = torch.softmax(scores + bloom + causal, -1)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_alibi_bias_with_cache_uses_last_positions():
    full = P.alibi_bias(4, 7)
    assert torch.equal(P.alibi_bias(4, 2, 7), full[:, 5:])


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_alibi_rejects_bad_heads(bad):
    with pytest.raises(ValueError, match="positive integer"):
        P.alibi_slopes(bad)


def test_alibi_bias_rejects_bad_lengths():
    with pytest.raises(ValueError, match="q_len"):
        P.alibi_bias(4, 5, 3)


def test_sinusoidal_positions():
    pe = P.sinusoidal_positions(10, 8)
    assert pe.shape == (10, 8)
    assert torch.allclose(pe[0, 0::2], torch.zeros(4)) and torch.allclose(pe[0, 1::2], torch.ones(4))
    assert pe[3, 0].item() == pytest.approx(math.sin(3))
    with pytest.raises(ValueError, match="even"):
        P.sinusoidal_positions(4, 7)


def _llama_rotary(head_dim, base, rope_type="default", factor=None):
    params = {"rope_type": rope_type, "rope_theta": base}
    if factor:
        params["factor"] = factor
    cfg = LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
                      max_position_embeddings=64, rope_parameters=params)
    return LlamaRotaryEmbedding(cfg)


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_apply_rope_matches_llama(scale):
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 10, 16), torch.randn(2, 3, 10, 16)
    pos = torch.arange(10).expand(2, 10)
    rot = _llama_rotary(16, 10000.0, "linear" if scale > 1 else "default", scale if scale > 1 else None)
    cos, sin = rot(q, pos)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    assert torch.allclose(P.apply_rope(q, pos, scale=scale), q_ref, atol=1e-5)
    assert torch.allclose(P.apply_rope(k, scale=scale), k_ref, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(16), torch.randn(16)

    def score(m, n):
        qm = P.apply_rope(q.view(1, 16), torch.tensor([m]))
        kn = P.apply_rope(k.view(1, 16), torch.tensor([n]))
        return (qm * kn).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)


def test_interpolation_is_dividing_positions():
    x = torch.randn(1, 8, 16)
    assert torch.allclose(P.apply_rope(x, torch.arange(0, 32, 4), scale=4.0), P.apply_rope(x), atol=1e-5)


def test_rope_rejects_odd_head_dim_and_wrong_positions():
    with pytest.raises(ValueError, match="even"):
        P.apply_rope(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="positions"):
        P.apply_rope(torch.randn(2, 5, 8), torch.arange(4))
    with pytest.raises(ValueError, match="scale"):
        P.rope_inv_freq(8, scale=0)


def test_ntk_base_and_wavelengths():
    d, s = 64, 4.0
    b = P.ntk_base(10000.0, s, d)
    assert b == pytest.approx(10000.0 * s ** (d / (d - 2)))
    f0, f1 = P.rope_inv_freq(d), P.rope_inv_freq(d, b)
    assert f1[0].item() == pytest.approx(f0[0].item())  # fastest pair kept
    assert f1[-1].item() == pytest.approx(f0[-1].item() / s, rel=1e-4)  # slowest pair interpolated by s
    assert P.rope_wavelengths(d)[0].item() == pytest.approx(2 * math.pi)
    with pytest.raises(ValueError, match="head_dim > 2"):
        P.ntk_base(10000.0, 2.0, 2)


def test_rope_parameters_dicts():
    assert P.rope_parameters("linear", 4, base=1e4) == {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4}
    ntk = P.rope_parameters("ntk", 4, base=1e4, head_dim=64)
    assert ntk["rope_type"] == "default" and ntk["rope_theta"] == pytest.approx(P.ntk_base(1e4, 4, 64))
    with pytest.raises(ValueError, match="rope_type"):
        P.rope_parameters("cubic", 2, base=1e4)
    with pytest.raises(ValueError, match=">= 1"):
        P.rope_parameters("linear", 0.5, base=1e4)


def test_set_rope_scaling_on_a_llama():
    from course_utils.models import tiny_llama

    model = tiny_llama(max_positions=32)
    ids = torch.randint(3, 200, (1, 20))
    before = model(ids).logits
    P.set_rope_scaling(model, "linear", 4.0)
    assert model.config.rope_parameters["rope_type"] == "linear"
    assert not torch.allclose(model(ids).logits, before, atol=1e-4)
    P.set_rope_scaling(model, "dynamic", 4.0)  # dynamic changes nothing inside the window
    assert torch.allclose(model(ids).logits, before, atol=1e-5)
    P.set_rope_scaling(model)
    assert torch.allclose(model(ids).logits, before, atol=1e-6)
