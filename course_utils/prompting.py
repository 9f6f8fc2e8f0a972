"""Chapter 2: prompt learning (提示学习) in three stages, after Liu et al. 2021 and OpenPrompt.

1. **Prompt addition** (提示添加): a :class:`Template` such as ``"[X] I feel [Z]."`` turns the input x into
   ``x' = f_prompt(x)``, a text with an answer slot ``[Z]``.
2. **Answer search** (答案搜索): :func:`answer_search` scores every candidate answer z in the answer space Z,
   ``log P(f_fill(x', z); θ)``, and the best one is ``ẑ = argmax_z``.
3. **Answer mapping** (答案映射): a :class:`Verbalizer` maps answers to labels (great/good -> positive, ...).

:class:`PromptClassifier` chains the three, with contextual calibration (Zhao et al. 2021) and prompt
ensembling. OpenPrompt (thunlp/OpenPrompt) is the reference design; it does not import with transformers 5,
so this is our own re-implementation of its core for causal LMs: a multi-token answer is scored as its full
continuation ``sum_t log P(z_t | x', z_<t)`` rather than OpenPrompt's single-mask approximation.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import validate
from .device import model_device
from .models import check_fits, keeps_logits

X_SLOT, Z_SLOT = "[X]", "[Z]"
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al.'s content-free inputs
AGGREGATIONS = ("sum", "mean", "max", "first")  # how several words of one label combine (Verbalizer.aggregate)

# LLM-TAP's example (§5.1): "[X] 我感到 [Z]", Z = {太好了, 好, 一般, 不好, 糟糕}.
SEED_TEMPLATE = "[X] I feel [Z]."
SEED_LABEL_WORDS = {"positive": ["great", "good"], "neutral": ["okay"], "negative": ["bad", "terrible"]}
ONE_WORD_LABELS = {"positive": ["great"], "neutral": ["okay"], "negative": ["terrible"]}
#: The course's sentiment task as a prompt (chapters 3, 4, 5, 8 and the capstone's probes): the label names are the
#: answers, so a fine-tune learns to write "positive", "neutral" or "negative" after "Sentiment:".
SENTIMENT_TEMPLATE = "Review: [X]\nSentiment: [Z]"
SENTIMENT_WORDS = {"positive": "positive", "neutral": "neutral", "negative": "negative"}
# Templates compared in chapter 2 (cloze style: the answer slot near the end, as a causal LM needs).
SENTIMENT_TEMPLATES = (
    SEED_TEMPLATE,
    "[X] Overall, it was [Z].",
    "[X] This makes me feel [Z].",
    SENTIMENT_TEMPLATE,
    "Sentence: [X]\nThe sentiment of this sentence is [Z]",
)


# ---- 1. prompt addition --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A prompt template in LLM-TAP's notation: ``[X]`` is the input slot, ``[Z]`` the answer slot.

    The answer slot may stand anywhere (``"[X] I feel [Z]."``, ``"[Z] news: [X]"``). A space before ``[Z]``
    belongs to the answer when it is tokenized (``" great"`` is one BPE token, ``"great"`` another).

    Raises:
        ValueError: if the text lacks a slot or has one twice.
    """

    text: str

    def __post_init__(self):
        validate.a_str("Template text", self.text, "write it with both slots, e.g. Template('[X] I feel [Z].')")
        for slot, role in ((X_SLOT, "input"), (Z_SLOT, "answer")):
            n = self.text.count(slot)
            if n != 1:
                raise ValueError(f"Template {self.text!r} has {n} {role} slots {slot}; it needs exactly one, "
                                 f"e.g. Template('[X] I feel [Z].')")

    def fill(self, x: str) -> str:
        """``x' = f_prompt(x)``: the input placed in its slot, the answer slot left open."""
        validate.a_str("The input text x", x, "pass one text, e.g. template.fill('I missed the bus.')")
        return self.text.replace(X_SLOT, x)

    def fill_answer(self, x: str, z: str) -> str:
        """``f_fill(x', z)``: the prompt with the answer ``z`` in its slot."""
        validate.a_str("The answer z", z, "pass one answer word, e.g. 'great'")
        return self.fill(x).replace(Z_SLOT, z)

    def split(self, x: str) -> tuple[str, str, str]:
        """``(context, space, after)``: the text before the answer slot (trailing space removed), the space
        that joins the answer to it (``" "`` or ``""``), and the text after the slot."""
        before, after = self.fill(x).split(Z_SLOT)
        stripped = before.rstrip(" ")
        return stripped, " " if stripped != before else "", after


# ---- 3. answer mapping ---------------------------------------------------------------------------------------

class Verbalizer:
    """The answer space Z and the answer mapping v: Z -> Y (many answers to one label).

    ``Verbalizer({"positive": ["great", "good"], "neutral": ["okay"], "negative": ["bad", "terrible"]})``

    Raises:
        ValueError: a label without words, a word under two labels, or no labels at all.
    """

    def __init__(self, label_words: dict[str, Sequence[str] | str]):
        if isinstance(label_words, str):
            raise TypeError(f"Verbalizer takes a dict {{label: words}}, got the str {label_words!r}: use "
                            "Verbalizer.from_string(...) to parse 'label: word, word; label: word'.")
        if not isinstance(label_words, Mapping):
            raise TypeError(f"Verbalizer takes a dict {{label: words}}, got {type(label_words).__name__}: "
                            "write e.g. Verbalizer({'positive': ['great'], 'negative': ['bad']}).")
        if not label_words:
            raise ValueError("A Verbalizer needs at least one label, e.g. {'positive': ['great']}.")
        self.label_words = {y: [w] if isinstance(w, str) else list(w) for y, w in label_words.items()}
        owner: dict[str, str] = {}
        for label, words in self.label_words.items():
            if not isinstance(label, str):
                raise TypeError(f"Label names must be str, got {label!r}: name it, e.g. 'positive'.")
            if not label.strip():
                raise ValueError(f"Label names must be non-empty, got {label!r}: name it, e.g. 'positive'.")
            if any(not isinstance(w, str) for w in words):
                raise TypeError(f"Label {label!r} has a word that is not a str ({words!r}): give its words as str, "
                                "e.g. ['great', 'good'].")
            if not words or any(not w.strip() for w in words):
                raise ValueError(f"Label {label!r} has no (or an empty) label word; give it at least one word.")
            for w in words:
                if w in owner:
                    raise ValueError(f"The word {w!r} is listed under both {owner[w]!r} and {label!r}; "
                                     "an answer must map to one label.")
                owner[w] = label
        self.labels: list[str] = list(self.label_words)
        self.answers: list[str] = list(owner)  # the answer space Z, label by label
        self._owner = owner

    @classmethod
    def from_string(cls, spec: str) -> Verbalizer:
        """Parse ``"positive: great, good; neutral: okay; negative: bad, terrible"`` (for the playground).

        Raises:
            ValueError: for a part without ``label: words``.
        """
        words: dict[str, list[str]] = {}
        for part in filter(str.strip, spec.split(";")):
            if ":" not in part:
                raise ValueError(f"Write each label as 'label: word, word' separated by ';' (got {part.strip()!r}).")
            label, ws = part.split(":", 1)
            words[label.strip()] = [w.strip() for w in ws.split(",") if w.strip()]
        return cls(words)

    def __call__(self, z: str) -> str:
        """The answer mapping ``v(z)``: the label an answer stands for."""
        if z not in self._owner:
            raise KeyError(f"{z!r} is not in the answer space {self.answers}.")
        return self._owner[z]

    def __repr__(self) -> str:
        return f"Verbalizer({self.label_words})"

    def label_index(self, label: str) -> int:
        """Position of ``label`` in :attr:`labels`; a clear error for a label the verbalizer does not know."""
        if label not in self.label_words:
            raise ValueError(f"Unknown label {label!r}: this verbalizer's labels are {self.labels}.")
        return self.labels.index(label)

    def aggregate(self, answer_logprobs: torch.Tensor, how: str = "sum") -> torch.Tensor:
        """Answer scores ``[N, |Z|]`` -> label scores ``[N, |Y|]``.

        ``how``: ``"sum"`` adds the words' probabilities (logsumexp), ``"mean"`` averages their log-probs
        (OpenPrompt's default), ``"max"`` keeps the best word, ``"first"`` uses each label's first word only.
        """
        if answer_logprobs.dim() != 2 or answer_logprobs.shape[1] != len(self.answers):
            raise ValueError(f"answer_logprobs must be [N, {len(self.answers)}] (one column per answer {self.answers}),"
                             f" got shape {tuple(answer_logprobs.shape)}: score these answers with answer_search.")
        cols = []
        for label in self.labels:
            idx = [self.answers.index(w) for w in self.label_words[label]]
            s = answer_logprobs[:, idx]
            if how == "sum":
                cols.append(torch.logsumexp(s, dim=1))
            elif how == "mean":
                cols.append(s.mean(dim=1))
            elif how == "max":
                cols.append(s.max(dim=1).values)
            elif how == "first":
                cols.append(s[:, 0])
            else:
                raise ValueError(f"Unknown aggregation {how!r}; use {' / '.join(map(repr, AGGREGATIONS))}.")
        return torch.stack(cols, dim=1)


# ---- 2. answer search -----------------------------------------------------------------------------------------

def _context_ids(tok, context: str, special: bool = True) -> list[int]:
    """Token ids of the text before the answer (with the tokenizer's special prefix when ``special``)."""
    ids = tok(context, add_special_tokens=special).input_ids
    if not ids and special:  # the answer slot opens the template: condition on the BOS (or EOS) token alone
        ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    return ids


def _continuation_ids(tok, continuation: str) -> list[int]:
    """Token ids of an answer and the template text after it (never a special token)."""
    return tok(continuation, add_special_tokens=False).input_ids


def _as_template(template: Template | str) -> Template:
    if isinstance(template, str):
        return Template(template)
    if not isinstance(template, Template):
        raise TypeError(f"template must be a Template or its text, got {type(template).__name__}: pass e.g. "
                        "Template('[X] I feel [Z].') or '[X] I feel [Z].'.")
    return template


def _check_search(template: Template | str, texts: Sequence[str], answers: Sequence[str]) -> Template:
    """The arguments every answer search shares, checked once at the boundary."""
    validate.str_list("texts", texts, "pass a list of input texts, e.g. ['I missed the bus.']", allow_empty=True)
    validate.str_list("answers", answers, "pass the answer words, e.g. ['great', 'bad']")
    blank = [z for z in answers if not z.strip()]
    if blank:
        raise ValueError(f"answers holds an empty answer {blank[0]!r}: every answer needs at least one word.")
    return _as_template(template)


def _continuations(template: Template, x: str, answers: Sequence[str]) -> tuple[str, list[str]]:
    context, space, after = template.split(x)
    return context, [space + z + after for z in answers]


def answer_search_naive(model, tok, template: Template, texts: Sequence[str], answers: Sequence[str],
                        normalize: bool = False, shared_prefix: str = "") -> torch.Tensor:
    """The definition, one forward pass per (text, answer): ``log P(answer + rest of prompt | context)``.

    Readable and slow; :func:`answer_search` must give the same numbers (tested to 1e-4).
    """
    template = _check_search(template, texts, answers)
    out = torch.empty(len(texts), len(answers))
    dev = model_device(model)
    pre = tok(shared_prefix).input_ids if shared_prefix else []
    for i, x in enumerate(texts):
        context, conts = _continuations(template, x, answers)
        ctx_ids = pre + _context_ids(tok, context, special=not pre)
        for j, cont in enumerate(conts):
            cont_ids = _continuation_ids(tok, cont)
            ids = torch.tensor([ctx_ids + cont_ids], device=dev)
            with torch.no_grad():
                logits = model(ids).logits.float()
            logp = F.log_softmax(logits[0, len(ctx_ids) - 1:-1], dim=-1)  # positions predicting the continuation
            total = logp.gather(-1, torch.tensor(cont_ids, device=dev)[:, None]).sum()
            out[i, j] = total / len(cont_ids) if normalize else total
    return out


def continuation_logprobs(model, tok, contexts: Sequence[str], continuations: Sequence[Sequence[str]],
                          normalize: bool = False, batch_size: int = 16, progress: bool = False,
                          shared_prefix: str = "") -> torch.Tensor:
    """``out[i, j] = log P(continuations[i][j] | contexts[i])`` for every context and each of its continuations.

    Fast path, per batch of contexts: one forward over the (left-padded) contexts gives the first token of every
    continuation; their keys and values are then repeated once per continuation and reused for the remaining
    tokens in a second forward. The shared prompt is read once, not ``|Z|`` times. A ``shared_prefix`` (the
    demonstrations of in-context learning) is run once for all contexts and its cache reused the same way.
    """
    validate.str_list("contexts", contexts, "pass one context text per row")
    validate.not_a_str("continuations", continuations, "pass one list of continuations per context")
    validate.same_length("contexts", contexts, "continuations", continuations)
    for row in continuations:
        validate.str_list("each row of continuations", row, "pass e.g. [[' great.', ' bad.']] for one context")
    if len({len(row) for row in continuations}) > 1:
        raise ValueError(f"Every context needs the same number of continuations, got {[len(r) for r in continuations]}"
                         ": pass the same answer list for each context.")
    batch_size = validate.positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    n, m = len(contexts), len(continuations[0])
    out = torch.empty(n, m)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    dev = model_device(model)
    pre_ids = tok(shared_prefix).input_ids if shared_prefix else []
    # The prefix's last token is held back and read with each context, so even an empty context (a template
    # that opens with [Z]) has a position whose logits predict the answer.
    cached, held = pre_ids[:-1], pre_ids[-1:]
    last_only = {"logits_to_keep": 1} if keeps_logits(model) else {}  # no LM head on the context's other tokens
    if cached:
        with torch.no_grad():
            pre_cache = model(input_ids=torch.tensor([cached], device=dev), use_cache=True,
                              **last_only).past_key_values
    for s in tqdm(range(0, n, batch_size), desc="answer search", disable=not progress):
        rows = range(s, min(s + batch_size, n))
        ctx = [held + _context_ids(tok, contexts[i], special=not pre_ids) for i in rows]
        conts = [_continuation_ids(tok, c) for i in rows for c in continuations[i]]  # row-major: text, answer
        if not all(conts):
            empty = next(c for i in rows for c in continuations[i] if not _continuation_ids(tok, c))
            raise ValueError(f"The continuation {empty!r} has no tokens for this tokenizer, so there is nothing to "
                             "score: give every answer at least one token.")
        L = max(map(len, ctx))
        C = max(map(len, conts))  # from the lists: reading it off a GPU tensor would wait for the device
        lengths = torch.tensor([len(c) for c in conts], device=dev).view(len(rows), m)
        check_fits(model, len(cached) + L + C)  # a clear error, not silently degraded scores past the window
        ids = torch.tensor([[pad] * (L - len(c)) + c for c in ctx], device=dev)
        # layout per row: [cached prefix][left padding][context]; padding is masked out, positions skip it
        mask = torch.tensor([[1] * len(cached) + [0] * (L - len(c)) + [1] * len(c) for c in ctx], device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        if cached:
            cache = copy.deepcopy(pre_cache)
            cache.batch_repeat_interleave(len(rows))
        with torch.no_grad():
            first = model(input_ids=ids, attention_mask=mask, position_ids=pos[:, len(cached):],
                          past_key_values=cache, use_cache=True, **last_only)
        last = F.log_softmax(first.logits[:, -1].float(), dim=-1)  # predicts each continuation's 1st token
        first_ids = torch.tensor([c[0] for c in conts], device=dev).view(len(rows), m)
        total = last.gather(-1, first_ids)
        if C > 1:  # tokens 2..C of all continuations in one forward, over the context's cached keys/values
            cache = first.past_key_values
            cache.batch_repeat_interleave(m)  # each context's cache, once per answer
            cids = torch.tensor([c + [pad] * (C - len(c)) for c in conts], device=dev)
            cmask = (torch.arange(C, device=dev) < lengths.view(-1, 1)).long()
            cpos = pos[:, -1:].repeat_interleave(m, 0) + 1 + torch.arange(C - 1, device=dev)
            with torch.no_grad():
                step = model(input_ids=cids[:, :-1], position_ids=cpos, past_key_values=cache,
                             attention_mask=torch.cat([mask.repeat_interleave(m, 0), cmask[:, :-1]], 1))
            logp = F.log_softmax(step.logits.float(), dim=-1).gather(-1, cids[:, 1:, None])[..., 0]
            total = total + (logp * cmask[:, 1:]).sum(-1).view(len(rows), m)
        out[list(rows)] = (total / lengths if normalize else total).cpu()
    return out


def answer_search(model, tok, template: Template, texts: Sequence[str], answers: Sequence[str],
                  normalize: bool = False, batch_size: int = 16, progress: bool = False,
                  shared_prefix: str = "") -> torch.Tensor:
    """``[N, |Z|]`` scores ``log P(f_fill(x', z))`` of each answer z for each text x, the part that depends on z:
    the answer tokens given the context before the slot, plus the template text after the slot.

    Args:
        normalize: divide by the number of scored tokens (length normalisation), so long answers are not
            penalised for having more tokens.
    """
    template = _check_search(template, texts, answers)
    if not texts:
        return torch.empty(0, len(answers))
    contexts, conts = zip(*(_continuations(template, x, answers) for x in texts))
    return continuation_logprobs(model, tok, contexts, conts, normalize, batch_size, progress, shared_prefix)


# ---- calibration and the classifier ---------------------------------------------------------------------------

def contextual_calibration(label_probs: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """Zhao et al. 2021, "diagonal W": ``p_cal ∝ p / p_cf``, renormalised.

    ``p_cf`` is the label distribution the prompt gives a content-free input ("N/A"); dividing by it removes
    the prompt's bias towards some labels, so a content-free input becomes uniform.

    Raises:
        ValueError: ``p_cf`` not a vector of one positive probability per label.
    """
    if not isinstance(label_probs, torch.Tensor) or not isinstance(p_cf, torch.Tensor):
        raise TypeError("label_probs and p_cf must be tensors, e.g. torch.tensor([0.5, 0.3, 0.2]).")
    if p_cf.dim() != 1 or label_probs.dim() == 0 or len(p_cf) != label_probs.shape[-1]:
        raise ValueError(f"p_cf must be a vector of one probability per label ({label_probs.shape[-1:]}), got "
                         f"shape {tuple(p_cf.shape)}: compute it with the same verbalizer as label_probs.")
    if not (torch.isfinite(p_cf).all() and (p_cf > 0).all()):
        raise ValueError(f"p_cf must be positive and finite to divide by, got {p_cf.tolist()}: pass the label "
                         "probabilities of a content-free input, not log-probabilities.")
    p_cf = p_cf / p_cf.sum()
    cal = label_probs / p_cf
    return cal / cal.sum(dim=-1, keepdim=True)


@dataclass
class PromptClassifier:
    """Zero-shot classification by prompting: template -> answer search -> verbalizer (-> calibration).

    Change a setting with ``dataclasses.replace(clf, calibrate=True)`` (the model is shared, not copied).

    Attributes:
        template: a :class:`Template` (or its text).
        verbalizer: a :class:`Verbalizer` (or its ``{label: words}`` dict).
        calibrate: apply contextual calibration with :data:`CONTENT_FREE` inputs.
        normalize: length-normalise answer log-probs.
        aggregate: how several words per label combine (see :meth:`Verbalizer.aggregate`).
        prefix: text put before every prompt (the demonstrations of in-context learning, chapter 3).
    """

    model: object
    tok: object
    template: Template | str
    verbalizer: Verbalizer | dict
    calibrate: bool = False
    normalize: bool = False
    aggregate: str = "sum"
    prefix: str = ""
    batch_size: int = 16

    def __post_init__(self):
        self.template = _as_template(self.template)
        self.verbalizer = _as_verbalizer(self.verbalizer)
        validate.one_of("aggregation", self.aggregate, AGGREGATIONS)
        validate.a_str("prefix", self.prefix, "pass the demonstrations as one text, or '' for none")
        validate.positive_int("batch_size", self.batch_size, "pass e.g. batch_size=16")
        self._p_cf: torch.Tensor | None = None

    def _raw(self, texts: Sequence[str], prefixes: Sequence[str] | None = None) -> torch.Tensor:
        contexts, conts = zip(*(_continuations(self.template, x, self.verbalizer.answers) for x in texts))
        if prefixes is not None:  # one prefix per text (kNN demonstrations): part of each context
            contexts = [pre + c for pre, c in zip(prefixes, contexts)]
        z = continuation_logprobs(self.model, self.tok, contexts, conts, self.normalize, self.batch_size,
                                  progress=len(texts) > 4 * self.batch_size,
                                  shared_prefix=self.prefix if prefixes is None else "")
        return F.log_softmax(self.verbalizer.aggregate(z, self.aggregate), dim=-1)

    def content_free_probs(self) -> torch.Tensor:
        """``p_cf``: the mean label distribution over the content-free inputs (computed once, then kept)."""
        if self._p_cf is None:
            self._p_cf = self._raw(list(CONTENT_FREE)).exp().mean(0)
        return self._p_cf

    def scores(self, texts: Sequence[str], prefixes: Sequence[str] | None = None) -> torch.Tensor:
        """``[N, |Y|]`` label log-probabilities (normalised over the labels; calibrated if asked).

        ``prefixes`` gives each text its own prefix (kNN demonstrations); default: :attr:`prefix` for all.
        """
        validate.str_list("texts", texts, "pass the texts to classify, e.g. ['I missed the bus.']")
        if prefixes is not None:
            validate.str_list("prefixes", prefixes, "pass one prefix per text")
            validate.same_length("prefixes", prefixes, "texts", texts, "pass one prefix per text")
        logp = self._raw(texts, prefixes)
        if self.calibrate:
            if prefixes is not None:
                raise ValueError("Calibration needs one shared prefix: its p_cf is measured once per prompt.")
            logp = contextual_calibration(logp.exp(), self.content_free_probs()).log()
        return logp

    def predict(self, texts: Sequence[str], prefixes: Sequence[str] | None = None) -> list[str]:
        """The predicted label of each text."""
        return [self.verbalizer.labels[i] for i in self.scores(texts, prefixes).argmax(-1).tolist()]

    def accuracy(self, texts: Sequence[str], labels: Sequence[str], prefixes: Sequence[str] | None = None) -> float:
        """Fraction of texts whose predicted label equals the gold one (gold labels must be known labels)."""
        _check_labels(texts, labels, self.verbalizer)  # before scoring: a mistake costs no forward pass
        return accuracy(self.scores(texts, prefixes), labels, self.verbalizer)


def accuracy(scores: torch.Tensor, labels: Sequence[str], verbalizer: Verbalizer) -> float:
    """Accuracy of label scores ``[N, |Y|]`` (any monotone scale) against gold label names.

    Raises:
        ValueError: no labels, or scores whose shape is not one row per label and one column per verbalizer label.
    """
    verbalizer = _as_verbalizer(verbalizer)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a tensor [N, |Y|], got {type(scores).__name__}: pass clf.scores(texts).")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [N, |Y|], got shape {tuple(scores.shape)}: pass clf.scores(texts).")
    _check_labels(scores, labels, verbalizer)
    expected = (len(labels), len(verbalizer.labels))
    if tuple(scores.shape) != expected:
        raise ValueError(f"scores has shape {tuple(scores.shape)} but {len(labels)} gold labels and "
                         f"{len(verbalizer.labels)} verbalizer labels need {expected}: score the same texts "
                         "with the same verbalizer.")
    gold = torch.tensor([verbalizer.label_index(y) for y in labels])
    return (scores.argmax(-1) == gold).float().mean().item()


def _as_verbalizer(verbalizer: Verbalizer | dict) -> Verbalizer:
    if isinstance(verbalizer, Verbalizer):
        return verbalizer
    if isinstance(verbalizer, Mapping):
        return Verbalizer(verbalizer)
    raise TypeError(f"verbalizer must be a Verbalizer or its {{label: words}} dict, got {type(verbalizer).__name__}: "
                    "pass e.g. {'positive': ['great'], 'negative': ['bad']}.")


def _check_labels(items: Sized, labels: Sequence[str], verbalizer: Verbalizer) -> None:
    """Gold labels: a non-empty list of known label names, one per scored item."""
    validate.str_list("labels", labels, "pass one gold label name per text, e.g. ['positive', 'negative']")
    validate.same_length("labels", labels, "the scored texts", items, "pass one gold label per text")
    for y in labels:
        verbalizer.label_index(y)


def ensemble_scores(classifiers: Sequence[PromptClassifier], texts: Sequence[str]) -> torch.Tensor:
    """Prompt ensembling (multi-prompt learning): average the label *probabilities* of several prompts.

    All classifiers must share the same labels, in the same order. Returns ``[N, |Y|]`` log-probabilities.
    """
    validate.non_empty("classifiers", classifiers, "pass at least one PromptClassifier")
    labels = classifiers[0].verbalizer.labels
    if any(c.verbalizer.labels != labels for c in classifiers):
        raise ValueError("Every prompt in an ensemble needs the same labels in the same order.")
    return torch.stack([c.scores(texts).exp() for c in classifiers]).mean(0).log()


def search_label_words(clf: PromptClassifier, texts: Sequence[str], labels: Sequence[str],
                       candidates: dict[str, Sequence[str]]) -> tuple[Verbalizer, float]:
    """Answer engineering, automated: for each label in turn, keep the candidate word that gives the best
    accuracy on ``(texts, labels)`` (a dev split), the other labels' words fixed. One word per label.

    Returns:
        the best :class:`Verbalizer` found and its accuracy on the given texts.
    """
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError(f"candidates must be a non-empty dict {{label: candidate words}}, got {candidates!r}: "
                         "pass e.g. {'positive': ['great', 'good'], 'negative': ['bad', 'awful']}.")
    candidates = {y: [ws] if isinstance(ws, str) else list(ws) for y, ws in candidates.items()}
    for y, ws in candidates.items():
        if not ws:
            raise ValueError(f"Label {y!r} has no candidate words: give it at least one, e.g. {{{y!r}: ['word']}}.")
    validate.str_list("texts", texts, "pass the dev texts, e.g. [e.text for e in dev]")
    validate.str_list("labels", labels, "pass one gold label name per text, e.g. [e.label for e in dev]")
    validate.same_length("labels", labels, "texts", texts, "pass one gold label per text")
    unknown = sorted(set(labels) - set(candidates))
    if unknown:
        raise ValueError(f"Gold label {unknown[0]!r} has no candidate words: candidates must cover every label, "
                         f"got {list(candidates)}.")
    best = {y: [ws[0]] for y, ws in candidates.items()}
    best_acc = -1.0
    for label, words in candidates.items():
        for w in words:
            trial = {**best, label: [w]}
            try:
                verbalizer = Verbalizer(trial)
            except ValueError:  # the word is already another label's
                continue
            acc = dataclasses.replace(clf, verbalizer=verbalizer).accuracy(texts, labels)
            if acc > best_acc:
                best, best_acc = trial, acc
    return Verbalizer(best), best_acc


def prompt_pairs(template: Template | str, verbalizer: Verbalizer | dict,
                 examples: Sequence) -> list[tuple[str, str]]:
    """Prompt-based fine-tuning data (PET's idea, chapter 4): each labelled example becomes the pair
    (text before the answer slot, the label's first word and the rest of the template).

    Fine-tuning on these pairs teaches the model to put its probability on the verbalizer's words, so the tuned
    model is scored exactly as in chapter 2 (same template, same answer search).

    Args:
        examples: objects with ``.text`` and ``.label`` (``course_utils.data.Example``).

    Raises:
        ValueError: an example whose label the verbalizer does not know.
    """
    template, verbalizer = _as_template(template), _as_verbalizer(verbalizer)
    validate.not_a_str("examples", examples, "pass a list of Example(text, label)")
    pairs = []
    for ex in examples:
        verbalizer.label_index(ex.label)  # a clear error for an unknown label
        context, (target,) = _continuations(template, ex.text, [verbalizer.label_words[ex.label][0]])
        pairs.append((context, target))
    return pairs
