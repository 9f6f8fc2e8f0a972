"""INSTRUCTORS.md: its chapter guide is generated from the lessons, the chapter list and the exercise registry."""

import re

import pytest

from course_utils.course import chapters, checks, instructors

GUIDE = instructors.instructors_path().read_text(encoding="utf-8")


@pytest.mark.parametrize("chapter", chapters.written_chapters(), ids=lambda c: c.stem)
def test_every_chapter_has_its_times_needs_objectives_and_exercises(chapter):
    section = GUIDE.split(f"### {chapter.stem[:2]} · {chapter.title}\n", 1)[1].split("\n### ", 1)[0]
    for profile in ("smoke", "cpu", "gpu"):
        assert re.search(rf"^\| {profile} \| .+ \| .+ \|$", section, re.M), f"{chapter.stem}: no {profile} time"
    assert re.search(r"peak memory of the cpu profile's kernel: \d+\.\d GiB", section), \
        f"{chapter.stem}: measure its peak memory (bench/profile_notebook.py) into chapters.CHAPTERS"
    assert "1. " in section and "Learning objectives" in section
    for ex in (e for e in checks.all_exercises().values() if e.chapter == chapter.stem):
        assert f"`{ex.id}` ({ex.tier})" in section


def test_the_parsers_read_a_lesson_header():
    source = ("# **Learning objectives.** After this chapter you can\n# 1. do one thing;\n# 2. do another,\n"
              "#    over two lines.\n#\n# | smoke | a CPU | 9 s |\n# | cpu | the same CPU | 2 min |\n")
    assert instructors.objectives(source) == ["do one thing;", "do another, over two lines."]
    assert instructors.runtimes(source) == {"smoke": ("a CPU", "9 s"), "cpu": ("the same CPU", "2 min")}
    with pytest.raises(ValueError, match="chapters:start"):
        instructors.render("no markers")


def test_the_guide_covers_plans_ci_grading_pinning_and_new_chapters():
    for needle in ("6-week course", "12-week course", "90-minute lab", "--nbmake-timeout", "Adding a chapter",
                   "python -m course_utils grade", ".github/workflows/course.yml", "constraints.txt",
                   "grades_summary.csv"):
        assert needle in GUIDE, needle
    for column in ("student, notebook, chapter, exercise, tier, passed, hint",):
        assert column in GUIDE
