"""The book: every chapter executed once and rendered as static HTML (Jupyter Book 1), for readers who only read.

``make book`` runs ``python -m course_utils book``, which

1. executes each notebook of ``notebooks/`` in a fresh kernel (our own loop, not Jupyter Book's, so one chapter
   at a time can be cached, resumed and reported);
2. stages a Jupyter Book source folder in ``out/src`` (``_config.yml``, ``_toc.yml``, a landing page, the
   glossary and the executed notebooks, with widgets replaced by what a static page can show);
3. runs ``jupyter-book build``, with the course's network guard on: the book must build offline.

Executed notebooks are cached in ``out/executed/<stem>.ipynb``; their metadata ``course_book`` records the
profile and the hash of the source notebook, and a chapter is executed again only when either changes (or with
``force``). The cpu profile of all chapters takes about 3 hours on 2 cores, so this is what makes a build
resumable: ``--chapters 00,01`` executes only those two and reuses the rest.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import nbformat

from .chapters import NOTEBOOKS, ROOT, Chapter, written_chapters
from .lessons import GITHUB_REPO

DEFAULT_OUT = ROOT / "build" / "book"
META_KEY = "course_book"
TITLE = "Supervised fine-tuning of LLMs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: ``VBox(children=...``, ``HTML(value=...``: the text/plain of a bare ipywidget, which means nothing on a page.
_WIDGET_REPR = re.compile(r"^[A-Z]\w*\(\w+=")
#: ``Loading weights:   0%|          | 0/272``: a tqdm bar's text, frozen at its first state.
_TQDM_BAR = re.compile(r"\d+%\|")
WIDGET_NOTE = ("<p><em>Interactive widget: it runs only with a live kernel. Open this notebook with "
               "<code>make lab</code> or in Colab to use it.</em></p>")
# Runs jupyter-book's command line with the course's network guard on, so a build-time fetch fails loudly
# instead of hanging or silently needing the network (jupyter_book has no ``__main__`` for ``-m``).
_JUPYTER_BOOK = ("import sys; from course_utils.course.network import block_network; block_network(); "
                 "from jupyter_book.cli.main import main; sys.exit(main())")


@dataclass
class ChapterResult:
    """What the build did with one chapter: ``status`` is "executed", "cached", "not executed" or "failed: ..."."""

    status: str
    seconds: float | None
    html: Path


@dataclass
class BookReport:
    """The outcome of :func:`build_book`: one :class:`ChapterResult` per chapter stem, and the book's index page."""

    profile: str
    index: Path
    chapters: dict[str, ChapterResult] = field(default_factory=dict)

    @property
    def failures(self) -> dict[str, str]:
        """Chapter stem -> failure message, for the chapters that failed to execute."""
        return {stem: r.status for stem, r in self.chapters.items() if r.status.startswith("failed")}

    @property
    def ok(self) -> bool:
        """True when no chapter failed."""
        return not self.failures


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "<empty cell>")


@contextmanager
def kernel_environment(**values: str) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block (a kernel inherits this process's
    environment when it starts), and restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(path: Path, profile: str, timeout: int = 3600) -> tuple[nbformat.NotebookNode, float]:
    """Execute one notebook in a fresh ``python3`` kernel; return the executed notebook and its wall seconds.

    The kernel runs in the notebook's folder with ``COURSE_PROFILE=profile`` and ``HF_HUB_OFFLINE=1``;
    ``timeout`` is per cell. A failing cell raises ``RuntimeError`` naming the notebook, the cell's first line and
    the error (short: the full traceback is for JupyterLab, and the message says how to get it there).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    running: dict = {}  # the cell being executed, for the message when the kernel dies or a cell times out
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_start=lambda cell, cell_index: running.update(cell=cell))
    start = time.perf_counter()
    try:
        with kernel_environment(COURSE_PROFILE=profile, HF_HUB_OFFLINE="1"):
            client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        if isinstance(err, CellExecutionError):
            what = f"{err.ename}: {err.evalue}"
        else:
            what = f"{type(err).__name__}: {_first_line(str(err))}"
        cell = _first_line(running["cell"].source) if "cell" in running else "<before the first cell>"
        raise RuntimeError(
            f"{path.name} failed in the cell starting `{cell}` with {what[:500]}\n"
            f"Run `COURSE_PROFILE={profile} jupyter lab {path}` on it to see the full traceback.") from None
    return nb, time.perf_counter() - start


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def _torch_threads() -> int:
    import torch  # the kernel inherits our environment (OMP_NUM_THREADS), so it picks the same default

    return torch.get_num_threads()


@lru_cache(maxsize=1)
def _machine() -> str:
    import torch

    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {gpu}"


def select_chapters(chapters: Sequence[str] | None) -> list[Chapter]:
    """The written chapters named by number (``"00"``, ``"1"``) or stem; all of them for ``None``."""
    available = written_chapters()
    if chapters is None:
        return available
    picked = []
    for name in chapters:
        name = name.strip()
        match = [ch for ch in available if name in (ch.stem, ch.stem.split("_")[0]) or name.zfill(2) == ch.stem[:2]]
        if not match:
            raise ValueError(f"unknown chapter {name!r}: choose from {', '.join(ch.stem[:2] for ch in available)}")
        picked += [ch for ch in match if ch not in picked]
    return picked


def _note(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a warning box at the top."""
    nb = copy.deepcopy(nb)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"```{{warning}}\n{text}\n```"))
    return nb


def _static(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` for a static page: each widget shows its text fallback (the quiz's is the quiz as text)
    or a note that it needs a kernel, and progress bars go. The saved widget state goes too, so the page loads
    no widget JavaScript."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                text = data.get("text/plain", "")
                if _TQDM_BAR.search(text):
                    continue  # the bar's text shows its first state (0%), not how the run went
                out["data"] = ({"text/plain": text} if text and not _WIDGET_REPR.match(text)
                               else {"text/html": WIDGET_NOTE})
            kept.append(out)
        if cell.cell_type == "code":
            cell.outputs = kept
    return nb


def _write_if_changed(path: Path, text: str) -> None:
    # an unchanged mtime lets Sphinx skip the page on the next build
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _cached(path: Path, profile: str, sha: str) -> nbformat.NotebookNode | None:
    """The cached executed notebook if it was made from this source in this profile."""
    if not path.exists():
        return None
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get(META_KEY, {})
    return nb if meta.get("profile") == profile and meta.get("source_sha256") == sha else None


def _intro(profile: str, rows: list[tuple[Chapter, ChapterResult, dict]]) -> str:
    machines = sorted({meta["machine"] for _, _, meta in rows if meta.get("machine")})
    threads = sorted({str(meta["torch_threads"]) for _, _, meta in rows if meta.get("torch_threads")})
    where = (f"on {' / '.join(machines)} (torch threads: {' / '.join(threads)})" if machines
             else "(no chapter has been executed yet)")
    table = ["| # | chapter | outputs | seconds to execute | executed at |", "|---|---|---|---|---|"]
    for ch, result, meta in rows:
        seconds = f"{meta['seconds']:.0f}" if meta.get("seconds") is not None else "–"
        status = {"executed": "yes", "cached": "yes", "not executed": "no"}.get(result.status, "failed")
        table.append(f"| {ch.stem[:2]} | [{ch.title}](notebooks/{ch.stem}.ipynb) | {status} | {seconds} | "
                     f"{meta.get('executed_at', '–')} |")
    return f"""# {TITLE}

This is the course's notebooks rendered as static pages **with the outputs of one run**: the text, the code and
what the code printed and drew, to read without installing anything. The notebooks themselves are in
`notebooks/` of [the course's repository](https://github.com/{GITHUB_REPO}); every chapter runs a real model
offline, and its code lives in the tested package `course_utils`.

**Where these outputs come from.** Profile `{profile}` {where}. Sizes (model, examples, steps) depend on the
profile, so numbers in the text that were measured at another profile can differ from the outputs below them.

{chr(10).join(table)}

```{{note}}
**The widgets do not run here.** A static page has no Python kernel behind it, so the playgrounds and the
progress table show a note instead, and each quiz is shown as text. To use them, run the notebooks: `make lab`
opens them in JupyterLab on your machine (offline), or open a chapter in Colab from the badges in the README.
```

Rebuild this book with `make book` (`make book BOOK_CHAPTERS=00,01` executes only those chapters; execution is
cached per chapter). Terms in English and 中文: the [glossary](GLOSSARY.md).
"""


def _config_yml() -> str:
    import yaml

    config = {
        "title": TITLE,
        "author": "sft-course",
        "copyright": "sft-course",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},  # we execute (and cache) the notebooks ourselves
        # no launch buttons or thebe (off by default too): nothing on a page needs a server
        "launch_buttons": {"binderhub_url": "", "jupyterhub_url": "", "colab_url": "", "deepnote_url": "",
                           "thebe": False},
        "repository": {"url": f"https://github.com/{GITHUB_REPO}", "branch": "main", "path_to_book": ""},
        "html": {"use_repository_button": False, "use_issues_button": False, "use_edit_page_button": False,
                 "home_page_in_navbar": True},
        # Jupyter Book's default extensions less sphinx_thebe (it writes a thebe CDN address into every page),
        # sphinx_comments and intersphinx (which would fetch inventories at build time if given any)
        "sphinx": {"config": {"extensions": ["sphinx_togglebutton", "sphinx_copybutton", "myst_nb", "jupyter_book",
                                             "sphinx_external_toc", "sphinx_design", "sphinx_book_theme"]}},
    }
    head = "# Generated by `python -m course_utils book` (course_utils/course/book.py); edits are overwritten.\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _toc_yml(chapters: list[Chapter]) -> str:
    lines = ["# Generated by `python -m course_utils book`, in the order of course_utils/course/chapters.py CHAPTERS.",
             "format: jb-book", "root: intro", "chapters:"]
    lines += [f"- file: notebooks/{ch.stem}" for ch in chapters] + ["- file: GLOSSARY"]
    return "\n".join(lines) + "\n"


def _run_jupyter_book(src: Path, out: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("jupyter_book") is None:
        raise RuntimeError('jupyter-book is not installed: run `pip install -e ".[book]"` (or `make book`, '
                           "which installs it).")
    log = out / "build.log"
    proc = subprocess.run([sys.executable, "-c", _JUPYTER_BOOK, "build", str(src), "--path-output", str(out)],
                          capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError(f"jupyter-book build failed (full log: {log}):\n{tail}")


def _chapter_notebook(ch: Chapter, profile: str, cache: Path, run: bool, force: bool
                      ) -> tuple[nbformat.NotebookNode, str]:
    """One chapter's notebook for the book and its status: the valid cached copy, a fresh execution (``run``,
    when the cache is stale, missing or ``force``d; saved to the cache), or the source with a note."""
    source, cached_path, num = NOTEBOOKS / f"{ch.stem}.ipynb", cache / f"{ch.stem}.ipynb", ch.stem[:2]
    sha = _sha256(source)
    nb = None if force and run else _cached(cached_path, profile, sha)
    if nb is not None:
        return nb, "cached"
    if not run:
        again = f"make book BOOK_CHAPTERS={num}" + ("" if profile == "cpu" else f" BOOK_PROFILE={profile}")
        return _note(nbformat.read(source, as_version=4),
                     f"Not executed in this build: run `{again}` to fill in its outputs."), "not executed"
    try:
        nb, seconds = execute_notebook(source, profile)
    except RuntimeError as err:  # reported at the end of the build; the other chapters go on
        return _note(nbformat.read(source, as_version=4),
                     f"Execution failed in this build, so this chapter has no outputs:\n\n{err}"), f"failed: {err}"
    nb.metadata[META_KEY] = {
        "profile": profile, "source_sha256": sha, "seconds": round(seconds, 1),
        "executed_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch_threads": _torch_threads(), "machine": _machine()}
    tmp = cached_path.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(cached_path)  # atomic: an interrupted build never leaves half a cache file
    return nb, "executed"


def build_book(out: Path = DEFAULT_OUT, profile: str = "cpu", chapters: Sequence[str] | None = None,
               execute: bool = True, force: bool = False, progress: bool = True) -> BookReport:
    """Execute the chapters that need it and build the HTML book in ``out`` (index: ``out/_build/html/index.html``).

    ``chapters`` (numbers or stems) limits which chapters are executed; every chapter is in the book, from its
    cached executed copy when that matches the source and ``profile``, else without outputs and with a note.
    ``execute=False`` executes nothing; ``force`` re-executes the chosen chapters even when cached. A chapter that
    fails is reported in the returned :class:`BookReport` (``ok`` is False) and the others go on.
    """
    from tqdm.auto import tqdm

    out = Path(out).resolve()
    src, cache, html = out / "src", out / "executed", out / "_build" / "html"
    cache.mkdir(parents=True, exist_ok=True)
    book = written_chapters()
    chosen = select_chapters(chapters) if execute else []
    report = BookReport(profile=profile, index=html / "index.html")
    rows = []
    bar = tqdm(book, desc="book", unit="chapter", disable=not progress)
    for ch in bar:
        if ch in chosen:
            bar.set_description(f"book ({ch.stem})")
        nb, status = _chapter_notebook(ch, profile, cache, run=ch in chosen, force=force)
        meta = dict(nb.metadata.get(META_KEY, {}))
        result = ChapterResult(status, meta.get("seconds"), html / "notebooks" / f"{ch.stem}.html")
        report.chapters[ch.stem] = result
        rows.append((ch, result, meta))
        _write_if_changed(src / "notebooks" / f"{ch.stem}.ipynb", nbformat.writes(_static(nb)) + "\n")
    bar.close()

    _write_if_changed(src / "_config.yml", _config_yml())
    _write_if_changed(src / "_toc.yml", _toc_yml(book))
    _write_if_changed(src / "intro.md", _intro(profile, rows))
    _write_if_changed(src / "GLOSSARY.md", (ROOT / "GLOSSARY.md").read_text(encoding="utf-8"))
    for fig in sorted((ROOT / "figures").glob("*.svg")):  # the lessons' `../figures/x.svg`, next to notebooks/
        _write_if_changed(src / "figures" / fig.name, fig.read_text(encoding="utf-8"))
    timings = {
        "profile": profile, "cpus": os.cpu_count(), "torch_threads": _torch_threads(),
        "chapters": {ch.stem: {"status": r.status, "seconds": r.seconds, "executed_at": meta.get("executed_at"),
                               "machine": meta.get("machine"), "torch_threads": meta.get("torch_threads")}
                     for ch, r, meta in rows}}
    (out / "timings.json").write_text(json.dumps(timings, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    _run_jupyter_book(src, out)
    if progress:
        print(f"book: {report.index}")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils book [--profile cpu] [--chapters 00,01] [--no-execute] [--force] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m course_utils book", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="the profile the chapters execute in (default cpu)")
    parser.add_argument("--chapters", help="comma-separated chapters to execute, e.g. 00,01 (default all)")
    parser.add_argument("--no-execute", action="store_true", help="execute nothing: cached outputs or none")
    parser.add_argument("--force", action="store_true", help="re-execute the chosen chapters even if cached")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/book)")
    args = parser.parse_args(argv)
    chapters = [c for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    try:
        report = build_book(args.out, args.profile, chapters, execute=not args.no_execute, force=args.force)
    except (RuntimeError, ValueError) as err:
        print(f"book: {err}", file=sys.stderr)
        return 1
    for stem, result in report.chapters.items():
        seconds = f"{result.seconds:7.1f} s" if result.seconds is not None else " " * 9
        print(f"{stem:40} {seconds}  {result.status.splitlines()[0]}")
    for stem, message in report.failures.items():
        print(f"\n{stem} {message}", file=sys.stderr)
    return 0 if report.ok else 1
