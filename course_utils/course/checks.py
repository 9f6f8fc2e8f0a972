"""Auto-checks for the chapters' exercises: one checker per exercise, a hint on failure, and a progress record.

In ``lessons_src`` an exercise is a code cell tagged ``exercise`` (a function with ``# TODO`` lines) followed by a
cell tagged ``solution`` (the same function, filled in). Both end with ``checks.check("01.causal_mask", answer)``.
A checker calls the learner's function on small inputs and compares it with the course's own implementation
(``masks``, ``prompting``, ``lora``, ``positions``...). It says *what* is wrong, never what to write, and it never
raises on a wrong answer: a notebook whose exercises are still blank runs top to bottom.

Passes are recorded in a small JSON file (``~/.cache/sft-course/progress.json``, or ``$COURSE_PROGRESS_FILE``);
``python -m course_utils progress`` and :func:`progress_widget` show which exercises pass.

The checkers live in ``course_utils/course/exercises/chNN.py``, one module per chapter, registered with
:func:`exercise` and imported when one of the chapter's exercises is first checked (:func:`load_chapter`);
:func:`all_exercises` imports them all.
"""

from __future__ import annotations

import argparse
import functools
import html
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .chapters import CHAPTERS

PROGRESS_ENV = "COURSE_PROGRESS_FILE"
GRADE_ENV = "COURSE_GRADE_DIR"  # set by the grader in the kernels it runs (course_utils.course.grade)
TIERS = ("warm-up", "core", "stretch")


class Hint(Exception):
    """A wrong answer, with a hint about what to look at (raised inside checkers, caught by :func:`check`)."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``NN.name``), the chapter stem, its tier, a title, and the checker behind it."""

    id: str
    chapter: str
    tier: str
    title: str
    checker: Callable[[Any], None]


EXERCISES: dict[str, Exercise] = {}


def _chapter_of(exercise_id: str) -> str:
    num = exercise_id.split(".")[0]
    for ch in CHAPTERS:
        if ch.stem.split("_")[0] == num:
            return ch.stem
    raise ValueError(f"Exercise id {exercise_id!r} must start with a chapter number, e.g. '01.causal_mask'.")


def exercise(exercise_id: str, tier: str, title: str) -> Callable:
    """Register a checker (a function that raises :class:`Hint`) and return its public ``answer -> bool`` form."""
    if tier not in TIERS:
        raise ValueError(f"Exercise {exercise_id!r}: tier {tier!r} is not one of {TIERS}.")

    def register(checker: Callable[[Any], None]) -> Callable[[Any], bool]:
        EXERCISES[exercise_id] = Exercise(exercise_id, _chapter_of(exercise_id), tier, title, checker)

        @functools.wraps(checker)
        def run(answer: Any) -> bool:
            return check(exercise_id, answer)

        run.__annotations__ = {**checker.__annotations__, "return": bool}  # wraps copied the checker's "-> None"
        return run

    return register


def load_chapter(exercise_id: str) -> None:
    """Import the checkers of the chapter an exercise id (``"06.rotate_half"``) or chapter number (``"05"``)
    belongs to; importing registers them in :data:`EXERCISES`.

    Raises:
        KeyError: a chapter with no exercise module, naming the id.
    """
    num = exercise_id.split(".")[0]
    try:
        importlib.import_module(f"{__package__}.exercises.ch{num}")
    except ModuleNotFoundError as err:
        if not err.name or not err.name.endswith(f"exercises.ch{num}"):
            raise
        raise KeyError(f"No exercise {exercise_id!r}: ids start with a chapter number that has exercises, "
                       f"e.g. '01.causal_mask'.") from None


def all_exercises() -> dict[str, Exercise]:
    """Every chapter's exercises, in chapter order (imports every exercise module)."""
    for ch in CHAPTERS:
        try:
            load_chapter(ch.stem.split("_")[0])
        except KeyError:  # a chapter without exercises
            pass
    order = {ch.stem: i for i, ch in enumerate(CHAPTERS)}
    return dict(sorted(EXERCISES.items(), key=lambda kv: (order[kv[1].chapter], list(EXERCISES).index(kv[0]))))


def _known(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        load_chapter(exercise_id)
    if exercise_id not in EXERCISES:
        raise KeyError(f"No exercise {exercise_id!r}; known: {', '.join(all_exercises())}.")
    return EXERCISES[exercise_id]


def verdict(exercise_id: str, answer: Any) -> tuple[bool, str]:
    """Run one exercise's checker on ``answer``: ``(True, "")`` or ``(False, hint)``, never an exception.

    A wrong answer, a blank (``raise NotImplementedError``) or an answer that crashes gives False and a hint.
    This is what :func:`check` prints in a learner's notebook and what ``python -m course_utils grade`` writes.

    Raises:
        KeyError: an exercise id that does not exist (a typo in the lesson, not a wrong answer).
    """
    ex = _known(exercise_id)
    try:
        ex.checker(answer)
    except Hint as hint:
        return False, str(hint)
    except NotImplementedError:
        return False, ("this is still the blank. Replace `raise NotImplementedError` below the # TODO with your "
                       "code, then run the cell again.")
    except Exception as err:  # the learner's code crashed: a hint, and the notebook keeps running
        return False, f"your code raised {type(err).__name__}: {err}"
    return True, ""


def check(exercise_id: str, answer: Any, *, record: bool = True) -> bool:
    """Check ``answer`` for one exercise: print "✓ passed" (and record it) or a hint, and return True/False.

    When a grader runs the notebook (``$COURSE_GRADE_DIR`` set), the answer is handed in to it instead: the
    grader runs the checker in its own process, on the answer itself, not on what the notebook printed.

    Raises:
        KeyError: an exercise id that does not exist (a typo in the lesson, not a wrong answer).
    """
    if os.environ.get(GRADE_ENV):
        _known(exercise_id)
        hand_in(exercise_id, answer, Path(os.environ[GRADE_ENV]))
        return False
    passed, hint = verdict(exercise_id, answer)
    ex = _known(exercise_id)
    if not passed:
        print(f"✗ {ex.id} not yet: {hint}")
        return False
    print(f"✓ {ex.id} passed: {ex.title}")
    if record:
        record_pass(ex.id)
    return True


def hand_in(exercise_id: str, answer: Any, directory: Path) -> None:
    """Save ``answer`` for the grader (:func:`check` calls this when ``$COURSE_GRADE_DIR`` is set; the grader,
    ``course.grade``, reads it back).

    Functions and classes the student defined in the notebook are pickled by value (cloudpickle), so the grader's
    process can call them; an answer that cannot be pickled leaves a note the grader reports.
    """
    import cloudpickle

    directory.mkdir(parents=True, exist_ok=True)
    try:
        data = cloudpickle.dumps(answer)
    except Exception as err:  # a generator, an open file...: say so in the grades, keep the notebook running
        (directory / f"{exercise_id}.error").write_text(f"{type(err).__name__}: {err}")
        print(f"✗ {exercise_id} could not be handed in for grading: {type(err).__name__}: {err}")
        return
    (directory / f"{exercise_id}.pkl").write_bytes(data)
    print(f"→ {exercise_id} handed in for grading")


# ---- progress ------------------------------------------------------------------------------------------------

def progress_file() -> Path:
    """Where passes are recorded: ``$COURSE_PROGRESS_FILE``, else ``~/.cache/sft-course/progress.json``."""
    env = os.environ.get(PROGRESS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sft-course" / "progress.json"


def load_progress() -> dict[str, str]:
    """``{exercise id: when it first passed (ISO time)}``; empty when there is no file or it is unreadable."""
    path = progress_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.get("passed", {}).items()} if isinstance(data, dict) else {}


def record_pass(exercise_id: str) -> None:
    """Record that an exercise passed (the first time counts). A file that cannot be written is only reported."""
    passed = load_progress()
    if exercise_id in passed:
        return
    passed[exercise_id] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = progress_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"passed": dict(sorted(passed.items()))}, indent=1) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves half a file
    except OSError as err:
        print(f"(progress not saved to {path}: {err})")


def _match_chapter(chapter: str | None, stem: str) -> bool:
    return chapter is None or stem == chapter or stem.split("_")[0] == chapter.zfill(2)


def progress_rows(chapter: str | None = None) -> list[dict]:
    """One row per exercise (``chapter``, ``id``, ``tier``, ``title``, ``passed``), optionally for one chapter
    (``"04"`` or ``"04_peft"``)."""
    passed = load_progress()
    return [{"chapter": ex.chapter, "id": ex.id, "tier": ex.tier, "title": ex.title, "passed": ex.id in passed}
            for ex in all_exercises().values() if _match_chapter(chapter, ex.chapter)]


def progress_table(chapter: str | None = None) -> str:
    """The progress as a text table, chapter x exercise x passed / not yet, with a total."""
    rows = progress_rows(chapter)
    w = max([len(r["chapter"]) for r in rows] + [7])
    lines = [f"{'chapter':<{w}}  {'exercise':<24} {'tier':<8} status", "-" * (w + 48)]
    lines += [f"{r['chapter']:<{w}}  {r['id']:<24} {r['tier']:<8} {'✓ passed' if r['passed'] else '· not yet'}"
              for r in rows]
    lines.append(f"{sum(r['passed'] for r in rows)} of {len(rows)} exercises passed ({progress_file()})")
    return "\n".join(lines)


def progress_html(chapter: str | None = None) -> str:
    """The progress as an HTML table (what :func:`progress_widget` shows)."""
    rows = progress_rows(chapter)
    cells = "".join(f"<tr><td>{html.escape(r['chapter'])}</td><td>{html.escape(r['id'])}</td><td>{r['tier']}</td>"
                    f"<td>{html.escape(r['title'])}</td><td>{'✅ passed' if r['passed'] else '⬜ not yet'}</td></tr>"
                    for r in rows)
    head = "<tr><th>chapter</th><th>exercise</th><th>tier</th><th>what</th><th>status</th></tr>"
    total = f"<p>{sum(r['passed'] for r in rows)} of {len(rows)} exercises passed</p>"
    return f"<table>{head}{cells}</table>{total}"


def progress_widget(chapter: str | None = None):
    """An ipywidgets HTML table of :func:`progress_rows` (the text table is printed where ipywidgets is missing).

    Returns the widget, or ``None`` without ipywidgets.
    """
    try:
        import ipywidgets as w
    except ImportError:
        print(progress_table(chapter))
        return None
    return w.HTML(progress_html(chapter))


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils progress [--chapter NN]``: print which exercises pass."""
    parser = argparse.ArgumentParser(prog="python -m course_utils progress")
    parser.add_argument("--chapter", help="one chapter, e.g. 04 or 04_peft")
    args = parser.parse_args(argv)
    print(progress_table(args.chapter))
    return 0
