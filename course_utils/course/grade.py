"""Grade submitted notebooks: ``python -m course_utils grade SUBMISSION... --out grades.csv``.

For each submitted notebook the grader

1. finds its chapter (the exercise ids its cells check, else a file name starting ``NN_``);
2. runs its **Exercises section** (from ``## Exercises`` to the next ``##`` heading; the whole notebook when the
   heading is gone) in a fresh Jupyter kernel: the smoke profile unless told otherwise, a time limit per cell,
   the network blocked, and ``$COURSE_GRADE_DIR`` set so that each ``checks.check(id, answer)`` hands the answer
   in (pickled with cloudpickle) instead of checking it there;
3. loads each handed-in answer in its own process and runs the course's checker on it (with a time limit): what
   the notebook printed is never read, so a student cannot print their way to a pass.

One CSV row per student and exercise (:data:`COLUMNS`), and a per-student summary beside it
(``grades_summary.csv``). A notebook that fails to run (a syntax error, a cell past its time limit, a blocked
network call, a dead kernel) gives its error in the ``hint`` column of the exercises it cost, and the other
notebooks go on. Submissions are notebooks, folders of notebooks (``alice/02_prompt_learning.ipynb``: the
student is the first folder; ``alice.ipynb``: the file's name) or zip files of either.

The grader runs the students' code, in the kernel and in its own process: grade untrusted work inside a
container or a CI job, as the course's example workflow does.
"""

from __future__ import annotations

import argparse
import csv
import re
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

import nbformat

from course_utils.validate import cli_number

#: The grades file's columns: ``passed`` is 1 or 0, ``hint`` says why an exercise did not pass.
COLUMNS = ("student", "notebook", "chapter", "exercise", "tier", "passed", "hint")
#: The summary's columns, one row per student: ``score`` is the percentage of exercises passed.
SUMMARY_COLUMNS = ("student", "notebooks", "exercises", "passed", "score")

_CHECK_CALL = re.compile(r"""checks\.check\(\s*["'](\d\d)\.(\w+)["']""")
_SETUP_CELL = ("from course_utils.course.network import block_network\n"
               "block_network()  # the grader's kernel is offline, whatever the notebook tries")


@dataclass
class Grade:
    """One row of the grades file (see :data:`COLUMNS`)."""

    student: str
    notebook: str
    chapter: str
    exercise: str
    tier: str
    passed: int
    hint: str


@dataclass(frozen=True)
class Submission:
    """A notebook to grade and whose it is; ``name`` is its path as the grades file shows it."""

    student: str
    path: Path
    name: str


class _CheckTimeout(BaseException):
    """A checker's call into the student's code ran past its limit (a BaseException: checkers catch Exception)."""


# ---- in the student's kernel -----------------------------------------------------------------------------------

# ---- finding and reading submissions ---------------------------------------------------------------------------

def _notebooks_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _from_folder(folder: Path, label: str) -> list[Submission]:
    found = []
    for path in _notebooks_in(folder):
        rel = path.relative_to(folder)
        student = rel.parts[0] if len(rel.parts) > 1 else path.stem
        found.append(Submission(student, path, f"{label}/{rel.as_posix()}"))
    return found


def _unwrap(folder: Path) -> Path:
    """A zip's students: the folder itself, or the one folder it wraps when that holds the students' folders."""
    entries = [p for p in folder.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in entries[0].iterdir()):
        return entries[0]
    return folder


def find_submissions(paths: Iterable[str | Path], workdir: Path) -> list[Submission]:
    """Every notebook in ``paths`` (notebooks, folders, zip files; zips are unpacked under ``workdir``).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a path that is neither a notebook, a folder nor a zip, or a bad zip.
    """
    found: list[Submission] = []
    for i, raw in enumerate(paths):
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"Submission {str(path)!r} does not exist: pass notebooks (.ipynb), folders of "
                                    "notebooks or zip files.")
        if path.is_dir():
            found += _from_folder(path, path.name)
        elif path.suffix == ".ipynb":
            found.append(Submission(path.stem, path, path.name))
        elif path.suffix == ".zip":
            target = workdir / f"zip{i}"
            try:
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():  # refuse paths that would land outside target
                        if member.startswith("/") or ".." in Path(member).parts:
                            raise ValueError(f"{path.name} holds an unsafe path {member!r}; re-zip the notebooks.")
                    archive.extractall(target)
            except zipfile.BadZipFile as err:
                raise ValueError(f"{path} is not a readable zip file ({err}).") from None
            found += _from_folder(_unwrap(target), path.name)
        else:
            raise ValueError(f"Submission {str(path)!r} is not a notebook (.ipynb), a folder or a zip file.")
    return found


def chapter_of(nb: nbformat.NotebookNode, filename: str = "") -> str | None:
    """The chapter stem a notebook belongs to: from the exercise ids it checks, else from a file name ``NN_...``;
    None when neither tells."""
    from .chapters import CHAPTERS

    numbers = [m.group(1) for c in nb.cells if c.cell_type == "code" for m in _CHECK_CALL.finditer(c.source)]
    number = max(set(numbers), key=numbers.count) if numbers else Path(filename).name[:2]
    return next((ch.stem for ch in CHAPTERS if ch.stem[:2] == number), None)


def exercise_section(nb: nbformat.NotebookNode) -> list:
    """The cells from the ``## Exercises`` heading to the next ``##`` heading (every cell when there is none)."""
    def heading(cell, pattern: str) -> bool:
        return cell.cell_type == "markdown" and re.search(pattern, cell.source, re.M) is not None

    cells = nb.cells
    start = next((i for i, c in enumerate(cells) if heading(c, r"^## Exercises")), None)
    if start is None:
        return list(cells)
    end = next((i for i in range(start + 1, len(cells)) if heading(cells[i], r"^## ")), len(cells))
    return cells[start:end]


# ---- running a notebook -----------------------------------------------------------------------------------------

def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")[:60]


def run_exercises(cells: Sequence, hand_in_dir: Path, workdir: Path, profile: str = "smoke",
                  timeout: int = 120) -> dict[int, str]:
    """Execute ``cells`` in a fresh kernel (offline, ``profile``, ``timeout`` seconds per cell) with answers
    handed in to ``hand_in_dir``. Returns ``{cell index: what went wrong}`` for the cells that failed; index -1
    holds a problem with the kernel itself."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from .book import kernel_environment
    from .checks import GRADE_ENV, PROGRESS_ENV

    code = [nbformat.v4.new_code_cell(_SETUP_CELL)] + [nbformat.v4.new_code_cell(c.source) for c in cells
                                                        if c.cell_type == "code"]
    index = [-1] + [i for i, c in enumerate(cells) if c.cell_type == "code"]
    nb = nbformat.v4.new_notebook(cells=code)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    problems: dict[int, str] = {}
    replies: dict[int, dict] = {}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "Timeout", "evalue": f"did not finish within {timeout} s and was stopped",
                          "traceback": []},
        resources={"metadata": {"path": str(workdir)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.update({cell_index: execute_reply}))
    env = {"COURSE_PROFILE": profile, "HF_HUB_OFFLINE": "1", "COURSE_BLOCK_NETWORK": "1",
           GRADE_ENV: str(hand_in_dir), PROGRESS_ENV: str(workdir / "progress.json"), "MPLBACKEND": "agg"}
    with kernel_environment(**env):
        try:
            with client.setup_kernel():
                for k, cell in enumerate(code):
                    client.execute_cell(cell, k)
                    content = (replies.get(k) or {}).get("content", {})
                    if content.get("status") == "error":
                        where = f"cell {index[k]} (`{_first_line(cell.source)}`)" if k else "the grader's set-up"
                        problems[index[k]] = f"{where} raised {content.get('ename')}: {content.get('evalue')}"[:400]
        except DeadKernelError:
            k = len(replies)
            problems[-1] = (f"the kernel died in cell {index[min(k, len(index) - 1)]}: out of memory, or the code "
                            "exited the process")
        except Exception as err:  # the kernel did not start, or Jupyter itself failed: report, go on with others
            problems[-1] = f"the notebook could not be run: {type(err).__name__}: {err}"[:400]
    return problems


# ---- checking the answers ---------------------------------------------------------------------------------------

@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (Unix main thread; elsewhere no limit)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _CheckTimeout

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_handed_in(exercise_id: str, hand_in_dir: Path, check_timeout: int = 60) -> tuple[bool, str] | None:
    """Run the course's checker on a handed-in answer: ``(passed, hint)``, or None when nothing was handed in."""
    import cloudpickle

    from .checks import verdict

    note, pickled = hand_in_dir / f"{exercise_id}.error", hand_in_dir / f"{exercise_id}.pkl"
    if note.is_file():
        return False, f"the answer could not be handed in from the notebook: {note.read_text()}"
    if not pickled.is_file():
        return None
    try:
        with _time_limit(check_timeout):
            answer = cloudpickle.loads(pickled.read_bytes())
            return verdict(exercise_id, answer)
    except _CheckTimeout:
        return False, f"the checker's calls to your code did not return within {check_timeout} s (an endless loop?)"
    except Exception as err:  # an answer that needs what only its kernel had
        return False, f"the answer could not be loaded outside the notebook: {type(err).__name__}: {err}"


def grade_notebook(sub: Submission, profile: str = "smoke", timeout: int = 120,
                   check_timeout: int = 60) -> list[Grade]:
    """The grades of one submitted notebook: one row per exercise of its chapter (one row when its chapter is
    unknown or it cannot be read)."""
    from .checks import all_exercises

    def row(chapter: str, exercise: str = "", tier: str = "", passed: bool = False, hint: str = "") -> Grade:
        return Grade(sub.student, sub.name, chapter, exercise, tier, int(passed), hint)

    try:
        nb = nbformat.read(sub.path, as_version=4)
    except Exception as err:
        return [row("", hint=f"not a readable notebook: {type(err).__name__}: {err}"[:400])]
    chapter = chapter_of(nb, sub.path.name)
    if chapter is None:
        return [row("", hint="cannot tell the chapter: no checks.check(...) call, and the file name does not "
                             "start with a chapter number (NN_)")]
    cells = exercise_section(nb)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        hand_in_dir, workdir = Path(tmp) / "answers", Path(tmp) / "work"
        workdir.mkdir()
        problems = run_exercises(cells, hand_in_dir, workdir, profile, timeout)
        rows = []
        for ex in (e for e in all_exercises().values() if e.chapter == chapter):
            result = check_handed_in(ex.id, hand_in_dir, check_timeout)
            if result is None:
                cell = next((i for i, c in enumerate(cells) if c.cell_type == "code"
                             and re.search(rf"""["']{re.escape(ex.id)}["']""", c.source)), None)
                if cell in problems:
                    hint = problems[cell]
                elif -1 in problems:
                    hint = problems[-1]
                elif cell is None:
                    hint = f'the notebook has no checks.check("{ex.id}", ...) cell'
                else:
                    hint = f"cell {cell} never handed the answer in (did an earlier error stop it?)"
                result = (False, hint)
            rows.append(row(chapter, ex.id, ex.tier, *result))
    return rows


def summarize(grades: Sequence[Grade]) -> list[dict]:
    """One row per student (:data:`SUMMARY_COLUMNS`), in the order students first appear."""
    out: dict[str, dict] = {}
    for g in grades:
        s = out.setdefault(g.student, {"student": g.student, "notebooks": set(), "exercises": 0, "passed": 0})
        s["notebooks"].add(g.notebook)
        s["exercises"] += bool(g.exercise)
        s["passed"] += g.passed
    return [{**s, "notebooks": len(s["notebooks"]),
             "score": round(100 * s["passed"] / s["exercises"], 1) if s["exercises"] else 0.0}
            for s in out.values()]


def summary_path(out: str | Path) -> Path:
    """Where the per-student summary goes: ``grades.csv`` -> ``grades_summary.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_summary{out.suffix or '.csv'}")


def write_grades(grades: Sequence[Grade], out: str | Path) -> tuple[Path, Path]:
    """Write the grades and the per-student summary as CSV; return both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(astuple(g) for g in grades)
    with summary_path(out).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        w.writerows(summarize(grades))
    return out, summary_path(out)


def grade(paths: Iterable[str | Path], out: str | Path | None = None, profile: str = "smoke", timeout: int = 120,
          check_timeout: int = 60, progress: bool = True) -> list[Grade]:
    """Grade every notebook in ``paths`` (see the module's docstring); write ``out`` and its summary when given.

    Raises:
        FileNotFoundError, ValueError: a submission path that does not exist or is not a notebook, folder or zip.
        ValueError: no notebook found, or an unknown profile.
    """
    from tqdm.auto import tqdm

    from course_utils.config import PROFILES

    from .network import allow_network, block_network, is_blocked

    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}.")
    grades: list[Grade] = []
    with tempfile.TemporaryDirectory(prefix="submissions-") as tmp:
        subs = find_submissions(paths, Path(tmp))
        if not subs:
            raise ValueError(f"No notebook (.ipynb) found in {', '.join(map(str, paths))}.")
        was_blocked = is_blocked()
        block_network()  # the answers run in this process too
        try:
            for sub in tqdm(subs, desc="grading", unit="notebook", disable=not progress):
                grades += grade_notebook(sub, profile, timeout, check_timeout)
        finally:
            if not was_blocked:
                allow_network()
    if out is not None:
        write_grades(grades, out)
    return grades


def summary_table(grades: Sequence[Grade]) -> str:
    """The per-student summary as a text table."""
    rows = summarize(grades)
    w = max([len(r["student"]) for r in rows] + [7])
    lines = [f"{'student':<{w}}  notebooks  passed  score", "-" * (w + 28)]
    lines += [f"{r['student']:<{w}}  {r['notebooks']:>9}  {r['passed']:>3}/{r['exercises']:<3} {r['score']:5.1f} %"
              for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_utils grade SUBMISSION... [--out grades.csv] [--profile smoke] [--timeout 120]``."""
    ap = argparse.ArgumentParser(prog="python -m course_utils grade",
                                 description="Grade the Exercises sections of submitted notebooks.")
    ap.add_argument("submissions", nargs="+", help="notebooks, folders of notebooks, or zip files")
    ap.add_argument("--out", default="grades.csv", help="the grades CSV (the summary goes beside it)")
    ap.add_argument("--profile", default="smoke", help="the sizes the notebooks run with (default smoke)")
    ap.add_argument("--timeout", type=cli_number(int, 1), default=120, help="seconds per notebook cell (default 120)")
    ap.add_argument("--check-timeout", type=cli_number(int, 1), default=60, help="seconds per checker (default 60)")
    args = ap.parse_args(argv)
    try:
        grades = grade(args.submissions, args.out, args.profile, args.timeout, args.check_timeout)
    except (FileNotFoundError, ValueError) as err:
        print(f"grade: {err}")
        return 2
    print(summary_table(grades))
    print(f"grades: {args.out}; summary: {summary_path(args.out)}")
    return 0

