import copy

import pytest
import torch
from torch import nn

from course_utils import adapters
from course_utils.lora import count_parameters, inject_lora

IDS = torch.randint(3, 256, (4, 12), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def adapted(tiny):
    return adapters.inject_adapters(copy.deepcopy(tiny), bottleneck=16)


def test_bottleneck_adapter_is_identity_at_init():
    adapter = adapters.BottleneckAdapter(32, bottleneck=4)
    h = torch.randn(2, 5, 32)
    assert torch.equal(adapter(h), h)
    assert adapter.down.weight.shape == (4, 32) and adapter.up.weight.shape == (32, 4)
    nn.init.normal_(adapter.up.weight)
    assert not torch.equal(adapter(h), h)


def test_adapter_linear_wraps_a_bf16_base_with_float32_adapter():
    base = nn.Linear(8, 6, dtype=torch.bfloat16)
    layer = adapters.AdapterLinear(base, bottleneck=2)
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    out = layer(x)  # identity at initialisation, in the base's dtype
    assert torch.equal(out, base(x)) and out.dtype == torch.bfloat16
    assert layer.adapter.up.weight.dtype == layer.adapter.down.weight.dtype == torch.float32  # as peft
    assert not base.weight.requires_grad and layer.adapter.down.weight.requires_grad


def test_inject_is_identity_and_freezes_the_base(tiny, adapted):
    assert torch.equal(adapted(input_ids=IDS).logits, tiny(input_ids=IDS).logits)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(".adapter." in n for n in trainable)


def test_trainable_count_two_adapters_per_layer(adapted):
    # tiny: 2 layers, hidden 64, bottleneck 16: each adapter 2*64*16 + 16 + 64 = 2128; 4 adapters = 8512.
    assert count_parameters(adapted)["trainable"] == 2 * 2 * (2 * 64 * 16 + 16 + 64) == 8512
    assert adapters.adapter_parameter_count(64, 16, num_adapters=4) == 8512


def test_adapters_add_depth(tiny, adapted):
    def linears(layer):
        return sum(isinstance(m, nn.Linear) for m in layer.modules())

    # a Llama layer has 7 Linears; each of the 2 adapters adds down + up *in series* with the sublayer
    assert linears(tiny.model.layers[0]) == 7 and linears(adapted.model.layers[0]) == 11
    assert len(list(adapted.model.layers[0].modules())) > len(list(tiny.model.layers[0].modules()))


def test_a_few_steps_reduce_the_loss(adapted):
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    adapted.train()
    losses = []
    for _ in range(5):
        loss = adapted(input_ids=IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_inputs_raise(tiny):
    with pytest.raises(ValueError, match="Unknown activation 'swish'.*gelu"):
        adapters.BottleneckAdapter(8, 2, activation="swish")
    with pytest.raises(ValueError, match="bottleneck must be >= 1"):
        adapters.BottleneckAdapter(8, 0)
    with pytest.raises(ValueError, match="Linear names in this model.*o_proj"):
        adapters.inject_adapters(copy.deepcopy(tiny), target_modules=("attn_out",))
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        adapters.AdapterLinear(nn.ReLU())


def test_lora_does_not_nest_inside_adapters(adapted):
    both = inject_lora(adapted, target_modules="all-linear", r=2, alpha=2)
    # q, k, v, gate, up per layer; o_proj / down_proj (and the adapters' own Linears) sit inside AdapterLinear
    assert sum(type(m).__name__ == "LoRALinear" for m in both.modules()) == 2 * 5
