"""Instruction data (指令数据): every example is an *instruction*, an optional *input* and the *output*.

    {"instruction": "Classify the sentiment of the review.", "input": "The soup was cold.", "output": "negative"}

The instruction says what to do, the input (often empty) gives the object to do it to, the output is the answer
the model should learn. Quality and diversity of these triples decide much of what supervised fine-tuning
achieves (LLM-TAP §5.4). This module reads and writes them as JSONL (one JSON object per line, the format of
Self-Instruct and of most open datasets; Alpaca's single JSON list is read too), validates them, and renders
them with Alpaca's prompt templates (``tatsu-lab/stanford_alpaca``, ``train.py``: ``PROMPT_DICT``).

A broken line in a file of thousands should not cost the other lines: the readers report bad lines with their
line numbers (a warning, and the returned ``problems``) and skip them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path

from .validate import existing_file, read_text_file

FIELDS = ("instruction", "input", "output")

# Alpaca's templates (train.py, PROMPT_DICT), with the newline after "### Response:" that alpaca-lora's template
# adds: without it, a byte-level BPE model must start its answer mid-line (SmolLM2-Instruct just stops there).
PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


class InstructionFormatError(ValueError):
    """An example that is not a valid instruction / input / output triple."""


def validate_example(row: object, where: str = "example") -> dict:
    """Check one instruction example and return it with ``input`` defaulted to ``""`` (other keys are kept).

    Args:
        row: a mapping with a non-empty ``instruction`` and ``output`` (strings) and an optional ``input``.
        where: named in the error, e.g. ``"data.jsonl:12"``.

    Raises:
        InstructionFormatError: not a mapping, a missing or empty field, or a field that is not text.
    """
    if not isinstance(row, Mapping):
        raise InstructionFormatError(f"{where}: expected a JSON object with {FIELDS}, got {type(row).__name__}.")
    missing = [f for f in ("instruction", "output") if f not in row]
    if missing:
        raise InstructionFormatError(f"{where}: missing field(s) {missing}; an example needs 'instruction' and "
                                     "'output' ('input' may be empty or absent).")
    out = dict(row)
    out.setdefault("input", "")
    if out["input"] is None:
        out["input"] = ""
    for f in FIELDS:
        if not isinstance(out[f], str):
            raise InstructionFormatError(f"{where}: field {f!r} must be a string, not {type(out[f]).__name__}.")
    for f in ("instruction", "output"):
        if not out[f].strip():
            raise InstructionFormatError(f"{where}: field {f!r} is empty; drop the example or fill it in.")
    return out


def _warn_problems(path: Path, problems: list[tuple[int, str]]) -> None:
    if problems:
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        warnings.warn(f"{path}: skipped {len(problems)} bad line(s): {shown}{more}", stacklevel=3)


def read_jsonl(path: str | Path, validate=None) -> tuple[list[dict], list[tuple[int, str]]]:
    """Read a JSONL file, skipping blank lines; a line that does not parse (or fails ``validate``) is skipped.

    Args:
        path: the file.
        validate: optional ``f(row, where) -> row`` that raises ``ValueError`` for a bad row.

    Returns:
        ``(rows, problems)``: the good rows, and ``(line_number, reason)`` for each skipped line (also warned).

    Raises:
        FileNotFoundError / IsADirectoryError: naming the path.
        ValueError: a file that is not UTF-8, or one JSON array instead of one object per line.
    """
    path = existing_file("JSONL file", path)
    rows, problems, first = [], [], True
    with path.open(encoding="utf-8-sig") as f:  # -sig: a byte-order mark at the start is dropped, not a bad line
        for n, line in _numbered_lines(f, path):
            if not line.strip():
                continue
            if first and line.lstrip().startswith("["):
                raise ValueError(f"{path}: line {n} starts a JSON array, but JSONL has one JSON object per line. "
                                 "Write one object per line, or (Alpaca's list format) give the file a .json name "
                                 "and read it with load_instructions.")
            first = False
            try:
                row = json.loads(line)
                rows.append(validate(row, f"{path.name}:{n}") if validate else row)
            except json.JSONDecodeError as err:
                problems.append((n, f"not valid JSON ({err.msg} at column {err.colno})"))
            except ValueError as err:
                problems.append((n, str(err).split(": ", 1)[-1]))
    _warn_problems(path, problems)
    return rows, problems


def _numbered_lines(f, path: Path):
    """``(line_number, line)`` of an open text file; bytes that are not UTF-8 are named by line."""
    n = 0
    try:
        for n, line in enumerate(f, 1):  # noqa: B007 (n is read after the loop, in the error)
            yield n, line
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: line {n + 1} is not UTF-8 text ({err.reason}): save the file as UTF-8.") from None


def write_jsonl(rows: Iterable[Mapping], path: str | Path, append: bool = False) -> Path:
    """Write rows as JSONL (UTF-8, non-ASCII kept readable); ``append`` adds to an existing file.

    Each line is flushed as it is written, so a run that is stopped keeps every finished row (the resumable
    Self-Instruct stages rely on this).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
            f.flush()
    return path


def load_instructions(path: str | Path, limit: int | None = None) -> list[dict]:
    """Instruction examples from a JSONL file (or Alpaca's ``alpaca_data.json``, one JSON list), validated.

    Bad lines are skipped with a warning naming their line numbers (see :func:`read_jsonl`).

    Raises:
        FileNotFoundError / IsADirectoryError: a missing file, or a folder.
        InstructionFormatError: a JSON-list file with an invalid element (its index is named).
        ValueError: a bad ``limit``, a file that does not parse, or one without a single valid example.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise (ValueError if isinstance(limit, int) and not isinstance(limit, bool) else TypeError)(
            f"limit must be a positive int, got {limit!r}: pass e.g. limit=100, or limit=None for every example.")
    path = Path(path) if isinstance(path, (str, Path)) else path
    if isinstance(path, Path) and path.suffix == ".json":
        text = read_text_file("JSON file", path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}). A .json "
                             "file is read as one list of examples; for one object per line name it .jsonl.") from None
        if not isinstance(data, list):
            raise InstructionFormatError(f"{path}: expected a JSON list of examples (Alpaca's format).")
        rows = [validate_example(r, f"{path.name}[{i}]") for i, r in enumerate(data)]
    else:
        rows, problems = read_jsonl(path, validate_example)
        if not rows:
            why = f"none of its {len(problems)} line(s) is a valid example" if problems else "it is empty"
            raise ValueError(f"{path} holds no instruction example ({why}): each line needs a JSON object with "
                             "'instruction' and 'output'.")
    return rows[:limit] if limit else rows


def _check_rows(rows) -> None:
    # one example (a dict) or a str would be iterated key by key or character by character
    if isinstance(rows, (Mapping, str, bytes)):
        raise TypeError(f"Expected a list of examples, got one {type(rows).__name__}: wrap it as [example].")


def save_instructions(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Validate every example, then write them as JSONL.

    Raises:
        InstructionFormatError: naming the index of the first invalid example (nothing is written).
    """
    _check_rows(rows)
    checked = [validate_example(r, f"example {i}") for i, r in enumerate(rows)]
    return write_jsonl(checked, path)


def alpaca_prompt(instruction: str, input: str = "") -> str:  # noqa: A002 (the field's name)
    """The Alpaca prompt for one example: the with-input template when ``input`` is not empty, else the other."""
    for name, value in (("instruction", instruction), ("input", input)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {value!r} ({type(value).__name__}): pass the text (an "
                            "empty input is '').")
    if not instruction.strip():
        raise InstructionFormatError("Empty instruction: the prompt needs something to do.")
    if input.strip():
        return PROMPT_INPUT.format(instruction=instruction.strip(), input=input.strip())
    return PROMPT_NO_INPUT.format(instruction=instruction.strip())


def to_pairs(rows: Iterable[Mapping]) -> list[tuple[str, str]]:
    """``(alpaca_prompt, output)`` pairs for the fine-tuning engine (``sft.build_dataset``)."""
    _check_rows(rows)
    pairs = []
    for i, r in enumerate(rows):
        r = validate_example(r, f"example {i}")
        pairs.append((alpaca_prompt(r["instruction"], r["input"]), r["output"].strip()))
    return pairs


def open_datasets() -> list[dict]:
    """The survey of open instruction datasets shipped with the course (name, year, size, language, how made,
    licence, url; see ``course_utils/data/README.md``)."""
    return json.loads((files("course_utils.data") / "instruction_datasets.json").read_text(encoding="utf-8"))


def datasets_table(rows: Sequence[Mapping] | None = None) -> str:
    """The survey as a Markdown table (``IPython.display.Markdown`` renders it in a notebook)."""
    rows = open_datasets() if rows is None else rows
    cols = ("name", "year", "size", "language", "how_made", "licence")
    lines = ["| " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)
