"""Decoding, the repetition problem (复读机, LLM Q&A §5-7) and the rule-based adapter (Hewitt et al. 2024).

Repetition metrics, each a few lines (words or token ids both work)::

    distinct_n(texts, 2)      # Li et al. 2016: unique n-grams / all n-grams, over the whole set
    repetition_rate(texts)    # Welleck et al. 2020 seq-rep-4: 1 - unique/all 4-grams within each text, averaged
    rep_l(tokens, 128)        # share of tokens that already occurred in the previous 128
    find_loop(tokens)         # the longest stretch where a unit repeats back to back ("I'm a ... I'm a ...")

A sweep over ``generate``'s decoding controls (greedy, temperature, top-p, repetition penalty, no-repeat
n-grams) measures repetition against quality (perplexity under a scorer model); ``RuleBasedAdapter`` is
Hewitt et al.'s three rules as a ``transformers`` LogitsProcessor: raise end-of-sequence with length, penalise
tokens already generated, reweight a few tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, StoppingCriteria

from . import validate
from .device import encode, model_device
from .models import continuation_logits

Tokens = Sequence  # words (str) or token ids (int)
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the unit the text-level metrics count by default."""
    validate.a_str("text", text, "pass one text (a list of texts goes to distinct_n, repetition_rate, ...)")
    return _WORD.findall(text.lower())


def _units(x: str | Tokens) -> list:
    return words(x) if isinstance(x, str) else list(x)


def _check_n(n: int) -> None:
    validate.integer("n", n, "pass the n-gram size, e.g. n=2")
    if n < 1:
        raise ValueError(f"n-grams need n >= 1, not {n}.")


def ngrams(tokens: str | Tokens, n: int) -> list[tuple]:
    """The n-grams of a text (split by :func:`words`) or of a token list, in order."""
    _check_n(n)
    t = _units(tokens)
    return [tuple(t[i:i + n]) for i in range(len(t) - n + 1)]


# ---------------------------------------------------------------------------------------------------------------
# Repetition metrics
# ---------------------------------------------------------------------------------------------------------------

def distinct_n(texts: Sequence[str | Tokens], n: int) -> float:
    """distinct-n (Li et al. 2016): unique n-grams / all n-grams, pooled over every text (corpus level).

    1.0 means no n-gram is ever reused; a model that says the same thing to every prompt scores low even if
    each answer is varied inside. 0.0 for texts too short to have an n-gram.

    Raises:
        ValueError: ``n < 1``, or a bare string instead of a list of texts.
    """
    if isinstance(texts, str):
        raise ValueError("distinct_n takes a list of texts; wrap a single text as [text].")
    _check_n(n)
    validate.non_empty("texts", texts, "distinct_n takes a non-empty list of texts; pass at least one")
    grams = [g for t in texts for g in ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def seq_rep_n(tokens: str | Tokens, n: int = 4) -> float:
    """seq-rep-n (Welleck et al. 2020) of one continuation: 1 - unique n-grams / all n-grams.

    0.0 when no n-gram repeats; near 1.0 for a loop. Human text scores about 0.006 at n = 4 (WikiText-103).
    """
    grams = ngrams(tokens, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: Sequence[str | Tokens], n: int = 4) -> float:
    """Sequence-level repetition: the mean :func:`seq_rep_n` over texts (each judged on its own).

    Raises:
        ValueError: an empty list, or a bare string instead of a list.
    """
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("repetition_rate takes a non-empty list of texts.")
    return sum(seq_rep_n(t, n) for t in texts) / len(texts)


def rep_l(tokens: str | Tokens, window: int = 128) -> float:
    """rep/l (Welleck et al. 2020): the share of tokens that already occurred among the previous ``window``."""
    validate.positive_int("window", window, "pass e.g. window=128")
    t = _units(tokens)
    if len(t) < 2:
        return 0.0
    hits = sum(t[i] in t[max(0, i - window):i] for i in range(1, len(t)))
    return hits / (len(t) - 1)


@dataclass(frozen=True)
class Loop:
    """A unit of ``period`` tokens repeated ``repeats`` times back to back, starting at ``start``."""

    start: int
    period: int
    repeats: float

    @property
    def length(self) -> int:
        """Tokens covered by the loop."""
        return round(self.period * self.repeats)


def _check_loop_settings(min_repeats: float, max_period: int) -> None:
    validate.finite_float("min_repeats", min_repeats, "pass e.g. min_repeats=3")
    if min_repeats < 2:
        raise ValueError(f"min_repeats must be >= 2 (a loop repeats), not {min_repeats}.")
    validate.integer("max_period", max_period, "pass the longest repeated unit in tokens, e.g. max_period=64")
    if max_period < 1:
        raise ValueError(f"max_period must be >= 1, not {max_period}.")


def find_loop(tokens: str | Tokens, min_repeats: float = 3.0, max_period: int = 64, min_length: int = 6) -> Loop | None:
    """The longest stretch where a unit of 1..``max_period`` tokens repeats back to back at least
    ``min_repeats`` times and covers at least ``min_length`` tokens (``a b c a b c a b c`` is period 3,
    3 repeats), or ``None``. ``min_length`` keeps an ellipsis (``. . .``) or "very very very" from counting.

    A run where ``x[i] == x[i - p]`` for ``L`` consecutive positions is a unit of period ``p`` seen
    ``1 + L / p`` times. The shortest period wins among equally long loops (``a a a a a a`` is period 1).

    Raises:
        ValueError: ``min_repeats < 2`` (one occurrence is not a repetition) or ``max_period < 1``.
    """
    _check_loop_settings(min_repeats, max_period)
    validate.non_negative_int("min_length", min_length, "pass the fewest tokens a loop covers, e.g. min_length=6")
    t = _units(tokens)
    best: Loop | None = None
    for p in range(1, min(max_period, len(t) // 2) + 1):
        run = 0
        for i in range(p, len(t) + 1):
            if i < len(t) and t[i] == t[i - p]:
                run += 1
                continue
            reps = 1 + run / p
            if run and reps >= min_repeats and run + p >= min_length and (best is None or run + p > best.length):
                best = Loop(start=i - run - p, period=p, repeats=reps)
            run = 0
    return best


def loop_rate(texts: Sequence[str | Tokens], min_repeats: float = 3.0, max_period: int = 64,
              min_length: int = 6) -> float:
    """The share of texts that contain a loop (:func:`find_loop`)."""
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("loop_rate takes a non-empty list of texts.")
    return sum(find_loop(t, min_repeats, max_period, min_length) is not None for t in texts) / len(texts)


def remove_repeated_sentences(text: str) -> str:
    """Post-processing (后处理和过滤, LLM Q&A §7): drop every sentence (or line) already said once, keep order."""
    parts = re.split(r"(?<=[.!?\n])\s*", text)
    seen: set[str] = set()
    kept = []
    for s in parts:
        key = " ".join(words(s))
        if s.strip() and key not in seen:
            seen.add(key)
            kept.append(s.strip())
    return " ".join(kept)


def repetitive_version(text: str, times: int = 2) -> str:
    """The same text with every sentence said ``times`` times in a row: training data with the LLM Q&A's "data
    bias" (重复文本), used to show that a model fine-tuned on repetitive data repeats more.

    Raises:
        ValueError: ``times < 1``.
    """
    validate.a_str("text", text, "pass the text whose sentences to repeat")
    validate.positive_int("times", times, "pass e.g. times=2")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    return " ".join(" ".join([s] * times) for s in sentences)


class LoopStoppingCriteria(StoppingCriteria):
    """Stop generating a row as soon as its new tokens end in a loop (:func:`find_loop` on the tail).

    Pass it to ``generate(..., stopping_criteria=StoppingCriteriaList([LoopStoppingCriteria()]))``: a
    post-processing control that saves the tokens a looping model would waste. Only the last ``4 * max_period``
    tokens are read; ``prompt_length`` keeps the prompt out of them (0 reads the prompt's end too, which is
    harmless unless the prompt itself ends in a loop).
    """

    def __init__(self, prompt_length: int = 0, min_repeats: float = 3.0, max_period: int = 32):
        validate.non_negative_int("prompt_length", prompt_length, "pass the prompt's length in tokens (0: none)")
        _check_loop_settings(min_repeats, max_period)
        self.prompt_length, self.min_repeats, self.max_period = prompt_length, min_repeats, max_period

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        done = []
        for row in input_ids[:, self.prompt_length:].tolist():
            loop = find_loop(row[-self.max_period * 4:], self.min_repeats, self.max_period)
            done.append(loop is not None and loop.start + loop.length >= len(row[-self.max_period * 4:]))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# ---------------------------------------------------------------------------------------------------------------
# Cause: self-reinforcement (training objective)
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def self_reinforcement(model, tok, sentence: str, repeats: int = 8, prefix: str = "") -> list[float]:
    """The model's mean probability of each token of ``sentence`` at its 1st, 2nd, ... ``repeats``-th
    consecutive occurrence in the context (Xu et al. 2022, "Learning to break the loop").

    Under the next-token objective, text that is already in the context is easy to predict: the more often a
    sentence has been said, the more likely it is said again, which is how a loop feeds itself.

    Raises:
        ValueError: ``repeats < 2`` or an empty sentence.
    """
    validate.a_str("sentence", sentence, "pass one sentence to repeat")
    validate.a_str("prefix", prefix, "pass the text before the repeats, or '' for none")
    validate.integer("repeats", repeats, "pass e.g. repeats=8")
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2 to see a trend, not {repeats}.")
    piece = tok(" " + sentence.strip(), add_special_tokens=False)["input_ids"]
    if not sentence.strip() or not piece:
        raise ValueError("self_reinforcement needs a non-empty sentence.")
    head = tok(prefix, add_special_tokens=True)["input_ids"] if prefix else (
        [tok.bos_token_id] if tok.bos_token_id is not None else [])
    ids = torch.tensor([head + piece * repeats], device=model_device(model))
    probs = model(ids).logits[0, :-1].float().softmax(-1).gather(1, ids[0, 1:, None])[:, 0]
    out = []
    for k in range(repeats):
        start = len(head) + k * len(piece)
        lo = max(start - 1, 0)  # position start-1 predicts token `start`
        seg = probs[lo:start + len(piece) - 1]
        out.append(seg.mean().item())
    return out


# ---------------------------------------------------------------------------------------------------------------
# Decoding controls: a sweep
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodingSetting:
    """One way to decode: a name and the keyword arguments it passes to ``model.generate``."""

    name: str
    kwargs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        validate.non_empty_str("name", self.name, "name the setting for the table, e.g. 'top-p 0.9'")
        if not isinstance(self.kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict of generate() arguments, got {self.kwargs!r}: pass e.g. "
                            "{'do_sample': True, 'top_p': 0.9}.")
        # The generate() controls this module sweeps, checked here rather than deep inside generate().
        k = self.kwargs
        if "temperature" in k:
            validate.positive_float("temperature", k["temperature"], "pass e.g. temperature=0.7 (greedy: no sampling)")
        if "top_p" in k and not 0 < validate.finite_float("top_p", k["top_p"]) <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {k['top_p']!r}: pass e.g. top_p=0.9.")
        if "top_k" in k:
            validate.non_negative_int("top_k", k["top_k"], "pass e.g. top_k=50 (0 switches top-k off)")
        if "repetition_penalty" in k:
            validate.positive_float("repetition_penalty", k["repetition_penalty"], "pass e.g. 1.2 (1.0 is none)")
        if "no_repeat_ngram_size" in k:
            validate.non_negative_int("no_repeat_ngram_size", k["no_repeat_ngram_size"], "pass e.g. 3 (0 is none)")


#: The controls the LLM Q&A names (§7: noise / sampling, temperature, post-processing) and generate's penalties.
DECODING_SETTINGS: tuple[DecodingSetting, ...] = (
    DecodingSetting("greedy", {}),
    DecodingSetting("temperature 0.7", {"do_sample": True, "temperature": 0.7, "top_k": 0}),
    DecodingSetting("temperature 1.0", {"do_sample": True, "temperature": 1.0, "top_k": 0}),
    DecodingSetting("top-p 0.9", {"do_sample": True, "top_p": 0.9, "top_k": 0}),
    DecodingSetting("repetition penalty 1.2", {"repetition_penalty": 1.2}),
    DecodingSetting("repetition penalty 1.5", {"repetition_penalty": 1.5}),
    DecodingSetting("no-repeat 3-gram", {"no_repeat_ngram_size": 3}),
    DecodingSetting("no-repeat 5-gram", {"no_repeat_ngram_size": 5}),
)


@torch.no_grad()
def continuation_perplexity(model, tok, prompts: Sequence[str], continuations: Sequence[str],
                            chat: bool = True) -> float:
    """Perplexity of the continuations given their prompts under ``model`` (one row at a time, exact).

    Used as the *quality* axis of the decoding sweep: fluent text is likely under a language model. It is not
    the whole story: a loop is very likely too (which is why repetition is plotted against it).

    Raises:
        ValueError: lists of different lengths, or no continuation tokens at all.
    """
    from .sft import format_prompt

    validate.str_list("prompts", prompts, "pass a list of prompt texts", allow_empty=True)
    validate.str_list("continuations", continuations, "pass a list of continuation texts", allow_empty=True)
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations: pass one continuation "
                         "per prompt.")
    total, count = 0.0, 0
    for p, c in zip(prompts, continuations):
        head = tok(format_prompt(tok, p, chat), add_special_tokens=not chat)["input_ids"]
        body = tok(c, add_special_tokens=False)["input_ids"]
        if not body:
            continue
        ids = torch.tensor([head + body], device=model_device(model))
        logp = continuation_logits(model, ids, len(head) - 1).float().log_softmax(-1)
        total -= logp.gather(1, ids[0, len(head):, None]).sum().item()
        count += len(body)
    if count == 0:
        raise ValueError("No continuation has any token: nothing to score.")
    return float(torch.tensor(total / count).exp())


def text_stats(texts: Sequence[str], finished: Sequence[bool] | None = None) -> dict[str, float]:
    """Repetition and length of a set of generations: distinct-1/2, seq-rep-4, loop rate, mean words, and
    (given ``finished``) the end-of-sequence rate."""
    validate.not_a_str("texts", texts, "pass a list of generated texts")
    validate.non_empty("texts", texts, "pass at least one generated text")
    if finished is not None:
        validate.same_length("finished", finished, "texts", texts, "pass one end-of-sequence flag per text")
    stats = {"distinct-1": distinct_n(texts, 1), "distinct-2": distinct_n(texts, 2),
             "seq-rep-4": repetition_rate(texts, 4), "loop rate": loop_rate(texts),
             "words": sum(len(words(t)) for t in texts) / len(texts)}
    if finished is not None:
        stats["EOS rate"] = sum(finished) / len(finished)
    return stats


def decoding_sweep(model, tok, prompts: Sequence[str], settings: Sequence[DecodingSetting] = DECODING_SETTINGS,
                   max_new_tokens: int = 96, scorer=None, scorer_tok=None, chat: bool = True, seed: int = 0,
                   batch_size: int = 8, progress: bool = True) -> list[dict]:
    """Generate for every prompt with every decoding setting; measure repetition (:func:`text_stats`) and
    quality (perplexity of the continuations under ``scorer``, default ``model`` itself).

    Each setting reseeds the generator with ``seed``, so the sweep repeats exactly. Returns one row per setting:
    ``{"setting", "perplexity", <text_stats>, "texts"}``.

    Raises:
        ValueError: no prompts or no settings.
    """
    from tqdm.auto import tqdm

    from .device import set_seed
    from .models import generate_batch

    if not prompts or not settings:
        raise ValueError("decoding_sweep needs at least one prompt and one setting.")
    validate.str_list("prompts", prompts, "pass a list of prompt texts")
    bad = next((s for s in settings if not isinstance(s, DecodingSetting)), None)
    if bad is not None:
        raise TypeError(f"settings must be DecodingSetting objects, got {bad!r}: pass e.g. "
                        "[DecodingSetting('greedy', {}), DecodingSetting('sample', {'do_sample': True})].")
    validate.positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=96")
    validate.positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    scorer, scorer_tok = (scorer, scorer_tok) if scorer is not None else (model, tok)
    rows = []
    for s in tqdm(settings, desc="decoding settings", disable=not progress):
        set_seed(seed)
        texts, finished = generate_batch(model, tok, list(prompts), max_new_tokens=max_new_tokens, chat=chat,
                                         batch_size=batch_size, return_finished=True, **dict(s.kwargs))
        ppl = continuation_perplexity(scorer, scorer_tok, prompts, texts, chat=chat and scorer is model)
        rows.append({"setting": s.name, "perplexity": ppl, **text_stats(texts, finished), "texts": texts})
    return rows


def format_sweep(rows: Sequence[Mapping]) -> str:
    """The sweep as a plain-text table (texts left out)."""
    validate.not_a_str("rows", rows, "pass the rows decoding_sweep returns")
    validate.non_empty("rows", rows, "pass the rows decoding_sweep returns")
    cols = [k for k in rows[0] if k not in ("setting", "texts")]
    head = f"{'setting':24}" + "".join(f"{c:>12}" for c in cols)
    lines = [head, "-" * len(head)]
    lines += [f"{r['setting']:24}" + "".join(f"{r[c]:>12.3f}" for c in cols) for r in rows]
    return "\n".join(lines)


def plot_sweep(rows: Sequence[Mapping], x: str = "seq-rep-4", y: str = "perplexity", ax=None):
    """Repetition (x) against quality (y), one labelled point per decoding setting. Returns the axes."""
    import matplotlib.pyplot as plt

    validate.non_empty("rows", rows, "pass the rows decoding_sweep returns")
    for key in (x, y):
        missing = [r.get("setting", r) for r in rows if key not in r]
        if missing:
            raise ValueError(f"No {key!r} in the row of {missing[0]!r}: plot one of its columns, "
                             f"{[k for k in rows[0] if k not in ('setting', 'texts')]}.")
    ax = ax or plt.subplots(figsize=(6.5, 4.2))[1]
    for i, r in enumerate(rows):
        ax.scatter(r[x], r[y], color=f"C{i % 10}", s=40)
        ax.annotate(r["setting"], (r[x], r[y]), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel(f"{x} (repetition, lower is better)")
    ax.set_ylabel(f"{y} under the scorer (lower = more fluent)")
    ax.set_title("Decoding: repetition against fluency")
    return ax


# ---------------------------------------------------------------------------------------------------------------
# The rule-based adapter (Hewitt et al. 2024)
# ---------------------------------------------------------------------------------------------------------------

def resolve_token_bias(tok, bias: Mapping[str, float]) -> dict[int, float]:
    """Token ids for a ``{text: bias}`` map: each text's single-token spellings, bare and after a space
    (``"I"`` -> the ids of ``I`` and `` I``). Re-derived per tokenizer: ids are not portable between models.

    Raises:
        ValueError: a text that is no single token in either spelling (say which, so it can be split or dropped).
    """
    if not isinstance(bias, Mapping):
        raise TypeError(f"bias must be a dict {{text: bias}}, got {type(bias).__name__}: pass e.g. {{'###': -5.0}}.")
    for text, b in bias.items():
        validate.non_empty_str("each biased text", text, "pass e.g. {'###': -5.0}")
        validate.finite_float(f"the bias of {text!r}", b, "pass a finite number, e.g. -5.0")
    out: dict[int, float] = {}
    for text, b in bias.items():
        ids = {tuple(tok(v, add_special_tokens=False)["input_ids"]) for v in (text, " " + text)}
        single = [i[0] for i in ids if len(i) == 1]
        if not single:
            raise ValueError(f"{text!r} is not a single token for this tokenizer (it splits into "
                             f"{sorted(ids)}); bias its first piece or drop it.")
        for i in single:
            out[i] = out.get(i, 0.0) + float(b)
    return out


def product_of_experts(base_logits: torch.Tensor, rule_logits: torch.Tensor) -> torch.Tensor:
    """Hewitt et al.'s combination: ``log_softmax(base) + log_softmax(rules)``, renormalised.

    Since ``log_softmax(r) = r - logsumexp(r)`` only shifts each row by a constant, this equals adding the
    rules' scores to the base logits: the adapter is a bias on the logits, which is what a LogitsProcessor does.
    """
    if base_logits.shape[-1] != rule_logits.shape[-1]:
        raise ValueError(f"base_logits and rule_logits must score the same vocabulary, got {base_logits.shape[-1]} "
                         f"and {rule_logits.shape[-1]} entries in the last dimension.")
    return (base_logits.log_softmax(-1) + rule_logits.log_softmax(-1)).log_softmax(-1)


class RuleBasedAdapter(LogitsProcessor):
    """Hewitt et al.'s three rules, added to the base model's logits at every step of ``generate``:

    1. **end of sequence** becomes likelier as the answer grows: ``+ eos_boost * min(1, n / ramp)`` after ``n``
       new tokens (a base model does not know when to stop);
    2. **repeated tokens** are penalised: ``- repeat_penalty * count`` for each token already generated
       (counts in the answer only, not the prompt; a frequency penalty, unlike generate's repetition_penalty);
    3. **a few tokens** are reweighted by a fixed bias (e.g. down with the markers that start a new turn).

    Args:
        tok: the tokenizer (for EOS and the ids of ``token_bias``'s texts).
        prompt_length: the prompt's length in tokens (every row's, with left padding).
        token_bias: ``{text: bias}`` (resolved with :func:`resolve_token_bias`).

    Raises:
        ValueError: a negative setting or ``ramp < 1``.
    """

    def __init__(self, tok, prompt_length: int, eos_boost: float = 8.0, ramp: int = 64,
                 repeat_penalty: float = 0.5, token_bias: Mapping[str, float] | None = None):
        for name, value in (("eos_boost", eos_boost), ("repeat_penalty", repeat_penalty)):
            validate.finite_float(name, value, "pass a finite number >= 0")
        validate.integer("ramp", ramp, "pass the tokens over which the end boost grows, e.g. ramp=64")
        validate.integer("prompt_length", prompt_length, "pass the prompt's length in tokens")
        if eos_boost < 0 or repeat_penalty < 0 or ramp < 1 or prompt_length < 0:
            raise ValueError("eos_boost, repeat_penalty and prompt_length must be >= 0 and ramp >= 1 "
                             f"(got {eos_boost}, {repeat_penalty}, {prompt_length}, {ramp}).")
        self.eos_id = tok.eos_token_id
        self.prompt_length, self.eos_boost, self.ramp, self.repeat_penalty = (prompt_length, eos_boost, ramp,
                                                                                repeat_penalty)
        self.bias = resolve_token_bias(tok, token_bias or {})

    def rule_scores(self, input_ids: torch.LongTensor, vocab_size: int) -> torch.Tensor:
        """The rules' additive scores ``[batch, vocab]`` for the next token after ``input_ids``."""
        new = input_ids[:, self.prompt_length:]
        scores = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device)
        for i, b in self.bias.items():
            if i < vocab_size:
                scores[:, i] += b
        scores[:, self.eos_id] += self.eos_boost * min(1.0, new.shape[1] / self.ramp)
        if new.shape[1] and self.repeat_penalty:
            counts = torch.zeros_like(scores).scatter_add_(1, new, torch.ones_like(new, dtype=scores.dtype))
            scores -= self.repeat_penalty * counts
        return scores

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores + self.rule_scores(input_ids, scores.shape[-1]).to(scores.dtype)


def generate_with_rules(model, tok, prompts: Sequence[str], max_new_tokens: int = 96, batch_size: int = 8,
                        **rule_kwargs) -> tuple[list[str], list[bool]]:
    """Greedy generation from raw-text prompts (no chat template: a base model), with a
    :class:`RuleBasedAdapter` (``rule_kwargs``) built for each left-padded batch. Returns texts and
    whether each ended with EOS.

    Raises:
        ValueError: no prompts.
    """
    from transformers import LogitsProcessorList

    if not prompts:
        raise ValueError("generate_with_rules needs at least one prompt.")
    validate.str_list("prompts", prompts, "pass a list of prompt texts")
    validate.positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=96")
    validate.positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    side, tok.padding_side = tok.padding_side, "left"
    texts, finished = [], []
    try:
        for start in range(0, len(prompts), batch_size):
            enc = encode(tok, list(prompts[start:start + batch_size]), model, padding=True)
            n = enc["input_ids"].shape[1]
            rules = RuleBasedAdapter(tok, n, **rule_kwargs)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id, logits_processor=LogitsProcessorList([rules]))
            new = out[:, n:]
            texts += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
            finished += (new == tok.eos_token_id).any(dim=1).tolist()
    finally:
        tok.padding_side = side
    return texts, finished


def new_turn_rate(texts: Sequence[str], markers: Sequence[str] = ("### Instruction", "### Response", "Question:",
                                                                   "\nUser:", "Human:")) -> float:
    """The share of answers in which the model starts a new turn itself (writes the next instruction): the
    base-model habit the adapter's third rule works against."""
    validate.str_list("texts", texts, "new_turn_rate needs at least one text")
    validate.str_list("markers", markers, "pass the turn markers as a list, e.g. ['### Instruction']")
    return sum(any(m in t for m in markers) for t in texts) / len(texts)


def word_counts(texts: Sequence[str]) -> list[int]:
    """Words per text (for the length histogram)."""
    validate.not_a_str("texts", texts, "pass a list of texts")
    return [len(words(t)) for t in texts]


def top_repeated(texts: Sequence[str], n: int = 4, k: int = 5) -> list[tuple[str, int]]:
    """The ``k`` most repeated ``n``-grams across the texts, as strings with their counts (counts >= 2)."""
    validate.not_a_str("texts", texts, "pass a list of texts")
    _check_n(n)
    validate.positive_int("k", k, "pass how many n-grams to list, e.g. k=5")
    c = Counter(g for t in texts for g in ngrams(t, n))
    return [(" ".join(g), m) for g, m in c.most_common(k) if m >= 2]
