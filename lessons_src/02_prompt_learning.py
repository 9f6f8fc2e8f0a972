# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 2 · Prompt learning (提示学习)
#
# *LLM-TAP §5.1 (Zhang et al., Large Language Models: From Theory to Practice, ch. 5): the three stages of prompt
# learning, prompt addition (提示添加), answer search (答案搜索) and answer mapping (答案映射), and the directions
# derived from it.*
#
# **Learning objectives.** After this chapter you can
# 1. write a template with an input slot `[X]` and an answer slot `[Z]`, and a verbalizer from label words to labels;
# 2. score every answer in an answer space Z with a causal LM, including answers of several tokens;
# 3. measure how much the template, the label words, length normalisation, calibration and ensembling move
#    zero-shot accuracy, and explain why dividing by a content-free input's probabilities removes a prompt's bias;
# 4. compare a zero-shot prompt with a classification head trained on k labelled examples per class;
# 5. name the research directions that grew out of prompt learning and what each one changes.
#
# **Before you start.** Chapters: 1 (the LM objective, tokens, the log-probability of a continuation, the KV cache).
# Maths: conditional probability, log-probabilities summed or averaged over an answer's tokens, softmax, and
# renormalising a distribution (calibration divides by the content-free probabilities).
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 36 s |
# | cpu | the same 2-core CPU, nothing else running | 1.1 min |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import dataclasses
import inspect
import statistics
from collections import Counter

import matplotlib.pyplot as plt
import torch

from course_utils import prompting
from course_utils.config import profile
from course_utils.data import load_sentiment
from course_utils.device import assert_close, set_seed
from course_utils.models import load_model

P = profile()
set_seed(0)
model, tok = load_model(P.model_name)

# %% [markdown]
# ## 1. Concept: three stages
#
# Instead of training a classifier head, prompt learning rewrites the task as text the language model already
# knows how to continue (Liu et al. 2021, *Pre-train, Prompt, and Predict*):
#
# | stage | 中文 | what it does | LLM-TAP's example |
# |---|---|---|---|
# | prompt addition | 提示添加 | a template $f_{prompt}$ turns x into x′ with an answer slot | `[X] I feel [Z]` → x′ = "I accidentally missed the bus. I feel [Z]" |
# | answer search | 答案搜索 | score every answer z in the answer space Z: $\tilde z = \mathrm{search}_{z\in Z} P(f_{fill}(x', z); \theta)$ | Z = {great, good, okay, bad, terrible} (太好了, 好, 一般, 不好, 糟糕) |
# | answer mapping | 答案映射 | a verbalizer maps answers to labels, by rules people write | great, good → positive; okay → neutral; bad, terrible → negative |
#
# With a causal LM, $P(f_{fill}(x', z))$ compares across answers through the part that depends on z: the answer's
# tokens given the text before the slot, and the text after the slot given both. For an answer of several
# tokens, $\log P(z \mid x') = \sum_t \log P(z_t \mid x', z_{<t})$.
#
# The figure shows the three stages on one review of the course's sentiment data: the template
# `Review: [X]\nSentiment: [Z]` places the review and leaves the answer slot open, SmolLM2 scores each of LLM-TAP's
# five answer words in the slot, and the verbalizer maps the best one to its label.
#
# ![Prompt learning in three stages: a template puts a review after Review: and leaves the answer slot after Sentiment:, the language model scores every answer word, and the verbalizer maps the best word, great, to the label positive.](../figures/prompt_learning_pipeline.svg)

# %% [markdown]
# ## 2. From scratch: LLM-TAP's example, stage by stage

# %%
template = prompting.Template(prompting.SEED_TEMPLATE)
verbalizer = prompting.Verbalizer(prompting.SEED_LABEL_WORDS)
x = "I accidentally missed the bus."
print("1. prompt addition: x' =", repr(template.fill(x)))
for z in verbalizer.answers:
    print("   f_fill(x', z) =", repr(template.fill_answer(x, z)))

# %% [markdown]
# The definition, written plainly: one forward pass per answer, summing the log-probabilities of the tokens after
# the slot's context.

# %%
print(inspect.getsource(prompting.answer_search_naive))

# %%
scores = prompting.answer_search_naive(model, tok, template, [x], verbalizer.answers)[0]
best = verbalizer.answers[int(scores.argmax())]
for z, s in zip(verbalizer.answers, scores):
    print(f"2. answer search: log P({z!r:11}) = {s:7.3f}")
print(f"   z~ = {best!r}  ->  3. answer mapping: v({best!r}) = {verbalizer(best)!r}")

plt.figure(figsize=(5, 2.5))
plt.bar(verbalizer.answers, scores.softmax(-1).tolist(), color=[f"C{verbalizer.label_index(verbalizer(z))}"
                                                                  for z in verbalizer.answers])
plt.ylabel("P(z | x') over Z")
plt.title(template.fill(x))
plt.show()

# %% [markdown]
# **Tokens matter.** A BPE tokenizer gives `" great"` (with its leading space) a different id from `"great"`,
# and some label words are several tokens. The template's space before `[Z]` belongs to the answer:

# %%
for z in verbalizer.answers + ["so-so", "disappointed"]:
    print(f"{z!r:15} -> {tok.tokenize(' ' + z)}")

# %% [markdown]
# ## 3. The fast engine, checked against the definition
#
# The naive search runs the model once per (text, answer). `answer_search` batches the texts and reads each
# prompt once: its keys and values are cached and reused for every answer (the same KV cache that makes
# generation fast, chapter 1). It must give the same numbers. OpenPrompt (`ManualTemplate`, `ManualVerbalizer`,
# `PromptForClassification`) is the reference design, but it does not import with transformers 5, so the course
# re-implements its core; its single-mask scoring of multi-token words is replaced by the full continuation.
#
# The third template, `"[Z] news: [X]"`, is a **prefix-style** template (topic classification writes it this way:
# "Sports news: ..."): the answer slot comes *first*, so the answer is scored before the input is read. It is here
# because it is the hard case for the engine: the context before the slot is empty, so the model predicts the
# answer's first token from a start token alone. The score splits into two terms,
# $\log P(z \mid \text{start}) + \log P(\text{" news: "} + x \mid z)$. The first is the same for every input, a
# pure prior over the answers; only the second, how likely the input becomes once the label is written, carries
# the input's evidence, and it is spread over many input tokens that the label barely changes. So a causal LM
# answers a different, harder question: not "which label does this input suggest?" but "which label makes this
# input most likely to follow?". Cloze templates with the slot at the end (all of section 4's) let the answer
# read the whole input, which is why causal LMs are prompted that way.

# %%
texts = [e.text for e in load_sentiment("dev", limit=8)]
for t in (prompting.SEED_TEMPLATE, prompting.SENTIMENT_TEMPLATE, "[Z] news: [X]"):
    naive = prompting.answer_search_naive(model, tok, prompting.Template(t), texts, verbalizer.answers)
    fast = prompting.answer_search(model, tok, prompting.Template(t), texts, verbalizer.answers)
    diff = assert_close(fast, naive, model, "naive and fast answer search")  # tolerance of the model's dtype
    print(f"{t!r:32} max |naive - fast| = {diff:.1e}")

# %% [markdown]
# ## 4. Experiment: does the template matter? Do label words, calibration, ensembling help?
#
# Data: the course's 3-class sentiment set (positive / neutral / negative, written for the course; see
# `course_utils/data/README.md`). Chance is 33%.
#
# **Expected, before running** (Zhao et al. 2021; Jiang et al. 2020; Schick & Schütze 2021):
# 1. accuracy varies strongly across templates that mean the same thing;
# 2. each template has a bias towards some labels, visible on a content-free input ("N/A");
# 3. contextual calibration ($p \propto p / p_{cf}$) raises the mean accuracy across templates;
# 4. several label words per label can help or hurt; the literature gives no fixed direction;
# 5. ensembling the templates lands near the best single template, without knowing in advance which it is.
#
# **Why dividing by $p_{cf}$ removes the bias** (Zhao et al. 2021, *Calibrate Before Use*, ICML 2021,
# arXiv:2102.09690). Feed the prompt an input with no content, "N/A" (and, averaged with it, the empty string and
# "[MASK]"). A perfectly neutral prompt would give it the uniform distribution over the labels; whatever it gives
# instead, $p_{cf}$, estimates the prompt's own preference for each label: a label word that is common in
# pre-training text (common-token bias), a label that dominates the demonstrations (majority-label bias) or comes
# last among them (recency bias, chapter 3). Contextual calibration multiplies the label probabilities by
# $W = \mathrm{diag}(p_{cf})^{-1}$ and renormalises: $\hat p \propto p / p_{cf}$. By construction the
# content-free input itself now comes out uniform, so for a real input what moves the prediction away from
# uniform is what its content adds beyond the prompt's bias. It fails when the bias is not one constant
# factor per label: when it depends on the input (a long or negative-sounding input shifts the labels differently
# from "N/A"), or when the content-free input is not neutral for this task (the model reads "N/A" itself as
# neutral or negative), in which case dividing by $p_{cf}$ pushes the predictions the wrong way. Item 3 above
# expects a gain on average, not for every template.

# %%
test = load_sentiment("test", limit=P.eval_examples)
X, Y = [e.text for e in test], [e.label for e in test]
verbalizers = {"1 word": prompting.Verbalizer(prompting.ONE_WORD_LABELS),
               "seed's words": prompting.Verbalizer(prompting.SEED_LABEL_WORDS)}
rows, raw_scores = [], {}
for t in prompting.SENTIMENT_TEMPLATES:
    for vname, v in verbalizers.items():
        clf = prompting.PromptClassifier(model, tok, t, v, batch_size=32)
        raw = clf.scores(X)                                         # label log-probs, uncalibrated
        p_cf = clf.content_free_probs()                             # the template's bias
        cal = prompting.contextual_calibration(raw.exp(), p_cf).log()      # Zhao et al.'s diagonal W
        raw_scores[t, vname] = raw
        rows.append({"template": t, "words": vname, "acc": prompting.accuracy(raw, Y, v),
                     "calibrated": prompting.accuracy(cal, Y, v), "p_cf": [round(p, 2) for p in p_cf.tolist()]})

print(f"{len(X)} test sentences; labels {verbalizers['1 word'].labels}")
print(f"{'template':58} {'words':13} {'acc':>6} {'calib.':>7}   p_cf (bias)")
for r in rows:
    print(f"{r['template']!r:58} {r['words']:13} {r['acc']:6.3f} {r['calibrated']:7.3f}   {r['p_cf']}")

# %%
fig, ax = plt.subplots(figsize=(10, 3.5))
labels = [f"T{i + 1} {r['words']}" for i in range(len(prompting.SENTIMENT_TEMPLATES)) for r in rows[2 * i:2 * i + 2]]
xs = torch.arange(len(rows))
ax.bar(xs - 0.2, [r["acc"] for r in rows], 0.4, label="raw")
ax.bar(xs + 0.2, [r["calibrated"] for r in rows], 0.4, label="calibrated")
ax.axhline(1 / 3, color="grey", ls="--", label="chance")
ax.set_xticks(xs.tolist(), labels, rotation=30, ha="right", fontsize=8)
ax.set_ylabel("test accuracy")
ax.legend()
ax.set_title("Zero-shot accuracy by template (T1 = the seed's) and label words")
plt.tight_layout()
plt.show()

# %%
accs = [r["acc"] for r in rows]
mean_raw = sum(accs) / len(rows)
mean_cal = sum(r["calibrated"] for r in rows) / len(rows)
helped = sum(r["calibrated"] > r["acc"] for r in rows)
one = [r["acc"] for r in rows if r["words"] == "1 word"]
many = [r["acc"] for r in rows if r["words"] != "1 word"]
print(f"1. spread across prompts: {min(accs):.3f} .. {max(accs):.3f}")
print(f"3. calibration: mean {mean_raw:.3f} -> {mean_cal:.3f}; better for {helped} of {len(rows)} prompts")
print(f"4. several label words: mean {sum(many) / len(many):.3f} vs one word {sum(one) / len(one):.3f}")

# %% [markdown]
# **Prompt ensembling** (multi-prompt learning): average the label probabilities of all templates.

# %%
for vname, v in verbalizers.items():
    ens = torch.stack([raw_scores[t, vname].exp() for t in prompting.SENTIMENT_TEMPLATES]).mean(0).log()
    singles = [r["acc"] for r in rows if r["words"] == vname]
    print(f"{vname:13} ensemble {prompting.accuracy(ens, Y, v):.3f} | single templates: mean "
          f"{sum(singles) / len(singles):.3f}, best {max(singles):.3f}")
# the same through the library function, for one verbalizer:
clfs = [prompting.PromptClassifier(model, tok, t, verbalizers["1 word"], batch_size=32)
        for t in prompting.SENTIMENT_TEMPLATES[:2]]
ensembled = prompting.accuracy(prompting.ensemble_scores(clfs, X), Y, verbalizers["1 word"])
print("ensemble_scores of T1+T2:", round(ensembled, 3))

# %% [markdown]
# **What we measured.** The outputs above are this run's. A recorded run of the `cpu` profile (100 test
# sentences, a 2-core CPU, November 2026) gave:
# 1. accuracy from 0.33 to 0.61 across the ten prompts: wording alone moves a 135M model by almost 30 points;
# 2. strong biases: `Review: [X]\nSentiment: [Z]` with one word puts 0.98 of a content-free input on *neutral*;
# 3. calibration raised the mean from 0.48 to 0.55 and helped 7 of 10 prompts, among them the most biased
#    (that template: 0.43 → 0.60), though not every biased prompt gained;
# 4. LLM-TAP's several label words: 0.50 on average against 0.47 for one word, better for three templates of five;
# 5. ensembling the five one-word templates gave **0.77, far above the best single template (0.52)**, more than
#    we expected: the templates' biases point different ways and largely cancel in the average.
#
# `tests/test_prompting.py::test_chapter2_claims_on_the_full_test_split` checks claims 1, 3 and 5 on all 120
# test sentences in every CI run.

# %% [markdown]
# ## 5. Experiment: answers of different lengths, and length normalisation
#
# Section 2 scored an answer by the **sum** of its tokens' log-probabilities. Every token adds a negative number,
# so an answer of four tokens pays four times where a one-token answer pays once, whatever it means. Length
# normalisation scores the **mean** log-probability per scored token instead: `normalize=True` in `answer_search`,
# `continuation_logprobs` and `PromptClassifier` divides each sum by the number of tokens it covers (the answer's
# tokens and the template's text after the slot, here the full stop). Two verbalizers put a one-token word on
# positive and negative and a word of several tokens on neutral.
#
# **Expected:** summed, the several-token neutral answer is almost never the best, so the classifier predicts
# neutral for almost no sentence (a third of the test sentences are neutral). Averaged, that penalty is gone and
# neutral is predicted again. Whether accuracy rises is open: a word's later tokens are often nearly certain once
# its first token is there (`so` `-` `so`), and their near-zero log-probabilities pull the mean *up*, so
# normalisation can swing the bias to the long answer instead of removing it (Holtzman et al. 2021 discuss
# such surface-form effects).

# %%
long_neutral = {  # one-token words for positive and negative, a word of several tokens for neutral
    "so-so": {"positive": ["great"], "neutral": ["so-so"], "negative": ["disappointed"]},
    "neither good nor bad": {"positive": ["good"], "neutral": ["neither good nor bad"], "negative": ["bad"]},
}
print(f"gold labels of the {len(Y)} test sentences: {dict(Counter(Y))}")
for name, words in long_neutral.items():
    v = prompting.Verbalizer(words)
    print(f"\nneutral = {name!r}; tokens per answer: {({z: len(tok.tokenize(' ' + z)) for z in v.answers})}")
    for normalize in (False, True):
        clf = prompting.PromptClassifier(model, tok, prompting.SEED_TEMPLATE, v, normalize=normalize, batch_size=32)
        s = clf.scores(X)
        predicted = Counter(v.labels[i] for i in s.argmax(-1).tolist())
        print(f"  {'mean (normalize=True)' if normalize else 'sum':22} accuracy {prompting.accuracy(s, Y, v):.3f}   "
              f"predicted: {', '.join(f'{y} {predicted[y]}' for y in v.labels)}")

# %% [markdown]
# **What we measured.** In the recorded run of the `cpu` profile (100 test sentences, 2-core CPU), the sum never chose
# either several-token neutral answer: 0 neutral predictions for both verbalizers, against 33 neutral sentences. With
# the mean, neutral came back, and what that did to accuracy depended on the word. With `neither good nor bad`, neutral
# was predicted 32 times, about as often as it is the gold label, yet accuracy barely moved (0.59 to 0.60): many of
# those predictions went to the wrong sentences. With `so-so`, accuracy fell from 0.58 to 0.37, because the mean chose
# neutral for 46 sentences: after `so-`, the last `so` is almost certain, and its near-zero log-probability lifts the
# average. Length normalisation removes one bias (against long answers) and can add another (towards answers whose later
# tokens are easy). It is a choice to test on a dev split, not a fix; the sturdier remedy is label words of one token
# each, as in section 4.

# %% [markdown]
# ## 6. Baseline: a classification head on the same frozen model
#
# Why prompt at all, instead of training a classifier? A **classification head** is a new linear layer on the
# model's final hidden state. `classification_head.learning_curve` reads that state at the last token of the text
# before the answer slot (`Review: <text>\nSentiment:`), the very vector from which the prompt predicts its answer,
# so both read the same features from the same frozen model. The difference is the weights that turn it into a
# label: the prompt reuses the rows of the pretrained LM head that belong to the words `positive`, `neutral`,
# `negative` and needs no labelled example; the head starts from random weights and learns only from the k
# labelled examples per class it is given (logistic regression with L2 regularisation, one fresh draw of examples
# per seed).
#
# **Expected** (Le Scao & Rush 2021, *How Many Data Points is a Prompt Worth?*): with very few labels the prompt
# wins, because it brings the pretrained LM head's knowledge of what the label words mean; as k grows the head
# catches up and passes it, because it fits the task directly. Where the curves cross depends on the task and the
# model: the weaker the zero-shot prompt, the sooner the head passes it.

# %%
from course_utils import classification_head

train = load_sentiment("train", limit=P.n_examples)  # class-balanced; the cpu and gpu profiles use all of train
per_class = min(Counter(e.label for e in train).values())
head_ks = [k for k in (1, 2, 4, 8, 16, 32, 60) if k <= per_class]
curve = classification_head.learning_curve(model, tok, train, test, sizes=head_ks, seeds=range(P.n_seeds),
                                           template=prompting.SENTIMENT_TEMPLATE, batch_size=32)
prompt_clf = prompting.PromptClassifier(model, tok, prompting.SENTIMENT_TEMPLATE, prompting.SENTIMENT_WORDS,
                                        batch_size=32)
prompt_acc = prompt_clf.accuracy(X, Y)
head_mean = {k: statistics.mean(accs) for k, accs in curve.items()}
for k, accs in curve.items():
    print(f"head, {k:2} labels per class: {head_mean[k]:.3f} (min {min(accs):.3f}, max {max(accs):.3f}, "
          f"{len(accs)} draws)")
print(f"zero-shot prompt {prompting.SENTIMENT_TEMPLATE!r}, no labels: {prompt_acc:.3f}")
passed = [k for k in head_ks if head_mean[k] > prompt_acc]
print(f"the head's mean passes the prompt from {passed[0]} labels per class" if passed
      else "the head's mean stays at or below the prompt for every k measured here")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.errorbar(head_ks, [head_mean[k] for k in head_ks], yerr=[statistics.pstdev(curve[k]) for k in head_ks],
            marker="o", capsize=4, label="linear head on frozen features")
ax.axhline(prompt_acc, color="C1", label="zero-shot prompt (no labels)")
ax.axhline(1 / 3, color="grey", ls="--", label="chance")
ax.set_xscale("log")
ax.set_xticks(head_ks, [str(k) for k in head_ks])
ax.set_xlabel("labelled examples per class (k)")
ax.set_ylabel("test accuracy")
ax.set_title(f"Classification head vs prompt, mean ± std over {P.n_seeds} draws")
ax.legend()
plt.show()

# %% [markdown]
# **What we measured.** In the recorded run of the `cpu` profile (100 test sentences, 5 draws per k), the prompt won
# only at the very start: the zero-shot prompt scored 0.58; the head averaged 0.50 with one labelled example per class
# and 0.57 with two (the draws ranging from 0.42 to 0.66), then passed the prompt at four (0.70) and climbed to 0.91
# with all 60 per class. On this easy three-class task a 135M model's zero-shot prompt is worth only a couple of
# labelled examples per class, far less than the hundreds of examples Le Scao & Rush measured for prompts *fine-tuned*
# on larger models. Prompting pays when there are almost no labels, when one model must serve many tasks without
# training, or when the model is large enough for its zero-shot answer to be good; with a few dozen labels and one fixed
# task, a linear head on the same features is cheap and hard to beat. Chapter 4 fine-tunes through the prompt instead.
#
# ## 7. Playground: your own sentence, template and label words
#
# Edit the sentence, the template (keep one `[X]` and one `[Z]`) and the verbalizer
# (`label: word, word; label: word`), then press **Score**.

# %%
from course_utils.widgets import prompt_learning_playground

prompt_learning_playground(model, tok, "I accidentally missed the bus.", prompting.SEED_TEMPLATE,
                           "positive: great, good; neutral: okay; negative: bad, terrible")

# %% [markdown]
# ## 8. Directions that grew out of prompt learning (LLM-TAP: 提示工程、答案工程、多提示学习、基于提示的训练)
#
# **Prompt engineering (提示工程)**: finding the template. By hand (section 4), by search over discrete
# tokens (AutoPrompt, Shin et al. 2020), or as *continuous* vectors trained by gradient, the soft prompts of
# prefix tuning and prompt tuning (chapter 4).
#
# **Answer engineering (答案工程)**: finding the answer space and mapping. A cheap automatic version: for each
# label, try candidate words on the dev split and keep the best (in the spirit of PETAL, Schick et al. 2020):

# %%
dev = load_sentiment("dev", limit=P.eval_examples)
candidates = {"positive": ["great", "happy", "good", "wonderful"], "neutral": ["okay", "fine", "normal", "calm"],
              "negative": ["terrible", "sad", "bad", "awful"]}
base = prompting.PromptClassifier(model, tok, prompting.SEED_TEMPLATE, prompting.ONE_WORD_LABELS, batch_size=32)
found, dev_acc = prompting.search_label_words(base, [e.text for e in dev], [e.label for e in dev], candidates)
print(f"chosen on dev: {found.label_words} (dev accuracy {dev_acc:.3f})")
print(f"test accuracy: hand-picked {base.accuracy(X, Y):.3f} | searched "
      f"{dataclasses.replace(base, verbalizer=found).accuracy(X, Y):.3f}")

# %% [markdown]
# **Multi-prompt learning (多提示学习)**: use several prompts at once: ensembling (section 4), augmenting the
# input with solved examples (in-context learning, chapter 3), or decomposing a task into sub-prompts.
#
# **Prompt-based training (基于提示的训练策略)**: train the model *through* the template and verbalizer, so the
# fine-tuning objective looks like pre-training. PET (Schick & Schütze 2021) fine-tunes a masked LM on the
# verbalizer's cross-entropy over label words with a handful of labelled examples, ensembles several
# pattern-verbalizer pairs, and distils them into one classifier; with 100 examples it beat a supervised
# classifier head on Yelp, AG News, Yahoo and MNLI. Chapter 4 fine-tunes our model with LoRA on this task and
# compares with the zero-shot numbers above.
#
# ## 9. Concept check
#
# **What are the three stages of prompt learning?** Prompt addition (a template with `[X]` and `[Z]`), answer
# search over Z by the LM's probability of the filled prompt, answer mapping from the best answer to a label.
# Section 2 walked them on LLM-TAP's sentence.
#
# **Why does the template matter if the model is the same?** The model was never trained on our task, only on
# text; each wording makes some answers more likely a priori. Section 4 measured the spread and the bias
# (`p_cf`), and calibration divides that bias out.
#
# **How do you score a label word of several tokens with a causal LM?** Sum the log-probabilities of its tokens
# given the prompt and the earlier tokens of the word; optionally divide by its length so long words are not
# penalised. Section 5 showed that the mean is not neutral either: it favours words whose later tokens are easy.
#
# **Why prompt learning instead of a classification head?** The prompt reuses the pretrained LM head, so it works
# with no labelled data at all; a head must learn its weights from labelled examples. Section 6 measured the
# trade: the head overtook the zero-shot prompt after a few labelled examples per class on this task, so prompting
# pays when labels are scarce or one model must serve many tasks without training.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/02_prompt_learning.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · answer mapping.** The verbalizer's job (stage 3): from an answer word to its label, with the
# label words as a dict like `prompting.SEED_LABEL_WORDS`.

# %% tags=["exercise"]
def my_verbalize(label_words: dict[str, list[str]], z: str) -> str:
    """v(z): the label whose list of words contains the answer z."""
    # TODO: find the label that owns z
    raise NotImplementedError


checks.check("02.verbalize", my_verbalize)

# %% tags=["solution"]
def my_verbalize(label_words: dict[str, list[str]], z: str) -> str:
    """v(z): the label whose list of words contains the answer z."""
    for label, words in label_words.items():
        if z in words:
            return label
    raise KeyError(f"{z!r} is not in the answer space")


checks.check("02.verbalize", my_verbalize)

# %% [markdown]
# **Core · from answer scores to label scores.** Answer search gives one log-probability per answer word
# (columns in the order of `answers`). A label with several words (positive: great, good) gets the
# probability of *any* of its words: the `aggregate="sum"` of `Verbalizer.aggregate`.

# %% tags=["exercise"]
import torch


def my_label_scores(answer_logprobs: torch.Tensor, answers: list[str],
                    label_words: dict[str, list[str]]) -> torch.Tensor:
    """[N, |Z|] answer log-probs -> [N, |Y|] label log-probs, one column per label in label_words' order."""
    # TODO: for each label, pick its words' columns and combine them (they are log-probabilities)
    raise NotImplementedError


checks.check("02.label_scores", my_label_scores)

# %% tags=["solution"]
import torch


def my_label_scores(answer_logprobs: torch.Tensor, answers: list[str],
                    label_words: dict[str, list[str]]) -> torch.Tensor:
    """[N, |Z|] answer log-probs -> [N, |Y|] label log-probs, one column per label in label_words' order."""
    cols = []
    for words in label_words.values():
        idx = [answers.index(w) for w in words]
        cols.append(torch.logsumexp(answer_logprobs[:, idx], dim=1))  # log(sum of the words' probabilities)
    return torch.stack(cols, dim=1)


checks.check("02.label_scores", my_label_scores)

# %% [markdown]
# **Stretch · contextual calibration** (Zhao et al. 2021, section 4). `p_cf` is what the prompt gives a
# content-free input such as "N/A"; calibrated, that input must come out uniform, and every row must stay a
# probability distribution.

# %% tags=["exercise"]
import torch


def my_calibrate(label_probs: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """[N, |Y|] label probabilities, with the prompt's bias p_cf [|Y|] removed."""
    # TODO: remove the bias, then make each row a distribution again
    raise NotImplementedError


checks.check("02.calibrate", my_calibrate)

# %% tags=["solution"]
import torch


def my_calibrate(label_probs: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """[N, |Y|] label probabilities, with the prompt's bias p_cf [|Y|] removed."""
    cal = label_probs / p_cf
    return cal / cal.sum(dim=-1, keepdim=True)


checks.check("02.calibrate", my_calibrate)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("02")

# %% [markdown]
# ## Try it: three more experiments
# 1. *(warm-up)* In the playground, put the answer slot first: `"[Z]! [X]"`. Which part of each answer's score
#    still depends on the sentence (section 3)? Does the ranking of the answers change?
# 2. *(core)* Add a sixth template of your own to the table. Does calibration help it?
# 3. *(stretch)* Compare `aggregate="sum"`, `"mean"` and `"max"` for LLM-TAP's label words.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("02_prompt_learning", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("02_prompt_learning")

# %% [markdown]
# ## Summary: what to remember
#
# - Prompt learning turns classification into continuation in three stages: a template with `[X]` and `[Z]`, answer
#   search over Z by the LM's probability, and a verbalizer that maps the best answer to a label.
# - A causal LM scores an answer of several tokens by summing their log-probabilities given the prompt, and the
#   leading space is part of the answer's tokens. Put the answer slot at the end: with the slot first, the answer is
#   scored before the input is read.
# - Reading each prompt once and reusing its KV cache for every answer gives the naive definition's scores, faster.
# - Summed, a label word of several tokens was almost never chosen; the per-token mean (`normalize=True`) brought
#   it back but can over-favour words whose later tokens are easy. Prefer one-token label words, or test both.
# - Templates that mean the same thing give very different zero-shot accuracies, and each carries a label bias that
#   a content-free input such as "N/A" exposes.
# - Contextual calibration divides the label probabilities by that content-free $p_{cf}$ and renormalises, so a
#   content-free input comes out uniform; it raised the mean accuracy across templates, though not every template
#   gained, and it cannot remove a bias that depends on the input.
# - Ensembling the templates beat the best single template, because their biases point different ways and cancel.
# - Several label words per label helped some templates and hurt others.
# - A linear classification head on the same frozen features needs labels: it trailed the zero-shot prompt with one
#   or two examples per class and passed it from a handful on, so prompting pays when labels are scarce.
# - Prompt engineering, answer engineering, multi-prompt learning and prompt-based training (PET) each automate
#   one of these choices.
#
# ## Further reading
#
# - Liu, P., Yuan, W., Fu, J., et al. (2021). *Pre-train, Prompt, and Predict: A Systematic Survey of Prompting
#   Methods in Natural Language Processing*. ACM Computing Surveys 55(9), 2023. arXiv:2107.13586. The formalism of
#   the three stages and the map of the derived directions.
# - Zhao, T. Z., Wallace, E., Feng, S., et al. (2021). *Calibrate Before Use: Improving Few-Shot Performance of
#   Language Models*. ICML 2021. arXiv:2102.09690. Majority-label, recency and common-token bias, and the
#   content-free calibration of section 4.
# - Holtzman, A., West, P., Shwartz, V., et al. (2021). *Surface Form Competition: Why the Highest Probability
#   Answer Isn't Always Right*. EMNLP 2021. arXiv:2104.08315. Why the raw probability of an answer string is a
#   biased score, and a mutual-information alternative to length normalisation and calibration.
# - Le Scao, T., & Rush, A. M. (2021). *How Many Data Points is a Prompt Worth?* NAACL 2021. arXiv:2103.08493.
#   Prompt vs classification head as the labelled data grows, the question of section 6, with fine-tuned models.
# - Jiang, Z., Xu, F. F., Araki, J., et al. (2019). *How Can We Know What Language Models Know?* TACL 8 (2020).
#   arXiv:1911.12543. Paraphrased and mined prompts, and prompt ensembles.
# - Shin, T., Razeghi, Y., Logan IV, R. L., et al. (2020). *AutoPrompt: Eliciting Knowledge from Language Models with
#   Automatically Generated Prompts*. EMNLP 2020. arXiv:2010.15980. Searching discrete trigger tokens by gradient.
# - Schick, T., Schmid, H., & Schütze, H. (2020). *Automatically Identifying Words That Can Serve as Labels for
#   Few-Shot Text Classification*. COLING 2020. arXiv:2010.13641. PETAL: choosing label words automatically.
# - Schick, T., & Schütze, H. (2020). *Exploiting Cloze Questions for Few Shot Text Classification and Natural
#   Language Inference*. EACL 2021. arXiv:2001.07676. PET: fine-tuning through pattern-verbalizer pairs.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.1 (提示学习). https://intro-llm.github.io/. The section this chapter teaches.
