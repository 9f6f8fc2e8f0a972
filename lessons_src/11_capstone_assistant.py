# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 11 · Capstone: build your own assistant (综合实践)
#
# *Every chapter at once: instruction data made by the model itself (chapter 7, Self-Instruct), a LoRA
# fine-tune (chapter 4) launched as a script that also runs on several GPUs (chapter 5), the before/after evaluation
# harness (chapter 8), merging the adapter into the weights (chapter 4), and a chat box to talk to the result.*
#
# **Learning objectives.** After this capstone you can
# 1. run the whole SFT pipeline from seed tasks to a saved model, and resume it after a stop;
# 2. launch the same fine-tune on one process or several (`accelerate launch`, `torchrun`);
# 3. judge the result on both sides (the held-out tasks it was made for, the general abilities it may cost);
# 4. merge LoRA into the weights, check the merged model gives the same logits, and chat with it.
#
# **Before you start.** Chapters: 4 (LoRA, merging), 5 (data parallelism with `torchrun` and `accelerate launch`),
# 7 (Self-Instruct, the Alpaca template), 8 (the evaluation harness, standard errors); chapter 9's curated data for
# one "Try it". Maths: none beyond those chapters (the merge W0 + (alpha / r) BA, a standard error).
# **Study time:** about 10 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook:
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 66 s |
# | cpu | the same 2-core CPU, nothing else running | 7.6 min (data 3.9, fine-tune 2.3, harness 1.3) |
# | gpu | Colab T4 / A100 | not measured yet |
#
# Every step writes its result into a run folder and is skipped when that result is already there: stop the
# notebook at any point and run it again. Set `FRESH = True` to start over.

# %%
import json
import shlex
import shutil

import matplotlib.pyplot as plt
from transformers import AutoModelForCausalLM

from course_utils import assistant
from course_utils.config import profile, sizes
from course_utils.device import assert_close, encode, set_seed
from course_utils.evaluation import format_results, plot_results
from course_utils.models import cache_dir, load_model

P = profile()
setup = sizes("assistant", P.name)
OUT = cache_dir() / "runs" / f"assistant-{P.name}"
FRESH = False
if FRESH:
    shutil.rmtree(OUT, ignore_errors=True)
set_seed(0)
model, tok = load_model(P.model_name)
pool, heldout = assistant.split_tasks(setup)
print(f"profile {P.name}: {setup}\nrun folder: {OUT}\n{len(pool)} seed tasks in the pool, {len(heldout)} held out")

# %% [markdown]
# ## 1. Instruction data with Self-Instruct (chapter 7)
#
# The model writes new instructions from the seed pool (6 human + 2 machine examples per prompt), decides which
# are classification tasks, writes an input and an output for each, and the filters drop what is too short,
# too similar (ROUGE-L ≥ 0.7), blacklisted or empty. The held-out seed tasks never enter a prompt.

# %%
data, report = assistant.make_data(model, tok, OUT, setup, pool)
print(report.table())
for row in data[:3]:
    print(json.dumps(row, ensure_ascii=False)[:300])

# %% [markdown]
# **Measured** (cpu profile): 131 instructions proposed, 120 kept, 113 examples after the instance filters (7
# empty outputs, 6 blacklisted words). Read the three rows above before training on them: the model's own data
# are fluent and often wrong ("The last day of January was Monday, so what's next Tuesday tomorrow?" ->
# "Friday."), which is chapter 7's lesson.
#
# ## 2. The fine-tune: one script, one process or many (chapters 4 and 5)
#
# The fine-tune is `course_utils.finetune`, the script chapter 5 launched under `torchrun`: LoRA (chapter 4; r = 8
# on q, v) on the Alpaca prompts of the new data, labels masked on the prompt. The command that runs here, and the
# same command on four GPUs:

# %%
args = assistant.finetune_args(OUT, setup, P.model_name)
print("one process: ", shlex.join(assistant.launch_command(args)))
print("four GPUs:   ", shlex.join(assistant.launch_command(args, "accelerate", 4)))
print("or:          ", shlex.join(assistant.launch_command(args, "torchrun", 4)))

# %% [markdown]
# `accelerate launch` (and `torchrun`) start one copy of the script per GPU with `RANK`, `WORLD_SIZE` and
# `LOCAL_RANK` set; the script joins the process group, wraps the model in `DistributedDataParallel`, and each
# process takes its share of every batch, so the update equals the one-process update (chapter 5 tests it with
# two CPU processes). Run `accelerate config` once on a new machine, or pass `--num_processes` as above. The
# whole capstone also runs from a terminal: `python -m course_utils.assistant --out runs/assistant
# --launcher accelerate --processes 4`.
#
# Here, one process:

# %%
if not (assistant.adapter_dir(OUT) / "result.json").is_file():  # written last, when the run is complete
    assistant.run_finetune(args)
summary = json.loads((assistant.adapter_dir(OUT) / "result.json").read_text())
plt.figure(figsize=(6, 3))
plt.plot(range(1, len(summary["losses"]) + 1), summary["losses"])
plt.xlabel("step")
plt.ylabel("loss (response tokens)")
plt.title(f"LoRA SFT on {len(data)} Self-Instruct examples")
plt.show()
print(f"{len(summary['losses'])} steps, final loss {summary['final_loss']:.3f}, "
      f"{summary['seconds_per_step']:.2f} s/step")
print("the run folder:", sorted(p.name for p in assistant.adapter_dir(OUT).iterdir()))

# %% [markdown]
# The run folder is a **peft adapter**, the format the whole ecosystem reads: `adapter_config.json` (the LoRA
# settings and the base model it belongs to) and `adapter_model.safetensors` (only the trained $A$ and $B$, a
# few hundred kilobytes). Anyone with the base model loads it with `PeftModel.from_pretrained(base, folder)` or
# in one line with `AutoPeftModelForCausalLM.from_pretrained(folder)`. Its config names the base it was trained
# on: here the local folder the offline SmolLM2 (a 4-bit GGUF, de-quantized) was cached in, whose weights differ
# slightly from the hub's; to share it, say so, or train on the hub's model (online, `--model
# HuggingFaceTB/SmolLM2-135M-Instruct`) so that its config names the hub id.

# %% [markdown]
# ## 3. Before and after (chapter 8)
#
# The trained LoRA weights go onto a fresh copy of the model; chapter 8's harness compares it with the model it
# started from: general-text perplexity, zero-shot sentiment, factual questions, arithmetic, ROUGE-L on the
# **held-out seed tasks** (written by people, never seen in training), and the KL divergence to the original.
# **Expected** (chapter 7's result): a small gain on the held-out tasks at most, paid for with some drift (KL,
# perplexity); a 135M model's self-made data is weak.

# %%
tuned, _ = assistant.load_tuned(OUT)  # PeftModel.from_pretrained(base, OUT / "lora")
rows = assistant.evaluate(model, tuned, tok, heldout, P.name)
print(format_results(rows))
plot_results(rows)
plt.show()

# %% [markdown]
# **Measured** (cpu profile: 113 examples, 60 steps of batch 8, final training loss 2.28):
#
# | model | perplexity | sentiment | facts | arithmetic | held-out tasks (ROUGE-L) | KL |
# |---|---|---|---|---|---|---|
# | base model | 12.83 | 0.583 | 0.463 | 0.475 | 0.076 | 0 |
# | assistant (LoRA) | 13.16 | 0.600 | 0.438 | 0.400 | 0.115 | 0.018 |
#
# As expected: ROUGE-L on the twelve held-out human-written tasks rises (0.076 -> 0.115), the general text gets a
# little less likely (perplexity +0.3, KL 0.018), and sentiment, facts and arithmetic move by less than one
# standard error of their probes (120, 80 and 40 questions: about 0.045, 0.056 and 0.079). A small, real gain
# on what the data was about, at a small cost elsewhere.
#
# ## 4. Merge and save
#
# LoRA's update $BA$ folds into the frozen weight, $W = W_0 + \frac{\alpha}{r}BA$, so the assistant runs with
# no extra layers and no peft at inference (chapter 4). peft's `merge_and_unload` computes that sum (the
# warm-up exercise below asks you to write it); saved as safetensors, the result is a plain model folder that
# `AutoModelForCausalLM.from_pretrained` and `pipeline` load anywhere (`python -m course_utils.finetune ... --merge`
# writes the same). The merged model must give the logits of the unmerged one:

# %%
text = heldout[0]["instruction"]
ids = encode(tok, text, tuned).input_ids  # on the model's device (a GPU when there is one)
before = tuned(ids).logits.detach()
merged_dir = assistant.merge_and_save(tuned, tok, OUT / "merged")
merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=tuned.dtype).to(tuned.device).eval()
diff = assert_close(merged(ids).logits.detach(), before, tuned, "the merged and the LoRA model's logits")
print(f"saved to {merged_dir}: {sorted(p.name for p in merged_dir.iterdir())}")
print(f"max |logit difference| merged vs LoRA: {diff:.2e}, within {tuned.dtype} rounding")

# %% [markdown]
# And the one-liner a user of the saved folder would write, with no course code: a `transformers` pipeline.

# %%
from transformers import pipeline

generator = pipeline("text-generation", model=str(merged_dir), device=tuned.device)
print(generator(assistant.alpaca_conversation([], heldout[1]["instruction"]), max_new_tokens=24,
                do_sample=False, return_full_text=False)[0]["generated_text"])

# %% [markdown]
# ## 5. Talk to it
#
# The chat box keeps the conversation and feeds all of it back as the prompt, in the Alpaca template the
# assistant was tuned on. Compare with the original model (`assistant.chat_widget(model, tok, template="chat")`).

# %%
assistant.chat_widget(merged, tok, heldout[1]["instruction"], max_new_tokens=setup.answer_tokens)

# %% [markdown]
# ## 6. Concept check
#
# **Which chapter does each step come from, and what can go wrong in it?** Data (7): the model copies the seeds'
# forms, and its outputs are often wrong (the manual audit). Fine-tune (4, launched as in 5): too many steps or too
# high a learning rate drift the model (8). Evaluation (8): small probes are noisy, so compare against the standard
# error. Merge (4): a merge that is wrong changes the logits, so check them.
#
# **What changes when the same fine-tune runs on four GPUs?** Each process holds the whole model and a quarter of
# every batch; the gradients are averaged, so the update is the same and each step takes about a quarter of the
# time. A model too big for one GPU needs it split instead (FSDP, DeepSpeed ZeRO; chapter 5).

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/11_capstone_assistant.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the merge.** Section 4 folds the LoRA update into the frozen weight. Given `W0` (out x in), `A`
# (r x in), `B` (out x r), `alpha` and `r`, return the merged weight. The checker compares with
# `lora.LoRALinear.merge`.

# %% tags=["exercise"]
import torch


def my_merge(W0: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """The weight of the merged layer: the frozen weight plus the scaled low-rank update."""
    # TODO: W0 + the update, scaled as in LoRA's forward
    raise NotImplementedError


checks.check("11.merge_lora", my_merge)

# %% tags=["solution"]
import torch


def my_merge(W0: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """The weight of the merged layer: the frozen weight plus the scaled low-rank update."""
    return W0 + (B @ A) * (alpha / r)


checks.check("11.merge_lora", my_merge)

# %% [markdown]
# **Core · Self-Instruct's filter.** Section 1's data keeps a generated instruction only if it passes the
# reference's heuristics (chapter 7): reject it when it has 3 words or fewer or more than 150; when it contains a
# word of `self_instruct.BLACKLIST` (image, graph, file, map, plot, ...: as a whole word, any case; "go to" is two
# words); when it starts with "Write a program" (any case); when its first character is punctuation or not ASCII.
# Return True to keep it. The checker compares with `self_instruct.instruction_filter`.

# %% tags=["exercise"]
import re
import string

from course_utils.self_instruct import BLACKLIST


def my_keep_instruction(instruction: str) -> bool:
    """True when a generated instruction passes Self-Instruct's heuristic filters."""
    words = instruction.split()
    # TODO: the length rule, the blacklist (whole words: re.search with \b), 'write a program', the first character
    raise NotImplementedError


checks.check("11.keep_instruction", my_keep_instruction)

# %% tags=["solution"]
import re
import string

from course_utils.self_instruct import BLACKLIST


def my_keep_instruction(instruction: str) -> bool:
    """True when a generated instruction passes Self-Instruct's heuristic filters."""
    words = instruction.split()
    if not 3 < len(words) <= 150:
        return False
    low = instruction.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", low) for w in BLACKLIST):
        return False
    if low.startswith("write a program"):
        return False
    first = instruction[0]
    return first not in string.punctuation and first.isascii()


checks.check("11.keep_instruction", my_keep_instruction)

# %% [markdown]
# **Stretch · a conversation in the Alpaca template.** Section 5's chat box feeds the whole conversation back
# in the template the assistant was tuned on. `history` alternates user and assistant messages
# (`{"role": ..., "content": ...}`); build the prompt for the next `message`: the Alpaca header once
# (`instructions.PROMPT_NO_INPUT` up to `### Instruction:`), then each earlier turn as an `### Instruction:` block
# and an `### Response:` block, then the new message's `### Instruction:` and an open `### Response:`. With no
# history it is exactly the single-turn prompt. The checker compares with `assistant.alpaca_conversation`.

# %% tags=["exercise"]
from course_utils.instructions import PROMPT_NO_INPUT


def my_conversation(history: list[dict], message: str) -> str:
    """The Alpaca prompt for `message` after the earlier turns in `history`."""
    head = PROMPT_NO_INPUT.split("### Instruction:")[0]
    # TODO: one Instruction/Response pair per (user, assistant) turn, laid out like PROMPT_NO_INPUT's blocks
    # TODO: the header, the turns, then the new message awaiting its response
    raise NotImplementedError


checks.check("11.alpaca_conversation", my_conversation)

# %% tags=["solution"]
from course_utils.instructions import PROMPT_NO_INPUT


def my_conversation(history: list[dict], message: str) -> str:
    """The Alpaca prompt for `message` after the earlier turns in `history`."""
    head = PROMPT_NO_INPUT.split("### Instruction:")[0]
    turns = "".join(f"### Instruction:\n{user['content']}\n\n### Response:\n{reply['content']}\n\n"
                    for user, reply in zip(history[0::2], history[1::2]))
    return head + turns + PROMPT_NO_INPUT[len(head):].format(instruction=message)


checks.check("11.alpaca_conversation", my_conversation)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("11")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Chat with the original model and with the assistant on the same three questions.
# 2. *(core)* Add chapter 9's curated examples (`alignment.load_curated("train")`) to the data and fine-tune again
#    (a new run folder): does the held-out ROUGE-L move?
# 3. *(core)* Run the whole capstone from a terminal with `python -m course_utils.assistant --out runs/mine`.
# 4. *(stretch)* On a machine with two GPUs (or two CPU processes), launch the fine-tune with
#    `accelerate launch --num_processes 2` and check the loss curve matches the one-process run.

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("11_capstone_assistant", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("11_capstone_assistant")

# %% [markdown]
# ## Summary: what to remember
#
# - The whole pipeline (Self-Instruct data, LoRA SFT, before/after evaluation, merge, chat) runs from one notebook or
#   one command, and each step resumes from what its run folder already holds.
# - The same fine-tune script runs in one process or several under `accelerate launch` or `torchrun` with the same
#   update, because data parallelism averages the gradients.
# - A LoRA run saves as a small peft adapter that names its base model; merged, it becomes a plain model folder that
#   any transformers pipeline loads, with the same logits.
# - Tuning on the model's own data gave a small, real gain on held-out human-written tasks at a small cost in general
#   drift, as chapters 7 and 8 predicted.
# - Compare every probe's change with its standard error before calling it a result.
# - Chat with the model in the template it was tuned on: the chat box feeds the whole conversation back in the
#   Alpaca format.
#
# ## Further reading
#
# - Wang, Y., Kordi, Y., Mishra, S., et al. (2022). *Self-Instruct: Aligning Language Models with Self-Generated
#   Instructions*. ACL 2023. arXiv:2212.10560. The data step.
# - Taori, R., Gulrajani, I., Zhang, T., et al. (2023). *Stanford Alpaca: An Instruction-following LLaMA Model*.
#   GitHub, https://github.com/tatsu-lab/stanford_alpaca. The template the assistant is tuned and chatted with in.
# - Hu, E. J., Shen, Y., Wallis, P., et al. (2021). *LoRA: Low-Rank Adaptation of Large Language Models*. ICLR 2022.
#   arXiv:2106.09685. The fine-tune and the merge.
# - Li, S., Zhao, Y., Varma, R., et al. (2020). *PyTorch Distributed: Experiences on Accelerating Data Parallel
#   Training*. Proceedings of the VLDB Endowment 13(12), 2020. arXiv:2006.15704. What each process does under
#   `DistributedDataParallel`.
# - Rajbhandari, S., Rasley, J., Ruwase, O., et al. (2019). *ZeRO: Memory Optimizations Toward Training Trillion
#   Parameter Models*. SC 2020. arXiv:1910.02054. What to do when the model no longer fits one GPU.
# - Mangrulkar, S., Gugger, S., Debut, L., et al. (2022). *PEFT: State-of-the-art Parameter-Efficient Fine-Tuning
#   Methods*. GitHub, https://github.com/huggingface/peft. The adapter format the run folder is saved in.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5 (有监督微调). https://intro-llm.github.io/. Prompt learning, efficient
#   fine-tuning and instruction data.
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.; no author named), the numbered questions.
#   SFT practice, memory and repetition.
# - Lee, H.-y. (李宏毅) (2025). *大型語言模型訓練方法「預訓練–對齊」(Pretrain-Alignment) 的強大與極限*, lecture 5
#   of *生成式AI時代下的機器學習 (2025)*, National Taiwan University, Spring 2025; read through the notes
#   "李宏毅genai 笔记:预训练-对齐", §0-9. Alignment data and its limits.
