"""The bilingual glossary: English term, the Chinese term the seeds use, a definition, the chapters that teach it.

The data is ``data/glossary.json``; :func:`glossary_markdown` renders ``GLOSSARY.md`` at the repository root,
which ``python -m course_utils notebooks`` writes and ``--check`` reports when stale (``course/lessons.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import chapters

GLOSSARY_JSON = Path(__file__).parent / "data" / "glossary.json"
GLOSSARY_NAME = "GLOSSARY.md"


@dataclass(frozen=True)
class Term:
    """One glossary entry."""

    en: str
    zh: str
    definition: str
    chapters: tuple[str, ...]


def validate_glossary(entries: list[dict]) -> list[Term]:
    """Check raw glossary entries and return them as :class:`Term` objects.

    Raises ``ValueError`` naming the entry: a missing field, a chapter that is not in ``chapters.CHAPTERS``, or an
    English term listed twice.
    """
    stems = {c.stem for c in chapters.CHAPTERS}
    terms, seen = [], set()
    for n, e in enumerate(entries, 1):
        name = e.get("en") or f"entry {n}"
        for field in ("en", "zh", "definition", "chapters"):
            if not e.get(field):
                raise ValueError(f"glossary {name!r}: missing {field!r}")
        unknown = [c for c in e["chapters"] if c not in stems]
        if unknown:
            raise ValueError(f"glossary {name!r}: unknown chapters {unknown}; use stems from chapters.CHAPTERS")
        if e["en"].lower() in seen:
            raise ValueError(f"glossary {name!r} is listed twice; merge the entries")
        seen.add(e["en"].lower())
        terms.append(Term(e["en"], e["zh"], e["definition"], tuple(e["chapters"])))
    return terms


def load_glossary() -> list[Term]:
    """The validated glossary, sorted by English term (case-insensitive)."""
    terms = validate_glossary(json.loads(GLOSSARY_JSON.read_text(encoding="utf-8")))
    return sorted(terms, key=lambda t: t.en.lower())


def _chapter_link(stem: str) -> str:
    ch = next(c for c in chapters.CHAPTERS if c.stem == stem)
    num = str(int(stem[:2]))
    if not chapters.lesson_path(ch).exists():  # planned chapters have no notebook to link to yet
        return num
    return f"[{num}](notebooks/{stem}.ipynb \"{ch.title}\")"


def glossary_markdown() -> str:
    """The text of ``GLOSSARY.md``: one table row per term, sorted by English term, chapters linked."""
    rows = ["# Glossary · 术语表", "",
            "Every term the course teaches, with the Chinese term the source documents use, a one-line definition "
            "and the chapters (linked to their notebooks) where it is taught.", "",
            "*Generated from `course_utils/course/data/glossary.json` by `python -m course_utils notebooks`; edit the "
            "JSON, not this file.*", "",
            "| English | 中文 | definition | chapters |", "|---|---|---|---|"]
    for t in load_glossary():
        cells = [t.en, t.zh, t.definition, ", ".join(_chapter_link(c) for c in t.chapters)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def glossary_path() -> Path:
    """Where ``GLOSSARY.md`` goes: the repository root (read at call time, so tests can move it)."""
    return chapters.ROOT / GLOSSARY_NAME
