"""The static figures: every registered figure is committed as figures/<stem>.svg exactly as the code draws it now,
its alt text is a sentence, and every figure a lesson shows exists and has alt text. No model is loaded."""

import re
import subprocess
import sys
from html import escape

import pytest

from course_utils.course import chapters, figures

FIGURE_DIR = chapters.ROOT / "figures"
LESSON_IMAGE = re.compile(r"!\[([^\]]*)\]\(\.\./figures/([^)\s]+)\)")


def test_committed_figures_are_what_the_code_draws(tmp_path):
    drawn = figures.draw_all(tmp_path)
    assert [p.stem for p in drawn] == list(figures.FIGURES)
    for path in drawn:
        committed = FIGURE_DIR / path.name
        assert committed.is_file(), f"figures/{path.name} is missing: run `python -m course_utils figures`"
        assert committed.read_bytes() == path.read_bytes(), (
            f"figures/{path.name} differs from what course_utils/course/figures/ draws: run "
            "`python -m course_utils figures`")


def test_drawing_is_byte_deterministic():
    assert figures.render("alibi") == figures.render("alibi")


@pytest.mark.parametrize("stem", list(figures.FIGURES))
def test_alt_text_is_a_sentence_and_the_svg_title(stem):
    _, alt = figures.FIGURES[stem]
    assert isinstance(alt, str) and alt.strip(), f"{stem}: empty alt text"
    assert alt[0].isupper() and alt.endswith(".") and len(alt.split()) >= 6, f"{stem}: not a sentence: {alt!r}"
    assert not set(alt) & set("[]\n"), f"{stem}: alt text must fit in ![alt](...) on one line, without brackets"
    svg = (FIGURE_DIR / f"{stem}.svg").read_text(encoding="utf-8")
    assert f"<title>{escape(alt, quote=False)}</title>" in svg, f"{stem}.svg: its <title> is not the alt text"
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg, f"{stem}.svg carries a date or version stamp"
    assert len(svg.encode()) < 150_000, f"{stem}.svg is {len(svg.encode()) // 1024} KB; keep figures under 150 KB"


def test_every_lesson_image_is_a_figure_with_alt_text():
    for lesson in sorted(chapters.LESSONS.glob("*.py")):
        for alt, target in LESSON_IMAGE.findall(lesson.read_text(encoding="utf-8")):
            where = f"{lesson.name}: ![{alt}](../figures/{target})"
            assert alt.strip(), f"{where} has no alt text: use the alt text in figures.FIGURES"
            assert (FIGURE_DIR / target).is_file(), f"{where}: no such file; run `python -m course_utils figures`"
            assert target.endswith(".svg") and target[:-4] in figures.FIGURES, f"{where}: not in figures.FIGURES"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown figure.*'nope'.*choose from"):
        figures.draw_all(tmp_path, ["nope"])
    with pytest.raises(TypeError, match=r"pass e.g. \['lora'\]"):
        figures.draw_all(tmp_path, "lora")
    with pytest.raises(TypeError, match="out_dir must be a folder path"):
        figures.draw_all(3)


def test_the_command_writes_the_named_figures(tmp_path):
    r = subprocess.run([sys.executable, "-m", "course_utils", "figures", "lora", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["lora.svg"]
    assert (tmp_path / "lora.svg").read_bytes() == (FIGURE_DIR / "lora.svg").read_bytes()
