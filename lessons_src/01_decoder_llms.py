# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 1 · How decoder LLMs see text
#
# *LLM Q&A §1-4 and §8-10 (the questions and answers "语言大模型知识点简介"): causal decoder, prefix decoder and
# encoder-decoder; the training objective; why decoder-only dominates; emergence; input length; BERT vs LLaMA;
# domain vs general models.*
#
# **Learning objectives.** After this chapter you can
# 1. draw the attention masks of a causal decoder, a prefix decoder and an encoder-decoder, and say which
#    token may look at which;
# 2. run a real model under a mask you built, as an additive float 4D mask, and explain why a boolean mask is
#    silently wrong under eager attention;
# 3. compute the language-modelling loss by hand from logits and match the library's number;
# 4. give evidence-based answers to the LLM Q&A's concept questions (why decoder-only? how long can the input
#    be? BERT or LLaMA? a domain model or a general one?).
#
# **Before you start.** Chapters: 0 (loading the model offline, the chat template, greedy generation). Maths:
# matrices as grids of allowed (query, key) pairs, softmax, log-probabilities and the mean negative log-likelihood
# (cross-entropy); no calculus.
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 16 s |
# | cpu | the same 2-core CPU, nothing else running | 18 s |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import inspect

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from course_utils import masks
from course_utils.config import profile
from course_utils.data import load_lines
from course_utils.device import assert_close, encode, set_seed
from course_utils.models import load_model
from course_utils.plotting import bar, plot_masks, readable_tokens, token_strip

P = profile()
set_seed(0)

# %% [markdown]
# ## 1. Concept: one Transformer, three architectures
#
# | English | 中文 | who uses it | token *i* may attend to token *j* when |
# |---|---|---|---|
# | causal decoder | 因果解码器 | GPT, Llama, SmolLM2 (today's mainstream, 当前主流) | j ≤ i |
# | prefix decoder (non-causal decoder, prefix LM) | 前缀解码器 | UniLM, GLM, U-PaLM | j ≤ i, **or** j is in the prefix |
# | encoder-decoder | 编码器-解码器 | T5, BART | encoder: every j; decoder: j ≤ i, plus every encoder state (cross-attention) |
#
# The figure shows the two ways of building the stack. An encoder-decoder has two stacks: the encoder reads the
# source bidirectionally, and each decoder layer adds a cross-attention sublayer that reads the encoder's states.
# A decoder-only model (causal or prefix) has one stack that reads prompt and answer as one sequence.
#
# ![An encoder-decoder reads the source with a bidirectional encoder and writes the target with a decoder that adds cross-attention to the encoder's states, while a decoder-only model reads prompt and answer as one sequence under causal self-attention.](../figures/encoder_decoder_vs_decoder_only.svg)
#
# The LLM Q&A says it in one line: *the mask decides the architecture*. A mask of all ones (全1) is
# bidirectional attention; a lower-triangular mask (下三角) is one-directional (causal) attention. A single
# Transformer stack with a custom mask can behave as any of the three. In the LLM Q&A's figure, blue is
# attention among prefix tokens, green is target tokens attending to the prefix, and yellow is target tokens
# attending to earlier targets; the rest is masked. The figure draws the three masks in those colours, for a
# prefix (source) of three tokens x and a target of three tokens y:
#
# ![Three attention masks over prefix tokens x and target tokens y: the causal decoder's lower triangle, the prefix decoder's mask that opens the prefix in both directions, and the encoder-decoder's bidirectional encoder, cross-attention and causal decoder blocks.](../figures/attention_masks.svg)
#
# The prefix decoder and the encoder-decoder allow the same (query, key) pairs; the encoder-decoder only splits
# them over two stacks.
#
# A careful reading of the LLM Q&A: its one-line definitions of the causal and prefix decoder both say "looks at
# previous outputs". The real difference is only **inside the prefix**: a prefix decoder lets prefix tokens
# see *later* prefix tokens too (bidirectional), and computes its loss on the target part only.

# %% [markdown]
# ## 2. From scratch: the masks as boolean matrices
#
# `allowed[i, j]` is True when query token *i* may look at key token *j*. Here is the whole prefix-LM mask:

# %%
print(inspect.getsource(masks.prefix_lm_mask))

# %%
T, prefix_len = 10, 4
scratch = {
    "causal decoder (lower-triangular)": masks.causal_mask(T),
    "prefix decoder": masks.prefix_lm_mask(T, prefix_len),
    "encoder (all ones)": masks.bidirectional_mask(T),
}
plot_masks(scratch, prefix_len=prefix_len)
plt.show()
print(masks.prefix_lm_mask(T, prefix_len).int())

# %% [markdown]
# The encoder-decoder has *three* masks, because its source and target live in two different stacks: the
# encoder reads the source bidirectionally, the decoder reads the target causally, and **cross-attention**
# lets every target token read every source state.

# %%
enc_dec = masks.encoder_decoder_masks(src_len=prefix_len, tgt_len=T - prefix_len)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (name, m) in zip(axes, enc_dec.items()):
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"{name} {tuple(m.shape)}")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Library equivalent: transformers' own mask functions
#
# transformers v5 builds masks from small functions (`transformers.masking_utils`): `causal_mask_function`
# is `kv_idx <= q_idx`, and the prefix-LM mask is its `or_masks` union with "the key is in the prefix" (the
# idiom Gemma 3 and PaliGemma use). Our scratch masks must agree exactly:

# %%
for n_tokens, p_len in [(10, 4), (7, 0), (7, 7), (33, 12)]:
    assert torch.equal(masks.library_mask(n_tokens, p_len), masks.prefix_lm_mask(n_tokens, p_len))
    assert torch.equal(masks.library_mask(n_tokens), masks.causal_mask(n_tokens))
print("scratch masks == transformers.masking_utils masks")

# %% [markdown]
# ## 4. Experiment: the real model under a causal and a prefix mask
#
# A model receives a mask as an **additive float** tensor `[batch, 1, query, key]`: 0 where attention is
# allowed, a huge negative number where it is blocked, added to the attention scores before the softmax.

# %%
print(inspect.getsource(masks.to_additive_4d))
print(masks.to_additive_4d(masks.prefix_lm_mask(5, 2))[0, 0])

# %%
model, tok = load_model(P.model_name)
text = "Question: What is the capital of France? Answer: The capital of France is Paris."
ids = encode(tok, text, model).input_ids  # tensors on the model's device (a GPU when there is one)
T = ids.shape[1]
split = T // 2  # the first half is the prefix
print(T, "tokens; prefix =", tok.decode(ids[0, :split]), "| target =", tok.decode(ids[0, split:]))

# %% [markdown]
# **Expected outcomes, stated before running:**
# 1. our causal 4D mask gives the logits the model computes with its own built-in causal mask (up to rounding);
# 2. under the prefix mask, changing a *later prefix token* changes the output at position 0 (prefix tokens
#    look ahead inside the prefix); under the causal mask it does not;
# 3. under both masks, changing a *target* token never changes the outputs before it (no peeking at the
#    future, which is what makes generation possible).

# %%
causal, prefix = masks.causal_mask(T), masks.prefix_lm_mask(T, split)
with torch.no_grad():
    builtin = model(ids).logits
out_causal = masks.forward_with_mask(model, ids, causal).logits
out_prefix = masks.forward_with_mask(model, ids, prefix).logits
diff_builtin = assert_close(out_causal, builtin, model, "logits under our causal mask and the built-in one")
print(f"1. causal 4D mask vs built-in mask: max |diff| = {diff_builtin:.2e}, within {model.dtype} rounding")

changed = ids.clone()
changed[0, split - 1] = tok(" banana").input_ids[0]  # edit the last prefix token
for name, allowed in (("causal", causal), ("prefix LM", prefix)):
    a = masks.forward_with_mask(model, ids, allowed).logits[0, 0]
    b = masks.forward_with_mask(model, changed, allowed).logits[0, 0]
    print(f"2. {name:9}: output at position 0 moved by {(a - b).abs().max().item():.3f}")

changed = ids.clone()
changed[0, T - 2] = tok(" banana").input_ids[0]  # edit a target token near the end
for name, allowed in (("causal", causal), ("prefix LM", prefix)):
    a = masks.forward_with_mask(model, ids, allowed).logits[0, : T - 2]
    b = masks.forward_with_mask(model, changed, allowed).logits[0, : T - 2]
    print(f"3. {name:9}: outputs before the edit moved by {(a - b).abs().max().item():.2e}")

# %% [markdown]
# **The boolean-mask pitfall.** Hand the model a *boolean* 4D mask and the `sdpa` attention treats True as
# "attend", but the `eager` attention *adds* the mask to the scores: True becomes +1, False becomes 0, and
# nothing is blocked. No error, just wrong numbers:

# %%
bool_mask = prefix[None, None].to(model.device)
for impl in ("sdpa", "eager"):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        right = masks.forward_with_mask(model, ids, prefix).logits
        wrong = model(ids, attention_mask=bool_mask).logits
    print(f"{impl:5}: boolean vs additive float mask, max |diff| = {(wrong - right).abs().max().item():.3f}")
model.set_attn_implementation("sdpa")

# %% [markdown]
# **Is SmolLM2 a prefix LM now?** No: a mask is a decision made at *pre-training*. SmolLM2 learned with the
# causal mask only, so opening up the prefix shows it inputs it never saw in training. **Expected:** the loss
# on the target part is *higher* under the prefix mask than under the causal mask, for the same weights and
# the same labels.

# %%
sentences = load_lines("probe_sentences.txt")[: max(4, P.n_examples // 2)]
rows = [masks.target_losses(model, tok, s) for s in tqdm(sentences, desc="two masks")]
mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
worse = sum(r["prefix LM"] > r["causal"] for r in rows)
print(f"prefix-LM mask gave a higher target loss on {worse} of {len(rows)} sentences")
bar(mean, title="SmolLM2 target loss by mask", ylabel="mean loss (nats/token)")
plt.show()

# %% [markdown]
# ## 5. The training objective: maximum likelihood, by hand
#
# LLM Q&A §2: an LLM is trained to maximise the likelihood of its training text. For a sequence
# $x_1, \dots, x_T$ the loss is the mean negative log-likelihood of each next token:
#
# $$\mathcal{L} = -\frac{1}{T-1}\sum_{t=2}^{T} \log p_\theta(x_t \mid x_{<t})$$
#
# The logits at position $t-1$ predict token $t$, so the labels are the inputs *shifted by one*.

# %%
print(inspect.getsource(masks.lm_loss))

# %%
with torch.no_grad():
    out = model(ids, labels=ids)
by_hand = masks.lm_loss(out.logits, ids)
print(f"library loss {out.loss.item():.6f} | by hand {by_hand.item():.6f} | perplexity {by_hand.exp().item():.2f}")
assert_close(by_hand, out.loss, model, "the library's loss and ours")

# Train on the target only (the prefix-LM loss, and SFT's prompt masking in chapter 4): labels -100 on the prefix.
labels = masks.prefix_labels(ids, split)
with torch.no_grad():
    out_t = model(ids, labels=labels)
assert_close(masks.lm_loss(out_t.logits, labels), out_t.loss, model, "the target-only losses")
print(f"loss on the target only: {out_t.loss.item():.4f} (the library skips label -100 exactly as we do)")

# %% [markdown]
# Which tokens are hard? The loss of each next token (its *surprisal*): the answer "Paris" is cheap once the
# question is read; the first word of the question is expensive.

# %%
nll = -masks.token_logprobs(out.logits, ids)[0]
token_strip(readable_tokens(tok, ids[0, 1:]), nll.tolist(), title="loss of each next token",
            label="−log p (nats)")
plt.show()

# %% [markdown]
# **What "learning the statistics of language" means, measured.** The same words in a shuffled order have the
# same vocabulary but broken syntax. **Expected:** a much higher loss for every shuffled sentence.

# %%
natural = [masks.text_loss(model, tok, s) for s in tqdm(sentences, desc="natural")]
shuffled = [masks.text_loss(model, tok, masks.shuffle_words(s)) for s in sentences]
print(f"mean loss: natural {sum(natural) / len(natural):.2f}, shuffled {sum(shuffled) / len(shuffled):.2f}; "
      f"shuffled is higher for {sum(s > n for n, s in zip(natural, shuffled))} of {len(sentences)}")
print("example:", masks.shuffle_words(sentences[3]))

# %% [markdown]
# ## 6. Why are most LLMs decoder-only? (LLM Q&A §3)
#
# The LLM Q&A gives three reasons: computational efficiency, training quality, and use of unlabelled data. Two
# of them we can measure on our model.
#
# **Every token is a training signal.** Under the causal objective every position predicts the next token, so
# a T-token text gives T−1 training targets. A prefix LM or an encoder-decoder trains only on the target part,
# and BERT's masked-LM on about 15% of tokens:

# %%
n = 512
print(f"training targets in a {n}-token text: causal LM {n - 1}, prefix LM (half prefix) {n - n // 2}, "
      f"BERT masked LM ≈ {int(0.15 * n)}")

# %% [markdown]
# **Generation reuses its past.** Result 3 above shows a causal model's earlier outputs never change when
# later tokens are appended, so their keys and values can be cached (the **KV cache**) and each new token
# costs one position, not a re-read of the whole text. A bidirectional encoder would have to recompute
# everything at each step. **Expected:** generating with the cache is faster, increasingly so for longer outputs.

# %%
import time

enc = encode(tok, "Tell me a short story about a dragon.", model)
timings = {}
for use_cache in (True, False):
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=P.max_new_tokens, min_new_tokens=P.max_new_tokens,
                       do_sample=False, use_cache=use_cache, pad_token_id=tok.pad_token_id)
    timings["with KV cache" if use_cache else "no cache"] = time.perf_counter() - start
print({k: f"{v:.2f} s" for k, v in timings.items()},
      f"speed-up {timings['no cache'] / timings['with KV cache']:.1f}x for {P.max_new_tokens} tokens")

# %% [markdown]
# The LLM Q&A's other claims need care. "Only one forward pass instead of two" is loose: an encoder-decoder also
# runs its encoder once, but it splits its parameters between two stacks. The stronger arguments in the
# literature are (i) decoder-only models trained with the plain next-token objective show the best zero-shot
# generalisation after pre-training alone (Wang et al. 2022, *What language model architecture and
# pretraining objective work best for zero-shot generalization?*), and (ii) one simple objective on raw text
# scales with data and compute without any labels.
#
# ## 7. Emergence (LLM Q&A §4)
#
# **Emergent abilities** (涌现能力, Wei et al. 2022) are abilities absent in small models and present in large
# ones: multi-step arithmetic, in-context learning (chapter 3), following instructions. The LLM Q&A explains
# them as learning the statistics of language from a lot of data. Two refinements:
# - Some "emergence" is in the metric (Schaeffer et al. 2023): exact-match accuracy jumps from 0 to 1 while the
#   log-probability of the right answer improves smoothly with scale.
# - One 135M model cannot show a scaling curve. What it *can* show is the smooth quantity behind an
#   all-or-nothing answer: the log-probability of the correct answer against a wrong one (compare with what it
#   generated for 17 × 23 in chapter 0).

# %%
def answer_logprob(question: str, answer: str) -> float:
    """Sum of log p(answer tokens | question): a smooth score, unlike exact match."""
    q = encode(tok, question, model).input_ids
    a = encode(tok, answer, model, add_special_tokens=False).input_ids
    full = torch.cat([q, a], dim=1)
    with torch.no_grad():
        logits = model(full).logits
    return masks.token_logprobs(logits, full)[0, q.shape[1] - 1:].sum().item()


for question, right, wrong in [("The capital of France is", " Paris", " Rome"),
                               ("17 * 23 =", " 391", " 381")]:
    print(f"{question!r}: log p(right{right!r}) = {answer_logprob(question, right):.2f}, "
          f"log p(wrong{wrong!r}) = {answer_logprob(question, wrong):.2f}")

# %% [markdown]
# ## 8. How long can the input be? (LLM Q&A §8)
#
# In theory a Llama-style model takes any length: RoPE (chapter 6) computes a position encoding for any
# position, and nothing in the code stops at 2k. In practice quality collapses beyond the lengths seen in
# training, so each model declares a **context window**. The LLM Q&A's "2k" was LLaMA-1's; SmolLM2 declares:

# %%
from course_utils.models import ContextLengthError, check_fits, context_window

print("context window:", context_window(model), "tokens")
try:
    check_fits(model, context_window(model) + 1)
except ContextLengthError as err:
    print("ContextLengthError:", err)

# %% [markdown]
# Chapter 6 measures the collapse past the trained length and extends the window with position interpolation.
#
# ## 9. BERT or LLaMA? A domain model or a general one? (LLM Q&A §9-10)
#
# | | BERT-style encoder | LLaMA / ChatGLM-style decoder |
# |---|---|---|
# | mask | bidirectional (全1) | causal (下三角), or prefix (ChatGLM-1 was a GLM prefix LM) |
# | good at | classification, tagging, retrieval embeddings: the whole input is seen at once | generation, instructions, open-ended tasks, few-shot prompting |
# | typical size | 0.1-0.3B, fine on a CPU | 0.1B-100B+; our 135M is tiny |
# | adapt it by | fine-tuning a small head on labelled data | prompting (ch2-3) or SFT (ch4, ch8) |
#
# Pick BERT when the task is understanding with a fixed label set, labelled data exists and compute is tight;
# pick a decoder LLM when the output is text, labels are scarce, or one model must serve many tasks.
#
# **Domain models** (LLM Q&A §10): a medical, legal or engineering model knows the field's terms and facts
# better; a general model handles a wider range of questions, generalises better to rare inputs, and is
# easier to maintain. A common middle road is a general model plus domain adaptation: continued
# pre-training on domain text, then SFT on domain instructions (chapters 4 and 8), or retrieval of domain
# documents at question time.

# %% [markdown]
# ## 10. Concept check (LLM Q&A)
#
# **Q1. What is the difference between a prefix decoder, a causal decoder and an encoder-decoder?** Their
# attention masks (section 2). Causal: each token sees itself and the past. Prefix: the same, plus
# bidirectional attention inside the prefix; loss on the target only. Encoder-decoder: a bidirectional encoder
# and a causal decoder in separate stacks joined by cross-attention. Evidence: experiment 4, result 2 (a prefix
# token looks ahead only under the prefix mask) and result 3 (no mask lets a target look ahead).
#
# **Q2. What is the training objective of an LLM?** Maximum likelihood of the training text: minimise the
# mean negative log-likelihood of each next token. We computed it by hand and matched the library up to the
# rounding of the model's dtype (1e-5 in float32 on a CPU), and saw that it scores natural text far better
# than the same words shuffled.
#
# **Q3. Why are most LLMs decoder-only?** Every token is a training target (511 of 512, against 256 for a
# half-prefix LM and about 76 for BERT), the KV cache makes generation cheap (measured speed-up in section 6), one
# objective on raw text scales without labels, and it generalises best zero-shot after pre-training. The
# architecture is fixed at pre-training: switching SmolLM2 to a prefix mask *hurt* (section 4).
#
# **Q4. Why do abilities emerge?** Scale in parameters and data lets the next-token objective capture
# regularities that small models miss; part of the apparent suddenness comes from all-or-nothing metrics.
# Smooth log-probabilities (section 7) show partial knowledge where exact match shows none.
#
# **Q8. Can LLaMA's input be infinitely long?** The code accepts any length, but quality degrades beyond the
# trained context window (2k for LLaMA-1, 8192 for SmolLM2). `check_fits` refuses longer inputs with a clear
# error; chapter 6 extends windows.
#
# **Q9. When BERT, when LLaMA/ChatGLM?** Section 9's table: BERT for understanding tasks with labels and tight
# compute; decoder LLMs for generation and many tasks with few labels.
#
# **Q10. Does each field need its own model?** Domain models win on specialised terms and facts; general
# models on breadth, rare inputs and upkeep. Adapting a general model to a domain (continued pre-training,
# SFT, retrieval) is the usual compromise.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/01_decoder_llms.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the causal mask.** Section 2's lower-triangular mask, yourself: `allowed[i, j]` is True when
# query token *i* may look at key token *j*.

# %% tags=["exercise"]
import torch


def my_causal_mask(T: int) -> torch.Tensor:
    """Boolean [T, T]: True where token i may attend to token j (j <= i)."""
    # TODO: build the mask (a boolean tensor; think of which triangle is allowed)
    raise NotImplementedError


checks.check("01.causal_mask", my_causal_mask)

# %% tags=["solution"]
import torch


def my_causal_mask(T: int) -> torch.Tensor:
    """Boolean [T, T]: True where token i may attend to token j (j <= i)."""
    return torch.ones(T, T, dtype=torch.bool).tril()


checks.check("01.causal_mask", my_causal_mask)

# %% [markdown]
# **Core · a sliding-window mask** (Mistral, Gemma 3's local layers). Each token sees at most the last `w`
# tokens, itself included: token 5 with `w = 3` sees tokens 3, 4 and 5. It is the rule of transformers'
# `sliding_window_causal_mask_function`.

# %% tags=["exercise"]
import torch


def my_sliding_window_mask(T: int, w: int) -> torch.Tensor:
    """Boolean [T, T]: token i sees token j when j <= i and j is one of the last w tokens up to i."""
    # TODO: start from the causal rule, then block the keys that are too far back
    raise NotImplementedError


checks.check("01.sliding_window_mask", my_sliding_window_mask)

# %% tags=["solution"]
import torch


def my_sliding_window_mask(T: int, w: int) -> torch.Tensor:
    """Boolean [T, T]: token i sees token j when j <= i and j is one of the last w tokens up to i."""
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & (i - j < w)


checks.check("01.sliding_window_mask", my_sliding_window_mask)

# %% [markdown]
# **Stretch · the packed mask.** Training packs several short sequences into one row to avoid padding. Each
# sequence must read causally *and* never see the sequences packed before it. `lengths=[3, 2]` is a 5 × 5 mask.

# %% tags=["exercise"]
import torch


def my_packed_mask(lengths: list[int]) -> torch.Tensor:
    """Boolean [sum(lengths)] x [sum(lengths)]: causal inside each sequence, blocked across sequences."""
    # TODO: one causal block per sequence, nothing outside the blocks
    raise NotImplementedError


checks.check("01.packed_mask", my_packed_mask)

# %% tags=["solution"]
import torch


def my_packed_mask(lengths: list[int]) -> torch.Tensor:
    """Boolean [sum(lengths)] x [sum(lengths)]: causal inside each sequence, blocked across sequences."""
    return torch.block_diag(*[torch.ones(n, n, dtype=torch.bool).tril() for n in lengths])


checks.check("01.packed_mask", my_packed_mask)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("01")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Plot the prefix-LM mask for `T=12, prefix_len=0` and `prefix_len=12`. Which architectures
#    are they?
# 2. *(core)* Check your sliding-window mask from the exercises against
#    `transformers.masking_utils.sliding_window_causal_mask_function` for a few `T` and `w`.
# 3. *(stretch)* Run the model with your packed mask (two sentences in one row, as an additive 4D mask) and
#    check that each sentence's logits equal running it alone. (Positions restart per sentence in real
#    packing: pass `position_ids` too.)

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("01_decoder_llms", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("01_decoder_llms")

# %% [markdown]
# ## Summary: what to remember
#
# - Causal decoder, prefix decoder and encoder-decoder differ in their attention masks: lower-triangular,
#   bidirectional inside the prefix, or a bidirectional encoder joined to a causal decoder by cross-attention.
# - Hand a model a custom mask as an additive float 4D tensor: a boolean 4D mask blocks nothing under eager
#   attention, with no error.
# - The LM objective is maximum likelihood, the mean negative log-probability of each next token with the labels
#   shifted by one, and computed by hand it matches the library's loss.
# - The mask is fixed at pre-training: opening a causal model's prefix raised its loss on the target instead of
#   helping.
# - Decoder-only models dominate because every token is a training target, the KV cache makes generation cheap, and
#   one objective on raw text scales without labels.
# - Part of "emergence" is in the metric: the log-probability of the right answer moves smoothly where exact match
#   jumps from 0 to 1.
# - The code accepts any input length, but quality holds only inside the context window the model was trained on.
# - Pick a BERT-style encoder for understanding tasks with labels and tight compute, a decoder LLM for generation and
#   many tasks with few labels, and adapt a general model to a domain rather than build one from scratch.
#
# ## Further reading
#
# - Wang, T., Roberts, A., Hesslow, D., et al. (2022). *What Language Model Architecture and Pretraining Objective
#   Work Best for Zero-Shot Generalization?* ICML 2022. arXiv:2204.05832. Causal vs non-causal decoders vs
#   encoder-decoders trained at 5B scale: the evidence behind "why decoder-only".
# - Wei, J., Tay, Y., Bommasani, R., et al. (2022). *Emergent Abilities of Large Language Models*. TMLR 2022.
#   arXiv:2206.07682. The definition of emergence and the scaling curves behind it.
# - Schaeffer, R., Miranda, B., & Koyejo, S. (2023). *Are Emergent Abilities of Large Language Models a Mirage?*
#   NeurIPS 2023. arXiv:2304.15004. How all-or-nothing metrics make smooth improvement look sudden.
# - Dong, L., Yang, N., Wang, W., et al. (2019). *Unified Language Model Pre-training for Natural Language
#   Understanding and Generation*. NeurIPS 2019. arXiv:1905.03197. UniLM: one Transformer, three masks.
# - Du, Z., Qian, Y., Liu, X., et al. (2021). *GLM: General Language Model Pretraining with Autoregressive Blank
#   Infilling*. ACL 2022. arXiv:2103.10360. The prefix-style mask behind ChatGLM.
# - Raffel, C., Shazeer, N., Roberts, A., et al. (2019). *Exploring the Limits of Transfer Learning with a Unified
#   Text-to-Text Transformer*. JMLR 21 (2020). arXiv:1910.10683. T5, and its comparison of encoder-decoder and
#   prefix-LM masks.
# - Devlin, J., Chang, M.-W., Lee, K., et al. (2018). *BERT: Pre-training of Deep Bidirectional Transformers for
#   Language Understanding*. NAACL 2019. arXiv:1810.04805. The bidirectional encoder of section 9 and its
#   masked-LM objective.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.), questions 1-4 and 8-10; author not
#   given. The questions this chapter answers.
