"""End-of-chapter quizzes: multiple-choice questions with an explanation for every option.

The questions live in ``data/quizzes.json``, keyed by chapter stem (``"02_prompt_learning"``). Each question has a
``prompt``, 3-4 ``options`` (``text``, ``correct``, ``explanation``) with exactly one correct, and optionally
``seed`` (``"001 §3"``: question 3 of the LLM Q&A, see ``chapters.SOURCES``) when it covers one of its
questions. :func:`show_quiz` renders the quiz as ipywidgets in a notebook, and as plain text elsewhere, answered
with :func:`answer`.
"""

from __future__ import annotations

import html
import json
import os
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from course_utils.widgets import in_notebook_kernel

from .chapters import CHAPTERS

QUIZZES = Path(__file__).parent / "data" / "quizzes.json"
#: Set to 1 to get the plain-text quiz even where widgets would render (screen readers, terminals, exports).
PLAIN_ENV = "COURSE_PLAIN_QUIZ"
LETTERS = "abcd"


@dataclass(frozen=True)
class Option:
    """One answer option and why it is right or wrong."""

    text: str
    correct: bool
    explanation: str


@dataclass(frozen=True)
class Question:
    """A multiple-choice question: its prompt, its options (exactly one correct) and the LLM Q&A question
    it covers."""

    prompt: str
    options: tuple[Option, ...]
    seed: str | None = None

    @property
    def answer_letter(self) -> str:
        """The letter of the correct option."""
        return LETTERS[next(i for i, o in enumerate(self.options) if o.correct)]


@dataclass(frozen=True)
class Verdict:
    """The grade of one answer. Displays itself as the feedback, so ``answer(...)`` in a cell shows it once."""

    correct: bool
    letter: str
    explanation: str

    def __str__(self) -> str:
        head = "Right." if self.correct else "Not quite."
        return f"({self.letter}) {head} {self.explanation}"

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.correct


def _known_chapter(chapter: str) -> str:
    stems = [c.stem for c in CHAPTERS]
    if chapter not in stems:
        raise ValueError(f"unknown chapter {chapter!r}: use a stem from course_utils.course.chapters.CHAPTERS, "
                         f"e.g. {stems[2]!r}")
    return chapter


def validate_quiz(questions: list[dict], chapter: str | None = None) -> list[Question]:
    """Check raw quiz data (a list of question dicts) and return it as :class:`Question` objects.

    Raises ``ValueError`` naming the question and the problem: an unknown chapter, a missing prompt, fewer than
    3 or more than 4 options, no or several correct options, a missing explanation, duplicate option texts.
    """
    where = f"quiz {chapter!r}" if chapter else "quiz"
    if chapter is not None:
        _known_chapter(chapter)
    if not questions:
        raise ValueError(f"{where} has no questions: add at least one")
    out = []
    for n, q in enumerate(questions, 1):
        at = f"{where}, question {n}"
        if not str(q.get("prompt", "")).strip():
            raise ValueError(f"{at}: missing 'prompt'")
        opts = q.get("options") or []
        if not 3 <= len(opts) <= len(LETTERS):
            raise ValueError(f"{at}: has {len(opts)} options; give 3 or 4")
        n_correct = sum(bool(o.get("correct")) for o in opts)
        if n_correct != 1:
            what = "no correct option" if n_correct == 0 else f"{n_correct} correct options"
            raise ValueError(f"{at}: {what}; mark exactly one option \"correct\": true")
        texts = [str(o.get("text", "")).strip() for o in opts]
        for letter, o, text in zip(LETTERS, opts, texts):
            if not text:
                raise ValueError(f"{at}, option ({letter}): missing 'text'")
            if not str(o.get("explanation", "")).strip():
                raise ValueError(f"{at}, option ({letter}): missing 'explanation' (say why it is right or wrong)")
        dupes = sorted({t for t in texts if texts.count(t) > 1})
        if dupes:
            raise ValueError(f"{at}: duplicate options {dupes}; every option must differ")
        out.append(Question(q["prompt"].strip(), tuple(Option(t, bool(o.get("correct")), o["explanation"].strip())
                                                       for t, o in zip(texts, opts)), q.get("seed")))
    return out


@lru_cache(maxsize=1)
def _raw() -> dict:
    return json.loads(QUIZZES.read_text(encoding="utf-8"))


def load_quiz(chapter: str) -> list[Question]:
    """The validated questions of one chapter (raises ``ValueError`` for an unknown chapter or bad data)."""
    _known_chapter(chapter)
    if chapter not in _raw():
        raise ValueError(f"no quiz for {chapter!r} in {QUIZZES.name}: add one under that key")
    return validate_quiz(_raw()[chapter], chapter)


def answer(chapter: str, question: int, letter: str) -> Verdict:
    """Grade an answer to the plain-text quiz: ``answer("02_prompt_learning", 1, "b")``.

    ``question`` counts from 1, as printed. Returns a :class:`Verdict` that shows whether the option is right
    and that option's explanation.
    """
    qs = load_quiz(chapter)
    if not 1 <= question <= len(qs):
        raise ValueError(f"{chapter!r} has questions 1-{len(qs)}, not {question}")
    q = qs[question - 1]
    letter = str(letter).strip().lower().rstrip(")")
    letters = LETTERS[:len(q.options)]
    if len(letter) != 1 or letter not in letters:
        raise ValueError(f"question {question} has options {', '.join(letters)}; got {letter!r}")
    opt = q.options[letters.index(letter)]
    return Verdict(opt.correct, letter, opt.explanation)


def _title(chapter: str) -> str:
    ch = next(c for c in CHAPTERS if c.stem == chapter)
    return f"Chapter {int(chapter[:2])} · {ch.title}"


def quiz_text(chapter: str, width: int = 100) -> str:
    """The plain-text quiz: each question with lettered options, and how to answer."""
    qs = load_quiz(chapter)
    lines = [f"Quiz: {_title(chapter)} ({len(qs)} questions)",
             "Answer in a new cell; it says whether you are right, and why:",
             f'    from course_utils.course.quiz import answer; answer("{chapter}", 1, "b")']
    for n, q in enumerate(qs, 1):
        lines += ["", *textwrap.wrap(f"{n}. {q.prompt}", width, subsequent_indent="   ")]
        for letter, o in zip(LETTERS, q.options):
            lines += textwrap.wrap(f"{letter}) {o.text}", width, initial_indent="   ", subsequent_indent="      ")
    return "\n".join(lines)


def widgets_wanted() -> bool:
    """Whether to render widgets: in a notebook kernel with ipywidgets installed, unless ``COURSE_PLAIN_QUIZ=1``."""
    if os.environ.get(PLAIN_ENV, "") not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return in_notebook_kernel()


class QuizWidget:
    """The quiz as ipywidgets: per question, radio buttons, a Check button and feedback; a running score on top.

    Displays as the widget; a frontend that cannot render widgets (a static viewer, an export) shows the
    plain-text quiz instead, which :func:`answer` grades.
    """

    def __init__(self, chapter: str):
        import ipywidgets as w

        self.chapter, self.questions = chapter, load_quiz(chapter)
        self.results: list[bool | None] = [None] * len(self.questions)  # latest check of each question
        self.score = w.HTML()
        self.radios, self.buttons, self.feedback, rows = [], [], [], []
        for n, q in enumerate(self.questions):
            radio = w.RadioButtons(options=[f"{letter}) {o.text}" for letter, o in zip(LETTERS, q.options)],
                                   value=None, layout=w.Layout(width="95%"))
            button = w.Button(description="Check", button_style="primary")
            feedback = w.HTML()
            button.on_click(lambda _, n=n: self.check(n))
            self.radios.append(radio)
            self.buttons.append(button)
            self.feedback.append(feedback)
            rows.append(w.VBox([w.HTML(f"<b>{n + 1}. {html.escape(q.prompt)}</b>"), radio, button, feedback]))
        self.box = w.VBox([w.HTML(f"<h4>Quiz: {html.escape(_title(chapter))}</h4>"), self.score, *rows])
        self._update_score()

    def check(self, n: int) -> None:
        """Grade question ``n`` (from 0) on its current selection and show the chosen option's explanation."""
        radio, feedback = self.radios[n], self.feedback[n]
        if radio.index is None:
            feedback.value = "<i>Choose an option first.</i>"
            return
        option = self.questions[n].options[radio.index]
        self.results[n] = option.correct
        colour, head = ("green", "Right.") if option.correct else ("#b00", "Not quite.")
        feedback.value = (f"<span style='color:{colour}'><b>{head}</b></span> {html.escape(option.explanation)}")
        self._update_score()

    def _update_score(self) -> None:
        right, checked = sum(r is True for r in self.results), sum(r is not None for r in self.results)
        self.score.value = f"Score: <b>{right} / {len(self.questions)}</b> right ({checked} checked)"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = quiz_text(self.chapter)  # what a frontend without widgets shows
        return bundle


def show_quiz(chapter: str) -> QuizWidget | None:
    """A chapter's quiz: a :class:`QuizWidget` in a notebook, else the plain-text quiz printed (returns ``None``).

    Plain text where ipywidgets is missing, outside a notebook kernel, or with ``COURSE_PLAIN_QUIZ=1``.
    """
    if widgets_wanted():
        return QuizWidget(chapter)
    print(quiz_text(chapter))
    return None
