"""The generated notebooks and README table must match their sources, and carry no outputs."""

import json

import pytest

from course_utils import lessons


def test_every_lesson_is_a_listed_chapter():
    stems = {c.stem for c in lessons.CHAPTERS}
    for src in lessons.LESSONS.glob("*.py"):
        assert src.stem in stems, f"{src.name} is not in course_utils.lessons.CHAPTERS"
    assert [c.stem for c in lessons.written_chapters()][:2] == ["00_setup_and_tour", "01_decoder_llms"]


def test_notebooks_and_readme_are_in_sync_with_lessons_src():
    stale = lessons.stale_files()
    assert not stale, f"run `make notebooks`: stale {[p.name for p in stale]}"


@pytest.mark.parametrize("chapter", lessons.written_chapters(), ids=lambda c: c.stem)
def test_notebook_has_no_outputs_and_starts_with_the_colab_cell(chapter):
    nb = json.loads((lessons.NOTEBOOKS / f"{chapter.stem}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "".join(code[0]["source"]) == lessons.COLAB_CELL
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# Chapter")


def test_colab_cell_does_nothing_off_colab():
    exec(compile(lessons.COLAB_CELL, "colab_cell", "exec"), {})  # must not install anything here


def test_readme_table_has_a_badge_per_written_chapter():
    table = lessons.readme_table()
    for ch in lessons.written_chapters():
        assert lessons.colab_url(ch) in table
    assert table.count("planned") == len(lessons.CHAPTERS) - len(lessons.written_chapters())
    with pytest.raises(ValueError, match="chapters:start"):
        lessons.render_readme("no markers here")


def test_readme_names_the_two_commands():
    text = lessons.README.read_text()
    assert "make lab" in text and "make test" in text


def test_write_all_regenerates_and_removes_orphans(monkeypatch, tmp_path):
    src, out = tmp_path / "lessons_src", tmp_path / "notebooks"
    src.mkdir()
    out.mkdir()
    (src / "00_setup_and_tour.py").write_text("# %% [markdown]\n# # Chapter 0\n\n# %%\nx = 1\n")
    (out / "99_orphan.ipynb").write_text("{}")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- chapters:start -->\nold\n<!-- chapters:end -->\n")
    monkeypatch.setattr(lessons, "LESSONS", src)
    monkeypatch.setattr(lessons, "NOTEBOOKS", out)
    monkeypatch.setattr(lessons, "SOLUTIONS", tmp_path / "solutions")  # never touch the real solutions/
    monkeypatch.setattr(lessons, "README", readme)
    monkeypatch.setattr(lessons, "ROOT", tmp_path)
    assert lessons.main(["notebooks", "--check"]) == 1
    lessons.write_all()
    assert sorted(p.name for p in out.iterdir()) == ["00_setup_and_tour.ipynb"]
    assert "00_setup_and_tour.ipynb" in readme.read_text() and "old" not in readme.read_text()
    assert lessons.stale_files() == [] and lessons.main(["notebooks", "--check"]) == 0
