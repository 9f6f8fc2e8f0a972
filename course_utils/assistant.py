"""The capstone: build your own assistant from the course's pieces, end to end.

    data, report = make_data(model, tok, out, setup)    # chapter 7: Self-Instruct -> instruction_data.jsonl
    run_finetune(finetune_args(out, setup))             # chapters 4-5: LoRA SFT, the script `accelerate launch` runs
    tuned, tok = load_tuned(out)                        # the peft adapter on a fresh copy of the model
    rows = evaluate(model, tuned, tok, heldout, setup)  # chapter 8: the harness, before and after
    merged = merge_and_save(tuned, tok, out / "merged") # LoRA folded into the weights, saved as safetensors
    chat_widget(merged_model, tok)                      # talk to it

or all at once from the command line (each step resumes from its files)::

    python -m course_utils.assistant --out runs/assistant
    python -m course_utils.assistant --out runs/assistant --launcher accelerate --processes 2   # several GPUs
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import DEFAULT_MODEL, PROFILE_NAMES, sizes
from .device import to_model
from .validate import cli_number, non_empty, not_a_str, positive_float, positive_int


@dataclass(frozen=True)
class AssistantSetup:
    """Sizes of one capstone run.

    Attributes:
        profile: the Self-Instruct sizes to use (``config.sizes("self_instruct")``: how many instructions to
            make, how many seed tasks to hold out for evaluation).
        steps, batch_size, lr, max_len, rank, alpha: the LoRA fine-tune (``course_utils.finetune``'s flags).
        answer_tokens: tokens per held-out answer in the evaluation.
    """

    profile: str
    steps: int
    batch_size: int
    lr: float
    max_len: int
    rank: int = 8
    alpha: float = 16.0
    answer_tokens: int = 64

    def __post_init__(self):
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"Unknown profile {self.profile!r}: choose one of {PROFILE_NAMES} (or build the setup "
                             "with config.sizes('assistant')).")
        for name in ("steps", "batch_size", "max_len", "rank", "answer_tokens"):
            positive_int(name, getattr(self, name), "config.SIZES['assistant'] has working values")
        positive_float("lr", self.lr, "pass e.g. lr=3e-4")
        positive_float("alpha", self.alpha, f"pass e.g. alpha={2 * self.rank} (twice the rank)")


# ---------------------------------------------------------------------------------------------------------------
# 1. Data (chapter 7)
# ---------------------------------------------------------------------------------------------------------------

def split_tasks(setup: AssistantSetup) -> tuple[list[dict], list[dict]]:
    """The course's seed tasks split into the Self-Instruct pool and held-out tasks (as ``{instruction, input,
    output}`` rows) that the assistant is evaluated on and never sees."""
    from . import self_instruct as si

    pool, held = si.split_seed_tasks(si.load_seed_tasks(), sizes("self_instruct", setup.profile).n_heldout)
    return pool, [{"instruction": t["instruction"], **t["instances"][0]} for t in held]


def make_data(model, tok, out_dir: str | Path, setup: AssistantSetup, pool: Sequence[Mapping] | None = None,
              progress: bool = True):
    """Self-Instruct from the seed pool into ``out_dir/data`` (resumable: a second call redoes nothing). Returns
    the filtered instruction data (also in ``out_dir/data/instruction_data.jsonl``) and the filter report.

    Raises:
        ValueError: the filters left no example (the message says how to get more).
    """
    from . import self_instruct as si

    pool = pool if pool is not None else split_tasks(setup)[0]
    data, report = si.bootstrap(model, tok, pool, Path(out_dir) / "data", sizes("self_instruct", setup.profile),
                                progress)
    if not data:
        raise ValueError("Self-Instruct kept no example: raise the target (a larger profile) or use a larger model.")
    return data, report


def data_path(out_dir: str | Path) -> Path:
    """Where :func:`make_data` writes the instruction data."""
    return Path(out_dir) / "data" / "instruction_data.jsonl"


# ---------------------------------------------------------------------------------------------------------------
# 2. Fine-tuning (the script of chapters 4 and 5)
# ---------------------------------------------------------------------------------------------------------------

def finetune_args(out_dir: str | Path, setup: AssistantSetup, model_name: str = DEFAULT_MODEL) -> list[str]:
    """The command-line arguments of ``course_utils.finetune`` for this run: LoRA on the Self-Instruct data, the
    peft adapter written to ``out_dir/lora``."""
    if not isinstance(setup, AssistantSetup):
        raise TypeError(f"setup must be an AssistantSetup, got {type(setup).__name__}: pass "
                        "config.sizes('assistant').")
    return ["--model", model_name, "--data", str(data_path(out_dir)), "--method", "lora", "--rank", str(setup.rank),
            "--alpha", str(setup.alpha), "--steps", str(setup.steps), "--batch-size", str(setup.batch_size),
            "--lr", str(setup.lr), "--max-len", str(setup.max_len), "--output-dir", str(adapter_dir(out_dir))]


def launch_command(args: Sequence[str], launcher: str = "python", processes: int = 1) -> list[str]:
    """The whole command line for the fine-tune: ``python -m course_utils.finetune ...`` in one process, or the
    same module under ``accelerate launch`` / ``torchrun`` on ``processes`` GPUs (or CPU processes).

    Raises:
        ValueError: an unknown launcher, or several processes with plain ``python``.
    """
    not_a_str("args", args, "pass a list of arguments, e.g. finetune_args(out, setup)")
    if isinstance(processes, bool) or not isinstance(processes, int):
        raise TypeError(f"processes must be a whole number >= 1, not {processes!r}: pass e.g. processes=2.")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, not {processes}.")
    if launcher == "python":
        if processes != 1:
            raise ValueError("Plain python runs one process; use launcher='accelerate' or 'torchrun' for more.")
        head = [sys.executable, "-m", "course_utils.finetune"]
    elif launcher == "accelerate":
        head = ["accelerate", "launch", "--num_processes", str(processes), "-m", "course_utils.finetune"]
    elif launcher == "torchrun":
        head = ["torchrun", "--nproc_per_node", str(processes), "-m", "course_utils.finetune"]
    else:
        raise ValueError(f"launcher must be 'python', 'accelerate' or 'torchrun', not {launcher!r}.")
    return head + list(args)


def run_finetune(args: Sequence[str], launcher: str = "python", processes: int = 1):
    """Run the fine-tune: in this process (``launcher="python"``; returns its ``TrainResult``), or as a launcher
    subprocess (returns the finished process; raises ``CalledProcessError`` if it failed)."""
    if launcher == "python" and processes == 1:
        from .finetune import main

        return main(list(args))
    cmd = launch_command(args, launcher, processes)
    print("running:", shlex.join(cmd))
    return subprocess.run(cmd, check=True)


def adapter_dir(out_dir: str | Path) -> Path:
    """Where the fine-tune writes its peft adapter (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    return Path(out_dir) / "lora"


def load_tuned(out_dir: str | Path):
    """The fine-tuned assistant: its base model with the trained LoRA adapter (``out_dir/lora``) loaded by
    ``PeftModel.from_pretrained``. Returns ``(model, tok)`` in eval mode.

    Raises:
        FileNotFoundError: no fine-tune in ``out_dir`` yet (run :func:`run_finetune` first).
        finetune.OldRunError: a run folder of an older course version (the message says how to convert it).
    """
    from .finetune import load_finetuned

    return load_finetuned(adapter_dir(out_dir))


# ---------------------------------------------------------------------------------------------------------------
# 3. Evaluation (chapter 8) and 4. merging
# ---------------------------------------------------------------------------------------------------------------

def evaluate(base, tuned, tok, heldout: Sequence[Mapping], profile_name: str,
             probes: Sequence[str] | None = None) -> list[dict]:
    """Chapter 8's harness on the base model and the assistant (KL measured against the base), with the
    held-out seed tasks as the instruction probe. Returns the two result rows."""
    from .evaluation import Harness

    not_a_str("heldout", heldout)
    non_empty("heldout", heldout, "pass the held-out tasks, e.g. split_tasks(setup)[1]")
    harness = Harness(tok, sizes("evaluation", profile_name), instructions=list(heldout))
    harness.set_reference(base)
    return [harness.evaluate(base, "base model", probes), harness.evaluate(tuned, "assistant (LoRA)", probes)]


def merge_and_save(model, tok, path: str | Path) -> Path:
    """Fold every LoRA update into its weight (peft's ``merge_and_unload``, the sum chapter 4's ``merge_lora``
    computes: no extra layers at inference) and save model and tokenizer as safetensors in ``path``, a plain
    model folder that ``AutoModelForCausalLM.from_pretrained`` and ``pipeline("text-generation", ...)`` load.
    Returns ``path``; ``model`` is merged in place (use the saved folder from here on)."""
    from .finetune import merge

    return merge(model, tok, path)


@torch.no_grad()
def max_logit_difference(a, b, tok, text: str = "Give three tips for staying healthy.") -> float:
    """The largest absolute difference of two models' logits on one text: ~1e-5 in float32 for a merge that is
    right, more in 16 bits (:func:`course_utils.device.tolerance` gives the bound by dtype)."""
    ids = tok(text, return_tensors="pt")["input_ids"]  # each model reads it on its own device
    return (a(to_model(a, ids)).logits.float().cpu() - b(to_model(b, ids)).logits.float().cpu()).abs().max().item()


# ---------------------------------------------------------------------------------------------------------------
# 5. Chat
# ---------------------------------------------------------------------------------------------------------------

def alpaca_conversation(history: Sequence[Mapping], message: str) -> str:
    """A conversation in the Alpaca template the assistant was tuned on: earlier turns as
    ``### Instruction`` / ``### Response`` blocks, then the new message awaiting its response."""
    from .instructions import PROMPT_NO_INPUT

    _check_history(list(history) if isinstance(history, (list, tuple)) else history)
    if not isinstance(message, str):
        raise TypeError(f"The message must be a str, got {type(message).__name__}: pass what the user says.")
    head = PROMPT_NO_INPUT.split("### Instruction:")[0]
    turns = "".join(f"### Instruction:\n{u['content']}\n\n### Response:\n{a['content']}\n\n"
                    for u, a in zip(history[0::2], history[1::2]))
    return f"{head}{turns}### Instruction:\n{message}\n\n### Response:\n"


def _check_history(history) -> None:
    """The conversation so far: a list (it is extended in place) of {'role', 'content'} messages."""
    if not isinstance(history, list):
        raise TypeError(f"history must be a list of messages (it grows with each turn), got "
                        f"{type(history).__name__}: start with history = [].")
    bad = next((m for m in history if not (isinstance(m, Mapping) and m.get("role") in ("system", "user", "assistant")
                                           and isinstance(m.get("content"), str))), None)
    if bad is not None:
        raise ValueError(f"history holds {bad!r:.80}; each message is {{'role': 'user' | 'assistant', 'content': "
                         "str}: start with history = [] and let chat_reply fill it.")


def chat_reply(model, tok, history: list[dict], message: str, max_new_tokens: int = 96,
               template: str = "alpaca") -> str:
    """Append the user's ``message`` and the model's reply to ``history`` (chat messages) and return the reply.
    The whole history is the prompt, so the assistant sees the conversation so far: in the Alpaca template it
    was fine-tuned on (``template="alpaca"``; anything after a new ``###`` heading is cut), or in the tokenizer's
    chat template (``"chat"``, for a chat model as it came).

    Raises:
        ValueError: an empty message or an unknown template.
    """
    from .models import generate_text

    if not isinstance(message, str):
        raise TypeError(f"The message must be a str, got {type(message).__name__}: pass what the user says.")
    if not message.strip():
        raise ValueError("Say something: the message is empty.")
    if template not in ("alpaca", "chat"):
        raise ValueError(f"template must be 'alpaca' or 'chat', not {template!r}.")
    _check_history(history)
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=96")
    message = message.strip()
    if template == "alpaca":
        reply = generate_text(model, tok, alpaca_conversation(history, message), max_new_tokens=max_new_tokens,
                              chat=False, repetition_penalty=1.1).split("###")[0].strip()
    else:
        reply = generate_text(model, tok, [*history, {"role": "user", "content": message}],
                              max_new_tokens=max_new_tokens, repetition_penalty=1.1)
    history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply}]
    return reply


def format_history(history: Sequence[Mapping]) -> str:
    """The conversation as plain text, one turn a paragraph."""
    return "\n\n".join(f"{'you' if m['role'] == 'user' else 'assistant'}: {m['content']}" for m in history)


def chat_widget(model, tok, first_message: str = "Hello! What can you do?", max_new_tokens: int = 96,
                template: str = "alpaca"):
    """A chat box: a text field and a Send button over the conversation. The first exchange is printed at once,
    so the cell shows a real reply where widgets do not render. Returns the widget (or ``None``)."""
    history: list[dict] = []
    chat_reply(model, tok, history, first_message, max_new_tokens, template)
    print(format_history(history))
    try:
        import ipywidgets as w
    except ImportError:
        return None
    log = w.Output()
    box = w.Text(placeholder="Type a message and press Send", layout=w.Layout(width="75%"))
    send, clear = w.Button(description="Send", button_style="primary"), w.Button(description="Clear")

    def show() -> None:
        log.clear_output()
        with log:
            print(format_history(history))

    def on_send(_):
        if box.value.strip():
            msg, box.value = box.value, ""
            chat_reply(model, tok, history, msg, max_new_tokens, template)
            show()

    def on_clear(_):
        history.clear()
        show()

    send.on_click(on_send)
    clear.on_click(on_clear)
    show()
    return w.VBox([log, w.HBox([box, send, clear])])


# ---------------------------------------------------------------------------------------------------------------
# The whole pipeline from the command line
# ---------------------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> list[dict]:
    """``python -m course_utils.assistant --out DIR``: data -> fine-tune -> evaluation -> merge, each step
    skipped when its output exists (delete the folder to start over). Returns the evaluation rows."""
    from .config import profile
    from .evaluation import format_results
    from .models import load_model

    ap = argparse.ArgumentParser(prog="python -m course_utils.assistant", description=main.__doc__)
    ap.add_argument("--out", required=True, help="run folder (data/, lora/, merged/)")
    ap.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $COURSE_PROFILE or auto)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--launcher", default="python", choices=["python", "accelerate", "torchrun"])
    ap.add_argument("--processes", type=cli_number(int, 1), default=1,
                    help="processes (GPUs) for accelerate / torchrun")
    args = ap.parse_args(argv)
    setup = sizes("assistant", profile(args.profile).name)
    out = Path(args.out)
    model, tok = load_model(args.model)
    pool, held = split_tasks(setup)
    make_data(model, tok, out, setup, pool)
    if not (adapter_dir(out) / "result.json").is_file():  # written last: a stopped fine-tune resumes here
        run_finetune(finetune_args(out, setup, args.model), args.launcher, args.processes)
    tuned, _ = load_tuned(out)
    rows = evaluate(model, tuned, tok, held, setup.profile, probes=("perplexity", "instructions", "kl"))
    print(format_results(rows))
    merged = merge_and_save(tuned, tok, out / "merged")
    print(f"merged assistant saved in {merged}; chat with it in notebooks/11_capstone_assistant.ipynb")
    return rows


if __name__ == "__main__":
    main()
