"""Count how the course answers bad input: every case of tests/test_bad_inputs_*.py is run and classified.

    .venv/bin/python tools/bad_inputs.py                 # this checkout
    .venv/bin/python tools/bad_inputs.py --source OLD    # the package of another checkout (e.g. a git worktree of
                                                         # an older commit), with this checkout's cases; give it
                                                         # its own COURSE_CACHE=... (older model caches differ)
    .venv/bin/python tools/bad_inputs.py --list          # one line per case

clear: refused by the course's own code with a message that has the case's words (the value and the fix);
unclear: an error from deep inside a library, or without those words; silent: no error at all (a wrong answer);
n/a: the case calls something the package under test does not have (a newer API).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import re
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _cases():
    sys.path.insert(0, str(TESTS))
    out = []
    for path in sorted(TESTS.glob("test_bad_inputs_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out += [(path.stem.removeprefix("test_bad_inputs_"), c) for c in module.CASES]
    return out


def _classify(case) -> tuple[str, str]:
    from refusals import classify

    try:
        case.call()
    except Exception as err:  # noqa: BLE001
        frames = traceback.extract_tb(err.__traceback__)
        newer_api = re.search(r"module '.*' has no attribute|unexpected keyword argument|positional argument",
                              str(err))
        if frames and "/tests/" in frames[-1].filename and newer_api:
            return "n/a", f"{type(err).__name__}: {err}"
    return classify(case)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", help="a checkout whose course_utils is tested instead of this one's")
    p.add_argument("--list", action="store_true", help="print every case with its class and message")
    args = p.parse_args(argv)
    if args.source:  # a fresh interpreter, so that only that checkout's package can be imported
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(args.source).resolve()),
                                                            os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, __file__] + (["--list"] if args.list else [])
        return subprocess.run(cmd, env=env, cwd=Path(args.source).resolve()).returncode
    import course_utils

    print(f"package: {Path(course_utils.__file__).parent}")
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for group, case in _cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind, message = _classify(case)
        counts[group][kind] += 1
        if args.list:
            print(f"{kind:8} {group}/{case.id}: {message[:150]}")
    kinds = ("clear", "unclear", "silent", "n/a")
    print(f"\n| group | cases | {' | '.join(kinds)} |\n|---|---|{'---|' * len(kinds)}")
    total = collections.Counter()
    for group, c in counts.items():
        total += c
        print(f"| {group} | {sum(c.values())} | {' | '.join(str(c[k]) for k in kinds)} |")
    print(f"| all | {sum(total.values())} | {' | '.join(str(total[k]) for k in kinds)} |")
    return 0 if total["clear"] == sum(total.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
