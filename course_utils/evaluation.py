"""An evaluation harness that every fine-tune in the course calls before and after training.

Fine-tuning on a narrow task can quietly cost general ability (catastrophic forgetting, LLM Q&A §15). One set
of probes, run on the original and on the tuned model, shows both sides at once:

* **perplexity** of a held-out general text (the Python reference of chapter 6): language modelling itself;
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
import numbers
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files

import torch
import torch.nn.functional as F

from . import validate
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

    def __post_init__(self):
        for name in ("sentiment", "facts", "arithmetic", "max_new_tokens"):
            validate.positive_int(name, getattr(self, name), f"every probe needs at least one item, e.g. {name}=8")
        for name in ("ppl_tokens", "kl_tokens"):  # a next-token score needs two tokens
            validate.int_at_least(name, getattr(self, name), 2, f"pass e.g. {name}=256")


# ---------------------------------------------------------------------------------------------------------------
# Probe data
# ---------------------------------------------------------------------------------------------------------------

def load_facts(limit: int | None = None) -> list[dict]:
    """The course's factual questions (``course_utils/data/facts_qa.jsonl``): question, answer, aliases,
    category, difficulty. Shuffled with a fixed seed so any prefix mixes categories and difficulties.

    Raises:
        ValueError: ``limit`` below 1 (``None`` means all the questions).
    """
    if limit is not None:
        validate.positive_int("limit", limit, "pass how many questions to keep, or limit=None for all of them")
    path = files("course_utils.data") / "facts_qa.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(0).shuffle(rows)
    return rows[:limit] if limit else rows


def arithmetic_questions(n: int, seed: int = 0, digits: int = 1) -> list[dict]:
    """``n`` questions ``What is a + b?`` / ``a - b`` (``a >= b``) with ``digits``-digit numbers, and their
    answers (fixed seed). One digit is what a 135M model gets partly right; two digits it mostly gets wrong."""
    validate.positive_int("n", n, "pass how many questions to write, e.g. n=20")
    validate.positive_int("digits", digits, "pass e.g. digits=1 for one-digit sums")
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
    validate.a_str("reply", reply, "pass the model's reply text")
    validate.a_str("answer", answer, "pass the expected answer text")
    aliases = validate.str_list("aliases", aliases, "pass other accepted answers as a list, e.g. ['USA']",
                                allow_empty=True)
    r = f" {_normalize(reply)} "
    return any(f" {_normalize(a)} " in r for a in (answer, *aliases) if _normalize(a))


def final_number(text: str) -> str | None:
    """The number a reply gives as its answer: the first one after the last ``=`` or "answer is", else the last
    number in the reply (``"5 + 3 = 8"`` -> ``"8"``, ``"1,024"`` -> ``"1024"``); ``None`` without digits."""
    validate.a_str("text", text, "pass the model's reply text")
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
    _check_ids(ids)
    with torch.no_grad():
        logits = model(input_ids=ids[None].to(model_device(model))).logits[0, :-1].float()
    return F.log_softmax(logits, dim=-1).cpu()


def _check_ids(ids: torch.Tensor) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or len(ids) < 2:
        raise ValueError(f"ids must be a 1-D tensor of at least 2 token ids, got {getattr(ids, 'shape', ids)!r}: "
                         "pass e.g. tok(text, return_tensors='pt').input_ids[0].")


def kl_per_position(model, ids: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``[T-1]``: KL(tuned || original) of the next-token distribution at each position, in nats.

    KL(p || q) = sum_v p(v) (log p(v) - log q(v)) with p the tuned model: large where the tuned model puts
    probability the original did not.

    Raises:
        ValueError: a reference computed on other ids (or with another tokenizer).
    """
    if not isinstance(reference, torch.Tensor):
        raise TypeError(f"reference must be the original model's log-probs (a tensor), got {type(reference).__name__}"
                        ": compute it with next_token_logprobs(original_model, ids).")
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

    What they have in common says what fine-tuning changed (chapter 9 takes this further with URIAL's token
    shift)."""
    validate.positive_int("k", k, "pass how many positions to show, e.g. k=10")
    validate.positive_int("context", context, "pass how many tokens of text to show before each, e.g. context=6")
    _check_ids(ids)
    if not isinstance(kl, torch.Tensor) or kl.shape != (len(ids) - 1,):
        raise ValueError(f"kl must have one value per next-token position of ids, shape ({len(ids) - 1},), got "
                         f"{getattr(kl, 'shape', kl)!r}: pass kl_per_position(model, ids, reference) for the same ids.")
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

        if not isinstance(self.sizes, EvalSizes):
            raise TypeError(f"sizes must be an EvalSizes, got {type(self.sizes).__name__}: pass "
                            "config.sizes('evaluation') or EvalSizes(sentiment=..., ...).")
        validate.not_a_str("instructions", self.instructions, "pass a list of {instruction, input, output} dicts")
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

        validate.a_str("name", name, "name the model for the results table, e.g. 'original'")
        if isinstance(probes, str):
            raise TypeError(f"probes must be a list of probe names, got the str {probes!r}: pass [{probes!r}].")
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
    validate.integer("n", n, "pass the number of items the accuracy was measured on")
    validate.finite_float("accuracy", accuracy, "pass a share of correct answers in [0, 1]")
    if n < 1 or not 0 <= accuracy <= 1:
        raise ValueError(f"Need n >= 1 and an accuracy in [0, 1], got n={n}, accuracy={accuracy}.")
    return (accuracy * (1 - accuracy) / n) ** 0.5


def _check_rows(rows: Sequence[Mapping]) -> None:
    """Result rows as :meth:`Harness.evaluate` returns them: dicts with a ``model`` name and numeric metrics."""
    validate.not_a_str("rows", rows, "pass a list of results from Harness.evaluate")
    validate.non_empty("rows", rows, "pass at least one result from Harness.evaluate")
    for r in rows:
        if not isinstance(r, Mapping) or "model" not in r:
            raise ValueError(f"Each row must be a dict with a 'model' name, as Harness.evaluate returns, got {r!r}.")
        bad = [m for m in METRICS if m in r and (isinstance(r[m], bool) or not isinstance(r[m], numbers.Real))]
        if bad:
            raise TypeError(f"Row {r['model']!r} has a metric that is not a number: {bad[0]}={r[bad[0]]!r}; "
                            "store each metric as a float, as Harness.evaluate does.")


def format_results(rows: Sequence[Mapping]) -> str:
    """A plain-text table, one row per evaluated model, one column per metric that any row has."""
    _check_rows(rows)
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

    _check_rows(rows)
    validate.integer("baseline", baseline, "pass the index of the reference row, e.g. baseline=0")
    if not 0 <= baseline < len(rows):
        raise ValueError(f"baseline={baseline} is not a row index of the {len(rows)} rows: pass 0..{len(rows) - 1}.")

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
