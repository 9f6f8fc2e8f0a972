"""The example CI workflow (.github/workflows/course.yml) cannot run here: check it parses, matches GitHub's
workflow schema (check-jsonschema's copy, offline), runs the README's test command and grades a submission."""

import re
import subprocess
import sys

import pytest
import yaml

from course_utils.course import chapters, grade, lessons

WORKFLOW = chapters.ROOT / ".github" / "workflows" / "course.yml"


def load() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_the_workflow_matches_githubs_schema():
    pytest.importorskip("check_jsonschema")
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_test_job_runs_the_readmes_command_on_every_supported_python():
    wf = load()
    assert {"push", "pull_request"} <= set(wf["on"])
    readme = lessons.README.read_text()
    readme_command = re.search(r"^(make \w+)\s+# the same set-up, then the whole test suite", readme, re.M).group(1)
    job = wf["jobs"]["test"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert any(r.split()[:2] == readme_command.split() for r in runs), runs
    floor = re.search(r'requires-python = ">=(\d+)\.(\d+)"', lessons.PYPROJECT.read_text()).groups()
    versions = [tuple(map(int, v.split("."))) for v in job["strategy"]["matrix"]["python-version"]]
    assert min(versions) == tuple(map(int, floor)) and all(v >= min(versions) for v in versions)
    cached = [s["with"]["path"] for s in job["steps"] if s.get("uses", "").startswith("actions/cache")]
    assert ".venv" in cached and any("sft-course" in p for p in cached)
    assert job["runs-on"].startswith("ubuntu") and job["timeout-minutes"] <= 90


def test_the_grade_job_grades_a_sample_submission():
    runs = [s["run"] for s in load()["jobs"]["grade"]["steps"] if "run" in s]
    command = next(r for r in runs if "course_utils grade" in r)
    args = command.split("course_utils grade", 1)[1].split()
    assert (chapters.ROOT / args[0]).is_dir() and grade.find_submissions([chapters.ROOT / args[0]], chapters.ROOT)
