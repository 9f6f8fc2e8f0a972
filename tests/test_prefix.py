import copy
import warnings

import pytest
import torch

from course_utils import prefix
from course_utils.lora import count_parameters
from course_utils.models import ContextLengthError

IDS = torch.randint(3, 256, (2, 7), generator=torch.Generator().manual_seed(0))


def byte_tokenizer(text):
    """A stand-in tokenizer for the tiny model (vocabulary 256): one id per UTF-8 byte."""
    return {"input_ids": list(text.encode())}


def record_positions(peft_model):
    """Collect the position_ids the base model's rotary embedding receives."""
    seen = []

    def hook(module, args, kwargs):
        seen.append(kwargs["position_ids"] if "position_ids" in kwargs else args[1])

    peft_model.get_base_model().model.rotary_emb.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def train_steps(model, steps=4, lr=1e-1):
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=IDS, labels=IDS).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_prefix_size_follows_the_kv_heads_not_the_hidden_size(tiny):
    pm = prefix.prefix_tuning(copy.deepcopy(tiny), num_virtual_tokens=20)
    # tiny: 2 layers, hidden 64, 4 query heads but 2 KV heads of 16 -> keys/values are 32 wide, not 64.
    assert pm.peft_config["default"].token_dim == 32 and pm.peft_config["default"].num_attention_heads == 2
    assert count_parameters(pm)["trainable"] == 20 * 2 * 2 * 32 == prefix.prefix_parameter_count(tiny.config, 20)
    assert prefix.prefix_parameter_count(tiny.config, 20) == 20 * 2 * 2 * 64 // 2  # half the no-GQA size


def test_prefix_projection_adds_an_mlp(tiny):
    pm = prefix.prefix_tuning(copy.deepcopy(tiny), num_virtual_tokens=20, prefix_projection=True)
    # Embedding(20, 32) -> Linear(32, 32) -> Tanh -> Linear(32, 2 layers * 2 * 32)
    assert count_parameters(pm)["trainable"] == 20 * 32 + (32 * 32 + 32) + (32 * 128 + 128)


def test_prefix_logits_keep_the_input_length_and_positions_start_at_n(tiny):
    pm = prefix.prefix_tuning(copy.deepcopy(tiny), num_virtual_tokens=5)
    seen = record_positions(pm)
    assert pm(input_ids=IDS, attention_mask=torch.ones_like(IDS)).logits.shape == (2, 7, 256)
    # The prefix is a 5-token KV cache, so the real tokens are positions 5..11: prefix tuning uses up context.
    assert seen[-1].tolist() == [list(range(5, 12))]
    pm(input_ids=IDS, position_ids=torch.arange(7)[None])
    assert seen[-1].tolist() == [list(range(5, 12))]  # peft shifts explicit position_ids by n as well


def test_soft_prompt_logits_include_virtual_positions(tiny):
    sp = prefix.soft_prompt(copy.deepcopy(tiny), num_virtual_tokens=8)
    seen = record_positions(sp)
    out = sp(input_ids=IDS, labels=IDS)
    assert out.logits.shape == (2, 8 + 7, 256) and seen[-1].tolist() == [list(range(15))]
    assert prefix.strip_virtual_tokens(out.logits, 8).shape == (2, 7, 256)
    assert count_parameters(sp)["trainable"] == 8 * 64
    with pytest.raises(ValueError, match="Cannot strip 7 virtual tokens from 7"):
        prefix.strip_virtual_tokens(torch.zeros(2, 7, 256), 7)
    with pytest.raises(ValueError, match="shape"):
        prefix.strip_virtual_tokens(torch.zeros(7, 256), 1)


def test_remaining_context_arithmetic(tiny):
    assert prefix.remaining_context(tiny, 20) == 128 - 20
    assert prefix.remaining_context(tiny, 0) == 128
    with pytest.raises(ValueError, match="leave no room"):
        prefix.remaining_context(tiny, 128)
    with pytest.raises(ValueError, match=">= 0"):
        prefix.remaining_context(tiny, -1)


@pytest.mark.parametrize("wrap", [prefix.prefix_tuning, prefix.soft_prompt])
def test_input_plus_virtual_tokens_must_fit(tiny, wrap):
    pm = wrap(copy.deepcopy(tiny), num_virtual_tokens=20)
    assert prefix.remaining_context(pm, 20) == 108
    with torch.no_grad():
        pm(input_ids=torch.randint(3, 256, (1, 108)))
        with pytest.raises(ContextLengthError, match="109 tokens plus 20 virtual tokens.*= 108 tokens"):
            pm(input_ids=torch.randint(3, 256, (1, 109)))


@pytest.mark.parametrize("wrap", [prefix.prefix_tuning, prefix.soft_prompt])
def test_training_changes_only_the_virtual_tokens(tiny, wrap):
    pm = wrap(copy.deepcopy(tiny), num_virtual_tokens=4)
    before = {n: p.clone() for n, p in pm.get_base_model().named_parameters()}
    losses = train_steps(pm)
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, before[n]) for n, p in pm.get_base_model().named_parameters())


def test_prefix_refuses_gradient_checkpointing(tiny):
    model = copy.deepcopy(tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5.23 renames it activation checkpointing
        model.gradient_checkpointing_enable()
        with pytest.raises(ValueError, match="gradient checkpointing.*gradient_checkpointing_disable"):
            prefix.prefix_tuning(model)
        model.gradient_checkpointing_disable()
        pm = prefix.prefix_tuning(model, num_virtual_tokens=4)
        pm.get_base_model().gradient_checkpointing_enable()  # switched on after wrapping
    pm.train()
    # Without the guard transformers would drop the prefix cache and fail on a mask shape mismatch.
    with pytest.raises(ValueError, match="does not work with gradient checkpointing"):
        pm(input_ids=IDS, labels=IDS)
    pm.eval()
    assert pm(input_ids=IDS).logits.shape == (2, 7, 256)  # checkpointing only acts in training


def test_soft_prompt_text_init_uses_the_text_embeddings(tiny):
    sp = prefix.soft_prompt(copy.deepcopy(tiny), num_virtual_tokens=5, init_text="abc", tokenizer=byte_tokenizer)
    ids = torch.tensor(list(b"abcab"))  # repeated, then cut to 5 (like peft's TEXT init)
    assert torch.equal(sp.prompt_encoder["default"].embedding.weight, tiny.model.embed_tokens.weight[ids])
    with pytest.raises(ValueError, match="needs the tokenizer"):
        prefix.soft_prompt(copy.deepcopy(tiny), init_text="abc")
    with pytest.raises(ValueError, match="id 999.*256 entries"):
        prefix.soft_prompt(copy.deepcopy(tiny), init_text="x", tokenizer=lambda t: {"input_ids": [999]})
    with pytest.raises(ValueError, match="num_virtual_tokens must be an integer in \\[1, 128\\)"):
        prefix.prefix_tuning(copy.deepcopy(tiny), num_virtual_tokens=0)


@pytest.mark.model
def test_real_model_sizes_and_text_init_match_peft(real_model):
    from peft import PromptTuningConfig, get_peft_model

    model, tok = real_model
    pm = prefix.prefix_tuning(copy.deepcopy(model), num_virtual_tokens=20)
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 -> 20 * 30 * 2 * 192 = 230,400 (not 20 * 30 * 2 * 576).
    assert count_parameters(pm)["trainable"] == 230_400 == prefix.prefix_parameter_count(model.config, 20)
    assert prefix.remaining_context(pm, 20) == 8192 - 20
    text = "Classify the sentiment of this review:"
    ours = prefix.soft_prompt(copy.deepcopy(model), 8, init_text=text, tokenizer=tok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # peft's own TEXT init reloads the tokenizer from a path: the course cache is a local one, so it works here.
        theirs = get_peft_model(copy.deepcopy(model), PromptTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=8, prompt_tuning_init="TEXT", prompt_tuning_init_text=text,
            tokenizer_name_or_path=tok.name_or_path))
    table = "default"
    assert torch.equal(ours.prompt_encoder[table].embedding.weight, theirs.prompt_encoder[table].embedding.weight)
    ids = tok("Great film.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert ours(input_ids=ids).logits.shape == (1, 8 + ids.shape[1], model.config.vocab_size)


def test_prefix_from_text_equals_reading_the_text_first(tiny):
    """Li & Liang's init: at step 0 the prefix acts exactly like the text's tokens before the input."""
    text_ids, query = [5, 9, 17, 33, 4, 8], torch.tensor([[40, 41, 42]])
    m = prefix.prefix_tuning(copy.deepcopy(tiny), 6, init_text="x", tokenizer=lambda _: {"input_ids": text_ids})
    with torch.no_grad():
        ours = m(input_ids=query).logits[0, -1]
        ref = tiny(input_ids=torch.cat([torch.tensor([text_ids]), query], 1)).logits[0, -1]
    assert torch.allclose(ours, ref, atol=1e-5)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        prefix.prefix_tuning(copy.deepcopy(tiny), 4, init_text="x")
    with pytest.raises(ValueError, match="prefix_projection=False"):
        prefix.prefix_tuning(copy.deepcopy(tiny), 4, prefix_projection=True, init_text="x",
                             tokenizer=lambda _: {"input_ids": text_ids})
