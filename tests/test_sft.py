"""The fine-tuning engine: masked labels, padding, exact accumulation, resume, bad input, Trainer parity, DDP."""

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from course_utils import sft, trainer
from course_utils.finetune import build_model, load_pairs, main
from course_utils.models import keeps_logits


@pytest.fixture(scope="module")
def tiny_lm():
    """A random tiny Llama with the default model's tokenizer, and the sentiment training set."""
    model, tok = build_model("tiny", "full")
    return model, tok, sft.build_dataset(tok, load_pairs("sentiment"), 64)


def cfg(**kw) -> sft.TrainConfig:
    base = dict(steps=4, batch_size=8, lr=1e-3, plot=None, progress=False)
    return sft.TrainConfig(**{**base, **kw})


def test_labels_mask_the_prompt_and_end_with_eos(tiny_lm):
    _, tok, _ = tiny_lm
    ex = sft.tokenize_pair(tok, "Review: fine\nSentiment:", " positive", 64)
    n_prompt = len(tok("Review: fine\nSentiment:").input_ids)
    assert ex["labels"][:n_prompt] == [sft.IGNORE_INDEX] * n_prompt
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n_prompt:-1]) == " positive"


def test_chat_prompt_uses_the_chat_template(tiny_lm):
    _, tok, _ = tiny_lm
    ex = sft.tokenize_pair(tok, "Hi", "Hello!", 64, chat=True)
    text = tok.decode(ex["input_ids"])
    assert "<|im_start|>user" in text and "<|im_start|>assistant" in text and text.endswith("Hello!<|im_end|>")


def test_overflow_is_truncated_with_a_warning_or_refused(tiny_lm):
    _, tok, _ = tiny_lm
    long = " word" * 50
    with pytest.warns(UserWarning, match="1 of 2 examples .* truncated"):
        data = sft.build_dataset(tok, [("Q:", long), ("Q:", " short")], max_len=16)
    assert len(data[0]["input_ids"]) == 16 and data[0]["truncated"] and not data[1]["truncated"]
    with pytest.raises(ValueError, match="longer than max_len=16.*Raise max_len"):
        sft.build_dataset(tok, [("Q:", long)], max_len=16, on_overflow="error")
    with pytest.raises(ValueError, match="prompt alone"):
        sft.tokenize_pair(tok, "word " * 40, " yes", 16)
    with pytest.raises(ValueError, match="on_overflow must be"):
        sft.tokenize_pair(tok, "Q:", " a", 16, on_overflow="drop")


@pytest.mark.parametrize("pairs,weights,msg", [([], None, "empty"), ([("Q:", "")], None, "Empty response"),
                                              ([("Q:", " a")], [1.0, 2.0], "one weight per example")])
def test_bad_datasets_are_refused(tiny_lm, pairs, weights, msg):
    _, tok, _ = tiny_lm
    with pytest.raises(ValueError, match=msg):
        sft.build_dataset(tok, pairs, 16, weights=weights)


def test_collator_pads_right_with_ignored_labels():
    batch = sft.SFTCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                       {"input_ids": [8], "labels": [8], "weight": 2.0}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["weight"].tolist() == [1.0, 2.0]


def test_token_loss_matches_transformers_labels_loss(tiny_lm):
    model, tok, data = tiny_lm
    batch = sft.SFTCollator(tok.pad_token_id)(data[:4])
    s, n = sft.token_loss_sum(model, batch)
    ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert torch.allclose(s / n, ref, atol=1e-5)


def _full_logits_loss(model, batch):
    """The textbook loss: logits at every position, shifted, -100 ignored, weighted per example."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(),
                                               reduction="none").view_as(labels)
    return (losses * batch["weight"][:, None]).sum()


def test_lm_head_runs_on_target_positions_only(tiny_lm):
    """The LM head sees one row per target token (not batch x length), and the loss and gradients are those of
    the full logits."""
    model, tok, data = tiny_lm
    m = copy.deepcopy(model)
    batch = sft.SFTCollator(tok.pad_token_id)(data[:4])
    batch["weight"] = torch.tensor([1.0, 0.5, 2.0, 1.0])
    rows = []
    hook = m.get_output_embeddings().register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape))
    s, n = sft.token_loss_sum(m, batch)
    hook.remove()
    assert keeps_logits(m) and rows == [torch.Size([int(n), m.config.hidden_size])]
    assert int(n) < batch["input_ids"].numel() / 2  # prompts and padding are most of this batch
    s.backward()
    fast = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    ref = _full_logits_loss(m, batch)
    ref.backward()
    assert torch.allclose(s, ref, rtol=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(fast, m.parameters()))


def test_a_transformers_without_boolean_logits_to_keep_falls_back_to_every_logit(tiny_lm, monkeypatch):
    """Older transformers 5.x slice ``logits_to_keep`` but take no per-row mask: the engine then computes every
    logit, with the same loss."""
    from course_utils import models

    model, tok, data = tiny_lm
    batch = sft.SFTCollator(tok.pad_token_id)(data[:4])
    fast, _ = sft.token_loss_sum(model, batch)
    monkeypatch.setattr(models, "_masks_logits", lambda: False)
    rows = []
    hook = model.get_output_embeddings().register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape))
    slow, _ = sft.token_loss_sum(model, batch)
    hook.remove()
    assert rows[0][:2] == batch["input_ids"].shape and torch.allclose(fast, slow, rtol=1e-5)
    assert keeps_logits(model) and not keeps_logits(model, mask=True)


def test_models_without_logits_to_keep_get_every_logit(tiny_lm):
    """The course's own TinyGPT and peft prompt tuning (extra virtual positions) take the full-logits path; LoRA
    and prefix tuning under peft, and DDP's wrapper, keep the fast one."""
    from peft import LoraConfig, get_peft_model

    from course_utils import prefix, tinygpt

    model, tok, data = tiny_lm
    assert not keeps_logits(tinygpt.TinyGPT(tinygpt.GPTConfig(vocab_size=32, n_layer=1, n_head=2, n_embd=8)))
    assert keeps_logits(get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj"])))
    assert keeps_logits(prefix.prefix_tuning(copy.deepcopy(model), 2))
    assert not keeps_logits(prefix.soft_prompt(copy.deepcopy(model), 2))
    wrapped = torch.nn.Module()
    wrapped.module = model  # what DistributedDataParallel looks like from outside
    assert keeps_logits(wrapped)


def test_prompt_tuning_trains_through_the_engine(tiny_lm):
    """peft prompt tuning prepends virtual positions to the logits; the loss reads the real ones only."""
    from course_utils import prefix

    model, tok, data = tiny_lm
    m = prefix.soft_prompt(copy.deepcopy(model).requires_grad_(False), 4)
    r = sft.train(m, data, cfg(steps=3, lr=3e-2), pad_id=tok.pad_token_id)
    assert len(r.losses) == 3 and all(map(math.isfinite, r.losses)) and r.losses[-1] < r.losses[0]


def test_step_indices_walk_each_epoch_once_in_a_seeded_order():
    seen = [i for s in range(5) for i in sft.step_indices(s, 10, 2, seed=3)]
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    assert sft.step_indices(7, 10, 4, seed=1) == sft.step_indices(7, 10, 4, seed=1)


def test_training_lowers_the_loss(tiny_lm):
    model, tok, data = tiny_lm
    m = copy.deepcopy(model)
    before = sft.evaluate_loss(m, data[:16], pad_id=tok.pad_token_id)
    r = sft.train(m, data, cfg(steps=8, lr=3e-3), eval_data=data[:16], pad_id=tok.pad_token_id)
    assert r.eval_losses[-1][1] < before - 1.0 and r.step == 8 and len(r.losses) == 8
    assert r.tokens_per_second > 0 and not m.training


def test_gradient_accumulation_equals_the_large_batch(tiny_lm):
    model, tok, data = tiny_lm
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = sft.train(a, data, cfg(steps=3, grad_accum=1), pad_id=tok.pad_token_id)
    rb = sft.train(b, data, cfg(steps=3, grad_accum=4), pad_id=tok.pad_token_id)
    assert ra.losses == pytest.approx(rb.losses, abs=1e-5)
    assert max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())) < 1e-5


def test_stop_and_resume_reaches_the_same_result(tiny_lm, tmp_path):
    model, tok, data = tiny_lm
    straight, interrupted = copy.deepcopy(model), copy.deepcopy(model)
    r1 = sft.train(straight, data, cfg(steps=6, warmup_steps=2), pad_id=tok.pad_token_id)
    c = cfg(steps=6, warmup_steps=2, output_dir=str(tmp_path), checkpoint_every=2)
    part = sft.train(interrupted, data, c, pad_id=tok.pad_token_id, stop_after=3)
    assert part.step == 3 and (tmp_path / "checkpoint-last" / "trainable.safetensors").exists()
    fresh = copy.deepcopy(model)  # a new session: the weights come back from the checkpoint
    r2 = sft.train(fresh, data, c, pad_id=tok.pad_token_id)
    assert r2.resumed_from == 3 and r2.step == 6
    assert r2.losses == pytest.approx(r1.losses, abs=1e-6)
    assert max((p - q).abs().max().item() for p, q in zip(straight.parameters(), fresh.parameters())) < 1e-6


def test_checkpoint_of_another_model_is_refused(tiny_lm, tmp_path):
    model, tok, data = tiny_lm
    m = copy.deepcopy(model)
    c = cfg(steps=2, output_dir=str(tmp_path), checkpoint_every=1)
    sft.train(m, data, c, pad_id=tok.pad_token_id)
    other = copy.deepcopy(model)
    for name, p in other.named_parameters():
        p.requires_grad = "embed" in name
    with pytest.raises(ValueError, match="written by another run: another model"):
        sft.train(other, data, c, pad_id=tok.pad_token_id)
    # a checkpoint of an older course version has no fingerprint: its weights are still checked
    (tmp_path / "checkpoint-last" / "run.json").unlink()
    (tmp_path / "checkpoint-last" / "trainable.safetensors").unlink()
    from safetensors.torch import save_file
    save_file({"not.a.param": torch.zeros(1)}, tmp_path / "checkpoint-last" / "trainable.safetensors")
    with pytest.raises(ValueError, match="does not match this model"):
        sft.train(other, data, c, pad_id=tok.pad_token_id)


@pytest.mark.parametrize("kw,msg", [(dict(lr=0.0), "learning rate is 0.0"), (dict(lr=float("nan")), "learning rate"),
                                    (dict(steps=0), "steps must be"), (dict(batch_size=6, grad_accum=4), "multiple"),
                                    (dict(schedule="step"), "schedule"), (dict(checkpoint_every=2), "output_dir"),
                                    (dict(plot="inline"), "plot must be")])
def test_bad_settings_are_refused(tiny_lm, kw, msg):
    model, tok, data = tiny_lm
    with pytest.raises(ValueError, match=msg):
        sft.train(model, data, cfg(**kw))


def test_empty_data_and_frozen_model_are_refused(tiny_lm):
    model, tok, data = tiny_lm
    with pytest.raises(ValueError, match="training set is empty"):
        sft.train(model, [], cfg())
    frozen = copy.deepcopy(model).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        sft.train(frozen, data, cfg())


def test_nan_loss_stops_with_a_clear_message(tiny_lm):
    model, tok, data = tiny_lm
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.model.norm.weight.fill_(float("nan"))
    with pytest.raises(sft.TrainingDivergedError, match="Step 1: the loss became nan.*Lower the learning rate"):
        sft.train(broken, data, cfg(), pad_id=tok.pad_token_id)


def test_gradient_checkpointing_gives_the_same_update(tiny_lm):
    model, tok, data = tiny_lm
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    ra = sft.train(a, data, cfg(steps=2), pad_id=tok.pad_token_id)
    rb = sft.train(b, data, cfg(steps=2, gradient_checkpointing=True), pad_id=tok.pad_token_id)
    assert ra.losses == pytest.approx(rb.losses, abs=1e-5)
    assert not b.is_activation_checkpointing and b.config.use_cache  # switched back off for generation


def test_sample_weights_scale_the_loss(tiny_lm):
    model, tok, data = tiny_lm
    batch = sft.SFTCollator(tok.pad_token_id)(data[:2])
    s1, _ = sft.token_loss_sum(model, batch)
    batch["weight"] = torch.tensor([2.0, 2.0])
    s2, _ = sft.token_loss_sum(model, batch)
    assert torch.allclose(s2, 2 * s1)


def test_trainer_gives_the_same_losses(tiny_lm):
    model, tok, data = tiny_lm
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    c = cfg(steps=4, grad_accum=2, warmup_steps=1)
    ours = sft.train(a, data, c, pad_id=tok.pad_token_id)
    lib = trainer.trainer_finetune(b, data, c, pad_id=tok.pad_token_id)
    assert lib.losses == pytest.approx(ours.losses, rel=1e-3)  # Trainer logs rounded losses
    assert max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())) < 1e-5


def test_finetune_script_single_process(tmp_path):
    r = main(["--model", "tiny", "--method", "full", "--steps", "2", "--batch-size", "4", "--limit", "16",
              "--output-dir", str(tmp_path)])
    assert r.step == 2 and (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    assert json.loads((tmp_path / "result.json").read_text())["world_size"] == 1


def test_load_pairs_reads_jsonl_and_refuses_bad_rows(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "Q: 1+1?", "response": " 2"}\n\n{"prompt": "Q: 2+2?", "response": " 4"}\n')
    assert load_pairs(str(f)) == [("Q: 1+1?", " 2"), ("Q: 2+2?", " 4")]
    f.write_text('{"prompt": "Q: 1+1?", "completion": " 2"}\n')
    assert load_pairs(str(f)) == [("Q: 1+1?", " 2")]  # TRL's prompt-completion rows
    f.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match="needs 'prompt' and 'response'"):
        load_pairs(str(f))
    with pytest.raises(FileNotFoundError, match="--data sentiment"):
        load_pairs(str(tmp_path / "missing.jsonl"))


def test_two_cpu_processes_match_one(tmp_path):
    """torchrun with 2 processes (gloo) gives the single-process update: data parallelism is exact."""
    args = ["--model", "tiny", "--method", "full", "--steps", "3", "--batch-size", "8", "--limit", "32", "--lr", "1e-3"]
    main(args + ["--output-dir", str(tmp_path / "one")])
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "course_utils.finetune", *args, "--output-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "two" / "result.json").read_text())
    assert res["world_size"] == 2
    assert res["losses"] == pytest.approx(json.loads((tmp_path / "one" / "result.json").read_text())["losses"],
                                          abs=1e-5)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-5


# --- precision: float32 master weights under 16-bit autocast (what a GPU run does), checked on the CPU ---------

def test_bf16_training_keeps_float32_master_weights_that_move_every_step(tiny_lm):
    """lr 1e-5 on bf16 weights: most updates are below bf16's resolution, so without master weights they vanish.

    The engine upcasts the trainable weights to float32 and trains under bf16 autocast: every step moves them,
    and the losses track a float32 run within bf16's rounding.
    """
    model, tok, data = tiny_lm
    ref, m = copy.deepcopy(model), copy.deepcopy(model).to(torch.bfloat16)
    assert sft.resolve_autocast(m, cfg()) == torch.bfloat16  # "auto": a bf16 model computes in bf16
    moved, snap = [], {}

    def on_step(step, loss):
        # the input embedding is left out: rows of tokens absent from a batch get no gradient, hence no update
        cur = {n: p.detach().clone() for n, p in m.named_parameters() if "embed_tokens" not in n}
        if snap:  # share of weights that changed in this step
            moved.append(sum((cur[n] != snap[n]).sum().item() for n in cur) / sum(v.numel() for v in cur.values()))
        snap.update(cur)

    c = cfg(steps=4, lr=1e-5, schedule="constant", max_grad_norm=None)
    r16 = sft.train(m, data, c, pad_id=tok.pad_token_id, on_step=on_step)
    r32 = sft.train(ref, data, c, pad_id=tok.pad_token_id)
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the master weights
    assert min(moved) > 0.9, f"only {min(moved):.0%} of the weights moved in some step"
    assert r16.losses == pytest.approx(r32.losses, rel=2e-2)

    # the same update applied to bf16 weights directly is mostly lost to rounding
    w = next(model.parameters()).detach().to(torch.bfloat16)
    assert ((w + 1e-5 * torch.sign(w)) != w).float().mean() < 0.2


def test_lora_on_a_bf16_base_trains_float32_factors(tiny_lm):
    from course_utils.lora import inject_lora, lora_layers

    model, tok, data = tiny_lm
    m = copy.deepcopy(model).to(torch.bfloat16)
    inject_lora(m, ("q_proj", "v_proj"), r=4, alpha=8)
    r = sft.train(m, data, cfg(steps=2, lr=1e-3), pad_id=tok.pad_token_id)
    layer = next(iter(lora_layers(m).values()))
    assert layer.lora_A.dtype == torch.float32 and layer.base.weight.dtype == torch.bfloat16
    assert layer.lora_B.abs().sum() > 0 and all(map(torch.isfinite, torch.tensor(r.losses)))


def test_float16_autocast_uses_a_gradient_scaler(tiny_lm, monkeypatch):
    """The T4 path (float32 weights, float16 compute, GradScaler) forced on the CPU: it trains like float32."""
    model, tok, data = tiny_lm
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    scalers = []
    real = torch.amp.GradScaler

    def spy(*args, **kw):
        scalers.append(real(*args, **kw))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", spy)
    r16 = sft.train(a, data, cfg(steps=3, autocast="float16"), pad_id=tok.pad_token_id)
    r32 = sft.train(b, data, cfg(steps=3, autocast="none"), pad_id=tok.pad_token_id)
    assert scalers[0].is_enabled() and not scalers[1].is_enabled()
    assert r16.losses == pytest.approx(r32.losses, rel=2e-2)


@pytest.mark.parametrize("capability, weights, compute", [
    ((7, 0), torch.float32, torch.float16),   # V100
    ((7, 5), torch.float32, torch.float16),   # T4 (Colab): bf16 "supported" only by emulation
    ((8, 0), torch.bfloat16, torch.bfloat16),  # A100
    ((9, 0), torch.bfloat16, torch.bfloat16),  # H100
])
def test_dtype_rule_on_simulated_gpus(monkeypatch, capability, weights, compute):
    from course_utils import device

    monkeypatch.delenv("COURSE_DTYPE", raising=False)
    monkeypatch.delenv("COURSE_AUTOCAST", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # true on a T4 too
    assert device.pick_dtype("cuda") == weights
    assert device.autocast_dtype("cuda", weights) == compute
    assert device.autocast_dtype("cpu", torch.float32) is None


def test_dtype_overrides_and_bad_values(monkeypatch):
    from course_utils import device

    monkeypatch.setenv("COURSE_DTYPE", "float16")
    monkeypatch.setenv("COURSE_AUTOCAST", "none")
    assert device.pick_dtype("cpu") == torch.float16 and device.autocast_dtype("cuda") is None
    monkeypatch.setenv("COURSE_DTYPE", "fp8")
    with pytest.raises(ValueError, match="COURSE_DTYPE='fp8'.*float32"):
        device.pick_dtype("cpu")
    with pytest.raises(ValueError, match="autocast must be one of"):
        cfg(autocast="fp16").validate(10)


def test_micro_batches_shrink_to_fit_the_gpu_budget_with_the_same_update(tiny_lm, monkeypatch, capsys):
    """On a GPU, train() reads the free memory (gpu_budget) and accumulates more micro-batches when the
    estimated peak of one would not fit; simulated here with a budget between two micro-batch sizes."""
    from course_utils.memory import estimate_from_model

    model, tok, data = tiny_lm
    seq = max(len(e["input_ids"]) for e in data)
    budget = (estimate_from_model(model, batch_size=2, seq_len=seq).peak
              + estimate_from_model(model, batch_size=4, seq_len=seq).peak) // 2
    assert sft.fit_grad_accum(model, cfg(batch_size=8), seq, budget) == 4  # micro-batch 2 fits, 4 does not
    assert sft.fit_grad_accum(model, cfg(batch_size=8), seq, None) == 1  # the CPU: no budget, no change
    with pytest.warns(UserWarning, match="gradient_checkpointing=True"):
        assert sft.fit_grad_accum(model, cfg(batch_size=8), seq, 1) == 8
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    monkeypatch.setattr(sft, "gpu_budget", lambda m: budget)
    ra = sft.train(a, data, cfg(steps=2), pad_id=tok.pad_token_id)
    assert "grad_accum 4" in capsys.readouterr().out
    monkeypatch.setattr(sft, "gpu_budget", lambda m: None)
    rb = sft.train(b, data, cfg(steps=2), pad_id=tok.pad_token_id)
    assert ra.losses == pytest.approx(rb.losses, abs=1e-5)
