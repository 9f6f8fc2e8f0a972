"""An evaluation harness that every fine-tune in the course calls before and after training.

Fine-tuning on a narrow task can quietly cost general ability (catastrophic forgetting, LLM Q&A §15). One set
of probes, run on the original and on the tuned model, shows both sides at once:

* **perplexity** of a held-out general text (the Python reference of chapter 5): language modelling itself;
* **sentiment** accuracy, zero-shot through chapter 2's template and verbalizer;
* **facts**: short factual questions written for the course, answered greedily (correct if the answer or an
  alias appears in the reply);
* **arithmetic**: one-digit sums and differences, exact match on the reply's final number;
* **instructions**: ROUGE-L of the replies to held-out instructions against their references (optional);
* **KL** between the tuned and the original model's next-token distributions on the general text: how far the
  model moved, whatever the probes happen to test.

    harness = Harness(tok, sizes("evaluation", "cpu"))
    harness.set_reference(model)                # the original model: its KL reference
    before = harness.evaluate(model, "original")
    ...fine-tune...
    after = harness.evaluate(model, "LoRA r=8")
    print(format_results([before, after])); plot_results([before, after])
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files

import torch
import torch.nn.functional as F

from .device import model_device

#: metric name -> (label for tables, True when higher is better)
METRICS = {
    "perplexity": ("general-text perplexity", False),
    "sentiment": ("sentiment accuracy", True),
    "facts": ("factual QA accuracy", True),
    "arithmetic": ("arithmetic accuracy", True),
    "instructions": ("held-out instructions ROUGE-L", True),
    "kl": ("KL to the original (nats/token)", False),
}


@dataclass(frozen=True)
class EvalSizes:
    """How many items each probe uses."""

    sentiment: int
    facts: int
    arithmetic: int
    ppl_tokens: int
    kl_tokens: int
    max_new_tokens: int = 16


# ---------------------------------------------------------------------------------------------------------------
# Probe data
# ---------------------------------------------------------------------------------------------------------------

def load_facts(limit: int | None = None) -> list[dict]:
    """The course's factual questions (``course_utils/data/facts_qa.jsonl``): question, answer, aliases,
    category, difficulty. Shuffled with a fixed seed so any prefix mixes categories and difficulties."""
    path = files("course_utils.data") / "facts_qa.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(0).shuffle(rows)
    return rows[:limit] if limit else rows


def arithmetic_questions(n: int, seed: int = 0, digits: int = 1) -> list[dict]:
    """``n`` questions ``What is a + b?`` / ``a - b`` (``a >= b``) with ``digits``-digit numbers, and their
    answers (fixed seed). One digit is what a 135M model gets partly right; two digits it mostly gets wrong."""
    rng = random.Random(seed)
    lo, hi = (2, 9) if digits == 1 else (10 ** (digits - 1), 10 ** digits - 1)
    out = []
    for _ in range(n):
        a, b = sorted((rng.randint(lo, hi), rng.randint(lo, hi)), reverse=True)
        op = rng.choice("+-")
        out.append({"question": f"What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a - b)})
    return out


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def answer_matches(reply: str, answer: str, aliases: Sequence[str] = ()) -> bool:
    """Whether the reply contains the answer or an alias as whole words (case and punctuation ignored)."""
    r = f" {_normalize(reply)} "
    return any(f" {_normalize(a)} " in r for a in (answer, *aliases) if _normalize(a))


def final_number(text: str) -> str | None:
    """The number a reply gives as its answer: the first one after the last ``=`` or "answer is", else the last
    number in the reply (``"5 + 3 = 8"`` -> ``"8"``, ``"1,024"`` -> ``"1024"``); ``None`` without digits."""
    low = text.lower()
    cut = max(low.rfind("="), low.rfind("answer is"))
    if cut >= 0:
        m = re.search(r"-?\d[\d,]*", text[cut:])
        if m:
            return m.group(0).replace(",", "")
    nums = re.findall(r"-?\d[\d,]*", text)
    return nums[-1].replace(",", "") if nums else None


# ---------------------------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------------------------

def next_token_logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """``[T-1, V]`` log-probabilities of each next token over a 1-D id sequence (one forward; float32)."""
    with torch.no_grad():
        logits = model(input_ids=ids[None].to(model_device(model))).logits[0, :-1].float()
    return F.log_softmax(logits, dim=-1).cpu()


def kl_per_position(model, ids: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``[T-1]``: KL(tuned || original) of the next-token distribution at each position, in nats.

    KL(p || q) = sum_v p(v) (log p(v) - log q(v)) with p the tuned model: large where the tuned model puts
    probability the original did not.

    Raises:
        ValueError: a reference computed on other ids (or with another tokenizer).
    """
    logp = next_token_logprobs(model, ids)
    if logp.shape != reference.shape:
        raise ValueError(f"Reference log-probs have shape {tuple(reference.shape)}, the model gives "
                         f"{tuple(logp.shape)}: compute the reference on the same ids with the same tokenizer.")
    return (logp.exp() * (logp - reference)).sum(-1)


def kl_to_reference(model, ids: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean of :func:`kl_per_position`: how far the tuned model moved, in nats per token."""
    return kl_per_position(model, ids, reference).mean().item()


def most_shifted(tok, ids: torch.Tensor, kl: torch.Tensor, k: int = 10, context: int = 6) -> list[tuple]:
    """The ``k`` positions where the tuned model's prediction moved most: ``(kl, preceding text, next token)``.

    What they have in common says what fine-tuning changed (chapter 8 takes this further with URIAL's token
    shift)."""
    top = torch.topk(kl, min(k, len(kl))).indices.tolist()
    return [(kl[i].item(), tok.decode(ids[max(0, i + 1 - context):i + 1]), tok.decode(ids[i + 1:i + 2]))
            for i in top]


def _chat_replies(model, tok, questions: Sequence[str], max_new_tokens: int, suffix: str) -> list[str]:
    from .models import generate_batch

    return generate_batch(model, tok, [q + suffix for q in questions], max_new_tokens=max_new_tokens, chat=True)


@dataclass
class Harness:
    """The probes, built once (tokenized texts, questions) and run on any model with :meth:`evaluate`.

    Attributes:
        tok: the tokenizer shared by every model evaluated.
        sizes: probe sizes (``config.sizes("evaluation")``).
        instructions: optional held-out ``{instruction, input, output}`` examples, answered in Alpaca's template.
    """

    tok: object
    sizes: EvalSizes
    instructions: Sequence[Mapping] = ()
    reference: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        from .data import load_sentiment
        from .data.corpus import load_corpus

        ids = self.tok(load_corpus("test"), return_tensors="pt").input_ids[0]
        if len(ids) < self.sizes.ppl_tokens:
            raise ValueError(f"The general text has {len(ids)} tokens; ppl_tokens={self.sizes.ppl_tokens} is too many.")
        self.text_ids = ids[: self.sizes.ppl_tokens]
        self.kl_ids = ids[: self.sizes.kl_tokens]
        self.sentiment = load_sentiment("test", limit=self.sizes.sentiment)
        self.facts = load_facts(self.sizes.facts)
        self.arithmetic = arithmetic_questions(self.sizes.arithmetic)

    def noise(self, row: Mapping) -> dict[str, float]:
        """The standard error of each accuracy in a result row, given how many items each probe used."""
        n = {"sentiment": len(self.sentiment), "facts": len(self.facts), "arithmetic": len(self.arithmetic)}
        return {k: standard_error(row[k], n[k]) for k in n if k in row}

    def set_reference(self, model) -> None:
        """Keep the original model's next-token log-probs on the KL text (the tuned model is compared to them)."""
        self.reference = next_token_logprobs(model, self.kl_ids)

    def perplexity(self, model) -> float:
        """Perplexity of the general text (sliding window of 512 tokens, stride 256)."""
        from .long_context import sliding_window_perplexity

        window = min(512, len(self.text_ids))
        return sliding_window_perplexity(model, self.text_ids, window=window, stride=max(1, window // 2)).perplexity

    def sentiment_accuracy(self, model) -> float:
        """Zero-shot accuracy with chapter 2's sentiment template and label words."""
        from .prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, PromptClassifier

        clf = PromptClassifier(model, self.tok, SENTIMENT_TEMPLATE, SENTIMENT_WORDS)
        return clf.accuracy([e.text for e in self.sentiment], [e.label for e in self.sentiment])

    def facts_accuracy(self, model) -> float:
        """Share of factual questions whose greedy reply contains the answer (or an alias)."""
        replies = _chat_replies(model, self.tok, [f["question"] for f in self.facts], self.sizes.max_new_tokens,
                                " Answer in a few words.")
        return sum(answer_matches(r, f["answer"], f.get("aliases", ())) for r, f in zip(replies, self.facts)) / len(
            self.facts)

    def arithmetic_accuracy(self, model) -> float:
        """Share of sums and differences whose reply's final number is right."""
        replies = _chat_replies(model, self.tok, [q["question"] for q in self.arithmetic], 32,
                                " Answer with the number only.")
        return sum(final_number(r) == q["answer"] for r, q in zip(replies, self.arithmetic)) / len(self.arithmetic)

    def instructions_rouge(self, model) -> float:
        """Mean ROUGE-L of greedy replies (Alpaca template, raw text) to the held-out instructions' references."""
        from .instructions import alpaca_prompt
        from .models import generate_batch
        from .rouge import rouge_l

        prompts = [alpaca_prompt(r["instruction"], r.get("input", "")) for r in self.instructions]
        replies = generate_batch(model, self.tok, prompts, max_new_tokens=2 * self.sizes.max_new_tokens, chat=False,
                                 repetition_penalty=1.2)
        return sum(rouge_l(r["output"], a) for r, a in zip(self.instructions, replies)) / len(replies)

    def evaluate(self, model, name: str, probes: Sequence[str] | None = None, progress: bool = True) -> dict:
        """Run the probes (default: all that apply) and return ``{"model": name, metric: value, ...}``; a
        progress bar names the probe running (``progress=False``: none).

        ``kl`` needs :meth:`set_reference` first; ``instructions`` needs held-out instructions.
        """
        from tqdm.auto import tqdm

        probes = list(probes) if probes is not None else [
            m for m in METRICS if (m != "kl" or self.reference is not None) and (m != "instructions" or
                                                                                 self.instructions)]
        unknown = set(probes) - set(METRICS)
        if unknown:
            raise ValueError(f"Unknown probe(s) {sorted(unknown)}; choose from {list(METRICS)}.")
        if "kl" in probes and self.reference is None:
            raise ValueError("The KL probe needs the original model's distributions: call set_reference(model) "
                             "before fine-tuning.")
        if "instructions" in probes and not self.instructions:
            raise ValueError("The instructions probe needs held-out examples: Harness(..., instructions=[...]).")
        run = {"perplexity": self.perplexity, "sentiment": self.sentiment_accuracy, "facts": self.facts_accuracy,
               "arithmetic": self.arithmetic_accuracy, "instructions": self.instructions_rouge,
               "kl": lambda m: kl_to_reference(m, self.kl_ids, self.reference)}
        was_training = model.training
        model.eval()
        row = {"model": name}
        try:
            with tqdm(probes, desc=f"evaluating {name}", disable=not progress, leave=False) as bar:
                for p in bar:
                    bar.set_postfix_str(p)
                    row[p] = run[p](model)
            return row
        finally:
            model.train(was_training)


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------

def standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy measured on ``n`` items: differences
    smaller than about twice this are noise.

    Raises:
        ValueError: ``n < 1`` or an accuracy outside [0, 1].
    """
    if n < 1 or not 0 <= accuracy <= 1:
        raise ValueError(f"Need n >= 1 and an accuracy in [0, 1], got n={n}, accuracy={accuracy}.")
    return (accuracy * (1 - accuracy) / n) ** 0.5


def format_results(rows: Sequence[Mapping]) -> str:
    """A plain-text table, one row per evaluated model, one column per metric that any row has."""
    cols = [m for m in METRICS if any(m in r for r in rows)]
    head = f"{'model':24}" + "".join(f"{m:>13}" for m in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(f"{r[m]:>13.3f}" if m in r else f"{'-':>13}" for m in cols)
        lines.append(f"{str(r['model'])[:24]:24}{cells}")
    return "\n".join(lines)


def plot_results(rows: Sequence[Mapping], baseline: int = 0):
    """One small bar chart per metric, the ``baseline`` row's value as a dashed line; arrows say which way is
    better. Returns the figure."""
    import matplotlib.pyplot as plt

    cols = [m for m in METRICS if any(m in r for r in rows)]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 3.2), squeeze=False)
    names = [str(r["model"]) for r in rows]
    for ax, m in zip(axes[0], cols):
        vals = [r.get(m, float("nan")) for r in rows]
        ax.bar(range(len(rows)), vals, color=[f"C{i}" for i in range(len(rows))])
        if m in rows[baseline]:
            ax.axhline(rows[baseline][m], color="grey", ls="--", lw=1)
        label, higher = METRICS[m]
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    return fig
