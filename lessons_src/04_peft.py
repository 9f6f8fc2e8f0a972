# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 4 · Parameter-efficient fine-tuning (高效微调)
#
# *LLM-TAP §5.2 (Zhang et al., Large Language Models: From Theory to Practice, ch. 5): "efficient fine-tuning
# cuts the number of trained parameters and the GPU memory, while the tuned model performs comparably to full
# fine-tuning (全量微调)": LoRA, adapters and prefix tuning.*
#
# **Learning objectives.** After this chapter you can
# 1. fine-tune a causal LM on (prompt, response) pairs with labels masked on the prompt, and resume a stopped run;
# 2. write LoRA from scratch (`h = W0 x + B A x`), show it starts as a no-op, merge it, and match peft exactly;
# 3. explain where an adapter and a prefix sit in a Transformer layer and what each costs at inference;
# 4. compare full fine-tuning, LoRA, adapters and prefix tuning on one task: parameters, memory, time, accuracy,
#    inference latency; and show that a fine-tuning update has low rank.
#
# Where the memory of a training run goes, and what to do when it runs out, is chapter 5.
#
# **Before you start.** Chapters: 1 (the LM loss, labels shifted by one), 2 (templates and verbalizers: this
# chapter's task), 3 (the in-context baselines LoRA is compared with). Maths: matrix products and shapes, matrix
# rank, singular values (SVD; a matrix's "energy" is the sum of its squared singular values), and gradients, enough
# to see why B = 0 with a random A still trains.
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake (`pytest --nbmake --durations`) | 57 s |
# | cpu | the same 2-core CPU, nothing else running | not measured since the chapter was split (before: 6.2 min with chapter 5's part; the four-method comparison 3.8) |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import copy
import inspect
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from peft import LoraConfig, get_peft_model

from course_utils import adapters, icl, lora, peft_methods, prefix, prompting, sft, trainer
from course_utils.config import profile
from course_utils.data import load_sentiment
from course_utils.device import assert_close, encode, set_seed
from course_utils.models import ContextLengthError, context_window, load_model
from course_utils.plotting import bar, readable_tokens, token_strip
from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS

P = profile()
set_seed(0)
model, tok = load_model(P.model_name)
n_params = sum(p.numel() for p in model.parameters())
print(f"profile {P.name}: {P.model_name}, {n_params / 1e6:.1f}M parameters, {P.train_steps} training steps")

# %% [markdown]
# **Why not train every weight?** Full fine-tuning keeps, for every trained weight, a gradient and AdamW's two
# running moments besides the weight itself: about 16 bytes per parameter in mixed precision, 112 GB (104 GiB) for
# 7B parameters before activations (chapter 5 measures it). Only *trained* parameters pay for gradients and
# optimiser states, so a method that trains well under 1 % of the weights saves most of that memory. This chapter
# builds three such methods and compares them with full fine-tuning on one task.

# %% [markdown]
# ## 1. The fine-tuning engine: pairs, masked labels, one loop
#
# Supervised fine-tuning trains on (prompt, response) pairs. The model reads both, but only the response is
# *learned*: prompt positions get the label `-100`, which cross-entropy ignores, so the loss is the mean over
# response tokens. For our task the pairs come from chapter 2's template and verbalizer (prompt-based
# fine-tuning, PET's idea): the prompt is the template up to the answer slot, the response is the label word.

# %%
train_set = load_sentiment("train")
test = load_sentiment("test", limit=P.eval_examples)
dev = load_sentiment("dev", limit=P.eval_examples)
X, Y = [e.text for e in test], [e.label for e in test]
pairs = prompting.prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, train_set)
train_data = sft.build_dataset(tok, pairs, max_len=P.seq_len)
dev_data = sft.build_dataset(tok, prompting.prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, dev), max_len=P.seq_len)
print(repr(pairs[0][0]), "->", repr(pairs[0][1]))
ex = train_data[0]
fig, ax = plt.subplots(figsize=(10, 1.4))
token_strip(readable_tokens(tok, ex["input_ids"]), [float(y != sft.IGNORE_INDEX) for y in ex["labels"]],
            title="Which tokens are trained (1) and which only read (0)", ax=ax)
plt.show()

# %% [markdown]
# One optimiser step is short enough to read whole: forward, the masked loss summed over target tokens and divided
# by the step's number of target tokens, backward, clip, then a step of AdamW and of the warm-up + cosine schedule.
# `sft.train` calls it once per step and adds what surrounds it: drawing the step's examples (`sft.step_batches`),
# several processes (`sft.grad_sync`, `sft.all_reduce_sum`), checkpoints (`course_utils.checkpoints`),
# evaluation, a progress bar and the loss plot.

# %%
print(inspect.getsource(sft.training_step))

# %% [markdown]
# Read it for the four steps: forward and masked loss (`token_loss_sum`), backward, clip, step. Three things in it
# do nothing in this chapter and are explained where they matter: `grad_sync`, `world` and `all_reduce_sum` let
# several processes train one model (data parallelism, chapter 5); the `scaler` rescales float16 losses on older
# GPUs (chapter 5); `penalty` adds chapter 8's regularisers against forgetting. On one process in float32 the
# scaler is a no-op and `world` is 1. The loop over `micro_batches` is gradient accumulation (chapter 5): here each
# step is one micro-batch.

# %% [markdown]
# ## 2. LoRA from scratch (Hu et al. 2021)
#
# LLM-TAP's formula: $h = W_0 x + \Delta W x = W_0 x + B A x$. The pretrained $W_0$ ($d_{out} \times d_{in}$)
# is frozen; the update is the product of $A$ ($r \times d_{in}$) and $B$ ($d_{out} \times r$) with a small rank
# $r$, scaled by $\alpha / r$. **A is random and B is zero, so $BA = 0$: before training the bypass changes
# nothing** (LLM-TAP says A is Gaussian; microsoft/LoRA and peft use Kaiming-uniform, which is what runs here).
# After training, $W_0 + \frac{\alpha}{r} BA$ is one matrix again: **merged, LoRA costs nothing at inference**.
#
# ![LoRA: the frozen weight W0 beside a trainable bypass of A (r by d_in, random) and B (d_out by r, zero), the two
# outputs added with the scale alpha over r, and after training the merge W0 plus (alpha/r) BA into one
# matrix.](../figures/lora.svg)
#
# The figure shows the two paths of a LoRA layer: the input goes through the frozen $W_0$ and, in parallel, through
# the thin $A$ and $B$; only $A$ and $B$ receive gradients.

# %%
print(inspect.getsource(lora.LoRALinear.forward))
q = model.model.layers[0].self_attn.q_proj
layer = lora.LoRALinear(q, r=8, alpha=16)
x = torch.randn(2, 5, q.in_features, device=q.weight.device, dtype=q.weight.dtype)  # where the layer lives
assert torch.equal(layer(x), q(x)), "B = 0: the LoRA layer starts as the frozen layer"
with torch.no_grad():
    layer.lora_B.normal_(std=0.02)  # pretend training moved B
merged = layer.merge()
print(f"after training: |LoRA(x) - merged(x)| = {(layer(x) - merged(x)).abs().max():.1e}; merged is a plain "
      f"{type(merged).__name__}")
assert_close(merged(x), layer(x), model, "the LoRA layer and its merge")  # equal up to the dtype's rounding

# %% [markdown]
# **Scratch vs library.** `inject_lora` puts LoRA on the attention's query and value projections (the paper's
# choice) and freezes everything else. The same A and B copied into a `peft` LoRA model must give the same logits.

# %%
ours = lora.inject_lora(copy.deepcopy(model), target_modules=("q_proj", "v_proj"), r=8, alpha=16)
for p in ours.parameters():
    if p.requires_grad:  # make the check non-trivial: a random, non-zero update
        torch.nn.init.normal_(p, std=0.02)
theirs = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
lora.copy_lora_to_peft(ours, theirs)
ids = encode(tok, "LoRA: low-rank adaptation of large language models.", model).input_ids
with torch.no_grad():
    diff = assert_close(ours(ids).logits, theirs(ids).logits, model, "our LoRA's logits and peft's")
print(f"max |our logits - peft logits| = {diff:.1e}")
print(lora.count_parameters(ours))
theirs.print_trainable_parameters()
del ours, theirs

# %% [markdown]
# **Your turn: the LoRA playground.** Pick a rank, alpha and the layers LoRA adapts, press **Run**: the playground
# counts the trainable parameters, estimates the training memory (chapter 5 explains the estimate), trains a few
# steps on this chapter's sentiment pairs, and checks that the merged model gives the LoRA model's logits. Every run
# is kept, so you can compare settings: what does doubling the rank do to the parameters, and to the loss after
# the same steps? What happens when you add the MLP projections (`gate_proj`, `up_proj`, `down_proj`)?

# %%
from course_utils.widgets import lora_playground

lora_playground(model, tok, train_data, rank=8, alpha=16, targets=("q_proj", "v_proj"),
                steps=max(2, P.train_steps // 2), batch_size=P.batch_size)

# %% [markdown]
# ## 3. Experiment: does LoRA beat prompting on chapter 2's task?
#
# Same model, same template (`Review: [X]\nSentiment: [Z]`, label names as answers), same test split, same
# scoring (chapter 2's answer search). The prompting baselines are measured now, on this split, with chapters 2
# and 3's tools: the five one-word templates of chapter 2 alone and as an ensemble, and four balanced
# demonstrations in the prompt (chapter 3's in-context learning; its kNN selection needs a sentence encoder that
# this chapter does not install).
#
# **Expected:** a few dozen LoRA steps on 180 labelled sentences beat every prompting number: the model no
# longer has to guess the task from the prompt, its weights now encode it. The run below writes checkpoints:
# it stops itself halfway (as if you pressed the stop button), then the same call resumes where it left off.

# %%
zero_shot = prompting.PromptClassifier(model, tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, batch_size=32).accuracy(X, Y)
one_word = prompting.Verbalizer(prompting.ONE_WORD_LABELS)
clfs = [prompting.PromptClassifier(model, tok, t, one_word, batch_size=32) for t in prompting.SENTIMENT_TEMPLATES]
template_scores = [c.scores(X) for c in clfs]  # scored once, used alone and averaged
best_template = max(prompting.accuracy(s, Y, one_word) for s in template_scores)
ensemble = prompting.accuracy(torch.stack([s.exp() for s in template_scores]).mean(0).log(), Y, one_word)
demos = icl.select_balanced(train_set, k=4, seed=0)
few_shot = icl.icl_accuracy(prompting.PromptClassifier(model, tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, batch_size=32),
                            test, demos)
print(f"zero-shot, this template {zero_shot:.3f} | best of chapter 2's five templates {best_template:.3f} | "
      f"their ensemble {ensemble:.3f} | 4 demonstrations {few_shot:.3f}")

run_dir = Path(tempfile.mkdtemp(prefix="ch4-lora-"))
cfg = sft.TrainConfig(steps=P.train_steps, batch_size=P.batch_size, lr=1e-3, warmup_steps=max(1, P.train_steps // 10),
                      eval_every=max(1, P.train_steps // 4), checkpoint_every=max(1, P.train_steps // 4),
                      output_dir=str(run_dir), plot="live")
set_seed(0)
tuned = lora.inject_lora(copy.deepcopy(model), ("q_proj", "v_proj"), r=8, alpha=16)
first = sft.train(tuned, train_data, cfg, eval_data=dev_data, stop_after=P.train_steps // 2)

# %% [markdown]
# The kernel could have died here: the checkpoint holds the LoRA weights (safetensors), the optimiser and
# schedule, the history and the random state. A *new* copy of the model resumes from it:

# %%
set_seed(0)
tuned = lora.inject_lora(copy.deepcopy(model), ("q_proj", "v_proj"), r=8, alpha=16)
result = sft.train(tuned, train_data, cfg, eval_data=dev_data)
print(f"resumed from step {result.resumed_from}; {result.seconds_per_step:.2f} s/step, "
      f"{result.tokens_per_second:.0f} tokens/s")
lora_acc = prompting.PromptClassifier(tuned, tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, batch_size=32).accuracy(X, Y)
print(f"LoRA accuracy after {P.train_steps} steps: {lora_acc:.3f} (zero-shot {zero_shot:.3f})")
summary = {"zero-shot": zero_shot, "best of 5\ntemplates": best_template, "5-template\nensemble": ensemble,
           "4 demon-\nstrations": few_shot, f"LoRA r=8\n{P.train_steps} steps": lora_acc}
ax = bar(summary, title="Sentiment accuracy on the same test split", ylabel="accuracy")
ax.axhline(1 / 3, color="grey", ls="--")
plt.show()

# %% [markdown]
# **The library's engine, same run.** `transformers.Trainer` with peft's LoRA, given the same batches in the same
# order, the same AdamW, schedule and clipping. Both curves should lie on top of each other: the engine is a
# readable re-implementation, not a different algorithm.

# %%
parity = sft.TrainConfig(steps=min(P.train_steps, 10), batch_size=P.batch_size, lr=1e-3, warmup_steps=1,
                         plot=None, progress=False)
peft_cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
a = lora.inject_lora(copy.deepcopy(model), ("q_proj", "v_proj"), r=8, alpha=16)
b = get_peft_model(copy.deepcopy(model), peft_cfg)
lora.copy_lora_to_peft(a, b)  # the same random A in both
ours_run = sft.train(a, train_data, parity)
lib_run = trainer.trainer_finetune(b, train_data, parity)
plt.figure(figsize=(6, 3))
plt.plot(ours_run.losses, "o-", label="course engine + our LoRA")
plt.plot(lib_run.losses, "x--", label="transformers.Trainer + peft")
plt.xlabel("step")
plt.ylabel("loss")
plt.legend()
plt.show()
gap = max(abs(x - y) for x, y in zip(ours_run.losses, lib_run.losses))
print(f"largest loss difference over {parity.steps} steps: {gap:.4f}")
assert gap < 0.01 * max(ours_run.losses)
del a, b

# %% [markdown]
# Same losses, not the same work. Trainer's model computes a row of logits, one score per vocabulary entry, at
# *every* position and then ignores the masked ones; the course engine asks for logits only where the next token
# is a target (`logits_to_keep`, a boolean mask of those positions), so the LM head never runs on the prompt or
# the padding. The key lines of `sft.target_token_losses`:
#
# ```python
# keep[:, :-1] = labels[:, 1:] != -100            # position t is kept when token t+1 is a target
# logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits   # (targets, vocabulary)
# ```
#
# The saving grows with the vocabulary and with the share of prompt tokens: sentiment prompts are long and
# their answers one word, and Gemma-3's head scores 262k tokens per position against SmolLM2's 49k.
# `make bench` measures both engines on both models (`bench/bench_peft.py`).

# %% [markdown]
# ## 4. Adapters and prefix tuning, before we compare them (LLM-TAP §5.2, 其它高效微调方式)
#
# **Adapters** (Houlsby et al. 2019) insert a small bottleneck network (down-projection, nonlinearity,
# up-projection, residual) between a sublayer and its residual connection, after attention and after the MLP.
# They *add depth*: every token passes through 60 more small layers, in series, so inference gets slower; the
# up-projection starts at zero, so the model starts unchanged, as with LoRA.
#
# **Prefix tuning** (Li & Liang 2021) learns `n` keys and values per layer that every token attends to, as if `n`
# invisible tokens preceded the input. **Soft prompts** (prompt tuning, Lester et al. 2021) learn `n` input
# embeddings instead (continuous prompts: 软提示). Either way the virtual tokens sit in the context window, so the
# real input can only be as long as what is left (LLM-TAP: 随着软提示的参数量增多, 实际输入序列的最大长度也会相应减小).
#
# ![One decoder layer: a bottleneck adapter (down-projection, nonlinearity, up-projection, with its own residual)
# after the attention sublayer and after the MLP, each before the layer's residual add; and prefix tuning's n
# learned keys and values placed in front of the real tokens' keys and values inside
# attention.](../figures/adapter_and_prefix.svg)
#
# The figure places both in one layer: the adapters sit *in series* on the main path (every token passes through
# them, hence the latency), while the prefix only adds keys and values that attention can read.

# %%
print(inspect.getsource(adapters.BottleneckAdapter.forward))
window = context_window(model)
for n in (20, 100, 1000):
    print(f"{n:5d} virtual tokens: {prefix.remaining_context(model, n):5d} of {window} positions left for the input")
soft = prefix.soft_prompt(copy.deepcopy(model), 8, init_text="Classify the sentiment:", tokenizer=tok)
ids = encode(tok, "Review: great\nSentiment:", model).input_ids
with torch.no_grad():
    logits = soft(input_ids=ids).logits
print(f"soft prompt: {ids.shape[1]} input tokens -> logits for {logits.shape[1]} positions (8 virtual + "
      f"{ids.shape[1]}); strip them before scoring: {tuple(prefix.strip_virtual_tokens(logits, 8).shape)}")
try:
    soft(input_ids=torch.ones(1, window - 4, dtype=torch.long, device=model.device))
except ContextLengthError as err:
    print("ContextLengthError:", err)
del soft

# %% [markdown]
# ## 5. Experiment: full fine-tuning vs LoRA vs adapters vs prefix tuning
#
# Each method starts from a fresh copy of the model and gets the same steps, batches and test split; the learning
# rates are the usual ranges for each (5e-5 full, 1e-3 LoRA and adapters, 1e-2 prefix), not tuned per method.
# **Expected**, after LLM-TAP and the LoRA paper's GPT-2 table (full 68.2, adapter 66.3, prefix 69.7, LoRA 70.4
# BLEU on E2E): similar accuracy for all; LoRA and the prefix train well under 1 % of the parameters; full
# fine-tuning needs the most memory (gradients and AdamW states for every weight); adapters add inference latency
# (two extra layers in series per block), merged LoRA adds none, the prefix adds a little (20 more keys).

# %%
rows, tuned_models = peft_methods.compare_methods(
    model, tok, train_data, X, Y, steps=P.train_steps, batch_size=P.batch_size,
    template=SENTIMENT_TEMPLATE, label_words=SENTIMENT_WORDS)
print(peft_methods.format_rows(rows))
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
for ax, col, log in zip(axes, ["trainable", "peak MB", "accuracy", "latency vs base"], [True, False, False, False]):
    bar({r["method"].replace(" ", "\n", 1): r[col] for r in rows}, title=col, ax=ax,
        fmt="{:.0f}" if col in ("trainable", "peak MB") else "{:.2f}")
    if log:
        ax.set_yscale("log")
plt.tight_layout()
plt.show()

# %% [markdown]
# The latency column of section 5 timed one forward pass of a 4-token input (close to one generation step),
# every model taking turns five times so that a busy moment of the machine does not land on one of them
# (`latency.compare_latency`). Timing noise on a shared 2-core CPU is still a few percent: read differences
# under ~5 % as noise.

# %%
lat = {r["method"].replace(" ", "\n", 1): r["latency vs base"] for r in rows}
ax = bar(lat, title="Inference latency relative to the base model (batch 1, 4 tokens)", ylabel="× base")
ax.axhline(1.0, color="grey", ls="--")
plt.show()

# %% [markdown]
# ## 6. Low rank, shown
#
# Why should a rank-8 update be enough? Hu et al. argue that the update a task needs has a low *intrinsic rank*.
# LLM-TAP lists what low rank means: rows and columns strongly linearly dependent, redundant information, a few
# basis vectors explain it. We can look: take the full fine-tune's real update $\Delta W = W_{tuned} - W_0$ of
# one query projection, and compare its singular values with those of a random matrix of the same shape and norm.
# **Expected:** the update's energy sits in a handful of directions; the random matrix spreads it over all.

# %%
full = tuned_models["full fine-tuning"]
layer_idx = len(model.model.layers) // 2
W0 = model.model.layers[layer_idx].self_attn.q_proj.weight.detach()
delta = full.model.layers[layer_idx].self_attn.q_proj.weight.detach() - W0
noise = torch.randn_like(delta)
noise *= delta.norm() / noise.norm()
s_delta, s_noise = lora.singular_values(delta).cpu(), lora.singular_values(noise).cpu()  # plotted on the CPU
plt.figure(figsize=(6, 3.2))
plt.semilogy(s_delta / s_delta[0], label=f"ΔW of full fine-tuning (layer {layer_idx} q_proj)")
plt.semilogy(s_noise / s_noise[0], label="random matrix, same shape and norm")
plt.xlabel("singular value index")
plt.ylabel("σ_i / σ_1")
plt.legend()
plt.show()
k_delta, k_noise = lora.effective_rank(s_delta, 0.9), lora.effective_rank(s_noise, 0.9)
print(f"directions holding 90% of the energy: ΔW {k_delta} of {len(s_delta)}, random {k_noise}")
assert k_delta < k_noise / 4, "expected the fine-tuning update to be far lower-rank than noise"


# %% [markdown]
# ## 7. What we measured
#
# The outputs above are this run's. A recorded run of the `cpu` profile (60 steps of 8 examples, 100 test
# sentences, a 2-core CPU with nothing else running, December 2026) gave:
#
# | method | trainable | peak memory | s / step | accuracy | latency vs base |
# |---|---|---|---|---|---|
# | full fine-tuning (lr 5e-5) | 134.5M (100 %) | 2269 MiB | 0.96 | 0.89 | 0.98× |
# | LoRA r=4 on q, v | 230k (0.17 %) | 797 MiB | 0.48 | 0.94 | 0.96× (merged) |
# | LoRA r=16 on q, v | 922k (0.68 %) | 806 MiB | 0.46 | **0.99** | 0.97× (merged) |
# | adapters, bottleneck 16 | 1.14M (0.84 %) | 820 MiB | 0.47 | 0.95 | **1.06×** |
# | prefix, 20 tokens | 230k (0.17 %) | 823 MiB | 0.48 | 0.94 | 0.96× |
#
# 1. **Fine-tuning beat every prompting result.** Zero-shot 0.58 → LoRA r=8 0.96 after 60 steps (section 3),
#    far above the prompting baselines measured in the same cell.
# 2. **The methods were close, and here full fine-tuning came last**, with one untuned learning rate per method.
#    LLM-TAP says the efficient methods perform *comparably* to full fine-tuning, and that is what the table shows:
#    with 100 test sentences one standard error is about 0.03, so 0.94 vs 0.99 is a small difference. Do not read a
#    ranking into it: in the LoRA paper's GPT-2 table (E2E, BLEU) LoRA (70.4) and prefix-layer tuning (69.7) beat
#    full fine-tuning (68.2), but full fine-tuning beats one of the adapter variants (66.3); the order depends on
#    the task, the budget and the tuning.
# 3. **Memory:** the efficient methods saved 64 % of this small model's peak (2269 → about 800 MiB at batch 8 × 41
#    tokens); chapter 5 explains where the rest goes.
# 4. **Latency as LLM-TAP says, at the edge of the noise:** adapters +6 % per forward (small input, batch 1),
#    the only method slower than the base; merged LoRA and full fine-tuning the same as the base within noise
#    (same matrices); the prefix's 20 extra keys cost too little to see at this size (0.96×, noise).
# 5. **Low rank:** after 60 full fine-tuning steps, 18 of the 576 singular directions of one ΔW held 90 % of its
#    energy; a random matrix of the same shape and norm needed 294.
# 6. **The two engines agree:** our loop and `transformers.Trainer` gave the same losses for 10 steps (difference
#    below 1e-4), because both see the same batches and use the same AdamW, schedule and normalisation.
#
# Tests that check these claims on every CI run:
# - `tests/test_peft_methods.py::test_chapter4_lora_beats_prompting_on_the_full_test_split`: 40 LoRA steps beat
#   both zero-shot and the kNN in-context baseline (measured in the test) by at least 10 points, on all 120 test
#   sentences.
# - `tests/test_sft.py`: resume and Trainer parity.
# - `tests/test_lora.py`: our LoRA gives the same logits as peft.
#
# Latency is timing, so it is measured and not asserted. `make bench` records the engine-vs-Trainer throughput
# (`bench/bench_peft.py`).
#
# ## 8. Concept check
#
# **Why is B initialised to zero in LoRA, and not A as well?** With B = 0 the product BA is 0, so the tuned model
# starts exactly as the pretrained one (LLM-TAP: 训练开始之前旁路对原模型不造成影响). If A were also zero, the
# gradients of both would be zero (each is multiplied by the other) and nothing would train.
#
# **Why does merged LoRA cost nothing at inference, when adapters do?** $W_0 + \frac{\alpha}{r}BA$ is one matrix of
# the original shape; the model after merging has exactly the base's layers. Adapters are extra layers in series
# that every token must pass through (LLM-TAP: 增加网络的深度, 带来额外的时间开销).
#
# **What does prefix tuning cost that LoRA does not?** Context: `n` virtual tokens occupy `n` positions of the
# window in every layer, so the real input can be `n` tokens shorter (and attention reads `n` more keys).
#
# **How many parameters does LoRA train on one matrix?** $r(d_{in} + d_{out})$ instead of $d_{in} d_{out}$: for
# a 576 × 576 projection at r = 8, 9,216 instead of 331,776 (2.8 %).

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/04_peft.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · LoRA's parameter count.** LoRA on one `nn.Linear` of shape (`d_out`, `d_in`) at rank `r` trains
# A (r × d_in) and B (d_out × r). How many parameters is that, for a list of such layers?

# %% tags=["exercise"]
def my_lora_params(shapes: list[tuple[int, int]], r: int) -> int:
    """Trainable parameters of rank-r LoRA on linear layers of the given (d_out, d_in) shapes."""
    # TODO: A and B of every layer
    raise NotImplementedError


checks.check("04.lora_params", my_lora_params)

# %% tags=["solution"]
def my_lora_params(shapes: list[tuple[int, int]], r: int) -> int:
    """Trainable parameters of rank-r LoRA on linear layers of the given (d_out, d_in) shapes."""
    return sum(r * d_in + d_out * r for d_out, d_in in shapes)  # A is r x d_in, B is d_out x r


checks.check("04.lora_params", my_lora_params)

# %% [markdown]
# **Core · a LoRA layer.** Section 2's $h = W_0 x + \frac{\alpha}{r} B A x$ as an `nn.Module`: the base
# `nn.Linear` frozen, `A` of shape (r, in) random, `B` of shape (out, r) zero, so the layer starts exactly as
# the base. The checker compares it with `lora.LoRALinear` at init and with trained (non-zero) A and B.

# %% tags=["exercise"]
import torch
from torch import nn


class MyLoRA(nn.Module):
    """base(x) + (B A x) * alpha / r, with the base frozen and only A and B trainable."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        # TODO: freeze base; create the trainable A (r x in, random) and B (out x r, zero); keep alpha / r
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TODO: the frozen path plus the scaled low-rank path
        raise NotImplementedError


checks.check("04.lora_layer", MyLoRA)

# %% tags=["solution"]
import math

import torch
from torch import nn


class MyLoRA(nn.Module):
    """base(x) + (B A x) * alpha / r, with the base frozen and only A and B trainable."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # what loralib and peft do
        self.B = nn.Parameter(torch.zeros(base.out_features, r))  # zero: the layer starts as the base
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling


checks.check("04.lora_layer", MyLoRA)

# %% [markdown]
# **Stretch · effective rank.** Section 6 asks how many directions carry 90 % of an update. Given its
# singular values `s` (largest first), return the smallest `k` whose top-`k` values hold at least `energy`
# of the update's energy, the sum of `s ** 2` (0 for an all-zero update).

# %% tags=["exercise"]
import torch


def my_effective_rank(s: torch.Tensor, energy: float = 0.9) -> int:
    """How many of the largest singular values hold `energy` of sum(s ** 2)."""
    # TODO: cumulative share of the energy, then the first k that reaches `energy`
    raise NotImplementedError


checks.check("04.effective_rank", my_effective_rank)

# %% tags=["solution"]
import torch


def my_effective_rank(s: torch.Tensor, energy: float = 0.9) -> int:
    """How many of the largest singular values hold `energy` of sum(s ** 2)."""
    sq = s.double() ** 2
    if sq.sum() == 0:
        return 0
    share = sq.cumsum(0) / sq.sum()
    return int((share < energy - 1e-6).sum()) + 1  # the tolerance keeps float noise from adding a direction


checks.check("04.effective_rank", my_effective_rank)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("04")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Print `lora.count_parameters` for `inject_lora(..., target_modules="all-linear", r=8)`. How does
#    it compare with q and v only?
# 2. *(core)* Rerun section 3 with `r=1` and `r=64`. Does accuracy change? Hu et al. report that very small ranks
#    suffice on GPT-3.
# 3. *(core)* Set `lr=1e-2` for full fine-tuning in `peft_methods.METHODS` and rerun section 5. What happens to the
#    loss (and to the clear error the engine raises, if it diverges)?
# 4. *(stretch)* Use `prefix.soft_prompt(...)` as a sixth method (`peft_methods.Method` needs a new kind). How
#    many parameters does it train, and how accurate is it after the same steps?

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("04_peft", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("04_peft")

# %% [markdown]
# ## Summary: what to remember
#
# - Supervised fine-tuning learns only the response: prompt positions get the label -100, and a checkpoint of
#   weights, optimiser, schedule and random state lets a stopped run resume where it was.
# - LoRA adds a scaled low-rank bypass BA to a frozen W0; B starts at zero so training starts from the base model, A
#   is random so the gradients are not zero, and merging folds BA back into one matrix.
# - The from-scratch LoRA gives peft's logits, and the course's loop gives `transformers.Trainer`'s losses on the same
#   batches: a readable re-implementation, not a different algorithm.
# - A few dozen LoRA steps on a few hundred labelled sentences beat the prompting baselines of chapters 2 and 3
#   (templates, their ensemble, demonstrations) measured on the same test split.
# - Full fine-tuning, LoRA, adapters and prefix tuning reached similar accuracy, while the efficient methods trained
#   under 1 % of the weights and needed far less memory.
# - At inference merged LoRA costs nothing, adapters add latency because they add layers in series, and a prefix or
#   soft prompt takes up part of the context window.
# - A real fine-tuning update keeps most of its energy in a few singular directions, where a random matrix of the
#   same shape spreads it over all: the low rank LoRA relies on.
#
# ## Further reading
#
# - Hu, E. J., Shen, Y., Wallis, P., et al. (2021). *LoRA: Low-Rank Adaptation of Large Language Models*. ICLR 2022.
#   arXiv:2106.09685. The method, its initialisation and merging, and the comparison table with adapters and
#   prefix-layer tuning.
# - Houlsby, N., Giurgiu, A., Jastrzebski, S., et al. (2019). *Parameter-Efficient Transfer Learning for NLP*. ICML
#   2019. arXiv:1902.00751. Bottleneck adapters after attention and after the MLP.
# - Li, X. L., & Liang, P. (2021). *Prefix-Tuning: Optimizing Continuous Prompts for Generation*. ACL-IJCNLP 2021.
#   arXiv:2101.00190. Trained keys and values in every layer.
# - Lester, B., Al-Rfou, R., & Constant, N. (2021). *The Power of Scale for Parameter-Efficient Prompt Tuning*. EMNLP
#   2021. arXiv:2104.08691. Soft prompts on the input embeddings, and how the gap closes with model size.
# - Schick, T., & Schütze, H. (2020). *Exploiting Cloze Questions for Few Shot Text Classification and Natural
#   Language Inference*. EACL 2021. arXiv:2001.07676. Prompt-based fine-tuning, the idea behind this chapter's pairs.
# - Loshchilov, I., & Hutter, F. (2017). *Decoupled Weight Decay Regularization*. ICLR 2019. arXiv:1711.05101.
#   AdamW, the optimiser of every fine-tune in the course.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.2 (高效微调). https://intro-llm.github.io/. The section this chapter teaches.
