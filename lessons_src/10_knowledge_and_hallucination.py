# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 10 · Knowledge, data and hallucination (知识、数据与幻觉)
#
# *Lee GenAI §6, §7 and §8, from notes on Hung-yi Lee's Generative AI lecture "预训练-对齐" (pretraining and alignment):
# §6 (如何达成有效的pretrain: how pretraining stores knowledge so that alignment can get it out), §7
# (有限算力下,pretrain的时候应该看更多不同的资料: with limited compute, read more different data) and §8 (对齐的极限:
# the limits of alignment, i.e. fine-tuning on facts the model does not know); and LLM Q&A §15 ("语言大模型知识点简介":
# how can a model learn more knowledge during pretraining?), with chapter 8.*
#
# **Learning objectives.** After this chapter you can
# 1. explain why a fact a model has memorised can still be out of reach of a question, and show that rewriting
#    the pretraining data (knowledge augmentation) makes it reachable;
# 2. measure what repeating pretraining data is worth against unique data at the same compute;
# 3. sort facts into HighlyKnown / MaybeKnown / WeaklyKnown / Unknown from a model's few-shot greedy and sampled
#    answers (SliCK);
# 4. fine-tune a real model on known vs unknown facts and watch what happens to the facts it knew.
#
# **Before you start.** Chapters: 3 (few-shot prompting with exemplars), 4 (the fine-tuning engine, LoRA), 6 (the
# TinyGPT and byte-level perplexity), 8 (early stopping, drift, and why SFT mostly teaches format). Maths:
# exact-match accuracy, an exponential decay (the worth of repeated data), sampling at a temperature, and the
# probability of a sequence as a product of its tokens' probabilities.
# **Study time:** about 20 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 40 s |
# | cpu | the same 2-core CPU, nothing else running | 5.9 min |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import matplotlib.pyplot as plt
import torch

from course_utils import data_scaling, knowledge, new_knowledge, slick
from course_utils.config import profile, sizes
from course_utils.data.corpus import encode_bytes, load_corpus
from course_utils.device import pick_device, set_seed
from course_utils.evaluation import load_facts
from course_utils.models import load_model

P = profile()
BIOS, SCALING, NEW = sizes("knowledge", P.name), sizes("data_scaling", P.name), sizes("new_knowledge", P.name)
set_seed(0)
device = pick_device()
print(f"profile {P.name}: {BIOS.n_people} fictional people, TinyGPTs of {BIOS.n_layer} x {BIOS.n_embd} pretrained "
      f"{BIOS.steps} steps; repetition runs of {SCALING.budget_tokens:,} tokens; {NEW.n_facts} facts, "
      f"{NEW.steps}-step fine-tunes of {P.model_name}; device {device}")

# %% [markdown]
# ## 1. Stored is not the same as extractable (Lee GenAI §6; Physics of LMs 3.1)
#
# Lee's puzzle. A model is pretrained on a complete set of biographies. At alignment time it is fine-tuned on
# question-answer pairs about **half** of the people. Now ask the same kind of questions about the *other* half:
# their facts were in the pretraining data, so the model should answer. It does not: accuracy is close to 0
# (接近几乎是0的准确率). Allen-Zhu & Li (2023) explain why: a fact seen in **one** wording is stored as part of that
# text. The model learns "only A + B + C gives D" (只有A+B+C才是D): the birth city follows *this name, this birth
# date and this sentence*. Only after seeing the fact in several rewrites (多种改写) does it learn "A is D", a fact
# attached to the person, which a question can then retrieve.
#
# Two words for the two halves of the problem: **knowledge storage** (知识存储: can the model reproduce the fact
# in the text it was trained on?) and **knowledge extraction** (知识提取: can it answer a question about the fact
# it was never asked in training?). The cure the paper tests is **knowledge augmentation** (知识增强: rewriting the
# pretraining data): several biographies per person (multiplicity), sentences in shuffled order (permutation),
# and the full name in every sentence instead of "he" / "she".
#
# The course's version: fictional people with five attributes, biographies from templated sentences, fixed seed.

# %%
people = knowledge.make_people(BIOS.n_people)
p = people[0]
print(p)
print("\nsingle biography:\n ", knowledge.bio_corpus([p])[p.name][0])
print("\nthree rewrites (permuted, full name):")
for bio in knowledge.bio_corpus([p], rewrites=3, permute=True, fullname=True)[p.name]:
    print(" ", bio)
print("\nQA pairs:", knowledge.qa_pairs([p])[:2])

# %% [markdown]
# Chapter 6 read bytes; here each word is one token (`knowledge.WordTokenizer`, a closed vocabulary of the names,
# values and templates): a biography is 40-50 tokens instead of about 200 bytes, which is what lets a laptop
# pretrain on enough of them. The model is chapter 6's TinyGPT (RoPE) and the training loop is chapter 4's engine.
#
# **Experiment.** Every variant pretrains a fresh TinyGPT for the same number of steps on the same people, then is
# fine-tuned (full fine-tuning) on the QA pairs of the first half of the people and tested, by exact match of the
# attribute, on the second half:
#
# | variant | pretraining data |
# |---|---|
# | `single` | one biography per person: fixed sentence order, pronouns after the first sentence |
# | `rewrites` | several rewrites per person, permuted, full name in every sentence |
# | `rewrites + mixed QA` | the rewrites, plus the QA pairs of the first half mixed into pretraining (the paper's "mixed training") |
#
# Next to the QA accuracy: **recall**, the share of attribute values the pretrained model completes inside the
# held-out people's own biography (storage), and the **majority answer** baseline (always the most common value:
# what a model that learned the answer format, but nothing about the held-out people, would score).
#
# **Expected** (Allen-Zhu & Li): every variant stores the facts (recall near 1); `single` extracts almost nothing
# (near the majority baseline); `rewrites` extracts far more; mixing QA into pretraining extracts the most.

# %%
results, majority = knowledge.extraction_experiment(BIOS, device=device)
print(knowledge.format_extraction(results, majority))
print("\nheld-out accuracy by attribute:")
for name, r in results.items():
    print(f"  {name:22}", "  ".join(f"{a} {v:.2f}" for a, v in r.test_qa.items() if a != "mean"))
knowledge.plot_extraction(results, majority)
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 100 people, 50 held out, TinyGPTs of 4 layers x 128, 400 pretraining steps and 200
# QA steps): every variant **stores** the held-out people's facts: it completes 1.000 (`single`), 0.992
# (`rewrites`) and 0.996 (`rewrites + mixed QA`) of their attribute values inside their own biography. Extraction
# differs. After the QA fine-tune `single` answers 0.076 of the held-out questions, close to the majority answer's
# 0.036 (and it fits only 0.536 of the training half's questions); `rewrites` answers 0.212 (and fits 0.900);
# `rewrites + mixed QA` answers 0.892, and 0.908 already *before* any QA fine-tune: the QA texts about one half,
# mixed into pretraining, taught it to answer about everyone. The direction is the paper's. The size of the
# rewrites' gain is not: in Allen-Zhu & Li the rewritten corpora make most held-out facts extractable, here 0.21
# are. At equal compute the augmented corpus (2,000 biographies) is read about 6 times in 400 steps of 32, the
# single one (100 biographies) 128 times; a laptop-sized run is far from the paper's many passes over a much
# larger population.
#
# What does the `single` model do with a question about a held-out person? It answers in the right format, with
# a value of the right type, and mostly the wrong one:

# %%
single, rewrites = results["single"].tuned, results["rewrites"].tuned
q = knowledge.qa_examples(single.tok, knowledge.qa_pairs([people[-1]]))
for ex, (prompt, answer) in zip(q, knowledge.qa_pairs([people[-1]])):
    n_prompt = ex["labels"].count(-100)
    ids = torch.tensor([ex["input_ids"][:n_prompt]], device=device)
    outs = []
    for run in (single, rewrites):
        out = run.model.generate(ids, max_new_tokens=6, temperature=1e-6)[0, n_prompt:].tolist()
        text = run.tok.decode(out).split("\n")[0]
        outs.append(text)
    print(f"{prompt.splitlines()[0][3:]:52} gold {answer.strip():16} single: {outs[0]:16} rewrites: {outs[1]}")

# %% [markdown]
# Lee adds: it is enough that **part** of the pretraining data is rewritten (当然预训练资料里面的一部分被改写了就行).
# In the paper, rewriting only the biographies of the QA-training half (the "celebrities") also lifts extraction
# for the un-rewritten half (the "minorities"): the model learns *how* to store facts from the rewritten people and
# applies it to everyone. The variant `partial` of `knowledge.VARIANTS` does this; Try it 3 runs it.
#
# ## 2. With limited compute, read more different data (Lee GenAI §7; Muennighoff et al. 2023)
#
# Lee's figure: solid lines pretrain on 12B tokens repeated 1, 4, 10 or 40 times; dashed lines pretrain on
# 12B, 48B or 120B *different* tokens; at the same compute the different data wins by far. Muennighoff et al. fit
# how much a repeated token is worth: $E$ epochs over $U$ unique tokens are worth
# $D' = U + U R^*(1 - e^{-R/R^*})$ unique tokens, with $R = E - 1$ repetitions and $R^* \approx 15.4$. Up to
# about 4 epochs that is almost $E \cdot U$ ("negligible changes to loss compared to unique data"); far beyond
# $R^*$ repeated tokens add almost nothing.
#
# **Experiment.** TinyGPTs (chapter 6's size, byte level, on the shipped Python reference) with the **same
# budget** of training tokens: unique data read once, or $1/E$ of it read $E$ times (the engine walks the
# windows epoch by epoch), for $E$ = 1, 2, 4, 8, 16. Validation loss on held-out text.
#
# **Expected:** 2 and 4 epochs cost little; 8 and 16 cost clearly more, and their validation loss stops falling
# (or rises) during training: the model starts memorising its small data instead of learning the language.

# %%
train_ids, val_ids = encode_bytes(load_corpus("train")), encode_bytes(load_corpus("val"))
scaling = data_scaling.repetition_experiment(SCALING, train_ids, val_ids, device=device)
print(data_scaling.format_results(scaling))
print("(last column: what the paper's formula says the repeated data is worth, as a share of the same number of "
      "unique tokens)")
data_scaling.plot_repetitions(scaling)
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 262,144 training tokens per run, 256 steps, a 4-layer x 128 TinyGPT): final
# validation loss 2.139 (1 epoch over unique data), 2.289 (2 epochs), 2.404 (4), 2.199 (8) and 2.314 (16 epochs
# over 16,384 unique tokens). **This did not come out as the paper expects.** The losses do not rise with the
# number of epochs: 2 and 4 epochs cost *more* than 8 here, and no run's validation loss turned up during training
# (every curve was still falling at the end). What does show is memorisation: the gap between the last training
# loss and the validation loss grows from 0.22 nats (unique data) to 0.71 (16 epochs), and 16 epochs end worse
# than unique data. A second seed (1, 2 and 16 epochs only) gave 2.283, 2.488 and 2.314: one setting's
# seed-to-seed spread (0.14 for unique data) is as large as the differences we are trying to see. The paper's
# effect is a fraction of a nat at billions of tokens, fitted over hundreds of runs; one seed per setting at a
# quarter of a million bytes cannot resolve it. The formula's column says what to expect if it could: 2 epochs
# worth 98% of unique data, 4 epochs 93%, 16 epochs 66%.
#
# ## 3. What does the model already know? (Lee GenAI §8; Gekhman et al. 2024)
#
# Before asking what fine-tuning on new facts does, we need to know which facts are new *to this model*. Gekhman et
# al.'s **SliCK** (Sampling-based Categorization of Knowledge) sorts each question-answer pair by how often the
# model answers it correctly, $P_\text{correct}$:
#
# | category | rule | Lee's words |
# |---|---|---|
# | **HighlyKnown** | greedy answer right with every exemplar set, $P_\text{correct}(T{=}0) = 1$ | 给问题,他一定能答对 |
# | **MaybeKnown** | greedy right with some exemplar sets only, $0 < P_\text{correct}(T{=}0) < 1$ | 用某一组范例可能回答不对,用别的范例就会答对了 |
# | **WeaklyKnown** | greedy never right, but a sample ($T > 0$) sometimes is | sample的意思是根据输出概率采样一个结果,可能会对 |
# | **Unknown** | never right, greedy or sampled | 怎么样都不会 |
#
# ![SliCK's decision rules: a fact is HighlyKnown when the greedy answer is right under every exemplar set,
# MaybeKnown under some, WeaklyKnown when only sampling is sometimes right, and Unknown
# otherwise.](../figures/slick_categories.svg)
#
# The figure shows the table as a decision tree: three questions, asked in order, about the same few-shot answers.
# The first two look only at the greedy answers; only a fact that no greedy answer gets right is asked about the
# samples.
#
# *Greedy* (贪心) picks the most probable token at every step; *sampling* draws each token from the model's
# probabilities (at temperature $T$). The questions are asked **few-shot**, with 4 exemplar questions and answers
# in front (chapter 3's in-context learning), because a base model cannot simply be asked a question
# (前面放范例问题和范例答案是因为base model通常不具备直接回答问题的能力); different exemplar sets give
# different answers, which is what separates HighlyKnown from MaybeKnown.
#
# **Scoring without generating.** The paper generates one greedy answer and 16 samples per exemplar set. Greedy
# decoding writes the gold answer exactly when the most likely token at every answer position *is* the gold one
# (with the gold prefix before it), so one teacher-forced forward pass decides it. A sample is right with
# probability $\prod_j p_T(\text{gold}_j) \cdot p_T(\text{stop})$, so the course draws each sample's verdict from
# that probability: the same distribution as sampling and checking, for the price of one forward pass. The
# exemplars' key/value cache is computed once and shared by every question (`slick.score_answers`). A check of the
# shortcut against real sampling, on one question:

# %%
model, tok = load_model(P.model_name)
facts = load_facts(NEW.n_facts)
exemplars = slick.exemplar_sets(facts, 1, 4)[0]
prefix = slick.few_shot_prefix(exemplars)
print(prefix + slick.qa_line(facts[1]["question"]))
score = slick.score_answers(model, tok, [slick.qa_line(facts[1]["question"])], [slick.answer_variants(tok, facts[1])],
                            (0.5, 1.0), prefix=prefix)[0]
n_draw = sizes("ch10", P.name).n_draw
sampled = slick.sample_answers(model, tok, slick.qa_line(facts[1]["question"]), n_draw, 1.0, prefix=prefix)
right = sum(slick.is_exact_match(a, facts[1]) for a in sampled) / n_draw
print(f"gold {facts[1]['answer']!r}: greedy right? {score.greedy}; P(sample right) at T=0.5 {score.p_sample[0.5]:.3f}, "
      f"at T=1 {score.p_sample[1.0]:.3f}; {n_draw} real samples at T=1 right: {right:.3f}")
print("some samples:", sampled[:8])

# %% [markdown]
# Now every fact of the course's question set (`course_utils/data/facts_qa.jsonl`, 240 short questions written for
# the course), with the profile's number of exemplar sets and samples at $T = 0.5$:

# %%
rows = slick.slick_categories(model, tok, facts, NEW.slick)
print(slick.category_counts(rows))
for cat, rs in slick.by_category(rows).items():
    print(f"{cat:12}", "; ".join(f"{r['question']} -> {r['answer']}" for r in rs[:3]))
slick.plot_categories(rows)
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 3 exemplar sets of 4 shots, 16 samples at $T = 0.5$ per set): of the 240 facts,
# 71 are HighlyKnown, 55 MaybeKnown, 53 WeaklyKnown and 61 Unknown. Every category is well filled, so the
# experiment below has facts of each kind to train on. The exemplar set matters: for almost a quarter of the
# facts (MaybeKnown) greedy decoding is right under some sets and wrong under others. Asked which element has
# atomic number 1, the model answers "Gold", "Hydrogen" and "Oxygen" under the three sets: MaybeKnown. Asked who
# painted The Birth of Venus, it answers "Vincent van Gogh" twice and "Venus de Milo" once. Exact match is strict:
# an answer worded differently from the file's answer and aliases counts as wrong ("Computer" for "central
# processing unit" is wrong, and so is "Central Processing Unit", because only a capital *first* letter is
# forgiven). So SliCK measures whether the model produces *this* answer, not whether it holds the fact
# in some form. The capital first letter matters more than it looks: before `slick.accepted_answers` allowed it,
# "Hydrogen" counted as wrong for "hydrogen", and a run of this cell filed 79 facts as Unknown and only 57 as
# HighlyKnown.
#
# ## 4. Fine-tuning on new knowledge: the limit of alignment (对齐的极限)
#
# Lee's account of the paper: during alignment training, accuracy on the three known categories climbs
# steadily and Unknown slowly (模型本来就会的前三类准确率不断上升, unknown的准确率慢慢上升); but, surprisingly,
# *as the Unknown examples start to be answered right, accuracy on the held-out set falls* (当unknown的部分准确率
# 上升的时候,在测试集dev上的准确率却在下降了). Learning facts it did not know teaches the model to answer
# confidently beyond what it knows: **hallucination** (幻觉). Early stopping (早停), before the Unknown examples
# are fitted, avoids most of it. And the most useful training data are the **MaybeKnown** facts, the least useful
# the Unknown ones (使用maybeknown的知识训练是最有效的,使用unknown的知识训练是最没用的).
#
# **Experiment.** The model is fine-tuned (LoRA, chapter 4) on closed-book QA, `Q: question\nA: answer` with no
# exemplars, with training sets that differ only in which facts they hold. A fixed set of known facts (the
# profile's `n_test_per_category` HighlyKnown and as many MaybeKnown) is held out of all training sets. Every few
# steps: held-out accuracy on the **known** facts (HighlyKnown and MaybeKnown, zero-shot greedy exact match), and
# the share of each category's *training* examples the model answers right.
#
# **Expected** (Gekhman et al.): known training examples are fitted within a few steps, Unknown ones much later;
# with mostly unknown training data the held-out accuracy peaks early and falls as the Unknown examples are
# fitted; with known training data it stays up.

# %%
train_pool, test_facts = new_knowledge.split_train_test(rows, NEW.n_test_per_category)
print("held out:", slick.category_counts(test_facts), "| training pool:", slick.category_counts(train_pool))
curves = {}
for frac in NEW.unknown_fractions:
    data = new_knowledge.training_set(train_pool, NEW.n_train, frac)
    name = f"{frac:.0%} Unknown"
    print(f"{name}: {slick.category_counts(data)}")
    curves[name] = new_knowledge.fine_tune_on_facts(model, tok, data, test_facts, NEW, desc=name)
for name, curve in curves.items():
    es = new_knowledge.early_stopping(curve)
    print(f"{name:14} held-out known: start {curve[0]['test']['known']:.2f}, best {es['best']:.2f} at step "
          f"{es['best_step']}, end {es['final']:.2f}")
    fit = [(r["step"], r["train"]) for r in curve]
    for c in slick.CATEGORIES:
        if c in fit[0][1]:
            print(f"{'':16}training fit {c:12}", " ".join(f"{tr[c]:.2f}" for _, tr in fit))
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
new_knowledge.plot_held_out(curves, ax=axes[0])
last = list(curves)[-1]
new_knowledge.plot_training_fit(curves[last], title=f"Training fit per category ({last})", ax=axes[1])
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 32 training facts, 40 LoRA steps of 8 at lr 1e-3, i.e. 10 epochs, measured every 8
# steps; 24 known facts held out). Before fine-tuning the model answers only 0.04 of the held-out known facts:
# they are "known" under 4-shot prompting, and the bare `Q: ...\nA:` format without exemplars is new to it.
#
# | step | 0 | 8 | 16 | 24 | 32 | 40 |
# |---|---|---|---|---|---|---|
# | held-out known, trained on known facts (0% Unknown) | 0.04 | 0.50 | 0.62 | 0.58 | 0.62 | 0.62 |
# | held-out known, trained on Unknown facts (100% Unknown) | 0.04 | 0.50 | **0.42** | 0.42 | 0.42 | 0.42 |
# | Unknown training examples fitted (100% Unknown) | 0.00 | 0.53 | 0.97 | 1.00 | 0.97 | 0.94 |
# | known training examples fitted (0% Unknown) | 0.23 | 0.95 | 1.00 | 1.00 | 1.00 | 1.00 |
#
# Both runs learn the format in the first 8 steps (0.50). Then they part: training on known facts climbs to 0.62
# and stays; training on Unknown facts *falls* to 0.42 between step 8 and step 16, exactly while its Unknown
# examples go from half fitted (0.53) to fitted (0.97), and stays there. That is the paper's finding in
# miniature: the Unknown examples are fitted later than the known ones (0.53 against 0.95 at step 8), and the
# held-out accuracy drops as they are; stopping at step 8 (early stopping) keeps 0.50. Cautions: one seed, and
# 24 held-out facts, so one fact is 0.04 of accuracy; the gap at the end (0.62 against 0.42) is five facts, the
# fall in the Unknown run (0.50 to 0.42) two. `tests/test_new_knowledge.py` (slow) reruns this cell's two
# fine-tunes (every step is seeded, so it gets these numbers) and checks the gap at the end and the late fit.
#
# > **Why is knowledge learned in pretraining and not in SFT? (LLM Q&A §15)** The LLM Q&A asks it as "how can a model
# > learn more knowledge during pretraining?" (提高模型在预训练过程中学习知识的方法), and answers: more and more diverse
# > pretraining data, a larger model, better pretraining methods. That knowledge is pretraining's business is taken for
# > granted; this chapter shows why. Pretraining sees each fact many times, in many phrasings, across a huge corpus, and
# > the phrasings matter: in section 1 a fact read in one wording was stored but out of reach of a question, and
# > rewriting the pretraining data (the Q&A's "more diverse data", made concrete) made it reachable. SFT is small by
# > comparison (far fewer examples and steps, each fact in it seen a few times in one wording) and mostly teaches format
# > and style: LIMA's **superficial alignment hypothesis** (Zhou et al. 2023). The table above is the other half of the
# > answer: the Unknown facts, taught only by the fine-tune, were fitted later than the known ones, and as they were
# > fitted the accuracy on held-out known facts fell. That is Gekhman et al.'s finding: facts taught only in SFT are
# > learned slowly, and fitting them teaches the model to answer beyond what it knows. Chapter 8 (section 4) answers the
# > same question from the SFT side: its fine-tune changed the format of the answers, while its factual probe stayed
# > within its noise.

# %%
if NEW.single_categories:
    n_single = min(NEW.n_train, *slick.category_counts(train_pool).values())  # the smallest category sets the size
    print(f"{n_single} training facts per category")
    singles = {c: new_knowledge.fine_tune_on_facts(model, tok, new_knowledge.category_set(train_pool, c, n_single),
                                                   test_facts, NEW, desc=c) for c in slick.CATEGORIES}
    for c, curve in singles.items():
        es = new_knowledge.early_stopping(curve, "all")
        print(f"trained on {c:12}: held-out (all categories) best {es['best']:.2f}, end {es['final']:.2f}")
    new_knowledge.plot_held_out(singles, key="all")
    plt.show()
else:
    print("one fine-tune per SliCK category runs in the gpu profile (Try it 5 runs it here)")

# %% [markdown]
# ## 5. What we measured
#
# One recorded run of the cpu profile (seed 0, 2 threads; timings on a 2-core CPU, see the table at the top).
# Runs repeat exactly at the same thread count; another thread count sums the same floating-point numbers in
# another order, which moved `rewrites` below from 0.224 (1 thread) to 0.212 (2 threads):
#
# * **Stored is not extractable** (section 1): all three variants store the held-out half's facts (recall 0.99 to
#   1.00); `single` extracts 0.08 of them (majority answer 0.04), `rewrites` 0.21, `rewrites + mixed QA` 0.89.
#   The direction of Allen-Zhu & Li's result reproduces; the rewrites' gain is much smaller than in the paper.
#   Tested at this size in `tests/test_knowledge.py` (slow).
# * **Repeated vs unique data** (section 2): **did not reproduce.** Validation loss 2.14 / 2.29 / 2.40 / 2.20 /
#   2.31 for 1 / 2 / 4 / 8 / 16 epochs: not rising with the epochs, and a second seed moved one setting by 0.14.
#   What holds: 16 epochs memorise (train-validation gap 0.71 against 0.22) and end worse than unique data
#   (`tests/test_data_scaling.py`, slow).
# * **SliCK** (section 3): 71 HighlyKnown, 55 MaybeKnown, 53 WeaklyKnown, 61 Unknown of 240 facts; the scoring
#   shortcut equals greedy generation and real sampling (`tests/test_slick.py`).
# * **Fine-tuning on new knowledge** (section 4): held-out known accuracy ends at 0.62 after training on known
#   facts and at 0.42 after training on Unknown ones, which reached 0.50 at step 8 and fell as its Unknown
#   examples were fitted (0.53 fitted at step 8, 0.97 at step 16, against 0.95 of the known examples at step 8):
#   Gekhman et al.'s effect, and early stopping's remedy, in miniature (one seed, 24 held-out facts). Tested at
#   this size in `tests/test_new_knowledge.py` (slow, about 7 minutes).
# * **Two Try-it items, measured once** (compare after you have run them). Try it 3: the `partial` variant
#   extracts 0.09 of the un-rewritten half, against 0.08 for `single`: at this size the rewritten "celebrities"
#   do **not** help the "minorities" (the paper's effect did not reproduce), though the rewritten half itself is
#   answered perfectly (1.00). Try it 5, one fine-tune of 32 facts per category, held-out known accuracy at the
#   end (best in brackets): HighlyKnown 0.71 (0.71), MaybeKnown 0.62 (0.62), WeaklyKnown 0.54 (0.58), Unknown
#   0.33 (0.42). Unknown is the least useful training data, as Gekhman et al. found; the most useful here is
#   HighlyKnown, not MaybeKnown as in the paper, by two facts of 24, which one seed cannot separate.
#
# ## 6. Concept check
#
# **What is the difference between knowledge storage and knowledge extraction?** Storage: the model reproduces a
# fact inside the text it was trained on (recall in the biography). Extraction: it answers a question about the
# fact that it was never asked in training. Section 1's `single` model stores everything (recall 1.00) and
# extracts almost nothing (0.08, against 0.04 for always giving the most common answer).
#
# **Why does rewriting the pretraining data help?** Seen in one wording, the fact is learned as the continuation
# of that text ("only A + B + C gives D"); seen in many wordings and orders with the full name each time, the only
# thing the rewrites share is the name, so the fact gets attached to the name, where a question can find it.
# Mixing QA pairs into pretraining helps most (0.89 in section 1).
#
# **What is a repeated token worth?** By Muennighoff et al.'s fit, $E$ epochs over $U$ tokens are worth
# $U + U R^*(1 - e^{-(E-1)/R^*})$ unique tokens: 93% of fresh data at 4 epochs, 66% at 16, and never more than
# $(1 + R^*) U \approx 16 U$ however often it is repeated. With limited compute, read more different data.
#
# **How does SliCK tell HighlyKnown from MaybeKnown from WeaklyKnown?** By $P_\text{correct}$ under several
# few-shot exemplar sets: greedy right under all of them (HighlyKnown), under some (MaybeKnown), under none but a
# temperature sample sometimes right (WeaklyKnown), never (Unknown). The exemplars are there because a base model
# cannot be asked a question directly.
#
# **Why can fine-tuning on facts the model does not know cause hallucination, and what limits it?** The fine-tune
# cannot add the fact the way pretraining does; fitting an Unknown example teaches the model to produce a
# confident answer that its knowledge does not support, a habit that carries over to other questions. Gekhman et
# al.: the Unknown examples are fitted late, and the held-out accuracy falls as they are; stopping early, or
# filtering the Unknown examples out of the fine-tuning data, avoids most of it.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/10_knowledge_and_hallucination.ipynb`; `python -m course_utils progress` (or the table at the end of
# this section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · what repeated data is worth.** Section 2's last column: by Muennighoff et al.'s fit, $E$ epochs
# over $U$ unique tokens are worth $U + U R^* (1 - e^{-(E-1)/R^*})$ unique tokens, with $R^* = 15.4$
# (`data_scaling.R_STAR`). The checker compares with `data_scaling.effective_data`.

# %% tags=["exercise"]
import math


def my_effective_data(unique_tokens: float, epochs: float) -> float:
    """What `epochs` passes over `unique_tokens` are worth, in unique tokens."""
    r_star = 15.4
    # TODO: the first epoch counts in full; the E - 1 repetitions after it saturate at R* x U
    raise NotImplementedError


checks.check("10.effective_data", my_effective_data)

# %% tags=["solution"]
import math


def my_effective_data(unique_tokens: float, epochs: float) -> float:
    """What `epochs` passes over `unique_tokens` are worth, in unique tokens."""
    r_star = 15.4
    return unique_tokens + unique_tokens * r_star * (1 - math.exp(-(epochs - 1) / r_star))


checks.check("10.effective_data", my_effective_data)

# %% [markdown]
# **Core · the SliCK category.** Section 3's table as code: from $P_\text{correct}(T{=}0)$ (the share of exemplar
# sets whose greedy answer is right) and $P_\text{correct}(T{>}0)$ (the share of right samples), return
# `"HighlyKnown"`, `"MaybeKnown"`, `"WeaklyKnown"` or `"Unknown"`. The checker compares with `slick.categorize`.

# %% tags=["exercise"]
def my_slick_category(p_greedy: float, p_sample: float) -> str:
    """The SliCK category of a fact."""
    # TODO: four cases; the greedy share decides the first two
    raise NotImplementedError


checks.check("10.slick_category", my_slick_category)

# %% tags=["solution"]
def my_slick_category(p_greedy: float, p_sample: float) -> str:
    """The SliCK category of a fact."""
    if p_greedy == 1:
        return "HighlyKnown"
    if p_greedy > 0:
        return "MaybeKnown"
    return "WeaklyKnown" if p_sample > 0 else "Unknown"


checks.check("10.slick_category", my_slick_category)

# %% [markdown]
# **Stretch · scoring a sample without sampling.** Section 3 replaces 16 samples per exemplar set by one number:
# the probability that a sample at temperature $T$ writes exactly the gold answer and then stops,
# $\prod_j p_T(\text{gold}_j) \cdot p_T(\text{stop})$. `logits` is `[len(answer) + 1, vocab]` (the positions that
# predict each answer token, and the one after), `stop` a `[vocab]` boolean mask of the tokens that end an answer.
# The checker compares with `slick.sample_probability`, which `slick.score_answers` uses.

# %% tags=["exercise"]
import torch


def my_sample_probability(logits: torch.Tensor, answer: torch.Tensor, stop: torch.Tensor, t: float) -> float:
    """P(a sample at temperature t is exactly `answer`, then a stop token)."""
    # TODO: token probabilities at temperature t (softmax of logits / t)
    # TODO: the product of the answer tokens' probabilities, times the stop tokens' total at the last position
    raise NotImplementedError


checks.check("10.sample_probability", my_sample_probability)

# %% tags=["solution"]
import torch


def my_sample_probability(logits: torch.Tensor, answer: torch.Tensor, stop: torch.Tensor, t: float) -> float:
    """P(a sample at temperature t is exactly `answer`, then a stop token)."""
    p = torch.softmax(logits / t, dim=-1)
    tokens = p[torch.arange(len(answer)), answer].prod()
    return float(tokens * p[-1][stop].sum())


checks.check("10.sample_probability", my_sample_probability)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("10")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Ask the section-1 models about a person of the QA-training half (`people[0]` instead of
#    `people[-1]` in the generation cell). Where do `single` and `rewrites` now agree with the gold answer?
# 2. *(warm-up)* With `data_scaling.effective_data(1, E) / E`, find the number of epochs at which a repeated token is worth
#    half a fresh one, and what the 40 repetitions of section 2's figure are worth.
# 3. *(core)* Run the `partial` variant, which rewrites only the QA-training half's biographies:
#    `knowledge.extraction_experiment(BIOS, ("single", "partial"), device=device)` (about 3 minutes in the cpu profile).
#    Does the un-rewritten half become more extractable than with `single` (0.08), as the paper's "celebrities
#    help minorities" says?
# 4. *(core)* Sort the facts again with a higher sampling temperature (after `import dataclasses`),
#    `slick.slick_categories(model, tok, facts, dataclasses.replace(NEW.slick, temperature=1.0))` (3 minutes in the
#    cpu profile). Which categories change, and why can the temperature never move a fact in or out of
#    HighlyKnown or MaybeKnown?
# 5. *(stretch)* One fine-tune per SliCK category, as the gpu profile does: run the last code cell of section 4
#    with `NEW = dataclasses.replace(NEW, single_categories=True)` (four fine-tunes of 32 facts each, the cpu profile's
#    `n_train`, since every category of the training pool has more; 13 minutes on the 2-core CPU). Is MaybeKnown the most useful
#    training data and Unknown the least, as Gekhman et al. found?
# 6. *(stretch)* Run section 2 with two more seeds (`seed=1`, `seed=2` in `data_scaling.repetition_experiment`) and plot the
#    mean and spread per epoch count. How many seeds would it take to tell 2 epochs from 16 at this size?

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("10_knowledge_and_hallucination", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("10_knowledge_and_hallucination")

# %% [markdown]
# ## Summary: what to remember
#
# - A fact seen in one wording can be stored (reproduced inside its own text) yet not extractable by a question;
#   rewriting the pretraining data makes it extractable, and mixing QA into pretraining helps most.
# - At laptop scale the direction of Allen-Zhu & Li's result reproduced, but the rewrites' gain was much smaller, and
#   rewriting only half of the people did not help the other half (Try it 3).
# - By Muennighoff et al.'s fit a few epochs of repeated data are worth almost as much as fresh data and many epochs
#   add little: with limited compute, read more different data.
# - Our repeated-vs-unique runs did not reproduce that ordering, because the seed-to-seed spread was as large as the
#   effect, though heavy repetition did memorise.
# - SliCK sorts facts into HighlyKnown, MaybeKnown, WeaklyKnown and Unknown from few-shot greedy and sampled answers,
#   and one teacher-forced forward pass decides both without generating.
# - Exact match is strict: SliCK measures whether the model produces this answer string, not whether it holds the
#   fact in some form.
# - Fine-tuning on Unknown facts fitted them late and lowered accuracy on held-out known facts as they were fitted,
#   while training on known facts did not; early stopping or leaving Unknown examples out avoids most of it.
# - Knowledge is pretraining's business (LLM Q&A §15): pretraining sees each fact many times in many wordings, SFT is
#   small and mostly teaches format (LIMA's superficial alignment hypothesis), and facts taught only by SFT are
#   learned slowly and invite hallucination.
#
# ## Further reading
#
# - Allen-Zhu, Z., & Li, Y. (2023). *Physics of Language Models: Part 3.1, Knowledge Storage and Extraction*. ICML
#   2024. arXiv:2309.14316. Synthetic biographies, knowledge augmentation and probing where facts are stored.
# - Muennighoff, N., Rush, A. M., Barak, B., et al. (2023). *Scaling Data-Constrained Language Models*. NeurIPS 2023.
#   arXiv:2305.16264. Repeated vs unique data and the effective-data formula of section 2.
# - Gekhman, Z., Yona, G., Aharoni, R., et al. (2024). *Does Fine-Tuning LLMs on New Knowledge Encourage
#   Hallucinations?* EMNLP 2024. arXiv:2405.05904. SliCK and how Unknown examples raise hallucination.
# - Zhou, C., Liu, P., Xu, P., et al. (2023). *LIMA: Less Is More for Alignment*. NeurIPS 2023. arXiv:2305.11206.
#   The superficial alignment hypothesis: knowledge comes from pretraining, alignment teaches the format.
# - Lee, H.-y. (李宏毅) (2025). *大型語言模型訓練方法「預訓練–對齊」(Pretrain-Alignment) 的強大與極限*, lecture 5
#   of *生成式AI時代下的機器學習 (2025)*, National Taiwan University, Spring 2025; read through the notes
#   "李宏毅genai 笔记:预训练-对齐", §6-8. The lecture sections this chapter teaches.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.; no author named), question 15. How a model
#   learns more knowledge in pretraining, answered here and in chapter 8.
