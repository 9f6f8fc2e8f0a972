"""``python -m course_utils grade``: the solutions grade 100 %, the blanks 0 %, every failure gets its own row."""

from __future__ import annotations

import csv
import zipfile

import nbformat
import pytest

from course_utils.course import chapters, checks, grade

SOLVED_01 = chapters.ROOT / "solutions" / "01_decoder_llms.ipynb"


def _section(path):
    return grade.exercise_section(nbformat.read(path, as_version=4))


def _write(path, cells) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Exercises")] + cells)
    nbformat.write(nb, path)


def _edit(cells, exercise_id: str, source: str) -> list:
    """Chapter 1's solved section with the cell that checks ``exercise_id`` replaced by ``source``."""
    out = []
    for c in cells:
        if c.cell_type == "code" and f'"{exercise_id}"' in c.source:
            c = nbformat.v4.new_code_cell(source)
        elif c.cell_type == "code":
            c = nbformat.v4.new_code_cell(c.source)
        else:
            continue
        out.append(c)
    return out


# ---- fast: finding submissions, chapters, the files ------------------------------------------------------------

def test_submissions_from_files_folders_and_zips(tmp_path):
    _write(tmp_path / "class" / "alice" / "01_decoder_llms.ipynb", [])
    _write(tmp_path / "class" / "bob.ipynb", [])
    _write(tmp_path / "carol.ipynb", [])
    with zipfile.ZipFile(tmp_path / "late.zip", "w") as z:  # one wrapping folder around the students' folders
        z.write(tmp_path / "class" / "bob.ipynb", "late/dave/02_prompt_learning.ipynb")
    subs = grade.find_submissions([tmp_path / "class", tmp_path / "carol.ipynb", tmp_path / "late.zip"],
                                  tmp_path / "work")
    assert [(s.student, s.name) for s in subs] == [
        ("alice", "class/alice/01_decoder_llms.ipynb"), ("bob", "class/bob.ipynb"), ("carol", "carol.ipynb"),
        ("dave", "late.zip/dave/02_prompt_learning.ipynb")]


def test_bad_submission_paths_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        grade.find_submissions([tmp_path / "nope"], tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a notebook"):
        grade.find_submissions([tmp_path / "notes.txt"], tmp_path)
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        grade.find_submissions([tmp_path / "bad.zip"], tmp_path)
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../escape.ipynb", "{}")
    with pytest.raises(ValueError, match="unsafe path"):
        grade.find_submissions([tmp_path / "evil.zip"], tmp_path / "w")
    with pytest.raises(ValueError, match="Unknown profile 'tiny'"):
        grade.grade([SOLVED_01], profile="tiny")
    assert grade.main([str(tmp_path / "nope")]) == 2


def test_the_chapter_comes_from_the_checked_ids_else_the_file_name():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('checks.check("06.rotate_half", f)')])
    assert grade.chapter_of(nb, "homework.ipynb") == "06_positions_and_context"
    empty = nbformat.v4.new_notebook()
    assert grade.chapter_of(empty, "03_mine.ipynb") == "03_in_context_learning"
    assert grade.chapter_of(empty, "notes.ipynb") is None


def test_the_csv_files_have_the_documented_columns(tmp_path):
    rows = [grade.Grade("ann", "a.ipynb", "01_decoder_llms", "01.causal_mask", "warm-up", 1, ""),
            grade.Grade("ann", "a.ipynb", "01_decoder_llms", "01.packed_mask", "stretch", 0, "a hint, with a comma"),
            grade.Grade("ben", "b.ipynb", "", "", "", 0, "not a readable notebook")]
    out, summary = grade.write_grades(rows, tmp_path / "g" / "grades.csv")
    with out.open(newline="") as f:
        read = list(csv.DictReader(f))
    assert tuple(read[0]) == grade.COLUMNS and read[1]["hint"] == "a hint, with a comma"
    with summary.open(newline="") as f:
        per_student = list(csv.DictReader(f))
    assert tuple(per_student[0]) == grade.SUMMARY_COLUMNS
    assert [(r["student"], r["passed"], r["exercises"], r["score"]) for r in per_student] == \
        [("ann", "1", "2", "50.0"), ("ben", "0", "0", "0.0")]


def test_check_hands_the_answer_in_when_graded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(checks.GRADE_ENV, str(tmp_path))
    assert checks.check("01.causal_mask", lambda T: None) is False  # not checked here: handed in
    assert "handed in for grading" in capsys.readouterr().out
    assert grade.check_handed_in("01.causal_mask", tmp_path)[0] is False  # the grader checks it (returns None)
    assert grade.check_handed_in("01.packed_mask", tmp_path) is None  # never handed in
    with pytest.raises(KeyError):
        checks.check("01.no_such_exercise", None)


# ---- real kernels ----------------------------------------------------------------------------------------------

@pytest.mark.notebook
def test_each_failure_gets_its_own_row(tmp_path):
    solved = _section(SOLVED_01)
    # One notebook, three failures: later cells still run after a syntax error and a cell past its time limit.
    _write(tmp_path / "subs" / "broken" / "01_decoder_llms.ipynb", _edit(_edit(_edit(
        solved, "01.causal_mask",
        'def my_causal_mask(T):\n    return (\n\nchecks.check("01.causal_mask", my_causal_mask)'),
        "01.sliding_window_mask", 'while True:\n    pass\nchecks.check("01.sliding_window_mask", None)'),
        "01.packed_mask", 'import socket\nsocket.create_connection(("10.255.255.1", 80), timeout=2)\n'
                          'checks.check("01.packed_mask", None)'))
    # Printing a pass earns nothing; an answer that never returns is stopped by the grader's own time limit.
    _write(tmp_path / "subs" / "sly" / "01_decoder_llms.ipynb", _edit(_edit(
        solved, "01.causal_mask", 'print("✓ 01.causal_mask passed")\ncheck = checks.check("01.causal_mask", 42)'),
        "01.sliding_window_mask", 'def slow(T, w):\n    while True:\n        pass\n\n'
                                  'checks.check("01.sliding_window_mask", slow)'))
    (tmp_path / "subs" / "garbled.ipynb").write_text("{ not json")
    _write(tmp_path / "subs" / "notes.ipynb", [nbformat.v4.new_code_cell("x = 1")])
    rows = grade.grade([tmp_path / "subs"], tmp_path / "grades.csv", timeout=15, check_timeout=5, progress=False)
    got = {(r.student, r.exercise): (r.passed, r.hint) for r in rows}
    assert "SyntaxError" in got["broken", "01.causal_mask"][1]
    assert "did not finish within 15 s" in got["broken", "01.sliding_window_mask"][1]
    assert "NetworkBlockedError" in got["broken", "01.packed_mask"][1]
    assert got["sly", "01.causal_mask"] == (0, "expected a function (or class), got int.")
    assert got["sly", "01.sliding_window_mask"] == \
        (0, "the checker's calls to your code did not return within 5 s (an endless loop?)")
    assert got["sly", "01.packed_mask"] == (1, "")
    assert got["garbled", ""][1].startswith("not a readable notebook")
    assert got["notes", ""][1].startswith("cannot tell the chapter")
    assert sum(r.passed for r in rows) == 1
    assert (tmp_path / "grades_summary.csv").is_file()


@pytest.mark.model
@pytest.mark.notebook
def test_solutions_grade_100_and_blank_notebooks_0(tmp_path):
    """Every chapter: the solutions/ notebooks (one student) and notebooks/ zipped (another)."""
    with zipfile.ZipFile(tmp_path / "blank.zip", "w") as z:
        for ch in chapters.solution_chapters():
            z.write(chapters.ROOT / "notebooks" / f"{ch.stem}.ipynb", f"class/blank/{ch.stem}.ipynb")
    solved = tmp_path / "folder" / "solved"
    solved.mkdir(parents=True)
    for ch in chapters.solution_chapters():
        (solved / f"{ch.stem}.ipynb").write_bytes((chapters.ROOT / "solutions" / f"{ch.stem}.ipynb").read_bytes())
    rows = grade.grade([tmp_path / "folder", tmp_path / "blank.zip"], tmp_path / "grades.csv", progress=False)
    summary = {r["student"]: r for r in grade.summarize(rows)}
    n = len(checks.all_exercises())
    solved_rows = [r for r in rows if r.student == "solved"]
    assert len(solved_rows) == n and all(r.passed for r in solved_rows), \
        [(r.exercise, r.hint) for r in solved_rows if not r.passed]
    blank_rows = [r for r in rows if r.student == "blank"]
    assert len(blank_rows) == n and not any(r.passed for r in blank_rows)
    assert all("still the blank" in r.hint for r in blank_rows), [r.hint for r in blank_rows]
    assert summary["blank"]["score"] == 0.0
