"""Chapter 8: SFT on chat messages, the format TRL and the hub's chat datasets use.

A row is a conversation, ``{"messages": [{"role": "system" | "user" | "assistant", "content": ...}, ...]}``,
possibly of several turns. The model reads it through its **chat template** (the text it was trained to see), and
the loss falls on the **assistant turns only**: the model learns to answer, not to write the user's part.

Which tokens are the assistant's? The template knows: a training template marks them with
``{% generation %} ... {% endgeneration %}``, and ``apply_chat_template(..., return_assistant_tokens_mask=True)``
returns a 0/1 mask over the tokens. SmolLM2's own template has no such markers, so the course supplies
:data:`SMOLLM2_TRAINING_TEMPLATE`: the same text, character for character (tested), with the markers. Each
assistant turn's ``<|im_end|>`` is inside them, so the model also learns to stop.

:func:`trl_finetune` runs the same data through TRL's ``SFTTrainer``; chapter 8 and the tests show both engines
give the same losses step by step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .sft import IGNORE_INDEX
from .validate import not_a_str, positive_int, read_text_file

#: SmolLM2-Instruct's chat template (ChatML with a default system prompt), with generation markers around each
#: assistant reply and its end-of-turn token: what ``return_assistant_tokens_mask`` and TRL's
#: ``assistant_only_loss=True`` need.
SMOLLM2_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

ROLES = ("system", "user", "assistant")


def training_template(tok) -> str:
    """The chat template to train ``tok``'s model with: its own when it has generation markers, the course's
    :data:`SMOLLM2_TRAINING_TEMPLATE` for SmolLM2's (the same text, with the markers).

    Raises:
        ValueError: any other template without markers (the message says how to supply one).
    """
    own = getattr(tok, "chat_template", None) or ""
    if "{% generation %}" in own:
        return own
    if "<|im_start|>" in own and "SmolLM" in own:
        return SMOLLM2_TRAINING_TEMPLATE
    raise ValueError("This tokenizer's chat template has no {% generation %} markers, so the assistant's tokens "
                     "cannot be found. Pass template= a copy of it with {% generation %} ... {% endgeneration %} "
                     "around each assistant message's content (see chat.SMOLLM2_TRAINING_TEMPLATE).")


def check_conversation(messages: Sequence[Mapping], where: str = "a conversation") -> None:
    """Refuse what cannot train: no messages, an unknown role, non-text content, or no assistant turn.

    Raises:
        ValueError: naming the message and the fix.
    """
    if messages is None or isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise TypeError(f"{where} must be a list of messages, got {type(messages).__name__} {messages!r:.80}: pass "
                        "e.g. [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}].")
    if not messages:
        raise ValueError(f"{where} has no messages: a row needs {{'messages': [{{'role': 'user', ...}}, ...]}}.")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}, message {i}: {m!r} needs a 'role' in {ROLES} and a text 'content'.")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where} has no assistant message: there is nothing to learn (the loss is on the "
                         "assistant's turns only).")


def tokenize_conversation(tok, messages: Sequence[Mapping], max_len: int, template: str | None = None) -> dict:
    """One training example from a conversation: ``input_ids`` = the chat template's tokens, ``labels`` = the
    same ids on the assistant's tokens and -100 elsewhere. Longer than ``max_len``: the end is cut (the start,
    with the first question and answer, is kept).

    Args:
        template: a chat template with generation markers (default :func:`training_template` of ``tok``).

    Raises:
        ValueError: a malformed conversation, a template without generation markers, or a cut that leaves no
            assistant token.
    """
    check_conversation(messages)
    positive_int("max_len", max_len, "pass the token budget per example, e.g. max_len=256")
    if template is not None and not isinstance(template, str):
        raise TypeError(f"template must be a chat template (a Jinja str), got {type(template).__name__}: pass e.g. "
                        "chat.SMOLLM2_TRAINING_TEMPLATE, or None for the tokenizer's.")
    template = template or training_template(tok)
    if "{% generation %}" not in template:
        raise ValueError("The chat template has no {% generation %} markers, so the assistant's tokens cannot be "
                         "found: use chat.SMOLLM2_TRAINING_TEMPLATE or add the markers around the assistant content.")
    out = tok.apply_chat_template(list(messages), chat_template=template, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    truncated = len(ids) > max_len
    ids, mask = ids[:max_len], mask[:max_len]
    if not any(mask):
        raise ValueError(f"No assistant token left in the first max_len={max_len} tokens of a conversation of "
                         f"{len(out['input_ids'])}: raise max_len or shorten the first turns.")
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    return {"input_ids": ids, "labels": labels, "weight": 1.0, "truncated": truncated}


def build_chat_dataset(tok, conversations: Sequence[Sequence[Mapping]], max_len: int,
                       template: str | None = None) -> list[dict]:
    """Tokenize conversations with :func:`tokenize_conversation` (a list of examples ``sft.train`` takes); warns
    once with the number cut to ``max_len``.

    Raises:
        ValueError: no conversations, or a bad one (its index is in the message).
    """
    import warnings

    not_a_str("conversations", conversations, "pass a list of conversations (each a list of messages)")
    if len(conversations) == 0:
        raise ValueError("The dataset is empty: pass at least one conversation.")
    positive_int("max_len", max_len, "pass the token budget per example, e.g. max_len=256")
    data = []
    for i, conv in enumerate(conversations):
        try:
            data.append(tokenize_conversation(tok, conv, max_len, template))
        except ValueError as err:
            raise ValueError(f"Conversation {i}: {err}") from None
    n_cut = sum(d["truncated"] for d in data)
    if n_cut:
        warnings.warn(f"{n_cut} of {len(data)} conversations were longer than max_len={max_len} tokens; their ends "
                      "were cut (raise max_len to keep them whole).", stacklevel=2)
    return data


def show_trained(tok, example: Mapping, start: str = "[", end: str = "]") -> str:
    """The example's text with each run of trained tokens (label not -100) between ``start`` and ``end``: what
    the loss sees, at a glance."""
    out, inside = [], False
    for t, label in zip(example["input_ids"], example["labels"]):
        trained = label != IGNORE_INDEX
        if trained != inside:
            out.append(start if trained else end)
            inside = trained
        out.append(tok.decode([t]))
    return "".join(out) + (end if inside else "")


def pack(examples: Sequence[dict], max_len: int) -> list[dict]:
    """Packing: put several short examples in one row of at most ``max_len`` tokens (first fit, longest first),
    so fewer pad tokens are computed. Each row carries ``position_ids`` that restart at 0 for every example:
    transformers then lets each token attend only within its own example (a block-diagonal causal mask), and
    the loss is the loss of the unpacked examples (tested).

    Raises:
        ValueError: an example longer than ``max_len``, or per-example loss weights (a packed row has one).
    """
    not_a_str("examples", examples, "pass build_chat_dataset(...)'s examples")
    positive_int("max_len", max_len, "pass the token budget per packed row, e.g. max_len=512")
    if any(float(e.get("weight", 1.0)) != 1.0 for e in examples):
        raise ValueError("pack() puts several examples in one row, which has one loss weight: pack examples "
                         "without sample weights, or train them unpacked.")
    rows: list[list[dict]] = []
    for e in sorted(examples, key=lambda e: -len(e["input_ids"])):
        n = len(e["input_ids"])
        if n > max_len:
            raise ValueError(f"An example has {n} tokens, more than max_len={max_len}: tokenize with that max_len.")
        for row in rows:
            if sum(len(x["input_ids"]) for x in row) + n <= max_len:
                row.append(e)
                break
        else:
            rows.append([e])
    packed = []
    for row in rows:
        ids, labels, pos = [], [], []
        for e in row:
            ids += e["input_ids"]
            labels += [IGNORE_INDEX] + list(e["labels"][1:])  # nothing predicts an example's first token
            pos += list(range(len(e["input_ids"])))
        packed.append({"input_ids": ids, "labels": labels, "position_ids": pos, "weight": 1.0,
                       "truncated": any(e.get("truncated", False) for e in row)})
    return packed


def load_conversations(path: str | Path, limit: int | None = None) -> list[list[dict]]:
    """The ``messages`` of each row of a JSONL file.

    Raises:
        FileNotFoundError / IsADirectoryError: a missing file, or a folder.
        ValueError: a bad ``limit``, an empty file, a line that is not a JSON object or a row without ``messages``
            (file and line number in the message).
    """
    if limit is not None:
        positive_int("limit", limit, "pass e.g. limit=100, or limit=None for every conversation")
    convs = []
    for where, row in _jsonl_rows(path):
        if "messages" not in row:
            raise ValueError(f"{where}: a chat row needs 'messages' (a list of {{'role', 'content'}}).")
        check_conversation(row["messages"], where)
        convs.append(row["messages"])
    if not convs:
        raise ValueError(f"{path} holds no conversation: write one JSON object per line, e.g. "
                         '{"messages": [{"role": "user", "content": "Hi"}, '
                         '{"role": "assistant", "content": "Hello!"}]}.')
    return convs[:limit] if limit else convs


def _jsonl_rows(path: str | Path):
    """``(file:line, row)`` for each non-blank line of a JSONL file, every line a JSON object."""
    text = read_text_file("data file", path, "pass a JSONL file (one JSON object per line)")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            hint = (" The file looks like one JSON array; JSONL has one object per line."
                    if line.lstrip().startswith("[") else "")
            raise ValueError(f"{where}: not valid JSON ({err.msg}, column {err.colno}).{hint}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: {row!r:.60} is not a JSON object; each line must be one, e.g. "
                             '{"messages": [...]}.')
        yield where, row


def is_chat_file(path: str | Path) -> bool:
    """Whether a JSONL file's first row is a chat row (has ``messages``)."""
    for _, row in _jsonl_rows(path):
        return "messages" in row
    return False


def conversations_from_pairs(pairs: Sequence[tuple[str, str]], turns: int = 2) -> list[list[dict]]:
    """Multi-turn conversations from (instruction, answer) pairs: ``turns`` consecutive pairs become one
    conversation of ``turns`` user/assistant exchanges (the chapter's data, in the chat format)."""
    positive_int("turns", turns, "pass e.g. turns=2 (exchanges per conversation)")
    not_a_str("pairs", pairs, "pass a list of (instruction, answer) pairs")
    for i, p in enumerate(pairs):
        if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise TypeError(f"pair {i} is {p!r:.80}; each pair is (instruction, answer), two str.")
    if len(pairs) < turns:
        raise ValueError(f"{len(pairs)} pairs cannot make one conversation of turns={turns} exchanges: pass at "
                         f"least {turns} pairs, or fewer turns.")
    convs = []
    for i in range(0, len(pairs) - turns + 1, turns):
        convs.append([m for q, a in pairs[i:i + turns]
                      for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})])
    return convs


# ---------------------------------------------------------------------------------------------------------------
# The same run with TRL's SFTTrainer
# ---------------------------------------------------------------------------------------------------------------

def trl_finetune(model, tok, rows: Sequence[Mapping], cfg, *, template: str | None = None, max_len: int | None = None,
                 output_dir: str | None = None) -> list[float]:
    """Train ``model`` with TRL's ``SFTTrainer`` on raw ``rows`` (``{"prompt", "completion"}`` rows, trained on
    the completion only, or ``{"messages"}`` rows, trained on the assistant turns only with ``template``), with
    the settings of ``cfg`` (an ``sft.TrainConfig``). Returns the loss of every step, unrounded.

    TRL tokenizes the rows itself (cut to ``max_len`` tokens, as the course's data was). The rows go in exactly
    ``sft.step_indices``' order (a sequential sampler over the pre-ordered list), with the same AdamW, schedule,
    clipping and mixed precision (``sft.resolve_autocast``) as ``sft.train``, so the two engines see the same
    batches and should give the same losses: to float32 rounding on a CPU, to the 16-bit format's on a GPU.

    Raises:
        ValueError: ``cfg.grad_accum != 1`` (the comparison is one micro-batch per step).
    """
    not_a_str("rows", rows, "pass a list of {'prompt', 'completion'} or {'messages'} rows")
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        raise ValueError(f"trl_finetune needs a non-empty list of dict rows ({{'prompt', 'completion'}} or "
                         f"{{'messages'}}), got {type(rows).__name__} of {len(rows)}.")
    if max_len is not None:
        positive_int("max_len", max_len, "pass e.g. max_len=256, or None for TRL's default")
    if cfg.grad_accum != 1:
        raise ValueError("trl_finetune compares one micro-batch per step: use grad_accum=1.")
    import copy
    import tempfile

    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer

    from .sft import resolve_autocast, step_indices, upcast_trainable

    chat = "messages" in rows[0]
    amp = resolve_autocast(model, cfg)
    upcast_trainable([p for p in model.parameters() if p.requires_grad])  # float32 master weights, as sft.train
    ordered = [dict(rows[i]) for s in range(cfg.steps) for i in step_indices(s, len(rows), cfg.batch_size, cfg.seed)]
    losses: list[float] = []

    class InOrderSFTTrainer(SFTTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append((loss[0] if return_outputs else loss).item())
            return loss

    args = SFTConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="trl-"), max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1, learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule,
        max_grad_norm=cfg.max_grad_norm or 0.0, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=next(model.parameters()).device.type == "cpu", seed=cfg.seed, disable_tqdm=True,
        dataloader_pin_memory=False, max_length=max_len, assistant_only_loss=chat,
        completion_only_loss=None if chat else True, bf16=amp == torch.bfloat16, fp16=amp == torch.float16)
    if chat:  # TRL reads the template from the tokenizer: a copy gets the one with generation markers
        template = template or training_template(tok)
        tok = copy.deepcopy(tok)
        tok.chat_template = template
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar
    from transformers.trainer_callback import PrinterCallback

    disable_progress_bar()  # TRL's tokenizing passes; the course prints its own summary
    try:
        trainer = InOrderSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(ordered),
                                    processing_class=tok)
    finally:
        enable_progress_bar()
    trainer.remove_callback(PrinterCallback)  # no log dict per step
    trainer.train()
    model.eval()
    return losses
