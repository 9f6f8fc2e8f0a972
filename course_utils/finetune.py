"""Chapter 4's fine-tune as a script that runs unchanged on one process or many (chapter 5 runs it in two).

    python -m course_utils.finetune --data sentiment --method lora --steps 60 --output-dir runs/lora
    python -m course_utils.finetune --data chat.jsonl --steps 60 --output-dir runs/chat --merge
    torchrun --nproc_per_node 2 -m course_utils.finetune --data sentiment --steps 60 --output-dir runs/ddp
    accelerate launch --num_processes 2 -m course_utils.finetune --data sentiment --steps 60 --output-dir runs/acc

``torchrun`` and ``accelerate launch`` both start N copies of this script with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` set; the script joins the process group (NCCL on GPUs, one process per GPU;
gloo on CPUs, or on a GPU machine with ``COURSE_DEVICE=cpu``: :func:`launch_plan` says which) and ``sft.train``
wraps the model in ``DistributedDataParallel``. Each process takes its share of every batch, and the update equals
the single-process one (tested with two CPU processes). This is data parallelism: every process holds a full copy
of the model. When the model itself does not fit, it must be split (model / tensor / pipeline
parallelism, or sharded: FSDP, DeepSpeed ZeRO); see chapter 5.

What it writes is what the rest of the ecosystem reads: a LoRA run is a peft adapter folder
(``adapter_config.json`` + ``adapter_model.safetensors``, loaded by ``PeftModel.from_pretrained`` and
``AutoPeftModelForCausalLM``), a full fine-tune a model folder; ``--merge`` adds ``merged/``, a plain model folder
(LoRA folded into the weights) that ``AutoModelForCausalLM.from_pretrained`` and ``pipeline`` load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_utils import sft
from course_utils.config import DEFAULT_MODEL
from course_utils.validate import cli_number

#: The attention projections LoRA adapts (the LoRA paper's choice, chapter 4).
LORA_TARGETS = ("q_proj", "v_proj")
#: Where a run keeps its base model when the base has no folder or hub id to be reloaded from (``--model tiny``).
BASE_DIR = "base-model"


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSONL file (one JSON object per line; blank lines and a UTF-8 byte-order mark are fine).

    Raises:
        FileNotFoundError / ValueError: a missing file, a directory, an empty file, a JSON array (not JSONL), or a
            line that is not a JSON object (the message names the file and line).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No data file {str(path)!r}: pass --data sentiment or a JSONL file.")
    if path.is_dir():
        raise IsADirectoryError(f"--data {str(path)!r} is a directory: pass a JSONL file (one JSON object per line).")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            hint = (" The file looks like one JSON array; JSONL has one object per line (convert it with "
                    "`python -c \"import json,sys; [print(json.dumps(r)) for r in json.load(sys.stdin)]\" < in.json "
                    "> out.jsonl`).") if line.lstrip().startswith("[") else ""
            raise ValueError(f"{path}:{n}: not valid JSON ({err.msg}, column {err.colno}).{hint}") from None
        if isinstance(row, list):
            raise ValueError(f"{path}:{n}: a JSON array, not an object. JSONL has one object per line, e.g. "
                             '{"prompt": "...", "completion": "..."}.')
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: {row!r} is not a JSON object; each line must be one, e.g. "
                             '{"prompt": "...", "completion": "..."}.')
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no rows: write one JSON object per line.")
    return rows


def check_limit(limit: int | None) -> None:
    """``limit`` is ``None`` (all rows) or a positive number of rows."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of examples (or None for all), not {limit!r}.")


def _text(row: dict, key: str, where: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"{where}: {key!r} must be a string, not {type(value).__name__} ({value!r}).")
    return value


def load_pairs(data: str, split: str = "train", limit: int | None = None) -> list[tuple[str, str]]:
    """Training pairs: ``sentiment`` (the course's sentiment set as prompt-based pairs) or a JSONL file whose rows
    have ``prompt``/``response`` (or TRL's ``prompt``/``completion``) or Alpaca's ``instruction``/``input``/``output``
    fields (strings). (Rows of chat ``messages`` are read by ``chat.load_conversations``.)

    Raises:
        FileNotFoundError / ValueError / TypeError: see :func:`read_jsonl`; rows without those fields, or fields that
            are not strings; ``limit`` below 1.
    """
    check_limit(limit)
    if data == "sentiment":
        from course_utils.data import load_sentiment
        from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, prompt_pairs

        return prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, load_sentiment(split, limit=limit))
    pairs = []
    for n, row in enumerate(read_jsonl(data), 1):
        where = f"{data}: row {n}"
        if "prompt" in row and ("response" in row or "completion" in row):
            pairs.append((_text(row, "prompt", where), _text(row, "response" if "response" in row else "completion",
                                                                 where)))
        elif "instruction" in row and "output" in row:
            from course_utils.instructions import alpaca_prompt  # chapter 7

            row.setdefault("input", "")
            pairs.append((alpaca_prompt(_text(row, "instruction", where), _text(row, "input", where)),
                          _text(row, "output", where)))
        else:
            raise ValueError(f"{where}: a row needs 'prompt' and 'response' (or 'completion'), 'instruction' and "
                             f"'output', or chat 'messages'; it has {sorted(row)}.")
    return pairs[:limit] if limit else pairs


def build_data(tok, data: str, max_len: int, limit: int | None = None, packing: bool = False) -> list[dict]:
    """The training examples of ``--data``: chat rows (``messages``; loss on the assistant turns, chapter 8's
    ``chat`` module) or pairs (:func:`load_pairs`; loss on the response); packed into rows of ``max_len`` tokens
    with ``packing``."""
    from course_utils import chat

    check_limit(limit)
    if data != "sentiment" and "messages" in read_jsonl(data)[0]:
        examples = chat.build_chat_dataset(tok, chat.load_conversations(data, limit), max_len)
    else:
        examples = sft.build_dataset(tok, load_pairs(data, limit=limit), max_len)
    return chat.pack(examples, max_len) if packing else examples


def build_model(name: str, method: str, rank: int = 8, alpha: float = 16.0, device: torch.device | None = None,
                dropout: float = 0.0):
    """The model to fine-tune and its tokenizer: ``full`` trains every weight, ``lora`` injects LoRA into the
    attention projections (q, v) with peft and freezes the rest (chapter 4 builds the same LoRA by hand and shows
    the two equal). ``name="tiny"`` is a random tiny Llama with the default model's tokenizer (seconds per run;
    used by the tests)."""
    from transformers import AutoTokenizer

    from course_utils import models
    from course_utils.device import pick_device

    if method not in ("lora", "full"):
        raise ValueError(f"--method must be 'lora' or 'full', not {method!r}.")
    config = lora_config(rank, alpha, dropout) if method == "lora" else None  # bad settings fail before the load
    device = device or pick_device()
    if name == "tiny":
        tok = models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.model_files(DEFAULT_MODEL)))
        model = models.tiny_llama(vocab_size=len(tok), max_positions=256).to(device)
    else:
        model, tok = models.load_model(name, device=device)
    if config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, config)
    return model, tok


def lora_config(rank: int = 8, alpha: float = 16.0, dropout: float = 0.0):
    """peft's ``LoraConfig`` for the fine-tune: rank ``rank``, scale ``alpha / rank`` on :data:`LORA_TARGETS`,
    ``dropout`` on the LoRA branch's input (none by default)."""
    from peft import LoraConfig

    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"The LoRA rank must be a positive int, not {rank!r}: e.g. rank=8.")
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"The LoRA alpha must be a positive number, not {alpha!r}: e.g. alpha=16 (scale alpha/rank).")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"The LoRA dropout must be in [0, 1), not {dropout!r}: e.g. 0.05, or 0 for none.")
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(LORA_TARGETS), lora_dropout=float(dropout),
                      task_type="CAUSAL_LM")


def is_peft(model) -> bool:
    """Whether ``model`` is a peft model (it has adapters and a ``peft_config``)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_finetuned(model, tok, out_dir: str | Path) -> Path:
    """Write a fine-tune the way the ecosystem reads it: a peft adapter folder for a LoRA model
    (``adapter_config.json`` + ``adapter_model.safetensors``), a model folder (``config.json`` +
    ``model.safetensors``) for a full fine-tune; the tokenizer beside it either way.

    The adapter names its base (``base_model_name_or_path``): the hub id, or the folder the offline model was
    loaded from. A base that cannot be reloaded from there (built in memory, ``--model tiny``, or random weights
    from a configuration, ``$COURSE_RANDOM_WEIGHTS``) is saved to ``out_dir/base-model`` and named instead.
    """
    import copy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_peft(model):
        cfg = model.peft_config[model.active_adapter]
        if not _reloadable(cfg.base_model_name_or_path):
            base = copy.deepcopy(model).unload()  # the base weights without the adapter (nothing merged)
            base.save_pretrained(out / BASE_DIR)
            tok.save_pretrained(out / BASE_DIR)
            cfg.base_model_name_or_path = str((out / BASE_DIR).resolve())
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _reloadable(name: str | None) -> bool:
    """Whether ``from_pretrained(name)`` gives the base back: a hub id, or a folder with weights in it."""
    from course_utils.models import RANDOM_WEIGHTS_ENV

    if not name or os.environ.get(RANDOM_WEIGHTS_ENV):
        return False
    path = Path(name)
    return not path.exists() or any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


class OldRunError(ValueError):
    """A run folder from before the course wrote peft adapters (only ``trainable.safetensors``)."""


def load_finetuned(out_dir: str | Path, device: torch.device | str | None = None):
    """A fine-tune written by :func:`save_finetuned`, ready to generate: ``(model, tok)`` in eval mode. An adapter
    folder is loaded onto its base with ``PeftModel.from_pretrained``; a model folder directly.

    Raises:
        FileNotFoundError: no fine-tune in ``out_dir`` (run the fine-tune first).
        OldRunError: a run from an older version of the course (the message says how to convert it).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from course_utils.device import pick_device, pick_dtype
    from course_utils.models import prepare_tokenizer, to_device

    out = Path(out_dir)
    dev = pick_device(device)
    if (out / "adapter_config.json").is_file():
        from peft import PeftModel

        base_path = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=pick_dtype(dev))
        model = PeftModel.from_pretrained(base, out)
    elif (out / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(out, dtype=pick_dtype(dev))
    elif (out / "trainable.safetensors").is_file():
        raise OldRunError(f"{out} holds only trainable.safetensors, the format of an older version of the course. "
                          f"Convert it with `python -m course_utils.finetune --convert {out} --model <the model it "
                          "was trained from> --method <lora|full> [--rank R --alpha A]`, or run the fine-tune again "
                          "into a new --output-dir.")
    else:
        raise FileNotFoundError(f"No fine-tune in {out}: run the fine-tune first (python -m course_utils.finetune "
                                f"... --output-dir {out}).")
    return to_device(model, dev, str(out)).eval(), prepare_tokenizer(AutoTokenizer.from_pretrained(out))


def merge(model, tok, path: str | Path) -> Path:
    """Fold a LoRA adapter into its weights (``merge_and_unload``: plain Linears again, no extra work at inference)
    and save model and tokenizer in ``path``, a folder ``AutoModelForCausalLM.from_pretrained`` and
    ``pipeline("text-generation", ...)`` load. A model without adapters is saved as it is. The merge changes
    ``model`` in place: use the saved folder from here on."""
    merged = model.merge_and_unload() if is_peft(model) else model
    path = Path(path)
    merged.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def convert_old_run(old_dir: str | Path, model_name: str, method: str = "lora", rank: int = 8,
                    alpha: float = 16.0) -> Path:
    """Rewrite a run of an older course version (``trainable.safetensors`` of the course's own LoRA, or of every
    weight) in place as :func:`save_finetuned` writes it. Returns the folder.

    Raises:
        ValueError: the weights do not fit ``model_name`` with that method and rank.
    """
    from safetensors.torch import load_file

    from course_utils.lora import copy_lora_to_peft, inject_lora

    old = Path(old_dir)
    state = load_file(old / "trainable.safetensors")
    model, tok = build_model(model_name, "full", device=torch.device("cpu"))
    if method == "lora":
        import copy

        from peft import get_peft_model

        theirs = get_peft_model(copy.deepcopy(model), lora_config(rank, alpha))
        ours = inject_lora(model, LORA_TARGETS, r=rank, alpha=alpha)
        _load_exactly(ours, state, f"{model_name!r} with LoRA rank {rank}")
        copy_lora_to_peft(ours, theirs)
        model = theirs
    else:
        _load_exactly(model, state, repr(model_name))
    save_finetuned(model, tok, old)
    (old / "trainable.safetensors").rename(old / "trainable.safetensors.converted")
    return old


def _load_exactly(model, state: dict, what: str) -> None:
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if shapes.get(k) != v.shape]
    if bad:
        raise ValueError(f"The saved weight {bad[0]} has no place in {what}: convert with the model, method and "
                         "rank the run was trained with.")
    model.load_state_dict(state, strict=False)


def usable_gpus() -> int:
    """How many GPUs a run here trains on: every CUDA device, or none when ``$COURSE_DEVICE`` names another one."""
    if os.environ.get("COURSE_DEVICE"):
        from course_utils.device import pick_device

        return torch.cuda.device_count() if pick_device().type == "cuda" else 0
    return torch.cuda.device_count()


@dataclass(frozen=True)
class LaunchPlan:
    """How to start a data-parallel run: ``processes`` copies of the script, their process-group ``backend``,
    the ``device`` type they train on (``cuda`` or ``cpu``, for ``$COURSE_DEVICE``), and why, in one line."""

    processes: int
    backend: str
    device: str
    note: str


def launch_plan(requested: int, n_gpus: int, *, exact: bool = False) -> LaunchPlan:
    """The processes to start for ``requested`` data-parallel workers on a machine with ``n_gpus`` GPUs.

    One process per GPU talking over NCCL, so at most ``n_gpus`` of them: a second process on a one-GPU machine
    would ask for a GPU that does not exist. Without a GPU, the processes run on the CPU and talk over gloo.
    ``exact=True`` is for a comparison that needs exactly ``requested`` processes: with too few GPUs it runs them
    all on the CPU instead.

    Raises:
        ValueError: ``requested < 1`` or a negative GPU count.
    """
    if requested < 1 or n_gpus < 0:
        raise ValueError(f"Need requested >= 1 and n_gpus >= 0, got requested={requested}, n_gpus={n_gpus}.")
    if n_gpus >= requested:
        return LaunchPlan(requested, "nccl", "cuda", f"{_count(requested, 'process')}, one per GPU (nccl)")
    if n_gpus and not exact:
        return LaunchPlan(n_gpus, "nccl", "cuda", f"{_count(n_gpus, 'process')}, one per GPU (nccl): this machine "
                                                  f"has {_count(n_gpus, 'GPU')}, not {requested}")
    why = "no GPU here" if not n_gpus else f"{requested} processes need {requested} GPUs, this machine has {n_gpus}"
    return LaunchPlan(requested, "gloo", "cpu", f"{_count(requested, 'process')} on the CPU (gloo): {why}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'es' if noun.endswith('s') else 's'}" if n != 1 else f"1 {noun}"


def process_device(local_rank: int, n_gpus: int) -> tuple[str, torch.device]:
    """The process-group backend and the device of the process with ``local_rank`` on a machine whose run uses
    ``n_gpus`` GPUs (0: a CPU run).

    Raises:
        RuntimeError: more processes on this machine than GPUs (the message says the two ways out).
    """
    if n_gpus == 0:
        return "gloo", torch.device("cpu")
    if not 0 <= local_rank < n_gpus:
        raise RuntimeError(f"Process LOCAL_RANK={local_rank} has no GPU: this machine has {n_gpus}. Start at most "
                           f"{n_gpus} process(es) per machine (torchrun --nproc_per_node {n_gpus}), or run them on "
                           "the CPU with COURSE_DEVICE=cpu (gloo).")
    return "nccl", torch.device("cuda", local_rank)


def _setup_distributed() -> torch.device:
    """Join the process group when launched by torchrun / accelerate; return this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    backend, device = process_device(int(os.environ.get("LOCAL_RANK", "0")), usable_gpus())
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _dropout(text: str) -> float:
    value = cli_number(float, 0)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in [0, 1)")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring). Bad values stop here, with argparse's message (exit code 2)."""
    positive, count, rate = cli_number(int, 1), cli_number(int, 0), cli_number(float, 0, inclusive=False)
    p = argparse.ArgumentParser(prog="python -m course_utils.finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="offline name, hub id, or 'tiny'")
    p.add_argument("--data", default="sentiment",
                   help="'sentiment' or a JSONL file of chat 'messages', 'prompt'/'completion' or Alpaca rows")
    p.add_argument("--packing", action="store_true",
                   help="pack several short examples into each row of --max-len (--batch-size then counts rows)")
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--rank", type=positive, default=8)
    p.add_argument("--alpha", type=rate, default=16.0)
    p.add_argument("--lora-dropout", type=_dropout, default=0.0)
    p.add_argument("--steps", type=positive, default=60)
    p.add_argument("--batch-size", type=positive, default=8, help="examples per optimiser step, all processes together")
    p.add_argument("--grad-accum", type=positive, default=1)
    p.add_argument("--lr", type=rate, default=2e-4)
    p.add_argument("--warmup-steps", type=count, default=0)
    p.add_argument("--max-len", type=cli_number(int, 2), default=64)
    p.add_argument("--limit", type=positive, default=None, help="use only this many training examples")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--checkpoint-every", type=count, default=0,
                   help="write OUTPUT_DIR/checkpoint-last every N steps (a stop always writes one)")
    p.add_argument("--output-dir", help="where the adapter (LoRA) or model (full) is written")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh: delete a checkpoint or finished run in --output-dir")
    p.add_argument("--merge", action="store_true",
                   help="also write OUTPUT_DIR/merged: LoRA folded into the weights, a plain model folder")
    p.add_argument("--convert", metavar="OLD_DIR",
                   help="rewrite a run of an older course version (trainable.safetensors) as a peft adapter, then stop")
    p.add_argument("--seed", type=count, default=0)
    args = p.parse_args(argv)
    if not args.output_dir and not args.convert:
        p.error("--output-dir is required (or --convert OLD_DIR)")
    if not args.model.strip():
        p.error("--model is empty: pass an offline name, a hub id or 'tiny'")
    if args.warmup_steps > args.steps:
        p.error(f"--warmup-steps {args.warmup_steps} is longer than the run (--steps {args.steps})")
    if args.batch_size % args.grad_accum:
        p.error(f"--batch-size {args.batch_size} must be a multiple of --grad-accum {args.grad_accum}")
    return args


def resume_command(argv: Sequence[str] | None, world: int = 1) -> str:
    """The command that resumes a stopped run: the same one (minus ``--overwrite``, which would start afresh), under
    ``torchrun`` with as many processes when it ran in several."""
    import shlex

    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--overwrite"]
    launcher = ["torchrun", "--nproc_per_node", str(world)] if world > 1 else [sys.executable]
    return shlex.join([*launcher, "-m", "course_utils.finetune", *args])


def main(argv: Sequence[str] | None = None) -> sft.TrainResult | None:
    """Run one fine-tune; rank 0 writes the adapter (or model) and ``result.json`` to ``output_dir`` (and
    ``output_dir/merged`` with ``--merge``).

    A stop (Ctrl-C, ``SIGTERM``) finishes the current step, writes ``output_dir/checkpoint-last``, prints the command
    that resumes and exits with 130 / 143; nothing is written as finished. Running the same command again resumes;
    another run into the same folder is refused (``--overwrite`` starts afresh).
    """
    from course_utils.checkpoints import TrainingStopped, delete_checkpoint
    from course_utils.device import set_seed

    args = parse_args(argv)
    if args.convert:
        set_seed(args.seed)  # --model tiny is built from this seed
        print(f"converted: {convert_old_run(args.convert, args.model, args.method, args.rank, args.alpha)}")
        return None
    out = Path(args.output_dir)
    if (out / "result.json").is_file():
        if not args.overwrite:
            raise SystemExit(f"{out} already holds a finished run (result.json). Choose another --output-dir, or pass "
                             "--overwrite to replace it.")
        (out / "result.json").unlink(missing_ok=True)  # every process of a torchrun run gets here
    device = _setup_distributed()
    rank, world = sft.rank_and_world()
    set_seed(args.seed)
    model, tok = build_model(args.model, args.method, args.rank, args.alpha, device, args.lora_dropout)
    data = build_data(tok, args.data, args.max_len, args.limit, args.packing)
    cfg = sft.TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                          warmup_steps=args.warmup_steps, gradient_checkpointing=args.gradient_checkpointing,
                          checkpoint_every=args.checkpoint_every, output_dir=args.output_dir, seed=args.seed,
                          plot=None, progress=rank == 0)
    try:
        result = sft.train(model, data, cfg, pad_id=tok.pad_token_id, overwrite=args.overwrite)
    except TrainingStopped as stop:
        if rank == 0:
            print(f"Not finished: stopped at step {stop.step} of {args.steps}. Resume with:\n  "
                  f"{resume_command(argv, world)}", file=sys.stderr)
        if argv is not None:  # called from Python (chapter 11's kernel): the stop stays a KeyboardInterrupt
            raise
        raise SystemExit(stop.exit_code) from None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_finetuned(model, tok, out)
        if args.merge:
            merge(model, tok, out / "merged")
        summary = {"world_size": world, "final_loss": result.losses[-1], "losses": result.losses,
                   "seconds_per_step": result.seconds_per_step, "tokens_per_second": result.tokens_per_second}
        (out / "result.json").write_text(json.dumps(summary, indent=1))  # written last: it marks a finished run
        if not args.checkpoint_every:  # the run is complete; a stop's checkpoint has served its purpose
            delete_checkpoint(out / "checkpoint-last")
        print(f"{world} process(es): final loss {result.losses[-1]:.4f}, {result.seconds_per_step:.2f} s/step; "
              f"{'adapter' if is_peft(model) else 'model'} in {out}" + (f", merged model in {out / 'merged'}"
                                                                         if args.merge else ""))
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
