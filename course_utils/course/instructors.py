"""The chapter guide of ``INSTRUCTORS.md``: for each chapter its measured times, what it needs, its learning
objectives and its exercises, generated (between ``<!-- chapters:start -->`` and ``<!-- chapters:end -->``) by
``python -m course_utils notebooks`` from what already says it once: the lesson's runtime table and objectives,
the chapter list (:data:`chapters.CHAPTERS`) and the exercise registry (:func:`checks.all_exercises`).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import chapters

INSTRUCTORS_NAME = "INSTRUCTORS.md"
_SECTION = re.compile(r"(<!-- chapters:start -->\n).*?(\n<!-- chapters:end -->)", re.S)
_RUNTIME_ROW = re.compile(r"^# \| (smoke|cpu|gpu) \| (.+?) \| (.+?) \|\s*$", re.M)


def instructors_path() -> Path:
    """``INSTRUCTORS.md`` at the repository root (read at call time, so tests can move the root)."""
    return chapters.ROOT / INSTRUCTORS_NAME


def runtimes(source: str) -> dict[str, tuple[str, str]]:
    """``{profile: (machine, time)}`` from a lesson's runtime table."""
    return {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in _RUNTIME_ROW.finditer(source)}


def objectives(source: str) -> list[str]:
    """The numbered learning objectives of a lesson (each item joined onto one line)."""
    block = re.search(r"\*\*Learning objectives\.\*\*[^\n]*\n((?:# .*\n)+)", source)
    if not block:
        return []
    items: list[str] = []
    for line in block.group(1).splitlines():
        text = line[2:]
        if re.match(r"\d+\. ", text):
            items.append(text.split(". ", 1)[1].strip())
        elif items and text.startswith("   "):
            items[-1] += " " + text.strip()
    return items


def chapter_guide() -> str:
    """The generated chapter section of ``INSTRUCTORS.md``."""
    from .checks import all_exercises

    out = []
    for ch in chapters.written_chapters():
        source = chapters.lesson_path(ch).read_text(encoding="utf-8")
        times = runtimes(source)
        num = ch.stem.split("_")[0]
        out.append(f"### {num} · {ch.title}\n")
        models = ", ".join(f"`{m}`" for m in ch.models if "-part" not in m)  # Gemma's chunks come with it
        memory = f"{ch.peak_gib:.1f} GiB" if ch.peak_gib else "not measured"
        out.append(f"[`notebooks/{ch.stem}.ipynb`](notebooks/{ch.stem}.ipynb) · source sections: {ch.sources} · "
                   f"model packages: {models} · peak memory of the cpu profile's kernel: {memory} · "
                   "GPU: not needed (the gpu profile uses one when there is one)\n")
        out.append("| profile | machine | time |\n|---|---|---|")
        out += [f"| {p} | {times[p][0]} | {times[p][1]} |" for p in ("smoke", "cpu", "gpu") if p in times]
        goals = objectives(source)
        if goals:
            out.append("\n**Learning objectives.** After this chapter you can")
            out += [f"{i}. {g}" for i, g in enumerate(goals, 1)]
        exercises = [e for e in all_exercises().values() if e.chapter == ch.stem]
        if exercises:
            out.append("\n**Exercises** (graded by `python -m course_utils grade`):")
            out += [f"- `{e.id}` ({e.tier}): {e.title}" for e in exercises]
        out.append("")
    return "\n".join(out).rstrip()


def render(text: str) -> str:
    """``INSTRUCTORS.md`` with its chapter section replaced by :func:`chapter_guide`.

    Raises:
        ValueError: the file lacks the section's markers.
    """
    if not _SECTION.search(text):
        raise ValueError(f"{INSTRUCTORS_NAME} lacks the <!-- chapters:start --> / <!-- chapters:end --> markers.")
    return _SECTION.sub(lambda m: m.group(1) + chapter_guide() + m.group(2), text)
