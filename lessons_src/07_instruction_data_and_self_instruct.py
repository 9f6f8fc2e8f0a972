# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 7 · Instruction data and Self-Instruct (指令数据构建)
#
# *LLM-TAP §5.4 (building instruction data: manual writing vs automatic generation with Self-Instruct) and
# §5.5 (open instruction datasets), from Zhang et al., Large Language Models: From Theory to Practice, ch. 5.*
#
# **Learning objectives.** After this chapter you can
# 1. read, validate and write instruction data (instruction / input / output) and render it with Alpaca's
#    prompt templates;
# 2. run the four steps of Self-Instruct with a real model: new instructions from 6 human + 2 generated
#    examples, classification-task identification, input-first vs output-first instances, filtering;
# 3. write ROUGE-L from scratch, check it against `rouge-score`, and know why it fails silently on Chinese;
# 4. measure what each filter removes and how diverse the result is, and audit its quality by hand;
# 5. fine-tune the model on the data it wrote, and judge the result on held-out human-written tasks.
#
# **Before you start.** Chapters: 0 (sampling and its temperature; top-p, which samples only from the most likely
# tokens that together hold probability p, is compared in chapter 9), 2 (scoring " Yes" against " No" and
# calibrating a threshold, used in step 2), 4 (LoRA and masked labels, for the fine-tune). Maths: the longest
# common subsequence by dynamic programming, precision, recall and F1, n-gram counts, and the ROC AUC (the chance
# that a positive example outscores a negative one).
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 50 s |
# | cpu | the same 2-core CPU, nothing else running | 6.7 min (Self-Instruct data 4.1, the LoRA fine-tune 2.6) |
# | gpu | Colab T4 / A100 | not measured yet |

# %%
import random
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from course_utils import diversity, instructions, rouge, self_instruct, sft
from course_utils.config import profile, sizes
from course_utils.device import set_seed
from course_utils.lora import inject_lora
from course_utils.models import generate_batch, load_model

P = profile()
S = sizes("self_instruct", P.name)
set_seed(0)
model, tok = load_model(P.model_name)
RUN = Path("runs") / f"self_instruct_{P.name}"  # every step writes here; rerunning a cell resumes from it
print(f"profile {P.name}: target {S.target} new instructions, LoRA SFT for {S.sft_steps} steps; output in {RUN}")

# %% [markdown]
# ## 1. What instruction data is
#
# The quality and the diversity of instruction data (指令数据) are what decide, more than anything else, what
# supervised fine-tuning achieves (LLM-TAP §5.4). Each example has three parts: an **instruction** (what to
# do), an optional **input** (what to do it to) and the **output** (the answer the model should learn):

# %%
example = {"instruction": "Classify the sentiment of the review as positive or negative.",
           "input": "The battery died after two days.", "output": "negative"}
print(instructions.alpaca_prompt(example["instruction"], example["input"]) + example["output"])

# %% [markdown]
# That is Alpaca's template (`tatsu-lab/stanford_alpaca`, `train.py`), one of the two it uses: examples with
# an empty input get a shorter one. In training, the loss counts only the output's tokens (chapter 4's masked
# labels). Files of instruction data are usually JSONL, one example per line. A broken line in a file of
# thousands should cost that line, not the run: the loader skips it and says where it was.

# %%
with tempfile.TemporaryDirectory() as tmp:
    f = Path(tmp) / "mixed.jsonl"
    f.write_text('{"instruction": "Name a primary colour.", "output": "Red."}\n'
                 '{"instruction": "Add 2 and 3.", "output": "5"\n'                # a missing brace
                 '{"instruction": "Translate to French: cat", "input": ""}\n'     # no output
                 '{"instruction": "Give an antonym.", "input": "hot", "output": "cold"}\n')
    rows, problems = instructions.read_jsonl(f, instructions.validate_example)
print(f"{len(rows)} examples kept; skipped: {problems}")

# %% [markdown]
# **Two ways to build it.** *Manual* (手动构建): people write prompts and answers (Dolly, OpenAssistant, LIMA):
# high quality, slow and expensive. *Automatic* (自动生成): a model writes them, starting from a few human
# examples. **Self-Instruct** (Wang et al. 2023) is the iterative bootstrap behind Alpaca: 175 human seed tasks
# grew into 52K instructions with 82K instances, and GPT-3 tuned on them gained 33 points on
# Super-NaturalInstructions, close to InstructGPT-001. We run the same four steps with our 135M model.
#
# ![The Self-Instruct loop: prompts sampled from the task pool make the model write new instructions, those that
# pass the filters and have ROUGE-L below 0.7 against the pool join it, and each is classified, given instances
# and filtered into instruction data.](../figures/self_instruct_loop.svg)
#
# The figure shows the loop (the paper's Fig. 2 is the same overview): each prompt mixes 6 human seeds with 2 of
# the model's own instructions, and every instruction that survives the filters joins the pool, so later prompts
# draw on the model's own tasks too. Sections 3 to 7 run one step each.
#
# ## 2. The seed tasks
#
# Self-Instruct's seed format: an instruction, one or more instances (input, output) and whether the task is a
# classification. The course ships 72 seed tasks written for it (`course_utils/data/seed_tasks.jsonl`, CC0);
# `self_instruct.load_seed_tasks("seed_tasks.jsonl")` reads the original 175 when you have them. A few seed tasks are held
# out from every prompt, to judge the fine-tuned model on tasks and answers it never saw (section 10).

# %%
seeds = self_instruct.load_seed_tasks()
pool, heldout = self_instruct.split_seed_tasks(seeds, S.n_heldout)
n_clf = sum(t["is_classification"] for t in seeds)
n_input = sum(bool(t["instances"][0]["input"]) for t in seeds)
print(f"{len(seeds)} seed tasks: {n_clf} classification, {n_input} with an input; {len(heldout)} held out")
for t in seeds[:3]:
    print(f"- {t['instruction']}  (classification: {t['is_classification']})")

# %% [markdown]
# ## 3. Step 1: new instructions
#
# Each prompt shows 8 instructions (6 human seeds and 2 the model wrote earlier, fewer while it has none) as a
# numbered list ending in `9.`; the model continues the list. The reference samples at temperature 0.7 and
# top-p 0.5; we do the same, with a repetition penalty in place of the API's presence penalty.

# %%
shown = self_instruct.sample_prompt_instructions([t["instruction"] for t in pool], [], random.Random(0))
prompt = self_instruct.encode_prompt(shown)
print(prompt)

# %% [markdown]
# Every candidate goes through the filters of the reference scripts: 3 words or fewer, more than 150 words, a
# blacklisted word (`image, graph, file, map, draw, plot, go to, video, audio, music, flowchart, diagram`...:
# things a text model cannot do), "Write a program", a first character that is punctuation or not ASCII, an
# exact duplicate, and **ROUGE-L ≥ 0.7 against any instruction already in the pool** (section 4). Generation
# stops at the target or after a fixed number of prompts (a small model may stall). Each prompt's row is
# appended to `step1_instructions.jsonl` as soon as it is done: **stop the kernel and rerun the cell, and it
# continues where it stopped** (the second call below finds the work done and returns at once).

# %%
t0 = time.perf_counter()
new_instructions = self_instruct.generate_instructions(model, tok, pool, RUN / "step1_instructions.jsonl",
                                            S.bootstrap_config())
print(f"{len(new_instructions)} new instructions ({time.perf_counter() - t0:.0f} s)")
t0 = time.perf_counter()
assert self_instruct.generate_instructions(model, tok, pool, RUN / "step1_instructions.jsonl", S.bootstrap_config(),
                                progress=False) == new_instructions
print(f"rerun: nothing redone ({time.perf_counter() - t0:.1f} s)")

step1_rows, _ = instructions.read_jsonl(RUN / "step1_instructions.jsonl")
candidates = [c for r in step1_rows for c in r["candidates"]]
print("\nkept:")
for c in [c for c in candidates if c["kept"]][:8]:
    print(f"  {c['instruction']}")
print("rejected:")
for c in [c for c in candidates if not c["kept"]][:6]:
    print(f"  [{c['reason']}] {c['instruction'][:100]}")

# %% [markdown]
# ## 4. ROUGE-L from scratch
#
# ROUGE-L scores two texts by their **longest common subsequence** (LCS): the longest run of words appearing
# in both in the same order, gaps allowed. With $P = \text{LCS}/|b|$ and $R = \text{LCS}/|a|$,
# $F = 2PR/(P+R)$. Self-Instruct keeps a new instruction only if its F against every instruction in the pool
# is below 0.7 (diversity: 多样性). The whole idea is a 10-line dynamic programme:

# %%
def lcs(a: list[str], b: list[str]) -> int:
    """table[i][j] = LCS of a[:i] and b[:j]: extend a match, or drop one word from either side."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def my_rouge_l(a: str, b: str) -> float:
    ta, tb = rouge.tokenize(a), rouge.tokenize(b)  # lowercase words, as rouge-score splits them
    n = lcs(ta, tb)
    return 0.0 if n == 0 else 2 * n / (len(ta) + len(tb))  # 2PR / (P + R) simplifies to this


from rouge_score import rouge_scorer  # noqa: E402  (the reference implementation)

scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
pairs = [(a, b) for a in new_instructions[:6] + [t["instruction"] for t in pool[:6]]
         for b in [t["instruction"] for t in pool[6:12]]]
worst = max(abs(my_rouge_l(a, b) - scorer.score(a, b)["rougeL"].fmeasure) for a, b in pairs)
print(f"{len(pairs)} pairs: largest difference from rouge-score {worst:.1e}")
assert worst < 1e-9
assert all(abs(my_rouge_l(a, b) - rouge.rouge_l(a, b)) < 1e-12 for a, b in pairs)  # and the package's version

# %% [markdown]
# **The Chinese pitfall.** rouge-score's tokenizer keeps only `[a-z0-9]`: a Chinese sentence becomes *no
# tokens*, every score is 0, and a de-duplication filter silently lets every duplicate through. The course's
# `rouge.tokenize` makes each CJK character a token (the usual choice for Chinese ROUGE):

# %%
zh = "请把这句话翻译成英文。"
print("rouge-score, identical Chinese sentences:", scorer.score(zh, zh)["rougeL"].fmeasure)
print("course_utils.rouge:                      ", rouge.rouge_l(zh, zh), rouge.tokenize(zh)[:5])
print("near-duplicate:", rouge.rouge_l(zh, "请把这句话翻译成法文。"))

# %% [markdown]
# **Speed.** Step 1 compares every candidate with the whole pool, which grows to thousands (52K for Alpaca).
# An LCS is quadratic in the lengths, so `rouge.RougePool` prunes: the LCS can never exceed the number of
# words the two texts share, which bounds F by $2\,\text{overlap}/(|a|+|b|)$. The overlaps with every pool
# text come from an inverted index in one pass, and exact LCS runs only where the bound could still win.
# `bench/bench_rouge.py` measured (2-core CPU, ms per query, every pair vs pruned pool): 0.66 vs 0.087 at 100
# texts, 7.3 vs 0.29 at 1,000, 33.6 vs 0.79 at 5,000 (43×); the cell below measures it on our own pool.

# %%
rng = random.Random(0)  # our pool plus 3,000 synthetic instructions: the size a real run reaches
big = [t["instruction"] for t in seeds] + new_instructions + [rouge.random_instruction(rng) for _ in range(3000)]
queries = (new_instructions + [t["instruction"] for t in heldout])[:10]
index = rouge.RougePool(big)
t0 = time.perf_counter()
fast = [index.max_similarity(q)[0] for q in queries]
t_fast = (time.perf_counter() - t0) / len(queries)
t0 = time.perf_counter()
brute = [max(rouge.rouge_l(q, b) for b in big) for q in queries]
t_brute = (time.perf_counter() - t0) / len(queries)
print(f"pool of {len(big):,}: {t_fast * 1e3:.2f} ms per query pruned, {t_brute * 1e3:.1f} ms comparing every pair "
      f"({t_brute / t_fast:.0f}x), same scores")
assert max(abs(a - b) for a, b in zip(fast, brute)) < 1e-12

# %% [markdown]
# ## 5. Step 2: is it a classification task?
#
# Classification tasks get their instances the other way round (step 3), so the model must first say which
# ones they are. The reference asks GPT-3 "Can the following task be regarded as a classification task with
# finite output labels?" after 31 labelled examples. We show 16 labelled seed tasks (half of them
# classification) and compare the probabilities of " Yes" and " No". A 135M model's probabilities lean one way,
# so the decision threshold is calibrated on the seed tasks that are not among the shots, for the best balanced
# accuracy (chapter 2's calibration problem again); those tasks also measure how good the identifier is. (With
# 8 shots, an earlier run found every classification task but called more than half of the others
# classification too: the area under the ROC curve on the left-over seed tasks was 0.73 with 8 shots and 0.95
# with 16, though the 16-shot figure rests on only 3 classification tasks left over.)

# %%
shots, rest = self_instruct.classification_shots(pool)
prefix = self_instruct.classification_prompt(shots)
p_rest = self_instruct.classify_tasks(model, tok, [t["instruction"] for t in rest], prefix)
truth = torch.tensor([t["is_classification"] for t in rest])
threshold = self_instruct.calibrate_threshold(p_rest, truth.tolist())
pred = p_rest >= threshold
recall = (pred & truth).sum().item() / truth.sum().item()
specificity = (~pred & ~truth).sum().item() / (~truth).sum().item()
print(f"threshold P(Yes) >= {threshold:.3f}: on {len(rest)} labelled seed tasks, {recall:.0%} of the "
      f"classification tasks found, {specificity:.0%} of the others correctly rejected")
kinds = self_instruct.identify_classification(model, tok, new_instructions, pool, RUN / "step2_classification.jsonl")
print(f"{sum(kinds.values())} of {len(kinds)} new instructions judged classification tasks")

# %% [markdown]
# ## 6. Step 3: instances, input-first or output-first
#
# For an ordinary task the model writes an **input, then the output** (input-first). For a classification
# task it writes the **class label first, then an input** of that class (output-first): asked for inputs
# first, a model tends to write inputs of one class only ("避免分类任务时,生成过多某些特定任务Input,而忽视其他类别",
# LLM-TAP §5.4), and the labels come out unbalanced. A small model tends to stop after the first field, so
# we generate the two fields in two calls. Here are the two prompt shapes, ending where the model writes:

# %%
clf_demo = [t for t in pool if t["is_classification"]][:1]
gen_demo = [t for t in pool if not t["is_classification"]][:1]
print(self_instruct.instance_prompt("Tell whether the email is spam or not spam.", True, clf_demo)[-240:])
print("\n" + "-" * 60 + "\n")
print(self_instruct.instance_prompt("Suggest a name for a bakery.", False, gen_demo)[-240:])

# %%
rows = self_instruct.generate_instances(model, tok, kinds, pool, RUN / "step3_instances.jsonl", batch_size=S.batch_size)
for r in rows[:6]:
    inst = r["instances"][0] if r["instances"] else None
    kind = "output-first" if r["is_classification"] else "input-first"
    print(f"[{kind}] {r['instruction'][:90]}\n    input: {inst['input'][:80] if inst else '-'!r}\n"
          f"    output: {inst['output'][:80] if inst else '-'!r}")

# %% [markdown]
# ## 7. Step 4: filter, and what every filter removed
#
# The last filters of the reference (`prepare_for_finetuning.py`): drop an instance with an empty output, an
# output equal to its input, a field ending in `:` (cut off), and a whole task whose instances give different
# outputs for the same input; keep exact duplicates once (质量: 启发式规则).

# %%
data, removed = self_instruct.filter_instances(rows)
instructions.save_instructions([{k: d[k] for k in instructions.FIELDS} for d in data], RUN / "instruction_data.jsonl")
report = self_instruct.FilterReport.from_runs(RUN / "step1_instructions.jsonl", removed, len(data))
print(report.table())
report.plot()
plt.show()

# %% [markdown]
# **Measured** (cpu profile): 131 instructions proposed by 128 prompts (73 s), 120 kept: 6 blacklisted
# (video, music, image, file...), 1 too short, 1 too similar to the pool, 3 past the target; then 7 instances
# with an empty output, leaving **113 examples**. The 16-shot identifier found all 3 classification tasks among
# the 44 left-over seed tasks and rejected 90 % of the others (threshold P(Yes) ≥ 0.55); it called 16 of the 120
# new instructions classification tasks. The ROUGE-L filter hardly ever fires: this model does not copy its
# prompts, it wanders off them.
#
# ## 8. How diverse is it?
#
# Self-Instruct's Fig. 3 parses each instruction for its root verb and that verb's direct object; its Fig. 4
# plots each new instruction's highest ROUGE-L against the seeds. A verb-object pie from a heuristic (first
# word, next content word), and the histogram:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 6))
diversity.plot_verb_object([t["instruction"] for t in seeds], ax=axes[0], title="seed tasks")
diversity.plot_verb_object([d["instruction"] for d in data] or ["(none yet)"], ax=axes[1], title="generated")
plt.show()
if data:
    diversity.plot_similarity_histogram([d["instruction"] for d in data], [t["instruction"] for t in pool])
    plt.show()

# %% [markdown]
# **Measured** (cpu profile): the 113 generated instructions start with only 22 different words (the 72 seeds
# with 56): *write* 27 times, *what* 21, and 11 start with *the*, i.e. are statements, not tasks. Their highest
# ROUGE-L against the seeds is 0.22 on average (largest 0.56), far from the 0.7 threshold: low similarity here
# means off-topic more than diverse, which is why diversity needs the verb view as well as ROUGE-L.
#
# ## 9. A manual quality audit
#
# Filters catch form, not sense. The Self-Instruct authors rated 200 random examples by hand: 92 % of the
# instructions described a valid task, but only 54 % of the examples were correct in every field. Read a sample
# of yours with the same three questions: is the instruction a valid task? does the input fit it? is the output
# a correct answer?

# %%
for i, d in enumerate(random.Random(0).sample(data, min(10, len(data))), 1):
    print(f"{i:2}. {d['instruction']}\n    input:  {d['input'][:100]!r}\n    output: {d['output'][:100]!r}")

# %% [markdown]
# **Our audit** (cpu profile, the 10 examples printed above): we asked the paper's three questions of each.
#
# | question | ours (10 examples) | Self-Instruct paper (200, GPT-3) |
# |---|---|---|
# | the instruction describes a valid task | 5 / 10 (1, 2, 5, 8, 9) | 92 % |
# | the input is appropriate for it | 3 / 10 (1, 2, 5) | 79 % |
# | the output is a correct and acceptable answer | 1 / 10 (1) | 58 % |
# | all fields valid | 1 / 10 | 54 % |
#
# Items 3, 4, 6, 7 and 10 are statements or riddles, not tasks; most outputs are fluent but wrong. A 135M model
# can imitate the *form* of a task list; it cannot supply correct answers. Self-Instruct's gains come from a
# strong generator (175B GPT-3; Alpaca used text-davinci-003), which is the point of the "any larger model when
# online" option below.
#
# ## 10. Fine-tuning on what the model wrote
#
# Alpaca's recipe in miniature: LoRA (chapter 4's from-scratch version, through chapter 4's engine) on the
# generated data in Alpaca's template, labels masked on the prompt. It is judged on the **held-out seed tasks**,
# written by people and never shown to the model: the loss of their reference outputs, and the answers.
# **Expected:** the model learns the template's format (answers start right after `### Response:` and stop), so
# the loss of the references falls; the content cannot get better than the data it learned from (section 9).

# %%
pairs = instructions.to_pairs(data or [{"instruction": t["instruction"], **t["instances"][0]} for t in pool[:8]])
train_set = sft.build_dataset(tok, pairs, S.max_len)
held_pairs = instructions.to_pairs([{"instruction": t["instruction"], **t["instances"][0]} for t in heldout])
held_set = sft.build_dataset(tok, held_pairs, S.max_len)
held_prompts = [p for p, _ in held_pairs]

loss_before = sft.evaluate_loss(model, held_set)
answers_before = generate_batch(model, tok, held_prompts, max_new_tokens=S.answer_tokens, chat=False,
                                batch_size=S.batch_size, repetition_penalty=1.2)
inject_lora(model, r=8, alpha=16)
result = sft.train(model, train_set, sft.TrainConfig(steps=S.sft_steps, batch_size=S.sft_batch, lr=3e-4,
                                                      warmup_steps=max(1, S.sft_steps // 10), plot="final"))
plt.show()
loss_after = sft.evaluate_loss(model, held_set)
answers_after = generate_batch(model, tok, held_prompts, max_new_tokens=S.answer_tokens, chat=False,
                               batch_size=S.batch_size, repetition_penalty=1.2)
refs = [r for _, r in held_pairs]
rl_before = sum(rouge.rouge_l(r, a) for r, a in zip(refs, answers_before)) / len(refs)
rl_after = sum(rouge.rouge_l(r, a) for r, a in zip(refs, answers_after)) / len(refs)
print(f"trained on {len(train_set)} examples, {result.seconds:.0f} s")
print(f"held-out reference loss: {loss_before:.3f} -> {loss_after:.3f};  "
      f"ROUGE-L of answers to references: {rl_before:.3f} -> {rl_after:.3f}")
for t, a, b in list(zip(heldout, answers_before, answers_after))[:4]:
    print(f"\n### {t['instruction']}  {t['instances'][0]['input'][:60]!r}\n"
          f"  before: {a[:160]!r}\n  after:  {b[:160]!r}\n  reference: {t['instances'][0]['output'][:120]!r}")

# %% [markdown]
# **Measured** (cpu profile): trained on 113 examples for 60 steps (140 s). On the 12 held-out seed tasks,
# the loss of the human references fell only slightly, 2.882 → 2.853, and the ROUGE-L of the answers to the
# references rose 0.075 → 0.098. The answers show what happened: they became short and direct, and often open
# with "No" (the language-identification answer went from German prose to "English (German)", the plants
# explanation from a fair one to "Plants can grow on trees!"). Many generated outputs start with "No" ("No recipe
# needed!", "No worries...", "No answer yet..."): **SFT copied the style of its data, errors included.** This is
# the chapter's lesson in one run: instruction tuning teaches format and style, and the quality of the data caps
# the quality of the model.
#
# ## 11. Open instruction datasets (开源指令数据集, LLM-TAP §5.5)
#
# What the field trains on. Sizes and licences from each dataset's card or paper (checked November 2026;
# `course_utils/data/instruction_datasets.json`). Note the licences: data generated by OpenAI models (Alpaca,
# ShareGPT) carries OpenAI's terms; Dolly and OpenAssistant were written by people and allow commercial use.

# %%
display(Markdown(instructions.datasets_table()))

# %% [markdown]
# ## 12. Concept check
#
# **What are the three parts of an instruction example, and which is learned?** Instruction, input (optional),
# output; the loss counts only the output's tokens.
#
# **Why does each Self-Instruct prompt mix 6 human and 2 generated instructions?** The human ones anchor the
# format and quality; the generated ones push the model away from the seeds, towards new tasks.
#
# **Why are classification tasks generated output-first?** Written input-first, the inputs come out skewed to
# one class; choosing the label first keeps the classes balanced.
#
# **What does the ROUGE-L < 0.7 filter do, and how can it fail?** It rejects near-paraphrases of anything in the
# pool (diversity). With rouge-score's default tokenizer, Chinese text has no tokens: every score is 0 and
# nothing is ever rejected.
#
# **Manual or automatic data?** Manual: high quality, expensive (Dolly, OpenAssistant, LIMA). Automatic: cheap
# and large, but as good as the generating model; about half of Self-Instruct's examples had an error somewhere.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/07_instruction_data_and_self_instruct.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the Alpaca prompt.** Fill the with-input template when the input has text and the other one
# otherwise, with the instruction and input stripped of surrounding spaces (`instructions.alpaca_prompt`).
# %% tags=["exercise"]
from course_utils.instructions import PROMPT_INPUT, PROMPT_NO_INPUT


def my_alpaca_prompt(instruction: str, input: str = "") -> str:  # noqa: A002 (the field's name)
    """The Alpaca prompt for one example."""
    # TODO: choose the template, then fill it in (str.format)
    raise NotImplementedError


checks.check("07.alpaca_prompt", my_alpaca_prompt)

# %% tags=["solution"]
from course_utils.instructions import PROMPT_INPUT, PROMPT_NO_INPUT


def my_alpaca_prompt(instruction: str, input: str = "") -> str:  # noqa: A002 (the field's name)
    """The Alpaca prompt for one example."""
    if input.strip():
        return PROMPT_INPUT.format(instruction=instruction.strip(), input=input.strip())
    return PROMPT_NO_INPUT.format(instruction=instruction.strip())


checks.check("07.alpaca_prompt", my_alpaca_prompt)

# %% [markdown]
# **Core · distinct-n** (Li et al. 2016), a diversity number for section 8: the distinct n-grams over all
# n-grams, pooled over every text (so the same phrase in two instructions counts as a repeat). Texts come as
# lists of words; 0.0 when no text has n words.

# %% tags=["exercise"]
def my_distinct_n(texts: list[list[str]], n: int) -> float:
    """Distinct n-grams / all n-grams over all the texts."""
    # TODO: collect every n-gram (a tuple of n consecutive words) of every text
    raise NotImplementedError


checks.check("07.distinct_n", my_distinct_n)

# %% tags=["solution"]
def my_distinct_n(texts: list[list[str]], n: int) -> float:
    """Distinct n-grams / all n-grams over all the texts."""
    grams = [tuple(t[i:i + n]) for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


checks.check("07.distinct_n", my_distinct_n)

# %% [markdown]
# **Stretch · Self-Instruct's novelty filter.** Go through the candidates in order; keep one when its
# ROUGE-L F (`rouge.rouge_l`) with every text in the pool is below `threshold`, and a kept candidate joins the
# pool, so a later near-copy of it is rejected (what `rouge.RougePool.is_novel` + `add` do, fast).

# %% tags=["exercise"]
from course_utils import rouge


def my_rouge_filter(candidates: list[str], pool: list[str], threshold: float = 0.7) -> list[str]:
    """The candidates that are novel against the pool and against the candidates kept before them."""
    # TODO: compare each candidate with the growing pool
    raise NotImplementedError


checks.check("07.rouge_filter", my_rouge_filter)

# %% tags=["solution"]
from course_utils import rouge


def my_rouge_filter(candidates: list[str], pool: list[str], threshold: float = 0.7) -> list[str]:
    """The candidates that are novel against the pool and against the candidates kept before them."""
    seen, kept = list(pool), []
    for c in candidates:
        if all(rouge.rouge_l(c, p) < threshold for p in seen):
            kept.append(c)
            seen.append(c)
    return kept


checks.check("07.rouge_filter", my_rouge_filter)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("07")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Feed `self_instruct.instruction_filter` five instructions of your own that break a different rule each.
# 2. *(core)* Set `self_instruct.BootstrapConfig(top_p=0.9, temperature=1.0)` in section 3 (a new `RUN` folder): how do
#    the filter counts and the similarity histogram change?
# 3. *(core)* Score 20 Chinese instruction pairs with `rouge_score` and with `course_utils.rouge`: how many
#    duplicates would each let through?
# 4. *(stretch)* Online, load a larger model (e.g. `HuggingFaceTB/SmolLM2-1.7B-Instruct`) for steps 1-3, and
#    compare your audit numbers.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("07_instruction_data_and_self_instruct", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("07_instruction_data_and_self_instruct")

# %% [markdown]
# ## Summary: what to remember
#
# - An instruction example is an instruction, an optional input and an output, only the output carries the loss, and
#   the quality and diversity of such data decide what SFT can achieve.
# - Self-Instruct bootstraps data in four steps: new instructions from 6 human and 2 generated examples,
#   classification-task identification, input-first or output-first instances, and filtering; from 175 seed tasks
#   the paper reached 52K instructions with 82K instances.
# - Classification tasks are generated label first, so that the inputs do not all come out in one class.
# - ROUGE-L is an F-score over the longest common subsequence, and a new instruction is kept only below 0.7 against
#   the pool; rouge-score's default tokenizer drops Chinese, so every score is 0 and the novelty filter silently
#   lets every duplicate through.
# - Filters catch form, not sense: the recorded hand audit of a 135M model's data found fluent examples that were
#   mostly invalid or wrong, far below the paper's 54 % of examples valid in every field with GPT-3.
# - Low ROUGE-L against the seeds can mean off-topic rather than diverse, so look at the verbs and objects too.
# - Fine-tuning on the model's own data taught it the Alpaca format and the data's style, errors included: the data's
#   quality caps the model's.
# - Open instruction datasets differ in origin, size and licence, and data generated by OpenAI models carries
#   OpenAI's terms.
#
# ## Further reading
#
# - Wang, Y., Kordi, Y., Mishra, S., et al. (2022). *Self-Instruct: Aligning Language Models with Self-Generated
#   Instructions*. ACL 2023. arXiv:2212.10560. The four steps (Fig. 2), the filters, the diversity analysis (Fig. 3
#   and 4) and the data-quality audit.
# - Taori, R., Gulrajani, I., Zhang, T., et al. (2023). *Stanford Alpaca: An Instruction-following LLaMA Model*.
#   GitHub repository, https://github.com/tatsu-lab/stanford_alpaca. The prompt template and the cheaper
#   Self-Instruct variant behind its 52K examples.
# - Wang, Y., Mishra, S., Alipoormolabashi, P., et al. (2022). *Super-NaturalInstructions: Generalization via
#   Declarative Instructions on 1600+ NLP Tasks*. EMNLP 2022. arXiv:2204.07705. The benchmark behind the 33-point gain.
# - Ouyang, L., Wu, J., Jiang, X., et al. (2022). *Training Language Models to Follow Instructions with Human
#   Feedback*. NeurIPS 2022. arXiv:2203.02155. InstructGPT, the model Self-Instruct is compared with.
# - Lin, C.-Y. (2004). *ROUGE: A Package for Automatic Evaluation of Summaries*. Text Summarization Branches Out
#   (ACL 2004 workshop). The definition of ROUGE-L.
# - Li, J., Galley, M., Brockett, C., et al. (2015). *A Diversity-Promoting Objective Function for Neural Conversation
#   Models*. NAACL 2016. arXiv:1510.03055. The distinct-n diversity measure.
# - Köpf, A., Kilcher, Y., von Rütte, D., et al. (2023). *OpenAssistant Conversations -- Democratizing Large Language
#   Model Alignment*. NeurIPS 2023 (Datasets and Benchmarks). arXiv:2304.07327. A large human-written dataset.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5, §5.4-5.5 (指令数据构建, 开源指令数据集). https://intro-llm.github.io/. The sections
#   this chapter teaches.
