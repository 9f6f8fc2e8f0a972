# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 3 · In-context learning (语境学习)
#
# *LLM-TAP §5.1 (Zhang et al., Large Language Models: From Theory to Practice, ch. 5): "the key idea is
# learning from analogy; the whole process needs no parameter update, only forward inference. Give the model
# some examples of a task and a test case, and let it continue the answer."*
#
# **Learning objectives.** After this chapter you can
# 1. build a k-shot prompt from demonstrations and score it with chapter 2's engine;
# 2. explain why a shared prompt can be computed once and cached for every test input;
# 3. measure how accuracy depends on k, on the order of the demonstrations, on their labels and on how they
#    are chosen (random vs nearest neighbours, KATE);
# 4. compare in-context learning with zero-shot prompting on the same test split.
#
# **Before you start.** Chapters: 1 (the KV cache), 2 (templates, verbalizers, answer search, contextual
# calibration). Maths: log-probabilities, mean and standard deviation over random draws, permutations (4
# demonstrations have 24 orders), dot products and the cosine similarity of unit vectors.
# **Study time:** about 5 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 37 s |
# | cpu | the same 2-core CPU, nothing else running | 3.2 min |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import inspect
import statistics

import matplotlib.pyplot as plt
import torch

from course_utils import icl, prompting
from course_utils.config import profile, sizes
from course_utils.data import load_sentiment
from course_utils.device import assert_close, set_seed
from course_utils.models import load_model

P = profile()
set_seed(0)
model, tok = load_model(P.model_name)
test = load_sentiment("test", limit=P.eval_examples)
pool = load_sentiment("train")  # demonstrations come from train; the test split is never in the pool
X, Y = [e.text for e in test], [e.label for e in test]
seeds = range(P.n_seeds)
print(f"profile {P.name}: {len(test)} test sentences, {len(pool)} candidate demonstrations, {P.n_seeds} seeds")

# %% [markdown]
# ## 1. Concept: learning from analogy, with no update
#
# A k-shot prompt writes k solved examples (*demonstrations*) with the same template as the query, then the
# query with its answer slot open. The model's weights never change: whatever it "learns" happens in one forward
# pass, by continuing the pattern. We use chapter 2's Zhao et al. format, with label names as answers:

# %%
template = prompting.Template(prompting.SENTIMENT_TEMPLATE)
verbalizer = prompting.Verbalizer({"positive": "positive", "neutral": "neutral", "negative": "negative"})
SEP = "\n\n"
demos = icl.select_balanced(pool, 3, seed=0)
prompt = icl.format_demonstrations(template, verbalizer, demos, SEP) + template.fill(test[0].text)
print(prompt)

# %% [markdown]
# ## 2. From scratch, then fast
#
# The prefix is the same for every test sentence, so its keys and values can be computed **once** and reused:
# `continuation_logprobs(..., shared_prefix=...)` runs the demonstrations once, copies their cache for each
# batch of queries, and scores the answers. It must equal plain concatenation (the definition):

# %%
print(inspect.getsource(icl.format_demonstrations))
prefix = icl.format_demonstrations(template, verbalizer, demos, SEP)
naive = prompting.answer_search_naive(model, tok, template, X[:6], verbalizer.answers, shared_prefix=prefix)
fast = prompting.answer_search(model, tok, template, X[:6], verbalizer.answers, shared_prefix=prefix)
print(f"max |naive - fast| = {assert_close(fast, naive, model, 'concatenation and the cached prefix'):.1e}")

# %% [markdown]
# ## 3. Experiment: accuracy vs k
#
# **Expected** (Brown et al. 2020; Zhao et al. 2021): with large models, accuracy rises with k. With a
# 135M-parameter model we expect a weak trend and a wide spread over which demonstrations are drawn: small
# models are poor in-context learners. Calibration should reduce the spread: the demonstrations add their own
# biases (towards the label that is most frequent among them, and towards the label of the last one), and
# chapter 2's $p_{cf}$, measured on "N/A" *with the same demonstrations in front*, estimates exactly that prompt's
# bias (Zhao et al. 2021). k = 0 is chapter 2's zero-shot number for this template on the same split.

# %%
clf = prompting.PromptClassifier(model, tok, template, verbalizer, batch_size=32)
ks = [0, 1, 2, 4, 8]
results = {"raw": {k: [] for k in ks}, "calibrated": {k: [] for k in ks}}
for k in ks:
    for s in seeds if k else [0]:  # k = 0 has nothing to draw
        c = icl.with_demonstrations(clf, icl.select_balanced(pool, k, seed=s), SEP)
        raw = c.scores(X)  # scored once; calibration only needs this prompt's content-free p_cf
        cal = prompting.contextual_calibration(raw.exp(), c.content_free_probs()).log()
        results["raw"][k].append(prompting.accuracy(raw, Y, verbalizer))
        results["calibrated"][k].append(prompting.accuracy(cal, Y, verbalizer))
for mode, by_k in results.items():
    print(mode, {k: f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" for k, v in by_k.items()})

fig, ax = plt.subplots(figsize=(6, 3.5))
for mode, by_k in results.items():
    ax.errorbar(ks, [statistics.mean(by_k[k]) for k in ks], yerr=[statistics.pstdev(by_k[k]) for k in ks],
                marker="o", capsize=4, label=mode)
ax.axhline(1 / 3, color="grey", ls="--", label="chance")
ax.set_xscale("symlog", linthresh=1)
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("k demonstrations (balanced, random)")
ax.set_ylabel("test accuracy")
ax.set_title(f"In-context learning, mean ± std over {P.n_seeds} draws")
ax.legend()
plt.show()
zero_shot = results["raw"][0][0]
best_k = max(ks[1:], key=lambda k: statistics.mean(results["raw"][k]))
print(f"zero-shot (chapter 2) {zero_shot:.3f}; best mean k-shot: k={best_k} "
      f"{statistics.mean(results['raw'][best_k]):.3f}")

# %% [markdown]
# ## 4. Experiment: the order of the same demonstrations (Lu et al. 2022)
#
# **Expected:** permuting the *same* k demonstrations moves accuracy by several points, at every model size.

# %%
k_order = 4
fixed = icl.select_balanced(pool, k_order, seed=0)
orders = icl.orderings(fixed, n=sizes("ch03", P.name).orderings)
order_accs = [icl.icl_accuracy(clf, test, o, SEP) for o in orders]
print(f"{len(orders)} orders of the same {k_order} demonstrations: accuracy {min(order_accs):.3f} .. "
      f"{max(order_accs):.3f} (std {statistics.pstdev(order_accs):.3f})")
plt.figure(figsize=(6, 2.5))
plt.scatter(order_accs, [0] * len(order_accs), alpha=0.6)
plt.yticks([])
plt.xlabel("test accuracy of one order")
plt.title(f"Spread over {len(orders)} permutations of the same demonstrations")
plt.show()

# %% [markdown]
# ## 5. Experiment: do the labels of the demonstrations matter? (Min et al. 2022)
#
# Replace every demonstration's label by a random one (inputs, format and label space unchanged).
# **Expected** (Min et al., with models of 0.7B-175B and k = 16): gold labels beat random labels by only a few
# points. Later work (Yoo et al. 2022; Wei et al. 2023) finds the gap depends on the model and the task. For a
# small model that mostly copies the format and the label distribution of its prompt, random labels may hurt more.

# %%
k_lab = 8
gold_accs, rand_accs = [], []
for s in seeds:
    d = icl.select_balanced(pool, k_lab, seed=s)
    gold_accs.append(icl.icl_accuracy(clf, test, d, SEP))
    rand_accs.append(icl.icl_accuracy(clf, test, icl.corrupt_labels(d, verbalizer.labels, 1.0, seed=s), SEP))
print(f"k={k_lab}: gold labels {statistics.mean(gold_accs):.3f} | random labels {statistics.mean(rand_accs):.3f} "
      f"(zero-shot {zero_shot:.3f})")

# %% [markdown]
# ## 6. Experiment: random vs nearest-neighbour demonstrations (KATE, Liu et al. 2022)
#
# KATE embeds every sentence with a sentence encoder and gives each test sentence the k training sentences
# most similar to it. Our encoder is all-MiniLM-L6-v2 (a sentence-transformers BERT; shipped offline).
# `icl.embed` shows the key lines: the mean of the encoder's token states over the real (unpadded) tokens,
# scaled to unit length, so a dot product is a cosine similarity. It gives the vectors of
# `SentenceTransformer(folder).encode(texts, normalize_embeddings=True)` to 1e-5 (tested); use that library in
# your own projects. **Expected:** nearest neighbours beat random demonstrations.

# %%
pool_emb = icl.embed([e.text for e in pool])
test_emb = icl.embed(X)
k_knn = 4
knn = icl.select_knn(pool, pool_emb, test_emb, k_knn)
print("nearest to:", repr(X[0]), "->", [d.text for d in knn[0][:2]])
knn_acc = icl.icl_accuracy(clf, test, knn, SEP)
rand_knn = [icl.icl_accuracy(clf, test, icl.select_random(pool, k_knn, seed=s), SEP) for s in seeds]
print(f"k={k_knn}: kNN {knn_acc:.3f} | random {statistics.mean(rand_knn):.3f} ± {statistics.pstdev(rand_knn):.3f}")

# %% [markdown]
# ## 7. Everything on one chart

# %%
summary = {
    "zero-shot": zero_shot,
    f"k={best_k} random": statistics.mean(results["raw"][best_k]),
    f"k={best_k} calibrated": statistics.mean(results["calibrated"][best_k]),
    f"k={k_order} best order": max(order_accs),
    f"k={k_order} worst order": min(order_accs),
    f"k={k_lab} gold": statistics.mean(gold_accs),
    f"k={k_lab} random labels": statistics.mean(rand_accs),
    f"k={k_knn} kNN": knn_acc,
}
from course_utils.plotting import bar

ax = bar(summary, title="In-context learning vs zero-shot (same test split)", ylabel="accuracy", fmt="{:.2f}")
ax.axhline(1 / 3, color="grey", ls="--")
plt.show()

# %% [markdown]
# **What we measured.** The outputs above are this run's. A recorded run of the `cpu` profile (100 test
# sentences, 5 draws per point, a 2-core CPU, November 2026) gave:
# - **accuracy vs k: no gain.** Zero-shot 0.58; k = 1, 2, 4, 8 gave 0.55, 0.55, 0.51, 0.52 (std 0.06-0.11 over
#   draws). With calibration: 0.62, 0.56, 0.59, 0.50. The published rise with k did **not** show up: a 135M
#   model barely learns in context, and the draw of demonstrations matters more than their number.
# - **order: a large effect, as Lu et al. report.** The 24 orders of the same 4 demonstrations ranged from 0.33
#   (chance) to 0.66, better than zero-shot.
# - **labels: random labels did not hurt** (0.57 with random labels vs 0.52 with gold at k = 8), in line with
#   Min et al.; here the model uses the demonstrations for their format, not their input-label mapping.
# - **kNN beat random selection** (0.62 vs 0.55 ± 0.10 at k = 4), in the direction KATE reports, by less than
#   one standard deviation of the random draws.
#
# `tests/test_icl.py::test_chapter3_claims_on_the_full_test_split` checks the order spread (at least 10 points
# over 6 orders), that random labels cost at most 5 points, and kNN > random, on all 120 test sentences. Rerun
# the notebook with a larger model online (`load_model("HuggingFaceTB/SmolLM2-1.7B-Instruct")`,
# `COURSE_PROFILE=gpu`) to see whether the k-shot gain appears with scale.
#
# ## 8. Concept check
#
# **What is in-context learning, and how does it differ from fine-tuning?** The model reads solved examples in
# its prompt and continues the pattern; no parameter changes (only forward inference), so nothing is learned
# beyond the current prompt. Fine-tuning (chapters 4, 8) changes weights and keeps what it learned.
#
# **Why is it sensitive to the order and choice of demonstrations?** The prediction is a function of the
# whole prompt; recency and majority-label biases (Zhao et al.) and surface similarity to the query all change
# it. Sections 4 and 6 measured both.
#
# **Do the demonstration labels have to be right?** Min et al. found they matter little for large models; what
# matters is the format, the label space and the input distribution. Section 5 tested it on our small model.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/03_in_context_learning.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the k-shot prefix.** The chapter's template `Review: [X]\nSentiment: [Z]` with the label names
# as answers: each demonstration `(text, label)` filled in and followed by `sep`, like `icl.format_demonstrations`.

# %% tags=["exercise"]
def my_format_demos(demos: list[tuple[str, str]], sep: str) -> str:
    """The prefix of k solved examples: "Review: <text>\\nSentiment: <label>" + sep for each one."""
    # TODO: fill the template for every demonstration and join them
    raise NotImplementedError


checks.check("03.format_demos", my_format_demos)

# %% tags=["solution"]
def my_format_demos(demos: list[tuple[str, str]], sep: str) -> str:
    """The prefix of k solved examples: "Review: <text>\\nSentiment: <label>" + sep for each one."""
    return "".join(f"Review: {text}\nSentiment: {label}" + sep for text, label in demos)


checks.check("03.format_demos", my_format_demos)

# %% [markdown]
# **Core · KATE's neighbours.** For each query embedding, the indices of the `k` pool embeddings with the
# highest **cosine** similarity, most similar first. The checker's embeddings are *not* unit length (the
# chapter's are), so the dot product alone ranks wrongly.

# %% tags=["exercise"]
import torch


def my_knn_indices(pool_emb: torch.Tensor, query_emb: torch.Tensor, k: int) -> torch.Tensor:
    """[M, k] indices into the pool ([N, d]) for the M queries ([M, d]), most similar first."""
    # TODO: cosine similarity of every query with every pool row, then the k best
    raise NotImplementedError


checks.check("03.knn_indices", my_knn_indices)

# %% tags=["solution"]
import torch
import torch.nn.functional as F


def my_knn_indices(pool_emb: torch.Tensor, query_emb: torch.Tensor, k: int) -> torch.Tensor:
    """[M, k] indices into the pool ([N, d]) for the M queries ([M, d]), most similar first."""
    sims = F.normalize(query_emb, dim=-1) @ F.normalize(pool_emb, dim=-1).T
    return sims.topk(k, dim=-1).indices


checks.check("03.knn_indices", my_knn_indices)

# %% [markdown]
# **Stretch · a whole kNN prompt, the nearest example last.** Try-it 2 asks whether the nearest demonstration
# works better right before the query. Build that prompt: the `k` nearest `(text, label)` demonstrations by
# cosine similarity, the nearest *last*, each followed by a blank line (`"\n\n"`), then the query with its
# answer slot open: `"Review: <query>\nSentiment:"` (no trailing space: the answer word brings its own).

# %% tags=["exercise"]
import torch


def my_knn_prompt(query: str, pool: list[tuple[str, str]], pool_emb: torch.Tensor, query_emb: torch.Tensor,
                  k: int) -> str:
    """The k-shot prompt for one query ([d] embedding) with its k nearest pool examples, nearest last."""
    # TODO: rank the pool by cosine similarity to the query
    # TODO: format the k nearest (nearest last), then the open query
    raise NotImplementedError


checks.check("03.knn_prompt", my_knn_prompt)

# %% tags=["solution"]
import torch
import torch.nn.functional as F


def my_knn_prompt(query: str, pool: list[tuple[str, str]], pool_emb: torch.Tensor, query_emb: torch.Tensor,
                  k: int) -> str:
    """The k-shot prompt for one query ([d] embedding) with its k nearest pool examples, nearest last."""
    sims = F.normalize(pool_emb, dim=-1) @ F.normalize(query_emb, dim=-1)
    nearest = sims.topk(k).indices.tolist()[::-1]  # most similar last: right before the query
    demos = "".join(f"Review: {pool[i][0]}\nSentiment: {pool[i][1]}\n\n" for i in nearest)
    return demos + f"Review: {query}\nSentiment:"


checks.check("03.knn_prompt", my_knn_prompt)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("03")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Print the prompt for `k=8` and count its tokens. How many fit in the context window?
# 2. *(core)* Reverse KATE's order (`most_similar_first=False`, the nearest example right before the query).
# 3. *(stretch)* Use only positive demonstrations. Does the model predict "positive" more often?
#    Does calibration fix it?

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("03_in_context_learning", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("03_in_context_learning")

# %% [markdown]
# ## Summary: what to remember
#
# - In-context learning puts k solved demonstrations in the prompt and changes no weight; the demonstrations are a
#   shared prefix whose keys and values are computed once for every query.
# - On a 135M model accuracy did not rise with k: which demonstrations were drawn mattered more than how many, unlike
#   the rise reported for large models.
# - Reordering the same demonstrations moved accuracy from chance to above zero-shot, as Lu et al. found.
# - Random labels in the demonstrations did not hurt: the small model takes the format and the label space from
#   them, not the input-label mapping.
# - Nearest-neighbour demonstrations (KATE: a sentence encoder and cosine similarity) beat random ones, by less than
#   the spread of the random draws.
# - How much gold labels matter depends on the model and the task; large models can even follow flipped labels.
# - Rerun with a larger model to see whether the k-shot gain appears with scale.
#
# ## Further reading
#
# - Brown, T. B., Mann, B., Ryder, N., et al. (2020). *Language Models are Few-Shot Learners*. NeurIPS 2020.
#   arXiv:2005.14165. GPT-3 and in-context learning, with accuracy rising with k.
# - Zhao, T. Z., Wallace, E., Feng, S., et al. (2021). *Calibrate Before Use: Improving Few-Shot Performance of
#   Language Models*. ICML 2021. arXiv:2102.09690. Why demonstrations bias predictions, and calibration.
# - Lu, Y., Bartolo, M., Moore, A., et al. (2021). *Fantastically Ordered Prompts and Where to Find Them: Overcoming
#   Few-Shot Prompt Order Sensitivity*. ACL 2022. arXiv:2104.08786. Order sensitivity and entropy-based ordering.
# - Min, S., Lyu, X., Holtzman, A., et al. (2022). *Rethinking the Role of Demonstrations: What Makes In-Context
#   Learning Work?* EMNLP 2022. arXiv:2202.12837. Random labels cost little; format, label space and inputs matter.
# - Yoo, K. M., Kim, J., Kim, H. J., et al. (2022). *Ground-Truth Labels Matter: A Deeper Look into Input-Label
#   Demonstrations*. EMNLP 2022. arXiv:2205.12685. When gold labels do matter.
# - Wei, J., Wei, J., Tay, Y., et al. (2023). *Larger Language Models Do In-Context Learning Differently*.
#   arXiv:2303.03846. Flipped and semantically unrelated labels: large models can override their priors.
# - Liu, J., Shen, D., Zhang, Y., et al. (2021). *What Makes Good In-Context Examples for GPT-3?* DeeLIO 2022 (ACL
#   workshop). arXiv:2101.06804. KATE: choosing demonstrations by nearest neighbours.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.1 (语境学习). https://intro-llm.github.io/. The section this chapter teaches.
