"""Bad inputs and the words their error must contain, shared by the ``test_bad_inputs_*`` files and by
``tools/bad_inputs.py`` (which counts clear / unclear / silent over every case).

A case is ``Case(id, call, words)``: ``call()`` must raise a ``ValueError`` / ``TypeError`` (or a subclass, e.g.
``FileNotFoundError`` is an ``OSError`` and also accepted) raised by the course's own code, whose message contains
every one of ``words`` (case-insensitive): the value and the fix.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

ACCEPTED = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError, LookupError)


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    words: Sequence[str] = field(default_factory=tuple)


def params(cases: Sequence[Case]) -> list:
    """``pytest.mark.parametrize("case", params(CASES))`` with readable ids."""
    return [pytest.param(c, id=c.id) for c in cases]


def _raised_by_course(err: BaseException) -> bool:
    """True when the innermost frame that raised ``err`` is the course's own code (not torch's, json's...)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and "course_utils" in frames[-1].filename


def classify(case: Case) -> tuple[str, str]:
    """``("clear" | "unclear" | "silent", message)`` for one case."""
    try:
        case.call()
    except Exception as err:  # noqa: BLE001 - classifying any error is the point
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        clear = (isinstance(err, ACCEPTED) and _raised_by_course(err)
                 and all(w.lower() in message.lower() for w in case.words))
        return ("clear" if clear else "unclear"), f"{type(err).__name__}: {message}"
    return "silent", "no error"


def check_refused(case: Case) -> None:
    """The assertion every ``test_bad_inputs_*`` test makes."""
    with pytest.raises(ACCEPTED) as info:
        case.call()
    err = info.value
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    assert _raised_by_course(err), f"{case.id}: raised from outside the course: {type(err).__name__}: {message}"
    missing = [w for w in case.words if w.lower() not in message.lower()]
    assert not missing, f"{case.id}: message lacks {missing}: {message}"
