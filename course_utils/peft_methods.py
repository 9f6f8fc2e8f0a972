"""Chapter 4's comparison: one task, several ways to fine-tune, measured the same way.

    rows, tuned = compare_methods(model, tok, train_data, texts, labels, steps=60, batch_size=8)

Every method starts from a fresh copy of the same model, trains with the course engine (:func:`sft.train`) for the
same steps on the same batches, and is scored with chapter 2's answer search on the same test split. Each row
reports trainable parameters, the measured peak memory of one training step, seconds per step, accuracy and the
inference latency of the model as it would be deployed (LoRA merged, adapters kept, prefix in the cache), for a
short input (4 tokens: close to one generation step, where extra layers in series show most).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import prompting as pr
from course_utils import sft
from course_utils.adapters import inject_adapters
from course_utils.device import model_device
from course_utils.latency import compare_latency
from course_utils.lora import count_parameters, inject_lora, merge_lora
from course_utils.memory import measure_training_step
from course_utils.prefix import prefix_tuning
from course_utils.validate import non_empty, not_a_str, positive_float, positive_int, same_length

KINDS = ("full", "lora", "adapter", "prefix")


@dataclass(frozen=True)
class Method:
    """A fine-tuning method: ``kind`` is ``full``, ``lora``, ``adapter`` or ``prefix``; ``size`` is the LoRA rank,
    the adapter bottleneck or the number of prefix tokens; ``lr`` its learning rate (the usual ranges: small for
    full fine-tuning, larger for the few parameters of the efficient methods)."""

    kind: str
    size: int = 0
    lr: float = 1e-3

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown method kind {self.kind!r}; use 'full', 'lora', 'adapter' or 'prefix'.")
        if self.kind != "full":
            what = {"lora": "the LoRA rank", "adapter": "the adapter bottleneck", "prefix": "the prefix tokens"}
            positive_int("size", self.size, f"size is {what[self.kind]}: pass e.g. Method({self.kind!r}, 16)")
        positive_float("lr", self.lr, "pass e.g. lr=1e-3")

    def build(self, model: nn.Module, tok=None) -> nn.Module:
        """A fresh copy of ``model`` prepared for this method (only its parameters trainable). Prefix tuning
        starts from the activations of :data:`PREFIX_INIT` (needs ``tok``), as Li & Liang do."""
        m = copy.deepcopy(model)
        if self.kind == "full":
            return m.requires_grad_(True)
        if self.kind == "lora":
            return inject_lora(m, ("q_proj", "v_proj"), r=self.size, alpha=2 * self.size)
        if self.kind == "adapter":
            return inject_adapters(m, bottleneck=self.size)
        if self.kind == "prefix":
            return prefix_tuning(m, num_virtual_tokens=self.size, init_text=PREFIX_INIT, tokenizer=tok)
        raise ValueError(f"Unknown method kind {self.kind!r}; use 'full', 'lora', 'adapter' or 'prefix'.")

    def deployable(self, model: nn.Module) -> nn.Module:
        """The model as it would be served: LoRA merged into the weights (a copy), the others as they are."""
        return merge_lora(copy.deepcopy(model)) if self.kind == "lora" else model


#: Task words the prefix starts from (Li & Liang: real words beat random init, which breaks the frozen model).
PREFIX_INIT = "Classify the sentiment of each review as positive, neutral or negative."

#: The chapter's table: full fine-tuning, LoRA at two ranks, Houlsby adapters, prefix tuning.
METHODS: dict[str, Method] = {
    "full fine-tuning": Method("full", lr=5e-5),
    "LoRA r=4": Method("lora", 4, lr=1e-3),
    "LoRA r=16": Method("lora", 16, lr=1e-3),
    "adapter b=16": Method("adapter", 16, lr=1e-3),
    "prefix 20 tokens": Method("prefix", 20, lr=1e-2),
}


def prompt_accuracy(model: nn.Module, tok, texts: Sequence[str], labels: Sequence[str],
                    template: str, label_words: dict, plain: bool = False) -> float:
    """Chapter 2's zero-shot scoring on ``model``. ``plain=True`` uses one ordinary forward per (text, answer)
    (:func:`prompting.answer_search_naive`), needed for prefix tuning, whose prefix already is the KV cache."""
    not_a_str("texts", texts)
    not_a_str("labels", labels)
    same_length("texts", texts, "labels", labels, "give one label per text")
    non_empty("texts", texts, "pass the test texts")
    verbalizer = pr.Verbalizer(label_words)
    if not plain:
        return pr.PromptClassifier(model, tok, template, verbalizer, batch_size=32).accuracy(texts, labels)
    z = pr.answer_search_naive(model, tok, pr.Template(template), texts, verbalizer.answers)
    return pr.accuracy(F.log_softmax(verbalizer.aggregate(z), dim=-1), labels, verbalizer)


def compare_methods(model: nn.Module, tok, train_data: Sequence[dict], texts: Sequence[str],
                    labels: Sequence[str], *, steps: int, batch_size: int, template: str, label_words: dict,
                    methods: dict[str, Method] | None = None, measure_memory: bool = True,
                    latency_tokens: int = 4, seed: int = 0) -> tuple[list[dict], dict[str, nn.Module]]:
    """Train and measure every method; returns the table rows and the tuned models (by method name).

    Raises:
        ValueError: an unknown method kind, or empty data (from the engine).
    """
    for name, value in (("train_data", train_data), ("texts", texts), ("labels", labels)):
        not_a_str(name, value)
        non_empty(name, value)
    same_length("texts", texts, "labels", labels, "give one label per test text")
    positive_int("steps", steps, "pass e.g. steps=60")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    positive_int("latency_tokens", latency_tokens, "pass e.g. latency_tokens=4")
    if methods is not None and (not isinstance(methods, dict) or not methods
                                or not all(isinstance(m, Method) for m in methods.values())):
        raise TypeError(f"methods must be a non-empty dict {{name: Method}}, got {methods!r:.80}: pass e.g. "
                        "{'LoRA r=8': Method('lora', 8)}, or None for METHODS.")
    methods = methods or METHODS
    rows, tuned = [], {}
    probe = torch.randint(100, 1000, (1, latency_tokens), generator=torch.Generator().manual_seed(seed))
    seq_len = max(len(e["input_ids"]) for e in train_data)  # memory measured at the longest example's length
    for name, method in methods.items():
        torch.manual_seed(seed)  # each method's random init is independent of the methods run before it
        m = method.build(model, tok)
        counts = count_parameters(m)
        peak = None
        if measure_memory:
            peak = measure_training_step(copy.deepcopy(m), batch_size, seq_len, time_steps=0).peak
        cfg = sft.TrainConfig(steps=steps, batch_size=batch_size, lr=method.lr, warmup_steps=max(1, steps // 10),
                              plot=None, seed=seed)
        result = sft.train(m, train_data, cfg, pad_id=tok.pad_token_id)
        acc = prompt_accuracy(m, tok, texts, labels, template, label_words, plain=method.kind == "prefix")
        rows.append({"method": name, "trainable": counts["trainable"], "trainable %": counts["percent"],
                     "peak MB": None if peak is None else peak / 2**20, "s / step": result.seconds_per_step,
                     "final loss": result.losses[-1], "accuracy": acc})
        tuned[name] = m
    # Latency last, all models taking turns (a fair comparison on a shared machine).
    served = {"base": model, **{name: methods[name].deployable(m) for name, m in tuned.items()}}
    times = compare_latency(served, probe.to(model_device(model)))
    for row in rows:
        row["latency ms"] = 1000 * times[row["method"]]
        row["latency vs base"] = times[row["method"]] / times["base"]
    return rows, tuned


def format_rows(rows: Sequence[dict]) -> str:
    """The comparison as a fixed-width text table."""
    not_a_str("rows", rows)
    non_empty("rows", rows, "pass compare_methods(...)'s rows")
    cols = list(rows[0])
    fmt = {"trainable": "{:,}", "trainable %": "{:.3f}", "peak MB": "{:.0f}", "s / step": "{:.2f}",
           "final loss": "{:.3f}", "accuracy": "{:.3f}", "latency ms": "{:.1f}", "latency vs base": "{:.2f}x"}
    cells = [[r[c] if isinstance(r[c], str) or r[c] is None else fmt.get(c, "{}").format(r[c]) for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(str(row[i])) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
