import copy
import math
import warnings

import pytest
import torch
from torch import nn

from course_utils import lora

IDS = torch.randint(3, 256, (2, 9), generator=torch.Generator().manual_seed(0))


def peft_lora(model, targets=("q_proj", "v_proj"), r=8, alpha=16):
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a deprecated transformers property
        return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0))


def perturb_b(model, std=0.1, seed=1):
    torch.manual_seed(seed)
    for layer in lora.lora_layers(model).values():
        nn.init.normal_(layer.lora_B, std=std)


@pytest.fixture
def injected(tiny):
    return lora.inject_lora(copy.deepcopy(tiny), r=8, alpha=16)


def test_lora_linear_init_scaling_and_no_op():
    base = nn.Linear(12, 6)
    layer = lora.LoRALinear(base, r=4, alpha=8)
    assert layer.lora_A.shape == (4, 12) and layer.lora_B.shape == (6, 4)
    assert layer.scaling == 2.0 and torch.count_nonzero(layer.lora_B) == 0
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(12) + 1e-6  # kaiming_uniform(a=sqrt 5) bound = 1/sqrt(fan_in)
    assert not base.weight.requires_grad and layer.lora_A.requires_grad
    x = torch.randn(3, 12)
    assert torch.equal(layer(x), base(x))
    assert torch.equal(layer.delta_weight(), torch.zeros(6, 12))


def test_gaussian_init_and_float32_factors_on_a_bf16_base():
    torch.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(256, 64, dtype=torch.bfloat16), r=4, alpha=4, init="gaussian")
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float32  # like peft: updates survive rounding
    assert abs(layer.lora_A.std().item() - 0.25) < 0.02  # N(0, 1/r) as peft's "gaussian"
    nn.init.normal_(layer.lora_B, std=0.1)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    out = layer(x)
    assert out.dtype == torch.bfloat16
    expected = layer.base(x).float() + x.float() @ layer.delta_weight().T
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
    merged = layer.merge()
    assert merged.weight.dtype == torch.bfloat16
    torch.testing.assert_close(merged(x).float(), expected, rtol=2e-2, atol=5e-2)


def test_delta_weight_and_merge_match_forward():
    layer = lora.LoRALinear(nn.Linear(10, 7), r=3, alpha=6)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(5, 10)
    expected = layer.base(x) + x @ layer.delta_weight().T
    torch.testing.assert_close(layer(x), expected)
    merged = layer.merge()
    assert type(merged) is nn.Linear and merged is not layer.base
    torch.testing.assert_close(merged(x), layer(x), atol=1e-5, rtol=0)
    assert torch.equal(merged.bias, layer.base.bias)
    assert lora.effective_rank(lora.singular_values(layer.delta_weight()), energy=1.0) == 3  # rank <= r


def test_bad_lora_arguments_raise_clearly():
    with pytest.raises(ValueError, match="rank r must be an integer >= 1"):
        lora.LoRALinear(nn.Linear(4, 4), r=0, alpha=1)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        lora.LoRALinear(nn.Linear(4, 4), r=2, alpha=0)
    with pytest.raises(ValueError, match="dropout"):
        lora.LoRALinear(nn.Linear(4, 4), r=2, alpha=1, dropout=1.0)
    with pytest.raises(ValueError, match="init must be one of"):
        lora.LoRALinear(nn.Linear(4, 4), r=2, alpha=1, init="zeros")
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        lora.LoRALinear(nn.Conv1d(4, 4, 1), r=2, alpha=1)


def test_dropout_is_active_in_train_mode_only():
    layer = lora.LoRALinear(nn.Linear(16, 16), r=4, alpha=4, dropout=0.5)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(8, 16)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    assert not torch.equal(layer(x), layer(x))


def test_inject_is_a_no_op_at_init_and_freezes_the_rest(tiny, injected):
    assert torch.equal(injected(input_ids=IDS).logits, tiny(input_ids=IDS).logits)
    trainable = {n for n, p in injected.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    assert len(lora.lora_layers(injected)) == 4  # q and v in 2 layers
    assert all(p.requires_grad for p in tiny.parameters())  # the session fixture is untouched


def test_parameter_counts_by_hand(tiny, injected):
    # tiny: hidden 64, 4 heads of 16, 2 KV heads -> q_proj 64->64, v_proj 64->32.  r=8 per layer:
    # q: A 8*64 + B 64*8 = 1024;  v: A 8*64 + B 32*8 = 768.  Two layers: 2 * 1792 = 3584.
    base_total = sum(p.numel() for p in tiny.parameters())
    counts = lora.count_parameters(injected)
    assert counts == {"trainable": 3584, "total": base_total + 3584, "percent": 100 * 3584 / (base_total + 3584)}
    assert lora.count_parameters(tiny)["percent"] == 100.0


def test_target_matching_and_errors(tiny):
    names = lora.match_linear_modules(tiny, "all-linear")
    assert len(names) == 14 and not any("lm_head" in n for n in names)  # 7 per layer, the head excluded
    assert lora.match_linear_modules(tiny, "o_proj") == ["model.layers.0.self_attn.o_proj",
                                                         "model.layers.1.self_attn.o_proj"]
    with pytest.raises(ValueError, match=r"matches target_modules=\('query',\).*'k_proj'.*'q_proj'"):
        lora.inject_lora(copy.deepcopy(tiny), target_modules=("query",))
    twice = lora.inject_lora(copy.deepcopy(tiny), target_modules=("q_proj",))
    with pytest.raises(ValueError, match="already wrapped"):
        lora.inject_lora(twice, target_modules=("q_proj",))  # no LoRA inside LoRA
    with pytest.raises(ValueError, match="inject_lora first"):
        lora.merge_lora(copy.deepcopy(tiny))
    with pytest.raises(ValueError, match="no parameters"):
        lora.count_parameters(nn.ReLU())


def test_merge_lora_gives_identical_outputs_and_plain_linears(injected):
    perturb_b(injected)
    before = injected(input_ids=IDS).logits
    merged = lora.merge_lora(copy.deepcopy(injected))
    assert not lora.lora_layers(merged)
    assert type(merged.model.layers[0].self_attn.q_proj) is nn.Linear
    torch.testing.assert_close(merged(input_ids=IDS).logits, before, atol=1e-5, rtol=0)


def test_lora_state_dict_holds_only_a_and_b(injected):
    perturb_b(injected)
    sd = lora.lora_state_dict(injected)
    assert len(sd) == 8 and all(k.endswith((".lora_A", ".lora_B")) for k in sd)
    other = copy.deepcopy(injected)
    perturb_b(other, seed=2)
    _missing, unexpected = other.load_state_dict(sd, strict=False)
    assert not unexpected
    assert torch.equal(other(input_ids=IDS).logits, injected(input_ids=IDS).logits)


def test_copy_to_peft_gives_identical_logits_and_merge(tiny, injected):
    perturb_b(injected)
    peft_model = peft_lora(copy.deepcopy(tiny))
    lora.copy_lora_to_peft(injected, peft_model)
    ours = injected(input_ids=IDS).logits
    torch.testing.assert_close(peft_model(input_ids=IDS).logits, ours, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, tiny(input_ids=IDS).logits, atol=1e-3)  # the update really does something
    theirs = peft_model.merge_and_unload()
    mine = lora.merge_lora(injected)
    sd = theirs.state_dict()
    for k, v in mine.state_dict().items():
        torch.testing.assert_close(v, sd[k], atol=1e-6, rtol=0)


def test_copy_to_peft_mismatches_raise(tiny, injected):
    with pytest.raises(ValueError, match="different modules.*only peft's.*k_proj"):
        lora.copy_lora_to_peft(injected, peft_lora(copy.deepcopy(tiny), targets=("q_proj", "k_proj", "v_proj")))
    with pytest.raises(ValueError, match="use the same r"):
        lora.copy_lora_to_peft(injected, peft_lora(copy.deepcopy(tiny), r=4, alpha=8))
    with pytest.raises(ValueError, match="lora_alpha"):
        lora.copy_lora_to_peft(injected, peft_lora(copy.deepcopy(tiny), alpha=8))
    with pytest.raises(TypeError, match="peft model"):
        lora.copy_lora_to_peft(injected, copy.deepcopy(tiny))


def test_effective_rank_of_a_low_rank_product():
    torch.manual_seed(0)
    delta = torch.randn(40, 3) @ torch.randn(3, 30)
    s = lora.singular_values(delta)
    assert s.shape == (30,) and torch.all(s[:-1] >= s[1:])
    assert lora.effective_rank(s, energy=1.0) == 3
    assert 1 <= lora.effective_rank(s, energy=0.5) <= 3
    assert lora.effective_rank(lora.singular_values(torch.eye(5))) == 5  # 90% of 5 equal values needs all 5
    assert lora.effective_rank(torch.zeros(4)) == 0
    with pytest.raises(ValueError, match="energy"):
        lora.effective_rank(s, energy=0)
    with pytest.raises(ValueError, match="2-D"):
        lora.singular_values(torch.zeros(2, 2, 2))


@pytest.mark.model
def test_real_model_matches_peft(real_model):
    model, tok = real_model
    ids = tok("LoRA keeps the base frozen.", return_tensors="pt")["input_ids"]
    ours = lora.inject_lora(copy.deepcopy(model), r=4, alpha=8)
    perturb_b(ours, std=0.02)
    peft_model = peft_lora(copy.deepcopy(model), r=4, alpha=8)
    lora.copy_lora_to_peft(ours, peft_model)
    with torch.no_grad():
        expected = ours(input_ids=ids).logits
        torch.testing.assert_close(peft_model(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
        # Merging re-rounds W0 + ΔW in float32: ~1e-4 on logits of size ~30, i.e. float32 precision.
        torch.testing.assert_close(lora.merge_lora(ours)(input_ids=ids).logits, expected, atol=1e-4, rtol=0)
    # SmolLM2-135M: 30 layers, q_proj 576->576, v_proj 576->192 (3 KV heads of 64).
    assert lora.count_parameters(peft_model)["trainable"] == 30 * 4 * (576 + 576 + 576 + 192)
