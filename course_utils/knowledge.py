"""Knowledge storage and extraction in miniature (after Allen-Zhu & Li, "Physics of Language Models 3.1").

The experiment (chapter 10):

1. make fictional people, each with five attributes (birth date, birth city, university, major, employer);
2. write a **biography** of each from templated sentences, once (``single``) or with **knowledge augmentation**
   (several rewrites per person, sentence order permuted, the full name in every sentence);
3. pretrain a TinyGPT (chapter 6) on the biographies of *everyone*;
4. fine-tune it on question answering about the first half of the people;
5. ask the same questions about the second half, whose facts the model saw only in the biographies.

Without augmentation the model can recite the biographies yet answers almost nothing about the unseen half: the
fact is stored as "the sentence that follows the previous sentences", not as a property of the name. With
augmentation the same facts become extractable. Text is read one word per token (:class:`WordTokenizer`, a
closed vocabulary of a few hundred words), which makes a biography about 5x shorter than chapter 6's bytes.

    people = make_people(200)
    run = pretrain_bios(people, sizes("knowledge", "cpu"), augmentation="rewrites")
    tuned, curve = qa_finetune(run, split_people(people)[0], sizes("knowledge", "cpu"))
    qa_accuracy(tuned, split_people(people)[1])    # {"birth_date": ..., ..., "mean": ...}
"""

from __future__ import annotations

import copy
import dataclasses
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from course_utils.device import model_device
from course_utils.tinygpt import GPTConfig, TinyGPT
from course_utils.validate import finite_float, non_empty, not_a_str, positive_float, positive_int

ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer")

# Fictional people: every full name is first + middle + last, so there are len(FIRST) * len(MIDDLE) * len(LAST).
FIRST_NAMES = ("Alma", "Bram", "Cora", "Dario", "Elsa", "Fenn", "Gala", "Hugo", "Ines", "Joss", "Kira", "Lior",
               "Mara", "Nils", "Oona", "Pavel", "Quin", "Rhea", "Soren", "Tova", "Ugo", "Vera", "Wren", "Xavi",
               "Yara", "Zeno", "Anik", "Bela", "Cyra", "Dov", "Edda", "Faro", "Greta", "Hale", "Isko", "Juna")
MIDDLE_NAMES = ("Ash", "Bay", "Cole", "Dane", "Eve", "Fay", "Gray", "Hope", "Ivy", "Jude", "Kai", "Lee", "May",
                "Noel", "Opal", "Rue", "Sky", "True", "Vale", "West")
LAST_NAMES = ("Abbot", "Brisk", "Calder", "Dunmore", "Ellery", "Farrow", "Garnet", "Holt", "Ivers", "Jarvik",
              "Keel", "Lomax", "Marlow", "Nettle", "Orrin", "Pike", "Quarry", "Rook", "Sable", "Thorne", "Umber",
              "Voss", "Wilder", "Yardley", "Zell", "Ansel", "Birch", "Crane", "Drake", "Eames")
PRONOUNS = {"f": "she", "m": "he"}
FEMININE = {"Alma", "Cora", "Elsa", "Gala", "Ines", "Kira", "Mara", "Oona", "Rhea", "Tova", "Vera", "Wren", "Yara",
            "Bela", "Cyra", "Edda", "Greta", "Juna"}

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
CITIES = ("Oslo", "Lima", "Porto", "Quito", "Cork", "Turin", "Leeds", "Perth", "Austin", "Denver", "Boston",
          "Dakar", "Hanoi", "Kyoto", "Lyon", "Malmo", "Nantes", "Odessa", "Padua", "Riga", "Seville", "Tampa",
          "Utrecht", "Valencia", "Zagreb", "Bergen", "Cusco", "Dublin", "Graz", "Krakow")
UNIVERSITIES = ("MIT", "Yale", "Oxford", "Caltech", "Princeton", "Cornell", "Duke", "Rice", "ETH Zurich",
                "Kyoto University", "McGill", "Sorbonne", "Stanford", "Columbia", "Brown", "Tufts", "Purdue",
                "Leiden", "Uppsala", "Bologna")
MAJORS = ("physics", "biology", "economics", "history", "chemistry", "linguistics", "philosophy", "geology",
          "music", "law", "architecture", "astronomy", "nursing", "statistics", "sociology", "botany",
          "journalism", "robotics", "theology", "ecology")
EMPLOYERS = ("Vireo Labs", "Quillon", "Northwind", "Orbis", "Pellam Bank", "Tessaro", "Halcyon Air", "Brightwell",
             "Corvid Games", "Dunlin Foods", "Emberly", "Fathom Data", "Granite Mills", "Harrow Press", "Ironleaf",
             "Juniper Health", "Kestrel Motors", "Lumen Grid", "Meridian Ink", "Nimbus Rail")

#: Sentence templates per attribute: ``{s}`` is the subject (full name or pronoun), ``{v}`` the value.
TEMPLATES = {
    "birth_date": ("{s} was born on {v}.", "{s} came into the world on {v}.", "{s}'s birthday is {v}.",
                   "{s} celebrates a birthday on {v}.", "{s} was born on the date {v}."),
    "birth_city": ("{s} was born in {v}.", "{s} grew up in {v}.", "{s} spent early years in {v}.",
                   "{s} is a native of {v}.", "{s} comes from {v}."),
    "university": ("{s} studied at {v}.", "{s} graduated from {v}.", "{s} attended {v}.",
                   "{s} received an education at {v}.", "{s} is an alumnus of {v}."),
    "major": ("{s} majored in {v}.", "{s} focused on {v}.", "{s} earned a degree in {v}.",
              "{s} chose {v} as a major.", "{s} specialised in {v}."),
    "employer": ("{s} worked for {v}.", "{s} was employed by {v}.", "{s} had a job at {v}.",
                 "{s} took a position at {v}.", "{s} joined the staff of {v}."),
}

#: One question per attribute (the QA fine-tuning and test data).
QUESTIONS = {
    "birth_date": "When was {n} born?",
    "birth_city": "Where was {n} born?",
    "university": "Which university did {n} attend?",
    "major": "What did {n} study?",
    "employer": "Which company did {n} work for?",
}

#: The pretraining corpora of the chapter. ``rewrites`` is the paper's multi5 + permute + fullname for everyone;
#: ``partial`` rewrites only the first half of the people (the QA-training half, the paper's "celebrities") and
#: gives the rest a single biography.
AUGMENTATIONS = {
    "single": {"rewrites": 1, "permute": False, "fullname": False, "fraction": 1.0},
    "rewrites": {"rewrites": 5, "permute": True, "fullname": True, "fraction": 1.0},
    "partial": {"rewrites": 5, "permute": True, "fullname": True, "fraction": 0.5},
}


@dataclass(frozen=True)
class Person:
    """One fictional individual and the facts about them."""

    name: str
    pronoun: str
    birth_date: str
    birth_city: str
    university: str
    major: str
    employer: str

    def value(self, attribute: str) -> str:
        """The person's value of ``attribute`` (one of :data:`ATTRIBUTES`)."""
        _check_attributes([attribute])
        return getattr(self, attribute)


def max_people() -> int:
    """How many distinct full names the name pools allow."""
    return len(FIRST_NAMES) * len(MIDDLE_NAMES) * len(LAST_NAMES)


def make_people(n: int, seed: int = 0) -> list[Person]:
    """``n`` fictional people with distinct full names and attributes drawn uniformly at random (fixed seed).

    Raises:
        ValueError: ``n < 1`` or more people than there are distinct names (:func:`max_people`).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n is a number of people (an int), got {n!r}: ask for at least one person, e.g. n=200.")
    if n < 1:
        raise ValueError(f"Ask for at least one person, not {n}: pass e.g. n=200.")
    if n > max_people():
        raise ValueError(f"Only {max_people():,} distinct names exist (first x middle x last name pools); ask for "
                         f"n <= {max_people():,} or add names to knowledge.FIRST_NAMES / MIDDLE_NAMES / LAST_NAMES.")
    rng = random.Random(seed)
    names = rng.sample(range(max_people()), n)  # distinct index -> distinct (first, middle, last)
    out = []
    for idx in names:
        f, rest = divmod(idx, len(MIDDLE_NAMES) * len(LAST_NAMES))
        m, last = divmod(rest, len(LAST_NAMES))
        first = FIRST_NAMES[f]
        date = f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1950, 1999)}"
        out.append(Person(name=f"{first} {MIDDLE_NAMES[m]} {LAST_NAMES[last]}",
                          pronoun=PRONOUNS["f" if first in FEMININE else "m"], birth_date=date,
                          birth_city=rng.choice(CITIES), university=rng.choice(UNIVERSITIES),
                          major=rng.choice(MAJORS), employer=rng.choice(EMPLOYERS)))
    return out


def split_people(people: Sequence[Person], fraction: float = 0.5) -> tuple[list[Person], list[Person]]:
    """The QA-training people (the first ``fraction``) and the held-out people (the rest).

    Raises:
        ValueError: a fraction that leaves either side empty.
    """
    not_a_str("people", people, "pass make_people(n)")
    if not 0 < finite_float("fraction", fraction, "pass e.g. fraction=0.5") < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}: pass e.g. fraction=0.5.")
    k = int(len(people) * fraction)
    if not 0 < k < len(people):
        raise ValueError(f"fraction={fraction} of {len(people)} people leaves one side empty; use 0 < fraction < 1 "
                         "and at least two people.")
    return list(people[:k]), list(people[k:])


def _check_attributes(attributes: Sequence[str]) -> None:
    not_a_str("attributes", attributes, f"pass a list, e.g. [{attributes!r}]")
    bad = [a for a in attributes if a not in ATTRIBUTES]
    if bad:
        raise ValueError(f"Unknown attribute(s) {bad}; choose from {ATTRIBUTES}.")


def biography(person: Person, rng: random.Random, *, permute: bool = False, fullname: bool = False) -> str:
    """One biography: a sentence per attribute, each from a template drawn with ``rng``.

    The first sentence names the person, later ones say "he" / "she" unless ``fullname``; with ``permute`` the
    sentences come in a random order (else in :data:`ATTRIBUTES` order).
    """
    order = list(ATTRIBUTES)
    if permute:
        rng.shuffle(order)
    sentences = []
    for i, attr in enumerate(order):
        subject = person.name if (i == 0 or fullname) else person.pronoun.capitalize()
        text = rng.choice(TEMPLATES[attr]).format(s=subject, v=person.value(attr))
        sentences.append(text)
    return " ".join(sentences)


def bio_corpus(people: Sequence[Person], *, rewrites: int = 1, permute: bool = False, fullname: bool = False,
               fraction: float = 1.0, seed: int = 0) -> dict[str, list[str]]:
    """The pretraining biographies, by person: ``rewrites`` differently worded biographies each (knowledge
    augmentation when > 1) for the first ``fraction`` of ``people``, one plain biography (fixed order, pronouns)
    for the rest.

    Raises:
        ValueError: ``rewrites < 1``, a fraction outside [0, 1], or no people.
    """
    if isinstance(rewrites, bool) or not isinstance(rewrites, int):
        raise TypeError(f"rewrites must be an int >= 1 (1 = a single biography per person), not {rewrites!r}.")
    if rewrites < 1:
        raise ValueError(f"rewrites must be >= 1 (1 = a single biography per person), not {rewrites}.")
    not_a_str("people", people, "pass make_people(n)")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction (the share of people whose biography is rewritten) must be in [0, 1], "
                         f"not {fraction}.")
    if not people:
        raise ValueError("No people: make some with make_people(n).")
    rng = random.Random(seed)
    n_aug = round(len(people) * fraction)
    out = {}
    for i, p in enumerate(people):
        if i < n_aug:
            out[p.name] = [biography(p, rng, permute=permute, fullname=fullname) for _ in range(rewrites)]
        else:
            out[p.name] = [biography(p, rng)]
    return out


def flatten(corpus: dict[str, list[str]]) -> list[str]:
    """Every biography of a :func:`bio_corpus`, person by person."""
    return [b for bios in corpus.values() for b in bios]


def qa_prompt(person: Person, attribute: str) -> str:
    """The question about one attribute, in the fine-tuning format ``Q: ...\\nA:``."""
    _check_attributes([attribute])
    return f"Q: {QUESTIONS[attribute].format(n=person.name)}\nA:"


def qa_pairs(people: Sequence[Person], attributes: Sequence[str] = ATTRIBUTES) -> list[tuple[str, str]]:
    """(prompt, answer) pairs: one question per person and attribute; the answer is `` value\\n``."""
    _check_attributes(attributes)
    return [(qa_prompt(p, a), f" {p.value(a)}\n") for p in people for a in attributes]


# ---------------------------------------------------------------------------------------------------------------
# A word-level tokenizer for the closed world of the biographies
# ---------------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"\n|\w+|[^\w\s]")


class WordTokenizer:
    """One token per word or punctuation mark, over the fixed vocabulary of the biographies and questions.

    Chapter 6 read bytes; a biography is about 5x fewer words than bytes, which is what lets the experiment train
    on a laptop. Id 0 is padding; ``\n`` ends every text (the model's end-of-sequence).
    """

    def __init__(self):
        words = {"\n"}
        for text in [*(t for ts in TEMPLATES.values() for t in ts), *QUESTIONS.values(), "Q: A:",
                     *FIRST_NAMES, *MIDDLE_NAMES, *LAST_NAMES, *PRONOUNS.values(), *(p.capitalize() for p in
                     PRONOUNS.values()), *MONTHS, *CITIES, *UNIVERSITIES, *MAJORS, *EMPLOYERS,
                     *(str(d) for d in range(1, 32)), *(str(y) for y in range(1900, 2030))]:
            words.update(_WORD.findall(text.replace("{s}", " ").replace("{v}", " ").replace("{n}", " ")))
        self.itos = ["<pad>", *sorted(words)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.eos_id = 0, self.stoi["\n"]

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            ValueError: a word outside the vocabulary (the world of :func:`make_people` and the templates).
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}: pass the text of a biography or question.")
        out = []
        for w in _WORD.findall(text):
            if w not in self.stoi:
                raise ValueError(f"{w!r} is not in the biography vocabulary; texts must use the names, values and "
                                 "templates of course_utils.knowledge (add new words to its pools).")
            out.append(self.stoi[w])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (words joined by spaces, no space before punctuation; padding dropped)."""
        text = ""
        for i in ids:
            w = self.itos[int(i)]
            if w == "<pad>":
                continue
            glue = not text or text.endswith(("\n", "'")) or not (w[0].isalnum())
            text += w if glue else " " + w
        return text


def text_examples(tok: WordTokenizer, texts: Sequence[str]) -> list[dict]:
    """Language-modelling examples for the engine: every token of each text is a target; a newline ends it."""
    out = []
    for t in texts:
        ids = tok.encode(t) + [tok.eos_id]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def qa_examples(tok: WordTokenizer, pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """SFT examples: the question's tokens carry label -100; the answer's tokens and the newline are the targets."""
    out = []
    for prompt, answer in pairs:
        p, a = tok.encode(prompt), tok.encode(answer)
        out.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return out


# ---------------------------------------------------------------------------------------------------------------
# The experiment: pretrain on biographies, fine-tune QA on half the people, test on the other half
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BiosSetup:
    """Sizes of the knowledge-extraction experiment for one profile."""

    n_people: int
    n_layer: int
    n_head: int
    n_embd: int
    steps: int  # pretraining steps (the same for every corpus: equal compute)
    batch_size: int
    lr: float
    qa_steps: int
    qa_lr: float
    qa_batch: int = 32
    qa_evals: int = 5  # points on the QA fine-tuning curve
    rewrites: int = 5  # biographies per person in the augmented corpus
    block_size: int = 64

    def __post_init__(self):
        for name in ("n_people", "n_layer", "n_head", "n_embd", "steps", "batch_size", "qa_steps", "qa_batch",
                     "qa_evals", "rewrites", "block_size"):
            positive_int(name, getattr(self, name), "config.SIZES['knowledge'] has working values")
        if self.n_people < 2:
            raise ValueError(f"n_people={self.n_people}: the experiment trains QA on half the people and tests on "
                             "the other half, so it needs at least 2; pass e.g. n_people=100.")
        positive_float("lr", self.lr, "pass e.g. lr=3e-3")
        positive_float("qa_lr", self.qa_lr, "pass e.g. qa_lr=1e-4")

    def config(self, vocab_size: int) -> GPTConfig:
        """The TinyGPT shape (RoPE positions)."""
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, position="rope")

    def augmentation(self, name: str) -> dict:
        """The :func:`bio_corpus` arguments of a named corpus (see :data:`AUGMENTATIONS`), with this setup's
        number of rewrites.

        Raises:
            ValueError: an unknown name.
        """
        if name not in AUGMENTATIONS:
            raise ValueError(f"Unknown augmentation {name!r}; choose one of {list(AUGMENTATIONS)}.")
        aug = dict(AUGMENTATIONS[name])
        if aug["rewrites"] > 1:
            aug["rewrites"] = self.rewrites
        return aug


@dataclass
class BioModel:
    """A TinyGPT pretrained on biographies, and who was in them."""

    model: TinyGPT
    tok: WordTokenizer
    people: list[Person]
    augmentation: str
    corpus: dict[str, list[str]] = field(repr=False)
    seconds: float = 0.0
    final_loss: float = float("nan")
    mixed_qa: int = 0  # QA pairs that were mixed into the pretraining data

    def check_known(self, people: Sequence[Person]) -> None:
        """Raise a clear ``ValueError`` for anyone whose biography was not in the pretraining data."""
        names = {p.name for p in self.people}
        missing = [p.name for p in people if p.name not in names]
        if missing:
            raise ValueError(f"{len(missing)} people were not in the pretraining biographies (e.g. {missing[0]!r}): "
                             "the experiment asks about facts the model has read. Use people from the same "
                             "make_people(n, seed) call as pretrain_bios.")


def pretrain_bios(people: Sequence[Person], setup: BiosSetup, augmentation: str = "single", *,
                  mix_qa: Sequence[Person] = (), mix_copies: int = 2, seed: int = 0,
                  device: str | torch.device = "cpu", progress: bool = True) -> BioModel:
    """Pretrain a fresh TinyGPT on the biographies of ``people`` (every one of them) with chapter 4's engine.

    Every corpus gets the same number of steps and examples per step (equal compute): a ``single`` biography is
    read ``rewrites`` times as often as each of the augmented corpus's rewrites.

    Args:
        augmentation: a name in :data:`AUGMENTATIONS`.
        mix_qa: people whose QA pairs join the pretraining data (the paper's *mixed training*), ``mix_copies``
            copies of each, as plain text.

    Raises:
        ValueError: an unknown augmentation, or ``mix_qa`` people without a biography.
    """
    from course_utils import sft

    positive_int("mix_copies", mix_copies, "pass e.g. mix_copies=2")
    tok = WordTokenizer()
    corpus = bio_corpus(people, **setup.augmentation(augmentation), seed=seed)
    texts = flatten(corpus)
    if mix_qa:
        missing = [p.name for p in mix_qa if p.name not in corpus]
        if missing:
            raise ValueError(f"mix_qa has people without a biography (e.g. {missing[0]!r}); pass a subset of people.")
        texts += [q + a.rstrip("\n") for q, a in qa_pairs(mix_qa)] * mix_copies
    model = TinyGPT(setup.config(len(tok)), seed=seed).to(device)
    cfg = sft.TrainConfig(steps=setup.steps, batch_size=setup.batch_size, lr=setup.lr,
                          warmup_steps=max(1, setup.steps // 20), weight_decay=0.1, seed=seed, plot=None,
                          progress=progress)
    if progress:
        extra = f" + {len(texts) - len(flatten(corpus))} QA texts" if mix_qa else ""
        print(f"pretraining on {len(flatten(corpus))} biographies ({augmentation}){extra}")
    t0 = time.perf_counter()
    result = sft.train(model, text_examples(tok, texts), cfg, pad_id=tok.pad_id)
    return BioModel(model, tok, list(people), augmentation, corpus, time.perf_counter() - t0, result.losses[-1],
                    mixed_qa=len(mix_qa) * len(ATTRIBUTES))


@torch.no_grad()
def exact_match(model: TinyGPT, examples: Sequence[dict], batch_size: int = 128) -> list[bool]:
    """Per example: does greedy decoding write exactly its target tokens (the answer and the newline)?

    Greedy decoding writes the target iff the most likely next token is the target's at every target position
    (with the right prefix before it), so one teacher-forced forward pass decides it.
    """
    from course_utils.sft import IGNORE_INDEX, SFTCollator

    positive_int("batch_size", batch_size, "pass e.g. batch_size=128")
    dev = model_device(model)
    was_training = model.training
    model.eval()
    out: list[bool] = []
    for i in range(0, len(examples), batch_size):
        b = SFTCollator(0)(examples[i:i + batch_size])
        pred = model(input_ids=b["input_ids"].to(dev)).logits[:, :-1].argmax(-1).cpu()
        labels = b["labels"][:, 1:]
        out += ((pred == labels) | (labels == IGNORE_INDEX)).all(1).tolist()
    model.train(was_training)
    return out


def qa_accuracy(run: BioModel, people: Sequence[Person], attributes: Sequence[str] = ATTRIBUTES) -> dict[str, float]:
    """Exact-match QA accuracy on ``people`` per attribute, and their ``mean``.

    Raises:
        ValueError: someone who was not in the pretraining biographies, or an unknown attribute.
    """
    not_a_str("people", people, "pass e.g. split_people(people)[1]")
    non_empty("people", people, "pass the people to ask about, e.g. split_people(people)[1]")
    _check_attributes(attributes)
    non_empty("attributes", attributes, f"pass e.g. {ATTRIBUTES}")
    run.check_known(people)
    out = {a: sum(exact_match(run.model, qa_examples(run.tok, qa_pairs(people, [a])))) / len(people)
           for a in attributes}
    out["mean"] = sum(out[a] for a in attributes) / len(attributes)
    return out


def recall_accuracy(run: BioModel, people: Sequence[Person]) -> float:
    """Memorisation: the share of attribute values the model completes right *inside* each person's first
    pretraining biography (the text before the value as the prompt). High = the facts are stored.

    Raises:
        ValueError: someone who was not in the pretraining biographies.
    """
    not_a_str("people", people)
    non_empty("people", people, "pass the people to ask about, e.g. split_people(people)[1]")
    run.check_known(people)
    pairs = []
    for p in people:
        bio = run.corpus[p.name][0]
        for a in ATTRIBUTES:
            cut = re.search(" " + re.escape(p.value(a)) + "(?=[ .])", bio).start()
            pairs.append((bio[:cut], " " + p.value(a)))
    examples = qa_examples(run.tok, pairs)
    return sum(exact_match(run.model, examples)) / len(examples)


def majority_baseline(train_people: Sequence[Person], test_people: Sequence[Person]) -> float:
    """The accuracy of always answering the most common value among the QA-training people: what a model that
    learned the answer format but nothing about the held-out people would score."""
    from collections import Counter

    for name, group in (("train_people", train_people), ("test_people", test_people)):
        not_a_str(name, group)
        non_empty(name, group, "pass both halves of split_people(people)")
    hits = 0
    for a in ATTRIBUTES:
        top = Counter(p.value(a) for p in train_people).most_common(1)[0][0]
        hits += sum(p.value(a) == top for p in test_people)
    return hits / (len(ATTRIBUTES) * len(test_people))


def qa_finetune(run: BioModel, train_people: Sequence[Person], setup: BiosSetup, *,
                test_people: Sequence[Person] = (), seed: int = 0, progress: bool = True) -> tuple[BioModel, list]:
    """Fine-tune a copy of the pretrained model on QA about ``train_people`` (every attribute, full fine-tuning).

    Returns:
        ``(tuned, curve)``: the fine-tuned copy, and ``[(step, train-people accuracy, test-people accuracy)]``
        measured ``qa_evals`` times during the run (the pretrained ``run`` is not changed).
    """
    from course_utils import sft

    not_a_str("train_people", train_people)
    non_empty("train_people", train_people, "pass split_people(people)[0]")
    run.check_known([*train_people, *test_people])
    tuned = dataclasses.replace(run, model=copy.deepcopy(run.model))
    train_ex = qa_examples(run.tok, qa_pairs(train_people))
    test_ex = qa_examples(run.tok, qa_pairs(test_people)) if test_people else []
    every = max(1, setup.qa_steps // setup.qa_evals)
    curve = []

    def record(step: int, _loss: float) -> None:
        if step % every == 0 or step == setup.qa_steps:
            tr = sum(exact_match(tuned.model, train_ex)) / len(train_ex)
            te = sum(exact_match(tuned.model, test_ex)) / len(test_ex) if test_ex else float("nan")
            curve.append((step, tr, te))

    cfg = sft.TrainConfig(steps=setup.qa_steps, batch_size=setup.qa_batch, lr=setup.qa_lr, seed=seed, plot=None,
                          progress=progress)
    sft.train(tuned.model, train_ex, cfg, pad_id=run.tok.pad_id, on_step=record)
    return tuned, curve


#: The chapter's pretraining variants: (corpus, whether QA about the QA-training half is mixed into pretraining).
VARIANTS = {
    "single": ("single", False),
    "rewrites": ("rewrites", False),
    "rewrites + mixed QA": ("rewrites", True),
    "partial": ("partial", False),
    "single + mixed QA": ("single", True),
}


@dataclass
class ExtractionResult:
    """One variant of the experiment: what was memorised and what could be extracted, on the held-out people."""

    variant: str
    recall: float  # attribute values completed inside the held-out people's own biographies
    before_qa: float  # held-out QA accuracy straight after pretraining
    train_qa: float  # QA accuracy on the QA-training people after the fine-tune
    test_qa: dict  # held-out QA accuracy after the fine-tune, per attribute and "mean"
    curve: list  # (step, train-people accuracy, held-out accuracy) during the QA fine-tune
    seconds: float
    tuned: BioModel = field(repr=False)


def extraction_experiment(setup: BiosSetup, variants: Sequence[str] = ("single", "rewrites", "rewrites + mixed QA"),
                          *, seed: int = 0, device: str | torch.device = "cpu",
                          progress: bool = True) -> tuple[dict[str, ExtractionResult], float]:
    """Pretrain one TinyGPT per variant (:data:`VARIANTS`) on the same people, QA-fine-tune each on the first
    half, test on the second half.

    Returns:
        ``({variant: ExtractionResult}, majority_baseline)``.

    Raises:
        ValueError: an unknown variant.
    """
    not_a_str("variants", variants, f"pass a list, e.g. variants=[{variants!r}]")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"Unknown variant(s) {bad}; choose from {list(VARIANTS)}.")
    people = make_people(setup.n_people, seed)
    train_p, test_p = split_people(people)
    out = {}
    for v in variants:
        aug, mixed = VARIANTS[v]
        t0 = time.perf_counter()
        run = pretrain_bios(people, setup, aug, mix_qa=train_p if mixed else (), seed=seed, device=device,
                            progress=progress)
        before = qa_accuracy(run, test_p)["mean"]
        tuned, curve = qa_finetune(run, train_p, setup, test_people=test_p, seed=seed, progress=progress)
        out[v] = ExtractionResult(v, recall_accuracy(run, test_p), before, curve[-1][1], qa_accuracy(tuned, test_p),
                                  curve, time.perf_counter() - t0, tuned)
    return out, majority_baseline(train_p, test_p)


def format_extraction(results: dict[str, ExtractionResult], baseline: float) -> str:
    """The results as a text table (accuracies on the held-out half unless said otherwise)."""
    head = (f"{'variant':22}{'recall in bio':>14}{'QA before FT':>13}{'QA train half':>14}{'QA held-out':>12}"
            f"{'time':>7}")
    lines = [head]
    for r in results.values():
        lines.append(f"{r.variant:22}{r.recall:>14.3f}{r.before_qa:>13.3f}{r.train_qa:>14.3f}"
                     f"{r.test_qa['mean']:>12.3f}{r.seconds:>6.0f}s")
    lines.append(f"{'majority answer':22}{'':>41}{baseline:>12.3f}")
    return "\n".join(lines)


def plot_extraction(results: dict[str, ExtractionResult], baseline: float, axes=None):
    """Left: recall inside the biographies vs QA on the held-out half, per variant (the majority answer dashed).
    Right: held-out QA accuracy during the QA fine-tune."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = list(results)
    x = torch.arange(len(names)).float()
    axes[0].bar(x - 0.2, [results[n].recall for n in names], 0.4, label="recall inside its biography")
    axes[0].bar(x + 0.2, [results[n].test_qa["mean"] for n in names], 0.4, label="QA after fine-tuning")
    axes[0].axhline(baseline, color="grey", ls="--", lw=1, label="majority answer")
    axes[0].set_xticks(x.tolist(), names)
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("accuracy on the held-out half")
    axes[0].set_title("Stored is not the same as extractable")
    axes[0].legend(fontsize=8)
    for n in names:
        steps, _, test = zip(*results[n].curve)
        axes[1].plot(steps, test, "o-", label=n)
    axes[1].axhline(baseline, color="grey", ls="--", lw=1)
    axes[1].set_xlabel("QA fine-tuning step")
    axes[1].set_ylabel("held-out QA accuracy")
    axes[1].set_title("Fine-tuning QA on half the people")
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(fontsize=8)
    return axes
