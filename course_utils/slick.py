"""SliCK: does the model already know a fact? (Gekhman et al. 2024, "Does Fine-Tuning LLMs on New Knowledge
Encourage Hallucinations?")

A question-answer pair is put in one of four categories by ``P_correct``, how often the model's answer is right:

* **HighlyKnown**: greedy decoding is right under *every* few-shot exemplar set, ``P_correct(T=0) = 1``;
* **MaybeKnown**: greedy is right under some exemplar sets only, ``0 < P_correct(T=0) < 1``;
* **WeaklyKnown**: greedy is never right, but sampling (``T > 0``) sometimes is;
* **Unknown**: never right, greedy or sampled.

Few-shot exemplars are used because a base model cannot be asked a question directly (Lee GenAI §8). The paper uses
10 random 4-shot exemplar sets per question, one greedy answer and 16 samples at T = 0.5 per set, exact match.

How the answers are scored here, exactly and cheaply. An answer is *correct* when its tokens are the gold answer's
(or an alias's) followed by a newline or end-of-sequence token (exact match: the few-shot format ends every answer
with a newline). Greedy decoding writes the gold answer iff the most likely token at each of those positions, with
the gold prefix before it, *is* the gold token, so one teacher-forced forward pass decides it (no generation loop).
A sample at temperature T is correct with probability ``prod_j softmax(logits_j / T)[gold_j]`` times the chance of
stopping after it; drawing ``n_samples`` Bernoulli trials with that probability has exactly the distribution of
sampling ``n_samples`` answers and checking them (:func:`sample_answers` does it the slow way, for comparison).
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .device import model_device
from .validate import non_negative_int, not_a_str, positive_float, positive_int

CATEGORIES = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
KNOWN = ("HighlyKnown", "MaybeKnown")  # what the chapter calls "known facts" (greedy is sometimes right)


@dataclass(frozen=True)
class SliCKSizes:
    """How ``P_correct`` is estimated: ``n_sets`` exemplar sets of ``k_shot`` QA pairs, one greedy answer and
    ``n_samples`` samples at ``temperature`` per set."""

    n_sets: int
    k_shot: int = 4
    n_samples: int = 16
    temperature: float = 0.5
    batch_size: int = 32

    def __post_init__(self):
        for name, value in (("n_sets", self.n_sets), ("k_shot", self.k_shot), ("n_samples", self.n_samples),
                            ("batch_size", self.batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "k_shot" else 1):
                raise ValueError(f"Need n_sets >= 1, k_shot >= 0, n_samples >= 1 and batch_size >= 1 (whole "
                                 f"numbers), got {name}={value!r}: pass e.g. SliCKSizes(n_sets=10).")
        positive_float("temperature", self.temperature, "T = 0 is the greedy answer, always computed; pass e.g. "
                                                        "temperature=0.5")


# ---------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------

def qa_line(question: str, answer: str | None = None) -> str:
    """``Q: question\\nA: answer``; without an answer, the prompt ``Q: question\\nA:`` the model completes."""
    return f"Q: {question}\nA:" + ("" if answer is None else f" {answer}")


def few_shot_prefix(exemplars: Sequence[dict]) -> str:
    """The exemplars as the text before a question: ``Q: ...\nA: ...\n\n`` for each."""
    return "".join(qa_line(e["question"], e["answer"]) + "\n\n" for e in exemplars)


def few_shot_prompt(exemplars: Sequence[dict], question: str) -> str:
    """``k`` exemplar QA pairs, then the question: ``Q: ...\nA: ...\n\n`` x k + ``Q: question\nA:``."""
    return few_shot_prefix(exemplars) + qa_line(question)


def prompt_ids(tok, prefix: str, prompt: str) -> list[int]:
    """The token ids the model reads: the prefix and the prompt tokenized separately, then joined (so the
    prefix's key/value cache can be shared by every prompt after it)."""
    if not prefix:
        return tok(prompt)["input_ids"]
    return tok(prefix)["input_ids"] + tok(prompt, add_special_tokens=False)["input_ids"]


def exemplar_sets(pool: Sequence[dict], n_sets: int, k: int, seed: int = 0) -> list[list[dict]]:
    """``n_sets`` random ``k``-shot exemplar sets drawn from ``pool`` (each set without repeats).

    The paper draws exemplars from the question's own relation, whose answers all have one type; the course's
    questions mix answer types within a topic, so every question shares the same random sets (and their cache).

    Raises:
        ValueError: a pool with ``k`` facts or fewer (one must be left to replace a question's own exemplar).
    """
    positive_int("n_sets", n_sets, "pass e.g. n_sets=10 (the paper's)")
    non_negative_int("k", k, "pass e.g. k=4 (the paper's 4-shot)")
    not_a_str("pool", pool, "pass facts, e.g. evaluation.load_facts()")
    if len(pool) <= k:
        raise ValueError(f"A {k}-shot exemplar set needs more than {k} facts in the pool; it has {len(pool)}.")
    rng = random.Random(seed)
    return [rng.sample(list(pool), k) for _ in range(n_sets)]


def without(exemplars: Sequence[dict], fact: dict, pool: Sequence[dict], seed: int = 0) -> list[dict]:
    """The exemplar set with ``fact`` (if it is in it) replaced by another pool fact: a question must never
    be its own exemplar."""
    qs = {e["question"] for e in exemplars}
    if fact["question"] not in qs:
        return list(exemplars)
    rng = random.Random(f"{seed}-{fact['question']}")
    spare = rng.choice([f for f in pool if f["question"] not in qs])
    return [spare if e["question"] == fact["question"] else e for e in exemplars]


# ---------------------------------------------------------------------------------------------------------------
# Scoring answers by teacher forcing
# ---------------------------------------------------------------------------------------------------------------

def accepted_answers(fact: dict) -> list[str]:
    """The replies that count as right: the answer and each alias, as written and with a capital first letter,
    duplicates dropped. Models start an answer with a capital ("Hydrogen" for "hydrogen"); without that variant
    exact match would file a known fact as Unknown for its capitalisation alone."""
    aliases = fact.get("aliases", ())
    answers = (fact.get("answer"), *([] if isinstance(aliases, str) else aliases))
    wrong = [a for a in answers if not isinstance(a, str)] + ([aliases] if isinstance(aliases, str) else [])
    if wrong:
        raise TypeError(f"Fact {fact.get('id', fact.get('question'))!r}: 'answer' must be a str and 'aliases' a "
                        f"list of str, got {wrong[0]!r}: write the answer as text, e.g. '1969'.")
    out = []
    for text in answers:
        text = text.strip()
        for form in (text, text[:1].upper() + text[1:]):
            if form and form not in out:
                out.append(form)
    return out


def is_exact_match(reply: str, fact: dict) -> bool:
    """Whether a reply (cut at its first newline) is one of :func:`accepted_answers`."""
    return reply.split("\n")[0].strip() in accepted_answers(fact)


def answer_variants(tok, fact: dict) -> list[list[int]]:
    """Token ids of each :func:`accepted_answers` reply (as the model would write it after ``A:``), duplicates
    dropped.

    Each is a distinct exact-match answer: no two can both be the model's reply (none contains a newline, so one
    cannot be another followed by a stop token), which makes their probabilities add up.
    """
    seen, out = set(), []
    for text in accepted_answers(fact):
        ids = tuple(tok(" " + text, add_special_tokens=False)["input_ids"])
        if ids and ids not in seen:
            seen.add(ids)
            out.append(list(ids))
    if not out:
        raise ValueError(f"Fact {fact.get('id', fact['question'])!r} has an empty answer.")
    return out


def stop_token_mask(tok) -> torch.Tensor:
    """``[vocab]`` booleans: the tokens that end an answer (end-of-sequence, or text starting with a newline)."""
    mask = torch.zeros(len(tok), dtype=torch.bool)
    for i in range(len(tok)):
        if tok.decode([i]).startswith("\n"):
            mask[i] = True
    for special in (tok.eos_token_id, tok.pad_token_id):
        if special is not None:
            mask[special] = True
    return mask


@dataclass(frozen=True)
class AnswerScore:
    """How one prompt's answer comes out: whether greedy decoding writes a gold answer, and the probability that
    a sample at each temperature does."""

    greedy: bool
    p_sample: dict


def sample_probability(logits: torch.Tensor, answer: torch.Tensor, stop: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """The probability that a sample at ``temperature`` writes exactly ``answer`` and then stops:
    ``prod_j p_T(answer_j) * p_T(any stop token)``.

    Args:
        logits: ``[len(answer) + 1, vocab]``, the logits at the positions that predict each answer token and the
            one after it (teacher forcing: the gold answer is in the input).
        answer: ``[len(answer)]`` token ids.
        stop: ``[vocab]`` booleans, :func:`stop_token_mask`.
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return (logp[:-1].gather(1, answer[:, None]).sum() + torch.logsumexp(logp[-1][stop], 0)).exp()


@torch.no_grad()
def score_answers(model, tok, prompts: Sequence[str], variants: Sequence[list[list[int]]],
                  temperatures: Sequence[float] = (), *, prefix: str = "", batch_size: int = 16,
                  stop_mask: torch.Tensor | None = None, progress: bool = False,
                  desc: str = "scoring answers") -> list[AnswerScore]:
    """Score gold answers after each prompt with one teacher-forced forward pass per (prompt, variant).

    Args:
        prompts: texts ending where the answer starts (e.g. ``Q: ...\nA:``).
        variants: per prompt, the token ids of each accepted answer (:func:`answer_variants`).
        temperatures: sampling temperatures at which to compute the probability of a correct sample.
        prefix: text read before every prompt (few-shot exemplars); it is encoded once and its key/value cache
            reused for every row, which is what makes many few-shot prompts affordable on a CPU.
        stop_mask: :func:`stop_token_mask` (pass it when calling often; it is built once per call otherwise).

    Returns:
        One :class:`AnswerScore` per prompt.
    """
    from tqdm.auto import tqdm

    not_a_str("prompts", prompts)
    if len(prompts) != len(variants):
        raise ValueError(f"{len(prompts)} prompts but {len(variants)} answer lists: give one list per prompt.")
    if isinstance(temperatures, (int, float)):
        raise TypeError(f"temperatures must be a list, got the single number {temperatures!r}: pass "
                        f"temperatures=({temperatures!r},).")
    for t in temperatures:
        positive_float("temperature", t, f"temperatures must be > 0, got {list(temperatures)} (greedy is always "
                                         "computed)")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    dev = model_device(model)
    stop = (stop_token_mask(tok) if stop_mask is None else stop_mask).to(dev)
    head = tok(prefix)["input_ids"] if prefix else []
    rows = []  # (prompt index, prompt ids after the prefix, answer ids)
    for i, (p, vs) in enumerate(zip(prompts, variants)):
        p_ids = tok(p, add_special_tokens=False)["input_ids"] if prefix else tok(p)["input_ids"]
        rows += [(i, p_ids, v) for v in vs]
    cache = model(input_ids=torch.tensor([head], device=dev), use_cache=True).past_key_values if head else None
    greedy = [False] * len(prompts)
    probs = [dict.fromkeys(temperatures, 0.0) for _ in prompts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, disable=not progress):
        chunk = rows[start:start + batch_size]
        width = max(len(p) + len(a) for _, p, a in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        for r, (_, p, a) in enumerate(chunk):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
        # Right padding: under causal attention the pads after a row's last token cannot change its logits.
        kwargs = {}
        if cache is not None:
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(chunk))
            kwargs = {"past_key_values": past, "use_cache": True}
        logits = model(input_ids=ids.to(dev), **kwargs).logits.float()
        for r, (i, p, a) in enumerate(chunk):
            # position len(p)-1+j predicts answer token j; the position after the last answer token must stop
            pos = torch.arange(len(p) - 1, len(p) + len(a), device=dev)
            lg = logits[r, pos]
            target = torch.tensor(a, device=dev)
            hit = bool((lg[:-1].argmax(-1) == target).all()) and bool(stop[lg[-1].argmax()])
            greedy[i] = greedy[i] or hit
            for t in temperatures:
                probs[i][t] += float(sample_probability(lg, target, stop, t))
    model.train(was_training)
    return [AnswerScore(g, {t: min(1.0, p) for t, p in pr.items()}) for g, pr in zip(greedy, probs)]


# ---------------------------------------------------------------------------------------------------------------
# The categories
# ---------------------------------------------------------------------------------------------------------------

def categorize(p_greedy: float, p_sample: float) -> str:
    """The SliCK category from ``P_correct(T=0)`` and ``P_correct(T>0)`` (see the module docstring)."""
    if not (0 <= p_greedy <= 1 and 0 <= p_sample <= 1):
        raise ValueError(f"P_correct values must lie in [0, 1], got {p_greedy}, {p_sample}.")
    if p_greedy == 1:
        return "HighlyKnown"
    if p_greedy > 0:
        return "MaybeKnown"
    return "WeaklyKnown" if p_sample > 0 else "Unknown"


def slick_categories(model, tok, facts: Sequence[dict], sizes: SliCKSizes, *, pool: Sequence[dict] | None = None,
                     seed: int = 0, progress: bool = True) -> list[dict]:
    """Estimate ``P_correct`` for every fact and sort it into a SliCK category.

    Args:
        facts: ``{"question", "answer", "aliases", ...}`` rows (``evaluation.load_facts``).
        sizes: exemplar sets, shots, samples and temperature (:class:`SliCKSizes`).
        pool: where exemplars come from (default: ``facts`` themselves; a question is never its own exemplar).

    Returns:
        The facts, each with ``p_greedy`` (share of exemplar sets whose greedy answer is right), ``p_sample``
        (share of the ``n_sets * n_samples`` sampled answers that are right), ``p_sample_exact`` (the
        probability those samples estimate) and ``slick`` (the category).
    """
    from tqdm.auto import tqdm

    if not isinstance(sizes, SliCKSizes):
        raise TypeError(f"sizes must be a SliCKSizes, got {type(sizes).__name__}: pass e.g. SliCKSizes(n_sets=10).")
    not_a_str("facts", facts, "pass evaluation.load_facts()")
    if not facts:
        raise ValueError("No facts to categorize: pass evaluation.load_facts() or a subset of it.")
    pool = list(facts) if pool is None else list(pool)
    variants = [answer_variants(tok, f) for f in facts]
    stop = stop_token_mask(tok)
    t = sizes.temperature
    scores: list[list[AnswerScore]] = [[] for _ in facts]
    for ex in tqdm(exemplar_sets(pool, sizes.n_sets, sizes.k_shot, seed), desc="SliCK: exemplar sets",
                   disable=not progress):
        qs = {e["question"] for e in ex}
        shared = [i for i, f in enumerate(facts) if f["question"] not in qs]
        got = score_answers(model, tok, [qa_line(facts[i]["question"]) for i in shared], [variants[i] for i in shared],
                            (t,), prefix=few_shot_prefix(ex), batch_size=sizes.batch_size, stop_mask=stop)
        for i, s in zip(shared, got):
            scores[i].append(s)
        for i in (i for i, f in enumerate(facts) if f["question"] in qs):  # its own exemplar: swap it out
            own = few_shot_prefix(without(ex, facts[i], pool, seed))
            scores[i] += score_answers(model, tok, [qa_line(facts[i]["question"])], [variants[i]], (t,), prefix=own,
                                       stop_mask=stop)
    g = torch.Generator().manual_seed(seed)
    out = []
    for f, ss in zip(facts, scores):
        ps = [s.p_sample[t] for s in ss]
        hits = sum(int(torch.binomial(torch.tensor(float(sizes.n_samples)), torch.tensor(p), generator=g)) for p in ps)
        pg, pr = sum(s.greedy for s in ss) / sizes.n_sets, hits / (sizes.n_sets * sizes.n_samples)
        out.append({**f, "p_greedy": pg, "p_sample": pr, "p_sample_exact": sum(ps) / len(ps),
                    "slick": categorize(pg, pr)})
    return out


def category_counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many facts fell in each category (every category listed, in :data:`CATEGORIES` order)."""
    c = Counter(r["slick"] for r in rows)
    return {k: c.get(k, 0) for k in CATEGORIES}


def by_category(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """The rows of each category, in :data:`CATEGORIES` order."""
    return {k: [r for r in rows if r["slick"] == k] for k in CATEGORIES}


@torch.no_grad()
def sample_answers(model, tok, prompt: str, n: int, temperature: float, *, prefix: str = "",
                   max_new_tokens: int = 8, seed: int = 0) -> list[str]:
    """``n`` answers sampled by ``model.generate`` at ``temperature`` (plain softmax sampling: no top-k, no
    top-p), each cut at its first newline: the slow, literal way that :func:`score_answers`' exact probabilities
    replace. The model reads the same ids as there (:func:`prompt_ids`)."""
    positive_int("n", n, "pass e.g. n=16 samples")
    positive_float("temperature", temperature, "sampling needs a temperature > 0; pass e.g. temperature=0.5")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=8")
    torch.manual_seed(seed)
    ids = torch.tensor([prompt_ids(tok, prefix, prompt)], device=model_device(model))
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
                         top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, num_return_sequences=n,
                         pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    return [t.split("\n")[0].strip() for t in texts]


def plot_categories(rows: Sequence[dict], ax=None):
    """Bars: facts per SliCK category, split by the dataset's difficulty label where it has one."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 3.5))[1]
    levels = sorted({r.get("difficulty", "all") for r in rows}, key=["easy", "medium", "hard", "all"].index
                    if all(r.get("difficulty", "all") in ("easy", "medium", "hard", "all") for r in rows) else str)
    bottom = [0] * len(CATEGORIES)
    for lvl in levels:
        counts = [sum(1 for r in rows if r["slick"] == c and r.get("difficulty", "all") == lvl) for c in CATEGORIES]
        ax.bar(CATEGORIES, counts, bottom=bottom, label=lvl)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_ylabel("facts")
    ax.set_title("What the model already knows (SliCK)")
    ax.legend(title="dataset difficulty")
    return ax
