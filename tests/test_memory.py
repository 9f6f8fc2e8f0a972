import copy
import warnings

import pytest
import torch

from course_utils import memory as mem
from course_utils.models import tiny_llama

LLAMA2_7B = mem.MODEL_SHAPES["Llama-2-7B"]
SMOL = mem.MODEL_SHAPES["SmolLM2-135M"]


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP barriers make them 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lora(model, targets=("q_proj", "v_proj")):
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft reads a renamed transformers property
        return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))


# --- the arithmetic ------------------------------------------------------------------------------------------

def test_sixteen_bytes_per_param_mixed_precision_and_fp32():
    mixed = mem.bytes_per_param()
    assert mixed == {"weights": 2, "gradients": 2, "master copy": 4, "optimizer states": 8}
    fp32 = mem.bytes_per_param(weight_bytes=4, mixed_precision=False)
    assert fp32 == {"weights": 4, "gradients": 4, "master copy": 0, "optimizer states": 8}
    assert sum(mixed.values()) == sum(fp32.values()) == 16
    assert sum(mem.bytes_per_param(optimizer="sgd").values()) == 8  # master copy stays, no m and v


def test_seven_billion_full_is_112_gb_before_activations():
    est = mem.estimate_finetune_memory(7_000_000_000)
    assert est.total == 112 * 10**9 and est.activations == 0 and "not estimated" in est.note
    assert mem.estimate_finetune_memory(7_500_000_000).total == 120 * 10**9
    fp32 = mem.estimate_finetune_memory(7_000_000_000, weight_bytes=4, mixed_precision=False)
    assert (fp32.weights, fp32.gradients, fp32.optimizer) == (28e9, 28e9, 56e9)


def test_seven_billion_lora_is_about_14_gb_plus_activations():
    n = mem.llama_param_count(**LLAMA2_7B)
    assert abs(n - 6.74e9) < 0.01e9
    est = mem.estimate_finetune_memory(7_000_000_000, mode="lora", **LLAMA2_7B)
    assert est.gradients == 4_194_304 * 2  # r=8 on q and v: 32 layers x 2 x 8 x (4096 + 4096)
    assert 14.0e9 < est.weights + est.gradients + est.optimizer < 14.1e9  # 14 GB + 64 MB
    assert est.activations > 0 and est.total == est.weights + est.gradients + est.optimizer + est.activations


def test_lora_far_below_full_and_qlora_below_lora():
    for model in mem.MODEL_SHAPES:
        by_mode = {r["mode"]: r for r in mem.memory_table([model])}
        assert by_mode["lora"]["peak"] < 0.5 * by_mode["full"]["peak"]
        assert by_mode["qlora"]["weights"] < 0.5 * by_mode["lora"]["weights"]
        assert by_mode["qlora"]["peak"] < by_mode["lora"]["peak"]


def test_qlora_weights_follow_the_paper():
    assert mem.QUANT_CONST_BITS[True] == pytest.approx(0.127, abs=1e-3)
    assert mem.QUANT_CONST_BITS[False] == 0.5
    est = mem.estimate_finetune_memory(mem.llama_param_count(**LLAMA2_7B), mode="qlora", **LLAMA2_7B)
    assert 3.5e9 < est.weights < 4.0e9
    plain = mem.estimate_finetune_memory(mem.llama_param_count(**LLAMA2_7B), mode="qlora", double_quant=False,
                                         **LLAMA2_7B)
    assert plain.weights > est.weights


def test_gradient_checkpointing_reduces_activations():
    kw = {"batch_size": 8, "seq_len": 1024, **LLAMA2_7B}
    for mode in mem.MODES:
        with_gc = mem.estimate_finetune_memory(7e9, mode=mode, gradient_checkpointing=True, **kw)
        without = mem.estimate_finetune_memory(7e9, mode=mode, **kw)
        assert with_gc.activations < 0.25 * without.activations


def test_activations_scale_with_tokens_and_eager_pays_for_scores():
    kw = {k: v for k, v in SMOL.items() if k != "tie_embeddings"}
    a1 = mem.activation_memory(1, 256, **kw)
    assert mem.activation_memory(2, 256, **kw) == 2 * a1
    extra = [mem.activation_memory(1, s, attn_implementation="eager", **kw) - mem.activation_memory(1, s, **kw)
             for s in (256, 512)]
    assert extra[1] > 3 * extra[0]  # the n·s·s attention probabilities grow quadratically
    assert mem.activation_memory(1, 256, frozen_base=True, **kw) < a1


def test_estimate_str_and_gib():
    est = mem.estimate_finetune_memory(1e9, batch_size=2, seq_len=128, **SMOL)
    text = str(est)
    assert "total" in text and "peak" in text and "GiB" in text
    g = est.as_gib()
    assert g["total"] == pytest.approx(est.total / 2**30)
    assert est.peak == est.weights + est.optimizer + max(est.activations, est.gradients + est.scratch)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "prefix"}, "mode"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"batch_size": -1}, "batch_size"),
    ({"seq_len": 0}, "seq_len"),
    ({"hidden_size": 64}, "missing"),
    ({"trainable_params": 2 * 10**9}, "trainable_params"),
    ({"mode": "lora"}, "trainable_params"),
    ({"optimizer_impl": "magic"}, "optimizer_impl"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mem.estimate_finetune_memory(10**9, **kwargs)


def test_more_bad_input():
    with pytest.raises(ValueError, match="n_params"):
        mem.estimate_finetune_memory(-5)
    with pytest.raises(ValueError, match="LoRA target"):
        mem.estimate_finetune_memory(10**9, mode="lora", lora_targets=("qkv",), **SMOL)
    dims = {k: v for k, v in SMOL.items() if k != "tie_embeddings"}
    with pytest.raises(ValueError, match="attn_implementation"):
        mem.activation_memory(1, 8, attn_implementation="fast", **dims)
    with pytest.raises(ValueError, match="hidden_size"):
        mem.activation_memory(1, 8, **{**dims, "hidden_size": 0})
    with pytest.raises(ValueError, match="optimizer"):
        mem.bytes_per_param(optimizer="lion")


def test_memory_table_rows_text_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    rows = mem.memory_table()
    assert [(r["model"], r["mode"]) for r in rows][:3] == [("SmolLM2-135M", m) for m in mem.MODES]
    assert len(rows) == 12 and rows[0]["params_B"] == 0.135
    assert rows[-1]["model"] == "Llama-2-70B" and rows[-1]["params_B"] == pytest.approx(69.0, abs=0.1)
    text = mem.format_memory_table(rows)
    assert "Llama-2-7B" in text and len(text.splitlines()) == 14
    fig = mem.plot_memory_table(rows)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="Unknown model"):
        mem.memory_table(["GPT-3"])


def test_param_count_matches_transformers(tiny):
    c = tiny.config
    n = mem.llama_param_count(c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.num_attention_heads,
                              c.vocab_size, c.num_key_value_heads)
    assert n == sum(p.numel() for p in tiny.parameters())


# --- measuring -----------------------------------------------------------------------------------------------

def test_measure_peak_memory_known_allocation():
    kept = []

    def fn():
        kept.append(torch.ones(10_000_000, dtype=torch.uint8))  # survives fn: counted
        big = torch.empty(100_000_000, dtype=torch.uint8)
        big.fill_(1)
        del big
        return "done"

    result, peak = mem.measure_peak_memory(fn, "cpu")
    assert result == "done"
    assert abs(peak - 110_000_000) < 0.03 * 110_000_000
    with pytest.raises(ValueError, match="device='cpu'"):
        mem.measure_peak_memory(lambda: None, "meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measure_peak_memory_known_allocation_cuda():
    kept = []

    def fn():
        kept.append(torch.ones(10_000_000, dtype=torch.uint8, device="cuda"))
        big = torch.empty(100_000_000, dtype=torch.uint8, device="cuda")
        del big

    _, peak = mem.measure_peak_memory(fn, "cuda")
    assert abs(peak - 110_000_000) < 0.03 * 110_000_000


def test_estimate_from_model_reads_the_model(tiny):
    est = mem.estimate_from_model(tiny, batch_size=2, seq_len=16)
    n = sum(p.numel() for p in tiny.parameters())
    assert est.weights == 4 * n and est.gradients == 4 * n and est.optimizer == 8 * n  # fp32: 4 + 4 + 8
    assert est.activations == mem.activation_memory(2, 16, hidden_size=64, num_layers=2, intermediate_size=128,
                                                    num_heads=4, num_kv_heads=2, vocab_size=256, activation_bytes=4)
    peft_model = lora(tiny_llama())
    est = mem.estimate_from_model(peft_model, batch_size=2, seq_len=16)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert est.gradients == 4 * trainable and est.optimizer == 8 * trainable
    everywhere = lora(tiny_llama(), "all-linear")  # adapters save their inputs: more activations
    assert mem.estimate_from_model(everywhere, batch_size=2, seq_len=16).activations > est.activations
    assert mem.estimate_from_model(tiny, batch_size=2, seq_len=16, weight_bytes=2).weights == 2 * n  # override


def test_measure_training_step_rejects_a_frozen_model():
    model = tiny_llama().requires_grad_(False)
    with pytest.raises(ValueError, match="requires grad"):
        mem.measure_training_step(model, 2, 8)


@pytest.mark.parametrize("mode, checkpointing, attention", [
    ("full", False, "sdpa"), ("full", True, "sdpa"), ("lora", False, "sdpa"), ("lora", True, "sdpa"),
    ("full", False, "eager"), ("lora", True, "eager"),
])
def test_estimate_within_20_percent_of_measured_tiny(mode, checkpointing, attention, one_thread):
    model = tiny_llama(vocab_size=512, hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2)
    model.set_attn_implementation(attention)
    model = lora(model) if mode == "lora" else model
    if checkpointing:
        model.activation_checkpointing_enable()
    before, was_training = [p.detach().clone() for p in model.parameters()], model.training
    measured = mem.measure_training_step(model, batch_size=4, seq_len=64, time_steps=0)
    est = mem.estimate_from_model(model, batch_size=4, seq_len=64)
    assert est.gradients == 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0.8 < est.peak / measured.peak < 1.2, (est, measured)
    assert measured.baseline == pytest.approx(est.weights + est.optimizer, rel=1e-3)  # params, m, v (+ step counts)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # lr=0: weights untouched
    assert model.training == was_training  # mode restored


@pytest.mark.model
def test_estimate_within_20_percent_of_measured_real_model(real_model, one_thread):
    model, _ = real_model
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (576, 30, 49152)
    full = mem.measure_training_step(model, batch_size=2, seq_len=32, time_steps=0)
    est = mem.estimate_from_model(model, batch_size=2, seq_len=32)
    assert 0.8 < est.peak / full.peak < 1.2, (est, full)
    peft_model = lora(copy.deepcopy(model))  # peft edits the model in place; keep the shared one clean
    measured = mem.measure_training_step(peft_model, batch_size=2, seq_len=32, time_steps=0)
    est = mem.estimate_from_model(peft_model, batch_size=2, seq_len=32)
    assert 0.8 < est.peak / measured.peak < 1.2, (est, measured)
    assert measured.peak < 0.4 * full.peak


def test_estimate_reads_the_course_lora_rank_and_targets(tiny):
    import copy

    from course_utils.lora import inject_lora
    from course_utils.memory import estimate_from_model, measure_training_step

    m = inject_lora(copy.deepcopy(tiny), ("q_proj", "k_proj", "v_proj"), r=4, alpha=8)
    est = estimate_from_model(m, batch_size=2, seq_len=32)
    assert est == estimate_from_model(m, batch_size=2, seq_len=32, lora_rank=4,
                                      lora_targets=("q_proj", "k_proj", "v_proj"))
    assert est != estimate_from_model(m, batch_size=2, seq_len=32, lora_rank=8, lora_targets=("q_proj", "v_proj"))
    got = measure_training_step(m, batch_size=2, seq_len=32, time_steps=0)
    assert 0.8 < est.peak / got.peak < 1.2


def test_upcast_master_weights_split_the_same_sixteen_bytes_differently():
    """The course engine stores trainable weights in fp32 (no separate copy): 4 + 4 + 0 + 8 = 16 B/param."""
    up = mem.bytes_per_param(master="upcast")
    assert up == {"weights": 4, "gradients": 4, "master copy": 0, "optimizer states": 8}
    assert sum(up.values()) == sum(mem.bytes_per_param().values()) == 16
    with pytest.raises(ValueError, match="master"):
        mem.bytes_per_param(master="fp32")


def test_estimate_from_a_bf16_lora_model_describes_the_engine():
    from course_utils.lora import inject_lora
    from course_utils.models import tiny_llama

    model = tiny_llama().to(torch.bfloat16)
    inject_lora(model, ("q_proj", "v_proj"), r=4, alpha=8)
    est = mem.estimate_from_model(model, batch_size=2, seq_len=16)
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters()) - lora
    assert est.weights == frozen * 2 + lora * 4 and est.gradients == lora * 4 and est.optimizer == lora * 8


@pytest.mark.model
@pytest.mark.parametrize("name, seq_len", [("smollm2-135m-instruct", 256), ("gemma-3-270m", 448)])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_gpu_profile_fine_tunes_fit_a_t4(name, seq_len, method):
    """The gpu profile's fine-tunes (batch 16; chapter 9's Gemma answers are up to 448 tokens) on a 16 GB T4:
    float32 weights, float16 autocast. train() accumulates micro-batches until the estimate fits 90 % of 15 GiB."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from course_utils import sft
    from course_utils.lora import inject_lora
    from course_utils.models import ensure_cached

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(ensure_cached(name)))
    if method == "lora":
        model.requires_grad_(False)
        inject_lora(model, ("q_proj", "v_proj"), r=8, alpha=16)
    budget = int(0.9 * 15 * 2**30)
    cfg = sft.TrainConfig(steps=1, batch_size=16)
    accum = sft.fit_grad_accum(model, cfg, seq_len, budget)
    micro = 16 // accum
    est = mem.estimate_from_model(model, batch_size=micro, seq_len=seq_len, weight_bytes=4, mixed_precision=True,
                                  activation_bytes=2)
    assert est.peak <= budget and micro >= 2, f"{name} {method}: micro-batch {micro}, {est.peak / 2**30:.1f} GiB"


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_bf16_estimate_matches_the_engine_step_it_describes(mode):
    """A bf16 model trains as a GPU runs it (fp32 master weights, bf16 autocast): estimate within 20 % of it."""
    from course_utils.lora import inject_lora

    m = tiny_llama(vocab_size=2048, hidden_size=128).to(torch.bfloat16)
    if mode == "lora":
        inject_lora(m, ("q_proj", "v_proj"), r=8, alpha=16)
    else:
        m.requires_grad_(True)
    est = mem.estimate_from_model(m, batch_size=4, seq_len=64)
    got = mem.measure_training_step(m, batch_size=4, seq_len=64)
    assert 0.8 < est.peak / got.peak < 1.2, est.peak / got.peak
    assert all(p.dtype == torch.float32 for p in m.parameters() if p.requires_grad)


def test_t4_path_estimate_counts_the_16_bit_weight_copies(monkeypatch):
    """float32 weights under float16 autocast (a T4): autograd keeps each matmul's 16-bit weight copy."""
    from course_utils.lora import inject_lora

    monkeypatch.setenv("COURSE_AUTOCAST", "float16")
    m = inject_lora(tiny_llama(vocab_size=4096, hidden_size=128), ("q_proj", "v_proj"), r=8, alpha=16)
    est = mem.estimate_from_model(m, batch_size=2, seq_len=32)
    got = mem.measure_training_step(m, batch_size=2, seq_len=32)
    assert 0.8 < est.peak / got.peak < 1.2, est.peak / got.peak
