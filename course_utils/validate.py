"""Small checks for the arguments of the course's public functions: each raises a ``TypeError`` (wrong kind of
value) or ``ValueError`` (right kind, outside its domain) whose message names the argument, the value given and
the fix, so a mistake is reported where it is made rather than deep inside torch or transformers.

Every check returns the value (a count as a plain ``int``, a number as a ``float``) so a caller may write
``k = positive_int("k", k, "pass e.g. k=4")``. ``hint`` is the fix, appended after a colon.
"""

from __future__ import annotations

import argparse
import math
import operator
from collections.abc import Sequence, Sized


def _fix(hint: str) -> str:
    return f": {hint}" if hint else "."


def integer(name: str, value, hint: str = "") -> int:
    """``value`` as an ``int``; a bool, a float or anything else that is not a whole number is a ``TypeError``
    (``True`` is an int in Python, but never a count)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}{_fix(hint)}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}){_fix(hint)}") from None


def positive_int(name: str, value, hint: str = "") -> int:
    """A whole number >= 1 (a count, a size, a length)."""
    n = integer(name, value, hint or f"pass e.g. {name}=1")
    if n < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value!r}{_fix(hint or f'pass e.g. {name}=1')}")
    return n


def non_negative_int(name: str, value, hint: str = "") -> int:
    """A whole number >= 0."""
    n = integer(name, value, hint or f"pass e.g. {name}=0")
    if n < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}{_fix(hint or f'pass e.g. {name}=0')}")
    return n


def int_at_least(name: str, value, low: int, hint: str = "") -> int:
    """A whole number >= ``low``."""
    n = integer(name, value, hint or f"pass e.g. {name}={low}")
    if n < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}{_fix(hint or f'pass e.g. {name}={low}')}")
    return n


def finite_float(name: str, value, hint: str = "") -> float:
    """A real number that is neither nan nor infinite, as a ``float`` (a bool or a str is a ``TypeError``)."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a number, got {value!r}{_fix(hint)}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}){_fix(hint)}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}{_fix(hint)}")
    return x


def positive_float(name: str, value, hint: str = "") -> float:
    """A finite number > 0."""
    x = finite_float(name, value, hint)
    if x <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}{_fix(hint)}")
    return x


def non_negative_float(name: str, value, hint: str = "") -> float:
    """A finite number >= 0."""
    x = finite_float(name, value, hint)
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}{_fix(hint)}")
    return x


def float_at_least(name: str, value, low: float, hint: str = "") -> float:
    """A finite number >= ``low``."""
    x = finite_float(name, value, hint)
    if x < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}{_fix(hint)}")
    return x


def float_above(name: str, value, low: float, hint: str = "") -> float:
    """A finite number > ``low``."""
    x = finite_float(name, value, hint)
    if x <= low:
        raise ValueError(f"{name} must be > {low}, got {value!r}{_fix(hint)}")
    return x


def probability(name: str, value, hint: str = "") -> float:
    """A number in [0, 1]."""
    x = finite_float(name, value, hint)
    if not 0 <= x <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}{_fix(hint)}")
    return x


def a_str(name: str, value, hint: str = "") -> str:
    """A ``str`` (``None``, bytes or a number is a ``TypeError``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r} ({type(value).__name__}){_fix(hint)}")
    return value


def non_empty_str(name: str, value, hint: str = "") -> str:
    """A ``str`` with something other than whitespace in it."""
    a_str(name, value, hint)
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty str, got {value!r}{_fix(hint)}")
    return value


def str_list(name: str, value, hint: str = "", *, allow_empty: bool = False) -> list[str]:
    """A list or tuple of ``str`` (a bare ``str`` is a ``TypeError``: iterating it would give its characters).
    Empty is a ``ValueError`` unless ``allow_empty``."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of str, got the single {type(value).__name__} {value!r}"
                        f"{_fix(hint or f'wrap it as [{value!r}]')}")
    if not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(value).__name__}{_fix(hint)}")
    bad = next((v for v in value if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"{name} must hold only str, got {bad!r} ({type(bad).__name__}) in it{_fix(hint)}")
    if not value and not allow_empty:
        raise ValueError(f"{name} is empty{_fix(hint or f'pass at least one item in {name}')}")
    return list(value)


def not_a_str(name: str, value, hint: str = "") -> None:
    """Refuse a bare ``str`` where a collection is expected (iterating it would give its characters)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list, got the single {type(value).__name__} {value!r}"
                        f"{_fix(hint or f'wrap it as [{value!r}]')}")


def non_empty(name: str, value: Sized, hint: str = "") -> None:
    """Refuse an empty collection."""
    if len(value) == 0:
        raise ValueError(f"{name} is empty{_fix(hint or f'pass at least one item in {name}')}")


def same_length(name_a: str, a: Sized, name_b: str, b: Sized, hint: str = "") -> None:
    """Refuse two collections that must pair up one to one but have different lengths."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} items but {name_b} has {len(b)}: they must pair up one to one"
                         f"{_fix(hint)}")


def one_of(name: str, value, choices: Sequence, hint: str = "") -> None:
    """Refuse a value that is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: choose one of {list(choices)}{_fix(hint)}")


def existing_file(name: str, path, hint: str = ""):
    """``path`` as a ``pathlib.Path`` to a file that exists: anything but a str or path is a ``TypeError``, a
    missing path a ``FileNotFoundError``, a folder an ``IsADirectoryError``."""
    import os
    from pathlib import Path

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or pathlib.Path), got {path!r} ({type(path).__name__})"
                        f"{_fix(hint)}")
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{name} {str(p)!r} is a folder, not a file{_fix(hint or 'pass the file inside it')}")
    if not p.is_file():
        raise FileNotFoundError(f"{name}: no such file {str(p)!r}{_fix(hint)}")
    return p


def read_text_file(name: str, path, hint: str = "") -> str:
    """The text of an :func:`existing_file` read as UTF-8, a byte-order mark at its start dropped (editors on
    Windows write one); bytes that are not UTF-8 are a ``ValueError`` naming the file and the byte."""
    p = existing_file(name, path, hint)
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} {str(p)!r} is not UTF-8 text (byte {err.start}: {err.reason}): save it as UTF-8"
                         f"{'; ' + hint if hint else ''}.") from None


def cli_number(kind: type, low: float, *, inclusive: bool = True):
    """A command-line option's type (``add_argument(..., type=cli_number(int, 1))``): a finite ``kind`` (int /
    float) >= ``low`` (> ``low`` when not ``inclusive``); argparse reports anything else with the value."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n int' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} must be {'>=' if inclusive else '>'} {low:g}")
        return value
    return parse
