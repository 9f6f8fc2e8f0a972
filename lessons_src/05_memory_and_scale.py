# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 5 · Fine-tuning memory and scale (显存与规模)
#
# *LLM Q&A §12 (what decides the memory full fine-tuning needs: model size, batch size, sequence length, mixed
# precision) and §19 (out-of-memory errors when the samples grow, and their remedies); LLM-TAP §5.2 (efficient
# fine-tuning saves GPU memory), measured.*
#
# **Learning objectives.** After this chapter you can
# 1. estimate the memory of a fine-tuning run (weights, gradients, optimiser states, activations), explain the 16
#    bytes per parameter of mixed-precision Adam, and check the estimate against a measured training step;
# 2. say why trainable weights stay in float32 while the matmuls run in 16 bits, and which 16 bits on which GPU;
# 3. name the remedies for out-of-memory errors, show that gradient accumulation gives the large batch's update,
#    and measure what gradient checkpointing saves and costs;
# 4. run the same fine-tune in several processes (data parallelism) and say when the model itself must be split
#    (pipeline, tensor, sharded) or quantized (QLoRA).
#
# **Before you start.** Chapters: 4 (the fine-tuning engine, LoRA, trainable vs frozen weights). Maths: bytes per
# parameter arithmetic, floating-point formats (exponent and significand bits, rounding to a grid of representable
# numbers), and the linearity of gradients (the sum of the micro-batches' gradients is the batch's gradient); no
# calculus beyond "one gradient per weight".
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake (`pytest --nbmake --durations`) | 39 s |
# | cpu | the same 2-core CPU (`bench/profile_notebook.py`) | 79 s (the two memory measurements 62) |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_utils import lora, memory, prompting, sft
from course_utils.config import profile
from course_utils.data import load_sentiment
from course_utils.device import assert_close, autocast_dtype, pick_dtype, set_seed
from course_utils.finetune import launch_plan, usable_gpus
from course_utils.models import load_model
from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS

P = profile()
set_seed(0)
model, tok = load_model(P.model_name)
n_params = sum(p.numel() for p in model.parameters())
print(f"profile {P.name}: {P.model_name}, {n_params / 1e6:.1f}M parameters")
# chapter 4's training pairs: the sentiment template up to the answer slot -> the label word
train_data = sft.build_dataset(tok, prompting.prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, load_sentiment("train")),
                               max_len=P.seq_len)

# %% [markdown]
# ## 1. Why full fine-tuning is expensive

#
# Training keeps four things in memory (LLM Q&A §12: model size, batch size, sequence length, mixed precision):
#
# | what | bytes per parameter (mixed-precision AdamW) | why |
# |---|---|---|
# | weights | 2 (bf16) | the forward pass |
# | gradients | 2 (bf16) | one per trained weight |
# | optimiser states | 12 = 4 (fp32 master copy) + 4 (Adam's m) + 4 (Adam's v) | AdamW keeps two running moments |
# | activations | grows with batch × sequence length × layers | saved in the forward pass for the backward pass |
#
# ![Bytes per parameter of mixed-precision AdamW as stacked bars: full fine-tuning pays 2 for the weights, 2 for the
# gradients, 4 for the fp32 master copy and 4 + 4 for Adam's two moments, 16 in all; with LoRA a frozen weight
# pays only its 2 bytes and the few trainable parameters pay the rest.](../figures/memory_breakdown.svg)
#
# That is **16 bytes per parameter** before activations (the ZeRO paper's (2 + 2 + 12)Ψ): 7B parameters need
# about 112 GB (7e9 × 16 bytes; 104 GiB), more than any single GPU of 80 GB. Only the trained parameters pay for
# gradients and optimiser states, which is where parameter-efficient methods save: LoRA trains well under 1 % of
# the weights (chapter 4). The table below is in GiB ($2^{30}$ bytes), for real model shapes: Llama-2-7B has 6.7B
# parameters, so its full fine-tune peaks at about 101 GiB, and 15 GiB with LoRA.

# %%
table = memory.memory_table()
print(memory.format_memory_table(table))
memory.plot_memory_table(table)
plt.show()

# %% [markdown]
# The estimator is arithmetic; does it hold? Measure the peak memory of one real training step of our model
# (float32 on this CPU: 4 + 4 + 8 = 16 bytes per trained parameter, no master copy needed) next to the estimate,
# which counts weights, gradients, AdamW's two moments and the activations the backward pass needs (see
# `memory.activation_memory`). **Expected:** within 20 %; LoRA's peak far below full fine-tuning's.

# %%
measured_rows = []
for name, m in {"full": copy.deepcopy(model).requires_grad_(True),
                "LoRA r=8": lora.inject_lora(copy.deepcopy(model), r=8, alpha=16)}.items():
    est = memory.estimate_from_model(m, batch_size=P.batch_size, seq_len=P.seq_len)
    got = memory.measure_training_step(m, batch_size=P.batch_size, seq_len=P.seq_len, time_steps=1)
    measured_rows.append({"method": name, "estimate MiB": est.peak / 2**20, "measured MiB": got.peak / 2**20,
                          "ratio": est.peak / got.peak, "s / step": got.seconds})
    del m
for r in measured_rows:
    print(f"{r['method']:9} estimate {r['estimate MiB']:7.0f} MiB   measured {r['measured MiB']:7.0f} MiB   "
          f"ratio {r['ratio']:.2f}   {r['s / step']:.2f} s/step")
assert all(0.8 < r["ratio"] < 1.2 for r in measured_rows), "the estimate should be within 20 % of the measurement"

# %% [markdown]
# **Which dtype, and why.** The table above counts 2-byte weights with an fp32 master copy. The master copy is
# not optional: AdamW moves a weight by about the learning rate per step (its update is normalised), 1e-5 in full
# fine-tuning, while bfloat16 keeps 8 significant bits, so next to a weight of 0.05 its grid spacing is about 2e-4.
# An update applied to bf16 weights directly mostly rounds back to the old value. **Expected:** on this model's
# query weights, only a few percent of the 1e-5 updates survive in bf16, more in fp16 (11 significant bits),
# practically all in fp32.

# %%
w = model.model.layers[0].self_attn.q_proj.weight.detach().flatten()[:200_000].float()
step = 1e-5 * torch.sign(w)  # AdamW's first step: lr x sign(gradient)
kept = {str(dt): ((w.to(dt) + step.to(dt)) != w.to(dt)).float().mean().item()
        for dt in (torch.float32, torch.bfloat16, torch.float16)}
print({k: f"{v:.0%} of the weights moved" for k, v in kept.items()})
assert kept["torch.float32"] > 0.99 and kept["torch.bfloat16"] < 0.2
print(f"this machine: weights in {pick_dtype()}, training computes in {autocast_dtype(model.device) or 'float32'}")

# %% [markdown]
# So the course's engine (`sft.train`), like peft and `Trainer`, keeps every *trainable* weight in float32 (LoRA's A
# and B are float32 even on a bf16 base) and runs the matmuls in 16 bits under `torch.autocast`. Which 16 bits
# depends on the GPU (`device.pick_dtype`, `device.autocast_dtype`):
#
# | machine | weights load in | training computes in | why |
# |---|---|---|---|
# | CPU (this notebook in the cpu profile) | float32 | float32 | exact, repeatable; CPU bf16 matmuls are slower here |
# | GPU with native bf16 (compute capability ≥ 8.0: A100, L4, H100) | bfloat16 | bfloat16 | half the memory, fp32's range |
# | older GPU (Colab's T4 is 7.5, V100 7.0) | float32 | float16, with a gradient scaler | bf16 is only emulated there (slow); fp16 has tensor cores but a small range |
#
# float16 tops out at 65,504 and its smallest normal number is 6e-5, so small gradients underflow to zero: the
# gradient scaler multiplies the loss by a large factor before the backward pass and divides the gradients by it
# before the update, skipping a step whose gradients overflowed. Models this small (135M and 270M parameters)
# afford float32 weights on a 16 GB T4. Every "ours = the library" check in the course takes its tolerance from
# the dtype (`device.assert_close`): exact to float32 rounding here, to bf16's 8 bits on a GPU.

# %% [markdown]
# ## 2. Out of memory (LLM Q&A §19): the remedies, measured
#
# When the data, the batch or the sequences grow, training can run out of memory (OOM). The LLM Q&A's remedies:
# 1. **a smaller batch**: less activation memory, but noisier gradients;
# 2. **gradient accumulation**: run the batch as several micro-batches and add their gradients before one
#    optimiser step: the memory of the small batch with the update of the large one;
# 3. **model parallelism**: put parts of the model on different devices.
#
# To these, practice adds **gradient checkpointing** (keep only each layer's input in the forward pass and
# recompute the rest during the backward pass: less memory, about one more forward of time), parameter-efficient
# methods (chapter 4), lower precision, and quantized base weights (QLoRA, below).
#
# **Accumulation is exact.** Our engine divides by the number of target tokens of the whole step, so 4
# micro-batches of 2 must give the update of one batch of 8 (up to float rounding):

# %%
acc_cfg = dict(steps=1, batch_size=8, lr=1e-3, plot=None, progress=False)
a = lora.inject_lora(copy.deepcopy(model), ("q_proj", "v_proj"), r=8, alpha=16)
b = copy.deepcopy(a)
sft.train(a, train_data, sft.TrainConfig(grad_accum=1, **acc_cfg))
sft.train(b, train_data, sft.TrainConfig(grad_accum=4, **acc_cfg))
compute = autocast_dtype(model.device, model.dtype) or model.dtype  # what training computes in: its rounding
diff = max(assert_close(q, p, compute, f"{name} after one batch and after micro-batches")
           for (name, p), q in zip(lora.lora_state_dict(a).items(), lora.lora_state_dict(b).values()))
print(f"largest weight difference, batch 8 vs 4 micro-batches of 2: {diff:.1e}")
del a, b

# %% [markdown]
# **Gradient checkpointing trades time for memory.** The same LoRA training step, with and without it.
# **Expected:** a lower peak (the activations of one layer at a time instead of all 30) and a slower step (each
# layer's forward pass runs twice).

# %%
ckpt_rows = {}
m = lora.inject_lora(copy.deepcopy(model), r=8, alpha=16)
for on in (False, True):
    if on:
        m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    got = memory.measure_training_step(m, batch_size=P.batch_size, seq_len=P.seq_len, time_steps=2)
    est = memory.estimate_from_model(m, batch_size=P.batch_size, seq_len=P.seq_len)
    ckpt_rows[on] = got
    print(f"{'with' if on else 'without':7} checkpointing: peak {got.peak / 2**20:5.0f} MiB (estimate "
          f"{est.peak / 2**20:5.0f}), {got.seconds:.2f} s/step")
del m
print(f"checkpointing: {1 - ckpt_rows[True].peak / ckpt_rows[False].peak:.0%} lower peak, "
      f"{ckpt_rows[True].seconds / ckpt_rows[False].seconds - 1:+.0%} time per step")

# %% [markdown]
# Checkpointing only shrinks *activations*. For full fine-tuning at a small batch the peak is elsewhere: at the
# end of the backward pass, when every gradient exists and AdamW updates the weights. `bench/bench_memory.py`
# measured it: full fine-tuning at batch 4 × 64 peaks at 2268 MiB with or without checkpointing; at 8 × 128,
# where activations dominate, checkpointing lowers it from 3428 to 2268 MiB. Know where your peak is before you
# pick a remedy.

# %% [markdown]
# **Model and data parallelism.** The same fine-tune exists as a script, `python -m course_utils.finetune`, that
# runs unchanged under `torchrun` or `accelerate launch` on several GPUs. Each process holds a full copy of the
# model and takes its share of every batch (data parallelism, `DistributedDataParallel`); their gradients are
# averaged, so the update equals the single-process one. Here: two processes on a tiny model, next to one process.
# On a machine with two GPUs or more they run one per GPU and talk over NCCL; NCCL cannot put two processes on one
# GPU, so elsewhere (a one-GPU Colab included) both runs go to the CPU and talk over gloo. When the *model* does
# not fit one device, it has to be split across devices instead: layer by layer (pipeline parallelism), inside each
# matrix (tensor parallelism), or its weights, gradients and optimiser states sharded (FSDP, DeepSpeed ZeRO;
# `accelerate` and `Trainer` drive both).

# %%
plan = launch_plan(2, usable_gpus(), exact=True)
print("data parallelism here:", plan.note)
env = {**os.environ, "COURSE_DEVICE": plan.device}  # both runs on the same kind of device, so their losses compare
common = ["-m", "course_utils.finetune", "--model", "tiny", "--method", "full", "--steps", "3", "--batch-size", "8",
          "--limit", "32", "--lr", "1e-3"]
dist_dir = Path(tempfile.mkdtemp(prefix="ch5-ddp-"))
runs = {"1 process": [sys.executable, *common, "--output-dir", str(dist_dir / "one")],
        f"{plan.processes} processes (torchrun, {plan.backend})": [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(plan.processes),
            *common, "--output-dir", str(dist_dir / "two")]}
for name, cmd in runs.items():
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
losses = {name: json.loads((dist_dir / d / "result.json").read_text())["losses"]
          for name, d in zip(runs, ["one", "two"])}
print(losses)
one, two = (torch.tensor(v) for v in losses.values())
assert_close(two, one, autocast_dtype(plan.device) or torch.float32, "the losses of one process and of two")

# %% [markdown]
# **QLoRA** (Dettmers et al. 2023) stores the frozen base in 4 bits (NF4, about 0.5 byte per parameter plus
# quantization constants) and trains LoRA on top in 16 bits: a 65B model fine-tuned on one 48 GB GPU, matching
# 16-bit fine-tuning on their benchmarks. It needs CUDA and `bitsandbytes`, so the cell below only runs on a GPU:
#
# ```python
# bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
#                          bnb_4bit_compute_dtype=torch.bfloat16)
# model = AutoModelForCausalLM.from_pretrained(name, quantization_config=bnb, dtype=torch.bfloat16)
# model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
# model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
# ```

# %% [markdown]
# ## 3. What we measured
#
# The outputs above are this run's. A recorded run of the `cpu` profile (a 2-core CPU with nothing else running,
# December 2026) gave:
#
# 1. **The estimate held:** it matched the measured peak of a training step to 0.1 % (full 3428 vs 3429 MiB, LoRA
#    2022 vs 2020 MiB at batch 8 × 128). The fp32 logits over a 49k-token vocabulary are a large share of what is
#    left once LoRA has removed the gradients and optimiser states.
# 2. **bf16 cannot hold small updates:** a 1e-5 step moved practically every fp32 weight and only a few percent of
#    the bf16 ones; hence the fp32 copy of every trainable weight.
# 3. **OOM remedies:** 4 micro-batches of 2 gave the batch-8 update to 7e-7. Gradient checkpointing lowered LoRA's
#    peak by 42 % (2020 → 1164 MiB) for +14 % to +50 % time per step, depending on the run (this shared CPU is
#    noisy). Two torchrun processes reproduced the single-process losses to 1e-6.
#
# Tests that check these claims on every CI run:
# - `tests/test_memory.py`: the estimate is within 20 % of the measurement.
# - `tests/test_sft.py`: accumulation and two processes.
#
# `make bench` records the estimate against the measured peak for full fine-tuning and LoRA, with and without
# checkpointing (`bench/bench_memory.py`).
#
# ## 4. Concept check
#
# **Why does full fine-tuning need so much memory?** Besides the weights, every trained parameter has a gradient
# and two AdamW moments (plus an fp32 master copy in mixed precision): 16 bytes per parameter, 112 GB for 7B,
# before the activations, which grow with batch size × sequence length × layers (LLM Q&A §12).
#
# **Why keep an fp32 copy of the weights when the matmuls run in bf16?** An AdamW step moves a weight by about the
# learning rate; bf16's 8 significant bits round most such steps away, so the update is applied to the fp32 copy.
#
# **Your training run runs out of memory. What do you try, in order?** A smaller micro-batch with gradient
# accumulation (same update), gradient checkpointing (less activation memory, about one more forward pass of
# time), LoRA instead of full fine-tuning, lower precision or a 4-bit base (QLoRA), and if the model itself does
# not fit, sharding or model parallelism across devices (LLM Q&A §19).
#
# **Does data parallelism let a model that does not fit one GPU train?** No: every process holds a full copy. It
# speeds training up; sharding (ZeRO, FSDP) or pipeline / tensor parallelism is what splits the model.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/05_memory_and_scale.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the 16 bytes.** How many bytes does full fine-tuning with mixed-precision AdamW need for
# `n_params` trainable parameters, before activations (section 1)?

# %% tags=["exercise"]
def my_adam_bytes(n_params: int) -> float:
    """Bytes of weights, gradients, master copy and optimizer states for full mixed-precision AdamW."""
    # TODO: add up what every trainable parameter costs, in bytes
    raise NotImplementedError


checks.check("05.adam_bytes", my_adam_bytes)

# %% tags=["solution"]
def my_adam_bytes(n_params: int) -> float:
    """Bytes of weights, gradients, master copy and optimizer states for full mixed-precision AdamW."""
    weights, gradients, master, adam_m, adam_v = 2, 2, 4, 4, 4  # bf16, bf16, fp32, fp32, fp32
    return n_params * (weights + gradients + master + adam_m + adam_v)


checks.check("05.adam_bytes", my_adam_bytes)

# %% [markdown]
# **Core · micro-batch losses.** Gradient accumulation backpropagates one loss per micro-batch and adds the
# gradients. Given each micro-batch's per-token losses (`token_losses[i]`, a 1-D tensor of its target tokens'
# losses), return the loss each micro-batch should backpropagate so that the summed gradients are those of the
# whole step's mean loss over all its target tokens. Micro-batches hold different numbers of target tokens.

# %% tags=["exercise"]
import torch


def my_micro_batch_losses(token_losses: list[torch.Tensor]) -> list[torch.Tensor]:
    """One loss per micro-batch; their sum is the mean over every target token of the step."""
    # TODO: what must each micro-batch's token sum be divided by?
    raise NotImplementedError


checks.check("05.micro_batch_losses", my_micro_batch_losses)

# %% tags=["solution"]
import torch


def my_micro_batch_losses(token_losses: list[torch.Tensor]) -> list[torch.Tensor]:
    """One loss per micro-batch; their sum is the mean over every target token of the step."""
    n_tokens = sum(t.numel() for t in token_losses)  # the whole step's, as sft.train counts them
    return [t.sum() / n_tokens for t in token_losses]


checks.check("05.micro_batch_losses", my_micro_batch_losses)

# %% [markdown]
# **Stretch · ZeRO's memory per GPU.** Data parallelism over `n_gpus` keeps all 16 bytes per parameter on every
# GPU (stage 0). ZeRO (Rajbhandari et al. 2020) shards them: stage 1 the optimiser states (12 bytes), stage 2 also
# the gradients (2 bytes), stage 3 also the 16-bit weights (2 bytes). Return the bytes per GPU before activations.

# %% tags=["exercise"]
def my_zero_bytes(n_params: int, n_gpus: int, stage: int) -> float:
    """Bytes per GPU of mixed-precision AdamW under ZeRO stage 0-3."""
    # TODO: which of weights (2), gradients (2) and optimiser states (12) are divided by n_gpus at this stage?
    raise NotImplementedError


checks.check("05.zero_bytes", my_zero_bytes)

# %% tags=["solution"]
def my_zero_bytes(n_params: int, n_gpus: int, stage: int) -> float:
    """Bytes per GPU of mixed-precision AdamW under ZeRO stage 0-3."""
    weights, grads, states = 2.0, 2.0, 12.0
    if stage >= 1:
        states /= n_gpus
    if stage >= 2:
        grads /= n_gpus
    if stage >= 3:
        weights /= n_gpus
    return n_params * (weights + grads + states)


checks.check("05.zero_bytes", my_zero_bytes)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("05")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Add a row for your own GPU's memory to `memory.plot_memory_table(table, gpu_gib=(...))`. Which of
#    the models can you fully fine-tune, and which only with LoRA or QLoRA?
# 2. *(core)* Measure `memory.measure_training_step` at batch 1, 2, 4 and 8 for the LoRA model. Which part of the
#    estimate grows with the batch, and which stays?
# 3. *(stretch)* Run the accumulation cell with `grad_accum=3`: 8 examples do not split evenly into 3
#    micro-batches. How does `sft.step_batches` split them, and is the update still the batch-8 one? Your answer to
#    the core exercise says why.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("05_memory_and_scale", 1, "b")` grades an
# answer. Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("05_memory_and_scale")

# %% [markdown]
# ## Summary: what to remember
#
# - Full fine-tuning with mixed-precision AdamW needs about 16 bytes per trained parameter (16-bit weights and
#   gradients, an fp32 master copy and two moments) before activations; frozen weights pay only for themselves.
# - An estimate of weights, gradients, optimiser states and activations matched the measured peak of a real training
#   step, and LoRA's peak sat far below full fine-tuning's.
# - Trainable weights stay in float32 because an update of AdamW's size applied to bfloat16 weights mostly rounds
#   away; the matmuls run in bf16 on GPUs that support it, in fp16 with a gradient scaler on older ones.
# - Gradient accumulation gives exactly the large batch's update when the loss is normalised over the whole step's
#   target tokens.
# - Gradient checkpointing trades about one more forward pass for activation memory, so it helps only where
#   activations, not gradients and optimiser states, set the peak: know where your peak is before picking a remedy.
# - Data parallelism (`torchrun`, `accelerate launch`) averages gradients, so several processes reproduce the
#   one-process update; a model that does not fit one device must be split (pipeline, tensor) or sharded (FSDP, ZeRO).
# - QLoRA keeps the frozen base in 4-bit NF4 and trains LoRA on top, which needs CUDA and bitsandbytes.
#
# ## Further reading
#
# - Rajbhandari, S., Rasley, J., Ruwase, O., et al. (2019). *ZeRO: Memory Optimizations Toward Training Trillion
#   Parameter Models*. SC 2020. arXiv:1910.02054. Where the (2 + 2 + 12) bytes per parameter come from, and sharding
#   them.
# - Micikevicius, P., Narang, S., Alben, J., et al. (2017). *Mixed Precision Training*. ICLR 2018. arXiv:1710.03740.
#   The fp32 master copy and loss scaling.
# - Chen, T., Xu, B., Zhang, C., et al. (2016). *Training Deep Nets with Sublinear Memory Cost*. arXiv:1604.06174.
#   Gradient checkpointing: recompute activations instead of storing them.
# - Kingma, D. P., & Ba, J. (2014). *Adam: A Method for Stochastic Optimization*. ICLR 2015. arXiv:1412.6980. The two
#   running moments that cost 8 bytes per trained parameter.
# - Li, S., Zhao, Y., Varma, R., et al. (2020). *PyTorch Distributed: Experiences on Accelerating Data Parallel
#   Training*. Proceedings of the VLDB Endowment (2020). arXiv:2006.15704. How `DistributedDataParallel`
#   averages gradients.
# - Zhao, Y., Gu, A., Varma, R., et al. (2023). *PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel*.
#   Proceedings of the VLDB Endowment (2023). arXiv:2304.11277. Sharding weights, gradients and optimiser states.
# - Dettmers, T., Pagnoni, A., Holtzman, A., et al. (2023). *QLoRA: Efficient Finetuning of Quantized LLMs*.
#   NeurIPS 2023. arXiv:2305.14314. NF4, double quantization and paged optimisers.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points), questions 12 and 19 (n.d.; no author named). The questions this chapter answers with measurements.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.2 (高效微调). https://intro-llm.github.io/. Its claim that efficient
#   fine-tuning saves memory, measured.
