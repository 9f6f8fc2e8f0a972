"""Small datasets written for the course (see README.md here for how each was made and its licence)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files


def load_lines(name: str) -> list[str]:
    """The non-empty lines of a shipped text file, e.g. ``load_lines("probe_sentences.txt")``.

    Raises:
        FileNotFoundError: naming the files that do exist.
    """
    if not isinstance(name, str) or not name.strip():
        raise (ValueError if isinstance(name, str) else TypeError)(
            f"load_lines takes a file name (str), got {name!r}: pass e.g. load_lines('probe_sentences.txt').")
    root = files(__name__)
    path = root / name
    if not path.is_file():
        have = sorted(p.name for p in root.iterdir() if p.name.endswith((".txt", ".jsonl")))
        raise FileNotFoundError(f"No course data file {name!r}; available: {', '.join(have)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    label: str


SENTIMENT_LABELS = ("positive", "neutral", "negative")
SPLITS = ("train", "dev", "test")


def load_sentiment(split: str = "test", source: str = "course", limit: int | None = None) -> list[Example]:
    """Sentiment examples for chapters 2-5 and 8.

    Args:
        split: ``train``, ``dev`` or ``test``.
        source: ``course`` (the shipped 3-class set ``sentiment3.jsonl``, offline), or ``sst2`` (the public
            2-class SST-2 from the hub, online only, needs ``pip install datasets``; its ``dev`` is SST-2's
            validation set and its ``test``, whose labels are hidden, is also the validation set).
        limit: keep ``limit`` examples, taken label by label in turn (class-balanced; see :func:`balanced`).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    if limit is not None:
        _check_limit(limit)
    if source == "course":
        rows = [json.loads(line) for line in load_lines("sentiment3.jsonl")]
        data = [Example(r["text"], r["label"]) for r in rows if r["split"] == split]
    elif source == "sst2":
        data = _load_sst2(split)
    else:
        raise ValueError(f"Unknown source {source!r}; use 'course' (offline) or 'sst2' (online).")
    return balanced(data, limit) if limit is not None else data


def _check_limit(limit, name: str = "limit") -> None:
    # 0 or a negative number would silently give no examples at all; None means "all of them"
    fix = f"pass e.g. {name}=16, or {name}=None for every example" if name == "limit" else f"pass e.g. {name}=16"
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"{name} must be a positive int, got {limit!r}: {fix}.")
    if limit < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {limit!r}: {fix}.")


def balanced(data: list[Example], n: int) -> list[Example]:
    """The first ``n`` examples taken round-robin over the labels (in order of first appearance), so a small
    subset has every label about equally often."""
    _check_limit(n, "n")
    by_label: dict[str, list[Example]] = {}
    for ex in data:
        by_label.setdefault(ex.label, []).append(ex)
    out: list[Example] = []
    queues = [iter(v) for v in by_label.values()]
    while len(out) < min(n, len(data)):
        for q in queues:
            ex = next(q, None)
            if ex is not None and len(out) < n:
                out.append(ex)
    return out


def _load_sst2(split: str) -> list[Example]:
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise ImportError("SST-2 needs the `datasets` package: `pip install datasets` (and a network).") from err
    hub_split = "train" if split == "train" else "validation"
    ds = load_dataset("stanfordnlp/sst2", split=hub_split)
    names = {0: "negative", 1: "positive"}
    return [Example(r["sentence"].strip(), names[r["label"]]) for r in ds]
