# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 6 · Position encodings and context windows (上下文窗口扩展)
#
# *LLM-TAP §5.3 (Zhang et al., Large Language Models: From Theory to Practice, ch. 5): the context window,
# position encodings that extrapolate (ALiBi), and RoPE position interpolation (插值法). LLM Q&A §8 ("can LLaMA's
# input be infinitely long?") and §11 ("how can a large model handle longer text?").*
#
# **Learning objectives.** After this chapter you can
# 1. say what a context window is and why a model cannot simply be run past it;
# 2. write RoPE and ALiBi from scratch and check them against transformers' Llama and BLOOM code;
# 3. train tiny GPTs with five position encodings and measure which ones extrapolate past their training length;
# 4. extend a RoPE model's context by interpolation or NTK scaling, and set `rope_parameters` on a real model;
# 5. score a document longer than the window with chunks or a sliding window, and measure the trade-off.
#
# **Before you start.** Chapters: 1 (attention masks, the causal mask, the context window), 4 (the fine-tuning
# engine, which trains the tiny GPTs). Maths: dot products, 2-D rotations (or complex multiplication), sine and
# cosine, geometric sequences (the frequencies base^(-2i/d)), softmax's invariance to adding a constant to a row,
# and perplexity = exp(mean negative log-likelihood).
# **Study time:** about 15 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 29 s |
# | cpu | the same 2-core CPU, nothing else running | 6.6 min (training the TinyGPT variants 4.5) |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import inspect

import matplotlib.pyplot as plt
import torch
from transformers import LlamaConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from course_utils import extrapolation, long_context, positions
from course_utils.config import profile, sizes
from course_utils.data.corpus import decode_bytes, encode_bytes, load_corpus
from course_utils.device import pick_device, set_seed
from course_utils.models import ContextLengthError, context_window, load_model
from course_utils.plotting import plot_alibi_heads, plot_loss_by_position
from course_utils.tinygpt import GPTConfig, TinyGPT, loss_by_position
from course_utils.widgets import rope_explorer

P = profile()
S = sizes("extrapolation", P.name)  # the TinyGPT experiments
REAL = sizes("ch06", P.name)  # the real model's documents and windows
set_seed(0)
device = pick_device()
print(f"profile {P.name}: TinyGPTs of {S.n_layer} layers x {S.n_embd} dims trained at L = {S.seq_len} bytes "
      f"for {S.steps} steps; device {device}")

# %% [markdown]
# ## 1. The context window
#
# A model's **context window** (上下文窗口) is how many tokens it reads at once: the span of text it can take
# into account for each prediction. It is fixed by training, not by the code. SmolLM2 was trained on sequences
# of up to 8,192 tokens, and its config says so:

# %%
model, tok = load_model(P.model_name)
print("max_position_embeddings:", context_window(model), "| rope_parameters:", model.config.rope_parameters)

# %% [markdown]
# **LLM Q&A §8: can LLaMA's input be infinitely long?** In principle yes: RoPE has no table of positions, so
# nothing in the code stops a 100,000-token input (only memory, since attention grows with the square of the
# length). But positions never seen in training produce rotations the model never learned to read, and quality
# collapses; that is why models ship with a length limit (2k for LLaMA 1). The course's loader refuses to run
# past the window unless told to (`models.check_fits`). This chapter measures the collapse, and the cures.
#
# ## 2. Why a Transformer needs positions at all
#
# Attention is a weighted sum over a *set* of keys: shuffle them and the sum is the same. Without a position
# signal, a decoder only knows order through its causal mask. A tiny untrained model shows it: swap the first
# two tokens, and with no positions the last token's output does not change; with RoPE it does.

# %%
ids = torch.tensor([[5, 9, 17, 33, 65, 100]])
swapped = ids[:, [1, 0, 2, 3, 4, 5]]
for pos in ("none", "rope"):
    m = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position=pos)).eval()
    same = torch.allclose(m(ids).logits[0, -1], m(swapped).logits[0, -1], atol=1e-5)
    print(f"{pos:5}: last output unchanged when the first two tokens swap? {same}")

# %% [markdown]
# The classic answers add a vector per position to each token embedding: **learned** (GPT-2: a trained table
# of 1,024 rows, one per position of its window, so there is simply no row for position 1,025) or **sinusoidal**
# (Vaswani et al.: `sin`/`cos` waves of geometrically spaced wavelengths, defined for every position). Two newer
# ones act inside attention and are the ones today's models use: RoPE and ALiBi.
#
# ## 3. RoPE from scratch (Su et al., RoFormer)
#
# RoPE rotates each pair of query/key dimensions by an angle proportional to the position $m$:
# pair $i$ turns by $m\theta_i$ with $\theta_i = \text{base}^{-2i/d}$. A rotated query at $m$ and key at $n$
# have the dot product $\langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle$: **only the distance counts**.
# transformers pairs dimension $i$ with $i + d/2$ (`rotate_half`); Meta's original code pairs $2i$ with $2i+1$.
# Both are RoPE, but a checkpoint converted from one layout to the other needs its q/k weights permuted.
#
# ![RoPE turns each pair of query and key dimensions by m times theta_i at position m, so a query at m and a key
# at n meet at the angle (m - n) theta_i and their score depends only on the distance.](../figures/rope_rotation.svg)
#
# The figure shows one pair of dimensions: rotating the query by $m\theta_i$ and the key by $n\theta_i$ leaves
# an angle of $(n-m)\theta_i$ between them, wherever the pair of tokens sits in the text.
#
# The course's RoPE is three small functions. The angles first: a frequency per pair, and the cosine and sine
# of $m\theta_i$ for every position (dimension $i$ and $i + d/2$ share an angle):

# %%
print(inspect.getsource(positions.rope_inv_freq))
print(inspect.getsource(positions.rope_cos_sin))

# %% [markdown]
# Then the rotation itself, `apply_rope(x) = x * cos + rotate_half(x) * sin`, where `rotate_half` maps
# $[x_1, x_2] \to [-x_2, x_1]$ (the two halves of the head). Those two functions are this chapter's warm-up and
# core exercises, so their code is not printed here; the next cell checks the course's versions against
# transformers' Llama, and the scores show that only the distance counts.

# %%
q, k = torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
pos_ids = torch.arange(10)[None]
for rope_type, scale in (("default", 1.0), ("linear", 4.0)):  # linear = position interpolation, section 6
    params = {"rope_type": rope_type, "rope_theta": 10000.0} | ({"factor": scale} if scale > 1 else {})
    rotary = LlamaRotaryEmbedding(LlamaConfig(hidden_size=32, num_attention_heads=2, head_dim=16,
                                              rope_parameters=params))
    q_ref, k_ref = apply_rotary_pos_emb(q, k, *rotary(q, pos_ids))
    diff = max((positions.apply_rope(q, pos_ids, scale=scale) - q_ref).abs().max().item(),
               (positions.apply_rope(k, pos_ids, scale=scale) - k_ref).abs().max().item())
    print(f"ours vs transformers' LlamaRotaryEmbedding ({rope_type}, scale {scale}): max diff {diff:.1e}")
    assert diff < 1e-5

qv, kv = torch.randn(1, 16), torch.randn(1, 16)


def score(m: int, n: int) -> float:
    return (positions.apply_rope(qv, torch.tensor([m])) * positions.apply_rope(kv, torch.tensor([n]))).sum().item()


print(f"score(q at 7, k at 3) = {score(7, 3):.4f}   score(q at 104, k at 100) = {score(104, 100):.4f}")
assert abs(score(7, 3) - score(104, 100)) < 1e-4

# %% [markdown]
# The first pairs spin every few tokens; the last ones take tens of thousands of tokens per turn. Inside a
# training window of 128 tokens, the slow pairs only ever show a small arc of their circle: reading past the
# window shows them angles never seen in training. Move the sliders: a larger **base** slows every pair; a
# **scale** (interpolation) stretches the waves so a longer input stays inside the trained angles.

# %%
print("wavelengths (tokens per turn) of a 64-dim head, base 10,000:",
      [round(w) for w in positions.rope_wavelengths(64)[::4].tolist()])
rope_explorer(head_dim=64, base=10000.0, max_pos=512, train_len=128)

# %% [markdown]
# ## 4. ALiBi from scratch (Press et al. 2022)
#
# ALiBi drops position vectors entirely and adds a penalty proportional to distance to every attention score
# (LLM-TAP §5.3): $\text{softmax}(q_i K^T + m\cdot[-(i-1), \dots, -2, -1, 0])$. Each head has its own slope
# $m \in \{\frac{1}{a}, \frac{1}{a^2}, \dots, \frac{1}{256}\}$ with $a^{\text{num\_heads}} = 256$: with 8 heads,
# $1/2, 1/4, \dots, 1/256$. Steep heads look at the last few tokens, flat heads far back. For a head count $n$
# that is not a power of two, Press et al.'s reference code (`get_slopes`) takes the slopes of the largest power
# of two below it, $c = 2^{\lfloor \log_2 n \rfloor}$, and *appends* every other slope of $2c$ heads after them
# until there are $n$: 12 heads get $1/2, \dots, 1/256$ (the 8-head slopes), then
# $2^{-0.5}, 2^{-1.5}, 2^{-2.5}, 2^{-3.5}$. The appended *values* sit among the first ones ($2^{-1.5}$ lies
# between $1/2$ and $1/4$), but in head order they come after them.
#
# ![ALiBi adds -m (i - j) to the score of query i and key j and masks future keys, shown for one head with slope
# 1/2, beside the geometric slopes 1/2 to 1/256 of eight heads.](../figures/alibi.svg)
#
# The figure shows what ALiBi adds to the scores: nothing on the diagonal, a penalty that grows linearly with the
# distance to the key, and, beside it, the eight heads' slopes, which decide how fast each head's attention fades
# with distance.

# The bias itself is a few lines: the distance $i - j$ of every query to every key, times each head's slope,
# negated, with $-\infty$ on future keys (the causal mask). The slopes (`alibi_slopes`, the rule above) are the
# chapter's stretch exercise.

# %%
print(inspect.getsource(positions.alibi_bias))

# %%
print("8 heads: ", [f"1/{1 / s:.0f}" for s in positions.alibi_slopes(8).tolist()])
print("12 heads:", [round(s, 4) for s in positions.alibi_slopes(12).tolist()])
for heads in (8, 12, 20):  # BLOOM's implementation is the library reference
    bloom = build_alibi_tensor(torch.ones(1, 4), heads, torch.float32)[:, 0, 1]
    assert torch.allclose(bloom, positions.alibi_slopes(heads), atol=1e-6)
print("slopes identical to BLOOM's build_alibi_tensor for 8, 12 and 20 heads")
print("bias of head 1 (m = 1/2) for 5 tokens:\n", positions.alibi_bias(8, 5)[0])
plot_alibi_heads(8, length=12)
plt.show()

# %% [markdown]
# BLOOM adds $m\cdot j$ (the key's index) instead of $-m(i-j)$: the same value added to a whole row, which the
# softmax ignores, so the two are equal *under a causal mask* (tested in `tests/test_positions.py`). With
# bidirectional attention use $-m|i-j|$ (`alibi_bias(..., causal=False)`).
#
# ## 5. Experiment: which encodings extrapolate?
#
# Five TinyGPTs, identical except for the position encoding (`none`, `learned`, `sinusoidal`, `rope`, `alibi`),
# are trained on the same bytes of the Python language reference (`course_utils/data/corpus.py`, PSF licence) at
# context L, then scored on windows of 1, 2, 4 and 8 × L **of the same held-out text** (so the lengths differ
# only in how much context each byte gets and how far the positions go).
#
# **Expected** (Press et al. 2022, Fig. 1): ALiBi's perplexity stays flat (or improves: more context) past L;
# sinusoidal and RoPE degrade; learned positions cannot run past L at all.

# %%
train_ids, val_ids = encode_bytes(load_corpus("train")), encode_bytes(load_corpus("val"))
print(f"corpus: {len(train_ids):,} training bytes, {len(val_ids):,} validation bytes")
runs = extrapolation.train_variants(S, train_ids, device=device)
tiny_models = {name: m for name, (m, _) in runs.items()}
print(f"{tiny_models['rope'].num_parameters():,} parameters each; "
      f"{sum(r.seconds for _, r in runs.values()) / len(runs):.0f} s of training per variant")
table = extrapolation.length_table(tiny_models, val_ids, S)
print(extrapolation.format_length_table(table, S.seq_len))
extrapolation.plot_length_table(table, S.seq_len)
plt.show()

# %% [markdown]
# Perplexity averages over all positions of a window. Where does each model break? The loss at each position of
# an 8 × L window (learned positions stop at L):

# %%
curves = {}
for name, m in tiny_models.items():
    length = S.seq_len if name == "learned" else 8 * S.seq_len
    curves[name] = loss_by_position(m, val_ids, length, n_windows=len(val_ids) // (8 * S.seq_len))
plot_loss_by_position(curves, S.seq_len)
plt.show()
try:
    tiny_models["learned"](val_ids[: 2 * S.seq_len][None].to(device))
except ContextLengthError as err:
    print("learned, 2 x L:", err)

# %% [markdown]
# **Measured** (cpu profile, L = 64 bytes, 600 steps, 4 layers × 128 dims × 8 heads, 0.8 M parameters, on a
# 2-core CPU; perplexity per byte on 36,352 held-out bytes):
#
# | position | 1 × L = 64 | 2 × L = 128 | 4 × L = 256 | 8 × L = 512 |
# |---|---|---|---|---|
# | none | 8.03 | 8.91 | 10.17 | 11.16 |
# | learned | 5.38 | n/a | n/a | n/a |
# | sinusoidal | 6.24 | 11.82 | 16.71 | 20.54 |
# | rope | **4.25** | 4.49 | 9.18 | 17.24 |
# | alibi | 4.69 | 4.63 | 4.61 | **4.60** |
#
# ALiBi reproduces the paper: flat to 8 × L, even a little better with more context. RoPE holds at 2 × L and
# collapses by 4 × L; sinusoidal degrades from 2 × L on. NoPE (`none`) is the worst inside the window (a 4-layer
# model can only infer positions from the causal mask) and degrades more gently. Inside the window RoPE is the
# best (4.25 against ALiBi's 4.69): at this scale ALiBi pays for its extrapolation with in-window quality.
# The loss-by-position plot shows the mechanism: every model except ALiBi is fine up to L and then gets worse the
# further it reads. (In the smoke profile the models barely train and the numbers mean little.) A test
# checks the claim at this size: `tests/test_extrapolation.py::test_alibi_extrapolates_rope_does_not_learned_cannot`.
#
# What the text you read was, in the model's own words (200 bytes sampled from the ALiBi model):

# %%
prompt = encode_bytes("The \"with\" statement\n")[None].to(device)
print(decode_bytes(tiny_models["alibi"].generate(prompt, REAL.sample_bytes, temperature=0.8)[0]))

# %% [markdown]
# ## 6. Position interpolation (位置插值)
#
# To read L' > L tokens with a RoPE model, position interpolation (Chen et al. 2023) squeezes the new positions
# into the trained range (LLM-TAP §5.3): $f'(x, m) = f(x, \frac{mL}{L'})$, i.e. position $m$ is rotated as if it
# were at $m/s$ with $s = L'/L$, so $[0, L')$ maps to $[0, L)$.
#
# ![For an input four times the trained length, extrapolation uses positions never seen in training, while
# position interpolation scales every position by L/L' so all of them fall inside the trained
# range.](../figures/interpolation_vs_extrapolation.svg)
#
# The figure shows the two choices: extrapolation keeps the spacing and leaves the trained range; interpolation
# stays in the trained range and makes the spacing finer. Dividing the positions is the same as dividing every
# frequency by $s$ (transformers' `rope_type="linear"`):

# %%
x = torch.randn(1, 8, 16)
pi = positions.apply_rope(x, torch.arange(0, 32, 4), scale=4.0)
print("linear x4 at positions 0, 4, 8, ... equals plain RoPE at 0, 1, 2, ...:",
      torch.allclose(pi, positions.apply_rope(x), atol=1e-5))
print(f"NTK-aware base for x4 with head_dim 16: {positions.ntk_base(10000.0, 4.0, 16):,.0f} (from 10,000)")

# %% [markdown]
# Interpolation slows *every* pair by $s$, including the fast ones that tell neighbouring tokens apart: after
# dividing by 4, adjacent tokens are a quarter-step apart. **NTK-aware scaling** raises the base instead,
# $\text{base}' = \text{base}\cdot s^{d/(d-2)}$, which keeps the fastest pair and slows the slowest by exactly $s$
# (YaRN and Llama 3.1's rule refine the same idea per frequency band).
#
# **Experiment.** Take the RoPE model to 4 × L three ways (extrapolation: positions as they are; interpolation;
# NTK), then fine-tune each for a few steps on windows of 4 × L, measuring perplexity at 4 × L as it goes.
# **Expected** (Chen et al. 2023): interpolation starts worse than in-window but recovers within few steps;
# extrapolation recovers slowly.

# %%
ext = extrapolation.extension_experiment(tiny_models["rope"], train_ids, val_ids, S)
for name, curve in ext.items():
    print(f"{name:14}", "  ".join(f"step {s}: {p:.2f}" for s, p in curve))
extrapolation.plot_extension(ext, S)
plt.show()

# %% [markdown]
# **Measured** (cpu profile; perplexity at 4 × L = 256 bytes; the original model scores 4.25 at L):
#
# | method | step 0 | step 10 | step 20 | step 40 | step 60 |
# |---|---|---|---|---|---|
# | extrapolation | 9.18 | 6.07 | 5.28 | 4.55 | 4.31 |
# | interpolation (linear × 4) | 26.19 | 9.55 | 8.09 | 6.28 | 5.39 |
# | NTK (base × 4.9) | **4.92** | **4.53** | **4.35** | **4.21** | **4.12** |
#
# **This does not reproduce Chen et al.** At this scale interpolation is the *worst* start and is still behind
# extrapolation after 60 steps. With 240 steps (measured once with `extend_steps=240`) all three converge, and
# the order holds: extrapolation 3.85, interpolation 4.07, NTK 3.83 (all better than the 4.25 at L: more
# context helps once the model can read it). NTK scaling is best at every step. The likely reason is the one
# NTK scaling was invented for: our byte-level model has
# 16-dimensional heads and depends on telling *adjacent bytes* apart, which is exactly what dividing the fast
# frequencies by 4 blurs; NTK leaves them alone. Chen et al.'s 7B models (128-dim heads, subword tokens, 1,000
# fine-tuning steps) lean far less on the fastest pairs. Try the gpu profile (L = 128, 32-dim heads, 200 steps)
# to see whether the order changes as the model grows.
#
# ## 7. Context extension on the real model: `rope_parameters`
#
# transformers 5 keeps the RoPE settings in `config.rope_parameters` (4.x: `rope_scaling` and `rope_theta`).
# `positions.set_rope_scaling` sets it and rebuilds the rotary module in place:
# `linear` (interpolation), `dynamic` (NTK with a base that grows only when the input is longer than the window),
# `yarn` (per-band interpolation plus an attention temperature), and `ntk` (static NTK: a larger `rope_theta`).
# Here every method is asked to extend the window 4×, and scored on a document that *fits* the original window.
# **Expected:** linear hurts inside the window without fine-tuning (every distance looks 4× shorter); dynamic
# changes nothing (it only acts past 8,192 tokens); yarn and NTK cost a little.

# %%
doc = tok(load_corpus("test"), return_tensors="pt").input_ids[0][: REAL.doc_tokens]
rope_rows = {}
for rope_type, factor in (("default", 1), ("linear", 2), ("linear", 4), ("dynamic", 4), ("yarn", 4), ("ntk", 4)):
    positions.set_rope_scaling(model, rope_type, factor)
    r = long_context.sliding_window_perplexity(model, doc, window=len(doc))
    rope_rows[f"{rope_type} x{factor}"] = r.perplexity
    print(f"{rope_type:8} x{factor}: perplexity {r.perplexity:7.2f} on {len(doc)} tokens ({r.seconds:.1f} s)")
positions.set_rope_scaling(model)  # back to the trained setting
assert abs(rope_rows["dynamic x4"] - rope_rows["default x1"]) < 1e-3 * rope_rows["default x1"]

# %% [markdown]
# **Measured** (cpu profile, 2,048 tokens of the held-out Python reference): default 12.11; linear × 2 34.04;
# linear × 4 98.07;
# dynamic × 4 12.11 (identical, as expected); yarn × 4 13.39; NTK × 4 13.40 (about 4 s each).
# Interpolating without fine-tuning costs a lot, which is why Chen et al. fine-tune for up to 1,000 steps.
#
# In the gpu profile, the next cell reads a document longer than the window (about 16,000 tokens) with the
# default RoPE, `dynamic` and `yarn`: LLM Q&A §8's question answered on a real model. On 2 cores one such
# forward pass takes minutes, so the cpu and smoke profiles skip it.

# %%
if REAL.long_doc_tokens:  # the gpu profile's
    long_doc = tok(load_corpus("test") + load_corpus("val"), return_tensors="pt").input_ids[0][: REAL.long_doc_tokens]
    for rope_type, factor in (("default", 1), ("dynamic", 2), ("yarn", 2)):
        positions.set_rope_scaling(model, rope_type, factor)
        r = long_context.sliding_window_perplexity(model, long_doc, window=len(long_doc))
        print(f"{rope_type:8} x{factor}: perplexity {r.perplexity:.2f} on {len(long_doc)} tokens")
    positions.set_rope_scaling(model)
else:
    print("skipped outside the gpu profile")

# %% [markdown]
# ## 8. Longer texts without a longer window (LLM Q&A §11)
#
# The LLM Q&A lists four ways to handle long text: a bigger model; attention itself (every token can look at every
# other, at quadratic cost); **sliding windows or chunking**; and special architectures such as Transformer-XL and
# the Compressive Transformer, which carry a memory of earlier segments. Chunking cuts the text into independent
# windows: each token is read once, but the first tokens of every chunk have almost no context. A sliding window
# moves by a `stride` smaller than the window and scores only the new tokens, so each has at least
# `window - stride` tokens of context, at `window / stride` times the compute. Transformer-XL makes this
# cheap by caching the previous segment's hidden states instead of recomputing them.
#
# **Expected:** perplexity falls as the stride shrinks (more context), with diminishing returns, while the
# compute grows in proportion.

# %%
window = REAL.window
strides = [window, window // 2, window // 4, window // 8]
sweep = long_context.stride_sweep(model, doc, window, strides)
for r in sweep:
    print(f"stride {r.stride:4}: perplexity {r.perplexity:6.2f}  forward passes {r.forward_passes:3}  "
          f"tokens read per token scored {r.mean_context:.1f}  ({r.seconds:.1f} s)")
long_context.plot_stride_sweep(sweep)
plt.show()
whole = long_context.sliding_window_perplexity(model, doc, window=len(doc)).perplexity
print(f"the whole document in one window: {whole:.2f}")

# %% [markdown]
# **Measured** (cpu profile, window 512 on the same 2,048 tokens): stride 512 (chunking) 15.42 with 4 forward
# passes; stride 256 12.83 (7); stride 128 12.66
# (13); stride 64 12.63 (25 passes, 22 s); the whole document in one window:
# 12.11. Halving the stride recovers most of what chunking loses; going further buys little for
# twice the compute each time.
#
# ## 9. What we measured
#
# * Our RoPE equals transformers' rotary embedding (plain and linear-scaled) to 1e-5; our ALiBi slopes equal
#   BLOOM's for 8, 12 and 20 heads (cells above; `tests/test_positions.py`).
# * Length extrapolation, trained at L = 64: ALiBi flat to 8 × L; RoPE, sinusoidal and none degrade; learned
#   cannot run (section 5; the ALiBi and RoPE claims tested in `tests/test_extrapolation.py`).
# * Extending RoPE 4×: NTK best, extrapolation second, interpolation worst at this scale; a difference from
#   Chen et al. that the text reports rather than hides (section 6).
# * On SmolLM2, linear scaling without fine-tuning raises perplexity inside the window; dynamic changes nothing
#   there (asserted in section 7).
#
# ## 10. Concept check
#
# **What is a context window, and what decides it?** The number of tokens the model reads at once; the length it
# was trained at (and, for learned positions, the size of the table), not the code.
#
# **Why can ALiBi extrapolate when learned positions cannot?** A learned table has no row for an unseen position;
# ALiBi has no position vectors, only a distance penalty that is defined for any distance and that makes far keys
# matter little, so a longer input looks like a familiar one with more, faint, history.
#
# **What does position interpolation do to RoPE?** It divides every position by $s = L'/L$ (equivalently every
# frequency), so an input $s$ times longer uses only angles seen in training. The cost: neighbours sit $1/s$
# apart, a resolution the model must learn with a short fine-tune.
#
# **How does NTK-aware scaling differ?** It raises the base, $\text{base}\cdot s^{d/(d-2)}$: fast pairs (local
# order) are kept, slow pairs (long range) are interpolated.
#
# **How can a model handle text longer than its window?** Chunking (cheap, loses context at chunk starts), a
# sliding window (more context, more compute), memory across segments (Transformer-XL), or extending the window
# itself (interpolation, NTK, YaRN, plus a short fine-tune).

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/06_positions_and_context.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · `rotate_half`.** The transformers layout of RoPE pairs dimension *i* with *i + d/2*:
# `[x1, x2] -> [-x2, x1]` on the last dimension.

# %% tags=["exercise"]
import torch


def my_rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[..., d] -> [..., d]: the two halves of the last dimension swapped, the new first half negated."""
    # TODO: split the last dimension in two halves and put them back together
    raise NotImplementedError


checks.check("06.rotate_half", my_rotate_half)

# %% tags=["solution"]
import torch


def my_rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[..., d] -> [..., d]: the two halves of the last dimension swapped, the new first half negated."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


checks.check("06.rotate_half", my_rotate_half)

# %% [markdown]
# **Core · RoPE.** Rotate `x` (`[..., seq, d]`) to the positions `0 .. seq-1`: pair *i* turns by
# $m\theta_i$, $\theta_i = \text{base}^{-2i/d}$, and the result is `x * cos + rotate_half(x) * sin`, with
# the same angle for dimensions *i* and *i + d/2*. The course's `rotate_half` is imported for you.

# %% tags=["exercise"]
import torch

from course_utils.positions import rotate_half


def my_apply_rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x [..., seq, d] rotated to positions 0 .. seq-1."""
    # TODO: the frequencies theta_i, the angles m * theta_i for every position, then the rotation
    raise NotImplementedError


checks.check("06.apply_rope", my_apply_rope)

# %% tags=["solution"]
import torch

from course_utils.positions import rotate_half


def my_apply_rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x [..., seq, d] rotated to positions 0 .. seq-1."""
    seq, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)   # [d/2]
    angles = torch.arange(seq, dtype=torch.float32)[:, None] * theta    # [seq, d/2]
    angles = torch.cat((angles, angles), dim=-1)                        # dimension i and i + d/2 share an angle
    return x * angles.cos() + rotate_half(x) * angles.sin()


checks.check("06.apply_rope", my_apply_rope)

# %% [markdown]
# **Stretch · ALiBi slopes for any head count.** For a power of two `n`: $1/a, 1/a^2, \dots, 1/a^n$ with
# $a^n = 256$. Otherwise (section 4): the slopes of the largest power of two below `n`, then, appended after
# them, every other slope of twice that many heads, until there are `n`. The checker tries 1, 2, 6, 8, 12, 16
# and 20 heads.

# %% tags=["exercise"]
import math


def my_alibi_slopes(num_heads: int) -> list[float]:
    """One ALiBi slope per head."""
    # TODO: the power-of-two case first, then the rule for the other head counts
    raise NotImplementedError


checks.check("06.alibi_slopes", my_alibi_slopes)

# %% tags=["solution"]
import math


def my_alibi_slopes(num_heads: int) -> list[float]:
    """One ALiBi slope per head."""
    def geometric(n: int) -> list[float]:
        a = 2 ** (8 / n)  # a ** n = 256
        return [a ** -(h + 1) for h in range(n)]

    c = 2 ** math.floor(math.log2(num_heads))
    return geometric(c) + geometric(2 * c)[0::2][: num_heads - c]


checks.check("06.alibi_slopes", my_alibi_slopes)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("06")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Print `positions.alibi_slopes(6)`. Which slopes come from 4 heads and which from 8?
# 2. *(core)* Set `S = dataclasses.replace(S, seq_len=32)` and rerun section 5. Does the order of the encodings
#    change?
# 3. *(core)* In section 6, add `"ntk"` with `factor` 8 instead of 4 (`extrapolation.extended(model, "ntk", 8)`): is a larger
#    base still harmless at 4 × L?
# 4. *(stretch)* Give `TinyGPT` a `"rope+alibi"` mode (both at once) and test it in section 5.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("06_positions_and_context", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("06_positions_and_context")

# %% [markdown]
# ## Summary: what to remember
#
# - A context window is the length a model was trained at, not a limit in the code; past it, positions the model
#   never saw make quality collapse.
# - Without positions attention is blind to order; learned and sinusoidal encodings add a vector per position, RoPE
#   rotates query/key pairs so a score depends only on distance, and ALiBi adds a per-head linear distance penalty.
# - The from-scratch RoPE and ALiBi match transformers' Llama and BLOOM code, and BLOOM's key-index bias equals
#   ALiBi's distance bias only under a causal mask.
# - Tiny GPTs trained at length L reproduce Press et al.'s finding in the recorded cpu run: ALiBi stayed flat far
#   past L, RoPE and sinusoidal degraded, and learned positions could not run past L at all.
# - Position interpolation divides every position by s = L'/L, while NTK-aware scaling raises the base instead and
#   keeps the fast pairs that tell neighbouring tokens apart.
# - At this tiny byte-level scale NTK scaling extended the window best and interpolation worst, the opposite of
#   Chen et al.'s 7B result for interpolation, and the chapter reports the difference.
# - On the real model, linear scaling without fine-tuning hurts even inside the window, while dynamic scaling changes
#   nothing until the input is longer than the window.
# - For text longer than the window, a sliding window recovers most of what chunking loses at a compute cost that
#   grows as the stride shrinks; Transformer-XL caches the previous segment instead of recomputing it.
#
# ## Further reading
#
# - Vaswani, A., Shazeer, N., Parmar, N., et al. (2017). *Attention Is All You Need*. NeurIPS 2017.
#   arXiv:1706.03762. The Transformer and its sinusoidal position encoding.
# - Su, J., Lu, Y., Pan, S., et al. (2021). *RoFormer: Enhanced Transformer with Rotary Position Embedding*.
#   Neurocomputing 568 (2024). arXiv:2104.09864. RoPE, and why the rotated score depends only on distance.
# - Press, O., Smith, N. A., & Lewis, M. (2021). *Train Short, Test Long: Attention with Linear Biases Enables Input
#   Length Extrapolation*. ICLR 2022. arXiv:2108.12409. ALiBi, its slopes and the extrapolation curves
#   of its Fig. 1.
# - Chen, S., Wong, S., Chen, L., et al. (2023). *Extending Context Window of Large Language Models via Positional
#   Interpolation*. arXiv:2306.15595. Position interpolation and its short fine-tune.
# - Peng, B., Quesnelle, J., Fan, H., et al. (2023). *YaRN: Efficient Context Window Extension of Large Language
#   Models*. ICLR 2024. arXiv:2309.00071. Per-band interpolation with an attention temperature, and NTK scaling.
# - Dai, Z., Yang, Z., Yang, Y., et al. (2019). *Transformer-XL: Attentive Language Models Beyond a Fixed-Length
#   Context*. ACL 2019. arXiv:1901.02860. Segment-level recurrence: a memory of the previous segment.
# - Rae, J. W., Potapenko, A., Jayakumar, S. M., et al. (2019). *Compressive Transformers for Long-Range Sequence
#   Modelling*. ICLR 2020. arXiv:1911.05507. Compressing older memories instead of dropping them.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.3 (模型上下文窗口扩展). https://intro-llm.github.io/. The section this
#   chapter teaches.
