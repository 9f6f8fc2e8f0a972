"""The book (course_utils.course.book, ``make book``): the whole book builds offline from the notebooks, an executed
chapter shows its outputs and is cached, and a failing cell gives a short, clear error.

jupyter-book is a dependency of the ``book`` extra that `make` and CI install, so a missing one fails these
tests (it is never skipped).
"""

import hashlib
import html
import json
import os
import re

import nbformat
import pytest

from course_utils.__main__ import main as course_main
from course_utils.course import book, chapters

CH0 = "00_setup_and_tour"
# A remote resource a page would load: a script, a stylesheet, an image or a frame from another host.
_REMOTE = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]+)"')
# MathJax is the one remote script: the reader's browser loads it to typeset formulas (view time, never build
# time); offline, formulas show as TeX.
_VIEW_TIME_OK = ("https://cdn.jsdelivr.net/npm/mathjax@3/",)
pytestmark = pytest.mark.notebook  # builds and executes notebooks: not in `make test-fast`


def _text(page) -> str:
    """A page's visible text: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page.read_text())))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The whole book built without executing anything (about 20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("book")
    return out, book.build_book(out, profile="smoke", execute=False, progress=False)


def test_whole_book_builds_offline_without_execution(built):
    out, report = built
    site = out / "_build" / "html"
    assert report.ok and report.index == site / "index.html" and report.index.exists()
    assert list(report.chapters) == [ch.stem for ch in chapters.written_chapters()]
    for stem, result in report.chapters.items():
        assert result.status == "not executed" and result.seconds is None
        assert result.html.exists(), f"no page for {stem}"
        assert f"Not executed in this build: run make book BOOK_CHAPTERS={stem[:2]} BOOK_PROFILE=smoke" \
            in _text(result.html)
    assert "术语表" in _text(site / "GLOSSARY.html")
    figures = {m for page in (site / "notebooks").glob("*.html")
               for m in re.findall(r'<img [^>]*src="[^"]*?([a-z_]+)\.svg"', page.read_text())}
    assert len(figures) >= 10, f"the lessons' figures should show in the book: found {sorted(figures)}"
    for page in site.rglob("*.html"):
        text = page.read_text()
        remote = [u for u in _REMOTE.findall(text) if not u.startswith(_VIEW_TIME_OK)]
        assert not remote, f"{page.name} loads remote resources {remote}"
        assert "thebe" not in text.lower() and "binder" not in text.lower(), f"{page.name} has a launch/thebe hook"
    config = (out / "src" / "_config.yml").read_text()
    assert 'execute_notebooks: "off"' in config or "execute_notebooks: 'off'" in config


def test_toc_follows_the_chapter_list(built):
    out, _ = built
    expected = [f"notebooks/{ch.stem}.html" for ch in chapters.written_chapters()] + ["GLOSSARY.html"]
    nav = re.findall(r'toctree-l1[^>]*><a class="reference internal" href="([^"]+)"',
                     (out / "_build" / "html" / "intro.html").read_text())
    assert nav == expected
    assert [ch.stem for ch in chapters.written_chapters()] == [ch.stem for ch in chapters.CHAPTERS
                                                               if chapters.lesson_path(ch).exists()]


def test_an_executed_chapter_shows_its_outputs_and_is_cached(built, monkeypatch):
    out, _ = built
    first = book.build_book(out, profile="smoke", chapters=["00"], progress=False)
    result = first.chapters[CH0]
    assert result.status == "executed", result.status
    page = _text(result.html)
    assert "active profile: smoke" in page  # printed by the notebook's section 2
    assert "Not executed in this build" not in page
    assert "Quiz: Chapter 0" in page  # the quiz widget's text fallback
    assert "Interactive widget" in page and "0%|" not in page  # playground noted, tqdm bars dropped
    cached = nbformat.read(out / "executed" / f"{CH0}.ipynb", as_version=4)
    meta = cached.metadata[book.META_KEY]
    source_sha = hashlib.sha256((chapters.NOTEBOOKS / f"{CH0}.ipynb").read_bytes()).hexdigest()
    assert meta["profile"] == "smoke" and meta["source_sha256"] == source_sha
    assert meta["seconds"] == result.seconds > 0 and meta["torch_threads"] >= 1 and meta["executed_at"]
    timings = json.loads((out / "timings.json").read_text())
    assert timings["profile"] == "smoke" and timings["cpus"] == os.cpu_count()
    assert timings["chapters"][CH0]["status"] == "executed" and timings["chapters"][CH0]["seconds"] == meta["seconds"]
    assert f"| {meta['seconds']:.0f} |" in (out / "src" / "intro.md").read_text()

    def no_execution(path, profile, timeout=3600):
        raise AssertionError(f"{path.name} was executed again instead of read from the cache")

    monkeypatch.setattr(book, "execute_notebook", no_execution)  # the second build must not execute anything
    second = book.build_book(out, profile="smoke", chapters=["00"], progress=False)
    assert second.chapters[CH0].status == "cached" and second.chapters[CH0].seconds == meta["seconds"]
    assert nbformat.read(out / "executed" / f"{CH0}.ipynb", as_version=4).metadata[book.META_KEY] == meta
    # another profile or a changed source makes the cache stale
    assert book._cached(out / "executed" / f"{CH0}.ipynb", "cpu", source_sha) is None
    assert book._cached(out / "executed" / f"{CH0}.ipynb", "smoke", "0" * 64) is None


def test_a_failing_chapter_is_reported_and_the_others_go_on(built, monkeypatch, capsys):
    out, _ = built

    def fake_execute(path, profile, timeout=3600):  # chapter 1 fails, chapter 2 "runs" at once
        if path.stem.startswith("01"):
            raise RuntimeError(f"{path.name} failed in the cell starting `x = 1` with ValueError: boom")
        return nbformat.read(path, as_version=4), 0.5

    monkeypatch.setattr(book, "execute_notebook", fake_execute)
    assert course_main(["book", "--profile", "smoke", "--chapters", "01,02", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "01_decoder_llms failed: 01_decoder_llms.ipynb failed in the cell starting `x = 1`" in err
    timings = json.loads((out / "timings.json").read_text())["chapters"]
    assert timings["01_decoder_llms"]["status"].startswith("failed") and timings["02_prompt_learning"]["status"] \
        == "executed" and timings[CH0]["status"] == "cached"
    page = _text(out / "_build" / "html" / "notebooks" / "01_decoder_llms.html")
    assert "Execution failed in this build" in page and "ValueError: boom" in page
    assert not (out / "executed" / "01_decoder_llms.ipynb").exists()  # a failure is never cached


def test_a_failing_cell_names_the_notebook_the_cell_and_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    checks = (f"import os, pathlib\nassert os.environ['COURSE_PROFILE'] == 'cpu'\n"
              f"assert os.environ['HF_HUB_OFFLINE'] == '1'\n"
              f"assert pathlib.Path.cwd().resolve() == pathlib.Path({str(tmp_path)!r}).resolve()")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(checks),
        nbformat.v4.new_code_cell("\ntotal = 1 + 1\nraise ValueError('the batch is too large')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError) as info:
        book.execute_notebook(path, "cpu", timeout=120)
    message = str(info.value)
    assert "broken.ipynb" in message and "`total = 1 + 1`" in message, message
    assert "ValueError: the batch is too large" in message
    assert "COURSE_PROFILE=cpu jupyter lab" in message and "Traceback" not in message
    assert os.environ["COURSE_PROFILE"] == "smoke"  # restored


def test_missing_jupyter_book_names_the_fix(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jupyter_book" else real(name, *a))
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[book\]"'):
        book._run_jupyter_book(tmp_path, tmp_path)


def test_cli_rejects_an_unknown_chapter(tmp_path, capsys):
    assert course_main(["book", "--chapters", "99", "--out", str(tmp_path)]) == 1
    assert "unknown chapter '99'" in capsys.readouterr().err
    assert [ch.stem for ch in book.select_chapters(["1", "00_setup_and_tour"])] == ["01_decoder_llms", CH0]
