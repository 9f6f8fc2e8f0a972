"""The command line: `python -m course_utils --help` lists every tool and exits 0; a missing or unknown command
is a usage error (exit 2), never a traceback."""

import subprocess
import sys

from course_utils.__main__ import COMMANDS


def _run(*args):
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_subcommands():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    for name in COMMANDS:
        assert name in r.stdout
    assert "finetune" in COMMANDS and "grade" in COMMANDS


def test_missing_or_unknown_command_is_a_usage_error():
    for args in ((), ("frobnicate",)):
        r = _run(*args)
        assert r.returncode == 2 and "usage: python -m course_utils" in r.stderr and "Traceback" not in r.stderr


def test_a_command_gets_its_own_help():
    r = _run("finetune", "--help")
    assert r.returncode == 0 and "--merge" in r.stdout and "--packing" in r.stdout
