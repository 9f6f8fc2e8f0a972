"""The lessons' exercises: each solution cell passes its checker and each blank fails, without running notebooks.

Exercise and solution cells are self-contained (they import what they use), so each runs here on its own, with
only ``checks`` given: a recorder that calls the real :func:`course_utils.course.checks.check`.
"""

import json
import re

import pytest

from course_utils.course import chapters, checks, lessons

CALL = re.compile(r'checks\.check\("([^"]+)",\s*(\w+)\)')


def code_cells(chapter):
    import jupytext

    nb = jupytext.read(chapters.lesson_path(chapter))
    return [(c.metadata.get("tags", []), c.source) for c in nb.cells if c.cell_type == "code"]


def exercise_pairs(chapter):
    """``[(exercise id, blank source, solution source)]`` of one lesson, checking the cell layout on the way."""
    cells, pairs = code_cells(chapter), []
    for i, (tags, src) in enumerate(cells):
        if "exercise" in tags:
            next_tags, solution = cells[i + 1] if i + 1 < len(cells) else ([], "")
            assert "solution" in next_tags, f"{chapter.stem}: an exercise cell must be followed by its solution"
            ids = CALL.findall(src)
            assert len(ids) == 1 and CALL.findall(solution) == ids, f"{chapter.stem}: one checks.check per cell"
            assert "# TODO" in src and "# TODO" not in solution
            pairs.append((ids[0][0], src, solution))
        elif "solution" in tags:
            assert cells[i - 1][0] and "exercise" in cells[i - 1][0], f"{chapter.stem}: a solution without exercise"
    return pairs


PAIRS = [(ch, *p) for ch in chapters.solution_chapters() for p in exercise_pairs(ch)]


class Recorder:
    """Stands in for the ``checks`` module inside a cell: the real check, with its result kept."""

    def __init__(self):
        self.results = []

    def check(self, exercise_id, answer):
        ok = checks.check(exercise_id, answer)
        self.results.append((exercise_id, ok))
        return ok


@pytest.fixture(autouse=True)
def progress_path(tmp_path, monkeypatch):
    monkeypatch.setenv(checks.PROGRESS_ENV, str(tmp_path / "progress.json"))


def run_cell(source, name):
    rec = Recorder()
    exec(compile(source, name, "exec"), {"checks": rec, "__name__": "__exercise__"})
    return rec.results


@pytest.mark.parametrize("chapter, exercise_id, blank, solution", PAIRS, ids=[p[1] for p in PAIRS])
def test_solution_passes_and_blank_fails(chapter, exercise_id, blank, solution):
    assert checks.all_exercises()[exercise_id].chapter == chapter.stem
    assert run_cell(solution, f"{exercise_id} solution") == [(exercise_id, True)]
    assert run_cell(blank, f"{exercise_id} blank") == [(exercise_id, False)]


def test_every_chapter_has_a_warm_up_a_core_and_a_stretch_exercise():
    stems = [ch.stem for ch in chapters.solution_chapters()]
    assert stems == [ch.stem for ch in chapters.written_chapters()]
    for stem in stems:
        tiers = [checks.all_exercises()[e].tier for ch, e, _, _ in PAIRS if ch.stem == stem]
        assert tiers == list(checks.TIERS), stem  # in order: warm-up, core, stretch


def test_every_checker_is_used_by_exactly_one_lesson():
    used = [e for _, e, _, _ in PAIRS]
    assert sorted(used) == sorted(checks.all_exercises()) and len(used) == len(set(used))


@pytest.mark.parametrize("chapter", chapters.solution_chapters(), ids=lambda c: c.stem)
def test_notebooks_get_the_blanks_and_solutions_get_the_answers(chapter):
    pairs = [p for p in PAIRS if p[0] == chapter]
    exercises = json.loads((chapters.NOTEBOOKS / f"{chapter.stem}.ipynb").read_text())
    solutions = json.loads((chapters.SOLUTIONS / f"{chapter.stem}.ipynb").read_text())
    ex_code = ["".join(c["source"]) for c in exercises["cells"] if c["cell_type"] == "code"]
    sol_code = ["".join(c["source"]) for c in solutions["cells"] if c["cell_type"] == "code"]
    for _, _, blank, solution in pairs:
        assert blank in ex_code and solution not in ex_code
        assert solution in sol_code and blank not in sol_code
    assert sol_code[0] == lessons.colab_cell(chapter) and len(sol_code) == len(ex_code)
    assert all(not c["outputs"] and c["execution_count"] is None
               for c in solutions["cells"] if c["cell_type"] == "code")
    assert lessons.SOLUTIONS_NOTE in "".join(solutions["cells"][2]["source"])


def test_solutions_are_generated_and_not_stale():
    solved = {f"{ch.stem}.ipynb" for ch in chapters.solution_chapters()}
    assert {p.name for p in chapters.SOLUTIONS.glob("*.ipynb")} == solved
    assert not [p for p in lessons.stale_files() if p.parent == chapters.SOLUTIONS]


def test_build_splits_tagged_cells(tmp_path, monkeypatch):
    src = tmp_path / "lessons_src"
    src.mkdir()
    (src / "00_setup_and_tour.py").write_text(
        '# %% [markdown]\n# # Chapter 0\n\n# %% tags=["exercise"]\nx = None  # TODO\n\n'
        '# %% tags=["solution"]\nx = 1\n\n# %%\ny = 2\n')
    (src / "01_decoder_llms.py").write_text("# %% [markdown]\n# # Chapter 1\n\n# %%\nz = 3\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- chapters:start -->\nold\n<!-- chapters:end -->\n")
    for name, value in (("LESSONS", src), ("NOTEBOOKS", tmp_path / "notebooks"), ("README", readme),
                        ("SOLUTIONS", tmp_path / "solutions"), ("ROOT", tmp_path)):
        monkeypatch.setattr(lessons if name == "README" else chapters, name, value)
    try:  # the GLOSSARY.md hook, where it exists, writes into tmp_path too
        from course_utils.course import glossary

        monkeypatch.setattr(glossary, "glossary_path", lambda: tmp_path / "GLOSSARY.md")
    except ImportError:
        pass
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "99_orphan.ipynb").write_text("{}")
    lessons.write_all()

    def code(p):
        return ["".join(c["source"]) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"]

    assert code(tmp_path / "notebooks" / "00_setup_and_tour.ipynb")[1:] == ["x = None  # TODO", "y = 2"]
    assert code(tmp_path / "solutions" / "00_setup_and_tour.ipynb")[1:] == ["x = 1", "y = 2"]
    assert sorted(p.name for p in (tmp_path / "solutions").iterdir()) == ["00_setup_and_tour.ipynb"]
    assert lessons.stale_files() == []
