"""The solutions notebooks, executed: every exercise passes with its solution and fails with the blank.

``tests/test_exercises.py`` runs each cell on its own; this runs them as a learner does, in a Jupyter kernel,
cell after cell: the Exercises section of ``solutions/NN.ipynb`` (its progress widget included), then the same
section of ``notebooks/NN.ipynb`` with the blanks, in one kernel per chapter. The section is self-contained (its
cells import what they use), which is what makes this affordable: the rest of each notebook runs under nbmake
already, and solutions/ differ from notebooks/ only inside this section.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

from course_utils.course import chapters, checks, lessons

CHAPTERS = chapters.solution_chapters()


def heading(cell, pattern: str = r"^## ") -> bool:
    return cell.cell_type == "markdown" and re.search(pattern, cell.source, re.M) is not None


def exercise_section(path) -> list:
    """The cells from the ``## Exercises`` heading to the next ``##`` heading ("Try it") of one notebook."""
    cells = nbformat.read(path, as_version=4).cells
    start = next((i for i, c in enumerate(cells) if heading(c, r"^## Exercises")), None)
    assert start is not None, f"{path.name} has no '## Exercises' section"
    end = next((i for i in range(start + 1, len(cells)) if heading(cells[i])), len(cells))
    return cells[start:end]


def printed(cells) -> str:
    return "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.model
@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[ch.stem for ch in CHAPTERS])
def test_solutions_notebook_passes_every_exercise_and_the_blank_notebook_none(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv(checks.PROGRESS_ENV, str(tmp_path / "progress.json"))  # the kernel inherits it
    notebooks = chapters.ROOT / "notebooks"
    solved = exercise_section(chapters.ROOT / "solutions" / f"{chapter.stem}.ipynb")
    blank = exercise_section(notebooks / f"{chapter.stem}.ipynb")
    for i, cell in enumerate(blank):  # both halves come from one lesson, so their cell ids collide
        cell.id = f"blank-{i}"
    nb = nbformat.v4.new_notebook(cells=solved + blank)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(notebooks)}}).execute()
    ids = [e.id for e in checks.all_exercises().values() if e.chapter == chapter.stem]
    assert len(ids) == 3
    with_solutions, with_blanks = printed(nb.cells[:len(solved)]), printed(nb.cells[len(solved):])
    for ex_id in ids:
        assert f"✓ {ex_id} passed" in with_solutions, f"{ex_id}: the solution did not pass in the notebook"
        assert f"✗ {ex_id} not yet" in with_blanks, f"{ex_id}: the blank did not fail in the notebook"
    assert "✗" not in with_solutions and "✓" not in with_blanks


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[ch.stem for ch in CHAPTERS])
def test_solutions_differ_from_notebooks_only_in_the_exercise_section(chapter):
    """What makes running only the section enough: everything else is the notebook nbmake runs."""
    def outside(path):
        cells = nbformat.read(path, as_version=4).cells
        section = {c.source for c in exercise_section(path)}
        return [c.source for c in cells if c.source not in section and c.source != lessons.SOLUTIONS_NOTE]

    assert outside(chapters.ROOT / "solutions" / f"{chapter.stem}.ipynb") == \
        outside(chapters.ROOT / "notebooks" / f"{chapter.stem}.ipynb")
